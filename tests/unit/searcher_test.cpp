// Grid, random and Sobol searchers: order, size, reproducibility.
#include <gtest/gtest.h>

#include "test_util.h"
#include "xpscale/search/searcher.h"

namespace xpscale {
namespace {

SweepConfig config(const std::string& yaml) { return parse_sweep_config(yaml, "s.yaml"); }

TEST(GridSearcher, CartesianProductInFileOrderLastVariesFastest) {
  const auto c = config(
      "method: grid\nparameters:\n  a: {values: [1, 2]}\n  b: {values: [x, y, z]}\n  k: {value: "
      "true}\n");
  const auto trials = plan_trials(c);
  ASSERT_EQ(trials.size(), 6u);
  EXPECT_EQ(trials[0].params.dump(), R"({"a":1,"b":"x","k":true})");
  EXPECT_EQ(trials[1].params.dump(), R"({"a":1,"b":"y","k":true})");
  EXPECT_EQ(trials[5].params.dump(), R"({"a":2,"b":"z","k":true})");
  for (std::size_t i = 0; i < trials.size(); ++i) EXPECT_EQ(trials[i].id, i);
}

TEST(GridSearcher, IntUniformAndQUniformAreEnumerated) {
  const auto c = config(
      "method: grid\nparameters:\n  n: {min: 1, max: 3}\n  m: {distribution: q_uniform, min: 0, "
      "max: 1, q: 0.5}\n");
  auto s = make_searcher(c);
  EXPECT_EQ(s->size(), 6u);  // m: 0 and 0.5 (W&B's np.arange leaves out max)
  EXPECT_EQ(plan_trials(c).back().params.dump(), R"({"n":3,"m":0.5})");
}

TEST(GridSearcher, TrialBudgetCapsTheGrid) {
  const auto c = config("method: grid\ntrials: 4\nparameters:\n  n: {min: 1, max: 10}\n");
  EXPECT_EQ(plan_trials(c).size(), 4u);
  EXPECT_EQ(plan_trials(c, 2).size(), 2u);
}

TEST(GridSearcher, NestedParametersKeepDottedNames) {
  const auto c = config(
      "method: grid\nparameters:\n  opt:\n    parameters:\n      lr: {values: [0.1]}\n      name: "
      "{value: sgd}\n");
  EXPECT_EQ(plan_trials(c)[0].params.dump(), R"({"opt.lr":0.1,"opt.name":"sgd"})");
}

constexpr const char* kRandom = R"(method: random
trials: 50
seed: 11
parameters:
  lr: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-1}
  opt: {values: [sgd, adam]}
  width: {min: 16, max: 512}
  fixed: {value: 3}
)";

TEST(RandomSearcher, SameSeedSameTrials) {
  const auto a = plan_trials(config(kRandom));
  const auto b = plan_trials(config(kRandom));
  ASSERT_EQ(a.size(), 50u);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].params, b[i].params);
}

TEST(RandomSearcher, DifferentSeedDifferentTrials) {
  std::string other = kRandom;
  other.replace(other.find("seed: 11"), 8, "seed: 12");
  const auto a = plan_trials(config(kRandom));
  const auto b = plan_trials(config(other));
  int same = 0;
  for (std::size_t i = 0; i < a.size(); ++i) same += a[i].params["lr"] == b[i].params["lr"];
  EXPECT_EQ(same, 0);
}

TEST(RandomSearcher, ATrialDoesNotDependOnHowManyArePlanned) {
  const auto c = config(kRandom);
  EXPECT_EQ(plan_trials(c, 3)[2].params, plan_trials(c, 40)[2].params);
}

TEST(RandomSearcher, PinnedValuesGuardReproducibilityAcrossBuilds) {
  // These numbers are what seed 11 gives; a change here changes every user's
  // random sweeps, so it must be deliberate.
  const auto t = plan_trials(config(kRandom), 2);
  EXPECT_EQ(t[0].params["opt"], "sgd");
  EXPECT_EQ(t[0].params["width"], 302);
  EXPECT_NEAR(t[0].params["lr"].get<double>(), 9.774280668801096e-05,
              1e-12 * 9.774280668801096e-05);
  EXPECT_NEAR(t[1].params["lr"].get<double>(), 0.009314318044442426, 1e-12 * 0.009314318044442426);
  EXPECT_EQ(t[1].params["width"], 432);
  EXPECT_EQ(t[0].params["fixed"], 3);
}

// As under W&B, random, sobol and bayes without run_cap/trials draw until
// the sweep is stopped: the limit is unbounded, and plan_trials needs one.
TEST(RandomSearcher, WithoutTrialsItIsUnbounded) {
  const auto c = config("method: random\nparameters:\n  a: {min: 0.0, max: 1.0}\n");
  auto searcher = make_searcher(c);
  EXPECT_EQ(trial_limit(c, *searcher), std::nullopt);
  EXPECT_EQ(trial_limit(c, *searcher, 7), 7u);
  try {
    plan_trials(c);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("until the sweep is stopped"), std::string::npos);
  }
  EXPECT_EQ(plan_trials(c, 5).size(), 5u);
  const auto grid = config("method: grid\nparameters:\n  a: {values: [1, 2, 3]}\n");
  EXPECT_EQ(trial_limit(grid, *make_searcher(grid)), 3u);
}

TEST(SobolSearcher, SpreadsTrialsEvenlyAndReproducibly) {
  const auto c = config(
      "method: sobol\ntrials: 16\nseed: 3\nparameters:\n  x: {min: 0.0, max: 1.0}\n  y: {min: 0.0, "
      "max: 1.0}\n  k: {value: 1}\n");
  const auto t = plan_trials(c);
  ASSERT_EQ(t.size(), 16u);
  std::vector<int> cells(16, 0);
  for (const auto& trial : t)
    cells[static_cast<std::size_t>(trial.params["x"].get<double>() * 16)]++;
  for (int n : cells) EXPECT_EQ(n, 1);
  EXPECT_EQ(plan_trials(c)[7].params, t[7].params);
}

TEST(Searchers, BayesRunsTpeWhoseFirstTrialsAreRandomSearchs) {
  auto c = config("method: bayes\nmetric: {name: loss}\nparameters:\n  a: {min: 0.0, max: 1.0}\n");
  auto tpe = make_searcher(c);
  EXPECT_TRUE(tpe->adaptive());
  const auto first = tpe->suggest(0);
  c.method = SearchMethod::kRandom;
  EXPECT_FALSE(make_searcher(c)->adaptive());
  EXPECT_EQ(first, make_searcher(c)->suggest(0));
}

}  // namespace
}  // namespace xpscale
