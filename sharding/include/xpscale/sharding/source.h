#pragma once
// Where shard bytes come from: one Source per URL scheme (file, s3, gs, az,
// http/https). The loader, the cache and `xpscale shard --upload` speak only
// this interface; the object-store clients implement it.
//
// Contract for every implementation:
// - Thread-safe: the prefetcher calls read() for several objects at once.
// - Errors throw ShardingError whose message names the URL (never a secret)
//   and, for reads, the byte range; transient faults (5xx, SlowDown,
//   timeouts, reset connections) are retried inside the Source before it
//   throws.
// - read() delivers bytes strictly in order through the sink, exactly
//   `length` of them or it throws; when the object's ETag is known it
//   detects an object replaced mid-read (If-Match) and throws.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "xpscale/sharding/url.h"

namespace xpscale {

struct ObjectInfo {
  std::string url;  // canonical URL of the object (to_string of its Url)
  std::uint64_t size = 0;
  std::string etag;  // "" when the scheme has none (file: size+mtime stamp)
};

// Receives consecutive chunks of an object's bytes. Returning false stops
// the transfer early; read() then returns without error.
using ByteSink = std::function<bool(const char* data, std::size_t size)>;

class Source {
 public:
  virtual ~Source() = default;

  // Size and ETag of one object; throws ShardingError (missing object,
  // denied, unreachable) naming the URL.
  virtual ObjectInfo stat(const Url& url) = 0;

  // Every object whose URL starts with prefix (s3: ListObjectsV2, paged;
  // file: the files of a directory, recursively), sorted by URL.
  virtual std::vector<ObjectInfo> list(const Url& prefix) = 0;

  // Bytes [offset, offset + length) of the object, in order, to sink.
  // length == UINT64_MAX means "to the end".
  virtual void read(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length,
                    const ByteSink& sink) = 0;

  // The same bytes written to dest[0, length) (length is exact, never
  // UINT64_MAX). The default goes through read(); a Source that can fill
  // the caller's buffer directly (file: pread) overrides it and saves the
  // loader a copy of every byte.
  virtual void read_into(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length,
                         char* dest);

  // Writes a whole object (s3: PUT, multipart above a size the
  // implementation chooses; file: temp file + rename). Throws on failure and
  // leaves no partial object behind.
  virtual void put(const Url& url, std::string_view bytes) = 0;
};

// The Source for url's scheme, configured from the environment (AWS_* for
// s3). Sources are cheap to share: callers keep one per scheme.
std::shared_ptr<Source> open_source(const Url& url);

}  // namespace xpscale
