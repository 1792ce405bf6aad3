#include "gzip_source.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "xpscale/sharding/error.h"

namespace xpscale {

namespace {

// A shard decompressed once into a temporary file of this process. The
// file is unlinked as soon as it is made and read through its descriptor,
// so it goes however the process ends (SIGKILL included); forked children
// inherit the descriptor and read it too (pread has no shared position).
struct Inflated {
  int fd = -1;
  std::uint64_t size = 0;
  ObjectInfo compressed;
  ~Inflated() {
    if (fd >= 0) ::close(fd);
  }
};

// Writes all of `size` bytes; false (errno set) if it cannot.
bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = ENOSPC;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Shards compressed with gzip (.tar.gz, .tgz; concatenated members too).
//
// A gzip stream cannot be read from the middle, and the loader reads
// ranged pieces in parallel and resumes mid-shard. So each shard is
// inflated once per process, streaming through zlib into an unlinked
// temporary file (the first scan that finds its samples does it), and every
// read after that is a pread of it. Shards without compression need none
// of this.
class GzipSource : public Source {
 public:
  ObjectInfo stat(const Url& url) override {
    const ObjectInfo compressed = open_plain_source(url)->stat(url);
    const std::shared_ptr<const Inflated> inflated = decompressed(compressed);
    return ObjectInfo{compressed.url, inflated->size, compressed.etag};
  }

  std::vector<ObjectInfo> list(const Url& prefix) override {
    return open_plain_source(prefix)->list(prefix);
  }

  void read(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length,
            const ByteSink& sink) override {
    const std::shared_ptr<const Inflated> inflated = find(object);
    const int fd = inflated->fd;
    if (offset > inflated->size)
      throw ShardingError(object.url + ": byte offset " + std::to_string(offset) +
                          " is beyond its " + std::to_string(inflated->size) +
                          " decompressed bytes");
    if (length != UINT64_MAX && length > inflated->size - offset)
      throw ShardingError(object.url + ": bytes [" + std::to_string(offset) + ", " +
                          std::to_string(offset + length) + ") reach beyond its " +
                          std::to_string(inflated->size) + " decompressed bytes");
    std::uint64_t left = length == UINT64_MAX ? inflated->size - offset : length;
    std::vector<char> buffer(std::size_t{1} << 20);
    while (left > 0) {
      const std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size()));
      const ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        throw ShardingError(object.url + ": reading its decompressed copy at byte offset " +
                            std::to_string(offset) + ": " +
                            (n == 0 ? std::string("unexpected end") : std::strerror(errno)));
      if (!sink(buffer.data(), static_cast<std::size_t>(n))) return;
      offset += static_cast<std::uint64_t>(n);
      left -= static_cast<std::uint64_t>(n);
    }
  }

  void put(const Url& url, std::string_view) override {
    throw ShardingError(to_string(url) + ": writing gzip-compressed shards is not supported");
  }

 private:
  // The copy of this version of the object (url, etag), if made; the
  // caller holds mutex_.
  std::shared_ptr<const Inflated> made(const std::string& url, const std::string& etag) const {
    auto it = inflated_.find(url);
    return it != inflated_.end() && it->second->compressed.etag == etag ? it->second : nullptr;
  }

  std::shared_ptr<const Inflated> find(const ObjectInfo& object) {
    {
      const std::lock_guard lock(mutex_);
      if (auto copy = made(object.url, object.etag)) return copy;
    }
    const Url url = parse_url(object.url);
    return decompressed(open_plain_source(url)->stat(url));
  }

  // The shard's decompressed copy, made on first use (one thread inflates
  // a shard; others asking for it wait for that one).
  std::shared_ptr<const Inflated> decompressed(const ObjectInfo& compressed) {
    std::shared_ptr<std::mutex> once;
    {
      const std::lock_guard lock(mutex_);
      if (auto copy = made(compressed.url, compressed.etag)) return copy;
      auto& m = inflating_[compressed.url];
      if (!m) m = std::make_shared<std::mutex>();
      once = m;
    }
    const std::lock_guard inflating(*once);
    {
      const std::lock_guard lock(mutex_);
      if (auto copy = made(compressed.url, compressed.etag)) return copy;  // made meanwhile
    }
    auto result = std::make_shared<Inflated>();
    result->compressed = compressed;
    const std::string dir = std::filesystem::temp_directory_path().string();
    std::string path = dir + "/xpscale-gunzip-XXXXXX";
    result->fd = ::mkostemp(path.data(), O_CLOEXEC);
    if (result->fd < 0)
      throw ShardingError(compressed.url +
                          ": cannot make a temporary file for its decompressed "
                          "copy in " +
                          dir + ": " + std::strerror(errno));
    ::unlink(path.c_str());  // nothing to clean up later
    result->size = inflate_into(compressed, result->fd);
    const std::lock_guard lock(mutex_);
    inflated_[compressed.url] = result;  // replaces an older version of the object
    return result;
  }

  // Streams the compressed object through zlib into fd; returns the
  // decompressed size. Throws naming the URL and the compressed byte
  // offset of a corrupt or truncated stream.
  std::uint64_t inflate_into(const ObjectInfo& compressed, int fd) {
    z_stream z{};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)  // 16: a gzip header
      throw ShardingError(compressed.url + ": zlib cannot start");
    const auto ender = std::unique_ptr<z_stream, int (*)(z_stream*)>(&z, inflateEnd);
    std::vector<char> out(std::size_t{1} << 20);
    std::uint64_t in_offset = 0, total = 0;
    bool member_done = false, any = false;
    open_plain_source(parse_url(compressed.url))
        ->read(compressed, 0, UINT64_MAX, [&](const char* data, std::size_t size) {
          z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
          z.avail_in = static_cast<uInt>(size);
          while (z.avail_in > 0) {
            if (member_done) {  // another member follows (pigz, cat a.gz b.gz)
              inflateReset(&z);
              member_done = false;
            }
            any = true;
            z.next_out = reinterpret_cast<Bytef*>(out.data());
            z.avail_out = static_cast<uInt>(out.size());
            const uInt before = z.avail_in;
            const int rc = ::inflate(&z, Z_NO_FLUSH);
            in_offset += before - z.avail_in;
            const std::size_t produced = out.size() - z.avail_out;
            if (rc != Z_OK && rc != Z_STREAM_END && !(rc == Z_BUF_ERROR && produced > 0))
              throw ShardingError(compressed.url +
                                  ": not a valid gzip stream at compressed byte "
                                  "offset " +
                                  std::to_string(in_offset) + " (" +
                                  (z.msg != nullptr ? z.msg : zError(rc)) + ")");
            if (!write_all(fd, out.data(), produced))
              throw ShardingError(compressed.url + ": cannot write its decompressed copy (after " +
                                  std::to_string(total) + " bytes, compressed byte offset " +
                                  std::to_string(in_offset) + ") to a temporary file in " +
                                  std::filesystem::temp_directory_path().string() + ": " +
                                  std::strerror(errno));
            total += produced;
            if (rc == Z_STREAM_END) member_done = true;
          }
          return true;
        });
    if (!any) throw ShardingError(compressed.url + ": empty file, not a gzip stream");
    if (!member_done)
      throw ShardingError(compressed.url +
                          ": truncated gzip stream: it ends at compressed byte "
                          "offset " +
                          std::to_string(in_offset) + " inside a member (after " +
                          std::to_string(total) + " decompressed bytes)");
    return total;
  }

  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const Inflated>> inflated_;
  std::map<std::string, std::shared_ptr<std::mutex>> inflating_;
};

}  // namespace

bool is_gzip_url(const Url& url) {
  const std::string_view p = std::string_view(url.path).substr(0, url.path.find('?'));
  return p.ends_with(".gz") || p.ends_with(".tgz");
}

std::shared_ptr<Source> make_gzip_source() { return std::make_shared<GzipSource>(); }

}  // namespace xpscale
