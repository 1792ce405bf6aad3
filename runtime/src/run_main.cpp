// xpscale::run: main() for in-process trainers.
#include <mpi.h>

#include <cstdio>
#include <iostream>

#include <boost/program_options.hpp>

#include "xpscale/runtime/preemption.h"
#include "xpscale/runtime/run.h"

namespace po = boost::program_options;

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
  if (s.preempted) line += "; preempted: run it again to resume";
  if (s.stopped_early) line += "; stopped early: " + s.stop_reason;
  line += "; results in " + s.out_dir + " (xpscale report " + s.out_dir + ")";
  return line;
}

int run_and_report(const RunOptions& options, const TrainFactory& make_train, const char* prog) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (provided < MPI_THREAD_MULTIPLE) {
      std::cerr << prog
                << ": this MPI library does not provide MPI_THREAD_MULTIPLE, which the "
                   "coordinator thread needs\n";
      MPI_Finalize();
      return 1;
    }
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int status = 0;
  try {
    const RunSummary summary = run_sweep(options, make_train);
    if (rank == 0 && !options.quiet) std::cerr << prog << ": " << describe(summary) << '\n';
    const bool too_many_failures =
        summary.stopped_early && summary.stop_reason.rfind("more than max_failures", 0) == 0;
    status = too_many_failures ? 1 : summary.preempted ? kExitPreempted : 0;
  } catch (const ConfigError& e) {
    if (rank == 0) std::cerr << e.what() << '\n';
    status = 2;
  } catch (const UserError& e) {
    if (rank == 0) std::cerr << prog << ": " << e.what() << '\n';
    status = 2;
  } catch (const std::exception& e) {
    // Not the same on every rank: end the job rather than leave ranks waiting.
    std::cerr << prog << ": rank " << rank << ": error: " << e.what() << '\n';
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (!initialized) MPI_Finalize();
  return status;
}

int run(int argc, char** argv, const TrainFn& train) {
  const char* prog = argc > 0 ? argv[0] : "trainer";
  RunOptions options;
  try {
    po::options_description desc("options");
    std::string out_dir;
    std::int64_t trials = 0;
    desc.add_options()("help,h", "show this help")(
        "sweep", po::value<std::string>(&options.sweep_path)->required(),
        "the sweep config (YAML)")("out-dir", po::value<std::string>(&out_dir),
                                   "where results go (default: the config's)")(
        "trials", po::value<std::int64_t>(&trials), "run at most N trials")(
        "resume", po::bool_switch(&options.resume), "continue the sweep stored in out_dir")(
        "force", po::bool_switch(&options.force), "run even if out_dir holds another config")(
        "quiet,q", po::bool_switch(&options.quiet), "no progress output")(
        "backend", po::value<std::string>(&options.backend)->default_value("auto"),
        "collectives backend: auto | mpi | nccl")(
        "array-task", po::value<int>(&options.task)->default_value(0),
        "job arrays: this task's index (runs trials i with i % array-size == index)")(
        "array-size", po::value<int>(&options.task_count)->default_value(0),
        "job arrays: the number of tasks (0: no array)");
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: " << prog
                << " --sweep SWEEP.yaml [options]\n\nRuns the sweep's trials with this "
                   "program's train function on the ranks of the MPI job (mpirun -n N "
                << prog << " ...), or on one rank without mpirun.\n\n"
                << desc;
      return 0;
    }
    po::notify(vm);
    if (vm.count("out-dir")) options.out_dir = out_dir;
    if (vm.count("trials")) {
      if (trials < 1) throw UserError("--trials must be >= 1, got " + std::to_string(trials));
      options.trials = trials;
    }
  } catch (const po::error& e) {
    std::cerr << prog << ": " << e.what() << "; see --help\n";
    return 2;
  } catch (const UserError& e) {
    std::cerr << prog << ": " << e.what() << '\n';
    return 2;
  }
  return run_and_report(options, TrainFactory([&](const SweepConfig&) { return train; }), prog);
}

}  // namespace xpscale
