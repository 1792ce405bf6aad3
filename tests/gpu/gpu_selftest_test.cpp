// Runs where there is a GPU (tests/gpu/run.sh); skips elsewhere, unless
// XPSCALE_REQUIRE_GPU=1 says a GPU must be there, as run.sh does, so that a
// GPU job that lost its GPU fails instead of passing by skipping.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "xpscale/collectives/device.h"

namespace xpscale {
namespace {

bool gpu_required() {
  const char* value = std::getenv("XPSCALE_REQUIRE_GPU");
  return value != nullptr && std::string(value) == "1";
}

TEST(Gpu, BuildLinksNccl) {
  EXPECT_TRUE(built_with_nccl());
  // ncclGetVersion needs no device, so this runs on the build machine too.
  const std::string version = nccl_version_string();
  std::cout << "NCCL " << version << "\n";
  EXPECT_TRUE(version.starts_with("2.")) << version;
}

TEST(Gpu, SelftestKernelFillsAndCopiesBack) {
  const int devices = cuda_device_count();
  if (devices == 0) {
    const std::string reason = cuda_unavailable_reason();
    std::cout << "no CUDA device: " << reason << "\n";
    if (gpu_required()) FAIL() << "XPSCALE_REQUIRE_GPU=1 but no CUDA device: " << reason;
    GTEST_SKIP() << "no CUDA device: " << reason;
  }
  std::cout << devices << " CUDA device(s)\n";
  EXPECT_TRUE(gpu_selftest());
}

}  // namespace
}  // namespace xpscale
