#include "xpscale/sharding/source.h"

#include <cstring>
#include <map>
#include <mutex>

#include "file_source.h"
#include "gzip_source.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/s3.h"

namespace xpscale {

void Source::read_into(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length,
                       char* dest) {
  std::uint64_t done = 0;
  read(object, offset, length, [&](const char* data, std::size_t size) {
    if (size > length - done)
      throw ShardingError(object.url + ": the source sent more than the " + std::to_string(length) +
                          " bytes asked for");
    std::memcpy(dest + done, data, size);
    done += size;
    return true;
  });
  if (done != length)
    throw ShardingError(object.url + ": got " + std::to_string(done) + " of " +
                        std::to_string(length) + " bytes from byte offset " +
                        std::to_string(offset));
}

namespace {

std::shared_ptr<Source> open_plain_source(const Url& url) {
  if (url.scheme == "file") {
    static const std::shared_ptr<Source> file = make_file_source();
    return file;
  }
  // One client per scheme and process, so that every loader shares its
  // connection cache; S3 reads its credentials and endpoint from the
  // environment the first time (a failure there is retried on the next call).
  if (url.scheme == "s3") {
    static const std::shared_ptr<Source> s3 = make_s3_source();
    return s3;
  }
  if (url.scheme == "http" || url.scheme == "https") {
    static const std::shared_ptr<Source> http = make_http_source();
    return http;
  }
  throw ShardingError("no Source for the scheme of " + to_string(url));
}

}  // namespace

std::shared_ptr<Source> open_source(const Url& url) {
  if (!is_gzip_url(url)) return open_plain_source(url);
  // One per scheme and process too: it holds the decompressed copies.
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<Source>> gzip;
  const std::lock_guard lock(mutex);
  std::shared_ptr<Source>& source = gzip[url.scheme];
  if (!source) source = make_gzip_source(open_plain_source(url));
  return source;
}

}  // namespace xpscale
