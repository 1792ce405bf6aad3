#include "xpscale/coordinator/stop_request.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "xpscale/core/error.h"

namespace xpscale {

namespace fs = std::filesystem;

fs::path stop_request_path(const fs::path& out_dir) { return out_dir / "stop.json"; }

void write_stop_request(const fs::path& out_dir, const StopRequest& request) {
  const fs::path path = stop_request_path(out_dir);
  const fs::path tmp = path.string() + ".tmp" + std::to_string(::getpid());
  const std::string text =
      nlohmann::json{{"at", request.at}, {"cancel", request.cancel}, {"by", request.by}}.dump() +
      "\n";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::error_code ignored;
      fs::remove(tmp, ignored);
      throw UserError("cannot write " + path.string() + ": " + std::strerror(errno));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw UserError("cannot write " + path.string() + ": " + std::strerror(err));
  }
}

std::optional<StopRequest> read_stop_request(const fs::path& out_dir) {
  // Only a regular file is read: O_NONBLOCK keeps a FIFO put there from
  // blocking the coordinator (and its signals) in open().
  const fs::path path = stop_request_path(out_dir);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  std::string text;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    text.resize(4096);
    const ssize_t n = ::pread(fd, text.data(), text.size(), 0);
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  ::close(fd);
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("at") || !j["at"].is_number()) return std::nullopt;
  StopRequest r;
  r.at = j["at"].get<double>();
  r.cancel = j.contains("cancel") && j["cancel"].is_boolean() && j["cancel"].get<bool>();
  if (j.contains("by") && j["by"].is_string()) r.by = j["by"].get<std::string>();
  return r;
}

}  // namespace xpscale
