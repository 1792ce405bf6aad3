// device.h for a build with CUDA and NCCL: asks the CUDA runtime and NCCL.
#include <string>

#include "xpscale/collectives/cuda_check.h"
#include "xpscale/collectives/device.h"

namespace xpscale {

namespace {

// The CUDA errors that mean "no usable device here" rather than a fault:
// no driver or a stub one (machines that build but have no GPU), a driver
// older than the runtime, no device visible, or all devices busy in an
// exclusive compute mode.
bool means_no_device(cudaError_t rc) {
  switch (rc) {
    case cudaErrorInsufficientDriver:
    case cudaErrorNoDevice:
    case cudaErrorStubLibrary:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorDevicesUnavailable:
      return true;
    default:
      return false;
  }
}

struct DeviceProbe {
  int count = 0;
  cudaError_t rc = cudaSuccess;
};

DeviceProbe probe_devices() {
  DeviceProbe probe;
  probe.rc = cudaGetDeviceCount(&probe.count);
  if (probe.rc == cudaSuccess) return probe;
  if (!means_no_device(probe.rc)) XPSCALE_CUDA_CHECK(probe.rc);
  // The count is unspecified on failure; the error stays as CUDA's last
  // error until read, and must not be blamed on the caller's next call.
  probe.count = 0;
  static_cast<void>(cudaGetLastError());
  return probe;
}

}  // namespace

bool built_with_nccl() { return true; }

int cuda_device_count() { return probe_devices().count; }

std::string cuda_unavailable_reason() {
  const DeviceProbe probe = probe_devices();
  if (probe.count > 0) return {};
  if (probe.rc == cudaSuccess) return "the CUDA runtime reports 0 devices";
  return std::string(cudaGetErrorString(probe.rc)) + " (" + cudaGetErrorName(probe.rc) + ")";
}

std::string nccl_version_string() {
  int code = 0;
  XPSCALE_NCCL_CHECK(ncclGetVersion(&code));
  // Since NCCL 2.9 the code is major * 10000 + minor * 100 + patch.
  return std::to_string(code / 10000) + "." + std::to_string(code / 100 % 100) + "." +
         std::to_string(code % 100);
}

}  // namespace xpscale
