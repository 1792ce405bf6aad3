// xpscale stop: ask the runs of a sweep to stop drawing trials.
#include <pwd.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "commands.h"
#include "xpscale/coordinator/stop_request.h"
#include "xpscale/coordinator/protocol.h"
#include "xpscale/store/postgres_store.h"
#include "xpscale/store/store.h"
#include "xpscale/store/store_lock.h"

namespace po = boost::program_options;

namespace xpscale::cli {
namespace {

constexpr const char* kUsage =
    "usage: xpscale stop OUT_DIR [--cancel]\n\n"
    "Asks every run of the sweep in OUT_DIR (each task of a job array too) to\n"
    "stop: no new trial starts, the running ones finish, and the run ends with\n"
    "status 0. With --cancel the running trials are stopped as well, at their\n"
    "next report, and recorded interrupted. Nothing is lost: `xpscale run` on\n"
    "the same config resumes the sweep, interrupted trials first. Runs act on\n"
    "the request within about a second; a run started later ignores it.\n\n"
    "options";


}  // namespace

int stop_command(const std::vector<std::string>& args) {
  po::options_description options(kUsage);
  options.add_options()("help,h", "show this help")(
      "cancel", "stop the running trials too (recorded interrupted; resumed by the next run)");
  po::variables_map vm;
  const std::string out_dir = parse_command_line(args, options, "out_dir", vm);
  if (vm.count("help")) {
    std::cout << options << '\n';
    return kExitOk;
  }
  if (out_dir.empty()) throw UserError("stop: missing the out_dir (xpscale stop OUT_DIR)");
  std::vector<std::string> running;
  if (auto pointer = read_store_pointer(out_dir)) {
    // A PostgreSQL sweep: its live runs (any number of jobs) hold their
    // leases in the database.
    try {
      PostgresStore store(pointer->url, pointer->sweep, Store::Mode::kReadOnly);
      running = store.live_runs();
    } catch (const StoreError& e) {
      throw UserError(std::string("stop: ") + e.what());
    }
  } else {
    const auto stores = store_paths(out_dir);
    if (stores.empty())
      throw UserError("stop: " + out_dir + " holds no sweep store (no " +
                      store_path(out_dir).string() +
                      " nor xpscale.task<k>.db files of a job array); pass the out_dir of a sweep");
    for (const auto& db : stores)
      if (auto holder = lock_holder(db)) running.push_back(db.filename().string() + ": " + *holder);
  }
  if (running.empty()) {
    std::cout << "xpscale: no run of the sweep in " << out_dir
              << " is running; nothing to stop (a later run would ignore the request)\n";
    return kExitOk;
  }
  StopRequest request;
  request.at = detail::unix_now();
  request.cancel = vm.count("cancel") > 0;
  request.by = who_am_i();
  write_stop_request(out_dir, request);
  std::cout << "xpscale: asked " << running.size() << (running.size() == 1 ? " run" : " runs")
            << " of " << out_dir << " to stop"
            << (request.cancel ? ", cancelling their running trials" : "; running trials finish")
            << ":\n";
  for (const auto& r : running) std::cout << "  " << r << '\n';
  return kExitOk;
}

}  // namespace xpscale::cli
