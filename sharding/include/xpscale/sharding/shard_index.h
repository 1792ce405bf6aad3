#pragma once
// The index sidecar of a shard ("<shard>.idx"): where each sample starts,
// so that a loader reads any run of samples with one ranged read and
// resumes mid-shard without reading what comes before.
//
// Format (little endian): the 8 bytes "XPSIDX1\n", a u64 sample count n,
// then n + 1 u64 offsets: offsets[i] is the byte offset of the first tar
// header of sample i (pax records included), offsets[n] the end of the
// last sample (where the end-of-archive blocks start).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "xpscale/sharding/source.h"

namespace xpscale {

struct ShardIndex {
  std::vector<std::uint64_t> offsets;  // samples() + 1 entries

  std::uint64_t samples() const { return offsets.empty() ? 0 : offsets.size() - 1; }
  std::uint64_t begin(std::uint64_t sample) const { return offsets[sample]; }
  std::uint64_t end(std::uint64_t sample) const { return offsets[sample + 1]; }
};

std::string index_url_for(const std::string& shard_url);  // shard_url + ".idx"

std::string encode_index(const ShardIndex& index);
// Throws ShardingError naming `url` for a bad magic, a wrong length or
// offsets that are not increasing multiples of 512.
ShardIndex decode_index(std::string_view bytes, const std::string& url);

// Builds the index of a tar stream in memory (the shard writer).
ShardIndex index_tar(std::string_view tar_bytes, const std::string& url);
// Builds it by streaming the whole shard from its Source (a shard without
// a sidecar). Throws what the tar parser throws.
ShardIndex scan_shard(Source& source, const ObjectInfo& shard);

}  // namespace xpscale
