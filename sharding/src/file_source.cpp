#include "file_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "xpscale/sharding/error.h"

namespace xpscale {

namespace {

namespace fs = std::filesystem;

// pread size: small enough to stay in the core's cache between the pread
// and the sink's copy, like cat's 128 KiB buffer.
constexpr std::size_t kReadChunk = std::size_t{256} << 10;

// One uninitialised read buffer per thread, reused: a fresh zero-filled
// buffer per call cost more than the copy itself.
char* read_buffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kReadChunk]);
  return buffer.get();
}

// The one checking helper for the POSIX calls of this file: names the call,
// the URL and errno's message.
[[noreturn]] void posix_fail(const char* call, const std::string& url, int err) {
  const std::string what = url + ": " + call + " failed: " + std::strerror(err);
  if (err == ENOENT) throw ObjectNotFound(what);
  throw ShardingError(what);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// size and mtime in nanoseconds: changes whenever the file is rewritten.
std::string stamp(const struct stat& st) {
  return std::to_string(st.st_size) + "-" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

ObjectInfo info_of(const std::string& path, const struct stat& st) {
  return ObjectInfo{to_string(Url{"file", "", path}), static_cast<std::uint64_t>(st.st_size),
                    stamp(st)};
}

// Opens the object's file and checks that it is the one that was listed.
Fd open_checked(const ObjectInfo& object) {
  const Url url = parse_url(object.url);
  Fd fd(::open(url.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) posix_fail("open", object.url, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) posix_fail("fstat", object.url, errno);
  if (!object.etag.empty() && stamp(st) != object.etag)
    throw ShardingError(object.url + ": the file changed since it was listed (was " + object.etag +
                        ", now " + stamp(st) + ")");
  return fd;
}

// The end of [offset, offset + length), checked against the file's size.
std::uint64_t checked_end(const Fd& fd, const ObjectInfo& object, std::uint64_t offset,
                          std::uint64_t length) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) posix_fail("fstat", object.url, errno);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (offset > size || (length != UINT64_MAX && length > size - offset))
    throw ShardingError(object.url + ": bytes [" + std::to_string(offset) + ", " +
                        (length == UINT64_MAX ? "end" : std::to_string(offset + length)) +
                        ") are beyond its size " + std::to_string(size));
  return length == UINT64_MAX ? size : offset + length;
}

// One pread of up to `want` bytes at `at`; throws on an error or an early end.
std::size_t pread_some(const Fd& fd, const ObjectInfo& object, char* dest, std::size_t want,
                       std::uint64_t at, std::uint64_t end) {
  for (;;) {
    const ssize_t got = ::pread(fd.get(), dest, want, static_cast<off_t>(at));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) posix_fail("pread", object.url + " at byte offset " + std::to_string(at), errno);
    if (got == 0)
      throw ShardingError(object.url + ": short read: the file ends at byte offset " +
                          std::to_string(at) + ", expected " + std::to_string(end));
    return static_cast<std::size_t>(got);
  }
}

class FileSource final : public Source {
 public:
  ObjectInfo stat(const Url& url) override {
    struct stat st {};
    const std::string name = to_string(url);
    if (::stat(url.path.c_str(), &st) != 0) posix_fail("stat", name, errno);
    if (!S_ISREG(st.st_mode)) throw ShardingError(name + ": not a regular file");
    return info_of(url.path, st);
  }

  std::vector<ObjectInfo> list(const Url& prefix) override {
    // A prefix is a directory ("data/" or "data") or a directory plus the
    // start of file names ("data/train-"), as an S3 prefix would be.
    const fs::path p(prefix.path);
    const bool is_dir = prefix.path.ends_with('/') || fs::is_directory(p);
    const fs::path dir = is_dir ? p : p.parent_path().empty() ? fs::path(".") : p.parent_path();
    std::error_code ec;
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
    if (ec) throw ShardingError(to_string(prefix) + ": cannot list: " + ec.message());
    std::vector<ObjectInfo> out;
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) throw ShardingError(to_string(prefix) + ": cannot list: " + ec.message());
      if (!it->is_regular_file()) continue;
      std::string path = it->path().string();
      if (!is_dir && p.parent_path().empty() && path.starts_with("./")) path.erase(0, 2);
      if (!is_dir && !path.starts_with(prefix.path)) continue;
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0) continue;  // removed while listing
      out.push_back(info_of(path, st));
    }
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.url < b.url; });
    return out;
  }

  void read(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length,
            const ByteSink& sink) override {
    const Fd fd = open_checked(object);
    const std::uint64_t end = checked_end(fd, object, offset, length);
    char* buffer = read_buffer();
    for (std::uint64_t at = offset; at < end;) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kReadChunk, end - at));
      const std::size_t got = pread_some(fd, object, buffer, want, at, end);
      at += got;
      if (!sink(buffer, got)) return;
    }
  }

  void read_into(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length,
                 char* dest) override {
    const Fd fd = open_checked(object);
    const std::uint64_t end = checked_end(fd, object, offset, length);
    for (std::uint64_t at = offset; at < end;)
      at +=
          pread_some(fd, object, dest + (at - offset), static_cast<std::size_t>(end - at), at, end);
  }

  void put(const Url& url, std::string_view bytes) override {
    const std::string name = to_string(url);
    const fs::path target(url.path);
    std::error_code ec;
    if (target.has_parent_path()) {
      fs::create_directories(target.parent_path(), ec);
      if (ec) throw ShardingError(name + ": cannot create its directory: " + ec.message());
    }
    // Unique per process and call: threads may put at once.
    static std::atomic<std::uint64_t> counter{0};
    const std::string temp = url.path + ".tmp." + std::to_string(::getpid()) + "." +
                             std::to_string(counter.fetch_add(1));
    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) posix_fail("open", name + " (temp file " + temp + ")", errno);
    try {
      for (std::size_t done = 0; done < bytes.size();) {
        const ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
        if (n < 0) {
          if (errno == EINTR) continue;
          posix_fail("write", name, errno);
        }
        done += static_cast<std::size_t>(n);
      }
      if (::fsync(fd.get()) != 0) posix_fail("fsync", name, errno);
      if (::close(fd.release()) != 0) posix_fail("close", name, errno);
      if (::rename(temp.c_str(), url.path.c_str()) != 0) posix_fail("rename", name, errno);
    } catch (...) {
      ::unlink(temp.c_str());
      throw;
    }
  }
};

}  // namespace

std::shared_ptr<Source> make_file_source() { return std::make_shared<FileSource>(); }

}  // namespace xpscale
