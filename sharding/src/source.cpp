#include "xpscale/sharding/source.h"

#include <unistd.h>

#include <cstring>
#include <map>
#include <mutex>

#include "file_source.h"
#include "gzip_source.h"
#include "xpscale/sharding/azure.h"
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

// One client per scheme and process, so that every loader of the process
// shares its connection cache. Per process, not per program: a forked child
// (a DataLoader worker) that used its parent's client would write requests
// on the parent's open connections and read the parent's answers. The
// child makes its own; the inherited one is left alone, never destroyed
// there (its teardown would close or shut down connections the parent still
// uses, and a lock held at fork time would never be released).
class PerProcess {
 public:
  explicit PerProcess(std::shared_ptr<Source> (*make)()) : make_(make) {}

  std::shared_ptr<Source> get() {
    const std::lock_guard lock(mutex_);
    if (!source_ || pid_ != ::getpid()) {
      if (source_) new std::shared_ptr<Source>(std::move(source_));  // kept, on purpose
      source_ = make_();
      pid_ = ::getpid();
    }
    return source_;
  }

 private:
  std::shared_ptr<Source> (*make_)();
  std::mutex mutex_;
  std::shared_ptr<Source> source_;
  pid_t pid_ = 0;
};

}  // namespace

std::shared_ptr<Source> open_plain_source(const Url& url) {
  if (url.scheme == "file") {
    static const std::shared_ptr<Source> file = make_file_source();  // no state to share
    return file;
  }
  // S3 reads its credentials and endpoint from the environment when made
  // (a failure there is retried on the next call).
  if (url.scheme == "s3") {
    static PerProcess s3([] { return make_s3_source(); });
    return s3.get();
  }
  // Google Cloud Storage: the same client, on GCS's XML API (s3.h).
  if (url.scheme == "gs") {
    static PerProcess gcs([] { return make_s3_source(gcs_options_from_env()); });
    return gcs.get();
  }
  // Azure: az://, https://ACCOUNT.blob.core.windows.net/..., and http(s)
  // URLs under an emulator's BlobEndpoint (AZURE_STORAGE_CONNECTION_STRING).
  if (is_azure_url(url)) {
    static PerProcess azure([] { return make_azure_source(); });
    return azure.get();
  }
  if (url.scheme == "http" || url.scheme == "https") {
    static PerProcess http([] { return make_http_source(); });
    return http.get();
  }
  throw ShardingError("no Source for the scheme of " + to_string(url));
}

std::shared_ptr<Source> open_source(const Url& url) {
  if (!is_gzip_url(url)) return open_plain_source(url);
  // One per process too: it holds the decompressed copies, which a forked
  // child may read (the files stay while the parent lives); it asks
  // open_plain_source for the compressed bytes each time.
  static const std::shared_ptr<Source> gzip = make_gzip_source();
  return gzip;
}

}  // namespace xpscale
