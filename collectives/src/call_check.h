#pragma once
// Debug check mode (XPSCALE_COLLECTIVES_DEBUG=1, Options::debug_checks):
// before each collective the ranks of the group agree on what they are
// about to call, so that a rank that calls something else (another op,
// dtype or count, another collective, or the same ones in another order)
// turns into an error on every rank instead of a hang or wrong numbers.
//
// Protocol: every rank numbers its collectives 1, 2, 3, ... and, before
// call #k, all-gathers one fixed-size CallRecord (kind, dtype, op, root,
// count, k) on a communicator of its own (a duplicate of the group's, so it
// never matches the data traffic). Every rank then compares all records
// with rank 0's and, on any difference, throws the same CollectiveError:
//   "rank 1 called allreduce(f32, sum, count=7) #3 but rank 0 called
//    allreduce(f32, sum, count=8) #3"
// A rank that skipped a call entirely leaves the others waiting in the
// all-gather; that wait ends with an error after the timeout. Used by both
// backends; the records travel over MPI even for NCCL.
#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mpi/owned_comm.h"
#include "xpscale/collectives/communicator.h"

namespace xpscale::collectives::detail {

enum class CallKind : std::int32_t { kAllreduce, kBroadcast, kAllgather, kReduceScatter, kBarrier };

// One call as the checks see it. Fields a kind does not use are -1 / 0 so
// that they compare equal.
struct CallRecord {
  std::int32_t kind = 0;
  std::int32_t type = -1;
  std::int32_t op = -1;
  std::int32_t root = -1;
  std::uint64_t count = 0;
  std::uint64_t sequence = 0;

  bool operator==(const CallRecord&) const = default;
};

CallRecord make_record(CallKind kind, DataType type, ReduceOp op, std::size_t count, int root);
CallRecord make_record(CallKind kind, DataType type, std::size_t count);
CallRecord make_record(CallKind kind, DataType type, std::size_t count, int root);
CallRecord make_barrier_record();

// "allreduce(f32, sum, count=7)", "broadcast(bf16, count=3, root=1)",
// "barrier()": for error messages of both the checks and the timeouts.
std::string describe(const CallRecord& record);

// True when the environment asks for the checks (XPSCALE_COLLECTIVES_DEBUG
// set to anything but "", "0", "false", "off", "no").
bool debug_checks_from_env();

class CallChecker {
 public:
  // Collective over comm (duplicates it).
  CallChecker(MPI_Comm comm, std::chrono::milliseconds timeout);

  // Collective: numbers `record`, agrees on it with the group, and throws
  // CollectiveError on a mismatch (on every rank, same message) or when the
  // group has not agreed within the timeout.
  void check(CallRecord record);

 private:
  // One all-gather's buffers, on the heap so that a timed-out one can be
  // kept alive while MPI may still use it.
  struct Exchange {
    CallRecord mine;
    std::vector<CallRecord> all;
  };

  OwnedComm comm_;
  int rank_ = 0;
  int size_ = 0;
  std::uint64_t sequence_ = 0;
  std::chrono::milliseconds timeout_;
  std::vector<std::unique_ptr<Exchange>> abandoned_;
};

}  // namespace xpscale::collectives::detail
