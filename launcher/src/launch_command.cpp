// xpscale launch: execs mpirun with the flags a sweep needs, like horovodrun.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include <boost/program_options.hpp>

#include "commands.h"
#include "xpscale/config/command.h"
#include "xpscale/coordinator/progress.h"
#include "xpscale/core/error.h"
#include "xpscale/trial/run.h"

namespace po = boost::program_options;

namespace xpscale::cli {

namespace {
constexpr const char* kUsage =
    "usage: xpscale launch -n N SWEEP.yaml [run options] [-- mpirun options]\n\n"
    "Starts N ranks of `xpscale run SWEEP.yaml` with mpirun: adds --oversubscribe\n"
    "when N is more than this host's cores, --allow-run-as-root as root, and\n"
    "passes -H/--hostfile through. Words after `--` go to mpirun as they are.\n"
    "`--print` shows the command instead of running it.\n\noptions";
}  // namespace

std::string self_exe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("xpscale") : p.string();
}

int launch_command(const std::vector<std::string>& args_in) {
  // Words after "--" belong to mpirun.
  std::vector<std::string> args, mpirun_extra;
  bool after = false;
  for (const auto& a : args_in) {
    if (!after && a == "--") {
      after = true;
      continue;
    }
    (after ? mpirun_extra : args).push_back(a);
  }
  int n = 0;
  std::string hosts, hostfile, mpirun = "mpirun";
  bool print = false;
  po::options_description desc(kUsage);
  desc.add_options()("help,h", "show this help")("np,n", po::value<int>(&n)->required(),
                                                 "number of ranks")(
      "hosts,H", po::value<std::string>(&hosts), "hosts, as mpirun -H")(
      "hostfile", po::value<std::string>(&hostfile), "hostfile, as mpirun --hostfile")(
      "mpirun", po::value<std::string>(&mpirun)->default_value("mpirun"), "the mpirun to exec")(
      "print", po::bool_switch(&print), "print the mpirun command instead of running it");
  po::variables_map vm;
  // Unknown options are `xpscale run` options; they pass through.
  auto parsed = po::command_line_parser(args).options(desc).allow_unregistered().run();
  po::store(parsed, vm);
  if (vm.count("help")) {
    std::cout << desc;
    return kExitOk;
  }
  po::notify(vm);
  if (n < 1) throw UserError("launch: -n must be >= 1, got " + std::to_string(n));
  const auto rest = po::collect_unrecognized(parsed.options, po::include_positional);
  if (rest.empty()) throw UserError("launch: missing SWEEP.yaml; see --help");

  std::vector<std::string> argv{mpirun, "-n", std::to_string(n)};
  if (geteuid() == 0) argv.push_back("--allow-run-as-root");
  const unsigned cores = std::thread::hardware_concurrency();
  if (hosts.empty() && hostfile.empty() && cores > 0 && static_cast<unsigned>(n) > cores)
    argv.push_back("--oversubscribe");
  if (!hosts.empty()) argv.insert(argv.end(), {"-H", hosts});
  if (!hostfile.empty()) argv.insert(argv.end(), {"--hostfile", hostfile});
  // Rank 0's stderr reaches this terminal through mpirun, down a pipe: told
  // so, with the width, it draws its live status block (progress.h).
  if (const int columns = detail::stderr_terminal_columns(); columns > 0 && !print) {
    ::setenv("XPSCALE_TERMINAL", std::to_string(columns).c_str(), 1);
    argv.insert(argv.end(), {"-x", "XPSCALE_TERMINAL"});
  }
  argv.insert(argv.end(), mpirun_extra.begin(), mpirun_extra.end());
  argv.push_back(self_exe());
  argv.push_back("run");
  argv.insert(argv.end(), rest.begin(), rest.end());

  if (print) {
    std::string line;
    for (const auto& w : argv) line += (line.empty() ? "" : " ") + shell_quote(w);  // pasteable
    std::cout << line << '\n';
    return kExitOk;
  }
  std::vector<char*> cargv;
  for (auto& w : argv) cargv.push_back(w.data());
  cargv.push_back(nullptr);
  std::cout.flush();
  ::execvp(cargv[0], cargv.data());
  throw UserError("launch: cannot run '" + mpirun + "': " + std::strerror(errno) +
                  " (install Open MPI: apt-get install openmpi-bin, or pass --mpirun PATH)");
}

}  // namespace xpscale::cli
