// xpscale: the command line. Dispatches to a subcommand; main() below is
// the one place where exceptions become messages and exit statuses.
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options/errors.hpp>

#include "commands.h"
#include "xpscale/config/diagnostics.h"
#include "xpscale/core/text.h"

namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>&);
};

const Subcommand kSubcommands[] = {
    {"run", "run a sweep's trials on the ranks of this job (or on one rank)",
     xpscale::cli::run_command},
    {"launch", "start `xpscale run` on N ranks with mpirun", xpscale::cli::launch_command},
    {"plan", "list the trials a sweep config would run, without running them",
     xpscale::cli::plan_command},
    {"stop", "ask the runs of a sweep to stop drawing trials (resumable)",
     xpscale::cli::stop_command},
    {"report", "a sweep's leaderboard, or its HTML report (--html), from its out_dir",
     xpscale::cli::report_command},
    {"dashboard", "serve a sweep's report page, live, over HTTP",
     xpscale::cli::dashboard_command},
    {"export", "a sweep's store as JSON lines", xpscale::cli::export_command},
    {"slurm", "render, submit and follow a sweep as a Slurm batch job",
     xpscale::cli::slurm_command},
    {"shard", "write a data set as tar shards with indexes and a manifest",
     xpscale::cli::shard_command},
    {"enqueue", "add a sweep to a queue of sweeps in a PostgreSQL store",
     xpscale::cli::enqueue_command},
    {"queue", "list, pause, resume or cancel the queue of sweeps", xpscale::cli::queue_command},
    {"agent", "serve a queue of sweeps: run its entries as jobs, one after another",
     xpscale::cli::agent_command},
};

void print_usage(std::ostream& out) {
  out << "usage: xpscale <command> [options]\n"
         "       xpscale <command> --help\n\n"
         "xpscale runs hyperparameter sweeps (W&B-style YAML configs) as parallel trials\n"
         "on MPI rank groups.\n\ncommands:\n";
  for (const auto& c : kSubcommands) {
    std::string name = c.name;
    name.resize(10, ' ');
    out << "  " << name << c.summary << '\n';
  }
  out << "\noptions:\n  -h, --help     show this help\n  --version      show the version\n";
}

int dispatch(int argc, char** argv) {
  if (argc < 2) {
    print_usage(std::cerr);
    return xpscale::kExitUsage;
  }
  const std::string first = argv[1];
  if (first == "-h" || first == "--help" || first == "help") {
    print_usage(std::cout);
    return xpscale::kExitOk;
  }
  if (first == "--version" || first == "version") {
    std::cout << "xpscale " << XPSCALE_VERSION << '\n';
    return xpscale::kExitOk;
  }
  const std::vector<std::string> rest(argv + 2, argv + argc);
  std::vector<std::string> names;
  for (const auto& c : kSubcommands) {
    if (first == c.name) return c.run(rest);
    names.emplace_back(c.name);
  }
  std::string note;
  if (auto near = xpscale::nearest(first, names)) note = " (did you mean '" + *near + "'?)";
  std::cerr << "xpscale: unknown command '" << first << "'" << note
            << "; `xpscale --help` lists the commands\n";
  return xpscale::kExitUsage;
}

}  // namespace

// The one place where an exception becomes a message and an exit status:
// the status is the error's category's (core/error.h); a config's
// diagnostics print as they are, other messages after "xpscale: ".
int main(int argc, char** argv) {
  try {
    return dispatch(argc, argv);
  } catch (const xpscale::ConfigError& e) {
    std::cerr << e.what() << '\n';
    return e.exit_status();
  } catch (const boost::program_options::error& e) {
    std::cerr << "xpscale: " << e.what() << "; see --help\n";
    return xpscale::kExitUsage;
  } catch (const xpscale::Error& e) {
    std::cerr << "xpscale: " << (e.category() == xpscale::ErrorCategory::kUser ? "" : "error: ")
              << e.what() << '\n';
    return e.exit_status();
  } catch (const std::exception& e) {
    std::cerr << "xpscale: error: " << e.what() << '\n';
    return xpscale::exit_status_of(e);
  } catch (...) {
    std::cerr << "xpscale: error: unknown exception\n";
    return xpscale::kExitFailure;
  }
}
