// gpu_selftest(): proves that this build's kernels run on this machine's
// GPU (right architecture, working driver) before a trial relies on it.
#include <cstddef>
#include <memory>
#include <vector>

#include "xpscale/collectives/cuda_check.h"
#include "xpscale/collectives/device.h"

namespace xpscale {

namespace {

// Element i becomes seed + i: a pattern a stale or zeroed buffer cannot match.
__global__ void fill_pattern(int* out, int n, int seed) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = seed + i;
}

struct CudaFree {
  void operator()(int* p) const noexcept { static_cast<void>(cudaFree(p)); }
};

}  // namespace

bool gpu_selftest() {
  constexpr int kCount = 1 << 16;
  constexpr int kSeed = 12345;
  constexpr int kThreads = 256;

  int* raw = nullptr;
  XPSCALE_CUDA_CHECK(cudaMalloc(&raw, kCount * sizeof(int)));
  const std::unique_ptr<int, CudaFree> device(raw);

  fill_pattern<<<(kCount + kThreads - 1) / kThreads, kThreads>>>(device.get(), kCount, kSeed);
  // A launch reports a bad configuration or a missing kernel image (built
  // for another architecture) only through the last error.
  XPSCALE_CUDA_CHECK(cudaGetLastError());

  std::vector<int> host(kCount, -1);
  // cudaMemcpy waits for the kernel and reports its execution errors.
  XPSCALE_CUDA_CHECK(
      cudaMemcpy(host.data(), device.get(), kCount * sizeof(int), cudaMemcpyDeviceToHost));
  for (int i = 0; i < kCount; ++i) {
    if (host[static_cast<std::size_t>(i)] != kSeed + i) return false;
  }
  return true;
}

}  // namespace xpscale
