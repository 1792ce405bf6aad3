// xpscale dashboard: the report page, live, over HTTP (report/dashboard.h).
#include <pthread.h>
#include <signal.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include <boost/program_options.hpp>

#include "commands.h"
#include "xpscale/report/dashboard.h"

namespace po = boost::program_options;

namespace xpscale::cli {

namespace {
constexpr const char* kDashboardUsage =
    "usage: xpscale dashboard OUT_DIR [--port 8265] [--host 127.0.0.1]\n\n"
    "Serves the sweep's report page, live: it refreshes as trials report, from the\n"
    "store (read-only; the sweep is not slowed). Runs until Ctrl-C.\n"
    "Bound to 127.0.0.1 by default: reach it from a laptop through the login node\n"
    "with ssh -L (the command prints the line). Every request needs the token in\n"
    "the printed URL (one is drawn unless --token is given).\n\noptions";
}  // namespace

int dashboard_command(const std::vector<std::string>& args) {
  report::DashboardOptions o;
  po::options_description desc(kDashboardUsage);
  desc.add_options()("help,h", "show this help")(
      "port", po::value<int>(&o.port)->default_value(8265), "TCP port (0: any free one)")(
      "host", po::value<std::string>(&o.host)->default_value("127.0.0.1"),
      "address to listen on")("token", po::value<std::string>(&o.token),
                              "the token every request needs (default: a random one)")(
      "refresh", po::value<double>(&o.refresh_s)->default_value(0.5),
      "seconds between looks at the store");
  po::variables_map vm;
  o.out_dir = parse_command_line(args, desc, "out_dir", vm);
  if (vm.count("help")) {
    std::cout << desc;
    return kExitOk;
  }
  if (o.out_dir.empty()) throw UserError("dashboard: missing OUT_DIR; see --help");
  std::error_code ec;
  if (!std::filesystem::is_directory(o.out_dir, ec))
    throw UserError("dashboard: " + o.out_dir + " is not a directory; pass the out_dir of a sweep");
  check_seconds_option("--refresh", o.refresh_s);
  if (o.refresh_s < 0.1) throw UserError("dashboard: --refresh must be at least 0.1 seconds");
  if (vm.count("token") &&
      (o.token.size() < 16 || o.token.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                        "0123456789-_.~") != std::string::npos))
    throw UserError(
        "dashboard: --token must be at least 16 letters, digits or -_.~ (it goes in a URL)");

  // Ctrl-C, SIGTERM and SIGHUP stop the server from a thread that waits
  // for them: the other threads never see them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  for (const int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop_signals, s);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  report::Dashboard dashboard(o);
  std::cout << "xpscale dashboard: " << dashboard.url() << '\n'
            << "  " << dashboard.tunnel_hint() << '\n'
            << "  Ctrl-C stops it" << std::endl;
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    dashboard.stop();
  });
  dashboard.serve();
  // serve() ended by itself (it cannot): wake the waiter so it can be joined.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  return kExitOk;
}

}  // namespace xpscale::cli
