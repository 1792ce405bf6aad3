#pragma once
// A dataset: its shards, each with its object info (size, ETag), its
// index and sample count, and the dataset's digest.
//
// Declared as exactly one of
//   manifest  the URL of a manifest written by `xpscale shard`;
//   urls      shard URLs;
//   pattern   a brace pattern of shard URLs (brace.h);
//   prefix    every "*.tar", "*.tar.gz" and "*.tgz" object under a prefix
//             (Source::list).
// Shards may be gzip-compressed (.tar.gz, .tgz: each is decompressed once
// per process into a temporary file, see gzip_source.cpp).
// Shards of a manifest use the index it names; other shards use their
// "<url>.idx" sidecar when there is one and are read once to build their
// index otherwise (a full read at start: write sidecars with `xpscale
// shard` for large data).
#include <cstdint>
#include <string>
#include <vector>

#include "xpscale/sharding/manifest.h"
#include "xpscale/sharding/shard_index.h"
#include "xpscale/sharding/source.h"

namespace xpscale {

struct DatasetLocation {
  std::string manifest = {};
  std::vector<std::string> urls = {};
  std::string pattern = {};
  std::string prefix = {};
};

struct DatasetShard {
  ObjectInfo object;
  ShardIndex index;
  std::string sha256;    // from the manifest; "" otherwise
  bool scanned = false;  // no index sidecar: the index was built by reading the shard
};

struct Dataset {
  std::vector<DatasetShard> shards;
  std::string digest;  // dataset_digest of the shards (manifest.h)
  std::uint64_t samples = 0;
};

// Resolves the spec, stats every shard and loads (or builds) its index.
// Throws ShardingError naming the URL for a missing shard, an index that
// disagrees with the manifest or the shard's size, or a spec with not
// exactly one way of naming the shards, or no shards.
Dataset open_dataset(const DatasetLocation& spec);

// The whole object at `url`, read through its Source.
std::string read_object(const std::string& url);

}  // namespace xpscale
