#pragma once
// Progress: what the coordinator tells people and programs while a sweep
// runs (docs/runtime.md, "Progress and events").
//
// People, on stderr:
//   a terminal  (stderr_terminal_columns() > 0) a status block of three
//               lines, redrawn in place every 0.5 s: counts, best so far
//               with its params, elapsed, ETA, busy fraction. The last one
//               stays as the summary.
//   otherwise   (a Slurm log, a pipe, TERM=dumb) one line per trial start
//               and end, at most 100 a second, and a summary line every
//               interval that counts the lines left out.
//   Failures, retries and the coordinator's other messages go through
//   message(), which first clears the block, so lines never mix with it.
//   quiet: only message()s (the caller decides which).
// Programs, with --json-events: one JSON object per line, as they happen.
//
// Both are written by LineWriter threads (line_writer.h): the coordinator
// only formats. Trial lines for people are also dropped, and counted, while
// stderr is more than LineWriter::kMaxPending bytes behind; JSON events and
// messages never are.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "xpscale/coordinator/line_writer.h"

namespace xpscale::detail {

struct ProgressOptions {
  bool quiet = false;
  double interval_s = 10;                   // between summary lines and "progress" events
  std::string sweep;                        // the sweep's name, in every event
  std::string metric;                       // the sweep metric's name; empty when none
  std::unique_ptr<LineWriter> json_events;  // null: no events
};

// The sweep at one moment, as the coordinator sees it.
struct ProgressSnapshot {
  std::uint64_t completed = 0, failed = 0;  // for good, this run or earlier
  std::uint64_t running = 0, queued = 0;
  std::uint64_t planned = 0;  // drawn so far, when unbounded
  bool unbounded = false;
  std::optional<double> best;
  std::uint64_t best_trial = 0;
  nlohmann::ordered_json best_params;  // null when not known
  double elapsed_s = 0;                // this run
  std::optional<double> eta_s;         // bounded sweeps, once a trial ended
  double busy_fraction = 0;            // trial time / (groups x elapsed), this run
};

// The end of one attempt of a trial.
struct TrialEnd {
  std::uint64_t id = 0;
  int attempt = 1;
  int group = -1;
  std::string status;                // completed | stopped | failed | interrupted
  bool final = true;                 // false: the trial runs again (retry, restart, requeue)
  std::optional<double> value;       // the best metric value this attempt reported
  std::optional<double> best_value;  // the sweep's best so far
  double seconds = 0;
  std::string reason;
};

class Progress {
 public:
  explicit Progress(ProgressOptions options);

  // JSON only (run_sweep printed the line for people): `fields` go after
  // "event", "time" and "sweep".
  void sweep_started(const nlohmann::ordered_json& fields);
  void trial_started(std::uint64_t id, int attempt, int group,
                     const nlohmann::ordered_json& params);
  // Failures and retries are message()s for people (even on a terminal);
  // other ends are event lines.
  void trial_ended(const TrialEnd& end);
  // A line for people ("xpscale: ..."), printed even when quiet: the
  // caller decides.
  void message(const std::string& line);
  // Whether update() has something to draw or print at unix time `now`:
  // cheap, for every turn of the coordinator.
  bool due(double now) const { return now >= next_due_; }
  void update(const ProgressSnapshot& snapshot, double now);
  // The last block or summary line and the "sweep_ended" event (`summary`
  // after "event", "time" and "sweep"), then waits for both to be written.
  void finish(const ProgressSnapshot& snapshot, const nlohmann::ordered_json& summary);
  // Waits at most timeout_s for what is queued to be written (before an
  // abort).
  void flush(double timeout_s);

 private:
  enum class Mode { kQuiet, kBlock, kLines };

  // An event's first keys: "event", "time", "sweep".
  nlohmann::ordered_json head(const char* name) const;
  void emit(const nlohmann::ordered_json& event);
  // head(name) and `fields` (for the rare events).
  void event(const char* name, const nlohmann::ordered_json& fields);
  void draw_block(const ProgressSnapshot& snapshot, bool final);
  std::string clear_block();
  std::string summary_line(const ProgressSnapshot& snapshot, bool final);
  // Whether a trial start or end line fits in this second's share.
  bool trial_line_allowed();

  ProgressOptions o_;
  Mode mode_ = Mode::kQuiet;
  std::unique_ptr<LineWriter> err_;  // stderr
  int columns_ = 0;                  // XPSCALE_TERMINAL's; 0: ask stderr
  int block_lines_ = 0;              // on screen now, above the cursor
  double next_block_ = 0, next_line_ = 0, next_event_ = 0, next_due_ = 0;
  double window_start_ = 0;  // of the second trial lines are counted in
  std::uint64_t window_lines_ = 0, not_shown_ = 0;
};

// The width of the terminal that stderr is, in columns (80 when it does
// not say); 0 when stderr is no terminal or TERM is "dumb". Under mpirun,
// rank 0's stderr is a pipe to mpirun: there XPSCALE_TERMINAL=COLUMNS
// (which `xpscale launch` passes on when its own stderr is a terminal)
// says that it ends on a terminal that wide.
int stderr_terminal_columns();

// "x=0.5, opt=adam, model.depth=4": a trial's params for a line of text,
// nested keys joined by dots, control bytes escaped, at most max_bytes.
std::string params_text(const nlohmann::ordered_json& params, std::size_t max_bytes);

}  // namespace xpscale::detail
