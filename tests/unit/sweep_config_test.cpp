// The sweep-config loader: W&B configs load unchanged, and every mistake is
// an error with file:line:col, the key path, what was expected and found.
#include <filesystem>

#include <gtest/gtest.h>

#include "test_util.h"
#include "xpscale/config/command.h"
#include "xpscale/config/sweep_config.h"
#include "xpscale/search/searcher.h"

namespace xpscale {
namespace {

using test::errors_of;
using test::single_error;

const ParameterSpec& param(const SweepConfig& c, const std::string& name) {
  for (const auto& p : c.parameters)
    if (p.name == name) return p;
  throw std::runtime_error("no parameter " + name);
}

TEST(SweepConfig, EveryExampleConfigLoads) {
  int loaded = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(XPSCALE_SOURCE_DIR) + "/examples/sweeps")) {
    if (entry.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(load_sweep_config(entry.path().string())) << entry.path();
    ++loaded;
  }
  EXPECT_GE(loaded, 4);
}

TEST(SweepConfig, WandbConfigLoadsUnchanged) {
  const auto c =
      load_sweep_config(std::string(XPSCALE_SOURCE_DIR) + "/examples/sweeps/wandb_nested.yaml");
  EXPECT_EQ(c.method, SearchMethod::kRandom);
  EXPECT_EQ(c.run_cap, 20);
  EXPECT_EQ(c.trial_budget(), 20);
  EXPECT_EQ(c.project, "quadratic");
  ASSERT_TRUE(c.metric);
  EXPECT_EQ(c.metric->name, "loss");
  EXPECT_EQ(c.metric->goal, Goal::kMinimize);
  std::vector<std::string> names;
  for (const auto& p : c.parameters) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"optimizer.name", "optimizer.lr", "optimizer.momentum",
                                             "steps", "dim"}));
  EXPECT_EQ(param(c, "optimizer.lr").distribution, Distribution::kLogUniform);
  EXPECT_DOUBLE_EQ(param(c, "optimizer.lr").min, -9.21);
  EXPECT_EQ(param(c, "dim").distribution, Distribution::kIntUniform);  // inferred from int bounds
  EXPECT_EQ(param(c, "optimizer.name").probabilities, (std::vector<double>{0.7, 0.3}));
  ASSERT_TRUE(c.early_terminate);
  EXPECT_EQ(c.early_terminate->min_iter, 3);
  EXPECT_EQ(c.early_terminate->eta, 3);
  EXPECT_EQ(c.command.back(), "${args_no_hyphens}");
  EXPECT_TRUE(c.unbuilt.empty());  // hyperband early termination runs
}

TEST(SweepConfig, InfersDistributionsTheWandbWay) {
  const auto c = parse_sweep_config(R"(
method: random
parameters:
  a: {value: 3}
  b: {values: [1, 2]}
  c: {min: 1, max: 10}
  d: {min: 0.0, max: 1}
  e: {distribution: q_uniform, min: 0, max: 10}
)",
                                    "s.yaml");
  EXPECT_EQ(param(c, "a").distribution, Distribution::kConstant);
  EXPECT_EQ(param(c, "b").distribution, Distribution::kCategorical);
  EXPECT_EQ(param(c, "c").distribution, Distribution::kIntUniform);
  EXPECT_EQ(param(c, "d").distribution, Distribution::kUniform);
  EXPECT_EQ(param(c, "e").q, 1);
  EXPECT_FALSE(param(c, "e").q_is_integer);  // W&B's default q is 1.0, a float
  EXPECT_EQ(c.out_dir, "runs/s");
}

TEST(SweepConfig, QuantizedWithoutQGivesFloatsAsWandbsDefaultQIsAFloat) {
  // wandb/sweeps schema.json: q defaults to 1.0; params.py returns ints only
  // for an int q.
  const auto c = parse_sweep_config(R"(method: random
parameters:
  a: {distribution: q_uniform, min: 0, max: 10}
  b: {distribution: q_uniform, min: 0, max: 10, q: 2}
  c: {distribution: q_log_uniform_values, min: 1, max: 100, q: 1}
)",
                                    "s.yaml");
  EXPECT_TRUE(param(c, "a").from_unit(0.42).is_number_float());
  EXPECT_EQ(param(c, "a").from_unit(0.42).dump(), "4.0");
  EXPECT_TRUE(param(c, "b").from_unit(0.42).is_number_integer());
  EXPECT_TRUE(param(c, "c").from_unit(0.42).is_number_integer());
}

TEST(SweepConfig, AGridOverQUniformIsWandbsArangeWithoutMax) {
  const auto c = parse_sweep_config(R"(method: grid
parameters:
  a: {distribution: q_uniform, min: 0, max: 4, q: 1}
  b: {distribution: q_uniform, min: 0, max: 2}
  c: {distribution: q_uniform, min: 0.5, max: 1.5, q: 0.5}
)",
                                    "s.yaml");
  EXPECT_EQ(nlohmann::json(param(c, "a").grid_values()).dump(), "[0,1,2,3]");
  EXPECT_EQ(nlohmann::json(param(c, "b").grid_values()).dump(), "[0.0,1.0]");
  EXPECT_EQ(nlohmann::json(param(c, "c").grid_values()).dump(), "[0.5,1.0]");
}

TEST(SweepConfig, IntUniformBoundsAreInclusiveAsWandbs) {
  const auto c = parse_sweep_config("method: grid\nparameters:\n  n: {min: 2, max: 4}\n", "s.yaml");
  EXPECT_EQ(nlohmann::json(param(c, "n").grid_values()).dump(), "[2,3,4]");
  EXPECT_EQ(param(c, "n").from_unit(0.999), 4);
  EXPECT_EQ(param(c, "n").from_unit(0.001), 2);
}

TEST(SweepConfig, WandbsCategoricalWithProbabilitiesNameIsAccepted) {
  const auto c = parse_sweep_config(
      "method: random\nparameters:\n  a: {distribution: categorical_w_probabilities, values: [x, "
      "y], probabilities: [0.9, 0.1]}\n",
      "s.yaml");
  EXPECT_EQ(param(c, "a").distribution, Distribution::kCategorical);
  EXPECT_EQ(param(c, "a").probabilities, (std::vector<double>{0.9, 0.1}));
  EXPECT_NE(single_error("method: random\nparameters:\n  a: {distribution: "
                         "categorical_w_probabilities, values: [x, y]}\n")
                .find("missing 'probabilities'"),
            std::string::npos);
  EXPECT_NE(single_error("method: grid\nparameters:\n  a: {values: [x, y], probabilities: [0.5, "
                         "0.5]}\n")
                .find("'probabilities' has no meaning in a grid"),
            std::string::npos);  // W&B's grid refuses them too
}

TEST(SweepConfig, QuotedNumbersAreStrings) {
  EXPECT_EQ(single_error("method: random\nparameters:\n  lr:\n    min: \"0.01\"\n    max: 1.0\n    "
                         "distribution: uniform\n"),
            "sweep.yaml:4:10: parameters.lr.min: expected a number, got \"0.01\"");
}

TEST(SweepConfig, WrongTypeNamesFileLineColumnPathExpectedAndFound) {
  EXPECT_EQ(single_error(R"(method: random
trials: 4
parameters:
  lr:
    distribution: uniform
    min: fast
    max: 1
)"),
            "sweep.yaml:6:10: parameters.lr.min: expected a number, got \"fast\"");
}

TEST(SweepConfig, UnknownKeySuggestsTheNearestKnownKey) {
  const auto errors = errors_of(
      "method: random\ntrials: 1\nparameters:\n  lr:\n    distrbution: uniform\n    min: 0\n    "
      "max: 1.0\n");
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].format(),
            "sweep.yaml:5:5: parameters.lr.distrbution: unknown key 'distrbution'\n"
            "  note: did you mean 'distribution'?");
}

TEST(SweepConfig, UnknownTopLevelKeySuggests) {
  const auto errors = errors_of("method: grid\nparamters:\n  a: {value: 1}\n");
  ASSERT_GE(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "unknown key 'paramters'");
  EXPECT_EQ(errors[0].note, "did you mean 'parameters'?");
  EXPECT_EQ(errors[0].where.line, 2);
}

TEST(SweepConfig, ReportsEveryErrorAtOnce) {
  const auto errors = errors_of(R"(method: random
run_cap: -3
seed: -1
parameters:
  a: {values: []}
  b: {min: 5, max: 1}
  c: {distribution: q_uniform, min: 0, max: 1, q: 0}
)");
  ASSERT_EQ(errors.size(), 5u);
  EXPECT_EQ(errors[0].format(), "sweep.yaml:2:10: run_cap: expected an integer >= 1, got -3");
  EXPECT_EQ(errors[1].format(), "sweep.yaml:3:7: seed: expected a seed >= 0, got -1");
  EXPECT_EQ(errors[2].format(),
            "sweep.yaml:5:15: parameters.a.values: expected at least one value, got an empty list");
  EXPECT_EQ(errors[3].format(),
            "sweep.yaml:6:20: parameters.b.max: max (1) must be greater than min (5)");
  EXPECT_EQ(errors[4].format(), "sweep.yaml:7:51: parameters.c.q: expected q > 0, got 0");
}

TEST(SweepConfig, InconsistentValuesAreErrors) {
  EXPECT_NE(single_error(
                "method: random\nparameters:\n  a: {values: [1, 2], probabilities: [0.5, 0.4]}\n")
                .find("probabilities sum to 0.9, expected 1"),
            std::string::npos);
  EXPECT_NE(
      single_error("method: random\nparameters:\n  a: {values: [1, 2], probabilities: [1.0]}\n")
          .find("expected 2 probabilities (one per value), got 1"),
      std::string::npos);
  EXPECT_NE(
      single_error(
          "method: random\nparameters:\n  a: {distribution: log_uniform_values, min: 0, max: 1}\n")
          .find("expected min > 0"),
      std::string::npos);
  EXPECT_NE(single_error("method: random\nparameters:\n  a: {distribution: normal, sigma: -1}\n")
                .find("expected sigma > 0, got -1"),
            std::string::npos);
  EXPECT_NE(
      single_error(
          "method: random\nparameters:\n  a: {distribution: log_uniform, min: 1, max: 1000}\n")
          .find("did you mean 'log_uniform_values'"),
      std::string::npos);
  EXPECT_NE(single_error(
                "method: random\nparameters:\n  a: {distribution: int_uniform, min: 1.5, max: 4}\n")
                .find("parameters.a.min: expected an integer, got 1.5"),
            std::string::npos);
}

TEST(SweepConfig, KeysThatDoNotApplyToTheDistributionAreErrors) {
  EXPECT_EQ(
      single_error(
          "method: random\nparameters:\n  a: {distribution: uniform, min: 0, max: 1, q: 0.1}\n"),
      "sweep.yaml:3:46: parameters.a.q: 'q' does not apply to distribution 'uniform'\n"
      "  note: did you mean distribution 'q_uniform'?");
  EXPECT_NE(single_error("method: random\nparameters:\n  a: {value: 1, values: [1]}\n")
                .find("'values' does not apply to distribution 'constant'"),
            std::string::npos);
}

TEST(SweepConfig, UnknownDistributionSuggests) {
  const auto e = single_error(
      "method: random\nparameters:\n  a: {distribution: loguniform, min: 0, max: 1}\n");
  EXPECT_NE(e.find("unknown distribution \"loguniform\""), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'log_uniform'?"), std::string::npos) << e;
}

TEST(SweepConfig, ContinuousParameterInGridIsAnError) {
  const auto e =
      single_error("method: grid\nparameters:\n  lr: {distribution: uniform, min: 0, max: 1}\n");
  EXPECT_NE(e.find("sweep.yaml:3:3: parameters.lr: distribution 'uniform' is continuous"),
            std::string::npos)
      << e;
}

TEST(SweepConfig, MethodIsRequiredAndChecked) {
  EXPECT_NE(single_error("parameters:\n  a: {value: 1}\n").find("missing required key 'method'"),
            std::string::npos);
  const auto e = single_error("method: gird\nparameters:\n  a: {value: 1}\n");
  EXPECT_NE(
      e.find("sweep.yaml:1:9: method: expected 'grid', 'random', 'bayes' or 'sobol', got \"gird\""),
      std::string::npos)
      << e;
  EXPECT_NE(e.find("did you mean 'grid'?"), std::string::npos);
}

TEST(SweepConfig, CommandMacrosAreChecked) {
  EXPECT_NE(single_error("method: grid\nprogram: t.py\ncommand: [\"${env}\", "
                         "\"${interpeter}\"]\nparameters:\n  a: {value: 1}\n")
                .find("unknown macro '${interpeter}'\n  note: did you mean '${interpreter}'?"),
            std::string::npos);
  EXPECT_NE(single_error(
                "method: grid\ncommand: [python3, \"${program}\"]\nparameters:\n  a: {value: 1}\n")
                .find("'${program}' is used but no 'program' is set"),
            std::string::npos);
  EXPECT_NE(single_error("method: grid\ncommand: [\"x${args}\"]\nparameters:\n  a: {value: 1}\n")
                .find("must be a word of its own"),
            std::string::npos);
}

TEST(SweepConfig, YamlSyntaxErrorHasALine) {
  const auto e = single_error("method: grid\nparameters:\n  a: {value: [1, 2}\n");
  EXPECT_EQ(e.rfind("sweep.yaml:3:", 0), 0u) << e;
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos);
}

TEST(SweepConfig, AKeyGivenTwiceKeepsTheLastValueWithAWarningNamingBothPlaces) {
  const auto c = parse_sweep_config("method: grid\nmethod: random\nparameters:\n  a: {value: 1}\n",
                                    "sweep.yaml");
  EXPECT_EQ(c.method, SearchMethod::kRandom);  // PyYAML's safe_load keeps the last
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0].format_warning(),
            "sweep.yaml:2:1: warning: method: key 'method' is given twice (first at "
            "sweep.yaml:1:1); the last one is used, as W&B does");
}

TEST(SweepConfig, StrictModeMakesEveryWarningAnError) {
  const std::string text = "method: grid\nmethod: random\nparameters:\n  a: {value: 1}\n";
  try {
    (void)parse_sweep_config(text, "sweep.yaml", {.strict = true});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.diagnostics().size(), 1u);
    EXPECT_EQ(e.diagnostics()[0].format(),
              "sweep.yaml:2:1: method: key 'method' is given twice (first at sweep.yaml:1:1); the "
              "last one is used, as W&B does\n  note: a warning, made an error by strict mode "
              "(--strict)");
  }
  EXPECT_TRUE(
      parse_sweep_config("method: grid\nparameters:\n  a: {value: 1}\n", "s.yaml", {.strict = true})
          .warnings.empty());
}

TEST(SweepConfig, KeysGivenTwiceInsideParametersKeepTheLastToo) {
  const auto c = parse_sweep_config(R"(method: random
parameters:
  lr: {values: [1, 2]}
  lr: {min: 0.5, max: 1.5}
  opt:
    parameters:
      m: {value: 1}
    parameters:
      m: {value: 2}
  k: {value: {x: 1, x: 3}}
)",
                                    "sweep.yaml");
  EXPECT_EQ(param(c, "lr").distribution, Distribution::kUniform);
  EXPECT_EQ(param(c, "opt.m").values.at(0), 2);
  EXPECT_EQ(param(c, "k").values.at(0).dump(), R"({"x":3})");
  ASSERT_EQ(c.warnings.size(), 3u);
  EXPECT_EQ(c.warnings[0].path, "parameters.lr");
  EXPECT_EQ(c.warnings[0].where.line, 4);
  EXPECT_NE(c.warnings[0].message.find("(first at sweep.yaml:3:3)"), std::string::npos);
  EXPECT_EQ(c.warnings[1].path, "parameters.opt.parameters");
  EXPECT_EQ(c.warnings[2].path, "parameters.k.value.x");
}

TEST(SweepConfig, RepeatedValuesRunOnceInAGridAsWandbDoes) {
  const auto c = parse_sweep_config("method: grid\nparameters:\n  a: {values: [1, 2, 1.0, 2, 3]}\n",
                                    "sweep.yaml");
  EXPECT_EQ(nlohmann::json(param(c, "a").grid_values()).dump(), "[1,2,3]");
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0].format_warning(),
            "sweep.yaml:3:22: warning: parameters.a.values[2]: value 1.0 is listed twice (first "
            "at [0]), and 1 more repeated value; the grid runs each value once, as W&B's grid "
            "does");
}

TEST(SweepConfig, RepeatedValuesWeighRandomDrawsAsWandbDoes) {
  const auto c =
      parse_sweep_config("method: random\nparameters:\n  a: {values: [x, y, x]}\n", "sweep.yaml");
  const auto& a = param(c, "a");
  EXPECT_EQ(a.values.size(), 3u);  // kept: x is drawn with probability 2/3
  EXPECT_EQ(a.from_unit(0.1), "x");
  EXPECT_EQ(a.from_unit(0.5), "y");
  EXPECT_EQ(a.from_unit(0.9), "x");
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0].path, "parameters.a.values[2]");
  EXPECT_NE(c.warnings[0].message.find("drawn more often"), std::string::npos)
      << c.warnings[0].message;
  EXPECT_THROW(parse_sweep_config("method: random\nparameters:\n  a: {values: [x, y, x]}\n",
                                  "s.yaml", {.strict = true}),
               ConfigError);
}

TEST(SweepConfig, WholeFileProblems) {
  EXPECT_NE(single_error("").find("the config is empty"), std::string::npos);
  EXPECT_NE(single_error("- a\n- b\n").find("expected a mapping of sweep keys, got a list"),
            std::string::npos);
  EXPECT_NE(single_error("method: grid\n---\nmethod: random\n").find("more than one YAML document"),
            std::string::npos);
  EXPECT_NE(single_error("method: grid\nparameters:\n  a: 0.01\n")
                .find("for a constant, write 'a: {value: 0.01}'"),
            std::string::npos);
}

TEST(SweepConfig, MissingFileIsAUserError) {
  try {
    load_sweep_config("/nonexistent/sweep.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/sweep.yaml: cannot read the sweep config"),
              std::string::npos);
  }
}

constexpr const char* kParams = "parameters:\n  a: {value: 1}\n";

TEST(SweepConfig, ALocalControllerIsAcceptedSilently) {
  const auto c = parse_sweep_config(
      std::string("method: grid\ncontroller: {type: local}\n") + kParams, "s.yaml");
  EXPECT_TRUE(c.warnings.empty());
}

TEST(SweepConfig, ACloudControllerIsAcceptedWithAOneLineWarning) {
  const auto c = parse_sweep_config(
      std::string("method: grid\ncontroller: {type: cloud}\n") + kParams, "s.yaml");
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0].format_warning(),
            "s.yaml:2:1: warning: controller: xpscale is the sweep's controller; 'controller: "
            "{type: cloud}' has no effect");
}

TEST(SweepConfig, AnyOtherControllerIsAnErrorNamingTheShape) {
  EXPECT_EQ(single_error(std::string("method: grid\ncontroller: cloud\n") + kParams),
            "sweep.yaml:2:13: controller: expected 'controller: {type: local}' or 'controller: "
            "{type: cloud}', got \"cloud\"");
  EXPECT_NE(single_error(std::string("method: grid\ncontroller: {type: remote}\n") + kParams)
                .find("controller.type: expected 'local' or 'cloud', got \"remote\""),
            std::string::npos);
  EXPECT_NE(single_error(std::string("method: grid\ncontroller: {}\n") + kParams)
                .find("controller.type: missing required key 'type'"),
            std::string::npos);
  EXPECT_NE(single_error(std::string("method: grid\ncontroller: {typ: local}\n") + kParams)
                .find("did you mean 'type'?"),
            std::string::npos);
}

TEST(SweepConfig, LaunchKeysAreNamedInOneWarning) {
  const auto c = parse_sweep_config(std::string("method: grid\njob: me/proj/train:v1\n"
                                                "launch: {queue: gpus}\n") +
                                        kParams,
                                    "s.yaml");
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0].where.line, 2);
  EXPECT_NE(c.warnings[0].message.find("W&B Launch keys 'job', 'launch' have no meaning here"),
            std::string::npos)
      << c.warnings[0].message;
  EXPECT_FALSE(c.max_concurrent_trials);
}

TEST(SweepConfig, LaunchRefusesJobAndImageUriTogether) {
  EXPECT_NE(single_error(std::string("method: grid\njob: a\nimage_uri: b\n") + kParams)
                .find("'job' and 'image_uri' are both given"),
            std::string::npos);
}

TEST(SweepConfig, ImageuriIsNotAWandbKey) {
  EXPECT_NE(single_error(std::string("method: grid\nimageuri: b\n") + kParams)
                .find("did you mean 'image_uri'?"),
            std::string::npos);
}

TEST(SweepConfig, ALaunchSchedulerIsKnownByItsKeysAndItsWorkersCapTheTrialsAtOnce) {
  const auto c = parse_sweep_config(
      std::string("method: grid\nimage_uri: registry/train:1\nscheduler:\n  job: "
                  "wandb/sweep-jobs/job-wandb-sweep-scheduler:latest\n  resource: local-container\n"
                  "  num_workers: 4\n") +
          kParams,
      "s.yaml");
  EXPECT_FALSE(c.scheduler);
  EXPECT_EQ(c.max_concurrent_trials, 4);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].message.find("'image_uri', 'scheduler' have no meaning"),
            std::string::npos)
      << c.warnings[0].message;
}

TEST(SweepConfig, ASchedulerMixingBothKindsOfKeysIsAnError) {
  const auto e = single_error(
      std::string("method: grid\nscheduler: {type: asha, resource: epoch, num_workers: 2, "
                  "min_resource: 1}\n") +
      kParams);
  EXPECT_NE(e.find("scheduler: mixes xpscale's scheduler keys ('type' or 'min_resource') with W&B "
                   "Launch's ('num_workers')"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("pick one"), std::string::npos);
}

TEST(SweepConfig, MaxConcurrentTrialsIsAnXpscaleKey) {
  EXPECT_EQ(parse_sweep_config(std::string("method: grid\nmax_concurrent_trials: 2\n") + kParams,
                               "s.yaml")
                .max_concurrent_trials,
            2);
  EXPECT_NE(single_error(std::string("method: grid\nmax_concurrent_trials: 0\n") + kParams)
                .find("max_concurrent_trials: expected an integer >= 1, got 0"),
            std::string::npos);
  EXPECT_NE(single_error(std::string("method: grid\nmax_concurrent_trials: 2\nscheduler: "
                                     "{num_workers: 3}\n") +
                         kParams)
                .find("keep one"),
            std::string::npos);
}

TEST(SweepConfig, EarlyTerminateIsCheckedLikeWandb) {
  EXPECT_NE(single_error("method: grid\nearly_terminate: {type: hyperband, min_iter: 3, max_iter: "
                         "27, s: 2}\nparameters:\n  a: {value: 1}\n")
                .find("give either 'min_iter' or 'max_iter', not both"),
            std::string::npos);
  EXPECT_NE(single_error("method: grid\nearly_terminate: {type: hyperband, max_iter: "
                         "27}\nparameters:\n  a: {value: 1}\n")
                .find("'max_iter' needs 's' >= 1"),
            std::string::npos);
  EXPECT_NE(single_error("method: grid\nearly_terminate: {type: hyperband, min_iter: 3, eta: "
                         "1}\nparameters:\n  a: {value: 1}\n")
                .find("early_terminate.eta: expected a number > 1, got 1"),
            std::string::npos);
  const auto c = parse_sweep_config(
      "method: grid\nearly_terminate: {type: hyperband, max_iter: 27, s: 2, strict: "
      "false}\nparameters:\n  a: {value: 1}\n",
      "s.yaml");
  EXPECT_EQ(c.early_terminate->max_iter, 27);
  EXPECT_EQ(c.early_terminate->s, 2);
  EXPECT_FALSE(c.early_terminate->strict);
}

TEST(SweepConfig, EarlyTerminateDefaultsAreWandbs) {
  // wandb/sweeps schema.json: eta 3, strict true (since wandb/sweeps#108, 2024).
  const auto c = parse_sweep_config(
      "method: grid\nearly_terminate: {type: hyperband, min_iter: 2}\nparameters:\n  a: {value: "
      "1}\n",
      "s.yaml");
  EXPECT_EQ(c.early_terminate->eta, 3);
  EXPECT_TRUE(c.early_terminate->strict);
  EXPECT_EQ(c.early_terminate->s, 0);  // W&B has no default; only max_iter needs it
}

TEST(SweepConfig, BayesAshaAndDataTogetherAreRunnable) {
  const auto c = parse_sweep_config(R"(method: bayes
metric: {name: loss}
parameters:
  a: {min: 0.0, max: 1.0}
scheduler: {type: asha, resource: epoch, min_resource: 1, max_resource: 27, eta: 3}
data:
  train: {pattern: "s3://bucket/fmnist/train-{000000..000015}.tar"}
)",
                                    "s.yaml");
  EXPECT_TRUE(c.unbuilt.empty());  // TPE, ASHA and the sharded loader are built
  ASSERT_TRUE(c.train_data);
  EXPECT_EQ(c.train_data->urls.size(), 16u);
  EXPECT_EQ(c.train_data->urls.back(), "s3://bucket/fmnist/train-000015.tar");
  EXPECT_NO_THROW(require_built(c, "run"));
}

TEST(SweepConfig, SchedulerKeysMustFitTheType) {
  const auto e = single_error(
      "method: grid\nparameters:\n  a: {value: 1}\nscheduler: {type: asha, resource: epoch, "
      "interval: 4}\n");
  EXPECT_NE(e.find("scheduler.interval: 'interval' does not apply to scheduler type 'asha'"),
            std::string::npos)
      << e;
}

TEST(SweepConfig, DataSectionIsChecked) {
  EXPECT_NE(single_error("method: grid\nparameters:\n  a: {value: 1}\ndata:\n  train: {urls: "
                         "[\"ftp://x/a.tar\"]}\n")
                .find("data.train.urls[0]"),
            std::string::npos);
  EXPECT_NE(single_error("method: grid\nparameters:\n  a: {value: 1}\ndata:\n  train: {pattern: "
                         "\"s3://b/x-{1..}.tar\"}\n")
                .find("data.train.pattern"),
            std::string::npos);
  EXPECT_NE(single_error("method: grid\nparameters:\n  a: {value: 1}\ndata:\n  train: {}\n")
                .find("missing the shards"),
            std::string::npos);
}

TEST(SweepConfig, DataSplitTakesAManifestAndLoaderOptions) {
  const auto c = parse_sweep_config(R"(method: grid
parameters:
  a: {value: 1}
data:
  train:
    manifest: runs/shards/train.manifest.json
    shuffle_buffer: 4096
    shuffle_shards: false
    seed: 5
    cache_dir: /tmp/cache
    cache_max_bytes: 1000000
    prefetch_bytes: 65536
    on_error: skip
    drop_last: true
)",
                                    "s.yaml");
  ASSERT_TRUE(c.train_data);
  EXPECT_TRUE(c.unbuilt.empty());
  EXPECT_EQ(c.train_data->manifest, "runs/shards/train.manifest.json");
  EXPECT_EQ(c.train_data->shuffle_buffer_bytes, 4096);
  EXPECT_FALSE(c.train_data->shuffle_shards);
  EXPECT_EQ(c.train_data->seed, 5u);
  EXPECT_EQ(c.train_data->cache_max_bytes, 1000000);
  EXPECT_EQ(c.train_data->prefetch_bytes, 65536);
  EXPECT_EQ(c.train_data->on_error, "skip");
  EXPECT_TRUE(c.train_data->drop_last);
  EXPECT_NE(single_error("method: grid\nparameters:\n  a: {value: 1}\ndata:\n  train: {manifest: "
                         "m.json, urls: [a.tar]}\n")
                .find("give one of 'manifest', 'urls', 'pattern' or 'prefix', not several"),
            std::string::npos);
  EXPECT_NE(single_error("method: grid\nparameters:\n  a: {value: 1}\ndata:\n  train: {manifest: "
                         "m.json, prefetch_bytes: 0}\n")
                .find("data.train.prefetch_bytes"),
            std::string::npos);
}

TEST(SweepConfig, DataForExternalTrialsIsHandedOnAsJson) {
  const auto c = parse_sweep_config(
      "program: train.py\nmethod: grid\nparameters:\n  a: {value: 1}\ndata:\n  train: "
      "{pattern: \"d/t-{0..2}.tar\", seed: 5, shuffle_buffer: 1024}\n",
      "s.yaml");
  EXPECT_TRUE(c.unbuilt.empty());
  ASSERT_TRUE(c.train_data);
  const nlohmann::json j = dataset_spec_json(*c.train_data);
  EXPECT_FALSE(j.contains("urls"));  // a pattern travels as it is written
  EXPECT_EQ(j["pattern"], "d/t-{0..2}.tar");
  EXPECT_EQ(j["seed"], 5);
  EXPECT_EQ(j["shuffle_buffer_bytes"], 1024);
  EXPECT_EQ(j["on_error"], "fail");
  EXPECT_FALSE(j.contains("manifest"));
}

TEST(SweepConfig, ResourcesAndDurations) {
  const auto c = parse_sweep_config(
      "method: grid\nparameters:\n  a: {value: 1}\nresources: {ranks_per_trial: 4, gpus_per_rank: "
      "1, time_limit: \"01:30:00\"}\n",
      "s.yaml");
  EXPECT_EQ(c.resources.ranks_per_trial, 4);
  EXPECT_EQ(c.resources.gpus_per_rank, 1);
  EXPECT_EQ(c.resources.time_limit_s, 5400);
  EXPECT_NE(
      single_error("method: grid\nparameters:\n  a: {value: 1}\nresources: {ranks_per_trial: 0}\n")
          .find("resources.ranks_per_trial: expected an integer >= 1, got 0"),
      std::string::npos);
  EXPECT_NE(
      single_error("method: grid\nparameters:\n  a: {value: 1}\nresources: {time_limit: soon}\n")
          .find("resources.time_limit: expected a duration"),
      std::string::npos);
}

TEST(SweepConfig, NestedNamesMayNotCollide) {
  const auto e = single_error(
      "method: grid\nparameters:\n  opt:\n    parameters:\n      lr: {value: 1}\n  opt.lr: {value: "
      "2}\n");
  EXPECT_NE(e.find("parameter 'opt.lr' is defined twice"), std::string::npos) << e;
}

TEST(SweepConfig, AliasBombIsBoundedNotExpanded) {
  std::string yaml =
      "method: grid\nparameters:\n  a:\n    value: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  std::string prev = "l0";
  // 10^9 elements if expanded; the loader must refuse, not hang.
  for (int i = 1; i <= 8; ++i) {
    const std::string name = "l" + std::to_string(i);
    yaml += "  a" + std::to_string(i) + ":\n    value: &" + name + " [";
    for (int j = 0; j < 10; ++j) yaml += (j ? ", *" : "*") + prev;
    yaml += "]\n";
    prev = name;
  }
  const auto errors = errors_of(yaml);
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors.back().format().find("more than 100000 elements"), std::string::npos);
}

}  // namespace
}  // namespace xpscale

namespace xpscale {
namespace {

TEST(SweepConfig, StrayCommaIsASyntaxErrorNotAHang) {
  // yaml-cpp's LoadAll loops forever on this input (found by the fuzzer).
  EXPECT_EQ(test::single_error("# c\n, x\nmethod: grid\n"),
            "sweep.yaml:2:1: YAML syntax error: unexpected \",\"");
}

TEST(SweepConfig, IntUniformBoundsMustBeExactInADouble) {
  EXPECT_NE(
      test::single_error("method: random\nparameters:\n  a: {min: 0, max: 9223372036854775807}\n")
          .find("parameters.a.max: expected an integer within +-2^53"),
      std::string::npos);
}

TEST(SweepConfig, InvalidUtf8IsAnErrorWithItsPlace) {
  EXPECT_EQ(test::single_error("method: grid\nparameters:\n  a\xff: {value: 1}\n"),
            "sweep.yaml:3:4: the file is not valid UTF-8: byte 0xff here");
  EXPECT_EQ(test::single_error(std::string("method: grid\0", 13)),
            "sweep.yaml:1:13: the file is not valid UTF-8: byte 0x00 here");
  // Well-formed unicode is fine, in keys and values.
  EXPECT_TRUE(
      test::errors_of("method: grid\nparameters:\n  taux_é: {values: [\"日本\"]}\n").empty());
}

}  // namespace
}  // namespace xpscale

namespace xpscale {
namespace {

TEST(SweepConfig, WandbModeIsAutoByDefaultAndChecked) {
  const std::string base = "method: grid\nparameters:\n  a: {value: 1}\n";
  EXPECT_EQ(parse_sweep_config(base, "s.yaml").wandb, WandbMode::kAuto);
  for (auto [text, mode] :
       {std::pair{"shim", WandbMode::kShim}, std::pair{"passthrough", WandbMode::kPassthrough},
        std::pair{"off", WandbMode::kOff}}) {
    const auto c = parse_sweep_config(base + "wandb: " + text + "\n", "s.yaml");
    EXPECT_EQ(c.wandb, mode) << text;
    EXPECT_STREQ(wandb_mode_name(c.wandb), text);
  }
  const auto e = single_error(base + "wandb: shimm\n");
  EXPECT_NE(e.find("wandb: expected 'auto', 'shim', 'passthrough' or 'off', got \"shimm\""),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("did you mean 'shim'?"), std::string::npos) << e;
}

}  // namespace
}  // namespace xpscale

namespace xpscale {
namespace {

// W&B's beta and q_beta (a, b default 1): values in [0, 1], quantized by q.
TEST(SweepConfig, BetaAndQBetaAreWandbs) {
  const auto c = parse_sweep_config(
      "method: random\nparameters:\n  p: {distribution: beta, a: 2, b: 5}\n"
      "  u: {distribution: beta}\n  q: {distribution: q_beta, a: 0.5, b: 0.5, q: 0.25}\n",
      "s.yaml");
  ASSERT_EQ(c.parameters.size(), 3u);
  const auto& p = c.parameters[0];
  EXPECT_EQ(p.distribution, Distribution::kBeta);
  EXPECT_DOUBLE_EQ(p.a, 2);
  EXPECT_DOUBLE_EQ(p.b, 5);
  // Beta(2, 5): mean 2/7, median about 0.2644.
  EXPECT_NEAR(p.from_unit(0.5).get<double>(), 0.2644, 1e-3);
  EXPECT_NEAR(c.parameters[1].from_unit(0.3).get<double>(), 0.3, 1e-12);  // Beta(1, 1) is U(0, 1)
  for (double u : {0.01, 0.3, 0.7, 0.99}) {
    const double q = c.parameters[2].from_unit(u).get<double>();
    EXPECT_TRUE(q == 0 || q == 0.25 || q == 0.5 || q == 0.75 || q == 1) << q;
  }
  std::string e;
  for (const auto& d : errors_of("method: random\nparameters:\n  p: {distribution: beta, a: 0, c: 1}\n"))
    e += d.format() + "\n";
  EXPECT_NE(e.find("parameters.p.a: expected a finite number > 0, got 0"), std::string::npos) << e;
  EXPECT_NE(e.find("parameters.p.c: unknown key 'c'"), std::string::npos) << e;
}

TEST(SweepConfig, ApiVersionAndKindAreAccepted) {
  const auto c = parse_sweep_config(
      "apiVersion: v1\nkind: sweep\nmethod: grid\nparameters:\n  a: {values: [1]}\n", "s.yaml");
  EXPECT_TRUE(c.warnings.empty());
  const std::string e =
      single_error("kind: job\nmethod: grid\nparameters:\n  a: {values: [1]}\n");
  EXPECT_NE(e.find("kind: expected 'sweep'"), std::string::npos) << e;
}

TEST(SweepConfig, MetricImputeIsAWarningThatLinksTheTable) {
  const auto c = parse_sweep_config(
      "method: bayes\nmetric: {name: loss, impute: worst, impute_while_running: 'false'}\n"
      "parameters:\n  a: {min: 0.0, max: 1.0}\n",
      "s.yaml");
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0].path, "metric.impute");
  EXPECT_NE(c.warnings[0].note.find("docs/wandb.md#metric"), std::string::npos);
  const std::string e = single_error(
      "method: bayes\nmetric: {name: loss, impute: mean}\nparameters:\n  a: {min: 0.0, max: 1.0}\n");
  EXPECT_NE(e.find("metric.impute: expected"), std::string::npos) << e;
}

TEST(SweepConfig, MethodCustomIsRefusedWithALinkToTheTable) {
  const std::string e = single_error("method: custom\nparameters:\n  a: {values: [1]}\n");
  EXPECT_NE(e.find("sweep.yaml:1:9: method: method 'custom'"), std::string::npos) << e;
  EXPECT_NE(e.find("docs/wandb.md#top-level-keys"), std::string::npos) << e;
}

}  // namespace
}  // namespace xpscale

namespace xpscale {
namespace {

// Configs in the shapes W&B users publish them (tests/unit/wandb_configs):
// each loads unchanged, plans its first trials and builds their commands.
TEST(SweepConfig, PublishedStyleWandbConfigsLoadAndPlan) {
  int loaded = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(XPSCALE_SOURCE_DIR) +
                                                               "/tests/unit/wandb_configs")) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    SweepConfig c;
    ASSERT_NO_THROW(c = load_sweep_config(entry.path().string()));
    const auto trials = plan_trials(c, 5);
    EXPECT_FALSE(trials.empty());
    for (const auto& t : trials) {
      const auto argv = build_command(c, t.params, {"p.json", "python"});
      EXPECT_FALSE(argv.empty());
    }
    ++loaded;
  }
  EXPECT_GE(loaded, 15);
}

}  // namespace
}  // namespace xpscale

namespace xpscale {
namespace {

TEST(SweepConfig, ThousandsOfWarningsAreCappedWithACount) {
  std::string yaml = "method: grid\nparameters:\n";
  for (int i = 0; i < 2000; ++i) yaml += "  a: {values: [1]}\n";
  const auto c = parse_sweep_config(yaml, "s.yaml");
  ASSERT_EQ(c.warnings.size(), 51u);
  EXPECT_NE(c.warnings.back().message.find("1949 more warnings"), std::string::npos)
      << c.warnings.back().message;
}

}  // namespace
}  // namespace xpscale
