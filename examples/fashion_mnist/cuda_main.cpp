// fashion_mnist_cuda: the CUDA variant of the example trainer (main.cpp).
// Each trial trains the MLP on its group's GPUs (fmnist/cuda_trainer.h),
// one GPU per rank chosen from the node-local rank, and the group averages
// gradients with NCCL. Parameters, metrics and checkpoints are the CPU
// trainer's (fmnist/trial_loop.h), so its sweep configs run unchanged.
//
//   mpirun -n 8 build/examples/fashion_mnist/fashion_mnist_cuda --sweep sweep.yaml
//
// (examples/sweeps/fmnist_mlp_cuda.yaml is one.)
//
// Without a visible GPU it stops before the sweep starts, with CUDA's
// reason and exit status 2, instead of failing every trial.
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "fmnist/cuda_trainer.h"
#include "fmnist/trial_loop.h"
#include "xpscale/collectives/device.h"
#include "xpscale/trial/run.h"

namespace {

void train(xpscale::Trial& trial) {
  const int device = fmnist::device_for_local_rank(trial.local_rank());
  fmnist::train_trial<fmnist::CudaDataParallelTrainer>(
      trial, [device](const fmnist::Split& train, const fmnist::TrainOptions& options,
                      xpscale::collectives::Communicator& comm) {
        return std::make_unique<fmnist::CudaDataParallelTrainer>(train, options, comm, device);
      });
}

bool asks_for_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (!asks_for_help(argc, argv) && xpscale::cuda_device_count() == 0) {
    std::fprintf(stderr,
                 "fashion_mnist_cuda: no CUDA device visible (%s); this trainer needs one GPU "
                 "per rank (the CPU trainer is fashion_mnist)\n",
                 xpscale::cuda_unavailable_reason().c_str());
    return 2;
  }
  return xpscale::run(argc, argv, train);
}
