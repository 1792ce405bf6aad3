// xpscale run: a sweep of external trials on the ranks of this MPI job.
#include <iostream>

#include <boost/program_options.hpp>

#include "commands.h"
#include "xpscale/launcher/external_trial.h"
#include "xpscale/trial/run.h"

namespace po = boost::program_options;

namespace xpscale::cli {

namespace {
constexpr const char* kUsage =
    "usage: xpscale run SWEEP.yaml [options]\n"
    "       mpirun -n N xpscale run SWEEP.yaml [options]\n\n"
    "Runs the sweep's trials, one per group of resources.ranks_per_trial ranks, each\n"
    "group taking the next trial as soon as it is free. Trials are the config's\n"
    "program/command, started on every rank of the group with RANK, WORLD_SIZE,\n"
    "MASTER_ADDR, MASTER_PORT, XPSCALE_PARAMS, ... (docs/runtime.md). Without mpirun\n"
    "it runs on one rank. Results go to a store in out_dir; a run on an out_dir\n"
    "that holds this sweep resumes it.\n\noptions";
}  // namespace

int run_command(const std::vector<std::string>& args) {
  RunOptions options;
  std::string out_dir;
  std::int64_t trials = 0;
  double grace_s = 10, preempt_grace_s = 30, stop_grace_s = 30;
  po::options_description desc(kUsage);
  desc.add_options()("help,h", "show this help")("out-dir", po::value<std::string>(&out_dir),
                                                 "where results go (default: the config's)")(
      "trials", po::value<std::int64_t>(&trials), "run at most N trials")(
      "resume", po::bool_switch(&options.resume),
      "continue the sweep stored in out_dir (an error if there is none)")(
      "force", po::bool_switch(&options.force), "run even if out_dir holds another config's store")(
      "quiet,q", po::bool_switch(&options.quiet), "no progress output")(
      "retry-failed", po::bool_switch(&options.retry_failed),
      "run the trials that failed for good again (a new attempt each)")(
      "store-retry", po::value<double>(&options.store_retry_s)->default_value(300),
      "seconds to wait out a busy, locked or full store before the run ends (exit 4)")(
      "heartbeat-timeout", po::value<double>(&options.heartbeat_timeout_s)->default_value(120),
      "seconds a rank may stay silent (stopped, hung) before the job ends (exit 5); 0: never")(
      "progress-interval", po::value<double>(&options.progress_interval_s)->default_value(10),
      "seconds between progress lines when stderr is not a terminal")(
      "kill-grace", po::value<double>(&grace_s)->default_value(10),
      "seconds between SIGTERM and SIGKILL when a trial is ended")(
      "preempt-grace", po::value<double>(&preempt_grace_s)->default_value(30),
      "on SIGUSR1 (preemption), seconds a trial gets to checkpoint before SIGTERM")(
      "stop-grace", po::value<double>(&stop_grace_s)->default_value(30),
      "when the scheduler stops a trial whose processes poll should_stop(), seconds they "
      "get to end by themselves before SIGTERM")(
      "array-task", po::value<int>(&options.task)->default_value(0),
      "job arrays: this task's index (runs trials i with i % array-size == index)")(
      "array-size", po::value<int>(&options.task_count)->default_value(0),
      "job arrays: the number of tasks (0: no array)");
  po::variables_map vm;
  options.sweep_path = parse_command_line(args, desc, "sweep", vm);
  if (vm.count("help")) {
    std::cout << desc;
    return kExitOk;
  }
  if (options.sweep_path.empty()) throw UserError("run: missing SWEEP.yaml; see --help");
  if (vm.count("out-dir")) options.out_dir = out_dir;
  if (vm.count("trials")) options.trials = trials;  // RunOptions: check_run_options()
  check_seconds_option("--kill-grace", grace_s);
  check_seconds_option("--preempt-grace", preempt_grace_s);
  check_seconds_option("--stop-grace", stop_grace_s);
  // The trial processes own the devices; the launcher's group communicator
  // only carries small control reductions, on the CPU.
  options.backend = "mpi";
  launcher::ExternalTrialOptions ext;
  options.kill_grace_s = grace_s;
  ext.kill_grace = std::chrono::milliseconds(static_cast<std::int64_t>(grace_s * 1000));
  ext.preempt_grace = std::chrono::milliseconds(static_cast<std::int64_t>(preempt_grace_s * 1000));
  ext.stop_grace = std::chrono::milliseconds(static_cast<std::int64_t>(stop_grace_s * 1000));
  return run_and_report(
      options, [ext](const SweepConfig& config) { return launcher::external_trial(config, ext); },
      "xpscale");
}

}  // namespace xpscale::cli
