#include "curl_transfer.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "xpscale/sharding/error.h"

namespace xpscale::detail {

namespace {

// libcurl's process-wide state, set up once before any handle exists.
void global_init() {
  static const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
  curl_check(code, "curl_global_init");
}

template <typename T>
void setopt(CURL* easy, CURLoption option, T value, const char* name) {
  curl_check(curl_easy_setopt(easy, option, value), name);
}

// Bytes read per write callback, and the receive low-water mark while a
// body streams in (Transfer::set_watermark): one wakeup per this many bytes.
constexpr long kReadChunk = 256L << 10;

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

void curl_check(CURLcode code, const char* call) {
  if (code != CURLE_OK) {
    throw ShardingError(std::string("libcurl: ") + call + " failed: " + std::to_string(code) +
                        " (" + curl_easy_strerror(code) + ")");
  }
}

void curl_check(CURLMcode code, const char* call) {
  if (code != CURLM_OK) {
    throw ShardingError(std::string("libcurl: ") + call + " failed: " + std::to_string(code) +
                        " (" + curl_multi_strerror(code) + ")");
  }
}

void curl_check(CURLSHcode code, const char* call) {
  if (code != CURLSHE_OK) {
    throw ShardingError(std::string("libcurl: ") + call + " failed: " + std::to_string(code) +
                        " (" + curl_share_strerror(code) + ")");
  }
}

CurlShare::CurlShare() {
  global_init();
  share_ = curl_share_init();
  if (share_ == nullptr) throw ShardingError("libcurl: curl_share_init failed");
  curl_check(curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &CurlShare::lock),
             "curl_share_setopt(LOCKFUNC)");
  curl_check(curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &CurlShare::unlock),
             "curl_share_setopt(UNLOCKFUNC)");
  curl_check(curl_share_setopt(share_, CURLSHOPT_USERDATA, this), "curl_share_setopt(USERDATA)");
  for (curl_lock_data d :
       {CURL_LOCK_DATA_CONNECT, CURL_LOCK_DATA_DNS, CURL_LOCK_DATA_SSL_SESSION}) {
    curl_check(curl_share_setopt(share_, CURLSHOPT_SHARE, d), "curl_share_setopt(SHARE)");
  }
}

CurlShare::~CurlShare() { curl_share_cleanup(share_); }

void CurlShare::lock(CURL*, curl_lock_data data, curl_lock_access, void* self) {
  static_cast<CurlShare*>(self)->mutexes_[data].lock();
}

void CurlShare::unlock(CURL*, curl_lock_data data, void* self) {
  static_cast<CurlShare*>(self)->mutexes_[data].unlock();
}

Transfer::Transfer(const CurlShare& share, Request request, const RetryPolicy& policy,
                   BodySink on_body)
    : request_(std::move(request)), on_body_(std::move(on_body)) {
  global_init();
  easy_ = curl_easy_init();
  if (easy_ == nullptr) throw ShardingError("libcurl: curl_easy_init failed");
  for (const std::string& h : request_.headers) {
    curl_slist* next = curl_slist_append(headers_, h.c_str());
    if (next == nullptr) throw ShardingError("libcurl: curl_slist_append failed");
    headers_ = next;
  }
  // S3 answers 100-continue itself; the extra round trip only costs time.
  headers_ = curl_slist_append(headers_, "Expect:");
  setopt(easy_, CURLOPT_SHARE, share.get(), "curl_easy_setopt(SHARE)");
  setopt(easy_, CURLOPT_URL, request_.url.c_str(), "curl_easy_setopt(URL)");
  setopt(easy_, CURLOPT_HTTPHEADER, headers_, "curl_easy_setopt(HTTPHEADER)");
  setopt(easy_, CURLOPT_ERRORBUFFER, error_, "curl_easy_setopt(ERRORBUFFER)");
  setopt(easy_, CURLOPT_NOSIGNAL, 1L, "curl_easy_setopt(NOSIGNAL)");
  setopt(easy_, CURLOPT_WRITEFUNCTION, &Transfer::on_write, "curl_easy_setopt(WRITEFUNCTION)");
  setopt(easy_, CURLOPT_WRITEDATA, this, "curl_easy_setopt(WRITEDATA)");
  setopt(easy_, CURLOPT_HEADERFUNCTION, &Transfer::on_header, "curl_easy_setopt(HEADERFUNCTION)");
  setopt(easy_, CURLOPT_HEADERDATA, this, "curl_easy_setopt(HEADERDATA)");
  setopt(easy_, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(policy.connect_timeout.count()),
         "curl_easy_setopt(CONNECTTIMEOUT_MS)");
  // Fewer, larger write callbacks: curl's default is 16 KiB.
  setopt(easy_, CURLOPT_BUFFERSIZE, kReadChunk, "curl_easy_setopt(BUFFERSIZE)");
  if (policy.attempt_timeout.count() > 0) {
    setopt(easy_, CURLOPT_TIMEOUT_MS, static_cast<long>(policy.attempt_timeout.count()),
           "curl_easy_setopt(TIMEOUT_MS)");
  }
  // Stall detection: under 1 byte/s for stall_timeout aborts the attempt.
  setopt(easy_, CURLOPT_LOW_SPEED_LIMIT, 1L, "curl_easy_setopt(LOW_SPEED_LIMIT)");
  setopt(easy_, CURLOPT_LOW_SPEED_TIME,
         std::max(1L, static_cast<long>(policy.stall_timeout.count() / 1000)),
         "curl_easy_setopt(LOW_SPEED_TIME)");
  if (request_.method == "HEAD") {
    setopt(easy_, CURLOPT_NOBODY, 1L, "curl_easy_setopt(NOBODY)");
  } else if (request_.method == "PUT" || request_.method == "POST") {
    setopt(easy_, CURLOPT_UPLOAD, 1L, "curl_easy_setopt(UPLOAD)");
    setopt(easy_, CURLOPT_READFUNCTION, &Transfer::on_read, "curl_easy_setopt(READFUNCTION)");
    setopt(easy_, CURLOPT_READDATA, this, "curl_easy_setopt(READDATA)");
    setopt(easy_, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request_.body.size()),
           "curl_easy_setopt(INFILESIZE_LARGE)");
    if (request_.method == "POST") {
      setopt(easy_, CURLOPT_CUSTOMREQUEST, "POST", "curl_easy_setopt(CUSTOMREQUEST)");
    }
  } else if (request_.method != "GET") {
    setopt(easy_, CURLOPT_CUSTOMREQUEST, request_.method.c_str(),
           "curl_easy_setopt(CUSTOMREQUEST)");
  }
}

Transfer::~Transfer() {
  curl_easy_cleanup(easy_);
  curl_slist_free_all(headers_);
}

std::string Transfer::curl_message() const {
  return error_[0] != '\0' ? std::string(error_) : std::string(curl_easy_strerror(result_));
}

long Transfer::status() const {
  long code = 0;
  curl_check(curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &code),
             "curl_easy_getinfo(RESPONSE_CODE)");
  return code;
}

std::string Transfer::header(const std::string& name) const {
  const auto it = response_headers_.find(name);
  return it == response_headers_.end() ? std::string() : it->second;
}

// libcurl's callbacks are C: an exception must not cross them. Each one
// keeps what it throws for Multi::step to rethrow, and fails the transfer.
std::size_t Transfer::on_write(char* data, std::size_t size, std::size_t n, void* self) {
  auto& t = *static_cast<Transfer*>(self);
  const std::size_t bytes = size * n;
  try {
    t.body_bytes_ += bytes;
    const long code = t.status();
    if (code / 100 == 2 && t.on_body_) {
      if (t.body_bytes_ == bytes) {  // the first chunk: the headers are all in
        const std::string length = t.header("content-length");
        t.content_length_ = length.empty() ? 0 : std::strtoull(length.c_str(), nullptr, 10);
      }
      if (!t.on_body_(data, bytes)) {
        t.stopped_ = true;
        return CURL_WRITEFUNC_ERROR;
      }
      if (t.content_length_ != 0) {
        t.set_watermark(t.content_length_ > t.body_bytes_ ? t.content_length_ - t.body_bytes_ : 0);
      }
    } else if (code / 100 == 2 || t.body_.size() < (64u << 10)) {
      t.body_.append(data, bytes);  // error bodies: only their start matters
    }
    return bytes;
  } catch (...) {
    t.callback_error_ = std::current_exception();
    return CURL_WRITEFUNC_ERROR;
  }
}

std::size_t Transfer::on_header(char* data, std::size_t size, std::size_t n, void* self) {
  auto& t = *static_cast<Transfer*>(self);
  try {
    const std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) t.response_headers_.clear();  // a new response (100, redirect)
    const std::size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string name(trim(line.substr(0, colon)));
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      t.response_headers_[name] = trim(line.substr(colon + 1));
    }
    return size * n;
  } catch (...) {
    t.callback_error_ = std::current_exception();
    return 0;  // != size * n: curl fails the transfer
  }
}

std::size_t Transfer::on_read(char* data, std::size_t size, std::size_t n, void* self) {
  auto& t = *static_cast<Transfer*>(self);
  const std::size_t bytes = std::min(size * n, t.request_.body.size() - t.sent_);
  std::memcpy(data, t.request_.body.data() + t.sent_, bytes);
  t.sent_ += bytes;
  return bytes;
}

// A server that writes a body in small pieces (s3rver: 64 KiB) wakes the
// reading thread for each one, and on a busy machine each wakeup may
// preempt the server itself. In bench/loader's S3 part (16 reader threads,
// each polling its own connection, against `curl --parallel`'s one
// thread), s3rver's main thread was preempted about twice as often under
// xpscale (12.6-14.2 K against 6.9-7.3 K involuntary switches per 512 MiB)
// and perf counted 44% more samples on it, mostly in context switches.
// SO_RCVLOWAT makes the kernel wake the reader (and poll report the socket
// readable) only once kReadChunk bytes are in, so each wakeup reads a full
// buffer: 4x fewer reads, polls and client context switches. As the body
// nears its end the mark drops to the bytes still to come (never above
// them, so the last bytes never wait), and to 1 when it is done, so the
// connection is left as found for the next request's headers (Multi also
// resets it when a transfer takes a connection). Linux wakes the reader
// below the mark under memory pressure and at EOF, so neither a small
// receive buffer nor a server that closes early can stall it; one that
// stalls meets the stall timeout, as without the mark.
void Transfer::set_watermark(std::uint64_t remaining) {
  const int want = static_cast<int>(std::clamp<std::uint64_t>(remaining, 1, kReadChunk));
  if (want == watermark_) return;
  if (socket_ == CURL_SOCKET_BAD) return;
  // A failure only costs the wakeups the mark saves.
  if (setsockopt(socket_, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof want) == 0) watermark_ = want;
}

Multi::Multi() {
  global_init();
  multi_ = curl_multi_init();
  if (multi_ == nullptr) throw ShardingError("libcurl: curl_multi_init failed");
  curl_check(curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Multi::on_socket),
             "curl_multi_setopt(SOCKETFUNCTION)");
  curl_check(curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this),
             "curl_multi_setopt(SOCKETDATA)");
  curl_check(curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Multi::on_timer),
             "curl_multi_setopt(TIMERFUNCTION)");
  curl_check(curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this), "curl_multi_setopt(TIMERDATA)");
}

Multi::~Multi() {
  for (const auto& [easy, transfer] : active_) curl_multi_remove_handle(multi_, easy);
  curl_multi_cleanup(multi_);
}

void Multi::add(Transfer& transfer) {
  curl_check(curl_easy_setopt(transfer.handle(), CURLOPT_PRIVATE, &transfer),
             "curl_easy_setopt(PRIVATE)");
  curl_check(curl_multi_add_handle(multi_, transfer.handle()), "curl_multi_add_handle");
  active_[transfer.handle()] = &transfer;
}

void Multi::remove(Transfer& transfer) {
  if (active_.erase(transfer.handle()) == 0) return;
  curl_check(curl_multi_remove_handle(multi_, transfer.handle()), "curl_multi_remove_handle");
  transfer.socket_ = CURL_SOCKET_BAD;
}

int Multi::on_socket(CURL* easy, curl_socket_t fd, int what, void* self, void*) {
  auto& m = *static_cast<Multi*>(self);
  Transfer* t = nullptr;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, &t);
  if (what == CURL_POLL_REMOVE) {
    m.sockets_.erase(fd);
    if (t != nullptr && t->socket_ == fd) t->socket_ = CURL_SOCKET_BAD;
  } else {
    m.sockets_[fd] = what;
    if (t != nullptr && t->socket_ != fd) {
      // A transfer taking a connection: headers come first and are short.
      // (A transfer that ends with a raised mark leaves its connection
      // closed, as it ends mid-body; this makes sure.)
      t->socket_ = fd;
      t->watermark_ = 0;
      t->set_watermark(0);
    }
  }
  return 0;
}

int Multi::on_timer(CURLM*, long timeout_ms, void* self) {
  auto& m = *static_cast<Multi*>(self);
  if (timeout_ms < 0) {
    m.deadline_.reset();
  } else {
    m.deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  }
  return 0;
}

void Multi::act(curl_socket_t fd, int events) {
  curl_check(curl_multi_socket_action(multi_, fd, events, &running_),
             "curl_multi_socket_action");
}

std::vector<Transfer*> Multi::step(std::chrono::milliseconds wait) {
  using Clock = std::chrono::steady_clock;
  const auto now = Clock::now();
  if (deadline_ && *deadline_ <= now) {
    deadline_.reset();
    act(CURL_SOCKET_TIMEOUT, 0);
  } else {
    auto until = now + wait;
    if (deadline_) until = std::min(until, *deadline_);
    std::vector<pollfd> fds;
    fds.reserve(sockets_.size());
    for (const auto& [fd, what] : sockets_) {
      const short events = static_cast<short>(((what & CURL_POLL_IN) != 0 ? POLLIN : 0) |
                                              ((what & CURL_POLL_OUT) != 0 ? POLLOUT : 0));
      fds.push_back({fd, events, 0});
    }
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long>(ms, 0)));
    if (ready < 0 && errno != EINTR) {
      throw ShardingError(std::string("poll failed: ") + std::strerror(errno));
    }
    if (ready > 0) {
      for (const pollfd& p : fds) {
        if (p.revents == 0) continue;
        const int events = ((p.revents & (POLLIN | POLLHUP)) != 0 ? CURL_CSELECT_IN : 0) |
                           ((p.revents & POLLOUT) != 0 ? CURL_CSELECT_OUT : 0) |
                           ((p.revents & (POLLERR | POLLNVAL)) != 0 ? CURL_CSELECT_ERR : 0);
        act(p.fd, events);
      }
    }
    if (deadline_ && *deadline_ <= Clock::now()) {
      deadline_.reset();
      act(CURL_SOCKET_TIMEOUT, 0);
    }
  }
  std::vector<Transfer*> done;
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* t = active_.at(msg->easy_handle);
    t->set_result(msg->data.result);
    remove(*t);
    if (t->callback_error_) std::rethrow_exception(t->callback_error_);
    done.push_back(t);
  }
  return done;
}

}  // namespace xpscale::detail
