#pragma once
// The MLP of fmnist/mlp.h on a CUDA device: the same shape, parameter
// layout, initial weights, loss and optimizer, with the parameters,
// gradients, momentum and activations in device memory. cuBLAS does the
// matrix products (SGEMM, and SGEMV with a vector of ones for the bias
// gradients); kernels in src/cuda/kernels.cu do bias+ReLU, softmax
// cross-entropy with its gradient, the ReLU backward, the loss and
// accuracy sums and the SGD/momentum update.
//
// Only for targets that link fmnist_cuda_lib (built when XPSCALE_HAVE_CUDA
// is ON): it includes the CUDA runtime and cuBLAS headers.
//
// Streams and devices: a CudaMlp works on the device that was current
// when it was made and enqueues everything on the stream it was given.
// Methods that return host data synchronise that stream.
//
// Errors: CUDA runtime failures throw xpscale::CollectiveError (the
// project's one CUDA boundary, XPSCALE_CUDA_CHECK), cuBLAS failures throw
// GpuError.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "fmnist/mlp.h"
#include "xpscale/collectives/cuda_check.h"
#include "xpscale/core/error.h"

namespace fmnist {

// A failure of cuBLAS, or a GPU the trainer cannot use.
class GpuError : public xpscale::Error {
 public:
  using xpscale::Error::Error;
};

// `size` elements of T in device memory (uninitialised), freed on
// destruction. An empty array holds nullptr.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(std::size_t size) : size_(size) {
    if (size == 0) return;
    void* p = nullptr;
    XPSCALE_CUDA_CHECK(cudaMalloc(&p, size * sizeof(T)));
    data_.reset(static_cast<T*>(p));
  }
  T* data() const { return data_.get(); }
  std::size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(T* p) const noexcept { static_cast<void>(cudaFree(p)); }
  };
  std::unique_ptr<T, Free> data_;
  std::size_t size_ = 0;
};

// Host <-> device copies of whole arrays on `stream`; the download waits
// for the stream, so `out` holds the data on return.
void upload(std::span<const float> in, float* device, cudaStream_t stream);
void download(const float* device, std::span<float> out, cudaStream_t stream);

class CudaMlp {
 public:
  // Throws std::invalid_argument for a non-positive dimension (as Mlp).
  CudaMlp(MlpShape shape, cudaStream_t stream);
  ~CudaMlp();
  CudaMlp(const CudaMlp&) = delete;
  CudaMlp& operator=(const CudaMlp&) = delete;

  const MlpShape& shape() const { return shape_; }
  std::size_t param_count() const { return params_.size(); }
  // Device pointers to the parameter and gradient buffers, in the layout of
  // Mlp::tensors().
  float* params() { return params_.data(); }
  float* grads() { return grads_.data(); }
  std::vector<TensorSlice> tensors() const { return Mlp(shape_).tensors(); }

  // Mlp::init's weights (computed on the host, so they are bit-identical
  // to the CPU model's) copied to the device.
  void init(std::uint64_t seed);
  void set_params(std::span<const float> host) { upload(host, params(), stream_); }
  std::vector<float> params_to_host() const;
  std::vector<float> grads_to_host() const;

  // Copies a batch to the device: x is inputs x n host floats,
  // column-major; labels has n entries < classes. Later calls work on it.
  void load_batch(const float* x, const std::uint8_t* labels, int n);

  // Forward and backward on the loaded batch: grads() becomes the gradient
  // of the batch's mean cross-entropy, and that mean is added to the loss
  // sum. `ready` is called with a tensor's index in tensors() once its
  // gradient is complete in device memory (the stream has been
  // synchronised), w2/b2 before w1/b1, as Mlp does.
  void forward_backward(const Mlp::GradReady& ready = {});
  // Forward only: adds the batch's summed cross-entropy to the loss sum and
  // its correctly classified samples to the correct count.
  void evaluate_batch();
  // {loss sum, correct count} since the last call, then both reset to 0.
  std::array<double, 2> take_sums();

 private:
  // Fills h_ (ReLU outputs) and z_ (the softmax gradient or probabilities)
  // and adds to the sums, the loss scaled by `loss_scale`.
  void forward(bool gradient, double loss_scale);
  void reserve(int n);

  MlpShape shape_;
  cudaStream_t stream_;
  cublasHandle_t cublas_ = nullptr;
  std::size_t w1_ = 0, b1_ = 0, w2_ = 0, b2_ = 0;  // offsets, as in Mlp
  DeviceArray<float> params_, grads_;
  int n_ = 0;         // samples in the loaded batch
  int capacity_ = 0;  // samples the workspace holds
  DeviceArray<float> x_, h_, z_, dz1_, ones_;
  DeviceArray<std::uint8_t> labels_;
  DeviceArray<double> col_loss_, sums_;
  DeviceArray<int> correct_;
};

// Sgd of fmnist/mlp.h with the momentum buffer on the device.
class CudaSgd {
 public:
  // Throws std::invalid_argument unless 0 <= momentum < 1.
  CudaSgd(std::size_t size, double momentum, cudaStream_t stream);
  // v = momentum * v + g; p -= lr * v, on size() device floats.
  void step(float* params, const float* grads, double lr);
  float* velocity() { return velocity_.data(); }
  std::size_t size() const { return velocity_.size(); }
  void set_velocity(std::span<const float> host) { upload(host, velocity(), stream_); }
  std::vector<float> velocity_to_host() const;

 private:
  double momentum_;
  cudaStream_t stream_;
  DeviceArray<float> velocity_;
};

}  // namespace fmnist
