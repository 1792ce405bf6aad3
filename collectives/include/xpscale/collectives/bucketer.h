#pragma once
// GradientBucketer: data-parallel gradient averaging in few large
// allreduces instead of one per tensor (PyTorch DDP's buckets, Horovod's
// tensor fusion).
//
// Use, every rank of the group identically:
//
//   GradientBucketer bucketer(comm);           // comm: any Communicator
//   for (auto& p : params) bucketer.add(p.grad, p.count, DataType::kF32);
//   for each step:
//     backward pass; as each gradient is final: bucketer.mark_ready(index);
//     bucketer.finish();   // every gradient now holds the group average
//
// Buckets. At the first mark_ready/finish/bucket_count the registered
// tensors are packed, in *reverse* registration order (the last registered
// tensor goes first), into buckets of at most bucket_bytes, the first one
// at most first_bucket_bytes (DDP's defaults: 25 MiB and 1 MiB). Reverse,
// as DDP does, because the backward pass produces gradients back to front:
// the first bucket fills first and its allreduce overlaps with the rest of
// the backward pass. BucketOrder::kForward packs in registration order.
// A bucket holds one dtype only (a dtype change starts a new bucket); a
// tensor larger than the cap gets a bucket of its own. The layout is a pure
// function of the registrations, the options and the communicator's
// async_progress() (which the whole group shares), so it is the same on
// every rank that registered the same tensors.
//
// The small first bucket is there for overlap only. A backend without
// async progress (MPI) reduces each bucket inline (see Progress), where a
// small first bucket overlaps nothing and costs one more collective, so an
// unset first_bucket_bytes means 1 MiB with NCCL and bucket_bytes with MPI
// (200 gradients of 16 KiB on 4 ranks here: one bucket of 3.1 MiB is about
// 18% faster than 1 MiB + 2.1 MiB).
//
// Launch order. A bucket's allreduce (avg) starts as soon as all of its
// tensors are marked ready *and* every earlier bucket has started: buckets
// are always launched in bucket order 0, 1, 2, ... on every rank, whatever
// the order of mark_ready calls (which may differ between ranks). This is
// the fixed order the Communicator contract asks for.
//
// Memory. A bucket of several tensors is packed into a staging buffer of
// the communicator's memory kind (Communicator::allocate/copy: host memory
// for MPI, device memory and stream-ordered cudaMemcpyAsync for NCCL); a
// tensor's bytes are copied in at mark_ready and the averages copied back
// in finish(). A bucket of one tensor is reduced in place, without copies,
// and so is a bucket whose tensors together cover one contiguous range of
// memory (in any order), as when a model keeps all its gradients in one flat
// buffer (PyTorch's gradient_as_bucket_view).
// Registered buffers must stay valid (and, for NCCL, be device memory) for
// the bucketer's life, and must not be written between mark_ready and the
// end of finish().
//
// Progress. With a backend that progresses on its own
// (Communicator::async_progress(), NCCL) a bucket's allreduce runs in the
// background from the mark_ready that completes it until finish(). With
// MPI, which advances a non-blocking collective only while it is polled
// and whose non-blocking algorithms are slower than its blocking ones, the
// bucket is reduced (blocking) inside that mark_ready instead.
//
// Errors: CollectiveError for misuse (add after the layout is fixed, an
// index out of range or marked twice in a step) and for any failure of the
// collectives. After an error
// in finish() the step is abandoned and the next step starts afresh.
//
// Not thread-safe; one bucketer per communicator at a time is the intended
// use (its collectives interleave with the caller's otherwise).
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "xpscale/collectives/communicator.h"

namespace xpscale::collectives {

enum class BucketOrder {
  kReverse,  // last registered tensor first (DDP)
  kForward,  // registration order
};

inline constexpr std::size_t kDdpFirstBucketBytes = std::size_t{1} << 20;

struct BucketerOptions {
  std::size_t bucket_bytes = std::size_t{25} << 20;  // cap of every bucket but the first
  // Cap of bucket 0. Unset: kDdpFirstBucketBytes when the communicator has
  // async progress, else bucket_bytes (see "The small first bucket" above).
  std::optional<std::size_t> first_bucket_bytes;
  BucketOrder order = BucketOrder::kReverse;
};

class GradientBucketer {
 public:
  // comm must outlive the bucketer. Throws CollectiveError when a cap is 0.
  // The options are resolved here (first_bucket_bytes set from comm).
  explicit GradientBucketer(Communicator& comm, BucketerOptions options = {});
  ~GradientBucketer();
  GradientBucketer(const GradientBucketer&) = delete;
  GradientBucketer& operator=(const GradientBucketer&) = delete;

  // Registers a gradient buffer of count elements of type; returns its index
  // (0, 1, 2, ... in call order). Only before the layout is fixed.
  std::size_t add(void* data, std::size_t count, DataType type);

  // Number of registered tensors.
  std::size_t tensor_count() const;
  // Fixes the layout if needed; the number of buckets.
  std::size_t bucket_count();
  // Fixes the layout if needed; the bucket tensor `index` is in.
  std::size_t bucket_of(std::size_t index);
  // Fixes the layout if needed; bytes of bucket b.
  std::size_t bucket_bytes(std::size_t bucket);

  // Tensor `index` holds its final gradient for this step: stage it and
  // launch every bucket that is now complete and next in order.
  void mark_ready(std::size_t index);

  // Takes any tensor not yet marked as ready now, waits for every bucket's
  // allreduce, and leaves the group average in every registered buffer.
  // Afterwards a new step may begin (all tensors unmarked).
  void finish();

 private:
  struct Tensor {
    void* data;
    std::size_t count;
    DataType type;
    std::size_t bucket = 0;
    std::size_t offset = 0;  // bytes into the bucket's staging buffer
  };
  struct Bucket {
    std::vector<std::size_t> tensors;  // in packing order
    std::size_t bytes = 0;
    std::size_t count = 0;
    DataType type = DataType::kF32;
    // Where the bucket is reduced in place: its tensors' memory when they
    // cover one contiguous range (always so for one tensor), else null and
    // the bucket is packed into `staging`.
    void* view = nullptr;
    Communicator::Buffer staging;
    std::size_t pending = 0;  // tensors not yet ready this step
    std::unique_ptr<Work> work;
  };

  void fix_layout();
  void launch_ready_buckets();
  void reset_step();
  void* bucket_data(Bucket& b);
  void* contiguous_range(const Bucket& b) const;

  Communicator& comm_;
  BucketerOptions options_;
  std::vector<Tensor> tensors_;
  std::vector<Bucket> buckets_;
  std::vector<bool> ready_;
  bool fixed_ = false;
  std::size_t next_launch_ = 0;
};

}  // namespace xpscale::collectives
