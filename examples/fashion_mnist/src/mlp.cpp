#include "fmnist/mlp.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "xpscale/search/rng.h"

namespace fmnist {
namespace {

using Map = Eigen::Map<Eigen::MatrixXf>;
using ConstMap = Eigen::Map<const Eigen::MatrixXf>;
// Indices into tensors().
constexpr std::size_t kW1 = 0, kB1 = 1, kW2 = 2, kB2 = 3;

using VecMap = Eigen::Map<Eigen::VectorXf>;
using ConstVecMap = Eigen::Map<const Eigen::VectorXf>;

// Standard normal draws by Box-Muller from the project's counter-based
// generator, so initial weights do not depend on the standard library.
void fill_normal(std::span<float> out, double stddev, std::uint64_t seed, std::uint64_t stream) {
  xpscale::Rng rng(seed, stream);
  for (std::size_t i = 0; i < out.size(); i += 2) {
    const double r = std::sqrt(-2.0 * std::log(rng.next_unit()));
    const double theta = 2.0 * std::numbers::pi * rng.next_unit();
    out[i] = static_cast<float>(stddev * r * std::cos(theta));
    if (i + 1 < out.size()) out[i + 1] = static_cast<float>(stddev * r * std::sin(theta));
  }
}

}  // namespace

std::size_t MlpShape::param_count() const {
  const auto in = static_cast<std::size_t>(inputs), hid = static_cast<std::size_t>(hidden),
             out = static_cast<std::size_t>(classes);
  return hid * in + hid + out * hid + out;
}

Mlp::Mlp(MlpShape shape) : shape_(shape) {
  if (shape.inputs < 1 || shape.hidden < 1 || shape.classes < 2)
    throw std::invalid_argument("Mlp: inputs and hidden must be >= 1 and classes >= 2, got " +
                                std::to_string(shape.inputs) + ", " + std::to_string(shape.hidden) +
                                ", " + std::to_string(shape.classes));
  const auto in = static_cast<std::size_t>(shape.inputs);
  const auto hid = static_cast<std::size_t>(shape.hidden);
  const auto out = static_cast<std::size_t>(shape.classes);
  w1_ = 0;
  b1_ = w1_ + hid * in;
  w2_ = b1_ + hid;
  b2_ = w2_ + out * hid;
  params_.assign(shape.param_count(), 0.0f);
  grads_.assign(shape.param_count(), 0.0f);
}

std::vector<TensorSlice> Mlp::tensors() const {
  const auto hid = static_cast<std::size_t>(shape_.hidden);
  const auto out = static_cast<std::size_t>(shape_.classes);
  return {{"w1", w1_, hid * static_cast<std::size_t>(shape_.inputs)},
          {"b1", b1_, hid},
          {"w2", w2_, out * hid},
          {"b2", b2_, out}};
}

void Mlp::init(std::uint64_t seed) {
  std::fill(params_.begin(), params_.end(), 0.0f);
  const std::span<float> all(params_);
  fill_normal(all.subspan(w1_, b1_ - w1_), std::sqrt(2.0 / shape_.inputs), seed, 1);
  fill_normal(all.subspan(w2_, b2_ - w2_), std::sqrt(1.0 / shape_.hidden), seed, 2);
}

double Mlp::forward(const float* x, const std::uint8_t* labels, int n) {
  const ConstMap xm(x, shape_.inputs, n);
  const ConstMap w1(params_.data() + w1_, shape_.hidden, shape_.inputs);
  const ConstVecMap b1(params_.data() + b1_, shape_.hidden);
  const ConstMap w2(params_.data() + w2_, shape_.classes, shape_.hidden);
  const ConstVecMap b2(params_.data() + b2_, shape_.classes);

  h_.resize(shape_.hidden, n);
  h_.noalias() = w1 * xm;
  h_.colwise() += b1;
  h_ = h_.cwiseMax(0.0f);
  p_.resize(shape_.classes, n);
  p_.noalias() = w2 * h_;
  p_.colwise() += b2;

  // Softmax per column, shifted by the column's max for stability; the
  // loss of a column is log(sum exp(z - max)) - (z_label - max).
  double total = 0;
  for (int j = 0; j < n; ++j) {
    auto col = p_.col(j);
    const float max = col.maxCoeff();
    const float label_logit = col(labels[j]) - max;
    col = (col.array() - max).exp();
    const float sum = col.sum();
    col /= sum;
    total += std::log(static_cast<double>(sum)) - label_logit;
  }
  return total;
}

double Mlp::forward_backward(const float* x, const std::uint8_t* labels, int n,
                             const GradReady& ready) {
  const double total = forward(x, labels, n);
  const ConstMap xm(x, shape_.inputs, n);
  const ConstMap w2(params_.data() + w2_, shape_.classes, shape_.hidden);
  Map dw1(grads_.data() + w1_, shape_.hidden, shape_.inputs);
  VecMap db1(grads_.data() + b1_, shape_.hidden);
  Map dw2(grads_.data() + w2_, shape_.classes, shape_.hidden);
  VecMap db2(grads_.data() + b2_, shape_.classes);

  // d(mean loss)/d logits = (softmax - onehot) / n, in place in p_.
  for (int j = 0; j < n; ++j) p_(labels[j], j) -= 1.0f;
  p_ *= 1.0f / static_cast<float>(n);
  dw2.noalias() = p_ * h_.transpose();
  db2 = p_.rowwise().sum();
  if (ready) {
    ready(kB2);
    ready(kW2);
  }
  // Back through the ReLU: h_ > 0 exactly where the pre-activation was.
  dz1_.resize(shape_.hidden, n);
  dz1_.noalias() = w2.transpose() * p_;
  dz1_.array() *= (h_.array() > 0.0f).cast<float>();
  dw1.noalias() = dz1_ * xm.transpose();
  db1 = dz1_.rowwise().sum();
  if (ready) {
    ready(kB1);
    ready(kW1);
  }
  return total / n;
}

double Mlp::loss(const float* x, const std::uint8_t* labels, int n) {
  return forward(x, labels, n) / n;
}

std::size_t Mlp::count_correct(const float* x, const std::uint8_t* labels, int n) {
  forward(x, labels, n);
  std::size_t correct = 0;
  for (int j = 0; j < n; ++j) {
    Eigen::Index best = 0;
    p_.col(j).maxCoeff(&best);
    correct += best == labels[j];
  }
  return correct;
}

Sgd::Sgd(std::size_t size, double momentum) : momentum_(momentum), velocity_(size, 0.0f) {
  if (!(momentum >= 0 && momentum < 1))
    throw std::invalid_argument("Sgd: momentum must be in [0, 1), got " + std::to_string(momentum));
}

void Sgd::step(std::span<float> params, std::span<const float> grads, double lr) {
  if (params.size() != velocity_.size() || grads.size() != velocity_.size())
    throw std::invalid_argument("Sgd::step: " + std::to_string(params.size()) + " params and " +
                                std::to_string(grads.size()) + " grads for an optimizer of " +
                                std::to_string(velocity_.size()));
  const auto mu = static_cast<float>(momentum_);
  const auto rate = static_cast<float>(lr);
  float* v = velocity_.data();
  float* p = params.data();
  const float* g = grads.data();
  for (std::size_t i = 0; i < velocity_.size(); ++i) {
    v[i] = mu * v[i] + g[i];
    p[i] -= rate * v[i];
  }
}

}  // namespace fmnist
