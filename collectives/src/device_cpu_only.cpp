// The answers of device.h for a build without CUDA: nothing is usable. The
// CUDA build replaces this file with src/nccl/device.cpp and selftest.cu.
#include "xpscale/collectives/device.h"

namespace xpscale {

bool built_with_nccl() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_unavailable_reason() { return "built without CUDA"; }
std::string nccl_version_string() { return {}; }
bool gpu_selftest() { return false; }

}  // namespace xpscale
