#include "xpscale/collectives/cuda_check.h"

#include <string>

namespace xpscale::detail {

namespace {
std::string where(const char* file, int line) {
  return std::string(file) + ":" + std::to_string(line) + ": ";
}
}  // namespace

void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line) {
  // Non-sticky errors stay as the "last error" until read; reading it here
  // keeps them from resurfacing at an unrelated check.
  static_cast<void>(cudaGetLastError());
  std::string message = cudaGetErrorString(code);
  std::string what = where(file, line) + call + " failed: " + message + " (CUDA error " +
                     std::to_string(static_cast<int>(code)) + ", " + cudaGetErrorName(code) + ")";
  throw CollectiveError(what, call, static_cast<int>(code), std::move(message));
}

void throw_nccl_error(ncclResult_t code, const char* call, const char* file, int line) {
  std::string message = ncclGetErrorString(code);
  // nullptr asks for the last error of any communicator of this thread.
  const char* last = ncclGetLastError(nullptr);
  if (last != nullptr && *last != '\0') message += std::string(": ") + last;
  std::string what = where(file, line) + call + " failed: " + message + " (NCCL error " +
                     std::to_string(static_cast<int>(code)) + ")";
  throw CollectiveError(what, call, static_cast<int>(code), std::move(message));
}

}  // namespace xpscale::detail
