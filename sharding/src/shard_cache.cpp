#include "xpscale/sharding/shard_cache.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "xpscale/sharding/error.h"
#include "xpscale/sharding/manifest.h"

namespace xpscale {

namespace fs = std::filesystem;

namespace {

constexpr const char* kDataSuffix = ".shard";

// The one checking helper for this file's POSIX calls.
int check(int result, const char* call, const std::string& what) {
  if (result < 0)
    throw ShardingError("shard cache: " + std::string(call) + " " + what + ": " +
                        std::strerror(errno));
  return result;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// flock that retries on EINTR.
int lock(int fd, int op) {
  int r;
  while ((r = ::flock(fd, op)) < 0 && errno == EINTR) {
  }
  return r;
}

Fd open_lock(const fs::path& path) {
  return Fd(check(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644), "open", path.string()));
}

// Streams a shard into `fd`, hashing it on the way.
void download(Source& source, const ObjectInfo& object, int fd, const std::string& sha256,
              const std::string& temp) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw ShardingError("shard cache: OpenSSL EVP_DigestInit_ex(sha256) failed");
  std::uint64_t written = 0;
  source.read(object, 0, UINT64_MAX, [&](const char* data, std::size_t size) {
    EVP_DigestUpdate(ctx.get(), data, size);
    for (std::size_t done = 0; done < size;) {
      const ssize_t n = ::write(fd, data + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      check(static_cast<int>(n), "write", temp);
      done += static_cast<std::size_t>(n);
    }
    written += size;
    return true;
  });
  if (written != object.size)
    throw ShardingError(object.url + ": downloaded " + std::to_string(written) +
                        " bytes, expected " + std::to_string(object.size));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  if (!sha256.empty()) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned int i = 0; i < length; ++i) {
      hex += kHex[digest[i] >> 4];
      hex += kHex[digest[i] & 15];
    }
    if (hex != sha256)
      throw ShardingError(object.url + ": sha256 " + hex + " does not match the manifest's " +
                          sha256);
  }
  check(::fsync(fd), "fsync", temp);
}

}  // namespace

ShardCache::Lease::~Lease() {
  if (fd_ >= 0) ::close(fd_);  // also drops the shared flock
}

void ShardCache::Lease::read(std::uint64_t offset, std::uint64_t length,
                             const ByteSink& sink) const {
  std::vector<char> buffer(static_cast<std::size_t>(std::min<std::uint64_t>(length, 1 << 20)));
  for (std::uint64_t at = offset, end = offset + length; at < end;) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - at));
    const ssize_t got = ::pread(fd_, buffer.data(), want, static_cast<off_t>(at));
    if (got < 0 && errno == EINTR) continue;
    check(static_cast<int>(got), "pread", path_.string());
    if (got == 0)
      throw ShardingError("shard cache: " + path_.string() + ": short read at byte offset " +
                          std::to_string(at));
    at += static_cast<std::uint64_t>(got);
    if (!sink(buffer.data(), static_cast<std::size_t>(got))) return;
  }
}

ShardCache::ShardCache(fs::path dir, std::uint64_t max_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw ShardingError("shard cache: cannot create " + dir_.string() + ": " + ec.message());
}

std::shared_ptr<const ShardCache::Lease> ShardCache::acquire(Source& source,
                                                             const ObjectInfo& object,
                                                             const std::string& sha256,
                                                             bool* downloaded) {
  const std::string key = sha256_of(object.url + "\n" + object.etag).substr(0, 40);
  const fs::path data = dir_ / (key + kDataSuffix);
  Fd key_lock = open_lock(dir_ / (key + ".lock"));
  check(lock(key_lock.get(), LOCK_EX), "flock", (dir_ / (key + ".lock")).string());
  if (downloaded) *downloaded = false;

  Fd fd(::open(data.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (fd.get() >= 0 &&
      (::fstat(fd.get(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) != object.size)) {
    fd = Fd();  // a wrong size: replaced below (a renamed file is always whole)
  }
  if (fd.get() < 0) {
    static std::atomic<std::uint64_t> counter{0};
    const std::string temp = (dir_ / (key + ".tmp." + std::to_string(::getpid()) + "." +
                                      std::to_string(counter.fetch_add(1))))
                                 .string();
    Fd out(
        check(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), "open", temp));
    try {
      download(source, object, out.get(), sha256, temp);
      check(::rename(temp.c_str(), data.c_str()), "rename", temp);
    } catch (...) {
      ::unlink(temp.c_str());
      throw;
    }
    fd = Fd(check(::open(data.c_str(), O_RDONLY | O_CLOEXEC), "open", data.string()));
    if (downloaded) *downloaded = true;
  }
  check(lock(fd.get(), LOCK_SH), "flock", data.string());
  ::futimens(fd.get(), nullptr);  // most recently used now
  auto lease = std::make_shared<const Lease>(data, fd.release());
  key_lock = Fd();  // unlock before evicting: evict() takes key locks itself
  if (downloaded && *downloaded) evict();
  return lease;
}

void ShardCache::evict() {
  if (max_bytes_ == 0) return;
  Fd evict_lock = open_lock(dir_ / ".evict.lock");
  check(lock(evict_lock.get(), LOCK_EX), "flock", (dir_ / ".evict.lock").string());
  struct Entry {
    fs::path path;
    std::uint64_t size;
    fs::file_time_type used;
  };
  std::vector<Entry> entries;
  std::uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (e.path().extension() != kDataSuffix) continue;
    std::error_code ec2;
    const auto size = e.file_size(ec2);
    const auto used = e.last_write_time(ec2);
    if (ec2) continue;
    entries.push_back({e.path(), size, used});
    total += size;
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.used < b.used; });
  for (const Entry& e : entries) {
    if (total <= max_bytes_) break;
    fs::path lock_path = e.path;
    lock_path.replace_extension(".lock");
    Fd key_lock = open_lock(lock_path);
    if (lock(key_lock.get(), LOCK_EX | LOCK_NB) != 0) continue;  // being downloaded or checked
    Fd fd(::open(e.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) continue;
    if (lock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // in use
    if (::unlink(e.path.c_str()) == 0) total -= e.size;
  }
}

}  // namespace xpscale
