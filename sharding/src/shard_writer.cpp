#include "xpscale/sharding/shard_writer.h"

#include <cstdio>

#include "xpscale/sharding/error.h"
#include "xpscale/sharding/shard_index.h"
#include "xpscale/sharding/source.h"

namespace xpscale {

std::string join_url(const std::string& prefix, std::string_view name) {
  if (prefix.empty()) return std::string(name);
  return prefix.ends_with('/') ? prefix + std::string(name) : prefix + "/" + std::string(name);
}

Manifest write_shards(std::uint64_t samples, const SampleWriter& write,
                      const ShardWriteOptions& options) {
  if (samples == 0) throw ShardingError("nothing to write: the input has no samples");
  if (options.shards == 0 || options.shards > samples)
    throw ShardingError("cannot split " + std::to_string(samples) + " samples into " +
                        std::to_string(options.shards) + " shards (need 1.." +
                        std::to_string(samples) + ")");
  if (options.destinations.empty()) throw ShardingError("no destination to write shards to");
  std::vector<std::pair<Url, std::shared_ptr<Source>>> destinations;
  for (const std::string& d : options.destinations) {
    const Url url = parse_url(d);
    destinations.emplace_back(url, open_source(url));  // fails early for an unbuilt scheme
  }
  const auto put = [&](const std::string& name, std::string_view bytes) {
    for (const auto& [prefix, source] : destinations)
      source->put(parse_url(join_url(to_string(prefix), name)), bytes);
  };

  Manifest manifest;
  for (std::uint64_t s = 0; s < options.shards; ++s) {
    const std::uint64_t begin = s * samples / options.shards;
    const std::uint64_t end = (s + 1) * samples / options.shards;
    TarWriter tar;
    for (std::uint64_t i = begin; i < end; ++i) write(i, tar);
    const std::string bytes = tar.finish();
    char number[32];
    std::snprintf(number, sizeof number, "%06llu", static_cast<unsigned long long>(s));
    const std::string name = options.name + "-" + number + ".tar";
    const ShardIndex index = index_tar(bytes, name);
    if (index.samples() != end - begin)
      throw ShardingError(name + ": wrote " + std::to_string(end - begin) +
                          " samples but the tar holds " + std::to_string(index.samples()) +
                          " keys (two samples with the same key?)");
    put(name, bytes);
    put(index_url_for(name), encode_index(index));
    manifest.shards.push_back(
        ShardInfo{name, index_url_for(name), index.samples(), bytes.size(), sha256_of(bytes)});
  }
  manifest.digest = dataset_digest(manifest.shards);
  put(options.name + ".manifest.json", manifest_to_json(manifest));
  return manifest;
}

}  // namespace xpscale
