#pragma once
// Writing a dataset as WebDataset shards: N tar shards, an index sidecar
// per shard and a manifest (manifest.h), put through the Source of each
// destination (file:// directory, s3:// prefix, ...).
//
// Objects written under each destination prefix D:
//   D/<name>-000000.tar, D/<name>-000000.tar.idx, ..., D/<name>.manifest.json
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "xpscale/sharding/manifest.h"
#include "xpscale/sharding/tar.h"

namespace xpscale {

// Adds sample `i` (its files, "<key>.<ext>") to a shard.
using SampleWriter = std::function<void(std::uint64_t i, TarWriter& tar)>;

struct ShardWriteOptions {
  std::string name = "data";              // file name stem
  std::uint64_t shards = 1;               // at most `samples` shards
  std::vector<std::string> destinations;  // URL prefixes; each gets every object
};

// Writes samples [0, samples) in order, split into contiguous shards of
// equal size (±1), and returns the manifest (shard URLs relative to it).
// A shard is built in memory and put whole; the manifest is put last, so
// a destination with a manifest has all its shards. Throws ShardingError
// (bad options, or what the Sources throw).
Manifest write_shards(std::uint64_t samples, const SampleWriter& write,
                      const ShardWriteOptions& options);

// prefix + "/" + name, without doubling a '/'.
std::string join_url(const std::string& prefix, std::string_view name);

}  // namespace xpscale
