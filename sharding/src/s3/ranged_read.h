#pragma once
// Reads a byte range of an HTTP object as parallel ranged GETs, delivered
// in order; shared by the S3 and HTTP Sources. Internal.
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "curl_transfer.h"
#include "xpscale/sharding/source.h"

namespace xpscale::detail {

// Builds the GET for bytes [first, last] (inclusive, as in a Range header):
// URL, Range, If-Match and, for S3, the signature.
using RangeRequest = std::function<Request(std::uint64_t first, std::uint64_t last)>;

// Shares a Source's connections among its concurrent reads: while k reads
// run, each gets max(1, max_parallel / k) parts in flight, asked again as
// each part starts (a read that began alone gives up connections as others
// begin); at 1 it fetches the rest of its range as one streamed GET.
// Parallel parts only pay when one read alone cannot keep the connections
// busy; when several reads can, one GET per read makes the fewest requests
// and buffers nothing (in bench/loader, 4 objects x 4 parts of 8 MiB cost
// s3rver 4x the requests of 4 whole-object GETs, and clients a copy).
class ReadBudget {
 public:
  class Lease {
   public:
    explicit Lease(ReadBudget& budget, unsigned max_parallel);
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    unsigned in_flight() const;  // now

   private:
    ReadBudget& budget_;
    unsigned max_parallel_;
  };

 private:
  std::atomic<unsigned> active_{0};
};

// Delivers bytes [begin, end) of the object named `url` (for messages) to
// sink, in order, fetching parts of options.part_size bytes with up to
// options.max_parallel in flight (fewer under a shared budget, see above;
// the first part alone until its bytes begin). Each part is checked:
// 206 with the asked Content-Range (or 200 with the whole object), exactly its length, and the
// response's ETag equal to `etag` when both are known (so a replaced object is caught even by a
// server that ignores If-Match); a part cut short resumes where it stopped. Throws ShardingError
// naming the URL and the range.
void read_ranges(const CurlShare& share, ReadBudget& budget, const TransferOptions& options,
                 const std::string& url, const std::string& etag, std::uint64_t begin,
                 std::uint64_t end, const RangeRequest& build, const ByteSink& sink);

// The Range header's value for bytes [first, last] of an object of `size`
// bytes: "bytes=first-last", or "" for the whole object, which a plain GET
// fetches (servers answer it more cheaply: s3rver measurably so).
std::string range_value(std::uint64_t first, std::uint64_t last, std::uint64_t size);

// Resolves read()'s (offset, length) against the object's size: the end of
// the range, or ShardingError naming the URL when it passes the end.
std::uint64_t range_end(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length);

}  // namespace xpscale::detail
