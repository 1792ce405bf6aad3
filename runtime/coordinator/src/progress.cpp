#include "xpscale/coordinator/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "xpscale/coordinator/protocol.h"
#include "xpscale/core/text.h"

namespace xpscale::detail {
namespace {

constexpr double kBlockEvery = 0.5;        // seconds between redraws of the block
constexpr std::size_t kParamsBytes = 160;  // of params in a line for people
// Trial start and end lines for people, at most, a second: more is a log
// nobody reads (no-op trials run at thousands a second). The summary line
// counts the rest.
constexpr std::uint64_t kTrialLinesPerSecond = 100;

std::string clock_text(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "--:--:--";
  const auto s = static_cast<long>(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

std::string dumped(const nlohmann::ordered_json& j) {
  // Replace, not throw: a reason or stderr tail may hold invalid UTF-8.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void flatten(const nlohmann::ordered_json& v, const std::string& key, std::string& out,
             std::size_t max_bytes) {
  if (out.size() > max_bytes) return;
  if (v.is_object() && (!v.empty() || key.empty())) {
    for (const auto& [k, x] : v.items())
      flatten(x, key.empty() ? k : key + "." + k, out, max_bytes);
    return;
  }
  if (key.empty()) return;  // no params (null): nothing to show
  if (!out.empty()) out += ", ";
  out += key + "=" +
         (v.is_string()         ? v.get<std::string>()
          : v.is_number_float() ? number(v.get<double>())
                                : dumped(v));
}

// The terminal's width in columns (80 when it does not say).
int terminal_width() {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

// XPSCALE_TERMINAL: a width in columns, else 0.
int columns_from_environment() {
  const char* v = std::getenv("XPSCALE_TERMINAL");
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return *end == '\0' && n > 0 && n <= 10000 ? static_cast<int>(n) : 0;
}

// `line` cut to `columns` characters (UTF-8 sequences count as one), so
// that the terminal never wraps it: a wrapped line would break the count
// of lines to move up over. (A wide character counts as one: rare enough.)
std::string fit(const std::string& line, int columns) {
  const auto cols = static_cast<std::size_t>(std::max(columns, 1));
  std::size_t chars = 0, cut = line.size(), keep = line.size();
  for (std::size_t i = 0; i < line.size(); ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) continue;  // continuation byte
    if (chars == (cols > 3 ? cols - 3 : cols)) keep = i;
    if (chars == cols) {
      cut = i;
      break;
    }
    ++chars;
  }
  if (cut == line.size()) return line;
  return cols > 3 ? line.substr(0, keep) + "..." : line.substr(0, cut);
}

// Event numbers to the millisecond (or 1e-4): no 1.5731739997863770 s.
double rounded(double v, double scale) { return std::round(v * scale) / scale; }

nlohmann::ordered_json optional_number(const std::optional<double>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json();
}

}  // namespace

int stderr_terminal_columns() {
  const char* term = std::getenv("TERM");
  if (term && std::strcmp(term, "dumb") == 0) return 0;  // no cursor movement
  if (::isatty(STDERR_FILENO)) return terminal_width();
  return columns_from_environment();
}

std::string params_text(const nlohmann::ordered_json& params, std::size_t max_bytes) {
  std::string out;
  flatten(params, "", out, max_bytes);
  return escaped(out, max_bytes, Escape::kControl);
}

Progress::Progress(ProgressOptions options) : o_(std::move(options)) {
  if (!o_.quiet) {
    mode_ = stderr_terminal_columns() > 0 ? Mode::kBlock : Mode::kLines;
    if (mode_ == Mode::kBlock && !::isatty(STDERR_FILENO)) columns_ = columns_from_environment();
  }
  err_ = std::make_unique<LineWriter>(STDERR_FILENO);
  const double now = unix_now();
  next_block_ = now;
  next_line_ = next_event_ = now + o_.interval_s;
  next_due_ = std::numeric_limits<double>::infinity();
  if (mode_ == Mode::kBlock) next_due_ = next_block_;
  if (mode_ == Mode::kLines) next_due_ = next_line_;
  if (o_.json_events) next_due_ = std::min(next_due_, next_event_);
}

nlohmann::ordered_json Progress::head(const char* name) const {
  return {{"event", name}, {"time", rounded(unix_now(), 1e3)}, {"sweep", o_.sweep}};
}

void Progress::emit(const nlohmann::ordered_json& event) {
  o_.json_events->write(dumped(event) + "\n");
}

void Progress::event(const char* name, const nlohmann::ordered_json& fields) {
  if (!o_.json_events) return;
  auto e = head(name);
  for (const auto& [k, v] : fields.items()) e[k] = v;
  emit(e);
}

void Progress::sweep_started(const nlohmann::ordered_json& fields) {
  event("sweep_started", fields);
}

bool Progress::trial_line_allowed() {
  const double now = unix_now();
  if (now - window_start_ >= 1) {
    window_start_ = now;
    window_lines_ = 0;
  }
  if (window_lines_ >= kTrialLinesPerSecond) {
    ++not_shown_;
    return false;
  }
  ++window_lines_;
  return true;
}

void Progress::trial_started(std::uint64_t id, int attempt, int group,
                             const nlohmann::ordered_json& params) {
  if (mode_ == Mode::kLines && trial_line_allowed()) {
    std::string line = "xpscale: trial " + std::to_string(id);
    if (attempt > 1) line += " attempt " + std::to_string(attempt);
    line += " started on group " + std::to_string(group);
    if (const auto p = params_text(params, kParamsBytes); !p.empty()) line += ": " + p;
    err_->write(line + "\n", true);
  }
  if (o_.json_events) {  // built in place: this runs thousands of times a second
    auto e = head("trial_started");
    e["id"] = id;
    e["attempt"] = attempt;
    e["group"] = group;
    e["params"] = params;
    emit(e);
  }
}

void Progress::trial_ended(const TrialEnd& e) {
  const auto trial = [&] { return "xpscale: trial " + std::to_string(e.id); };
  if (e.status == "failed") {
    if (mode_ != Mode::kQuiet)
      message(e.final ? trial() + " failed: " + e.reason
                      : trial() + " attempt " + std::to_string(e.attempt) + " failed (" + e.reason +
                            "); retrying");
  } else if (mode_ == Mode::kLines && trial_line_allowed()) {
    std::string line = trial();
    if (e.attempt > 1) line += " attempt " + std::to_string(e.attempt);
    line += " " + e.status;
    if (!e.reason.empty()) line += " (" + escaped(e.reason, 200, Escape::kControl) + ")";
    line += " after " + seconds_text(e.seconds);
    if (e.value && !o_.metric.empty())
      line += ", " + escaped(o_.metric, 64, Escape::kControl) + " " + number(*e.value);
    err_->write(line + "\n", true);
  }
  if (o_.json_events) {
    auto j = head("trial_ended");
    j["id"] = e.id;
    j["attempt"] = e.attempt;
    j["group"] = e.group;
    j["status"] = e.status;
    j["final"] = e.final;
    j["value"] = optional_number(e.value);
    j["best_value"] = optional_number(e.best_value);
    j["seconds"] = rounded(e.seconds, 1e3);
    j["reason"] = e.reason;
    emit(j);
  }
}

void Progress::message(const std::string& line) {
  err_->write(clear_block() + line + "\n");
  next_block_ = 0;  // back below the message at the next update()
  if (mode_ == Mode::kBlock) next_due_ = 0;
}

std::string Progress::clear_block() {
  if (block_lines_ == 0) return "";
  // Each line of the block ends with a newline: up to its first line, then
  // clear to the end of the screen.
  return "\r\033[" + std::to_string(std::exchange(block_lines_, 0)) + "A\033[J";
}

void Progress::update(const ProgressSnapshot& s, double now) {
  if (mode_ == Mode::kBlock && now >= next_block_) {
    draw_block(s, false);
    next_block_ = now + kBlockEvery;
  }
  if (mode_ == Mode::kLines && now >= next_line_) {
    err_->write(summary_line(s, false) + "\n");
    next_line_ = now + o_.interval_s;
  }
  if (o_.json_events && now >= next_event_) {
    event("progress", {{"done", s.completed + s.failed},
                       {"completed", s.completed},
                       {"failed", s.failed},
                       {"running", s.running},
                       {"queued", s.queued},
                       {"planned", s.planned},
                       {"unbounded", s.unbounded},
                       {"best_value", optional_number(s.best)},
                       {"best_trial", s.best ? nlohmann::ordered_json(s.best_trial) : nullptr},
                       {"best_params", s.best_params},
                       {"busy_fraction", rounded(s.busy_fraction, 1e4)},
                       {"elapsed", rounded(s.elapsed_s, 1e3)},
                       {"eta", s.eta_s ? nlohmann::ordered_json(rounded(*s.eta_s, 1e3))
                                       : nlohmann::ordered_json()}});
    next_event_ = now + o_.interval_s;
  }
  next_due_ = std::numeric_limits<double>::infinity();
  if (mode_ == Mode::kBlock) next_due_ = next_block_;
  if (mode_ == Mode::kLines) next_due_ = next_line_;
  if (o_.json_events) next_due_ = std::min(next_due_, next_event_);
}

std::string Progress::summary_line(const ProgressSnapshot& s, bool final) {
  std::string line =
      "xpscale: " + std::to_string(s.completed + s.failed) +
      (s.unbounded ? " done (drawing until stopped)" : "/" + std::to_string(s.planned) + " done");
  if (s.failed) line += " (" + std::to_string(s.failed) + " failed)";
  line += ", " + std::to_string(s.running) + " running, " + std::to_string(s.queued) + " queued";
  if (s.best && !o_.metric.empty())
    line += ", best " + escaped(o_.metric, 64, Escape::kControl) + " " + number(*s.best) +
            " (trial " + std::to_string(s.best_trial) + ")";
  line += ", " + clock_text(s.elapsed_s) + " elapsed";
  if (!final && s.eta_s) line += ", ETA " + clock_text(*s.eta_s);
  line += ", groups " + std::to_string(std::lround(s.busy_fraction * 100)) + "% busy";
  if (const auto left_out = std::exchange(not_shown_, 0) + err_->take_dropped())
    line += "; " + std::to_string(left_out) + " trial lines not shown (at most " +
            std::to_string(kTrialLinesPerSecond) + " a second, and none while stderr lags)";
  return line;
}

void Progress::draw_block(const ProgressSnapshot& s, bool final) {
  std::vector<std::string> lines;
  std::string counts =
      "xpscale: " + std::to_string(s.completed + s.failed) +
      (s.unbounded ? " done (drawing until stopped)" : "/" + std::to_string(s.planned) + " done");
  counts += ", " + std::to_string(s.running) + " running, " + std::to_string(s.failed) +
            " failed, " + std::to_string(s.queued) + " queued";
  lines.push_back(std::move(counts));
  if (!o_.metric.empty()) {
    std::string best = "  best " + escaped(o_.metric, 64, Escape::kControl);
    if (s.best) {
      best += " " + number(*s.best) + " (trial " + std::to_string(s.best_trial) + ")";
      if (const auto p = params_text(s.best_params, 4 * kParamsBytes); !p.empty()) best += ": " + p;
    } else {
      best += ": none yet";
    }
    lines.push_back(std::move(best));
  }
  std::string times = "  " + clock_text(s.elapsed_s) + " elapsed";
  if (!final && s.eta_s) times += ", ETA " + clock_text(*s.eta_s);
  times += ", groups " + std::to_string(std::lround(s.busy_fraction * 100)) + "% busy";
  lines.push_back(std::move(times));

  // Redrawn over the old block line by line (no blank frame, no flicker).
  const int width = columns_ > 0 ? columns_ : terminal_width();
  std::string text;
  if (block_lines_ > 0) text = "\r\033[" + std::to_string(block_lines_) + "A";
  for (const auto& l : lines) text += fit(l, width - 1) + "\033[K\n";
  text += "\033[J";  // what is left of a longer old block
  block_lines_ = final ? 0 : static_cast<int>(lines.size());
  err_->write(text);
}

void Progress::finish(const ProgressSnapshot& s, const nlohmann::ordered_json& summary) {
  if (mode_ == Mode::kBlock) draw_block(s, true);  // stays, as the summary
  if (mode_ == Mode::kLines) err_->write(summary_line(s, true) + "\n");
  event("sweep_ended", summary);
  flush(std::numeric_limits<double>::infinity());
}

void Progress::flush(double timeout_s) {
  err_->drain(timeout_s);
  if (o_.json_events) o_.json_events->drain(timeout_s);
}

}  // namespace xpscale::detail
