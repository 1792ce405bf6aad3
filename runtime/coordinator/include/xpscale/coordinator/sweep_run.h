#pragma once
// What a run of a sweep is asked to do (RunOptions) and what it did
// (RunSummary): the coordinator fills the summary; xpscale::run_sweep
// (trial/run.h) takes the options and returns the summary.
#include <cstdint>
#include <optional>
#include <string>

namespace xpscale {

struct RunOptions {
  std::string sweep_path;
  std::optional<std::string> out_dir;  // overrides the config's out_dir
  std::optional<std::int64_t> trials;  // overrides the trial budget
  // --store: where the results go, a postgresql:// URL or "sqlite" (out_dir's
  // file); overrides the config's `store:` and XPSCALE_STORE (docs/store.md).
  std::optional<std::string> store;
  // Resume: automatic when out_dir holds a store of the same config;
  // `resume` makes a missing store an error instead of a fresh start.
  bool resume = false;
  // Run even if the store in out_dir was made by a different config:
  // finished trials whose parameters are unchanged are kept.
  bool force = false;
  // Run the trials that failed for good again (a new attempt each, with
  // fresh retries), e.g. after fixing what made them fail.
  bool retry_failed = false;
  bool quiet = false;
  // The config's warnings are errors (ConfigOptions::strict).
  bool strict = false;
  // Progress for people on stderr (progress.h): a status block redrawn in
  // place when stderr is a terminal, else a line per trial start and end
  // and a summary line every `progress_interval_s`. `quiet`: none.
  double progress_interval_s = 10;
  // One JSON object per line for programs (docs/runtime.md, "Progress and
  // events"): "-" for stdout, else a file appended to. Not silenced by quiet.
  std::optional<std::string> json_events;
  // How long transient store errors (busy, locked, disk full, I/O) are
  // retried before the run ends with kExitStoreUnavailable
  // (retrying_store.h).
  double store_retry_s = 300;
  // A PostgreSQL store: a job that has not renewed its lease for this long
  // (killed, node lost, cut off) loses its running trials to the other jobs
  // of the sweep (shared_sweep.h).
  double lease_s = 60;
  // A rank silent for this long (no heartbeat: stopped, stuck in the kernel
  // or in MPI) ends the job with kExitRankLost; 0: never (protocol.h).
  double heartbeat_timeout_s = 120;
  // Between SIGTERM and SIGKILL when an external trial is ended; with a
  // margin, how long past resources.time_limit an attempt may run before
  // its group counts as lost.
  double kill_grace_s = 10;
  // Communicator backend for the trial groups: auto | mpi | nccl.
  std::string backend = "auto";
  // Job arrays: run only trials i with i % task_count == task, into the
  // store out_dir/xpscale.task<task>.db (store_path). task_count 0: all.
  int task = 0, task_count = 0;
};

struct RunSummary {
  std::string out_dir;
  std::uint64_t planned = 0;    // trials in the sweep (drawn so far, when unbounded)
  bool unbounded = false;       // trials are drawn until the sweep is stopped
  std::uint64_t completed = 0;  // finished this run or earlier (incl. stopped)
  std::uint64_t failed = 0;     // failed for good (after retries)
  std::uint64_t skipped = 0;    // finished before this run (resume)
  std::uint64_t queued = 0;     // never started (sweep stopped early)
  bool stopped_early = false;   // target reached, max_failures passed or `xpscale stop`
  bool preempted = false;       // SIGUSR1 ended the run early (preemption.h)
  int signal = 0;               // SIGTERM, SIGINT or SIGHUP ended it (then preempted too)
  bool cancelled = false;       // `xpscale stop --cancel`: preempted too, but not an error
  bool too_many_failures = false;  // max_failures passed (or an unbounded sweep only failed)
  std::string stop_reason;
  double wall_s = 0;
};

// The most seconds a grace or interval option takes (one day): more is a
// typo, and in milliseconds it could overflow.
inline constexpr double kMaxOptionSeconds = 86400;

// Throws UserError naming the first option out of range, as its flag:
// --trials in [1, kMaxTrials], --progress-interval finite in (0, 86400]
// seconds, --array-size in [0, kMaxTrials] and --array-task in
// [0, array-size) (0 without an array). run_and_report() calls it.
void check_run_options(const RunOptions& options);

// The exit status of a run that returned `summary` (core/error.h): 1 when
// max_failures passed or every trial that ran failed, 128 + the signal that
// interrupted it, 3 when preempted (not cancelled), else 0.
int exit_status(const RunSummary& summary);

// One line for people: "12 trials: 11 completed, 1 failed in 00:01:02; results
// in runs/x (xpscale report runs/x)".
std::string describe(const RunSummary& summary);

}  // namespace xpscale
