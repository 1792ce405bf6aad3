#include "checkpoint_copy.h"

#include <unistd.h>

#include "xpscale/runtime/error.h"
#include "xpscale/runtime/trial.h"

namespace xpscale::detail {
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

}  // namespace xpscale::detail
