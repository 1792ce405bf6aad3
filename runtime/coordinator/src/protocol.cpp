#include "xpscale/coordinator/protocol.h"

#include <algorithm>
#include <string>
#include <thread>

#include "xpscale/collectives/mpi_check.h"

namespace xpscale::detail {

void send_json(MPI_Comm comm, int dest, int tag, const nlohmann::json& body) {
  const std::string text = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  XPSCALE_MPI_CHECK(
      MPI_Send(text.data(), static_cast<int>(text.size()), MPI_CHAR, dest, tag, comm));
}

std::optional<Message> try_recv_json(MPI_Comm comm, int source, int tag) {
  int found = 0;
  MPI_Message handle;
  MPI_Status status;
  XPSCALE_MPI_CHECK(MPI_Improbe(source, tag, comm, &found, &handle, &status));
  if (!found) return std::nullopt;
  int count = 0;
  XPSCALE_MPI_CHECK(MPI_Get_count(&status, MPI_CHAR, &count));
  std::string text(static_cast<std::size_t>(count), '\0');
  XPSCALE_MPI_CHECK(MPI_Mrecv(text.data(), count, MPI_CHAR, &handle, MPI_STATUS_IGNORE));
  return Message{status.MPI_SOURCE, status.MPI_TAG, nlohmann::json::parse(text)};
}

Message recv_json(MPI_Comm comm, int source, int tag) {
  // A reply the coordinator is preparing often comes within a few hundred
  // microseconds: a waiter that goes to sleep sooner wakes late (the sleep,
  // the timer slack, the wake-up), which cost no-op sweeps a third of their
  // rate on an oversubscribed node (bench/dispatch: 50 us of spinning
  // against 500 us). But where replies come later (a shared PostgreSQL
  // store's commits, several jobs on one node), a long spin only takes the
  // core from the processes the reply waits for: 4 jobs on one store ran
  // at 1,600-1,770 trials/s spinning 500 us against 2,400-2,900 spinning
  // 50 us (bench/store). So the spin follows how this thread's replies
  // have come: long while most came within it, short otherwise.
  using Clock = std::chrono::steady_clock;
  constexpr auto kLongSpin = std::chrono::microseconds(500);
  constexpr auto kShortSpin = std::chrono::microseconds(50);
  thread_local double caught = 1.0;  // moving share of replies within kLongSpin
  if (auto m = try_recv_json(comm, source, tag)) {
    caught = 0.9 * caught + 0.1;
    return std::move(*m);
  }
  const auto start = Clock::now();
  Backoff backoff(std::chrono::microseconds(500), caught >= 0.5 ? kLongSpin : kShortSpin);
  for (;;) {
    backoff.idle();
    if (auto m = try_recv_json(comm, source, tag)) {
      caught = 0.9 * caught + (Clock::now() - start <= kLongSpin ? 0.1 : 0.0);
      return std::move(*m);
    }
  }
}

void Backoff::idle() {
  using namespace std::chrono;
  const auto now = steady_clock::now();
  if (!idle_since_) idle_since_ = now;
  const auto idle_for = now - *idle_since_;
  if (idle_for < spin_for_) return;  // a message usually comes within this: spin
  if (idle_for < milliseconds(2)) {
    std::this_thread::yield();
    std::this_thread::sleep_for(std::min(microseconds(20), max_sleep_));
  } else {
    std::this_thread::sleep_for(max_sleep_);
  }
}

double unix_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace xpscale::detail
