#pragma once
// libcurl, wrapped once: the checking helper, the connection cache a Source
// shares across threads, one HTTP exchange (Transfer) and a set of them run
// concurrently (Multi). Internal to the sharding library.
#include <curl/curl.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xpscale/sharding/s3.h"

namespace xpscale::detail {

// The one checking helper for libcurl: throws ShardingError naming the call,
// the code and curl's own message when code is not OK.
void curl_check(CURLcode code, const char* call);
void curl_check(CURLMcode code, const char* call);
void curl_check(CURLSHcode code, const char* call);

// Connections, DNS answers and TLS sessions shared by every transfer of a
// Source, so that consecutive reads reuse warm connections. Thread-safe
// (libcurl calls the lock functions).
class CurlShare {
 public:
  CurlShare();
  ~CurlShare();
  CurlShare(const CurlShare&) = delete;
  CurlShare& operator=(const CurlShare&) = delete;
  CURLSH* get() const { return share_; }

 private:
  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* self);
  static void unlock(CURL*, curl_lock_data data, void* self);
  CURLSH* share_ = nullptr;
  std::mutex mutexes_[CURL_LOCK_DATA_LAST];
};

struct Request {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string_view body;             // sent by PUT and POST; must outlive the transfer
};

// One HTTP exchange on its own easy handle. A 2xx body goes to `on_body`
// when given (returning false stops the transfer), else to body(); any
// other status's body is kept in body() for the error message.
class Transfer {
 public:
  using BodySink = std::function<bool(const char*, std::size_t)>;
  Transfer(const CurlShare& share, Request request, const RetryPolicy& policy,
           BodySink on_body = {});
  ~Transfer();
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  CURL* handle() const { return easy_; }
  const Request& request() const { return request_; }
  void set_result(CURLcode code) { result_ = code; }

  CURLcode result() const { return result_; }
  std::string curl_message() const;  // curl's error text for result()
  long status() const;               // 0 when no response came
  const std::string& body() const { return body_; }
  std::uint64_t body_bytes() const { return body_bytes_; }
  bool stopped_by_sink() const { return stopped_; }
  // A response header's value ("" when absent); name in lower case.
  std::string header(const std::string& name) const;

 private:
  static std::size_t on_write(char* data, std::size_t size, std::size_t n, void* self);
  static std::size_t on_header(char* data, std::size_t size, std::size_t n, void* self);
  static std::size_t on_read(char* data, std::size_t size, std::size_t n, void* self);
  // Raises the socket's receive low-water mark while a long body streams
  // in, and lowers it as the body nears its end (see on_write).
  void set_watermark(std::uint64_t remaining);

  Request request_;
  BodySink on_body_;
  CURL* easy_ = nullptr;
  curl_slist* headers_ = nullptr;
  std::size_t sent_ = 0;
  CURLcode result_ = CURLE_OK;
  std::string body_;
  std::uint64_t body_bytes_ = 0;
  bool stopped_ = false;
  std::uint64_t content_length_ = 0;  // of the 2xx response; 0 when unknown
  curl_socket_t socket_ = CURL_SOCKET_BAD;  // this transfer's connection (Multi sets it)
  int watermark_ = 1;                       // the socket's SO_RCVLOWAT as last set
  std::map<std::string, std::string> response_headers_;
  std::exception_ptr callback_error_;  // thrown inside a callback; Multi::step rethrows
  char error_[CURL_ERROR_SIZE] = {};
  friend class Multi;
};

// Runs transfers concurrently on one multi handle (one thread). It waits
// on the sockets itself and tells curl which are ready
// (curl_multi_socket_action) rather than curl_multi_perform/poll: curl then
// names each transfer's socket (Transfer::set_watermark needs it; with a
// CurlShare, CURLINFO_ACTIVESOCKET cannot find it), and it skips the
// zero-timeout poll curl_multi_perform makes per transfer per call.
class Multi {
 public:
  Multi();
  ~Multi();
  Multi(const Multi&) = delete;
  Multi& operator=(const Multi&) = delete;

  void add(Transfer& transfer);
  void remove(Transfer& transfer);
  // Drives the transfers for at most `wait` and returns those that finished
  // (their result() set); they are removed from the multi handle.
  std::vector<Transfer*> step(std::chrono::milliseconds wait);

 private:
  static int on_socket(CURL* easy, curl_socket_t fd, int what, void* self, void*);
  static int on_timer(CURLM*, long timeout_ms, void* self);
  void act(curl_socket_t fd, int events);

  CURLM* multi_ = nullptr;
  std::map<CURL*, Transfer*> active_;
  std::map<curl_socket_t, int> sockets_;  // what curl waits for: CURL_POLL_IN/OUT/INOUT
  // When curl wants CURL_SOCKET_TIMEOUT; nullopt when it wants no timer.
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  int running_ = 0;
};

}  // namespace xpscale::detail
