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
  // A reply the coordinator is preparing comes within a few hundred
  // microseconds: a waiter that goes to sleep sooner wakes late (the sleep,
  // the timer slack, the wake-up), which cost no-op sweeps a third of their
  // rate on an oversubscribed node (bench/dispatch: 50 us of spinning
  // against 500 us).
  Backoff backoff(std::chrono::microseconds(500), std::chrono::microseconds(500));
  for (;;) {
    if (auto m = try_recv_json(comm, source, tag)) return std::move(*m);
    backoff.idle();
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
