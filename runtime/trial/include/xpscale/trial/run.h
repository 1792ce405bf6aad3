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

#include "xpscale/config/sweep_config.h"
#include "xpscale/coordinator/sweep_run.h"
#include "xpscale/trial/trial.h"

namespace xpscale {

// RunOptions (what to run) and RunSummary (what ran) are in
// coordinator/sweep_run.h, with describe().
using TrainFn = std::function<void(Trial&)>;

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

// The store a run of `config` uses: `flag` (--store), else the config's
// `store:`, else XPSCALE_STORE; "" for out_dir's SQLite file (also for
// "sqlite"). Throws UserError for anything but a PostgreSQL URL, and for
// a password in the config's `store:` (shown without it).
std::string chosen_store_url(const std::optional<std::string>& flag, const SweepConfig& config);

// A sweep's name in a PostgreSQL store: its config's `name`, else its
// out_dir's last part (runs/<config file stem> by default).
std::string postgres_sweep_name(const SweepConfig& config);

}  // namespace xpscale
