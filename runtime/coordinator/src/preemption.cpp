#include "xpscale/coordinator/preemption.h"

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "xpscale/core/error.h"

namespace xpscale {
namespace {

// Lock-free, so the handler may set it (async-signal-safe).
std::atomic<bool> g_requested{false};
std::atomic<int> g_termination{0};
static_assert(std::atomic<bool>::is_always_lock_free);
static_assert(std::atomic<int>::is_always_lock_free);

constexpr int kSignals[] = {SIGUSR1, SIGTERM, SIGINT, SIGHUP};

void on_signal(int sig) {
  if (sig != SIGUSR1) {
    int none = 0;
    if (!g_termination.compare_exchange_strong(none, sig, std::memory_order_relaxed)) {
      // A second SIGTERM/SIGINT/SIGHUP (Ctrl-C twice): end now, as by
      // default. The trials' reapers still end their trees.
      ::signal(sig, SIG_DFL);
      ::raise(sig);
      return;
    }
  }
  g_requested.store(true, std::memory_order_relaxed);
}

}  // namespace

bool preemption_requested() { return g_requested.load(std::memory_order_relaxed); }

int termination_signal() { return g_termination.load(std::memory_order_relaxed); }

void request_preemption() { g_requested.store(true, std::memory_order_relaxed); }

PreemptionHandler::PreemptionHandler() : previous_(std::make_unique<struct sigaction[]>(4)) {
  g_requested.store(false);
  g_termination.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  // SA_RESTART: MPI's and SQLite's system calls carry on after the handler.
  sa.sa_flags = SA_RESTART;
  for (int i = 0; i < 4; ++i)
    if (sigaction(kSignals[i], &sa, &previous_[i]) != 0) {
      const int err = errno;
      while (--i >= 0) sigaction(kSignals[i], &previous_[i], nullptr);
      throw Error(std::string("sigaction(") + sigabbrev_np(kSignals[i]) +
                  ") for preemption: " + std::strerror(err));
    }
}

PreemptionHandler::~PreemptionHandler() {
  for (int i = 0; i < 4; ++i) sigaction(kSignals[i], &previous_[i], nullptr);
}

}  // namespace xpscale
