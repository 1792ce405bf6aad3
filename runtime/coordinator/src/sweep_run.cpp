#include "xpscale/coordinator/sweep_run.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "xpscale/config/command.h"
#include "xpscale/config/sweep_config.h"
#include "xpscale/core/error.h"

namespace xpscale {

namespace {
std::string shown(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}
}  // namespace

void check_run_options(const RunOptions& o) {
  if (o.trials && (*o.trials < 1 || *o.trials > kMaxTrials))
    throw UserError("--trials must be in [1, " + std::to_string(kMaxTrials) + "], got " +
                    std::to_string(*o.trials));
  if (!(o.progress_interval_s > 0 && o.progress_interval_s <= kMaxOptionSeconds))
    throw UserError("--progress-interval must be a number of seconds in (0, " +
                    shown(kMaxOptionSeconds) + "], got " + shown(o.progress_interval_s));
  if (!(o.store_retry_s >= 0 && o.store_retry_s <= kMaxOptionSeconds))
    throw UserError("--store-retry must be a number of seconds in [0, " + shown(kMaxOptionSeconds) +
                    "], got " + shown(o.store_retry_s));
  // A lease shorter than a few heartbeats (2 s apart) would be lost to a
  // busy moment.
  if (!(o.lease_s >= 10 && o.lease_s <= kMaxOptionSeconds))
    throw UserError("--lease must be a number of seconds in [10, " + shown(kMaxOptionSeconds) +
                    "], got " + shown(o.lease_s));
  if (!(o.heartbeat_timeout_s >= 0 && o.heartbeat_timeout_s <= kMaxOptionSeconds))
    throw UserError("--heartbeat-timeout must be a number of seconds in [0, " +
                    shown(kMaxOptionSeconds) + "] (0: never), got " + shown(o.heartbeat_timeout_s));
  if (o.task_count < 0 || o.task_count > kMaxTrials)
    throw UserError("--array-size must be in [0, " + std::to_string(kMaxTrials) +
                    "] (0: no job array), got " + std::to_string(o.task_count));
  if (o.task_count == 0 && o.task != 0)
    throw UserError("--array-task " + std::to_string(o.task) +
                    " needs --array-size (the number of tasks of the job array)");
  if (o.task_count > 0 && (o.task < 0 || o.task >= o.task_count))
    throw UserError("--array-task must be in [0, " + std::to_string(o.task_count) +
                    ") for --array-size " + std::to_string(o.task_count) + ", got " +
                    std::to_string(o.task));
}

int exit_status(const RunSummary& s) {
  const bool all_failed = s.completed == 0 && s.failed > 0;
  return all_failed || s.too_many_failures ? kExitFailure
         : s.signal                        ? 128 + s.signal
         : s.preempted && !s.cancelled     ? kExitPreempted
                                           : kExitOk;
}

std::string describe(const RunSummary& s) {
  char wall[32];
  const auto secs = static_cast<long>(s.wall_s);
  std::snprintf(wall, sizeof wall, "%02ld:%02ld:%02ld", secs / 3600, secs / 60 % 60, secs % 60);
  std::string line = std::to_string(s.planned) + " trials" +
                     (s.unbounded ? " (drawn until stopped)" : "") + ": " +
                     std::to_string(s.completed) + " finished, " + std::to_string(s.failed) +
                     " failed";
  if (s.skipped) line += " (" + std::to_string(s.skipped) + " of them before this run)";
  if (s.queued) line += ", " + std::to_string(s.queued) + " not run";
  line += " in " + std::string(wall);
  if (s.signal)
    line +=
        std::string("; interrupted by SIG") + sigabbrev_np(s.signal) + ": run it again to resume";
  else if (s.cancelled)
    line += "; its running trials were recorded interrupted: run it again to resume";
  else if (s.preempted)
    line += "; preempted: run it again to resume";
  if (s.stopped_early) line += "; stopped early: " + s.stop_reason;
  line += "; results in " + s.out_dir + " (xpscale report " + shell_quote(s.out_dir) + ")";
  return line;
}

}  // namespace xpscale
