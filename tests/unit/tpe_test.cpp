// TPE: better than random search on simple objectives with fixed seeds,
// valid values for every kind of parameter, failures ignored, and a resume
// through the store that proposes what an uninterrupted run would.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "xpscale/config/sweep_config.h"
#include "xpscale/search/searcher.h"
#include "xpscale/search/tpe_searcher.h"
#include "xpscale/store/sqlite_store.h"

namespace xpscale {
namespace {

using Objective = std::function<double(const Params&)>;

const char* kSpace = R"(
metric: {name: loss}
parameters:
  x: {min: -5.0, max: 5.0}
  lr: {distribution: log_uniform_values, min: 0.00001, max: 10.0}
  opt: {values: [sgd, adam, lamb, rmsprop]}
)";

SweepConfig space(const char* method, std::uint64_t seed, const std::string& tpe = "") {
  auto c = parse_sweep_config(std::string("method: ") + method + "\ntrials: 60\n" +
                                  (tpe.empty() ? "" : "tpe: " + tpe + "\n") + kSpace,
                              "t.yaml");
  c.seed = seed;
  return c;
}

double objective(const Params& p) {
  const double x = p["x"].get<double>() - 1.3;
  const double l = std::log10(p["lr"].get<double>()) + 2.5;
  return x * x + l * l + (p["opt"] == "lamb" ? 0.0 : 1.0);
}

// Runs `n` trials one after another; returns the best value found.
double best_of(Searcher& s, int n, const Objective& f) {
  double best = INFINITY;
  for (int i = 0; i < n; ++i) {
    const auto p = s.suggest(static_cast<std::uint64_t>(i));
    const double v = f(*p);
    best = std::min(best, v);
    s.observe(static_cast<std::uint64_t>(i), *p, {TrialEnd::kCompleted, v, 1});
  }
  return best;
}

TEST(Tpe, BeatsRandomSearchOnAQuadraticOverLogAndCategoricalParameters) {
  std::vector<double> tpe, random;
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    const auto ct = space("bayes", seed), cr = space("random", seed);
    tpe.push_back(best_of(*make_searcher(ct), 60, objective));
    random.push_back(best_of(*make_searcher(cr), 60, objective));
  }
  std::sort(tpe.begin(), tpe.end());
  std::sort(random.begin(), random.end());
  EXPECT_LT(tpe[5], random[5] * 0.5) << "median best: tpe " << tpe[5] << ", random " << random[5];
}

TEST(Tpe, UnivariateModeBeatsRandomSearchToo) {
  std::vector<double> tpe, random;
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    const auto ct = space("bayes", seed, "{multivariate: false}"), cr = space("random", seed);
    tpe.push_back(best_of(*make_searcher(ct), 60, objective));
    random.push_back(best_of(*make_searcher(cr), 60, objective));
  }
  std::sort(tpe.begin(), tpe.end());
  std::sort(random.begin(), random.end());
  EXPECT_LT(tpe[5], random[5] * 0.5) << "median best: tpe " << tpe[5] << ", random " << random[5];
}

TEST(Tpe, MultivariateBeatsRandomSearchOnBranin) {
  const std::string yaml = R"(metric: {name: y}
parameters:
  x0: {min: -5.0, max: 10.0}
  x1: {min: 0.0, max: 15.0}
)";
  auto branin = [](const Params& p) {
    const double pi = std::numbers::pi, x0 = p["x0"].get<double>(), x1 = p["x1"].get<double>();
    const double u = x1 - 5.1 / (4 * pi * pi) * x0 * x0 + 5 / pi * x0 - 6;
    return u * u + 10 * (1 - 1 / (8 * pi)) * std::cos(x0) + 10 - 0.397887357729738;  // regret
  };
  std::vector<double> tpe, random;
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    auto ct = parse_sweep_config("method: bayes\ntrials: 60\n" + yaml, "t.yaml");
    auto cr = parse_sweep_config("method: random\ntrials: 60\n" + yaml, "t.yaml");
    ct.seed = cr.seed = seed;
    tpe.push_back(best_of(*make_searcher(ct), 60, branin));
    random.push_back(best_of(*make_searcher(cr), 60, branin));
  }
  std::sort(tpe.begin(), tpe.end());
  std::sort(random.begin(), random.end());
  EXPECT_LT(tpe[5], random[5] * 0.5) << "median regret: tpe " << tpe[5] << ", random " << random[5];
}

TEST(Tpe, ModesProposeDifferentTrialsAfterTheStartup) {
  auto uni = make_searcher(space("bayes", 5, "{multivariate: false}"));
  auto multi = make_searcher(space("bayes", 5));
  for (std::uint64_t i = 0; i < 11; ++i) {
    const auto pu = *uni->suggest(i), pm = *multi->suggest(i);
    EXPECT_EQ(pu == pm, i < 10) << "trial " << i;  // the same random start, then each its own
    uni->observe(i, pu, {TrialEnd::kCompleted, objective(pu), 1});
    multi->observe(i, pm, {TrialEnd::kCompleted, objective(pm), 1});
  }
}

TEST(Tpe, SearcherKeepsItsOwnCopyOfTheConfig) {
  // A config that changes (or dies, as a temporary does) after make_searcher
  // changes nothing the searcher proposes.
  auto changing = std::make_unique<SweepConfig>(space("bayes", 2));
  auto s = make_searcher(*changing);
  *changing = space("bayes", 99);
  changing->parameters.pop_back();
  const auto c = space("bayes", 2);
  const auto again = make_searcher(c);
  for (std::uint64_t i = 0; i < 15; ++i) {
    const auto p = *s->suggest(i);
    ASSERT_EQ(p, *again->suggest(i)) << "trial " << i;
    s->observe(i, p, {TrialEnd::kCompleted, objective(p), 1});
    again->observe(i, p, {TrialEnd::kCompleted, objective(p), 1});
  }
  changing.reset();
  EXPECT_TRUE(s->suggest(15).has_value());
}

TEST(Tpe, LearnsTheBestCategory) {
  const auto c = space("bayes", 7);
  auto s = make_searcher(c);
  best_of(*s, 40, objective);
  int lamb = 0;
  for (std::uint64_t i = 40; i < 60; ++i) {
    const auto p = s->suggest(i);
    lamb += (*p)["opt"] == "lamb";
    s->observe(i, *p, {TrialEnd::kCompleted, objective(*p), 1});
  }
  EXPECT_GE(lamb, 12) << "of 20 late trials";  // random: 5
}

TEST(Tpe, ProposesValidValuesOfEveryDistribution) {
  const auto c = parse_sweep_config(R"(method: bayes
trials: 40
metric: {name: loss}
parameters:
  n: {min: 2, max: 9}
  q: {distribution: q_uniform, min: 0, max: 10, q: 2}
  ql: {distribution: q_log_uniform_values, min: 8, max: 512, q: 8}
  nested:
    parameters:
      u: {min: 0.0, max: 1.0}
  fixed: {value: 3}
)",
                                    "t.yaml");
  auto s = make_searcher(c);
  for (std::uint64_t i = 0; i < 40; ++i) {
    const auto p = *s->suggest(i);
    ASSERT_TRUE(p["n"].is_number_integer()) << p.dump();
    EXPECT_GE(p["n"].get<int>(), 2);
    EXPECT_LE(p["n"].get<int>(), 9);
    EXPECT_EQ(p["q"].get<std::int64_t>() % 2, 0) << p.dump();
    EXPECT_EQ(p["ql"].get<std::int64_t>() % 8, 0) << p.dump();
    EXPECT_GE(p["nested.u"].get<double>(), 0.0);
    EXPECT_LE(p["nested.u"].get<double>(), 1.0);
    EXPECT_EQ(p["fixed"], 3);
    s->observe(i, p, {TrialEnd::kCompleted, std::abs(p["nested.u"].get<double>() - 0.2), 1});
  }
}

TEST(Tpe, FailedTrialsAreNotObserved) {
  const auto c = space("bayes", 3);
  auto a = make_searcher(c), b = make_searcher(c);
  for (std::uint64_t i = 0; i < 15; ++i) {
    const auto pa = *a->suggest(i), pb = *b->suggest(i);
    ASSERT_EQ(pa, pb) << "trial " << i;
    if (i % 3 == 0) {
      // In a, trial i failed; in b it was never run. Neither learns from it.
      a->observe(i, pa, {TrialEnd::kFailed, std::nullopt, 0});
      b->observe(i, pb, {TrialEnd::kFailed, 123.0, 5});
    } else {
      a->observe(i, pa, {TrialEnd::kCompleted, objective(pa), 1});
      b->observe(i, pb, {TrialEnd::kCompleted, objective(pb), 1});
    }
  }
  EXPECT_EQ(a->state(), b->state());
  EXPECT_EQ(a->suggest(15), b->suggest(15));
}

TEST(Tpe, StoppedTrialsRankBehindCompletedOnes) {
  // Ten stopped trials with tiny scores and ten completed ones: with gamma
  // 0.5 the ten completed form l(x), so proposals follow them, not the
  // stopped ones' region.
  auto c = parse_sweep_config(
      "method: bayes\ntrials: 50\nmetric: {name: loss}\nparameters:\n"
      "  x: {min: 0.0, max: 1.0}\n",
      "t.yaml");
  TpeOptions o;
  o.gamma = 0.5;
  o.n_startup = 0;
  auto s = make_tpe_searcher(c, o);
  for (std::uint64_t i = 0; i < 20; ++i) {
    const bool stopped = i < 10;
    const double x =
        stopped ? 0.05 + 0.01 * static_cast<double>(i) : 0.85 + 0.01 * static_cast<double>(i - 10);
    Params p{{"x", x}};
    (void)s->suggest(i);  // registers the trial; the observation below is made up
    nlohmann::json st = s->state();
    st["pending"].back()["u"] = nlohmann::json::array({x});
    s->restore(st);
    s->observe(i, p, {stopped ? TrialEnd::kStopped : TrialEnd::kCompleted, stopped ? 0.0 : 1.0, 1});
  }
  int high = 0;
  for (std::uint64_t i = 20; i < 40; ++i) high += (*s->suggest(i))["x"].get<double>() > 0.5;
  EXPECT_GE(high, 16);
}

TEST(Tpe, ResumeThroughTheStoreProposesWhatAnUninterruptedRunWould) {
  const auto c = space("bayes", 9);
  auto whole = make_searcher(c);
  std::vector<Params> expected;
  for (std::uint64_t i = 0; i < 30; ++i) {
    expected.push_back(*whole->suggest(i));
    whole->observe(i, expected.back(), {TrialEnd::kCompleted, objective(expected.back()), 1});
  }
  const auto dir =
      std::filesystem::temp_directory_path() / ("tpe-resume-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto first = make_searcher(c);
  for (std::uint64_t i = 0; i < 17; ++i) {
    const auto p = *first->suggest(i);
    ASSERT_EQ(p, expected[i]);
    if (i < 16) first->observe(i, p, {TrialEnd::kCompleted, objective(p), 1});
  }
  {
    SqliteStore store(dir / "xpscale.db");
    store.put_state("searcher", first->state());  // trial 16 still running
  }
  SqliteStore reopened(dir / "xpscale.db");
  auto second = make_searcher(c);
  second->restore(*reopened.state("searcher"));
  EXPECT_EQ(*second->suggest(16), expected[16]);  // the pending trial keeps its params
  second->observe(16, expected[16], {TrialEnd::kCompleted, objective(expected[16]), 1});
  for (std::uint64_t i = 17; i < 30; ++i) {
    const auto p = *second->suggest(i);
    EXPECT_EQ(p, expected[i]) << "trial " << i;
    second->observe(i, p, {TrialEnd::kCompleted, objective(p), 1});
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace xpscale

namespace xpscale {
namespace {

TEST(TpeConfig, NStartupDecidesWhenTpeTakesOverFromRandomSearch) {
  const std::string space = "metric: {name: y}\nparameters:\n  x: {min: 0.0, max: 1.0}\n";
  const auto ct = parse_sweep_config(
      "method: bayes\ntrials: 9\ntpe: {n_startup: 3, candidates: 50, gamma: 0.3}\n" + space,
      "t.yaml");
  const auto cr = parse_sweep_config("method: random\ntrials: 9\n" + space, "r.yaml");
  auto tpe = make_searcher(ct);
  auto random = make_searcher(cr);
  for (std::uint64_t i = 0; i < 4; ++i) {
    const auto p = *tpe->suggest(i);
    EXPECT_EQ(p == *random->suggest(i), i < 3) << "trial " << i;
    tpe->observe(i, p, {TrialEnd::kCompleted, p["x"].get<double>(), 1});
  }
}

TEST(TpeConfig, BadKeysAreErrorsThatSayWhere) {
  auto errors = [](const std::string& yaml) {
    try {
      parse_sweep_config(yaml + "metric: {name: y}\nparameters:\n  x: {min: 0.0, max: 1.0}\n",
                         "t.yaml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(errors("method: random\ntrials: 3\ntpe: {gamma: 0.2}\n")
                .find("t.yaml:3:1: tpe: 'tpe' configures method 'bayes', not 'random'"),
            std::string::npos);
  EXPECT_NE(errors("method: bayes\ntrials: 3\ntpe: {gamma: 1.5}\n")
                .find("tpe.gamma: expected a number in (0, 1], got 1.5"),
            std::string::npos);
  EXPECT_NE(errors("method: bayes\ntrials: 3\ntpe: {candidates: 0}\n").find("tpe.candidates"),
            std::string::npos);
  EXPECT_NE(
      errors("method: bayes\ntrials: 3\ntpe: {multivariate: maybe}\n").find("tpe.multivariate"),
      std::string::npos);
  EXPECT_NE(
      errors("method: bayes\ntrials: 3\ntpe: {n_start: 2}\n").find("did you mean 'n_startup'"),
      std::string::npos);
}

}  // namespace
}  // namespace xpscale
