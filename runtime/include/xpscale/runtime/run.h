#pragma once
// Running a sweep: the entry points of libxpscale.
//
//   int main(int argc, char** argv) { return xpscale::run(argc, argv, train); }
//
// and then `mpirun -n 8 ./trainer --sweep sweep.yaml` (or just `./trainer
// --sweep sweep.yaml`: one rank). MPI_COMM_WORLD is split into groups of
// resources.ranks_per_trial ranks; each group runs one trial at a time and
// asks for the next as soon as it is free. Rank 0 also runs the
// coordinator on a background thread, so every rank trains.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "xpscale/runtime/sweep_config.h"
#include "xpscale/runtime/trial.h"

namespace xpscale {

using TrainFn = std::function<void(Trial&)>;

struct RunOptions {
  std::string sweep_path;
  std::optional<std::string> out_dir;  // overrides the config's out_dir
  std::optional<std::int64_t> trials;  // overrides the trial budget
  // Resume: automatic when out_dir holds a store of the same config;
  // `resume` makes a missing store an error instead of a fresh start.
  bool resume = false;
  // Run even if the store in out_dir was made by a different config:
  // finished trials whose parameters are unchanged are kept.
  bool force = false;
  bool quiet = false;
  // Progress: a live status line when stderr is a terminal, else a log
  // line every `progress_interval_s`.
  double progress_interval_s = 10;
  // Communicator backend for the trial groups: auto | mpi | nccl.
  std::string backend = "auto";
  // Job arrays: run only trials i with i % task_count == task, into the
  // store out_dir/xpscale.task<task>.db (store_path). task_count 0: all.
  int task = 0, task_count = 0;
};

struct RunSummary {
  std::string out_dir;
  std::uint64_t planned = 0;    // trials in the sweep
  std::uint64_t completed = 0;  // finished this run or earlier (incl. stopped)
  std::uint64_t failed = 0;     // failed for good (after retries)
  std::uint64_t skipped = 0;    // finished before this run (resume)
  std::uint64_t queued = 0;     // never started (sweep stopped early)
  bool stopped_early = false;   // target reached or max_failures passed
  bool preempted = false;       // SIGUSR1 ended the run early (preemption.h)
  std::string stop_reason;
  double wall_s = 0;
};

// Runs the sweep of options.sweep_path on MPI_COMM_WORLD. Collective: every
// rank calls it; MPI must be initialised with MPI_THREAD_MULTIPLE. The
// summary is complete on rank 0 and holds out_dir on the others.
// Throws UserError (the same on every rank) for a bad config, a store of
// another config, or a world too small for one group.
RunSummary run_sweep(const RunOptions& options, const TrainFn& train);
// The same, for train functions that depend on the config (external
// trials): make_train runs on every rank once the config is loaded, and may
// throw UserError to refuse it.
using TrainFactory = std::function<TrainFn(const SweepConfig&)>;
RunSummary run_sweep(const RunOptions& options, const TrainFactory& make_train);

// One line for people: "12 trials: 11 completed, 1 failed in 00:01:02; results
// in runs/x (xpscale report runs/x)".
std::string describe(const RunSummary& summary);

// main() for in-process trainers: parses --sweep FILE [--out-dir D]
// [--trials N] [--resume] [--force] [--quiet] [--backend B] (and --help),
// initialises MPI (MPI_THREAD_MULTIPLE) unless the program did, runs the
// sweep, prints the summary on rank 0 and returns the exit status: 0 when
// the sweep ran (trials may have failed), 1 when it stopped because of
// max_failures or an internal error, 2 for a user error, kExitPreempted (3)
// when SIGUSR1 preempted it (preemption.h). --array-task/--array-size run a
// job array's share (RunOptions::task).
int run(int argc, char** argv, const TrainFn& train);

// What run() does once its flags are parsed, for commands that parse their
// own (`xpscale run`): initialises MPI unless the program did, runs the
// sweep, prints errors (on rank 0 for user errors) and the summary, and
// returns the exit status as run() does. `prog` prefixes messages.
int run_and_report(const RunOptions& options, const TrainFactory& make_train, const char* prog);

}  // namespace xpscale
