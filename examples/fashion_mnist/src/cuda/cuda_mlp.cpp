#include "fmnist/cuda_mlp.h"

#include <stdexcept>
#include <string>

#include "cublas_check.h"
#include "kernels.h"

namespace fmnist {
namespace {

// Indices into tensors(), as in mlp.cpp.
constexpr std::size_t kW1 = 0, kB1 = 1, kW2 = 2, kB2 = 3;

}  // namespace

void upload(std::span<const float> in, float* device, cudaStream_t stream) {
  XPSCALE_CUDA_CHECK(
      cudaMemcpyAsync(device, in.data(), in.size_bytes(), cudaMemcpyHostToDevice, stream));
  // The caller's buffer may go away on return; pageable copies are staged
  // by then, but waiting makes that independent of the memory kind.
  XPSCALE_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void download(const float* device, std::span<float> out, cudaStream_t stream) {
  XPSCALE_CUDA_CHECK(
      cudaMemcpyAsync(out.data(), device, out.size_bytes(), cudaMemcpyDeviceToHost, stream));
  XPSCALE_CUDA_CHECK(cudaStreamSynchronize(stream));
}

CudaMlp::CudaMlp(MlpShape shape, cudaStream_t stream) : shape_(shape), stream_(stream) {
  const Mlp layout(shape);  // checks the shape; the offsets come from it
  const auto t = layout.tensors();
  w1_ = t[kW1].offset;
  b1_ = t[kB1].offset;
  w2_ = t[kW2].offset;
  b2_ = t[kB2].offset;
  params_ = DeviceArray<float>(shape.param_count());
  grads_ = DeviceArray<float>(shape.param_count());
  sums_ = DeviceArray<double>(2);
  XPSCALE_CUDA_CHECK(cudaMemsetAsync(sums_.data(), 0, 2 * sizeof(double), stream_));
  FMNIST_CUBLAS_CHECK(cublasCreate(&cublas_));
  try {
    FMNIST_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    // Plain FP32 products (no TF32 tensor cores), so that the results stay
    // within float rounding of the CPU model.
    FMNIST_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
  } catch (...) {
    cublasDestroy(cublas_);
    throw;
  }
}

CudaMlp::~CudaMlp() { static_cast<void>(cublasDestroy(cublas_)); }

void CudaMlp::init(std::uint64_t seed) {
  Mlp host(shape_);
  host.init(seed);
  set_params(host.params());
}

std::vector<float> CudaMlp::params_to_host() const {
  std::vector<float> out(params_.size());
  download(params_.data(), out, stream_);
  return out;
}

std::vector<float> CudaMlp::grads_to_host() const {
  std::vector<float> out(grads_.size());
  download(grads_.data(), out, stream_);
  return out;
}

void CudaMlp::reserve(int n) {
  if (n <= capacity_) return;
  // The old buffers may still be read by queued work.
  XPSCALE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  const auto count = static_cast<std::size_t>(n);
  x_ = DeviceArray<float>(count * static_cast<std::size_t>(shape_.inputs));
  h_ = DeviceArray<float>(count * static_cast<std::size_t>(shape_.hidden));
  z_ = DeviceArray<float>(count * static_cast<std::size_t>(shape_.classes));
  dz1_ = DeviceArray<float>(count * static_cast<std::size_t>(shape_.hidden));
  labels_ = DeviceArray<std::uint8_t>(count);
  col_loss_ = DeviceArray<double>(count);
  correct_ = DeviceArray<int>(count);
  const std::vector<float> ones(count, 1.0f);
  ones_ = DeviceArray<float>(count);
  upload(ones, ones_.data(), stream_);
  capacity_ = n;
}

void CudaMlp::load_batch(const float* x, const std::uint8_t* labels, int n) {
  if (n < 0) throw std::invalid_argument("CudaMlp::load_batch: negative batch size");
  reserve(n);
  const auto count = static_cast<std::size_t>(n);
  XPSCALE_CUDA_CHECK(
      cudaMemcpyAsync(x_.data(), x, count * static_cast<std::size_t>(shape_.inputs) * sizeof(float),
                      cudaMemcpyHostToDevice, stream_));
  XPSCALE_CUDA_CHECK(
      cudaMemcpyAsync(labels_.data(), labels, count, cudaMemcpyHostToDevice, stream_));
  n_ = n;
}

void CudaMlp::forward(bool gradient, double loss_scale) {
  const int in = shape_.inputs, hid = shape_.hidden, cls = shape_.classes, n = n_;
  const float one = 1.0f, zero = 0.0f;
  float* p = params_.data();
  // h = relu(W1 x + b1)
  FMNIST_CUBLAS_CHECK(cublasSgemm(cublas_, CUBLAS_OP_N, CUBLAS_OP_N, hid, n, in, &one, p + w1_, hid,
                                  x_.data(), in, &zero, h_.data(), hid));
  XPSCALE_CUDA_CHECK(cuda::bias_relu(h_.data(), p + b1_, hid, n, stream_));
  // z = W2 h (+ b2 inside the softmax kernel)
  FMNIST_CUBLAS_CHECK(cublasSgemm(cublas_, CUBLAS_OP_N, CUBLAS_OP_N, cls, n, hid, &one, p + w2_,
                                  cls, h_.data(), hid, &zero, z_.data(), cls));
  XPSCALE_CUDA_CHECK(cuda::softmax_cross_entropy(z_.data(), p + b2_, labels_.data(), cls, n,
                                                 gradient, col_loss_.data(), correct_.data(),
                                                 stream_));
  XPSCALE_CUDA_CHECK(cuda::accumulate_sums(col_loss_.data(), correct_.data(), n, loss_scale,
                                           sums_.data(), stream_));
}

void CudaMlp::forward_backward(const Mlp::GradReady& ready) {
  const int in = shape_.inputs, hid = shape_.hidden, cls = shape_.classes, n = n_;
  forward(true, n > 0 ? 1.0 / n : 0.0);
  const float one = 1.0f, zero = 0.0f;
  float* p = params_.data();
  float* g = grads_.data();
  // z_ now holds dL/dz2. dW2 = dz2 h^T, db2 = dz2 1.
  FMNIST_CUBLAS_CHECK(cublasSgemm(cublas_, CUBLAS_OP_N, CUBLAS_OP_T, cls, hid, n, &one, z_.data(),
                                  cls, h_.data(), hid, &zero, g + w2_, cls));
  FMNIST_CUBLAS_CHECK(cublasSgemv(cublas_, CUBLAS_OP_N, cls, n, &one, z_.data(), cls, ones_.data(),
                                  1, &zero, g + b2_, 1));
  if (ready) {
    // The caller hands the gradients to another stream (the
    // communicator's), which does not wait for ours.
    XPSCALE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    ready(kB2);
    ready(kW2);
  }
  // dz1 = (W2^T dz2) * (h > 0); dW1 = dz1 x^T, db1 = dz1 1.
  FMNIST_CUBLAS_CHECK(cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, hid, n, cls, &one, p + w2_,
                                  cls, z_.data(), cls, &zero, dz1_.data(), hid));
  XPSCALE_CUDA_CHECK(
      cuda::relu_backward(dz1_.data(), h_.data(),
                          static_cast<std::size_t>(hid) * static_cast<std::size_t>(n), stream_));
  FMNIST_CUBLAS_CHECK(cublasSgemm(cublas_, CUBLAS_OP_N, CUBLAS_OP_T, hid, in, n, &one, dz1_.data(),
                                  hid, x_.data(), in, &zero, g + w1_, hid));
  FMNIST_CUBLAS_CHECK(cublasSgemv(cublas_, CUBLAS_OP_N, hid, n, &one, dz1_.data(), hid,
                                  ones_.data(), 1, &zero, g + b1_, 1));
  if (ready) {
    XPSCALE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    ready(kB1);
    ready(kW1);
  }
}

void CudaMlp::evaluate_batch() { forward(false, 1.0); }

std::array<double, 2> CudaMlp::take_sums() {
  std::array<double, 2> out{};
  XPSCALE_CUDA_CHECK(
      cudaMemcpyAsync(out.data(), sums_.data(), sizeof(out), cudaMemcpyDeviceToHost, stream_));
  XPSCALE_CUDA_CHECK(cudaMemsetAsync(sums_.data(), 0, sizeof(out), stream_));
  XPSCALE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return out;
}

CudaSgd::CudaSgd(std::size_t size, double momentum, cudaStream_t stream)
    : momentum_(momentum), stream_(stream) {
  if (!(momentum >= 0 && momentum < 1))
    throw std::invalid_argument("Sgd: momentum must be in [0, 1), got " + std::to_string(momentum));
  velocity_ = DeviceArray<float>(size);
  XPSCALE_CUDA_CHECK(cudaMemsetAsync(velocity_.data(), 0, size * sizeof(float), stream_));
}

void CudaSgd::step(float* params, const float* grads, double lr) {
  XPSCALE_CUDA_CHECK(cuda::sgd_momentum(params, velocity_.data(), grads, velocity_.size(),
                                        static_cast<float>(lr), static_cast<float>(momentum_),
                                        stream_));
}

std::vector<float> CudaSgd::velocity_to_host() const {
  std::vector<float> out(velocity_.size());
  download(velocity_.data(), out, stream_);
  return out;
}

}  // namespace fmnist
