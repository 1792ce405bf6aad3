#include "ranged_read.h"

#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <vector>

#include "prefetcher.h"  // PieceBytes (sharding/src)
#include "retry_runner.h"
#include "xpscale/sharding/error.h"

namespace xpscale::detail {

namespace {

std::string range_text(std::uint64_t begin, std::uint64_t end) {
  return "bytes " + std::to_string(begin) + "-" + std::to_string(end - 1);
}

// A part's bytes, held until the part becomes the head. Its memory comes
// from PieceBytes::allocate: parts are MiB-sized, and 2 MiB-aligned memory
// with transparent huge pages faults once per 2 MiB on first touch instead
// of once per 4 KiB. With std::string buffers, page faults in the copy
// into them were 15% of bench/loader's S3 client profile.
class PartBuffer {
 public:
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return bytes_.capacity; }
  const char* data() const { return bytes_.data.get(); }
  void clear() { size_ = 0; }
  // Room for `capacity` bytes; what it holds is dropped.
  void reserve(std::size_t capacity) {
    if (capacity > bytes_.capacity) bytes_ = PieceBytes::allocate(capacity);
    size_ = 0;
  }
  // The caller reserved room first (a part never receives more than its length).
  void append(const char* data, std::size_t size) {
    std::memcpy(bytes_.data.get() + size_, data, size);
    size_ += size;
  }

 private:
  PieceBytes bytes_;
  std::size_t size_ = 0;
};

// Part buffers for reuse by the reads of this thread. Fresh multi-MiB
// buffers cost a page fault per 4 KiB (2 MiB here) on first touch (glibc
// hands big blocks back to the kernel on free), which measured as a third
// of the client's CPU time in bench/loader; kept buffers are bounded in
// count.
class BufferCache {
 public:
  static constexpr std::size_t kMaxKept = 4;
  PartBuffer take(std::size_t capacity) {
    for (auto it = kept_.begin(); it != kept_.end(); ++it) {
      if (it->capacity() >= capacity) {
        PartBuffer out = std::move(*it);
        kept_.erase(it);
        return out;
      }
    }
    PartBuffer out;
    out.reserve(capacity);
    return out;
  }
  void give(PartBuffer&& buffer) {
    buffer.clear();
    if (kept_.size() < kMaxKept) kept_.push_back(std::move(buffer));
  }

 private:
  std::vector<PartBuffer> kept_;
};

thread_local BufferCache buffer_cache;

// Where a read's bytes go. The part at `head` (every part before it has
// been delivered) streams straight into the sink; later parts buffer until
// they become the head, so bytes reach the sink in order and most of them
// without a copy.
struct Delivery {
  const ByteSink& sink;
  std::size_t head = 0;
  bool stopped = false;           // the sink returned false
  std::exception_ptr sink_error;  // the sink threw (inside a curl callback)

  // Hands bytes to the sink; false when it stopped or threw.
  bool give(const char* data, std::size_t size) {
    try {
      if (sink(data, size)) return true;
      stopped = true;
    } catch (...) {
      sink_error = std::current_exception();
    }
    return false;
  }
};

// One part [begin, end): keeps count of what it has received across
// attempts (delivered to the sink, or buffered), so a retry resumes at the
// first missing byte.
class PartJob : public Job {
 public:
  PartJob(const RangeRequest& build, const std::string& url, const std::string& etag,
          Delivery& delivery, std::size_t index, std::uint64_t begin, std::uint64_t end)
      : build_(build),
        url_(url),
        etag_(etag),
        delivery_(delivery),
        index_(index),
        begin_(begin),
        end_(end) {}

  std::unique_ptr<Transfer> start(const CurlShare& share, const RetryPolicy& policy) override {
    attempt_first_ = begin_ + received();
    checked_ = false;
    return std::make_unique<Transfer>(
        share, build_(attempt_first_, end_ - 1), policy,
        [this](const char* data, std::size_t size) { return take(data, size); });
  }

  std::string finish() override {
    if (delivery_.sink_error) std::rethrow_exception(delivery_.sink_error);
    if (delivery_.stopped) return "";
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
    if (received() < end_ - begin_) {
      return "short body: " + std::to_string(received()) + " of " + std::to_string(end_ - begin_) +
             " bytes";
    }
    return "";
  }

  std::string what() const override { return "GET " + url_ + " " + range_text(begin_, end_); }

  // Whether bytes of this part have come (in any attempt).
  bool answered() const { return received() > 0; }

  // Gives the sink what this part has buffered (it has become the head);
  // later bytes stream straight through. False when the sink stopped.
  bool flush() {
    if (buffer_.empty()) return true;
    const bool ok = delivery_.give(buffer_.data(), buffer_.size());
    delivered_ += buffer_.size();
    buffer_cache.give(std::move(buffer_));
    buffer_ = PartBuffer();
    return ok;
  }

 private:
  std::uint64_t received() const { return delivered_ + buffer_.size(); }

  // Takes a 2xx body chunk (from inside curl: must not throw).
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
    if (received() + size > end_ - begin_) {
      overflow_ = true;
      return false;
    }
    if (delivery_.head == index_ && buffer_.empty()) {
      delivered_ += size;
      return delivery_.give(data, size);
    }
    const std::uint64_t missing = end_ - begin_ - received();
    if (buffer_.empty() && buffer_.capacity() < missing) buffer_ = buffer_cache.take(missing);
    buffer_.append(data, size);
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
  Delivery& delivery_;
  std::size_t index_;
  std::uint64_t begin_;
  std::uint64_t end_;
  std::uint64_t attempt_first_ = 0;
  std::uint64_t delivered_ = 0;
  PartBuffer buffer_;
  bool checked_ = false;
  bool overflow_ = false;
  bool range_mismatch_ = false;
  bool etag_changed_ = false;
};

}  // namespace

std::string range_value(std::uint64_t first, std::uint64_t last, std::uint64_t size) {
  if (first == 0 && last + 1 == size) return "";
  return "bytes=" + std::to_string(first) + "-" + std::to_string(last);
}

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

ReadBudget::Lease::Lease(ReadBudget& budget, unsigned max_parallel)
    : budget_(budget), max_parallel_(max_parallel) {
  ++budget_.active_;
}

unsigned ReadBudget::Lease::in_flight() const {
  return std::max(1u, max_parallel_ / std::max(1u, budget_.active_.load()));
}

ReadBudget::Lease::~Lease() { --budget_.active_; }

void read_ranges(const CurlShare& share, ReadBudget& budget, const TransferOptions& options,
                 const std::string& url, const std::string& etag, std::uint64_t begin,
                 std::uint64_t end, const RangeRequest& build, const ByteSink& sink) {
  const ReadBudget::Lease lease(budget, options.max_parallel);
  const std::uint64_t part_size = std::max<std::uint64_t>(options.part_size, 1);
  Delivery delivery{sink, 0, false, nullptr};
  std::vector<std::unique_ptr<PartJob>> parts;
  std::vector<bool> finished;  // parts finish in any order
  std::uint64_t next = begin;  // the first byte no part covers yet
  // Parts are cut as they start, each by the budget at that time: with one
  // part in flight, the rest of the range is one GET (it still resumes at
  // the first missing byte after a fault). No second part starts before
  // the first one's bytes begin to arrive: readers that start together
  // (bench/loader's 16, a loader's prefetch threads) have all taken their
  // share of the budget by then. Cut at their start, the first of 16 such
  // readers split its object into 4 parts and the next three theirs (28
  // GETs for 16 objects), which cost s3rver's main thread ~9% more CPU
  // per byte than one GET per object.
  const auto make = [&]() -> Job* {
    if (!parts.empty() && !finished.front() && !parts.front()->answered()) return nullptr;
    const std::uint64_t size =
        lease.in_flight() == 1 ? end - next : std::min(part_size, end - next);
    parts.push_back(
        std::make_unique<PartJob>(build, url, etag, delivery, parts.size(), next, next + size));
    finished.push_back(false);
    next += size;
    return parts.back().get();
  };
  std::vector<Job*> jobs;
  // As the head finishes, the next unfinished part becomes the head and
  // hands over what it has buffered so far. Up to the budget's parts are
  // in flight, and as many again may wait, buffered, behind a slow head,
  // so one slow part does not idle the others.
  run_jobs(
      jobs, make, [&] { return next == end; }, [&] { return std::size_t{lease.in_flight()}; },
      share, options.retry, [&](std::size_t i) {
        finished[i] = true;
        if (delivery.stopped) return false;
        while (delivery.head < parts.size() && finished[delivery.head]) {
          if (!parts[delivery.head]->flush()) return false;
          ++delivery.head;
        }
        return delivery.head == parts.size() || parts[delivery.head]->flush();
      });
  if (delivery.sink_error) std::rethrow_exception(delivery.sink_error);
}

}  // namespace xpscale::detail
