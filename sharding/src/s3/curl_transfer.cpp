#include "curl_transfer.h"

#include <algorithm>
#include <cctype>
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
  setopt(easy_, CURLOPT_BUFFERSIZE, 256L << 10, "curl_easy_setopt(BUFFERSIZE)");
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
      if (!t.on_body_(data, bytes)) {
        t.stopped_ = true;
        return CURL_WRITEFUNC_ERROR;
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

Multi::Multi() {
  global_init();
  multi_ = curl_multi_init();
  if (multi_ == nullptr) throw ShardingError("libcurl: curl_multi_init failed");
}

Multi::~Multi() {
  for (const auto& [easy, transfer] : active_) curl_multi_remove_handle(multi_, easy);
  curl_multi_cleanup(multi_);
}

void Multi::add(Transfer& transfer) {
  curl_check(curl_multi_add_handle(multi_, transfer.handle()), "curl_multi_add_handle");
  active_[transfer.handle()] = &transfer;
}

void Multi::remove(Transfer& transfer) {
  if (active_.erase(transfer.handle()) == 0) return;
  curl_check(curl_multi_remove_handle(multi_, transfer.handle()), "curl_multi_remove_handle");
}

std::vector<Transfer*> Multi::step(std::chrono::milliseconds wait) {
  int running = 0;
  curl_check(curl_multi_perform(multi_, &running), "curl_multi_perform");
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
  if (done.empty() && running > 0) {
    curl_check(curl_multi_poll(multi_, nullptr, 0, static_cast<int>(wait.count()), nullptr),
               "curl_multi_poll");
  }
  return done;
}

}  // namespace xpscale::detail
