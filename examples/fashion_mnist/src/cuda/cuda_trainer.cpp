#include "fmnist/cuda_trainer.h"

#include <algorithm>
#include <span>
#include <string>

#include "fmnist/host_reduce.h"
#include "xpscale/collectives/device.h"

namespace fmnist {
namespace {

namespace xc = xpscale::collectives;

constexpr std::size_t kEvalChunk = 1000;

// The group's communicator, checked to reduce what this trainer holds.
xc::Communicator& device_capable(xc::Communicator& comm) {
  if (comm.size() > 1 && !comm.device_memory())
    throw xpscale::UserError(
        "fashion_mnist_cuda keeps its gradients on the GPU and needs the "
        "nccl backend for groups of more than one rank, but this group's "
        "communicator is " +
        std::string(comm.backend()) + " (run with --backend auto or nccl)");
  return comm;
}

}  // namespace

int device_for_local_rank(int local_rank) {
  const int devices = xpscale::cuda_device_count();
  if (devices == 0) throw GpuError("no CUDA device visible: " + xpscale::cuda_unavailable_reason());
  return local_rank % devices;
}

CudaDataParallelTrainer::Stream::Stream(int device) {
  XPSCALE_CUDA_CHECK(cudaSetDevice(device));
  XPSCALE_CUDA_CHECK(cudaStreamCreateWithFlags(&handle, cudaStreamNonBlocking));
}

CudaDataParallelTrainer::Stream::~Stream() { static_cast<void>(cudaStreamDestroy(handle)); }

CudaDataParallelTrainer::CudaDataParallelTrainer(const Split& train, const TrainOptions& options,
                                                 xc::Communicator& comm, int device)
    : train_(train),
      options_(options),
      comm_(device_capable(comm)),
      // The stream, and every buffer made after it, belong to `device`.
      stream_(device),
      local_batch_(options.batch_size / comm.size()) {
  const MlpShape shape = checked_shape(options, train.size(), comm.size());
  model_ = std::make_unique<CudaMlp>(shape, stream_.handle);
  sgd_ = std::make_unique<CudaSgd>(model_->param_count(), options.momentum, stream_.handle);
  if (comm_.rank() == 0) model_->init(options_.seed);
  broadcast_state(0);
  if (comm_.size() > 1) {
    bucketer_ = std::make_unique<xc::GradientBucketer>(comm_);
    for (const TensorSlice& t : model_->tensors())
      bucketer_->add(model_->grads() + t.offset, t.size, xc::DataType::kF32);
  }
  x_.resize(std::size_t{kPixels} * std::max<std::size_t>(local_batch_, kEvalChunk));
  y_.resize(std::max<std::size_t>(local_batch_, kEvalChunk));
}

CudaDataParallelTrainer::~CudaDataParallelTrainer() {
  // Queued kernels may still use the buffers freed below.
  static_cast<void>(cudaStreamSynchronize(stream_.handle));
}

std::size_t CudaDataParallelTrainer::steps_per_epoch() const {
  return train_.size() / static_cast<std::size_t>(options_.batch_size);
}

double CudaDataParallelTrainer::train_epoch(std::int64_t epoch) {
  const auto perm = epoch_permutation(train_.size(), options_.seed, epoch);
  const std::size_t steps = steps_per_epoch();
  const auto batch = static_cast<std::size_t>(options_.batch_size);
  const auto local = static_cast<std::size_t>(local_batch_);
  const std::size_t my_offset = static_cast<std::size_t>(comm_.rank()) * local;
  Mlp::GradReady ready;
  if (bucketer_) ready = [this](std::size_t tensor) { bucketer_->mark_ready(tensor); };

  model_->take_sums();  // start the epoch's loss sum from zero
  for (std::size_t s = 0; s < steps; ++s) {
    const std::span<const std::uint32_t> slice(perm.data() + s * batch + my_offset, local);
    train_.gather(slice, x_.data(), y_.data());
    model_->load_batch(x_.data(), y_.data(), local_batch_);
    model_->forward_backward(ready);
    // finish() ends with the communicator's stream drained, so the update
    // below (on ours) reads the averaged gradients.
    if (bucketer_) bucketer_->finish();
    sgd_->step(model_->params(), model_->grads(), options_.lr);
  }
  const double loss_sum = model_->take_sums()[0];
  double mean = steps ? loss_sum / static_cast<double>(steps) : 0.0;
  allreduce_host(comm_, &mean, 1, xc::DataType::kF64, xc::ReduceOp::kAvg);
  return mean;
}

Evaluation CudaDataParallelTrainer::evaluate(const Split& split) {
  const auto size = static_cast<std::size_t>(comm_.size());
  const auto rank = static_cast<std::size_t>(comm_.rank());
  const std::size_t begin = split.size() * rank / size;
  const std::size_t end = split.size() * (rank + 1) / size;
  model_->take_sums();
  for (std::size_t at = begin; at < end; at += kEvalChunk) {
    const std::size_t n = std::min(kEvalChunk, end - at);
    split.gather_range(at, n, x_.data(), y_.data());
    model_->load_batch(x_.data(), y_.data(), static_cast<int>(n));
    model_->evaluate_batch();
  }
  // (loss sum, correct): doubles hold counts exactly far beyond 2^32.
  std::array<double, 2> sums = model_->take_sums();
  allreduce_host(comm_, sums.data(), 2, xc::DataType::kF64, xc::ReduceOp::kSum);
  if (split.size() == 0) return {};
  const auto total = static_cast<double>(split.size());
  return {sums[0] / total, sums[1] / total};
}

Checkpoint CudaDataParallelTrainer::snapshot(std::int64_t epoch) const {
  Checkpoint c;
  c.epoch = epoch;
  c.shape = model_->shape();
  c.params = model_->params_to_host();
  c.velocity = sgd_->velocity_to_host();
  return c;
}

void CudaDataParallelTrainer::restore(const Checkpoint& c) {
  check_fits(c, model_->shape());
  model_->set_params(c.params);
  sgd_->set_velocity(c.velocity);
}

void CudaDataParallelTrainer::broadcast_state(int root) {
  if (comm_.size() == 1) return;
  // Our stream must be done writing before the communicator's reads.
  XPSCALE_CUDA_CHECK(cudaStreamSynchronize(stream_.handle));
  comm_.broadcast(model_->params(), model_->param_count(), xc::DataType::kF32, root);
  comm_.broadcast(sgd_->velocity(), sgd_->size(), xc::DataType::kF32, root);
  comm_.synchronize();
}

}  // namespace fmnist
