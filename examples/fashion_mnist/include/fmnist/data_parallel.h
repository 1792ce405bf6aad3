#pragma once
// Data-parallel training of the MLP over one group of ranks (a trial's
// group).
//
// Every rank holds the whole data set and the same weights. An epoch is a
// permutation of the training set that depends only on (seed, epoch), so
// every rank computes the same one without talking. Step s takes global
// batch s of it (batch_size images, the last partial batch dropped); rank r
// of k takes the r-th of k equal, disjoint slices of that batch, computes
// the mean-loss gradient of its slice, and the group averages the
// gradients (GradientBucketer, one allreduce per bucket). As the slices are
// equal, the average is the gradient of the whole global batch, and every
// rank applies the same update to the same weights: the result is the
// single-rank result of batch size batch_size, up to float rounding.
//
// Collectives per step, in this order on every rank: the bucketer's
// allreduces. Per epoch: one allreduce of the loss. Per evaluation: one
// allreduce of (loss sum, correct count). The constructor and
// broadcast_state() broadcast from rank 0.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "fmnist/checkpoint.h"
#include "fmnist/dataset.h"
#include "fmnist/mlp.h"
#include "xpscale/collectives/bucketer.h"
#include "xpscale/collectives/communicator.h"

namespace fmnist {

struct TrainOptions {
  int hidden = 128;
  int batch_size = 64;  // global: summed over the group's ranks
  double lr = 0.05;
  double momentum = 0.9;
  std::uint64_t seed = 0;
};

struct Evaluation {
  double loss = 0;      // mean cross-entropy
  double accuracy = 0;  // fraction classified right
};

// The model shape for `options` on a group of `group_size` ranks training
// on `train_size` images. Throws xpscale::UserError when batch_size is not a
// positive multiple of the group size or exceeds the training set, or
// hidden/lr/momentum are out of range.
MlpShape checked_shape(const TrainOptions& options, std::size_t train_size, int group_size);

// The permutation of [0, n) for `epoch`: Fisher-Yates driven by
// xpscale::Rng(seed, epoch), the same on every machine.
std::vector<std::uint32_t> epoch_permutation(std::size_t n, std::uint64_t seed, std::int64_t epoch);

class DataParallelTrainer {
 public:
  // Collective over comm: initialises the weights from options.seed on
  // rank 0 and broadcasts them. `train` must outlive the trainer. Throws
  // xpscale::UserError when batch_size is not a positive multiple of the
  // group size or exceeds the training set, or hidden/lr/momentum are out
  // of range.
  DataParallelTrainer(const Split& train, const TrainOptions& options,
                      xpscale::collectives::Communicator& comm);
  // For training on batches streamed by the caller (train_epoch_streamed):
  // train_size is the number of training images of the whole group.
  DataParallelTrainer(std::size_t train_size, const TrainOptions& options,
                      xpscale::collectives::Communicator& comm);
  ~DataParallelTrainer();

  // Runs epoch `epoch` (which picks the permutation; count from 1) and
  // returns the mean training loss over the group. Collective.
  double train_epoch(std::int64_t epoch);
  // Fills `x` (kPixels x n, normalised as Split::gather does) and `y` with
  // this rank's next n training images.
  using BatchFill = std::function<void(float* x, std::uint8_t* y, int n)>;
  // Runs `steps` steps on this rank's local_batch() images from `fill`
  // each (every rank must run the same number) and returns the mean
  // training loss over the group. Collective.
  double train_epoch_streamed(std::size_t steps, const BatchFill& fill);
  // Loss and accuracy of the model on `split`; each rank evaluates a
  // contiguous shard and the group sums. Collective.
  Evaluation evaluate(const Split& split);

  std::size_t steps_per_epoch() const;
  int local_batch() const { return local_batch_; }

  // Weights and momentum as a checkpoint of `epoch`.
  Checkpoint snapshot(std::int64_t epoch) const;
  // Takes weights and momentum from `checkpoint` (this rank only). Throws
  // CheckpointError when its shape is not this model's.
  void restore(const Checkpoint& checkpoint);
  // Copies rank `root`'s weights and momentum to every rank. Collective.
  void broadcast_state(int root);

  Mlp& model() { return model_; }
  const Mlp& model() const { return model_; }
  Sgd& optimizer() { return sgd_; }

 private:
  const Split* train_;  // null when the caller streams the batches
  std::size_t train_size_;
  TrainOptions options_;
  xpscale::collectives::Communicator& comm_;
  Mlp model_;
  Sgd sgd_;
  int local_batch_ = 0;
  // Null for a group of one: nothing to average.
  std::unique_ptr<xpscale::collectives::GradientBucketer> bucketer_;
  std::vector<float> x_;  // kPixels x local_batch_ (or an evaluation chunk)
  std::vector<std::uint8_t> y_;
};

}  // namespace fmnist
