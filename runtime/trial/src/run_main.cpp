// xpscale::run: main() for in-process trainers.
#include <mpi.h>

#include <iostream>

#include <boost/program_options.hpp>

#include "xpscale/coordinator/preemption.h"
#include "xpscale/trial/run.h"
#include "xpscale/trial/run_cli.h"

namespace po = boost::program_options;

namespace xpscale {

void add_run_options(po::options_description& desc, RunOptions& options, RunCliValues& values) {
  desc.add_options()("store", po::value<std::string>(&values.store),
                     "where results go: postgresql://user@host:port/db (password from PGPASSWORD "
                     "or ~/.pgpass) or sqlite (out_dir's file, the default); overrides the config's "
                     "store: and XPSCALE_STORE")(
      "out-dir", po::value<std::string>(&values.out_dir),
                     "where results go (default: the config's)")(
      "trials", po::value<std::int64_t>(&values.trials), "run at most N trials")(
      "resume", po::bool_switch(&options.resume),
      "continue the sweep stored in out_dir (an error if there is none)")(
      "force", po::bool_switch(&options.force), "run even if out_dir holds another config's store")(
      "quiet,q", po::bool_switch(&options.quiet), "no progress output")(
      "strict", po::bool_switch(&options.strict),
      "treat the config's warnings (what W&B accepts but xpscale reads otherwise) as errors")(
      "retry-failed", po::bool_switch(&options.retry_failed),
      "run the trials that failed for good again (a new attempt each)")(
      "store-retry", po::value<double>(&options.store_retry_s)->default_value(300),
      "seconds to wait out a busy, locked or full store before the run ends (exit 4)")(
      "lease", po::value<double>(&options.lease_s)->default_value(60),
      "PostgreSQL store: seconds after which a job that stopped renewing its lease (killed, "
      "node lost) loses its running trials to the sweep's other jobs")(
      "heartbeat-timeout", po::value<double>(&options.heartbeat_timeout_s)->default_value(120),
      "seconds a rank may stay silent (stopped, hung) before the job ends (exit 5); 0: never")(
      "progress-interval", po::value<double>(&options.progress_interval_s)->default_value(10),
      "seconds between summary lines when stderr is not a terminal, and between "
      "--json-events progress events")(
      "json-events", po::value<std::string>(&values.json_events)->implicit_value("-"),
      "one JSON object per line for programs (trial started/ended, progress, sweep ended) "
      "on stdout, or appended to FILE with --json-events=FILE; --quiet leaves them on")(
      "array-task", po::value<int>(&options.task)->default_value(0),
      "job arrays: this task's index (runs trials i with i % array-size == index)")(
      "array-size", po::value<int>(&options.task_count)->default_value(0),
      "job arrays: the number of tasks (0: no array)");
}

void apply_run_options(const po::variables_map& vm, const RunCliValues& values,
                       RunOptions& options) {
  if (vm.count("out-dir")) options.out_dir = values.out_dir;
  if (vm.count("store")) options.store = values.store;
  if (vm.count("trials")) options.trials = values.trials;  // checked by check_run_options
  if (vm.count("json-events")) {
    if (values.json_events.empty())
      throw UserError("--json-events=FILE: the file name is empty (--json-events alone: stdout)");
    options.json_events = values.json_events;
  }
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
      return kExitFailure;
    }
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int status = 0;
  try {
    check_run_options(options);  // here, so that rank 0 alone says what is wrong
    const RunSummary summary = run_sweep(options, make_train);
    if (rank == 0 && !options.quiet) std::cerr << prog << ": " << describe(summary) << '\n';
    const bool all_failed = summary.completed == 0 && summary.failed > 0;
    if (rank == 0 && all_failed && !summary.preempted)
      std::cerr << prog << ": every trial that ran failed (" << summary.failed
                << "); the reasons: xpscale report " << summary.out_dir << '\n';
    status = exit_status(summary);
  } catch (const ConfigError& e) {
    if (rank == 0) std::cerr << e.what() << '\n';
    status = e.exit_status();
  } catch (const UserError& e) {
    if (rank == 0) std::cerr << prog << ": " << e.what() << '\n';
    status = e.exit_status();
  } catch (const Error& e) {
    if (e.category() != ErrorCategory::kUnavailable) {
      std::cerr << prog << ": rank " << rank << ": error: " << e.what() << '\n';
      MPI_Abort(MPI_COMM_WORLD, exit_status_of(e));
    }
    // Rank 0's coordinator released every group before it threw: the other
    // ranks end normally, so no abort.
    std::cerr << prog << ": " << e.what() << '\n';
    status = e.exit_status();
  } catch (const std::exception& e) {
    // Not the same on every rank: end the job rather than leave ranks waiting.
    std::cerr << prog << ": rank " << rank << ": error: " << e.what() << '\n';
    MPI_Abort(MPI_COMM_WORLD, exit_status_of(e));
  }
  if (!initialized) MPI_Finalize();
  return status;
}

int run(int argc, char** argv, const TrainFn& train) {
  const char* prog = argc > 0 ? argv[0] : "trainer";
  RunOptions options;
  try {
    po::options_description desc("options");
    RunCliValues values;
    desc.add_options()("help,h", "show this help")(
        "sweep", po::value<std::string>(&options.sweep_path)->required(),
        "the sweep config (YAML)")("backend",
                                   po::value<std::string>(&options.backend)->default_value("auto"),
                                   "collectives backend: auto | mpi | nccl");
    add_run_options(desc, options, values);
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: " << prog
                << " --sweep SWEEP.yaml [options]\n\nRuns the sweep's trials with this "
                   "program's train function on the ranks of the MPI job (mpirun -n N "
                << prog << " ...), or on one rank without mpirun.\n\n"
                << desc;
      return kExitOk;
    }
    po::notify(vm);
    apply_run_options(vm, values, options);
  } catch (const po::error& e) {
    std::cerr << prog << ": " << e.what() << "; see --help\n";
    return kExitUsage;
  } catch (const UserError& e) {
    std::cerr << prog << ": " << e.what() << '\n';
    return e.exit_status();
  }
  return run_and_report(options, TrainFactory([&](const SweepConfig&) { return train; }), prog);
}

}  // namespace xpscale
