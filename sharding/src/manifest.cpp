#include "xpscale/sharding/manifest.h"

#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include "xpscale/sharding/error.h"

namespace xpscale {

namespace {

constexpr const char* kFormat = "xpscale.manifest/1";

std::string base_name(const std::string& url) {
  const std::size_t slash = url.rfind('/');
  return slash == std::string::npos ? url : url.substr(slash + 1);
}

}  // namespace

std::uint64_t Manifest::samples() const {
  std::uint64_t n = 0;
  for (const ShardInfo& s : shards) n += s.samples;
  return n;
}

std::string sha256_of(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1)
    throw ShardingError("OpenSSL EVP_Digest(sha256) failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::string dataset_digest(const std::vector<ShardInfo>& shards) {
  std::string lines;
  for (const ShardInfo& s : shards)
    lines +=
        base_name(s.url) + "\t" + std::to_string(s.samples) + "\t" + std::to_string(s.size) + "\n";
  return sha256_of(lines);
}

std::string manifest_to_json(const Manifest& manifest) {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["digest"] = dataset_digest(manifest.shards);
  j["samples"] = manifest.samples();
  j["shards"] = nlohmann::ordered_json::array();
  for (const ShardInfo& s : manifest.shards) {
    nlohmann::ordered_json shard;
    shard["url"] = s.url;
    shard["index"] = s.index_url.empty() ? s.url + ".idx" : s.index_url;
    shard["samples"] = s.samples;
    shard["size"] = s.size;
    shard["sha256"] = s.sha256;
    j["shards"].push_back(std::move(shard));
  }
  return j.dump(1) + "\n";
}

Manifest manifest_from_json(std::string_view text, const std::string& url) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw ShardingError(url + ": not a JSON manifest: " + e.what());
  }
  const auto fail = [&](const std::string& where, const std::string& why) -> ShardingError {
    return ShardingError(url + ": " + where + ": " + why);
  };
  if (!j.is_object() || !j.contains("format") || j["format"] != kFormat)
    throw fail("format", std::string("expected \"") + kFormat + "\"");
  if (!j.contains("shards") || !j["shards"].is_array() || j["shards"].empty())
    throw fail("shards", "expected a non-empty list");
  Manifest m;
  std::size_t i = 0;
  for (const auto& s : j["shards"]) {
    const std::string where = "shards[" + std::to_string(i++) + "]";
    if (!s.is_object()) throw fail(where, "expected an object");
    ShardInfo info;
    if (!s.contains("url") || !s["url"].is_string())
      throw fail(where + ".url", "expected a string");
    for (const char* key : {"samples", "size"})
      if (!s.contains(key) || !s[key].is_number_unsigned())
        throw fail(where + "." + key, "expected a non-negative integer");
    for (const char* key : {"index", "sha256"})
      if (s.contains(key) && !s[key].is_string())
        throw fail(where + "." + key, "expected a string");
    info.url = resolve_url(url, s["url"].get<std::string>());
    info.index_url = resolve_url(url, s.value("index", s["url"].get<std::string>() + ".idx"));
    info.samples = s["samples"].get<std::uint64_t>();
    info.size = s["size"].get<std::uint64_t>();
    info.sha256 = s.value("sha256", "");
    m.shards.push_back(std::move(info));
  }
  m.digest = dataset_digest(m.shards);
  if (j.contains("digest") && j["digest"] != m.digest)
    throw fail("digest", "does not match its shards (the manifest was edited?): it says " +
                             j["digest"].dump() + ", the shards give \"" + m.digest + "\"");
  return m;
}

std::string resolve_url(const std::string& base, const std::string& relative) {
  if (relative.find("://") != std::string::npos || relative.starts_with('/')) return relative;
  const std::size_t slash = base.rfind('/');
  if (slash == std::string::npos) return relative;
  return base.substr(0, slash + 1) + relative;
}

}  // namespace xpscale
