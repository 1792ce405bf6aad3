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
static_assert(std::atomic<bool>::is_always_lock_free);

void on_sigusr1(int) { g_requested.store(true, std::memory_order_relaxed); }

}  // namespace

bool preemption_requested() { return g_requested.load(std::memory_order_relaxed); }

void request_preemption() { g_requested.store(true, std::memory_order_relaxed); }

PreemptionHandler::PreemptionHandler() : previous_(std::make_unique<struct sigaction>()) {
  g_requested.store(false);
  struct sigaction sa {};
  sa.sa_handler = on_sigusr1;
  sigemptyset(&sa.sa_mask);
  // SA_RESTART: MPI's and SQLite's system calls carry on after the handler.
  sa.sa_flags = SA_RESTART;
  if (sigaction(SIGUSR1, &sa, previous_.get()) != 0)
    throw Error(std::string("sigaction(SIGUSR1) for preemption: ") + std::strerror(errno));
}

PreemptionHandler::~PreemptionHandler() { sigaction(SIGUSR1, previous_.get(), nullptr); }

}  // namespace xpscale
