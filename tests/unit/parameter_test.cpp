// Each W&B distribution's transform, checked statistically (KS and
// chi-square over 10k draws of the project's own generator).
#include <cmath>

#include <gtest/gtest.h>
#include <boost/math/distributions/normal.hpp>

#include "test_util.h"
#include "xpscale/config/parameter.h"
#include "xpscale/search/rng.h"

namespace xpscale {
namespace {

constexpr int kDraws = 10000;

ParameterSpec make(Distribution d, double min, double max) {
  ParameterSpec p;
  p.name = "x";
  p.distribution = d;
  p.min = min;
  p.max = max;
  return p;
}

std::vector<double> draw(const ParameterSpec& p, std::uint64_t seed = 1) {
  std::vector<double> xs;
  Rng rng(seed, 0);
  for (int i = 0; i < kDraws; ++i) xs.push_back(p.from_unit(rng.next_unit()).get<double>());
  return xs;
}

double uniform_cdf(double x, double lo, double hi) {
  return std::clamp((x - lo) / (hi - lo), 0.0, 1.0);
}

TEST(Parameter, UniformPassesKs) {
  auto xs = draw(make(Distribution::kUniform, -2, 3));
  EXPECT_LT(test::ks_statistic(xs, [](double x) { return uniform_cdf(x, -2, 3); }),
            test::ks_critical(kDraws));
}

TEST(Parameter, KsDetectsAWrongDistribution) {
  // The test's own power: uniform draws are not log-uniform.
  auto xs = draw(make(Distribution::kUniform, 1, 1000));
  EXPECT_GT(
      test::ks_statistic(xs, [](double x) { return uniform_cdf(std::log(x), 0, std::log(1000)); }),
      test::ks_critical(kDraws));
}

TEST(Parameter, LogUniformBoundsAreInNaturalLogSpace) {
  auto xs = draw(make(Distribution::kLogUniform, std::log(1e-4), std::log(1e-1)));
  for (double x : xs) ASSERT_TRUE(x >= 1e-4 * 0.999999 && x <= 1e-1 * 1.000001) << x;
  EXPECT_LT(
      test::ks_statistic(
          xs, [](double x) { return uniform_cdf(std::log(x), std::log(1e-4), std::log(1e-1)); }),
      test::ks_critical(kDraws));
}

TEST(Parameter, LogUniformValuesBoundsAreValues) {
  auto xs = draw(make(Distribution::kLogUniformValues, 1e-4, 1e-1));
  EXPECT_LT(
      test::ks_statistic(
          xs, [](double x) { return uniform_cdf(std::log(x), std::log(1e-4), std::log(1e-1)); }),
      test::ks_critical(kDraws));
}

TEST(Parameter, InvLogUniformIsOneOverExpOfUniform) {
  // value = exp(-X), X ~ U(min, max): ln(1/value) is uniform on [min, max].
  auto xs = draw(make(Distribution::kInvLogUniform, 1, 5));
  for (double x : xs) ASSERT_TRUE(x >= std::exp(-5) * 0.999999 && x <= std::exp(-1) * 1.000001);
  EXPECT_LT(test::ks_statistic(xs, [](double x) { return 1 - uniform_cdf(std::log(1 / x), 1, 5); }),
            test::ks_critical(kDraws));
}

TEST(Parameter, InvLogUniformValuesStaysWithinItsValueBounds) {
  auto xs = draw(make(Distribution::kInvLogUniformValues, 0.01, 10));
  for (double x : xs) ASSERT_TRUE(x >= 0.01 * 0.999999 && x <= 10 * 1.000001);
  EXPECT_LT(
      test::ks_statistic(
          xs,
          [](double x) { return 1 - uniform_cdf(std::log(1 / x), std::log(0.1), std::log(100)); }),
      test::ks_critical(kDraws));
}

TEST(Parameter, NormalAndLogNormal) {
  auto p = make(Distribution::kNormal, 0, 0);
  p.mu = 2;
  p.sigma = 0.5;
  const boost::math::normal n(2, 0.5);
  EXPECT_LT(test::ks_statistic(draw(p), [&](double x) { return boost::math::cdf(n, x); }),
            test::ks_critical(kDraws));
  p.distribution = Distribution::kLogNormal;
  EXPECT_LT(test::ks_statistic(draw(p), [&](double x) { return boost::math::cdf(n, std::log(x)); }),
            test::ks_critical(kDraws));
}

TEST(Parameter, QuantizedValuesAreMultiplesOfQ) {
  auto p = make(Distribution::kQUniform, 0, 1);
  p.q = 0.05;
  p.q_is_integer = false;
  Rng rng(3, 0);
  for (int i = 0; i < 1000; ++i) {
    const auto v = p.from_unit(rng.next_unit());
    ASSERT_TRUE(v.is_number_float());
    const double k = v.get<double>() / 0.05;
    ASSERT_NEAR(k, std::round(k), 1e-9);
    // Printed as a short decimal, not 0.30000000000000004.
    ASSERT_LE(v.dump().size(), 4u) << v.dump();
  }
}

TEST(Parameter, IntegerQGivesIntegers) {
  auto p = make(Distribution::kQLogUniformValues, 20, 200);
  p.q = 10;
  p.q_is_integer = true;
  Rng rng(4, 0);
  for (int i = 0; i < 1000; ++i) {
    const auto v = p.from_unit(rng.next_unit());
    ASSERT_TRUE(v.is_number_integer()) << v.dump();
    ASSERT_EQ(v.get<std::int64_t>() % 10, 0);
    ASSERT_GE(v.get<std::int64_t>(), 20);
    ASSERT_LE(v.get<std::int64_t>(), 200);
  }
}

TEST(Parameter, IntUniformIsUniformOverItsIntegersInclusive) {
  auto p = make(Distribution::kIntUniform, 3, 7);
  std::vector<double> counts(5, 0);
  Rng rng(5, 0);
  for (int i = 0; i < kDraws; ++i) {
    const auto v = p.from_unit(rng.next_unit()).get<std::int64_t>();
    ASSERT_GE(v, 3);
    ASSERT_LE(v, 7);
    counts[static_cast<std::size_t>(v - 3)] += 1;
  }
  // chi-square, 4 degrees of freedom, significance 0.001: 18.47
  EXPECT_LT(test::chi_square(counts, std::vector<double>(5, 0.2)), 18.47);
}

TEST(Parameter, CategoricalHonoursProbabilities) {
  ParameterSpec p;
  p.distribution = Distribution::kCategorical;
  p.values = {"sgd", "adam", "lamb"};
  p.probabilities = {0.6, 0.3, 0.1};
  std::vector<double> counts(3, 0);
  Rng rng(6, 0);
  for (int i = 0; i < kDraws; ++i) {
    const auto v = p.from_unit(rng.next_unit());
    counts[static_cast<std::size_t>(std::find(p.values.begin(), p.values.end(), v) -
                                    p.values.begin())] += 1;
  }
  // chi-square, 2 degrees of freedom, significance 0.001: 13.82
  EXPECT_LT(test::chi_square(counts, p.probabilities), 13.82);
  EXPECT_GT(test::chi_square(counts, {1.0 / 3, 1.0 / 3, 1.0 / 3}), 13.82);
}

TEST(Parameter, GridValues) {
  auto i = make(Distribution::kIntUniform, 1, 4);
  EXPECT_EQ(nlohmann::json(i.grid_values()).dump(), "[1,2,3,4]");
  auto q = make(Distribution::kQUniform, 0, 1);
  q.q = 0.25;
  q.q_is_integer = false;
  // W&B's grid_search.py: np.arange(min, max, q), so max is not a point.
  EXPECT_EQ(nlohmann::json(q.grid_values()).dump(), "[0.0,0.25,0.5,0.75]");
  EXPECT_EQ(q.grid_size(), 4);
  EXPECT_FALSE(make(Distribution::kUniform, 0, 1).is_discrete());
  EXPECT_THROW(make(Distribution::kUniform, 0, 1).grid_values(), Error);
}

TEST(Parameter, AQUniformGridStartsAtMinInStepsOfQAsNumpyArange) {
  auto q = make(Distribution::kQUniform, 0.05, 0.5);
  q.q = 0.1;
  q.q_is_integer = false;
  EXPECT_EQ(nlohmann::json(q.grid_values()).dump(), "[0.05,0.15,0.25,0.35,0.45]");
  auto ints = make(Distribution::kQUniform, 1, 10);
  ints.q = 3;
  ints.q_is_integer = true;
  ints.bounds_integer = true;  // np.arange of ints: ints
  EXPECT_EQ(nlohmann::json(ints.grid_values()).dump(), "[1,4,7]");
  ints.q_is_integer = false;  // q 1.0 or 3.0: floats
  EXPECT_EQ(nlohmann::json(ints.grid_values()).dump(), "[1.0,4.0,7.0]");
}

TEST(Parameter, NamesRoundTrip) {
  for (const auto& name : distribution_names()) {
    auto d = distribution_from_name(name);
    ASSERT_TRUE(d) << name;
    EXPECT_EQ(distribution_name(*d), name);
  }
  EXPECT_EQ(distribution_names().size(), 17u);  // W&B's, beta and q_beta included
  EXPECT_FALSE(distribution_from_name("gamma"));
}

}  // namespace
}  // namespace xpscale
