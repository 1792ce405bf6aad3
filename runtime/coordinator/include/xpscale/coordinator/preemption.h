#pragma once
// Preemption: a Slurm job about to hit its time limit (or to be preempted)
// gets SIGUSR1 some seconds before the end (`sbatch --signal=B:USR1@grace`;
// the batch script forwards it to the job step, slurm/sweep.sbatch.in).
//
// run_sweep installs a SIGUSR1 handler on every rank for its duration.
// Once the signal has arrived on any rank:
//   - the coordinator starts no new trial, and answers every report() with
//     Stop, reason "preempted" (a leader that saw the signal tells it);
//   - external trials get SIGUSR1 forwarded to their process group, and
//     SIGTERM/SIGKILL once ExternalTrialOptions::preempt_grace has passed;
//   - a trial that ends this way is recorded as interrupted (its attempt
//     "interrupted", the trial queued again), so the next run of the sweep
//     resumes it from its checkpoint directory instead of from scratch;
//   - the store is committed and run_sweep returns a summary with
//     `preempted` set (exit status kExitPreempted of the command line).
//
// SIGTERM, SIGINT and SIGHUP (Ctrl-C, scancel, mpirun passing on a kill,
// a closed terminal) end the run the same way, except that external
// trials get no SIGUSR1 and no preempt grace: their trees are ended at once
// (SIGTERM, kill_grace, SIGKILL); the run's summary carries the signal and
// the command exits with 128 + its number. The coordinator records every
// running attempt interrupted as soon as it sees the signal, so a SIGKILL
// that follows (Slurm's KillWait, mpirun's abort) loses nothing. A second
// such signal ends the process at once (Ctrl-C twice), as by default.
#include <memory>
#include <string>

#include "xpscale/core/error.h"

struct sigaction;

namespace xpscale {

// Whether preemption was requested in this process (async-signal-safe):
// SIGUSR1, SIGTERM, SIGINT or SIGHUP arrived, or request_preemption().
bool preemption_requested();
// The first of SIGTERM, SIGINT, SIGHUP that arrived, or 0.
int termination_signal();
// Requests preemption as SIGUSR1 does (the coordinator calls it when a
// group leader reports that its rank got the signal; tests call it too).
void request_preemption();

// Thrown by a train function (the external trial runner) that ended its
// trial because of preemption: the attempt is recorded as interrupted, not
// failed.
class TrialPreempted : public Error {
 public:
  explicit TrialPreempted(const std::string& what) : Error(what, ErrorCategory::kPreempted) {}
};

// Installs the SIGUSR1, SIGTERM, SIGINT and SIGHUP handlers for its lifetime and restores the
// previous disposition afterwards. Clears an earlier request: each sweep starts unpreempted.
class PreemptionHandler {
 public:
  PreemptionHandler();
  ~PreemptionHandler();
  PreemptionHandler(const PreemptionHandler&) = delete;
  PreemptionHandler& operator=(const PreemptionHandler&) = delete;

 private:
  std::unique_ptr<struct sigaction[]> previous_;
};

}  // namespace xpscale
