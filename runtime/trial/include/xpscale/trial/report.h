#pragma once
// Metrics and checkpoints for an external C++ trial: the C++ twin of
// python/xpscale/report.py, with the same environment and file formats.
// Header-only and free of xpscale and third-party dependencies (the C++
// standard library plus POSIX write/open/fsync), so a trainer can copy it.
//
// xpscale runs an external trial with XPSCALE_PARAMS (JSON object, flat
// dotted names such as "optimizer.lr"), XPSCALE_TRIAL_ID,
// XPSCALE_CHECKPOINT_DIR, XPSCALE_METRICS_FD and RANK (the rank within the
// trial's group). Each report() writes one line to XPSCALE_METRICS_FD:
//
//   {"step":3,"loss":0.25,"acc":0.91}
//
// "step" is reserved; NaN and +-inf are not JSON and are written as null.
// Without XPSCALE_METRICS_FD (run by hand) the line goes to stderr instead.
// checkpoint_saved(step) writes <checkpoint_dir>/xpscale_checkpoint.json =
// {"step": N} atomically; resume_step() reads it back.
//
//   namespace xr = xpscale::report;
//   for (std::int64_t step = xr::resume_step() + 1; step < 100; ++step) {
//     double loss = train_epoch();
//     save_model(xr::checkpoint_dir());
//     xr::checkpoint_saved(step);
//     xr::report(step, {{"loss", loss}});
//   }
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace xpscale::report {

inline constexpr std::string_view kCheckpointFile = "xpscale_checkpoint.json";

using Metrics = std::initializer_list<std::pair<std::string_view, double>>;

namespace detail {

inline std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

inline std::mutex& lock() {
  static std::mutex m;
  return m;
}

inline std::int64_t& next_step() {
  static std::int64_t step = 0;
  return step;
}

// A JSON string literal; bytes >= 0x80 pass through (UTF-8 is assumed).
inline void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

// The shortest text that reads back as v; null for NaN and +-inf.
inline void append_json_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

inline std::system_error errno_error(const std::string& what) {
  return std::system_error(errno, std::generic_category(), what);
}

inline void write_all(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw errno_error(what);
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

inline std::string checkpoint_record(const std::string& dir) {
  if (dir.empty())
    throw std::runtime_error("no checkpoint directory: XPSCALE_CHECKPOINT_DIR is not set");
  return dir + "/" + std::string(kCheckpointFile);
}

}  // namespace detail

// XPSCALE_TRIAL_ID; "" when not run by xpscale.
inline std::string trial_id() { return detail::env_or("XPSCALE_TRIAL_ID", ""); }

// XPSCALE_CHECKPOINT_DIR; "" when not run by xpscale.
inline std::string checkpoint_dir() { return detail::env_or("XPSCALE_CHECKPOINT_DIR", ""); }

// XPSCALE_PARAMS as given (a JSON object, flat dotted names); "{}" if unset.
inline std::string params_json() { return detail::env_or("XPSCALE_PARAMS", "{}"); }

// True on rank 0 of the trial's group (RANK == "0"), and when RANK is unset.
inline bool is_leader() { return detail::env_or("RANK", "0") == "0"; }

namespace detail {

// Validates and writes one line; step < 0: the next automatic step.
inline void write_report(std::int64_t step, Metrics metrics) {
  std::string body;  // ,"name":value...
  for (auto it = metrics.begin(); it != metrics.end(); ++it) {
    const std::string_view name = it->first;
    if (name.empty() || name == "step")
      throw std::invalid_argument("xpscale::report: metric name '" + std::string(name) +
                                  "' is empty or reserved");
    for (auto prev = metrics.begin(); prev != it; ++prev)
      if (prev->first == name)
        throw std::invalid_argument("xpscale::report: metric '" + std::string(name) +
                                    "' given twice");
    body += ',';
    append_json_string(body, name);
    body += ':';
    append_json_number(body, it->second);
  }
  std::lock_guard guard(lock());
  if (step < 0) step = next_step();
  const std::string line = "{\"step\":" + std::to_string(step) + body + "}\n";
  const std::string fd_text = env_or("XPSCALE_METRICS_FD", "");
  if (fd_text.empty()) {
    write_all(STDERR_FILENO, line, "xpscale::report: writing to stderr");
  } else {
    int fd = -1;
    const auto r = std::from_chars(fd_text.data(), fd_text.data() + fd_text.size(), fd);
    if (r.ec != std::errc() || r.ptr != fd_text.data() + fd_text.size() || fd < 0)
      throw std::invalid_argument("XPSCALE_METRICS_FD: not a file descriptor: '" + fd_text + "'");
    write_all(fd, line, "xpscale::report: writing to XPSCALE_METRICS_FD=" + fd_text);
  }
  next_step() = step + 1;
}

}  // namespace detail

// One metrics line, {"step":step,"name":value,...}, written with one write()
// per call (lines under PIPE_BUF = 4 KiB are never interleaved with other
// writers). Thread-safe. Throws std::invalid_argument for step < 0, an empty
// or duplicate name, or the reserved name "step"; std::system_error if the
// write fails.
inline void report(std::int64_t step, Metrics metrics) {
  if (step < 0) throw std::invalid_argument("xpscale::report: step must be >= 0");
  detail::write_report(step, metrics);
}

// As above, with step one more than the last step reported (0 at first).
inline void report(Metrics metrics) { detail::write_report(-1, metrics); }

// Records that checkpoint_dir() holds a complete checkpoint of `step`: writes
// xpscale_checkpoint.json = {"step": N} to a temporary file, fsyncs it and
// renames it over the old record (atomic), then fsyncs the directory. Call it
// after every file of the checkpoint is written. Throws std::runtime_error
// without a checkpoint directory, std::invalid_argument for step < 0, and
// std::system_error when a file operation fails.
inline void checkpoint_saved(std::int64_t step, const std::string& dir = checkpoint_dir()) {
  if (step < 0) throw std::invalid_argument("xpscale::checkpoint_saved: step must be >= 0");
  const std::string path = detail::checkpoint_record(dir);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw detail::errno_error("cannot create " + tmp);
  try {
    detail::write_all(fd, "{\"step\": " + std::to_string(step) + "}\n", "writing " + tmp);
    if (::fsync(fd) != 0) throw detail::errno_error("fsync " + tmp);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const auto error = detail::errno_error("cannot rename " + tmp + " to " + path);
    ::unlink(tmp.c_str());
    throw error;
  }
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

// The step of the last complete checkpoint in `dir` (see checkpoint_saved()),
// or -1 when there is none or no checkpoint directory is set. Throws
// std::runtime_error if the record is not {"step": <int >= 0>}.
inline std::int64_t resume_step(const std::string& dir = checkpoint_dir()) {
  if (dir.empty()) return -1;
  const std::string path = detail::checkpoint_record(dir);
  std::ifstream in(path);
  if (!in) return -1;
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  // The record is the one-key object written above (or by the Python module):
  // {"step": N} with any JSON whitespace.
  auto bad = [&] { return std::runtime_error(path + ": expected {\"step\": <int >= 0>}"); };
  auto skip_ws = [&](std::size_t i) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
    return i;
  };
  std::size_t i = skip_ws(0);
  if (s.compare(i, 1, "{") != 0) throw bad();
  i = skip_ws(i + 1);
  if (s.compare(i, 6, "\"step\"") != 0) throw bad();
  i = skip_ws(i + 6);
  if (s.compare(i, 1, ":") != 0) throw bad();
  i = skip_ws(i + 1);
  std::int64_t step = -1;
  const auto r = std::from_chars(s.data() + i, s.data() + s.size(), step);
  if (r.ec != std::errc() || step < 0) throw bad();
  i = skip_ws(static_cast<std::size_t>(r.ptr - s.data()));
  if (s.compare(i, 1, "}") != 0 || skip_ws(i + 1) != s.size()) throw bad();
  return step;
}

}  // namespace xpscale::report
