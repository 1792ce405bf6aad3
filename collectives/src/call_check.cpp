#include "call_check.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "poll.h"
#include "usage_error.h"

namespace xpscale::collectives::detail {

CallRecord make_record(CallKind kind, DataType type, ReduceOp op, std::size_t count, int root) {
  CallRecord r;
  r.kind = static_cast<std::int32_t>(kind);
  r.type = static_cast<std::int32_t>(type);
  r.op = static_cast<std::int32_t>(op);
  r.root = root;
  r.count = count;
  return r;
}

CallRecord make_record(CallKind kind, DataType type, std::size_t count) {
  CallRecord r = make_record(kind, type, ReduceOp::kSum, count, -1);
  r.op = -1;
  return r;
}

CallRecord make_record(CallKind kind, DataType type, std::size_t count, int root) {
  CallRecord r = make_record(kind, type, count);
  r.root = root;
  return r;
}

CallRecord make_barrier_record() {
  CallRecord r;
  r.kind = static_cast<std::int32_t>(CallKind::kBarrier);
  return r;
}

namespace {

std::string_view kind_name(std::int32_t kind) {
  switch (static_cast<CallKind>(kind)) {
    case CallKind::kAllreduce:
      return "allreduce";
    case CallKind::kBroadcast:
      return "broadcast";
    case CallKind::kAllgather:
      return "allgather";
    case CallKind::kReduceScatter:
      return "reduce_scatter";
    case CallKind::kBarrier:
      return "barrier";
  }
  return "unknown";
}

std::string full_name(const CallRecord& r) {
  return describe(r) + " #" + std::to_string(r.sequence);
}

}  // namespace

std::string describe(const CallRecord& r) {
  std::string text(kind_name(r.kind));
  text += '(';
  if (static_cast<CallKind>(r.kind) != CallKind::kBarrier) {
    text += data_type_name(static_cast<DataType>(r.type));
    if (r.op >= 0) {
      text += ", ";
      text += reduce_op_name(static_cast<ReduceOp>(r.op));
    }
    text +=
        static_cast<CallKind>(r.kind) == CallKind::kReduceScatter ? ", recv_count=" : ", count=";
    text += std::to_string(r.count);
    if (r.root >= 0) text += ", root=" + std::to_string(r.root);
  }
  text += ')';
  return text;
}

bool debug_checks_from_env() {
  const char* value = std::getenv("XPSCALE_COLLECTIVES_DEBUG");
  if (value == nullptr) return false;
  const std::string_view v(value);
  return !(v.empty() || v == "0" || v == "false" || v == "off" || v == "no");
}

CallChecker::CallChecker(MPI_Comm comm, std::chrono::milliseconds timeout)
    : comm_(comm), timeout_(timeout) {
  XPSCALE_MPI_CHECK(MPI_Comm_rank(comm_.get(), &rank_));
  XPSCALE_MPI_CHECK(MPI_Comm_size(comm_.get(), &size_));
}

void CallChecker::check(CallRecord record) {
  record.sequence = ++sequence_;
  auto exchange = std::make_unique<Exchange>();
  exchange->mine = record;
  exchange->all.resize(static_cast<std::size_t>(size_));
  MPI_Request request = MPI_REQUEST_NULL;
  XPSCALE_MPI_CHECK(MPI_Iallgather(&exchange->mine, sizeof(CallRecord), MPI_BYTE,
                                   exchange->all.data(), sizeof(CallRecord), MPI_BYTE, comm_.get(),
                                   &request));
  int done = 0;
  const bool agreed = poll_until(
      [&] {
        XPSCALE_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
        return done != 0;
      },
      timeout_);
  if (!agreed) {
    // The all-gather stays posted (MPI cannot cancel a collective) and may
    // still read and write its buffers, so they live as long as we do.
    abandoned_.push_back(std::move(exchange));
    throw_usage_error("collectives debug check",
                      "rank " + std::to_string(rank_) + " waited " +
                          std::to_string(timeout_.count()) + " ms before " + full_name(record) +
                          " for the other ranks of the group to reach their call #" +
                          std::to_string(record.sequence) +
                          "; at least one of them called fewer collectives or hangs");
  }
  const std::vector<CallRecord>& all = exchange->all;
  std::vector<int> differing;
  for (int r = 1; r < size_; ++r) {
    if (!(all[static_cast<std::size_t>(r)] == all[0])) differing.push_back(r);
  }
  if (differing.empty()) return;
  const int first = differing.front();
  std::string message = "rank " + std::to_string(first) + " called " +
                        full_name(all[static_cast<std::size_t>(first)]) + " but rank 0 called " +
                        full_name(all[0]);
  if (differing.size() > 1) {
    message += " (ranks";
    for (const int r : differing) {
      message += ' ';  // not `" " + to_string(r)`: GCC 12 -O3 reports a false -Wrestrict there
      message += std::to_string(r);
    }
    message += " differ from rank 0)";
  }
  throw_usage_error("collectives debug check", message);
}

}  // namespace xpscale::collectives::detail
