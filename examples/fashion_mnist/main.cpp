// fashion_mnist: the example in-process trainer. Each trial trains the MLP
// of fmnist/mlp.h data-parallel over its group on the CPU and reports
// loss, validation and test accuracy per epoch (fmnist/trial_loop.h has
// the parameters and metrics).
//
//   mpirun -n 4 build/examples/fashion_mnist/fashion_mnist --sweep examples/sweeps/fmnist_mlp.yaml
#include <memory>

#include "fmnist/data_parallel.h"
#include "fmnist/trial_loop.h"
#include "xpscale/trial/run.h"

namespace {

void train(xpscale::Trial& trial) {
  fmnist::train_trial<fmnist::DataParallelTrainer>(
      trial, [](const fmnist::Split& train, const fmnist::TrainOptions& options,
                xpscale::collectives::Communicator& comm) {
        return std::make_unique<fmnist::DataParallelTrainer>(train, options, comm);
      });
}

}  // namespace

int main(int argc, char** argv) { return xpscale::run(argc, argv, train); }
