#include "retry_runner.h"

#include <algorithm>
#include <random>
#include <thread>

#include "s3_xml.h"
#include "xpscale/sharding/error.h"

namespace xpscale::detail {

namespace {

using Clock = std::chrono::steady_clock;

bool transient_curl_code(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
      return true;
    default:
      return false;
  }
}

struct Slot {
  int attempts = 0;
  Clock::time_point first_start{};
  Clock::time_point next_start{};
  bool running = false;
  bool done = false;
};

class Backoff {
 public:
  explicit Backoff(const RetryPolicy& policy)
      : policy_(policy), rng_(policy.seed != 0 ? policy.seed : std::random_device{}()) {}

  // Full jitter: uniform(0, min(max_delay, base_delay * 2^(attempt-1))).
  std::chrono::milliseconds delay(int attempt) {
    const auto cap = std::min<std::int64_t>(
        policy_.max_delay.count(), policy_.base_delay.count() << std::min(attempt - 1, 30));
    std::uniform_int_distribution<std::int64_t> pick(0, std::max<std::int64_t>(cap, 0));
    return std::chrono::milliseconds(pick(rng_));
  }

 private:
  const RetryPolicy& policy_;
  std::mt19937_64 rng_;
};

// The scheme of the first URL in `name` ("gs" for "PUT gs://b/k part 2"),
// not of a "://" further on inside an object key.
std::string_view scheme_named(std::string_view name) {
  const std::size_t colon = name.find("://");
  if (colon == std::string_view::npos) return {};
  const std::size_t space = name.find_last_of(' ', colon);
  const std::size_t start = space == std::string_view::npos ? 0 : space + 1;
  return name.substr(start, colon - start);
}

}  // namespace

std::string transient_fault(const Transfer& t) {
  if (t.result() != CURLE_OK && !t.stopped_by_sink()) {
    if (!transient_curl_code(t.result())) return "";
    return "curl error " + std::to_string(t.result()) + ": " + t.curl_message();
  }
  const long status = t.status();
  if (status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
      status == 504) {
    const S3ErrorDoc doc = parse_s3_error(t.body());
    return "HTTP " + std::to_string(status) + (doc.code.empty() ? "" : " " + doc.code);
  }
  return "";
}

void throw_http_error(const Transfer& t, const std::string& url) {
  if (t.result() != CURLE_OK) {
    throw ShardingError(url + ": " + t.request().method + " failed: curl error " +
                        std::to_string(t.result()) + " (" + t.curl_message() + ")");
  }
  const long status = t.status();
  const S3ErrorDoc doc = parse_s3_error(t.body());
  std::string detail = doc.code.empty() ? "" : " " + doc.code;
  if (!doc.message.empty()) detail += ": " + doc.message;
  std::string what;
  switch (status) {
    case 404:
      what = "no such object (HTTP 404" + detail + ")";
      break;
    case 401:
    case 403:
      what = std::string(status == 401 ? "not authenticated" : "access denied") + " (HTTP " +
             std::to_string(status) + detail + "); check the credentials (" +
             (scheme_named(url) == "gs" ? "GOOGLE_ACCESS_KEY_ID, gs_access_key_id in "
                                          "~/.boto, or GOOGLE_APPLICATION_CREDENTIALS"
                                        : "AWS_ACCESS_KEY_ID, AWS_PROFILE") +
             ") and the bucket's policy";
      break;
    case 412:
      what =
          "the object changed during the read: its ETag no longer matches (HTTP 412" + detail + ")";
      break;
    default:
      what = t.request().method + " answered HTTP " + std::to_string(status) + detail;
  }
  if (status == 404) throw ObjectNotFound(url + ": " + what);
  throw ShardingError(url + ": " + what);
}

namespace {

void run_jobs_made(std::vector<Job*>& jobs, const std::function<Job*()>& make,
                   const std::function<bool()>& made_all,
                   const std::function<std::size_t()>& in_flight_now,
                   const std::function<std::size_t()>& lookahead_now, const CurlShare& share,
                   const RetryPolicy& policy, const std::function<bool(std::size_t)>& on_done) {
  std::vector<Slot> slots(jobs.size());
  std::map<Transfer*, std::size_t> running;
  Multi multi;
  Backoff backoff(policy);
  std::size_t first_open = 0;  // jobs before it are all done

  while (first_open < jobs.size() || !made_all()) {
    const auto now = Clock::now();
    auto next_wake = now + std::chrono::milliseconds(200);
    const std::size_t in_flight = std::max<std::size_t>(in_flight_now(), 1);
    const std::size_t lookahead = std::max(lookahead_now(), in_flight);
    for (std::size_t i = first_open; i < first_open + lookahead && running.size() < in_flight;
         ++i) {
      if (i == jobs.size()) {
        Job* next = made_all() ? nullptr : make();
        if (next == nullptr) break;
        jobs.push_back(next);
        slots.emplace_back();
      }
      Slot& s = slots[i];
      if (s.done || s.running) continue;
      if (s.next_start > now) {
        next_wake = std::min(next_wake, s.next_start);
        continue;
      }
      if (s.attempts == 0) s.first_start = now;
      ++s.attempts;
      jobs[i]->transfer = jobs[i]->start(share, policy);
      multi.add(*jobs[i]->transfer);
      running[jobs[i]->transfer.get()] = i;
      s.running = true;
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_wake - now);
    if (running.empty()) {
      std::this_thread::sleep_for(wait);
      continue;
    }
    for (Transfer* t : multi.step(std::max(wait, std::chrono::milliseconds(1)))) {
      const std::size_t i = running.at(t);
      running.erase(t);
      Slot& s = slots[i];
      s.running = false;
      const std::string fault = jobs[i]->finish();
      if (fault.empty()) {
        s.done = true;
        if (!on_done(i)) return;
        continue;
      }
      const auto delay = backoff.delay(s.attempts);
      const auto start = Clock::now() + delay;
      if (s.attempts >= policy.max_attempts || start - s.first_start > policy.max_total) {
        throw ShardingError(jobs[i]->what() + ": gave up after " + std::to_string(s.attempts) +
                            " attempts: " + fault);
      }
      s.next_start = start;
    }
    while (first_open < jobs.size() && slots[first_open].done) ++first_open;
  }
}

}  // namespace

void run_jobs(const std::vector<Job*>& jobs, std::size_t in_flight, std::size_t lookahead,
              const CurlShare& share, const RetryPolicy& policy,
              const std::function<bool(std::size_t)>& on_done) {
  std::vector<Job*> all = jobs;
  run_jobs_made(
      all, [] { return nullptr; }, [] { return true; }, [&] { return in_flight; },
      [&] { return lookahead; }, share, policy, on_done);
}

void run_jobs(std::vector<Job*>& jobs, const std::function<Job*()>& make,
              const std::function<bool()>& done, const std::function<std::size_t()>& in_flight,
              const CurlShare& share, const RetryPolicy& policy,
              const std::function<bool(std::size_t)>& on_done) {
  run_jobs_made(
      jobs, make, done, in_flight, [&] { return 2 * in_flight(); }, share, policy, on_done);
}

namespace {

class SingleJob : public Job {
 public:
  SingleJob(const std::function<Request()>& build, std::string what)
      : build_(build), what_(std::move(what)) {}
  std::unique_ptr<Transfer> start(const CurlShare& share, const RetryPolicy& policy) override {
    return std::make_unique<Transfer>(share, build_(), policy);
  }
  std::string finish() override { return transient_fault(*transfer); }
  std::string what() const override { return what_; }

 private:
  const std::function<Request()>& build_;
  std::string what_;
};

}  // namespace

std::unique_ptr<Transfer> perform(const CurlShare& share, const RetryPolicy& policy,
                                  const std::function<Request()>& build, const std::string& what) {
  SingleJob job(build, what);
  run_jobs({&job}, 1, 1, share, policy, [](std::size_t) { return true; });
  return std::move(job.transfer);
}

}  // namespace xpscale::detail
