#include "fmnist/checkpoint.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>

namespace fmnist {
namespace {

constexpr char kMagic[8] = {'X', 'P', 'F', 'M', 'N', 'I', 'S', 'T'};
constexpr std::uint32_t kVersion = 1;
constexpr const char* kPrefix = "mlp-epoch-";

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}
constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL;

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  throw CheckpointError("checkpoint " + file.string() + ": " + what);
}

// Writes and checksums as it goes.
class Writer {
 public:
  Writer(std::FILE* f, const std::filesystem::path& file) : f_(f), file_(file) {}
  void put(const void* data, std::size_t n) {
    hash_ = fnv1a(data, n, hash_);
    if (std::fwrite(data, 1, n, f_) != n)
      fail(file_, std::string("write: ") + std::strerror(errno));
  }
  std::uint64_t hash() const { return hash_; }

 private:
  std::FILE* f_;
  const std::filesystem::path& file_;
  std::uint64_t hash_ = kFnvOffset;
};

class Reader {
 public:
  Reader(std::FILE* f, const std::filesystem::path& file) : f_(f), file_(file) {}
  void get(void* data, std::size_t n, const char* what) {
    if (std::fread(data, 1, n, f_) != n)
      fail(file_, std::string("short file: ended inside ") + what);
    hash_ = fnv1a(data, n, hash_);
  }
  std::uint64_t hash() const { return hash_; }

 private:
  std::FILE* f_;
  const std::filesystem::path& file_;
  std::uint64_t hash_ = kFnvOffset;
};

}  // namespace

std::filesystem::path checkpoint_file(const std::filesystem::path& dir, std::int64_t epoch) {
  char name[64];
  std::snprintf(name, sizeof name, "%s%06lld.bin", kPrefix, static_cast<long long>(epoch));
  return dir / name;
}

void save_checkpoint(const std::filesystem::path& file, const Checkpoint& c) {
  if (c.params.size() != c.shape.param_count() || c.velocity.size() != c.params.size())
    fail(file, "params (" + std::to_string(c.params.size()) + ") and velocity (" +
                   std::to_string(c.velocity.size()) + ") do not match the shape's " +
                   std::to_string(c.shape.param_count()) + " parameters");
  std::filesystem::path tmp = file;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    File f(std::fopen(tmp.c_str(), "wb"));
    if (!f) fail(tmp, std::string("cannot create: ") + std::strerror(errno));
    Writer w(f.get(), tmp);
    const std::int32_t dims[3] = {c.shape.inputs, c.shape.hidden, c.shape.classes};
    const std::uint64_t n = c.params.size();
    w.put(kMagic, sizeof kMagic);
    w.put(&kVersion, sizeof kVersion);
    w.put(dims, sizeof dims);
    w.put(&c.epoch, sizeof c.epoch);
    w.put(&n, sizeof n);
    w.put(c.params.data(), n * sizeof(float));
    w.put(c.velocity.data(), n * sizeof(float));
    const std::uint64_t sum = w.hash();
    w.put(&sum, sizeof sum);
    if (std::fflush(f.get()) != 0 || ::fsync(::fileno(f.get())) != 0)
      fail(tmp, std::string("flush: ") + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    fail(file, "rename from " + tmp.filename().string() + ": " + ec.message());
  }
}

Checkpoint load_checkpoint(const std::filesystem::path& file) {
  File f(std::fopen(file.c_str(), "rb"));
  if (!f) fail(file, std::string("cannot open: ") + std::strerror(errno));
  Reader r(f.get(), file);
  char magic[sizeof kMagic];
  r.get(magic, sizeof magic, "the magic");
  if (std::memcmp(magic, kMagic, sizeof kMagic) != 0)
    fail(file, "bad magic (not an xpscale Fashion-MNIST checkpoint)");
  std::uint32_t version = 0;
  r.get(&version, sizeof version, "the version");
  if (version != kVersion)
    fail(file, "version " + std::to_string(version) + ", this build reads version " +
                   std::to_string(kVersion));
  std::int32_t dims[3];
  r.get(dims, sizeof dims, "the shape");
  Checkpoint c;
  c.shape = {dims[0], dims[1], dims[2]};
  r.get(&c.epoch, sizeof c.epoch, "the epoch");
  std::uint64_t n = 0;
  r.get(&n, sizeof n, "the parameter count");
  if (dims[0] < 1 || dims[1] < 1 || dims[2] < 1 || n != c.shape.param_count())
    fail(file, "shape " + std::to_string(dims[0]) + "-" + std::to_string(dims[1]) + "-" +
                   std::to_string(dims[2]) + " does not match its " + std::to_string(n) +
                   " parameters");
  c.params.resize(n);
  c.velocity.resize(n);
  r.get(c.params.data(), n * sizeof(float), "the parameters");
  r.get(c.velocity.data(), n * sizeof(float), "the momentum");
  const std::uint64_t expected = r.hash();
  std::uint64_t sum = 0;
  r.get(&sum, sizeof sum, "the checksum");
  if (sum != expected) fail(file, "checksum mismatch (corrupt file)");
  if (std::fgetc(f.get()) != EOF) fail(file, "trailing bytes after the checksum");
  return c;
}

void remove_checkpoints_before(const std::filesystem::path& dir, std::int64_t keep_epoch) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(kPrefix) || !name.ends_with(".bin")) continue;
    try {
      const std::int64_t epoch = std::stoll(name.substr(std::strlen(kPrefix)));
      if (epoch < keep_epoch) std::filesystem::remove(entry.path(), ec);
    } catch (const std::exception&) {
      // Not one of ours after all.
    }
  }
}

void check_fits(const Checkpoint& c, const MlpShape& s) {
  if (c.shape == s && c.params.size() == s.param_count() && c.velocity.size() == c.params.size())
    return;
  const auto name = [](const MlpShape& m) {
    return std::to_string(m.inputs) + "-" + std::to_string(m.hidden) + "-" +
           std::to_string(m.classes);
  };
  throw CheckpointError("checkpoint of epoch " + std::to_string(c.epoch) + " is of a " +
                        name(c.shape) + " model, this trial trains " + name(s));
}

}  // namespace fmnist
