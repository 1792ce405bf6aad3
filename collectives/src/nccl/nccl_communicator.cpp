// The NCCL backend (device memory).
//
// One NCCL communicator per group, from ncclGetUniqueId on the group's rank
// 0 and an MPI broadcast of the id within the group. Not ncclCommSplit of a
// job-wide NCCL communicator: a split is collective over the whole parent,
// so every rank of the job would have to create its group's communicator at
// the same moment, while xpscale's groups start and restart trials
// independently (dynamic dispatch). A unique id involves only the group.
//
// Non-blocking (ncclConfig_t::blocking = 0): init and every call return at
// once, possibly "in progress", and we poll ncclCommGetAsyncError; a peer
// that never arrives becomes a CollectiveError after Options::timeout and
// the communicator is aborted (ncclCommAbort) instead of hanging the rank.
//
// Work runs on the caller's stream (Options::stream) or on one we create.
// Blocking calls enqueue, record an event and wait for it; async calls
// return a Work that waits for the event.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "call_check.h"
#include "mpi/owned_comm.h"
#include "nccl/nccl_factory.h"
#include "poll.h"
#include "usage_error.h"
#include "xpscale/collectives/cuda_check.h"
#include "xpscale/collectives/device.h"
#include "xpscale/collectives/mpi_check.h"

namespace xpscale::collectives::detail {

namespace {

ncclDataType_t nccl_type(DataType type) {
  switch (type) {
    case DataType::kF32:
      return ncclFloat32;
    case DataType::kF64:
      return ncclFloat64;
    case DataType::kF16:
      return ncclFloat16;
    case DataType::kBF16:
      return ncclBfloat16;
    case DataType::kI32:
      return ncclInt32;
    case DataType::kI64:
      return ncclInt64;
  }
  throw_usage_error("nccl", "not a DataType: " + std::to_string(static_cast<int>(type)));
}

// avg is NCCL's own ncclAvg (sum, then divide; for integers NCCL divides
// the integer sum).
ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kAvg:
      return ncclAvg;
    case ReduceOp::kMin:
      return ncclMin;
    case ReduceOp::kMax:
      return ncclMax;
  }
  throw_usage_error("nccl", "not a ReduceOp: " + std::to_string(static_cast<int>(op)));
}

// The node-local rank of this process in the whole job, from the launcher,
// or -1. Open MPI's mpirun first: inside a Slurm batch script SLURM_LOCALID
// describes the batch step, not mpirun's ranks.
int launcher_local_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                           "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"}) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') continue;
    char* end = nullptr;
    const long rank = std::strtol(value, &end, 10);
    if (*end == '\0' && rank >= 0) return static_cast<int>(rank);
  }
  return -1;
}

// The GPU of this rank: design.md's rule, node-local rank in the job (never
// the rank in the group) modulo the devices CUDA_VISIBLE_DEVICES leaves.
// Collective over comm only in the fallback, where comm is the whole job.
int choose_device(MPI_Comm comm, const Options& options) {
  const int visible = cuda_device_count();
  if (options.device >= 0) {
    if (options.device >= visible) {
      throw_usage_error("nccl", "Options::device " + std::to_string(options.device) + " but only " +
                                    std::to_string(visible) + " CUDA device(s) are visible");
    }
    return options.device;
  }
  int local = launcher_local_rank();
  if (local < 0) {
    int comm_size = 0;
    int world_size = 0;
    XPSCALE_MPI_CHECK(MPI_Comm_size(comm, &comm_size));
    XPSCALE_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size));
    if (comm_size != world_size) {
      throw_usage_error("nccl",
                        "cannot tell this rank's node-local rank in the job (no "
                        "OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID or SLURM_LOCALID) and the "
                        "group is not the whole job; set Options::device");
    }
    local = node_local_rank(comm);
  }
  return local % visible;
}

// Makes `device` current for a scope and restores the caller's device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    XPSCALE_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) XPSCALE_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() {
    int current = previous_;
    if (cudaGetDevice(&current) == cudaSuccess && current != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// The NCCL communicator, shared by the Communicator and its Work handles so
// that a handle can abort it on a timeout and outlive it safely.
class NcclState {
 public:
  NcclState(ncclComm_t comm, std::chrono::milliseconds timeout) : comm_(comm), timeout_(timeout) {}
  ~NcclState() {
    if (comm_ == nullptr) return;
    // Finalize flushes outstanding work; bounded by the timeout, then abort.
    // Errors cannot be reported from a destructor and are dropped.
    const ncclResult_t rc = ncclCommFinalize(comm_);
    if (rc == ncclSuccess || rc == ncclInProgress) {
      ncclResult_t state = ncclInProgress;
      const bool quiet = poll_until(
          [&] {
            return ncclCommGetAsyncError(comm_, &state) != ncclSuccess || state != ncclInProgress;
          },
          timeout_);
      if (quiet && state == ncclSuccess) {
        ncclCommDestroy(comm_);
        return;
      }
    }
    ncclCommAbort(comm_);
  }
  NcclState(const NcclState&) = delete;
  NcclState& operator=(const NcclState&) = delete;

  ncclComm_t get() const {
    if (comm_ == nullptr) throw_usage_error("nccl", "the communicator was aborted after an error");
    return comm_;
  }

  void abort() {
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
  }

  // Throws (after aborting) when NCCL reports an asynchronous error.
  // Returns false while an operation is still being enqueued.
  bool check_async(const std::string& what) {
    ncclResult_t state = ncclSuccess;
    XPSCALE_NCCL_CHECK(ncclCommGetAsyncError(get(), &state));
    if (state == ncclSuccess) return true;
    if (state == ncclInProgress) return false;
    std::string message = ncclGetErrorString(state);
    const char* last = ncclGetLastError(comm_);
    if (last != nullptr && *last != '\0') message += std::string(": ") + last;
    abort();
    throw CollectiveError(what + ": NCCL reported " + message + " (NCCL error " +
                              std::to_string(static_cast<int>(state)) +
                              "); the communicator was aborted",
                          what, static_cast<int>(state), message);
  }

  // Waits until the last call has been enqueued (non-blocking mode).
  void wait_ready(const std::string& what) {
    if (!poll_until([&] { return check_async(what); }, timeout_)) {
      abort();
      throw_usage_error(what, "NCCL did not finish within " + std::to_string(timeout_.count()) +
                                  " ms (a rank of the group did not call it?); the "
                                  "communicator was aborted");
    }
  }

 private:
  ncclComm_t comm_;
  std::chrono::milliseconds timeout_;
};

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<NcclState> state, cudaStream_t stream, int device, std::string name,
           std::chrono::milliseconds timeout)
      : state_(std::move(state)), name_(std::move(name)), timeout_(timeout) {
    const DeviceGuard guard(device);
    XPSCALE_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
    XPSCALE_CUDA_CHECK(cudaEventRecord(event_, stream));
  }
  // The GPU finishes the work in stream order whether or not it is waited
  // for; the event can go at once.
  ~NcclWork() override { cudaEventDestroy(event_); }
  NcclWork(const NcclWork&) = delete;
  NcclWork& operator=(const NcclWork&) = delete;

  void wait() override {
    if (done_) return;
    if (!poll_until([this] { return poll(); }, timeout_)) {
      state_->abort();
      throw_usage_error("Work::wait", name_ + " did not complete within " +
                                          std::to_string(timeout_.count()) +
                                          " ms; the communicator was aborted");
    }
  }

  bool test() override { return done_ || poll(); }

 private:
  bool poll() {
    const cudaError_t rc = cudaEventQuery(event_);
    if (rc == cudaSuccess) {
      done_ = true;
      return true;
    }
    if (rc != cudaErrorNotReady) XPSCALE_CUDA_CHECK(rc);
    state_->check_async(name_);
    return false;
  }

  std::shared_ptr<NcclState> state_;
  cudaEvent_t event_ = nullptr;
  std::string name_;
  std::chrono::milliseconds timeout_;
  bool done_ = false;
};

void release_device(void* p) noexcept { cudaFree(p); }

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(MPI_Comm comm, const Options& options) : mpi_(comm), timeout_(options.timeout) {
    XPSCALE_MPI_CHECK(MPI_Comm_rank(mpi_.get(), &rank_));
    XPSCALE_MPI_CHECK(MPI_Comm_size(mpi_.get(), &size_));
    device_ = choose_device(mpi_.get(), options);
    const DeviceGuard guard(device_);
    if (options.stream != nullptr) {
      stream_ = static_cast<cudaStream_t>(options.stream);
    } else {
      XPSCALE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      owns_stream_ = true;
    }
    if (options.debug_checks) checker_.emplace(mpi_.get(), options.timeout);

    ncclUniqueId id{};
    if (rank_ == 0) XPSCALE_NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_Request request = MPI_REQUEST_NULL;
    XPSCALE_MPI_CHECK(MPI_Ibcast(&id, sizeof(id), MPI_BYTE, 0, mpi_.get(), &request));
    int done = 0;
    if (!poll_until(
            [&] {
              XPSCALE_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
              return done != 0;
            },
            timeout_)) {
      throw_usage_error("nccl init", "rank 0 of the group did not send the NCCL id within " +
                                         std::to_string(timeout_.count()) + " ms");
    }

    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclComm_t raw = nullptr;
    const ncclResult_t rc = ncclCommInitRankConfig(&raw, size_, id, rank_, &config);
    if (rc != ncclSuccess && rc != ncclInProgress) {
      if (raw != nullptr) ncclCommAbort(raw);
      XPSCALE_NCCL_CHECK(rc);
    }
    state_ = std::make_shared<NcclState>(raw, timeout_);
    state_->wait_ready("ncclCommInitRankConfig(rank " + std::to_string(rank_) + " of " +
                       std::to_string(size_) + ", device " + std::to_string(device_) + ")");
  }

  ~NcclCommunicator() override {
    state_.reset();
    if (owns_stream_) cudaStreamDestroy(stream_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string_view backend() const override { return "nccl"; }
  bool device_memory() const override { return true; }
  bool async_progress() const override { return true; }

  void allreduce(const void* send, void* recv, std::size_t count, DataType type,
                 ReduceOp op) override {
    allreduce_async(send, recv, count, type, op)->wait();
  }
  std::unique_ptr<Work> allreduce_async(const void* send, void* recv, std::size_t count,
                                        DataType type, ReduceOp op) override {
    const DeviceGuard guard(device_);
    begin(make_record(CallKind::kAllreduce, type, op, count, -1));
    enqueue([&] {
      return ncclAllReduce(send, recv, count, nccl_type(type), nccl_op(op), state_->get(), stream_);
    });
    return make_work();
  }

  void broadcast(void* buffer, std::size_t count, DataType type, int root) override {
    broadcast_async(buffer, count, type, root)->wait();
  }
  std::unique_ptr<Work> broadcast_async(void* buffer, std::size_t count, DataType type,
                                        int root) override {
    const DeviceGuard guard(device_);
    begin(make_record(CallKind::kBroadcast, type, count, root));
    if (root < 0 || root >= size_) {
      throw_usage_error(describe(last_), "root " + std::to_string(root) + " is not a rank of a " +
                                             std::to_string(size_) + "-rank group");
    }
    enqueue([&] {
      return ncclBroadcast(buffer, buffer, count, nccl_type(type), root, state_->get(), stream_);
    });
    return make_work();
  }

  void allgather(const void* send, void* recv, std::size_t count, DataType type) override {
    allgather_async(send, recv, count, type)->wait();
  }
  std::unique_ptr<Work> allgather_async(const void* send, void* recv, std::size_t count,
                                        DataType type) override {
    const DeviceGuard guard(device_);
    begin(make_record(CallKind::kAllgather, type, count));
    const std::size_t block = count * data_type_size(type);
    auto* own = static_cast<std::byte*>(recv) + static_cast<std::size_t>(rank_) * block;
    const void* source = send;
    if (send == recv && own != recv) {
      // Own block at the start of recv: move it to its place (disjoint).
      XPSCALE_CUDA_CHECK(cudaMemcpyAsync(own, recv, block, cudaMemcpyDeviceToDevice, stream_));
      source = own;
    }
    enqueue([&] {
      return ncclAllGather(source, recv, count, nccl_type(type), state_->get(), stream_);
    });
    return make_work();
  }

  void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DataType type,
                      ReduceOp op) override {
    reduce_scatter_async(send, recv, recv_count, type, op)->wait();
  }
  std::unique_ptr<Work> reduce_scatter_async(const void* send, void* recv, std::size_t recv_count,
                                             DataType type, ReduceOp op) override {
    const DeviceGuard guard(device_);
    begin(make_record(CallKind::kReduceScatter, type, op, recv_count, -1));
    const std::size_t block = recv_count * data_type_size(type);
    auto* own =
        static_cast<std::byte*>(const_cast<void*>(send)) + static_cast<std::size_t>(rank_) * block;
    // MPI's in-place convention (result at the start): reduce into our own
    // block, NCCL's in-place form, then move the block to the start.
    const bool mpi_in_place = send == recv && own != recv;
    void* target = mpi_in_place ? own : recv;
    enqueue([&] {
      return ncclReduceScatter(send, target, recv_count, nccl_type(type), nccl_op(op),
                               state_->get(), stream_);
    });
    if (mpi_in_place) {
      XPSCALE_CUDA_CHECK(cudaMemcpyAsync(recv, own, block, cudaMemcpyDeviceToDevice, stream_));
    }
    return make_work();
  }

  void barrier() override {
    // NCCL has no barrier: a one-element allreduce on the stream is one.
    const DeviceGuard guard(device_);
    begin(make_barrier_record());
    if (!barrier_buffer_) barrier_buffer_ = allocate(sizeof(float));
    enqueue([&] {
      return ncclAllReduce(barrier_buffer_.get(), barrier_buffer_.get(), 1, ncclFloat32, ncclSum,
                           state_->get(), stream_);
    });
    make_work()->wait();
  }

  Buffer allocate(std::size_t bytes) override {
    if (bytes == 0) return Buffer(nullptr, BufferRelease{release_device});
    const DeviceGuard guard(device_);
    void* p = nullptr;
    XPSCALE_CUDA_CHECK(cudaMalloc(&p, bytes));
    return Buffer(p, BufferRelease{release_device});
  }

  void copy(void* dst, const void* src, std::size_t bytes) override {
    if (bytes == 0 || dst == src) return;
    const DeviceGuard guard(device_);
    XPSCALE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_));
  }

  void synchronize() override {
    NcclWork(state_, stream_, device_, "synchronize() on rank " + std::to_string(rank_), timeout_)
        .wait();
  }

 private:
  void begin(CallRecord record) {
    if (checker_) checker_->check(record);
    record.sequence = ++sequence_;
    last_ = record;
  }

  std::string call_name() const {
    return describe(last_) + " #" + std::to_string(last_.sequence) + " on rank " +
           std::to_string(rank_) + " of " + std::to_string(size_) + " (nccl, device " +
           std::to_string(device_) + ")";
  }

  template <class Call>
  void enqueue(Call&& call) {
    const ncclResult_t rc = call();
    if (rc == ncclInProgress) {
      state_->wait_ready(call_name());
    } else if (rc != ncclSuccess) {
      try {
        XPSCALE_NCCL_CHECK(rc);
      } catch (const CollectiveError& e) {
        throw CollectiveError(call_name() + ": " + e.what(), e.call(), e.code(),
                              e.library_message());
      }
    }
  }

  std::unique_ptr<Work> make_work() {
    return std::make_unique<NcclWork>(state_, stream_, device_, call_name(), timeout_);
  }

  OwnedComm mpi_;
  std::chrono::milliseconds timeout_;
  int rank_ = 0;
  int size_ = 0;
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  bool owns_stream_ = false;
  std::shared_ptr<NcclState> state_;
  std::optional<CallChecker> checker_;
  std::uint64_t sequence_ = 0;
  CallRecord last_;
  Buffer barrier_buffer_{nullptr, BufferRelease{release_device}};
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, const Options& options) {
  return std::make_unique<NcclCommunicator>(comm, options);
}

}  // namespace xpscale::collectives::detail
