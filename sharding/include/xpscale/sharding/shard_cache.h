#pragma once
// The node-local shard cache: an opt-in directory where whole shards are
// kept, keyed by (URL, ETag), so that the trials of a node download each
// shard once.
//
// - A shard is downloaded to a temp file, checked (length, and sha256 when
//   the manifest gives one), fsync'ed and renamed into place: a reader
//   never sees a partial shard.
// - A per-key lock file (flock, exclusive) is held while a key is checked
//   or downloaded: a second process or thread asking for the same shard
//   waits for the first download and then reads its file.
// - A reader holds a shared flock on the cached file for as long as it
//   holds the Lease; eviction takes the exclusive lock without waiting and
//   skips files it cannot lock, so a shard being read is never evicted.
// - Eviction is LRU by modification time (touched on every use) and keeps
//   the directory under max_bytes except for shards in use.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "xpscale/sharding/source.h"

namespace xpscale {

class ShardCache {
 public:
  // A cached shard, pinned (not evictable) while this object lives.
  class Lease {
   public:
    Lease(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    const std::filesystem::path& path() const { return path_; }
    // Bytes [offset, offset + length) of the cached file, to sink; throws
    // ShardingError naming the file on a short read.
    void read(std::uint64_t offset, std::uint64_t length, const ByteSink& sink) const;

   private:
    std::filesystem::path path_;
    int fd_;
  };

  // max_bytes 0: no limit. Creates dir. Throws ShardingError if it cannot.
  ShardCache(std::filesystem::path dir, std::uint64_t max_bytes);

  // The shard, downloaded through `source` if it is not cached yet.
  // `downloaded` (optional) says whether this call downloaded it. Throws
  // ShardingError naming the URL when the download fails or the bytes do
  // not match the size or sha256 (then nothing is cached).
  std::shared_ptr<const Lease> acquire(Source& source, const ObjectInfo& object,
                                       const std::string& sha256 = "", bool* downloaded = nullptr);

  // Evicts least recently used shards not in use until the cached bytes
  // are at most max_bytes. Called after every download.
  void evict();

  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::uint64_t max_bytes_;
};

}  // namespace xpscale
