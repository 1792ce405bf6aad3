#pragma once
// Waiting for a request that only completes while someone asks (MPI without
// a progress thread) or that a GPU completes (CUDA events), with a timeout.
#include <algorithm>
#include <chrono>
#include <thread>

namespace xpscale::collectives::detail {

// Calls done() until it returns true (then returns true) or until timeout
// has passed (then returns false); a zero timeout waits forever.
//
// Why not a blocking MPI_Wait: it cannot time out. Why not a plain spin:
// with more ranks than cores (tests, oversubscribed nodes) a spinning rank
// takes the core its peer needs. So: poll with yields for the first
// kSpinFor, which keeps short collectives at their blocking latency and
// drives MPI's progress engine (it advances only inside MPI calls), then
// sleep between polls, doubling from 10 us up to 1 ms.
template <class Done>
bool poll_until(Done&& done, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  constexpr auto kSpinFor = std::chrono::milliseconds(20);
  constexpr auto kMaxSleep = std::chrono::microseconds(1000);
  const auto start = Clock::now();
  auto sleep = std::chrono::microseconds(10);
  for (;;) {
    if (done()) return true;
    const auto elapsed = Clock::now() - start;
    if (timeout.count() > 0 && elapsed >= timeout) return false;
    if (elapsed < kSpinFor) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(sleep);
      sleep = std::min(sleep * 2, kMaxSleep);
    }
  }
}

}  // namespace xpscale::collectives::detail
