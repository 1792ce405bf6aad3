// xpscale run: a sweep of external trials on the ranks of this MPI job.
#include <mpi.h>

#include <iostream>
#include <memory>

#include <boost/program_options.hpp>

#include "commands.h"
#include "xpscale/launcher/external_trial.h"
#include "xpscale/report/dashboard.h"
#include "xpscale/trial/run.h"
#include "xpscale/trial/run_cli.h"

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
    "that holds this sweep resumes it. --dashboard serves the live report page from\n"
    "rank 0 while the sweep runs (as `xpscale dashboard OUT_DIR` does).\n\noptions";
}  // namespace

int run_command(const std::vector<std::string>& args) {
  RunOptions options;
  RunCliValues values;
  double grace_s = 10, preempt_grace_s = 30, stop_grace_s = 30;
  int dashboard_port = -1;
  po::options_description desc(kUsage);
  desc.add_options()("help,h", "show this help");
  add_run_options(desc, options, values);
  desc.add_options()("kill-grace", po::value<double>(&grace_s)->default_value(10),
                     "seconds between SIGTERM and SIGKILL when a trial is ended")(
      "preempt-grace", po::value<double>(&preempt_grace_s)->default_value(30),
      "on SIGUSR1 (preemption), seconds a trial gets to checkpoint before SIGTERM")(
      "stop-grace", po::value<double>(&stop_grace_s)->default_value(30),
      "when the scheduler stops a trial whose processes poll should_stop(), seconds they "
      "get to end by themselves before SIGTERM")(
      "dashboard", po::value<int>(&dashboard_port)->implicit_value(8265)->value_name("PORT"),
      "serve the live dashboard on 127.0.0.1:PORT (8265) from rank 0 while the sweep runs");
  po::variables_map vm;
  options.sweep_path = parse_command_line(args, desc, "sweep", vm);
  if (vm.count("help")) {
    std::cout << desc;
    return kExitOk;
  }
  if (options.sweep_path.empty()) throw UserError("run: missing SWEEP.yaml; see --help");
  apply_run_options(vm, values, options);  // ranges: check_run_options()
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
  if (vm.count("dashboard") && (dashboard_port < 0 || dashboard_port > 65535))
    throw UserError("run: --dashboard PORT must be in [0, 65535], got " +
                    std::to_string(dashboard_port));
  // The dashboard lives on rank 0 for the whole run; it is started once the
  // config (and so out_dir) is known. A port it cannot take leaves the
  // sweep running without it: every rank is past start-up by then.
  std::unique_ptr<report::Dashboard> dashboard;
  return run_and_report(
      options,
      [&](const SweepConfig& config) {
        int rank = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        if (dashboard_port >= 0 && rank == 0 && !dashboard) {
          report::DashboardOptions d;
          d.out_dir = config.out_dir;
          d.port = dashboard_port;
          try {
            dashboard = std::make_unique<report::Dashboard>(d);
            dashboard->start();
            std::cerr << "xpscale: dashboard " << dashboard->url() << "\n  "
                      << dashboard->tunnel_hint() << '\n';
          } catch (const std::exception& e) {
            std::cerr << "xpscale: warning: no dashboard (the sweep runs on; pick another port "
                         "with --dashboard=PORT): "
                      << e.what() << '\n';
          }
        }
        return launcher::external_trial(config, ext);
      },
      "xpscale");
}

}  // namespace xpscale::cli
