// The CUDA MLP (fmnist/cuda_mlp.h) against the CPU one (fmnist/mlp.h): the
// same initial weights and batches give the same loss, gradients,
// evaluation and SGD updates, up to float rounding (cuBLAS and Eigen sum in
// different orders). Skips without a GPU and prints why, unless
// XPSCALE_REQUIRE_GPU=1 makes that a failure (tests/gpu/run.sh).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "fmnist/cuda_mlp.h"
#include "fmnist/mlp.h"
#include "xpscale/collectives/device.h"
#include "xpscale/search/rng.h"

namespace fmnist {
namespace {

bool gpu_required() {
  const char* value = std::getenv("XPSCALE_REQUIRE_GPU");
  return value != nullptr && std::string(value) == "1";
}

#define XPSCALE_NEED_GPU()                                                                  \
  do {                                                                                      \
    if (xpscale::cuda_device_count() == 0) {                                                \
      const std::string reason = xpscale::cuda_unavailable_reason();                        \
      std::cout << "no CUDA device: " << reason << "\n";                                    \
      if (gpu_required()) FAIL() << "XPSCALE_REQUIRE_GPU=1 but no CUDA device: " << reason; \
      GTEST_SKIP() << "no CUDA device: " << reason;                                         \
    }                                                                                       \
  } while (false)

const MlpShape kShape{784, 64, 10};

// A batch of n samples with inputs like normalised pixels and every class.
struct Batch {
  std::vector<float> x;
  std::vector<std::uint8_t> y;
  int n = 0;
};

Batch make_batch(int n, std::uint64_t seed) {
  Batch b;
  b.n = n;
  xpscale::Rng rng(seed, 7);
  b.x.resize(static_cast<std::size_t>(kShape.inputs) * static_cast<std::size_t>(n));
  for (auto& v : b.x) v = static_cast<float>(3 * rng.next_unit() - 0.8);
  for (int j = 0; j < n; ++j) b.y.push_back(static_cast<std::uint8_t>(rng.next_below(10)));
  return b;
}

class Stream {
 public:
  Stream() { XPSCALE_CUDA_CHECK(cudaStreamCreate(&stream_)); }
  ~Stream() { cudaStreamDestroy(stream_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// The largest |a - b| relative to the largest |a|, so that a tolerance
// means "agrees to this many digits of the tensor's scale".
double relative_gap(const std::vector<float>& a, std::span<const float> b, std::size_t offset,
                    std::size_t size) {
  double gap = 0, scale = 1e-12;
  for (std::size_t i = offset; i < offset + size; ++i) {
    gap = std::max(gap, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return gap / scale;
}

void expect_close(const std::vector<float>& got, std::span<const float> want,
                  const std::vector<TensorSlice>& tensors, double tolerance,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (const TensorSlice& t : tensors) {
    EXPECT_LE(relative_gap(got, want, t.offset, t.size), tolerance) << what << " of " << t.name;
  }
}

TEST(CudaMlp, InitialWeightsAreTheCpuModelsBitForBit) {
  XPSCALE_NEED_GPU();
  Stream stream;
  Mlp cpu(kShape);
  cpu.init(11);
  CudaMlp gpu(kShape, stream.get());
  gpu.init(11);
  const std::vector<float> got = gpu.params_to_host();
  EXPECT_TRUE(std::equal(got.begin(), got.end(), cpu.params().begin(), cpu.params().end()));
}

TEST(CudaMlp, LossAndGradientsMatchTheCpuModel) {
  XPSCALE_NEED_GPU();
  Stream stream;
  Mlp cpu(kShape);
  cpu.init(3);
  // Non-zero biases, so that their paths are exercised.
  for (const TensorSlice& t : cpu.tensors()) {
    if (t.name[0] != 'b') continue;
    for (std::size_t i = 0; i < t.size; ++i)
      cpu.params()[t.offset + i] = 0.05f * static_cast<float>(i % 7) - 0.1f;
  }
  CudaMlp gpu(kShape, stream.get());
  gpu.set_params(cpu.params());

  const Batch b = make_batch(48, 5);
  const double cpu_loss = cpu.forward_backward(b.x.data(), b.y.data(), b.n);
  gpu.load_batch(b.x.data(), b.y.data(), b.n);
  gpu.forward_backward();
  const double gpu_loss = gpu.take_sums()[0];

  EXPECT_NEAR(gpu_loss, cpu_loss, 1e-5 * std::abs(cpu_loss));
  expect_close(gpu.grads_to_host(), cpu.grads(), cpu.tensors(), 1e-4, "gradient");
}

TEST(CudaMlp, ReportsGradientsReadyInBackwardOrder) {
  XPSCALE_NEED_GPU();
  Stream stream;
  CudaMlp gpu(kShape, stream.get());
  gpu.init(1);
  const Batch b = make_batch(8, 2);
  gpu.load_batch(b.x.data(), b.y.data(), b.n);
  std::vector<std::size_t> order;
  gpu.forward_backward([&](std::size_t tensor) { order.push_back(tensor); });
  // b2, w2 (layer 2 is done first), then b1, w1: Mlp's order.
  EXPECT_EQ(order, (std::vector<std::size_t>{3, 2, 1, 0}));
}

TEST(CudaMlp, EvaluationMatchesTheCpuModel) {
  XPSCALE_NEED_GPU();
  Stream stream;
  Mlp cpu(kShape);
  cpu.init(9);
  CudaMlp gpu(kShape, stream.get());
  gpu.set_params(cpu.params());

  const Batch b = make_batch(300, 4);
  const double cpu_loss_sum = cpu.loss(b.x.data(), b.y.data(), b.n) * b.n;
  const std::size_t cpu_correct = cpu.count_correct(b.x.data(), b.y.data(), b.n);
  gpu.load_batch(b.x.data(), b.y.data(), b.n);
  gpu.evaluate_batch();
  const auto sums = gpu.take_sums();

  EXPECT_NEAR(sums[0], cpu_loss_sum, 1e-5 * cpu_loss_sum);
  // A sample whose top two logits tie within rounding could flip; random
  // weights make that a rare event, and one flip is allowed.
  EXPECT_NEAR(sums[1], static_cast<double>(cpu_correct), 1.0);
  // The sums start again from zero.
  EXPECT_EQ(gpu.take_sums()[0], 0.0);
}

TEST(CudaMlp, SgdWithMomentumTracksTheCpuModelOverSeveralSteps) {
  XPSCALE_NEED_GPU();
  Stream stream;
  Mlp cpu(kShape);
  cpu.init(21);
  Sgd cpu_sgd(cpu.params().size(), 0.9);
  CudaMlp gpu(kShape, stream.get());
  gpu.init(21);
  CudaSgd gpu_sgd(gpu.param_count(), 0.9, stream.get());

  double cpu_loss_sum = 0;
  for (int step = 0; step < 5; ++step) {
    const Batch b = make_batch(32, 100 + static_cast<std::uint64_t>(step));
    cpu_loss_sum += cpu.forward_backward(b.x.data(), b.y.data(), b.n);
    cpu_sgd.step(cpu.params(), cpu.grads(), 0.05);
    gpu.load_batch(b.x.data(), b.y.data(), b.n);
    gpu.forward_backward();
    gpu_sgd.step(gpu.params(), gpu.grads(), 0.05);
  }
  // The loss sum holds the five batch means, as in a training epoch.
  EXPECT_NEAR(gpu.take_sums()[0], cpu_loss_sum, 1e-4 * cpu_loss_sum);
  // Rounding differences grow a little with every step.
  expect_close(gpu.params_to_host(), cpu.params(), cpu.tensors(), 1e-4, "weights after 5 steps");
  expect_close(gpu_sgd.velocity_to_host(), cpu_sgd.velocity(), cpu.tensors(), 1e-3,
               "momentum after 5 steps");
}

}  // namespace
}  // namespace fmnist
