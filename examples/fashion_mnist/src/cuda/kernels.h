#pragma once
// The MLP's element-wise kernels (cuBLAS does the matrix products). Host
// launchers, declared without CUDA-only syntax so that C++20 code compiled
// by the host compiler can call them; kernels.cu (C++17, nvcc) defines
// them. Every launcher enqueues on `stream` and returns the launch error
// (cudaSuccess, or e.g. cudaErrorNoKernelImageForDevice); execution errors
// surface at the next synchronising call.
//
// Matrices are column-major with one sample per column, as in fmnist/mlp.h.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace fmnist::cuda {

// h = max(h + b, 0) per column; h is rows x n, b has rows elements.
cudaError_t bias_relu(float* h, const float* b, int rows, int n, cudaStream_t stream);

// Per column j of z (classes x n): adds the bias b, computes the softmax,
// col_loss[j] = -log softmax[label_j] (in double, shifted by the column's
// maximum as the CPU model does) and correct[j] = 1 when the first
// arg-max class is label_j, else 0. With `gradient`, z becomes
// (softmax - onehot(label)) / n, the gradient of the mean loss by the
// logits; without, z is left as the probabilities.
cudaError_t softmax_cross_entropy(float* z, const float* b, const std::uint8_t* labels, int classes,
                                  int n, bool gradient, double* col_loss, int* correct,
                                  cudaStream_t stream);

// dz *= (h > 0): back through the ReLU (h holds its outputs).
cudaError_t relu_backward(float* dz, const float* h, std::size_t count, cudaStream_t stream);

// sums[0] += scale * sum(col_loss[0..n)), sums[1] += sum(correct[0..n)),
// in a fixed order (one block, a tree), so the result does not depend on
// scheduling.
cudaError_t accumulate_sums(const double* col_loss, const int* correct, int n, double scale,
                            double* sums, cudaStream_t stream);

// PyTorch's SGD with momentum: v = momentum * v + g; p -= lr * v.
cudaError_t sgd_momentum(float* p, float* v, const float* g, std::size_t count, float lr,
                         float momentum, cudaStream_t stream);

}  // namespace fmnist::cuda
