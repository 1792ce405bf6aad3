#pragma once
// A two-layer perceptron, inputs -> hidden (ReLU) -> classes, trained with
// softmax cross-entropy. float32 on the CPU with Eigen doing the matrix
// products; the rest (ReLU, softmax, two bias sums) is a few lines, which
// is why this is not a deep-learning framework's C++ API.
//
// All parameters live in one contiguous buffer and all gradients in another
// of the same layout, so that a data-parallel trainer can reduce them as a
// few large messages (or register the slices with a gradient bucketer) and a
// checkpoint is two flat arrays.
#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace fmnist {

struct MlpShape {
  int inputs = 784;
  int hidden = 128;
  int classes = 10;

  std::size_t param_count() const;
  friend bool operator==(const MlpShape&, const MlpShape&) = default;
};

// One tensor's place in the parameter (and gradient) buffer.
struct TensorSlice {
  std::string name;  // "w1", "b1", "w2", "b2"
  std::size_t offset = 0;
  std::size_t size = 0;
};

class Mlp {
 public:
  // Throws std::invalid_argument for a non-positive dimension.
  explicit Mlp(MlpShape shape);

  const MlpShape& shape() const { return shape_; }
  std::span<float> params() { return params_; }
  std::span<const float> params() const { return params_; }
  std::span<float> grads() { return grads_; }
  std::span<const float> grads() const { return grads_; }
  // The tensors in layout (forward) order: w1 (hidden x inputs), b1,
  // w2 (classes x hidden), b2, each matrix column-major. backward finishes
  // their gradients in the reverse order, which is the order a bucketer
  // registered with them in this order packs them (BucketOrder::kReverse).
  std::vector<TensorSlice> tensors() const;

  // Weights ~ N(0, 2 / fan_in) for the ReLU layer and N(0, 1 / fan_in) for
  // the output layer, biases zero. The same seed gives the same weights on
  // every machine (no std distributions).
  void init(std::uint64_t seed);

  // Called with a tensor's index in tensors() as soon as its gradient is
  // final, so that its reduction can start while backward goes on.
  using GradReady = std::function<void(std::size_t tensor)>;

  // x: shape().inputs x n, column-major (one sample per column); labels: n
  // classes. Returns the mean cross-entropy over the n samples and sets
  // grads() to its gradient.
  double forward_backward(const float* x, const std::uint8_t* labels, int n,
                          const GradReady& ready = {});
  // The mean cross-entropy only (no gradients).
  double loss(const float* x, const std::uint8_t* labels, int n);
  // How many of the n samples get their label as the arg-max class.
  std::size_t count_correct(const float* x, const std::uint8_t* labels, int n);

 private:
  using Matrix = Eigen::MatrixXf;
  // Fills z1_, h_ (ReLU) and p_ (logits, then softmax probabilities);
  // returns the summed cross-entropy.
  double forward(const float* x, const std::uint8_t* labels, int n);

  MlpShape shape_;
  std::vector<float> params_;
  std::vector<float> grads_;
  std::size_t w1_ = 0, b1_ = 0, w2_ = 0, b2_ = 0;  // offsets
  // Workspace reused across batches.
  Matrix h_, p_, dz1_;
};

// Stochastic gradient descent with (heavy-ball) momentum, PyTorch's form:
// v = momentum * v + g; p -= lr * v.
class Sgd {
 public:
  Sgd(std::size_t size, double momentum);
  void step(std::span<float> params, std::span<const float> grads, double lr);
  std::span<float> velocity() { return velocity_; }
  std::span<const float> velocity() const { return velocity_; }
  double momentum() const { return momentum_; }

 private:
  double momentum_;
  std::vector<float> velocity_;
};

}  // namespace fmnist
