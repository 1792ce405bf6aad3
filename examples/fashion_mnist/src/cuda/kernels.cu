#include <cfloat>

#include "kernels.h"

namespace fmnist::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(std::size_t count) {
  return static_cast<unsigned>((count + kThreads - 1) / kThreads);
}

__global__ void bias_relu_kernel(float* h, const float* b, int rows, std::size_t count) {
  const std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x;
  if (i >= count) return;
  const float v = h[i] + b[i % static_cast<std::size_t>(rows)];
  h[i] = v > 0.0f ? v : 0.0f;
}

// One thread per column: there are 10 classes, too few to split a column.
__global__ void softmax_cross_entropy_kernel(float* z, const float* b, const std::uint8_t* labels,
                                             int classes, int n, bool gradient, double* col_loss,
                                             int* correct) {
  const int j = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (j >= n) return;
  float* col = z + static_cast<std::size_t>(j) * classes;
  const int label = labels[j];
  float max = -FLT_MAX;
  int best = 0;
  for (int c = 0; c < classes; ++c) {
    col[c] += b[c];
    if (col[c] > max) {
      max = col[c];
      best = c;
    }
  }
  const float label_logit = col[label] - max;
  float sum = 0.0f;
  for (int c = 0; c < classes; ++c) {
    col[c] = expf(col[c] - max);
    sum += col[c];
  }
  col_loss[j] = log(static_cast<double>(sum)) - static_cast<double>(label_logit);
  correct[j] = best == label ? 1 : 0;
  const float inv_n = 1.0f / static_cast<float>(n);
  for (int c = 0; c < classes; ++c) {
    const float p = col[c] / sum;
    col[c] = gradient ? (p - (c == label ? 1.0f : 0.0f)) * inv_n : p;
  }
}

__global__ void relu_backward_kernel(float* dz, const float* h, std::size_t count) {
  const std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x;
  if (i < count && !(h[i] > 0.0f)) dz[i] = 0.0f;
}

// One block of kThreads: each thread sums a strided share, then a tree.
__global__ void accumulate_sums_kernel(const double* col_loss, const int* correct, int n,
                                       double scale, double* sums) {
  __shared__ double loss[kThreads];
  __shared__ double hits[kThreads];
  double l = 0, c = 0;
  for (int j = static_cast<int>(threadIdx.x); j < n; j += kThreads) {
    l += col_loss[j];
    c += correct[j];
  }
  loss[threadIdx.x] = l;
  hits[threadIdx.x] = c;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      loss[threadIdx.x] += loss[threadIdx.x + half];
      hits[threadIdx.x] += hits[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    sums[0] += scale * loss[0];
    sums[1] += hits[0];
  }
}

__global__ void sgd_momentum_kernel(float* p, float* v, const float* g, std::size_t count, float lr,
                                    float momentum) {
  const std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x;
  if (i >= count) return;
  v[i] = momentum * v[i] + g[i];
  p[i] -= lr * v[i];
}

}  // namespace

cudaError_t bias_relu(float* h, const float* b, int rows, int n, cudaStream_t stream) {
  const std::size_t count = static_cast<std::size_t>(rows) * static_cast<std::size_t>(n);
  if (count == 0) return cudaSuccess;
  bias_relu_kernel<<<blocks_for(count), kThreads, 0, stream>>>(h, b, rows, count);
  return cudaGetLastError();
}

cudaError_t softmax_cross_entropy(float* z, const float* b, const std::uint8_t* labels, int classes,
                                  int n, bool gradient, double* col_loss, int* correct,
                                  cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  softmax_cross_entropy_kernel<<<blocks_for(static_cast<std::size_t>(n)), kThreads, 0, stream>>>(
      z, b, labels, classes, n, gradient, col_loss, correct);
  return cudaGetLastError();
}

cudaError_t relu_backward(float* dz, const float* h, std::size_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  relu_backward_kernel<<<blocks_for(count), kThreads, 0, stream>>>(dz, h, count);
  return cudaGetLastError();
}

cudaError_t accumulate_sums(const double* col_loss, const int* correct, int n, double scale,
                            double* sums, cudaStream_t stream) {
  accumulate_sums_kernel<<<1, kThreads, 0, stream>>>(col_loss, correct, n, scale, sums);
  return cudaGetLastError();
}

cudaError_t sgd_momentum(float* p, float* v, const float* g, std::size_t count, float lr,
                         float momentum, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  sgd_momentum_kernel<<<blocks_for(count), kThreads, 0, stream>>>(p, v, g, count, lr, momentum);
  return cudaGetLastError();
}

}  // namespace fmnist::cuda
