#pragma once
// Runs HTTP requests to completion with retries: each Job builds a fresh
// (re-signed) attempt, judges the answer, and is retried after a
// full-jitter exponential backoff while the fault is transient and the
// RetryPolicy's bounds allow. Internal to the sharding library.
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "curl_transfer.h"

namespace xpscale::detail {

class Job {
 public:
  virtual ~Job() = default;
  // A new attempt's transfer (called again for every retry).
  virtual std::unique_ptr<Transfer> start(const CurlShare& share, const RetryPolicy& policy) = 0;
  // Judges a finished attempt (the transfer is in `transfer`): "" when the
  // job is done, else why the attempt failed transiently (it is retried).
  // Throws ShardingError for a fault that retrying cannot fix.
  virtual std::string finish() = 0;
  // The request in words for error messages, e.g. "GET s3://b/k bytes 0-99".
  virtual std::string what() const = 0;

  std::unique_ptr<Transfer> transfer;  // the current or last attempt
};

// Why a finished attempt failed transiently ("" when it did not): a
// refused, reset or timed-out connection, a short body, or HTTP 408, 429,
// 500, 502, 503 or 504 (S3's SlowDown is a 503).
std::string transient_fault(const Transfer& t);

// Throws ShardingError for a finished attempt whose status is not 2xx,
// naming `url` and, when the body is an S3 error document, its Code and
// Message: 404 "no such object", 403 "access denied", 412 "changed".
[[noreturn]] void throw_http_error(const Transfer& t, const std::string& url);

// Runs jobs, at most `in_flight` at a time, starting job i only once every
// job before i - lookahead has finished (so that a caller delivering
// results in order holds at most `lookahead` of them; lookahead >=
// in_flight). on_done(i) is called as job i finishes; returning false
// abandons the rest. Throws the first fatal error, or ShardingError naming
// the job and its last fault when a job runs out of attempts or time.
void run_jobs(const std::vector<Job*>& jobs, std::size_t in_flight, std::size_t lookahead,
              const CurlShare& share, const RetryPolicy& policy,
              const std::function<bool(std::size_t)>& on_done);

// The same for jobs made as they are needed: make() returns the next job,
// or nullptr when none may start yet (it is asked again after the next
// event); the run ends once done() is true and every job made has
// finished. `jobs` receives each job made, in order. in_flight() is asked
// before each start; lookahead is twice it.
void run_jobs(std::vector<Job*>& jobs, const std::function<Job*()>& make,
              const std::function<bool()>& done, const std::function<std::size_t()>& in_flight,
              const CurlShare& share, const RetryPolicy& policy,
              const std::function<bool(std::size_t)>& on_done);

// One request with retries; returns its last attempt (any status: the
// caller judges it with throw_http_error).
std::unique_ptr<Transfer> perform(const CurlShare& share, const RetryPolicy& policy,
                                  const std::function<Request()>& build, const std::string& what);

}  // namespace xpscale::detail
