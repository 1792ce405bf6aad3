#include "xpscale/coordinator/checkpoint_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "xpscale/core/error.h"

namespace xpscale {

namespace {

constexpr const char* kMarker = "xpscale_checkpoint.json";

}  // namespace

std::filesystem::path trial_dir_of(const std::filesystem::path& out_dir, std::uint64_t trial) {
  return out_dir / "trials" / std::to_string(trial);
}

std::filesystem::path checkpoint_dir_of(const std::filesystem::path& out_dir, std::uint64_t trial) {
  return trial_dir_of(out_dir, trial) / "checkpoint";
}

std::int64_t read_checkpoint_step(const std::filesystem::path& checkpoint_dir) {
  std::ifstream in(checkpoint_dir / kMarker);
  if (!in) return -1;
  std::stringstream text;
  text << in.rdbuf();
  const auto j = nlohmann::json::parse(text.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("step") ||
      !j["step"].is_number_integer() || j["step"].get<std::int64_t>() < 0)
    throw Error("checkpoint marker " + (checkpoint_dir / kMarker).string() +
                " is not {\"step\": <integer >= 0>}: " + text.str().substr(0, 200));
  return j["step"].get<std::int64_t>();
}

namespace {

// fsync of a file or directory; the marker promises a whole checkpoint, so
// it must not reach the disk before what it names, nor be lost after.
void sync_path(const std::filesystem::path& p, int flags) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + p.string() + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw Error("cannot fsync " + p.string() + ": " + std::strerror(err));
}

}  // namespace

void write_checkpoint_step(const std::filesystem::path& checkpoint_dir, std::int64_t step) {
  if (step < 0)
    throw Error("checkpoint marker in " + checkpoint_dir.string() + ": step must be >= 0, got " +
                std::to_string(step));
  std::error_code ec;
  std::filesystem::create_directories(checkpoint_dir, ec);
  if (ec)
    throw Error("cannot create the checkpoint directory " + checkpoint_dir.string() + ": " +
                ec.message());
  const auto final_path = checkpoint_dir / kMarker;
  const auto tmp = checkpoint_dir / (std::string(kMarker) + ".tmp." + std::to_string(getpid()));
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << nlohmann::json{{"step", step}}.dump() << '\n';
    out.flush();
    if (!out) throw Error("cannot write " + tmp.string() + ": " + std::strerror(errno));
  }
  sync_path(tmp, O_WRONLY);
  std::filesystem::rename(tmp, final_path, ec);
  if (ec)
    throw Error("cannot rename " + tmp.string() + " to " + final_path.string() + ": " +
                ec.message());
  sync_path(checkpoint_dir, O_RDONLY | O_DIRECTORY);
}

namespace detail {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& what, const fs::path& p, const std::error_code& ec) {
  throw Error("PBT checkpoint copy: cannot " + what + " " + p.string() + ": " + ec.message());
}

// The donor's marker step, or -1; a marker caught mid-rename reads as -2.
std::int64_t marker_step(const fs::path& dir) {
  try {
    return read_checkpoint_step(dir);
  } catch (const Error&) {
    return -2;
  }
}

}  // namespace

void copy_checkpoint_dir(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  const fs::path tmp =
      to.parent_path() / (to.filename().string() + ".pbt-copy." + std::to_string(getpid()));
  fs::create_directories(to.parent_path(), ec);
  if (ec) fail("create", to.parent_path(), ec);
  for (int attempt = 0;; ++attempt) {
    fs::remove_all(tmp, ec);
    if (ec) fail("remove", tmp, ec);
    const std::int64_t before = marker_step(from);
    if (fs::exists(from, ec)) {
      fs::copy(from, tmp, fs::copy_options::recursive, ec);
      // A file the donor deleted while we copied (an old checkpoint) is a
      // changed marker below, not a failure.
      if (ec && ec != std::errc::no_such_file_or_directory) fail("copy to", tmp, ec);
    } else {
      fs::create_directories(tmp, ec);
      if (ec) fail("create", tmp, ec);
    }
    if ((!ec && marker_step(from) == before) || attempt == 4) break;
  }
  fs::remove_all(to, ec);
  if (ec) fail("remove", to, ec);
  fs::rename(tmp, to, ec);
  if (ec) fail("rename into", to, ec);
}

}  // namespace detail
}  // namespace xpscale
