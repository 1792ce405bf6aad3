// The MPI backend: each collective is one MPI collective on a duplicate of
// the group's communicator (blocking calls use the blocking MPI collective,
// whose tuned algorithms are the fastest the library has; async calls use
// the MPI-3 non-blocking one). Whatever MPI cannot do itself (the avg
// division, moving a reduce_scatter result to NCCL's in-place position) runs
// after completion, in Finish.
#include "mpi/mpi_communicator.h"

#include <climits>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "call_check.h"
#include "mpi/mpi_reduce_ops.h"
#include "mpi/owned_comm.h"
#include "poll.h"
#include "usage_error.h"

namespace xpscale::collectives::detail {

namespace {

// What to do once MPI has completed a call.
struct Finish {
  // memcpy(move_dst, move_src, move_bytes), first.
  void* move_dst = nullptr;
  const void* move_src = nullptr;
  std::size_t move_bytes = 0;
  // Then divide `divide_count` elements at `divide` by `divisor` (avg).
  void* divide = nullptr;
  std::size_t divide_count = 0;
  DataType type = DataType::kF32;
  int divisor = 1;

  void run() const {
    if (move_bytes != 0) std::memcpy(move_dst, move_src, move_bytes);
    if (divide_count != 0) divide_in_place(divide, divide_count, type, divisor);
  }
};

// "allreduce(f32, sum, count=7) #12 on rank 1 of 4": names a call in errors.
std::string call_name(const CallRecord& record, int rank, int size) {
  return describe(record) + " #" + std::to_string(record.sequence) + " on rank " +
         std::to_string(rank) + " of " + std::to_string(size);
}

class MpiWork final : public Work {
 public:
  MpiWork(MPI_Request request, Finish finish, std::string name, std::chrono::milliseconds timeout)
      : request_(request), finish_(finish), name_(std::move(name)), timeout_(timeout) {}

  ~MpiWork() override {
    // The buffers belong to the call until it completes; a handle dropped
    // unwaited must not hand them back early. A timed-out call is not
    // waited for again.
    if (!done_ && !abandoned_) {
      try {
        wait();
      } catch (...) {  // NOLINT(bugprone-empty-catch): destructors must not throw
      }
    }
  }
  MpiWork(const MpiWork&) = delete;
  MpiWork& operator=(const MpiWork&) = delete;

  void wait() override {
    if (done_) return;
    if (abandoned_) throw_usage_error("Work::wait", name_ + " timed out before");
    if (!poll_until([this] { return poll(); }, timeout_)) {
      abandoned_ = true;
      throw_usage_error("Work::wait", name_ + " did not complete within " +
                                          std::to_string(timeout_.count()) +
                                          " ms; a rank of the group did not call it or hangs");
    }
  }

  bool test() override { return done_ || (!abandoned_ && poll()); }

 private:
  bool poll() {
    int flag = 0;
    XPSCALE_MPI_CHECK(MPI_Test(&request_, &flag, MPI_STATUS_IGNORE));
    if (flag == 0) return false;
    done_ = true;
    finish_.run();
    return true;
  }

  MPI_Request request_;
  Finish finish_;
  std::string name_;
  std::chrono::milliseconds timeout_;
  bool done_ = false;
  bool abandoned_ = false;
};

bool overlap(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  const auto x = reinterpret_cast<std::uintptr_t>(a);
  const auto y = reinterpret_cast<std::uintptr_t>(b);
  return a_bytes != 0 && b_bytes != 0 && x < y + b_bytes && y < x + a_bytes;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, const Options& options) : comm_(comm), timeout_(options.timeout) {
    XPSCALE_MPI_CHECK(MPI_Comm_rank(comm_.get(), &rank_));
    XPSCALE_MPI_CHECK(MPI_Comm_size(comm_.get(), &size_));
    if (options.debug_checks) checker_.emplace(comm_.get(), options.timeout);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string_view backend() const override { return "mpi"; }
  bool device_memory() const override { return false; }

  void allreduce(const void* send, void* recv, std::size_t count, DataType type,
                 ReduceOp op) override {
    start_allreduce(send, recv, count, type, op, nullptr).run();
  }
  std::unique_ptr<Work> allreduce_async(const void* send, void* recv, std::size_t count,
                                        DataType type, ReduceOp op) override {
    MPI_Request request = MPI_REQUEST_NULL;
    const Finish finish = start_allreduce(send, recv, count, type, op, &request);
    return make_work(request, finish);
  }

  void broadcast(void* buffer, std::size_t count, DataType type, int root) override {
    start_broadcast(buffer, count, type, root, nullptr).run();
  }
  std::unique_ptr<Work> broadcast_async(void* buffer, std::size_t count, DataType type,
                                        int root) override {
    MPI_Request request = MPI_REQUEST_NULL;
    const Finish finish = start_broadcast(buffer, count, type, root, &request);
    return make_work(request, finish);
  }

  void allgather(const void* send, void* recv, std::size_t count, DataType type) override {
    start_allgather(send, recv, count, type, nullptr).run();
  }
  std::unique_ptr<Work> allgather_async(const void* send, void* recv, std::size_t count,
                                        DataType type) override {
    MPI_Request request = MPI_REQUEST_NULL;
    const Finish finish = start_allgather(send, recv, count, type, &request);
    return make_work(request, finish);
  }

  void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DataType type,
                      ReduceOp op) override {
    start_reduce_scatter(send, recv, recv_count, type, op, nullptr).run();
  }
  std::unique_ptr<Work> reduce_scatter_async(const void* send, void* recv, std::size_t recv_count,
                                             DataType type, ReduceOp op) override {
    MPI_Request request = MPI_REQUEST_NULL;
    const Finish finish = start_reduce_scatter(send, recv, recv_count, type, op, &request);
    return make_work(request, finish);
  }

  void barrier() override {
    begin(make_barrier_record());
    MPI_Request request = MPI_REQUEST_NULL;
    XPSCALE_MPI_CHECK(MPI_Ibarrier(comm_.get(), &request));
    make_work(request, Finish{})->wait();
  }

 private:
  // Numbers the call, runs the debug check, and remembers it for messages.
  void begin(CallRecord record) {
    if (checker_) checker_->check(record);
    record.sequence = ++sequence_;
    last_ = record;
  }

  // MPI-3 counts are int.
  int mpi_count(std::size_t count) const {
    if (count > static_cast<std::size_t>(INT_MAX)) {
      throw_usage_error(describe(last_), "count " + std::to_string(count) +
                                             " exceeds the MPI backend's limit of INT_MAX "
                                             "elements per call; split the buffer");
    }
    return static_cast<int>(count);
  }

  std::unique_ptr<Work> make_work(MPI_Request request, const Finish& finish) const {
    return std::make_unique<MpiWork>(request, finish, call_name(last_, rank_, size_), timeout_);
  }

  Finish average(void* data, std::size_t count, DataType type, ReduceOp op) const {
    Finish finish;
    if (op == ReduceOp::kAvg && size_ > 1) {
      finish.divide = data;
      finish.divide_count = count;
      finish.type = type;
      finish.divisor = size_;
    }
    return finish;
  }

  Finish start_allreduce(const void* send, void* recv, std::size_t count, DataType type,
                         ReduceOp op, MPI_Request* request) {
    begin(make_record(CallKind::kAllreduce, type, op, count, -1));
    const int n = mpi_count(count);
    const std::size_t bytes = count * data_type_size(type);
    if (send != recv && overlap(send, bytes, recv, bytes)) {
      throw_usage_error(describe(last_), "send and recv overlap but are not the same buffer");
    }
    const void* source = send == recv ? MPI_IN_PLACE : send;
    if (request != nullptr) {
      XPSCALE_MPI_CHECK(MPI_Iallreduce(source, recv, n, mpi_datatype(type), mpi_op(type, op),
                                       comm_.get(), request));
    } else {
      XPSCALE_MPI_CHECK(
          MPI_Allreduce(source, recv, n, mpi_datatype(type), mpi_op(type, op), comm_.get()));
    }
    return average(recv, count, type, op);
  }

  Finish start_broadcast(void* buffer, std::size_t count, DataType type, int root,
                         MPI_Request* request) {
    begin(make_record(CallKind::kBroadcast, type, count, root));
    const int n = mpi_count(count);
    if (root < 0 || root >= size_) {
      throw_usage_error(describe(last_), "root " + std::to_string(root) + " is not a rank of a " +
                                             std::to_string(size_) + "-rank group");
    }
    if (request != nullptr) {
      XPSCALE_MPI_CHECK(MPI_Ibcast(buffer, n, mpi_datatype(type), root, comm_.get(), request));
    } else {
      XPSCALE_MPI_CHECK(MPI_Bcast(buffer, n, mpi_datatype(type), root, comm_.get()));
    }
    return Finish{};
  }

  Finish start_allgather(const void* send, void* recv, std::size_t count, DataType type,
                         MPI_Request* request) {
    begin(make_record(CallKind::kAllgather, type, count));
    const int n = mpi_count(count);
    const std::size_t block = count * data_type_size(type);
    auto* own_block = static_cast<std::byte*>(recv) + static_cast<std::size_t>(rank_) * block;
    const void* source = send;
    if (send == own_block) {
      source = MPI_IN_PLACE;
    } else if (send == recv) {
      // This rank's block sits at the start of recv: move it to its place
      // (disjoint for rank >= 1), then gather in place.
      std::memcpy(own_block, recv, block);
      source = MPI_IN_PLACE;
    } else if (overlap(send, block, recv, block * static_cast<std::size_t>(size_))) {
      throw_usage_error(describe(last_),
                        "send overlaps recv but is neither recv nor recv + rank * count");
    }
    if (request != nullptr) {
      XPSCALE_MPI_CHECK(MPI_Iallgather(source, n, mpi_datatype(type), recv, n, mpi_datatype(type),
                                       comm_.get(), request));
    } else {
      XPSCALE_MPI_CHECK(
          MPI_Allgather(source, n, mpi_datatype(type), recv, n, mpi_datatype(type), comm_.get()));
    }
    return Finish{};
  }

  Finish start_reduce_scatter(const void* send, void* recv, std::size_t recv_count, DataType type,
                              ReduceOp op, MPI_Request* request) {
    begin(make_record(CallKind::kReduceScatter, type, op, recv_count, -1));
    const int n = mpi_count(recv_count);
    const std::size_t block = recv_count * data_type_size(type);
    // In place, MPI reads the whole input from its recvbuf and leaves the
    // result at its start.
    void* target = recv;
    const void* source = send;
    Finish finish;
    if (send == recv) {
      source = MPI_IN_PLACE;
    } else if (recv ==
               static_cast<const std::byte*>(send) + static_cast<std::size_t>(rank_) * block) {
      target = const_cast<void*>(send);  // in place: the caller's send is writable
      source = MPI_IN_PLACE;
      finish.move_dst = recv;
      finish.move_src = send;
      finish.move_bytes = block;
    } else if (overlap(send, block * static_cast<std::size_t>(size_), recv, block)) {
      throw_usage_error(describe(last_),
                        "recv overlaps send but is neither send nor send + rank * recv_count");
    }
    if (request != nullptr) {
      XPSCALE_MPI_CHECK(MPI_Ireduce_scatter_block(source, target, n, mpi_datatype(type),
                                                  mpi_op(type, op), comm_.get(), request));
    } else {
      XPSCALE_MPI_CHECK(MPI_Reduce_scatter_block(source, target, n, mpi_datatype(type),
                                                 mpi_op(type, op), comm_.get()));
    }
    const Finish scale = average(recv, recv_count, type, op);
    finish.divide = scale.divide;
    finish.divide_count = scale.divide_count;
    finish.type = scale.type;
    finish.divisor = scale.divisor;
    return finish;
  }

  OwnedComm comm_;
  int rank_ = 0;
  int size_ = 0;
  std::chrono::milliseconds timeout_;
  std::optional<CallChecker> checker_;
  std::uint64_t sequence_ = 0;
  CallRecord last_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm, const Options& options) {
  return std::make_unique<MpiCommunicator>(comm, options);
}

}  // namespace xpscale::collectives::detail
