#pragma once
// Communicator: collectives over one group of ranks (a trial's group), on
// host memory (MPI backend) or device memory (NCCL backend).
//
// Contract (design.md, "Contracts"): every rank of the group calls the same
// collectives in the same order with the same dtype, op and count. With
// XPSCALE_COLLECTIVES_DEBUG=1 (or Options::debug_checks) the group checks
// that before each call and throws CollectiveError naming both ranks and
// both calls instead of hanging or returning wrong numbers.
//
// Buffers: `count` is a number of elements, not bytes. Out-of-place calls
// take distinct send and recv buffers; in-place calls pass the same pointer
// for both (send == recv). A count of 0 is valid and does nothing but still
// counts as a call for the ordering contract.
//
// In-place forms, per operation (each also accepts send == recv):
//   allreduce       send == recv.
//   broadcast       always in place.
//   allgather       send == recv + rank() * count (MPI's and NCCL's
//                   convention), or send == recv: this rank's block is read
//                   from the start of recv.
//   reduce_scatter  send == recv: the result lands at the start of the
//                   buffer (MPI's convention), or recv == send + rank() *
//                   recv_count (NCCL's). The rest of the buffer is
//                   unspecified afterwards.
// Any other overlap of send and recv throws.
//
// avg is sum then divide by size(). Floating types divide in their own
// precision (f16/bf16: in float, rounded to nearest even). Integer types
// divide with C++ integer division, i.e. truncate toward zero (-7/2 = -3);
// the NCCL backend uses ncclAvg, which also divides the integer sum.
//
// Counts: the MPI backend takes counts up to INT_MAX elements per call
// (MPI-3 counts are int); larger counts throw.
//
// Threads: a Communicator is used by one thread at a time. Two
// communicators (two groups, or two made from the same comm) are
// independent and may be used from different threads when MPI was
// initialised with MPI_THREAD_MULTIPLE.
//
// Errors: every failure throws xpscale::CollectiveError (error.h).
#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "xpscale/collectives/error.h"

namespace xpscale::collectives {

enum class DataType { kF32, kF64, kF16, kBF16, kI32, kI64 };
enum class ReduceOp { kSum, kAvg, kMin, kMax };

std::string_view data_type_name(DataType t);   // "f32", "bf16", ...
std::string_view reduce_op_name(ReduceOp op);  // "sum", "avg", ...
std::size_t data_type_size(DataType t);        // bytes per element

struct Options {
  // "auto": NCCL when the build has it and the rank has a GPU, else MPI.
  // "mpi" or "nccl" force a backend; "nccl" without a GPU throws.
  std::string backend = "auto";
  // A collective or init that has not completed after this long throws
  // CollectiveError (NCCL: the communicator is aborted). Zero = no limit.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  // Agree on (op, dtype, count, sequence number) before every collective.
  // Default: XPSCALE_COLLECTIVES_DEBUG=1 in the environment.
  bool debug_checks = false;
  bool debug_checks_from_env = true;
  // NCCL backend: the CUDA stream to work on (cudaStream_t), or nullptr for
  // a stream the communicator creates.
  void* stream = nullptr;
  // NCCL backend: the CUDA device ordinal (after CUDA_VISIBLE_DEVICES). -1
  // picks the rank's node-local rank in the whole job modulo the number of
  // visible devices, the node-local rank taken from the launcher
  // (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, MPI_LOCALRANKID,
  // MV2_COMM_WORLD_LOCAL_RANK) or, when comm spans the
  // whole job, computed with MPI_Comm_split_type. Never the rank inside the
  // group (design.md). With Slurm's per-task GPU binding each task sees one
  // device, so every task gets device 0 of its own set.
  int device = -1;
};

// Deleter of Communicator::Buffer: the release function of the memory kind.
struct BufferRelease {
  void (*release)(void*) noexcept = nullptr;
  void operator()(void* p) const noexcept {
    if (p != nullptr && release != nullptr) release(p);
  }
};

// A pending asynchronous collective. wait() blocks until it has completed
// (and rethrows its error); the buffers belong to the call until then.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  // True once complete; never blocks.
  virtual bool test() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string_view backend() const = 0;  // "mpi" | "nccl"
  // True when buffers must be device memory (NCCL).
  virtual bool device_memory() const = 0;

  virtual void allreduce(const void* send, void* recv, std::size_t count, DataType type,
                         ReduceOp op) = 0;
  virtual std::unique_ptr<Work> allreduce_async(const void* send, void* recv, std::size_t count,
                                                DataType type, ReduceOp op) = 0;
  // root's buffer is sent to every rank's buffer (count elements).
  virtual void broadcast(void* buffer, std::size_t count, DataType type, int root) = 0;
  virtual std::unique_ptr<Work> broadcast_async(void* buffer, std::size_t count, DataType type,
                                                int root) = 0;
  // recv holds size() * count elements, rank r's block at r * count.
  virtual void allgather(const void* send, void* recv, std::size_t count, DataType type) = 0;
  virtual std::unique_ptr<Work> allgather_async(const void* send, void* recv, std::size_t count,
                                                DataType type) = 0;
  // send holds size() * recv_count elements; rank r receives the reduction
  // of block r.
  virtual void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DataType type,
                              ReduceOp op) = 0;
  virtual std::unique_ptr<Work> reduce_scatter_async(const void* send, void* recv,
                                                     std::size_t recv_count, DataType type,
                                                     ReduceOp op) = 0;
  virtual void barrier() = 0;

  // Capability queries.
  // Whether the async variants overlap with the caller's work without the
  // caller calling into the communicator (NCCL: yes, the GPU runs them; MPI:
  // only while the caller calls test() or wait(), Open MPI has no progress
  // thread by default).
  virtual bool async_progress() const { return false; }

  // Staging memory for code that packs data for collectives, such as
  // GradientBucketer. The defaults are host memory and std::memcpy; the NCCL
  // backend overrides them with device memory and copies on its stream.
  using Buffer = std::unique_ptr<void, BufferRelease>;
  // bytes of memory in this communicator's memory space (device_memory()),
  // aligned to 256 bytes; a 0-byte request returns an empty Buffer.
  virtual Buffer allocate(std::size_t bytes);
  // Copies bytes from src to dst, both in this communicator's memory space
  // or host memory, ordered after every collective issued before it and
  // before every one issued after it. The MPI backend copies before
  // returning; NCCL enqueues on its stream, done at synchronize().
  virtual void copy(void* dst, const void* src, std::size_t bytes);
  // Waits for every copy and collective issued so far (no timeout).
  virtual void synchronize() {}
};

// Creates a communicator over the ranks of `comm` (collective over comm).
// The communicator duplicates `comm`, so the caller's own traffic on it
// never matches ours, and owns the duplicate.
// Throws CollectiveError for an unknown backend name, for "nccl" in a build
// without NCCL or on a rank without a GPU, and for MPI, CUDA or NCCL
// failures (including an NCCL init that does not finish within the timeout).
std::unique_ptr<Communicator> make_communicator(MPI_Comm comm, const Options& options = {});

// The backend make_communicator picks for this name on this rank: "mpi" or
// "nccl"; "auto" resolves as documented on Options::backend. Throws
// CollectiveError for an unknown name. Local, not collective.
std::string resolve_backend(std::string_view name);

}  // namespace xpscale::collectives
