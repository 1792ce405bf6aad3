#pragma once
// Data-parallel training of the MLP on CUDA devices, one per rank of the
// trial's group: DataParallelTrainer (fmnist/data_parallel.h) with the
// model, gradients and momentum on the device and the gradients averaged
// by NCCL through the group's communicator and a GradientBucketer.
//
// Everything data_parallel.h says about batches, slices, permutations and
// the order of collectives holds here too, and the same seed gives the
// same initial weights, so a sweep config of the CPU trainer runs
// unchanged and its checkpoints (fmnist/checkpoint.h) are interchangeable.
// The results match the CPU trainer's up to float rounding (cuBLAS sums in
// another order than Eigen).
//
// Images are gathered and normalised on the host (Split::gather) and copied
// to the device per batch; the scalar reductions (epoch loss, evaluation
// sums) go through allreduce_host.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "fmnist/checkpoint.h"
#include "fmnist/cuda_mlp.h"
#include "fmnist/data_parallel.h"
#include "fmnist/dataset.h"
#include "xpscale/collectives/bucketer.h"
#include "xpscale/collectives/communicator.h"

namespace fmnist {

// The device of a rank: its node-local rank in the job modulo the visible
// devices, the choice the runtime makes for the group's NCCL communicator
// (design.md). Throws GpuError naming CUDA's reason when no device is
// visible.
int device_for_local_rank(int local_rank);

class CudaDataParallelTrainer {
 public:
  // Collective over comm: makes `device` current for this thread, puts the
  // weights of options.seed (computed on rank 0) on every rank. Throws
  // xpscale::UserError as DataParallelTrainer does, and when the group has
  // more than one rank but comm reduces host memory (the mpi backend):
  // the gradients are on the device, so the group needs nccl. `train` must
  // outlive the trainer.
  CudaDataParallelTrainer(const Split& train, const TrainOptions& options,
                          xpscale::collectives::Communicator& comm, int device);
  ~CudaDataParallelTrainer();
  CudaDataParallelTrainer(const CudaDataParallelTrainer&) = delete;
  CudaDataParallelTrainer& operator=(const CudaDataParallelTrainer&) = delete;

  // As DataParallelTrainer. Collective.
  double train_epoch(std::int64_t epoch);
  Evaluation evaluate(const Split& split);
  std::size_t steps_per_epoch() const;
  int local_batch() const { return local_batch_; }

  // Weights and momentum copied to the host as a checkpoint of `epoch`.
  Checkpoint snapshot(std::int64_t epoch) const;
  // Throws CheckpointError when its shape is not this model's.
  void restore(const Checkpoint& checkpoint);
  // Copies rank `root`'s weights and momentum to every rank. Collective.
  void broadcast_state(int root);

  CudaMlp& model() { return *model_; }

 private:
  // A stream of its own on `device`, which it makes current.
  struct Stream {
    cudaStream_t handle = nullptr;
    explicit Stream(int device);
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
  };

  const Split& train_;
  TrainOptions options_;
  xpscale::collectives::Communicator& comm_;
  Stream stream_;
  std::unique_ptr<CudaMlp> model_;
  std::unique_ptr<CudaSgd> sgd_;
  int local_batch_ = 0;
  // Null for a group of one: nothing to average.
  std::unique_ptr<xpscale::collectives::GradientBucketer> bucketer_;
  std::vector<float> x_;  // kPixels x local_batch_ (or an evaluation chunk)
  std::vector<std::uint8_t> y_;
};

}  // namespace fmnist
