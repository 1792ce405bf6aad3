// The CUDA data-parallel trainer against the CPU one, under mpiexec (one
// rank per GPU; ctest runs one rank, tests/gpu/run.sh one per GPU). The CUDA
// trainer runs on the whole job with the trial default backend (auto: NCCL
// here), the CPU reference on this rank alone with the whole global batch
// (MPI_COMM_SELF): data_parallel.h promises that both train the same
// weights, up to float rounding. Skips without a GPU and prints why,
// unless XPSCALE_REQUIRE_GPU=1.
#include <mpi.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "fmnist/cuda_trainer.h"
#include "fmnist/data_parallel.h"
#include "xpscale/collectives/device.h"
#include "xpscale/search/rng.h"

namespace fmnist {
namespace {

namespace xc = xpscale::collectives;

bool gpu_required() {
  const char* value = std::getenv("XPSCALE_REQUIRE_GPU");
  return value != nullptr && std::string(value) == "1";
}

// Every rank decides alike: a rank without a GPU makes the whole job skip.
bool job_has_gpus() {
  int mine = xpscale::cuda_device_count() > 0 ? 1 : 0;
  int all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

#define XPSCALE_NEED_GPUS()                                                                 \
  do {                                                                                      \
    if (!job_has_gpus()) {                                                                  \
      const std::string reason = xpscale::cuda_unavailable_reason();                        \
      std::cout << "no CUDA device on some rank: " << reason << "\n";                       \
      if (gpu_required()) FAIL() << "XPSCALE_REQUIRE_GPU=1 but no CUDA device: " << reason; \
      GTEST_SKIP() << "no CUDA device on some rank: " << reason;                            \
    }                                                                                       \
  } while (false)

// This rank among the job's ranks on its node, as the runtime computes it.
int node_local_rank() {
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int rank = 0;
  MPI_Comm_rank(node, &rank);
  MPI_Comm_free(&node);
  return rank;
}

// Class c is a bright band at rows 2c+4..2c+6 over dim noise.
Split synthetic_split(std::size_t n, std::uint64_t seed) {
  Split s;
  s.pixels.resize(n * kPixels);
  s.labels.resize(n);
  xpscale::Rng rng(seed, 0);
  for (std::size_t j = 0; j < n; ++j) {
    const auto c = static_cast<int>(rng.next_below(kClasses));
    s.labels[j] = static_cast<std::uint8_t>(c);
    std::uint8_t* img = s.pixels.data() + j * kPixels;
    for (int p = 0; p < kPixels; ++p) img[p] = static_cast<std::uint8_t>(rng.next_below(32));
    for (int p = (2 * c + 4) * kImageSide; p < (2 * c + 7) * kImageSide; ++p) img[p] = 220;
  }
  return s;
}

double relative_gap(const std::vector<float>& a, const std::vector<float>& b) {
  double gap = 0, scale = 1e-12;
  for (std::size_t i = 0; i < a.size(); ++i) {
    gap = std::max(gap, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return gap / scale;
}

TEST(CudaTrainer, TwoEpochsMatchTheCpuTrainerOnOneRank) {
  XPSCALE_NEED_GPUS();
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  const Split train = synthetic_split(1200, 1);
  const Split test = synthetic_split(300, 2);
  TrainOptions options;
  options.hidden = 48;
  options.batch_size = 24 * world;
  options.lr = 0.05;
  options.seed = 3;

  xc::Options trial_options;
  trial_options.timeout = std::chrono::seconds(120);
  auto group = xc::make_communicator(MPI_COMM_WORLD, trial_options);
  std::cout << "CUDA trainer on " << world << " rank(s), backend " << group->backend() << "\n";
  CudaDataParallelTrainer gpu(train, options, *group, device_for_local_rank(node_local_rank()));
  xc::Options self_options;
  self_options.backend = "mpi";
  auto self = xc::make_communicator(MPI_COMM_SELF, self_options);
  DataParallelTrainer cpu(train, options, *self);

  for (std::int64_t epoch = 1; epoch <= 2; ++epoch) {
    const double gpu_loss = gpu.train_epoch(epoch);
    const double cpu_loss = cpu.train_epoch(epoch);
    EXPECT_NEAR(gpu_loss, cpu_loss, 1e-3 * cpu_loss) << "epoch " << epoch;
  }
  const Checkpoint g = gpu.snapshot(2);
  const Checkpoint c = cpu.snapshot(2);
  EXPECT_LE(relative_gap(g.params, c.params), 1e-3);
  EXPECT_LE(relative_gap(g.velocity, c.velocity), 1e-2);

  const Evaluation ge = gpu.evaluate(test);
  const Evaluation ce = cpu.evaluate(test);
  EXPECT_NEAR(ge.loss, ce.loss, 1e-3 * ce.loss);
  EXPECT_NEAR(ge.accuracy, ce.accuracy, 2.0 / 300);
  EXPECT_GE(ge.accuracy, 0.9) << "the synthetic classes are easy";
}

}  // namespace
}  // namespace fmnist
