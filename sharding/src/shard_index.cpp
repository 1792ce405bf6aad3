#include "xpscale/sharding/shard_index.h"

#include <cstring>

#include "xpscale/sharding/error.h"
#include "xpscale/sharding/tar.h"

namespace xpscale {

namespace {

constexpr std::string_view kMagic = "XPSIDX1\n";

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Feeds a parser that records where each new key starts.
class IndexBuilder {
 public:
  explicit IndexBuilder(const std::string& url)
      : parser_(
            url, 0, [this](const TarEntry& e, std::string_view) { return on_entry(e); },
            /*want_data=*/false) {}

  TarStreamParser& parser() { return parser_; }

  ShardIndex finish() {
    parser_.finish();
    if (!index_.offsets.empty()) index_.offsets.push_back(parser_.end_offset());
    return std::move(index_);
  }

 private:
  bool on_entry(const TarEntry& entry) {
    std::string_view key, ext;
    split_sample_name(entry.name, key, ext);
    if (index_.offsets.empty() || key != last_key_) {
      index_.offsets.push_back(entry.header_offset);
      last_key_ = std::string(key);
    }
    return true;
  }

  TarStreamParser parser_;
  ShardIndex index_;
  std::string last_key_;
};

}  // namespace

std::string index_url_for(const std::string& shard_url) { return shard_url + ".idx"; }

std::string encode_index(const ShardIndex& index) {
  std::string out(kMagic);
  put_u64(out, index.samples());
  for (std::uint64_t o : index.offsets) put_u64(out, o);
  if (index.offsets.empty()) put_u64(out, 0);
  return out;
}

ShardIndex decode_index(std::string_view bytes, const std::string& url) {
  const auto fail = [&](const std::string& why) -> ShardingError {
    return ShardingError(url + ": not a valid shard index: " + why);
  };
  if (bytes.size() < kMagic.size() + 16 || bytes.substr(0, kMagic.size()) != kMagic)
    throw fail("bad magic or too short (" + std::to_string(bytes.size()) + " bytes)");
  const std::uint64_t n = get_u64(bytes.data() + kMagic.size());
  const std::uint64_t expected = kMagic.size() + 8 + (n + 1) * 8;
  if (n > (bytes.size() / 8) || bytes.size() != expected)
    throw fail("it says " + std::to_string(n) + " samples but holds " +
               std::to_string(bytes.size()) + " bytes");
  ShardIndex index;
  index.offsets.resize(n + 1);
  for (std::uint64_t i = 0; i <= n; ++i) {
    index.offsets[i] = get_u64(bytes.data() + kMagic.size() + 8 + i * 8);
    if (index.offsets[i] % kTarBlock != 0 || (i > 0 && index.offsets[i] <= index.offsets[i - 1]))
      throw fail("offset " + std::to_string(i) + " (" + std::to_string(index.offsets[i]) +
                 ") is not an increasing multiple of 512");
  }
  if (n == 0) index.offsets.clear();
  return index;
}

ShardIndex index_tar(std::string_view tar_bytes, const std::string& url) {
  IndexBuilder builder(url);
  builder.parser().feed(tar_bytes.data(), tar_bytes.size());
  return builder.finish();
}

ShardIndex scan_shard(Source& source, const ObjectInfo& shard) {
  IndexBuilder builder(shard.url);
  source.read(shard, 0, UINT64_MAX, [&](const char* data, std::size_t size) {
    return builder.parser().feed(data, size);
  });
  return builder.finish();
}

}  // namespace xpscale
