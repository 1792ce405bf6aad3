// The MLP and its optimizer: gradients match finite differences, training
// lowers the loss, the same seed gives the same weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "fmnist/mlp.h"
#include "xpscale/search/rng.h"

namespace {

using fmnist::Mlp;
using fmnist::MlpShape;

std::vector<float> normal_inputs(std::size_t n, std::uint64_t seed) {
  xpscale::Rng rng(seed, 99);
  std::vector<float> x(n);
  for (auto& v : x) v = static_cast<float>(2 * rng.next_unit() - 1);
  return x;
}

TEST(Mlp, LayoutCoversTheBufferInForwardOrder) {
  const Mlp m(MlpShape{784, 32, 10});
  const auto t = m.tensors();
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].name, "w1");
  EXPECT_EQ(t[3].name, "b2");
  std::size_t at = 0;
  for (const auto& s : t) {
    EXPECT_EQ(s.offset, at) << s.name;
    at += s.size;
  }
  EXPECT_EQ(at, m.params().size());
  EXPECT_EQ(at, 784u * 32 + 32 + 32 * 10 + 10);
}

TEST(Mlp, GradientMatchesFiniteDifferences) {
  const MlpShape shape{6, 5, 3};
  Mlp m(shape);
  m.init(7);
  // Non-zero biases, so their gradients are exercised away from zero too.
  for (std::size_t i = 30; i < 35; ++i) m.params()[i] = 0.1f * (static_cast<float>(i) - 32.0f);
  const int n = 4;
  const auto x = normal_inputs(6 * n, 3);
  const std::uint8_t y[n] = {0, 2, 1, 2};
  m.forward_backward(x.data(), y, n);
  const std::vector<float> grad(m.grads().begin(), m.grads().end());

  const float eps = 1e-2f;
  double worst = 0;
  for (std::size_t i = 0; i < m.params().size(); ++i) {
    const float keep = m.params()[i];
    m.params()[i] = keep + eps;
    const double up = m.loss(x.data(), y, n);
    m.params()[i] = keep - eps;
    const double down = m.loss(x.data(), y, n);
    m.params()[i] = keep;
    const double numeric = (up - down) / (2 * eps);
    const double err = std::abs(numeric - grad[i]) / std::max(1e-2, std::abs(numeric));
    worst = std::max(worst, err);
    EXPECT_NEAR(grad[i], numeric, 1e-3 + 1e-2 * std::abs(numeric)) << "parameter " << i;
  }
  RecordProperty("worst_relative_error", std::to_string(worst));
}

TEST(Mlp, ReportsEachTensorReadyOnceOutputLayerFirst) {
  Mlp m(MlpShape{6, 5, 3});
  m.init(1);
  const auto x = normal_inputs(12, 1);
  const std::uint8_t y[2] = {0, 1};
  std::vector<std::size_t> order;
  m.forward_backward(x.data(), y, 2, [&](std::size_t t) { order.push_back(t); });
  EXPECT_EQ(order, (std::vector<std::size_t>{3, 2, 1, 0}));
}

TEST(Mlp, SameSeedSameWeightsOtherSeedOtherWeights) {
  Mlp a(MlpShape{20, 8, 4}), b(MlpShape{20, 8, 4}), c(MlpShape{20, 8, 4});
  a.init(5);
  b.init(5);
  c.init(6);
  EXPECT_TRUE(std::equal(a.params().begin(), a.params().end(), b.params().begin()));
  EXPECT_FALSE(std::equal(a.params().begin(), a.params().end(), c.params().begin()));
  // He initialisation of the first layer: variance 2 / fan_in.
  double sq = 0;
  for (std::size_t i = 0; i < 160; ++i) sq += a.params()[i] * a.params()[i];
  EXPECT_NEAR(sq / 160, 2.0 / 20, 0.04);
}

TEST(Mlp, RejectsEmptyLayers) { EXPECT_THROW(Mlp(MlpShape{784, 0, 10}), std::invalid_argument); }

TEST(Sgd, AppliesMomentumLikePyTorch) {
  fmnist::Sgd sgd(1, 0.5);
  std::vector<float> p = {1.0f};
  const std::vector<float> g = {2.0f};
  sgd.step(p, g, 0.1);  // v = 2, p = 1 - 0.2
  EXPECT_FLOAT_EQ(p[0], 0.8f);
  sgd.step(p, g, 0.1);  // v = 0.5 * 2 + 2 = 3, p = 0.8 - 0.3
  EXPECT_FLOAT_EQ(p[0], 0.5f);
  EXPECT_FLOAT_EQ(sgd.velocity()[0], 3.0f);
}

TEST(Sgd, RejectsMomentumOfOneOrMore) { EXPECT_THROW(fmnist::Sgd(3, 1.0), std::invalid_argument); }

// A learnable toy problem: each class is a random prototype plus noise.
TEST(Mlp, TrainingLowersTheLossOnALearnableProblem) {
  const int inputs = 20, classes = 4, n = 256, batch = 32;
  const auto protos = normal_inputs(inputs * classes, 11);
  std::vector<float> x(std::size_t{inputs} * n);
  std::vector<std::uint8_t> y(n);
  xpscale::Rng rng(2, 0);
  for (int j = 0; j < n; ++j) {
    y[j] = static_cast<std::uint8_t>(rng.next_below(classes));
    for (int i = 0; i < inputs; ++i)
      x[j * inputs + i] =
          protos[y[j] * inputs + i] + 0.5f * static_cast<float>(rng.next_unit() - 0.5);
  }
  Mlp m(MlpShape{inputs, 16, classes});
  m.init(1);
  fmnist::Sgd sgd(m.params().size(), 0.9);
  const double before = m.loss(x.data(), y.data(), n);
  for (int epoch = 0; epoch < 5; ++epoch) {
    for (int s = 0; s + batch <= n; s += batch) {
      m.forward_backward(x.data() + s * inputs, y.data() + s, batch);
      sgd.step(m.params(), m.grads(), 0.05);
    }
  }
  const double after = m.loss(x.data(), y.data(), n);
  EXPECT_GT(before, 1.0);
  EXPECT_LT(after, 0.1 * before);
  EXPECT_EQ(m.count_correct(x.data(), y.data(), n), std::size_t{n});
}

}  // namespace
