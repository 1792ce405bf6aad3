#pragma once
// A dataset's manifest (written by `xpscale shard`), JSON:
//   {"format": "xpscale.manifest/1", "digest": "<hex>", "samples": 60000,
//    "shards": [{"url": "train-000000.tar", "index": "train-000000.tar.idx",
//                "samples": 3750, "size": 4331520, "sha256": "<hex>"}, ...]}
// Relative URLs are relative to the manifest's own location, so a
// directory of shards can be copied or uploaded as a whole.
//
// The digest identifies the data, not where it lives: it is the sha256 of
// one line "<file name>\t<samples>\t<size>\n" per shard, in order. The
// loader derives its sample order from it (see epoch_plan.h).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace xpscale {

struct ShardInfo {
  std::string url;        // as written (may be relative)
  std::string index_url;  // "" = url + ".idx"
  std::uint64_t samples = 0;
  std::uint64_t size = 0;
  std::string sha256;  // lower-case hex; "" when unknown
};

struct Manifest {
  std::vector<ShardInfo> shards;
  std::string digest;
  std::uint64_t samples() const;
};

std::string sha256_of(std::string_view bytes);
std::string dataset_digest(const std::vector<ShardInfo>& shards);

std::string manifest_to_json(const Manifest& manifest);
// Parses a manifest read from `url` and resolves relative shard URLs
// against it. Throws ShardingError naming the URL and the field for bad
// JSON, missing or mistyped fields, or a digest that does not match.
Manifest manifest_from_json(std::string_view text, const std::string& url);

// `relative` resolved against the directory of `base` (absolute URLs and
// paths are returned as they are).
std::string resolve_url(const std::string& base, const std::string& relative);

}  // namespace xpscale
