#include "fmnist/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "xpscale/core/error.h"
#include "xpscale/search/rng.h"

namespace fmnist {
namespace {

namespace xc = xpscale::collectives;

constexpr std::size_t kEvalChunk = 1000;
// Rng streams of the epoch permutations start here, away from the small
// streams Mlp::init uses.
constexpr std::uint64_t kShuffleStream = 1u << 20;

// The gradients and scalars of this trainer live in host memory.
xc::Communicator& host_memory(xc::Communicator& comm) {
  if (comm.device_memory())
    throw xpscale::UserError(
        "fashion_mnist trains on the CPU and reduces host memory, but this group's "
        "communicator is " +
        std::string(comm.backend()) +
        " (device memory): run it with --backend mpi, or use fashion_mnist_cuda");
  return comm;
}
}  // namespace

MlpShape checked_shape(const TrainOptions& o, std::size_t train_size, int group_size) {
  const auto fail = [](const std::string& what) { throw xpscale::UserError(what); };
  if (o.hidden < 1) fail("hidden must be >= 1, got " + std::to_string(o.hidden));
  if (!(o.lr > 0) || !std::isfinite(o.lr)) fail("lr must be > 0, got " + std::to_string(o.lr));
  if (!(o.momentum >= 0 && o.momentum < 1))
    fail("momentum must be in [0, 1), got " + std::to_string(o.momentum));
  if (o.batch_size < group_size || o.batch_size % group_size != 0)
    fail("batch_size " + std::to_string(o.batch_size) +
         " must be a positive multiple of the group size " + std::to_string(group_size) +
         " (every rank takes an equal slice of each batch)");
  if (static_cast<std::size_t>(o.batch_size) > train_size)
    fail("batch_size " + std::to_string(o.batch_size) + " exceeds the " +
         std::to_string(train_size) + " training images");
  return {kPixels, o.hidden, kClasses};
}

std::vector<std::uint32_t> epoch_permutation(std::size_t n, std::uint64_t seed,
                                             std::int64_t epoch) {
  std::vector<std::uint32_t> perm(n);
  for (std::size_t i = 0; i < n; ++i) perm[i] = static_cast<std::uint32_t>(i);
  xpscale::Rng rng(seed, kShuffleStream + static_cast<std::uint64_t>(epoch));
  for (std::size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[rng.next_below(i)]);
  return perm;
}

DataParallelTrainer::DataParallelTrainer(const Split& train, const TrainOptions& options,
                                         xc::Communicator& comm)
    : DataParallelTrainer(train.size(), options, comm) {
  train_ = &train;
}

DataParallelTrainer::DataParallelTrainer(std::size_t train_size, const TrainOptions& options,
                                         xc::Communicator& comm)
    : train_(nullptr),
      train_size_(train_size),
      options_(options),
      comm_(host_memory(comm)),
      model_(checked_shape(options, train_size, comm.size())),
      sgd_(model_.params().size(), options.momentum),
      local_batch_(options.batch_size / comm.size()) {
  if (comm_.rank() == 0) model_.init(options_.seed);
  broadcast_state(0);
  if (comm_.size() > 1) {
    bucketer_ = std::make_unique<xc::GradientBucketer>(comm_);
    for (const TensorSlice& t : model_.tensors())
      bucketer_->add(model_.grads().data() + t.offset, t.size, xc::DataType::kF32);
  }
  x_.resize(std::size_t{kPixels} * std::max<std::size_t>(local_batch_, kEvalChunk));
  y_.resize(std::max<std::size_t>(local_batch_, kEvalChunk));
}

DataParallelTrainer::~DataParallelTrainer() = default;

std::size_t DataParallelTrainer::steps_per_epoch() const {
  return train_size_ / static_cast<std::size_t>(options_.batch_size);
}

double DataParallelTrainer::train_epoch_streamed(std::size_t steps, const BatchFill& fill) {
  Mlp::GradReady ready;
  if (bucketer_) ready = [this](std::size_t tensor) { bucketer_->mark_ready(tensor); };
  double loss_sum = 0;
  for (std::size_t s = 0; s < steps; ++s) {
    fill(x_.data(), y_.data(), local_batch_);
    loss_sum += model_.forward_backward(x_.data(), y_.data(), local_batch_, ready);
    if (bucketer_) bucketer_->finish();
    sgd_.step(model_.params(), model_.grads(), options_.lr);
  }
  double mean = steps ? loss_sum / static_cast<double>(steps) : 0.0;
  comm_.allreduce(&mean, &mean, 1, xc::DataType::kF64, xc::ReduceOp::kAvg);
  return mean;
}

double DataParallelTrainer::train_epoch(std::int64_t epoch) {
  if (train_ == nullptr)
    throw xpscale::Error("train_epoch: this trainer streams its batches (train_epoch_streamed)");
  const Split& train = *train_;
  const auto perm = epoch_permutation(train.size(), options_.seed, epoch);
  const auto batch = static_cast<std::size_t>(options_.batch_size);
  const auto local = static_cast<std::size_t>(local_batch_);
  const std::size_t my_offset = static_cast<std::size_t>(comm_.rank()) * local;
  // The permutation cut into global batches; this rank takes its slice of each.
  std::size_t s = 0;
  return train_epoch_streamed(steps_per_epoch(), [&](float* x, std::uint8_t* y, int) {
    train.gather(std::span<const std::uint32_t>(perm.data() + s++ * batch + my_offset, local), x,
                 y);
  });
}

Evaluation DataParallelTrainer::evaluate(const Split& split) {
  const auto size = static_cast<std::size_t>(comm_.size());
  const auto rank = static_cast<std::size_t>(comm_.rank());
  const std::size_t begin = split.size() * rank / size;
  const std::size_t end = split.size() * (rank + 1) / size;
  // (loss sum, correct): doubles hold counts exactly far beyond 2^32.
  double sums[2] = {0, 0};
  for (std::size_t at = begin; at < end; at += kEvalChunk) {
    const std::size_t n = std::min(kEvalChunk, end - at);
    split.gather_range(at, n, x_.data(), y_.data());
    const int count = static_cast<int>(n);
    sums[0] += model_.loss(x_.data(), y_.data(), count) * count;
    sums[1] += static_cast<double>(model_.count_correct(x_.data(), y_.data(), count));
  }
  comm_.allreduce(sums, sums, 2, xc::DataType::kF64, xc::ReduceOp::kSum);
  if (split.size() == 0) return {};
  const auto total = static_cast<double>(split.size());
  return {sums[0] / total, sums[1] / total};
}

Checkpoint DataParallelTrainer::snapshot(std::int64_t epoch) const {
  Checkpoint c;
  c.epoch = epoch;
  c.shape = model_.shape();
  c.params.assign(model_.params().begin(), model_.params().end());
  c.velocity.assign(sgd_.velocity().begin(), sgd_.velocity().end());
  return c;
}

void DataParallelTrainer::restore(const Checkpoint& c) {
  check_fits(c, model_.shape());
  std::copy(c.params.begin(), c.params.end(), model_.params().begin());
  std::copy(c.velocity.begin(), c.velocity.end(), sgd_.velocity().begin());
}

void DataParallelTrainer::broadcast_state(int root) {
  if (comm_.size() == 1) return;
  comm_.broadcast(model_.params().data(), model_.params().size(), xc::DataType::kF32, root);
  comm_.broadcast(sgd_.velocity().data(), sgd_.velocity().size(), xc::DataType::kF32, root);
}

}  // namespace fmnist
