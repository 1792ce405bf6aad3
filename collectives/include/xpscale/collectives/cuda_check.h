#pragma once
// The one boundary between xpscale and the CUDA runtime and NCCL C APIs:
// every CUDA or NCCL call goes through XPSCALE_CUDA_CHECK or
// XPSCALE_NCCL_CHECK, which turn a failure into a CollectiveError that
// records where it happened, the call's text, the code and the library's
// own message.
//
// Only for targets that link xpscale::collectives_nccl (built when
// XPSCALE_HAVE_CUDA is ON): it includes the CUDA and NCCL headers.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "xpscale/collectives/error.h"

namespace xpscale::detail {
// Build the message and throw; out of line so the macros stay small.
// throw_cuda_error also clears CUDA's last error so that a later
// cudaGetLastError does not report this failure a second time.
[[noreturn]] void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line);
[[noreturn]] void throw_nccl_error(ncclResult_t code, const char* call, const char* file, int line);
}  // namespace xpscale::detail

// Throws CollectiveError with
//   "file:line: <call> failed: <cudaGetErrorString> (CUDA error N, <name>)"
// when the call does not return cudaSuccess.
#define XPSCALE_CUDA_CHECK(...)                                                           \
  do {                                                                                    \
    const cudaError_t xpscale_cuda_check_rc_ = (__VA_ARGS__);                             \
    if (xpscale_cuda_check_rc_ != cudaSuccess) {                                          \
      ::xpscale::detail::throw_cuda_error(xpscale_cuda_check_rc_, #__VA_ARGS__, __FILE__, \
                                          __LINE__);                                      \
    }                                                                                     \
  } while (false)

// Throws CollectiveError with
//   "file:line: <call> failed: <ncclGetErrorString>: <ncclGetLastError> (NCCL error N)"
// when the call does not return ncclSuccess. ncclGetLastError carries the
// detail (which peer, which transport) that the error string lacks.
#define XPSCALE_NCCL_CHECK(...)                                                           \
  do {                                                                                    \
    const ncclResult_t xpscale_nccl_check_rc_ = (__VA_ARGS__);                            \
    if (xpscale_nccl_check_rc_ != ncclSuccess) {                                          \
      ::xpscale::detail::throw_nccl_error(xpscale_nccl_check_rc_, #__VA_ARGS__, __FILE__, \
                                          __LINE__);                                      \
    }                                                                                     \
  } while (false)
