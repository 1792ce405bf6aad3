#pragma once
// Helpers for the sharding tests: a fresh temp directory and small
// datasets written with the real shard writer to file:// shards.
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "xpscale/sharding/dataset.h"
#include "xpscale/sharding/shard_writer.h"

namespace xpscale::test {

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "xpscale-shard-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Sample i: key NNNNNN, a "bin" field of (i % 7) * 100 + 1 bytes of value
// i % 251 (sizes vary, so the shuffle buffer sees different sizes) and a
// "cls" field holding i as text.
inline void write_test_sample(std::uint64_t i, TarWriter& tar) {
  char key[16];
  std::snprintf(key, sizeof key, "%06llu", static_cast<unsigned long long>(i));
  tar.add(std::string(key) + ".bin",
          std::string(static_cast<std::size_t>((i % 7) * 100 + 1), static_cast<char>(i % 251)));
  tar.add(std::string(key) + ".cls", std::to_string(i));
}

// Writes `samples` samples as `shards` shards named "data" under dir and
// returns the manifest's URL.
inline std::string make_dataset(const std::filesystem::path& dir, std::uint64_t samples,
                                std::uint64_t shards) {
  ShardWriteOptions options;
  options.name = "data";
  options.shards = shards;
  options.destinations = {"file://" + dir.string()};
  write_shards(samples, write_test_sample, options);
  return "file://" + (dir / "data.manifest.json").string();
}

// The global sample number a test sample carries.
inline std::uint64_t sample_number(const Sample& s) {
  return std::stoull(std::string(s.field("cls")));
}

}  // namespace xpscale::test
