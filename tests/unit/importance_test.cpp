// fanova_importance() on synthetic sweeps whose importances are known.
// importance_optuna_test.py holds the same function against Optuna's.
#include "xpscale/report/importance.h"

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using nlohmann::json;
using xpscale::report::fanova_importance;
using xpscale::report::ImportanceOptions;
using xpscale::report::ParamImportance;

struct Sweep {
  std::vector<json> params;
  std::vector<double> values;
};

// n trials with x0, x1, x2 uniform on [0, 1) and y = f(x0, x1, x2, noise).
Sweep three_uniform(int n, const std::function<double(double, double, double, double)>& f,
                    std::uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> noise(0, 1);
  Sweep s;
  for (int i = 0; i < n; ++i) {
    const double x0 = u(rng), x1 = u(rng), x2 = u(rng);
    s.params.push_back({{"x0", x0}, {"x1", x1}, {"x2", x2}});
    s.values.push_back(f(x0, x1, x2, noise(rng)));
  }
  return s;
}

std::vector<std::string> names(const std::vector<ParamImportance>& r) {
  std::vector<std::string> out;
  for (const auto& p : r) out.push_back(p.param);
  return out;
}

void expect_shares(const std::vector<ParamImportance>& r) {
  double sum = 0;
  for (const auto& p : r) {
    EXPECT_TRUE(std::isfinite(p.importance)) << p.param;
    EXPECT_GE(p.importance, 0) << p.param;
    EXPECT_LE(p.importance, 1) << p.param;
    sum += p.importance;
  }
  if (!r.empty()) {
    EXPECT_NEAR(sum, 1.0, 1e-9);
  }
  for (std::size_t i = 1; i < r.size(); ++i) EXPECT_GE(r[i - 1].importance, r[i].importance);
}

TEST(FanovaImportance, RanksLinearEffectsBySize) {
  const Sweep s = three_uniform(
      300, [](double x0, double x1, double, double e) { return 10 * x0 + 1 * x1 + 0.1 * e; });
  const auto r = fanova_importance(s.params, s.values);
  expect_shares(r);
  ASSERT_EQ(names(r), (std::vector<std::string>{"x0", "x1", "x2"}));
  // Var(10 x0) is 100 times Var(x1).
  EXPECT_GT(r[0].importance, 0.9);
  EXPECT_LT(r[2].importance, 0.05);
}

TEST(FanovaImportance, FindsANonMonotoneEffect) {
  // x1 matters as much as x0 but its effect is a bump, not a slope.
  const Sweep s = three_uniform(400, [](double x0, double x1, double, double e) {
    return x0 + 4 * (x1 - 0.5) * (x1 - 0.5) * 3 + 0.05 * e;
  });
  const auto r = fanova_importance(s.params, s.values);
  expect_shares(r);
  EXPECT_EQ(r.back().param, "x2");
}

TEST(FanovaImportance, CategoricalThatMattersRanksFirst) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  const std::vector<std::string> optimizers{"adam", "sgd", "rmsprop"};
  const std::vector<double> effect{0.0, 3.0, 1.0};
  Sweep s;
  for (int i = 0; i < 300; ++i) {
    const auto k = static_cast<std::size_t>(rng() % 3);
    const double lr = u(rng), wd = u(rng);
    s.params.push_back({{"optimizer", optimizers[k]}, {"lr", lr}, {"wd", wd}});
    s.values.push_back(effect[k] + 0.5 * lr + 0.01 * u(rng));
  }
  const auto r = fanova_importance(s.params, s.values);
  expect_shares(r);
  ASSERT_EQ(names(r), (std::vector<std::string>{"optimizer", "lr", "wd"}));
}

TEST(FanovaImportance, BoolIsACategoricalThatCanMatter) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  Sweep s;
  for (int i = 0; i < 200; ++i) {
    const bool warmup = rng() % 2 == 0;
    const double lr = u(rng);
    s.params.push_back({{"warmup", warmup}, {"lr", lr}});
    s.values.push_back((warmup ? 2.0 : 0.0) + 0.2 * lr);
  }
  const auto r = fanova_importance(s.params, s.values);
  expect_shares(r);
  ASSERT_EQ(names(r), (std::vector<std::string>{"warmup", "lr"}));
}

TEST(FanovaImportance, LeavesOutParametersThatDoNotVary) {
  Sweep s = three_uniform(100, [](double x0, double x1, double, double) { return x0 + x1; });
  for (auto& p : s.params) p["epochs"] = 10, p["arch"] = "resnet", p["x2"] = 0.5;
  const auto r = fanova_importance(s.params, s.values);
  expect_shares(r);
  EXPECT_EQ(r.size(), 2u);
  for (const auto& p : r) EXPECT_TRUE(p.param == "x0" || p.param == "x1") << p.param;
}

TEST(FanovaImportance, AConditionalParameterIsRankedWithMissingAsItsOwnValue) {
  // momentum exists only for sgd, and it is what makes sgd's trials differ.
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(0, 1);
  Sweep s;
  for (int i = 0; i < 300; ++i) {
    const bool sgd = rng() % 2 == 0;
    const double lr = u(rng);
    json p = {{"optimizer", sgd ? "sgd" : "adam"}, {"lr", lr}};
    double y = 0.1 * lr;
    if (sgd) {
      const double momentum = u(rng);
      p["momentum"] = momentum;
      y += 5 * momentum;
    }
    s.params.push_back(p);
    s.values.push_back(y);
  }
  const auto r = fanova_importance(s.params, s.values);
  expect_shares(r);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].param, "momentum");
  // Its missing values say "adam" as well as optimizer does, so the trees
  // split on momentum and optimizer keeps little of its own.
  EXPECT_GT(r[0].importance, 0.9);
}

TEST(FanovaImportance, IsDeterministicForASeed) {
  const Sweep s = three_uniform(
      200, [](double x0, double x1, double x2, double e) { return x0 + x1 * x2 + 0.3 * e; });
  ImportanceOptions a;
  a.seed = 42;
  const auto first = fanova_importance(s.params, s.values, a);
  const auto again = fanova_importance(s.params, s.values, a);
  ASSERT_EQ(first.size(), again.size());
  for (std::size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i].param, again[i].param);
    EXPECT_EQ(first[i].importance, again[i].importance);
  }
  // The same on one thread as on many: the trees are summed in tree order.
  for (const int threads : {1, 3, 8}) {
    ImportanceOptions t = a;
    t.threads = threads;
    const auto on = fanova_importance(s.params, s.values, t);
    ASSERT_EQ(on.size(), first.size());
    for (std::size_t i = 0; i < first.size(); ++i) {
      EXPECT_EQ(on[i].param, first[i].param) << threads << " threads";
      EXPECT_EQ(on[i].importance, first[i].importance) << threads << " threads";
    }
  }
  ImportanceOptions b;
  b.seed = 43;
  const auto other = fanova_importance(s.params, s.values, b);
  bool differs = false;
  for (std::size_t i = 0; i < first.size(); ++i)
    for (const auto& o : other)
      if (o.param == first[i].param && o.importance != first[i].importance) differs = true;
  EXPECT_TRUE(differs) << "another seed grows another forest";
}

TEST(FanovaImportance, FewerThanTwoTrialsGiveNothing) {
  EXPECT_TRUE(fanova_importance({}, {}).empty());
  EXPECT_TRUE(fanova_importance({json{{"x", 1}}}, {1.0}).empty());
  // Two trials, but one value is not finite: one trial is used.
  EXPECT_TRUE(fanova_importance({json{{"x", 1}}, json{{"x", 2}}},
                                {1.0, std::numeric_limits<double>::quiet_NaN()})
                  .empty());
}

TEST(FanovaImportance, NoParameterThatVariesGivesNothing) {
  const std::vector<json> params(5, json{{"x", 1}, {"name", "a"}});
  EXPECT_TRUE(fanova_importance(params, {1, 2, 3, 4, 5}).empty());
  EXPECT_TRUE(fanova_importance(std::vector<json>(3, json::object()), {1, 2, 3}).empty());
}

TEST(FanovaImportance, EqualValuesGiveEqualShares) {
  const Sweep s = three_uniform(50, [](double, double, double, double) { return 3.0; });
  const auto r = fanova_importance(s.params, s.values);
  ASSERT_EQ(r.size(), 3u);
  for (const auto& p : r) EXPECT_DOUBLE_EQ(p.importance, 1.0 / 3);
}

TEST(FanovaImportance, PureInteractionGivesFiniteShares) {
  // y = x0 XOR x1: neither marginal varies, so no parameter explains
  // anything on its own; the result is still shares, never NaN.
  Sweep s;
  for (int i = 0; i < 40; ++i) {
    const int a = i % 2, b = (i / 2) % 2;
    s.params.push_back({{"a", a}, {"b", b}});
    s.values.push_back(a ^ b);
  }
  const auto r = fanova_importance(s.params, s.values);
  ASSERT_EQ(r.size(), 2u);
  expect_shares(r);
}

TEST(FanovaImportance, ExtremeNumbersStayFinite) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(-1, 1);
  Sweep s;
  for (int i = 0; i < 100; ++i) {
    const double big = u(rng) * 1e300, tiny = u(rng) * 1e-300;
    s.params.push_back({{"big", big}, {"tiny", tiny}});
    s.values.push_back(big + 1e300 * tiny * 1e299);
  }
  s.values[3] = std::numeric_limits<double>::infinity();  // left out
  const auto r = fanova_importance(s.params, s.values);
  ASSERT_EQ(r.size(), 2u);
  expect_shares(r);
}

TEST(FanovaImportance, ManyCategoriesShareTheirRareOnes) {
  // 200 distinct strings: the importance is still computed (over
  // kMaxCategories columns) and the parameter that matters wins.
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(0, 1);
  Sweep s;
  for (int i = 0; i < 400; ++i) {
    const double x = u(rng);
    s.params.push_back({{"run_name", "run-" + std::to_string(i % 200)}, {"x", x}});
    s.values.push_back(10 * x);
  }
  const auto r = fanova_importance(s.params, s.values);
  expect_shares(r);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].param, "x");
}

TEST(FanovaImportance, RejectsMismatchedInputs) {
  EXPECT_THROW(fanova_importance({json::object()}, {1.0, 2.0}), std::invalid_argument);
  ImportanceOptions none;
  none.trees = 0;
  EXPECT_THROW(fanova_importance({}, {}, none), std::invalid_argument);
}

}  // namespace
