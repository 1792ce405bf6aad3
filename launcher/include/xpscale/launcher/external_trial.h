#pragma once
// External trials: the config's program/command run as a process on every
// rank of the trial's group (`xpscale run`).
//
// Each rank spawns the command (no shell) with the W&B arguments and the
// distributed environment:
//   RANK, WORLD_SIZE          rank within the trial's group, group size
//   LOCAL_RANK, LOCAL_WORLD_SIZE  among the group's ranks on this host
//   MASTER_ADDR, MASTER_PORT  the group leader's host (127.0.0.1 when the
//                             whole group is on one host) and a port that
//                             was free there
//   CUDA_VISIBLE_DEVICES      with resources.gpus_per_rank = g > 0: the
//                             rank's devices (gpu_binding.h)
//   XPSCALE_TRIAL_ID, XPSCALE_ATTEMPT, XPSCALE_PARAMS (JSON),
//   XPSCALE_TRIAL_DIR, XPSCALE_CHECKPOINT_DIR, XPSCALE_METRICS_FD
//   XPSCALE_CONTROL           a file the runtime writes the scheduler's stop
//                             decision to: {"decision": "stop", "reason": ...}
//   XPSCALE_DATA              with a data: section: {"train": {...}, "val":
//                             {...}}, each split as dataset_spec_json()
// Open MPI's and PMIx's own variables (OMPI_*, PMIX_*, PMI_*) are removed,
// so a trial never mistakes itself for a rank of the sweep's MPI job.
//
// stdout/stderr go to out_dir/trials/<id>/logs/attempt<a>.rank<r>.{out,err}.
// The group leader's metrics lines (JSON objects, "step" optional) become
// report()s; a Stop decision, resources.time_limit, or a failed rank ends
// the process tree of every rank of the trial (SIGTERM, grace, SIGKILL).
// A rank whose process exits non-zero or is killed fails the trial with
// that reason and the tail of its stderr. On preemption (SIGUSR1 to the
// sweep), every rank forwards SIGUSR1 to its process group and ends the
// tree after preempt_grace; the attempt is then interrupted, not failed.
#include <chrono>

#include "xpscale/config/sweep_config.h"
#include "xpscale/trial/run.h"

namespace xpscale::launcher {

struct ExternalTrialOptions {
  // Between SIGTERM and SIGKILL when a trial is ended.
  std::chrono::milliseconds kill_grace{std::chrono::seconds(10)};
  // Preemption (xpscale/coordinator/preemption.h): between forwarding SIGUSR1
  // to the trial's process group and ending it (SIGTERM, kill_grace,
  // SIGKILL). The trial should checkpoint and exit within it.
  std::chrono::milliseconds preempt_grace{std::chrono::seconds(30)};
  // A Stop decision (ASHA, Hyperband, median, PBT) is written to the file
  // XPSCALE_CONTROL names; when every rank's process polls it (xpscale.trial's
  // should_stop() leaves "<file>.polling"), they may end by themselves
  // within this grace; otherwise, or after it, the tree is ended.
  std::chrono::milliseconds stop_grace{std::chrono::seconds(30)};
};

// The train function that runs config's command. The config must be
// external (config.is_external()); it must outlive the function.
TrainFn external_trial(const SweepConfig& config, ExternalTrialOptions options = {});

}  // namespace xpscale::launcher
