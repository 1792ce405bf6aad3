#include "cublas_check.h"

#include <string>

#include "fmnist/cuda_mlp.h"

namespace fmnist::detail {

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  throw GpuError(std::string(file) + ":" + std::to_string(line) + ": " + call +
                 " failed: " + cublasGetStatusString(status) + " (cuBLAS status " +
                 std::to_string(static_cast<int>(status)) + ")");
}

}  // namespace fmnist::detail
