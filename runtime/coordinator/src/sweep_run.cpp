#include "xpscale/coordinator/sweep_run.h"

#include <cstdio>
#include <cstring>

#include "xpscale/config/command.h"

namespace xpscale {

std::string describe(const RunSummary& s) {
  char wall[32];
  const auto secs = static_cast<long>(s.wall_s);
  std::snprintf(wall, sizeof wall, "%02ld:%02ld:%02ld", secs / 3600, secs / 60 % 60, secs % 60);
  std::string line = std::to_string(s.planned) + " trials: " + std::to_string(s.completed) +
                     " finished, " + std::to_string(s.failed) + " failed";
  if (s.skipped) line += " (" + std::to_string(s.skipped) + " of them before this run)";
  if (s.queued) line += ", " + std::to_string(s.queued) + " not run";
  line += " in " + std::string(wall);
  if (s.signal)
    line += std::string("; interrupted by SIG") + sigabbrev_np(s.signal) +
            ": run it again to resume";
  else if (s.preempted)
    line += "; preempted: run it again to resume";
  if (s.stopped_early) line += "; stopped early: " + s.stop_reason;
  line += "; results in " + s.out_dir + " (xpscale report " + shell_quote(s.out_dir) + ")";
  return line;
}

}  // namespace xpscale
