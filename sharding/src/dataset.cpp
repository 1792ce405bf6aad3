#include "xpscale/sharding/dataset.h"

#include "xpscale/sharding/brace.h"
#include "xpscale/sharding/error.h"

namespace xpscale {

namespace {

std::string read_all(Source& source, const ObjectInfo& object) {
  std::string out;
  out.reserve(static_cast<std::size_t>(object.size));
  source.read(object, 0, UINT64_MAX, [&](const char* data, std::size_t size) {
    out.append(data, size);
    return true;
  });
  return out;
}

// The manifest's entries, or bare shards with unknown counts.
std::vector<ShardInfo> declared_shards(const DatasetLocation& spec) {
  const int ways =
      !spec.manifest.empty() + !spec.urls.empty() + !spec.pattern.empty() + !spec.prefix.empty();
  if (ways != 1)
    throw ShardingError("a dataset needs exactly one of manifest, urls, pattern or prefix (got " +
                        std::to_string(ways) + ")");
  std::vector<ShardInfo> shards;
  if (!spec.manifest.empty())
    return manifest_from_json(read_object(spec.manifest), spec.manifest).shards;
  std::vector<std::string> urls = spec.urls;
  if (!spec.pattern.empty()) urls = expand_braces(spec.pattern);
  if (!spec.prefix.empty()) {
    const Url prefix = parse_url(spec.prefix);
    for (const ObjectInfo& o : open_source(prefix)->list(prefix))
      if (o.url.ends_with(".tar") || o.url.ends_with(".tar.gz") || o.url.ends_with(".tgz"))
        urls.push_back(o.url);
    if (urls.empty())
      throw ShardingError(spec.prefix + ": no *.tar, *.tar.gz or *.tgz shards under this prefix");
  }
  for (std::string& u : urls) shards.push_back(ShardInfo{std::move(u), "", 0, 0, ""});
  return shards;
}

// The sidecar index of a shard, or nullopt-equivalent (empty offsets and
// false) when it has none.
bool load_sidecar(const std::string& index_url, ShardIndex& index) {
  const Url url = parse_url(index_url);
  auto source = open_source(url);
  ObjectInfo info;
  try {
    info = source->stat(url);
  } catch (const ObjectNotFound&) {
    return false;  // no sidecar: the caller scans the shard
  }
  index = decode_index(read_all(*source, info), info.url);
  return true;
}

}  // namespace

std::string read_object(const std::string& url_text) {
  const Url url = parse_url(url_text);
  auto source = open_source(url);
  return read_all(*source, source->stat(url));
}

Dataset open_dataset(const DatasetLocation& spec) {
  std::vector<ShardInfo> declared = declared_shards(spec);
  const bool from_manifest = !spec.manifest.empty();
  Dataset dataset;
  for (ShardInfo& info : declared) {
    const Url url = parse_url(info.url);
    auto source = open_source(url);
    DatasetShard shard;
    shard.object = source->stat(url);
    shard.sha256 = info.sha256;
    const std::string index_url = info.index_url.empty() ? index_url_for(info.url) : info.index_url;
    const bool have_index = load_sidecar(index_url, shard.index);
    if (from_manifest && !have_index)
      throw ShardingError(index_url + ": the manifest names this index but it does not exist");
    if (!have_index) {
      shard.index = scan_shard(*source, shard.object);
      shard.scanned = true;
    }
    if (shard.index.samples() == 0) throw ShardingError(info.url + ": the shard holds no samples");
    if (from_manifest && (info.samples != shard.index.samples() || info.size != shard.object.size))
      throw ShardingError(info.url + ": the manifest says " + std::to_string(info.samples) +
                          " samples and " + std::to_string(info.size) + " bytes, the shard has " +
                          std::to_string(shard.index.samples()) + " samples (index) and " +
                          std::to_string(shard.object.size) + " bytes");
    if (shard.index.offsets.back() > shard.object.size)
      throw ShardingError(index_url + ": its samples end at byte offset " +
                          std::to_string(shard.index.offsets.back()) + ", beyond the shard's " +
                          std::to_string(shard.object.size) + " bytes (truncated shard?)");
    info.samples = shard.index.samples();
    info.size = shard.object.size;
    dataset.samples += info.samples;
    dataset.shards.push_back(std::move(shard));
  }
  if (dataset.shards.empty()) throw ShardingError("the dataset has no shards");
  dataset.digest = dataset_digest(declared);
  return dataset;
}

}  // namespace xpscale
