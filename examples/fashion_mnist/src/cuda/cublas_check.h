#pragma once
// The example's one boundary to cuBLAS: every cuBLAS call goes through
// FMNIST_CUBLAS_CHECK, which turns a failure into fmnist::GpuError naming
// where, the call and cuBLAS's own text. (CUDA runtime calls use the
// project's XPSCALE_CUDA_CHECK from xpscale/collectives/cuda_check.h.)
#include <cublas_v2.h>

namespace fmnist::detail {
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line);
}  // namespace fmnist::detail

// Throws fmnist::GpuError with
//   "file:line: <call> failed: <cublasGetStatusString> (cuBLAS status N)".
#define FMNIST_CUBLAS_CHECK(...)                                                            \
  do {                                                                                      \
    const cublasStatus_t fmnist_cublas_check_rc_ = (__VA_ARGS__);                           \
    if (fmnist_cublas_check_rc_ != CUBLAS_STATUS_SUCCESS) {                                 \
      ::fmnist::detail::throw_cublas_error(fmnist_cublas_check_rc_, #__VA_ARGS__, __FILE__, \
                                           __LINE__);                                       \
    }                                                                                       \
  } while (false)
