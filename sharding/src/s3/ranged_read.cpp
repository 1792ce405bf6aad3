#include "ranged_read.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "retry_runner.h"
#include "xpscale/sharding/error.h"

namespace xpscale::detail {

namespace {

std::string range_text(std::uint64_t begin, std::uint64_t end) {
  return "bytes " + std::to_string(begin) + "-" + std::to_string(end - 1);
}

// One part [begin, end): keeps what it has received across attempts.
class PartJob : public Job {
 public:
  PartJob(const RangeRequest& build, const std::string& url, const std::string& etag,
          std::uint64_t begin, std::uint64_t end)
      : build_(build), url_(url), etag_(etag), begin_(begin), end_(end) {
    bytes_.reserve(end - begin);
  }

  std::unique_ptr<Transfer> start(const CurlShare& share, const RetryPolicy& policy) override {
    const std::uint64_t first = begin_ + bytes_.size();
    attempt_first_ = first;
    checked_ = false;
    return std::make_unique<Transfer>(
        share, build_(first, end_ - 1), policy,
        [this](const char* data, std::size_t size) { return take(data, size); });
  }

  std::string finish() override {
    if (overflow_) throw ShardingError(what() + ": the server sent more bytes than asked");
    if (etag_changed_) {
      throw ShardingError(url_ + ": the object changed during the read: ETag " + etag_ +
                          " became " + transfer->header("etag") + " (" + what() + ")");
    }
    if (range_mismatch_) {
      throw ShardingError(what() + ": the server answered HTTP " +
                          std::to_string(transfer->status()) + " with Content-Range \"" +
                          transfer->header("content-range") + "\", not the range asked");
    }
    const std::string fault = transient_fault(*transfer);
    if (!fault.empty()) return fault;
    if (transfer->result() != CURLE_OK || transfer->status() / 100 != 2) {
      throw_http_error(*transfer, url_ + " (" + what() + ")");
    }
    if (bytes_.size() < end_ - begin_) {
      return "short body: " + std::to_string(bytes_.size()) + " of " +
             std::to_string(end_ - begin_) + " bytes";
    }
    return "";
  }

  std::string what() const override { return "GET " + url_ + " " + range_text(begin_, end_); }
  std::string& bytes() { return bytes_; }

 private:
  // Accepts a 2xx body chunk; checks the answer covers what was asked.
  bool take(const char* data, std::size_t size) {
    if (!checked_) {
      checked_ = true;
      const std::string etag = transfer->header("etag");
      if (!etag_.empty() && !etag.empty() && etag != etag_) {
        etag_changed_ = true;
        return false;
      }
      if (!answers_request()) {
        range_mismatch_ = true;
        return false;
      }
    }
    if (bytes_.size() + size > end_ - begin_) {
      overflow_ = true;
      return false;
    }
    bytes_.append(data, size);
    return true;
  }

  bool answers_request() const {
    const long status = transfer->status();
    if (status == 206) {
      const std::string expect = "bytes " + std::to_string(attempt_first_) + "-";
      return transfer->header("content-range").starts_with(expect);
    }
    return status == 200 && attempt_first_ == 0;  // the whole object: size checked by take
  }

  const RangeRequest& build_;
  const std::string& url_;
  const std::string& etag_;
  std::uint64_t begin_;
  std::uint64_t end_;
  std::uint64_t attempt_first_ = 0;
  std::string bytes_;
  bool checked_ = false;
  bool overflow_ = false;
  bool range_mismatch_ = false;
  bool etag_changed_ = false;
};

}  // namespace

std::uint64_t range_end(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length) {
  if (offset > object.size) {
    throw ShardingError(object.url + ": read at offset " + std::to_string(offset) +
                        " is past the end of the object (" + std::to_string(object.size) +
                        " bytes)");
  }
  if (length == std::numeric_limits<std::uint64_t>::max()) return object.size;
  if (length > object.size - offset) {
    throw ShardingError(object.url + ": read of " + range_text(offset, offset + length) +
                        " passes the end of the object (" + std::to_string(object.size) +
                        " bytes)");
  }
  return offset + length;
}

void read_ranges(const CurlShare& share, const TransferOptions& options, const std::string& url,
                 const std::string& etag, std::uint64_t begin, std::uint64_t end,
                 const RangeRequest& build, const ByteSink& sink) {
  const std::uint64_t part = std::max<std::uint64_t>(options.part_size, 1);
  std::vector<std::unique_ptr<PartJob>> parts;
  std::vector<Job*> jobs;
  for (std::uint64_t at = begin; at < end; at += std::min(part, end - at)) {
    parts.push_back(std::make_unique<PartJob>(build, url, etag, at, std::min(end, at + part)));
    jobs.push_back(parts.back().get());
  }
  // Parts finish in any order; they go to the sink in order, each as soon
  // as every part before it has gone (run_jobs bounds how many wait).
  std::vector<bool> finished(parts.size(), false);
  std::size_t next = 0;
  run_jobs(jobs, options.max_parallel, share, options.retry, [&](std::size_t i) {
    finished[i] = true;
    for (; next < parts.size() && finished[next]; ++next) {
      std::string& bytes = parts[next]->bytes();
      if (!sink(bytes.data(), bytes.size())) return false;
      std::string().swap(bytes);  // free the part's memory now
    }
    return true;
  });
}

}  // namespace xpscale::detail
