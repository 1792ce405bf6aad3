// The sweep config's limits: what load_sweep_config reads (a regular file of
// at most kMaxSweepConfigBytes, never blocking), how long loading takes
// (linear in values and parameters) and the bounds of counts.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include <gtest/gtest.h>

#include "test_util.h"
#include "xpscale/config/sweep_config.h"
#include "xpscale/coordinator/sweep_run.h"
#include "xpscale/search/searcher.h"

namespace xpscale {
namespace {

namespace fs = std::filesystem;

class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("xpscale-config-limits-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The message load_sweep_config(path) fails with; fails the test if it loads.
  static std::string load_error(const std::string& path) {
    try {
      (void)load_sweep_config(path);
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << path << " loaded";
    return "";
  }

  fs::path dir_;
};

constexpr const char* kSmallConfig = "method: random\ntrials: 1\nparameters:\n  a: {value: 1}\n";

TEST_F(ConfigFileTest, AConfigAtTheCapLoads) {
  // Padding with a comment keeps it a valid config of exactly the cap.
  const std::string path = (dir_ / "sweep.yaml").string();
  std::string text = kSmallConfig;
  text += "#" + std::string(kMaxSweepConfigBytes - text.size() - 2, 'x') + "\n";
  ASSERT_EQ(text.size(), kMaxSweepConfigBytes);
  std::ofstream(path, std::ios::binary) << text;
  EXPECT_EQ(load_sweep_config(path).parameters.size(), 1u);
}

TEST_F(ConfigFileTest, AFileLargerThanTheCapIsRefusedByName) {
  const std::string path = (dir_ / "big.yaml").string();
  std::ofstream(path, std::ios::binary) << kSmallConfig << std::string(kMaxSweepConfigBytes, '#');
  const std::string error = load_error(path);
  EXPECT_NE(error.find(path + ": the sweep config is"), std::string::npos) << error;
  EXPECT_NE(error.find("larger than 16 MiB (16777216 bytes)"), std::string::npos) << error;
}

TEST_F(ConfigFileTest, AnEndlessDeviceIsRefusedWithoutReadingIt) {
  const std::string error = load_error("/dev/zero");
  EXPECT_NE(error.find("/dev/zero: is a character device; a sweep config must be a regular file"),
            std::string::npos)
      << error;
}

TEST_F(ConfigFileTest, ADirectoryIsRefused) {
  const std::string error = load_error(dir_.string());
  EXPECT_NE(error.find(dir_.string() + ": is a directory"), std::string::npos) << error;
}

TEST_F(ConfigFileTest, AFifoIsRefusedWithoutBlocking) {
  const std::string path = (dir_ / "fifo.yaml").string();
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto result = std::async(std::launch::async, [&] { return load_error(path); });
  if (result.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    // Unblock the reader so the test ends, then fail.
    const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
    result.wait();
    FAIL() << "load_sweep_config blocked on a FIFO";
  }
  const std::string error = result.get();
  EXPECT_NE(error.find(path + ": is a pipe or FIFO; a sweep config must be a regular file"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("process substitution"), std::string::npos) << error;
}

TEST_F(ConfigFileTest, AMissingFileNamesTheReason) {
  const std::string error = load_error((dir_ / "none.yaml").string());
  EXPECT_NE(error.find("none.yaml: cannot read the sweep config: No such file or directory"),
            std::string::npos)
      << error;
}

// Loading is linear in the number of values and of parameters: half a
// million values once took 212 s (a scan per value for duplicates). The
// bound leaves a slow shared machine 5x its linear time yet fails the
// quadratic code by 20x.
constexpr auto kLoadBound = std::chrono::seconds(10);

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(ConfigLoadTime, HalfAMillionValuesLoadInLinearTime) {
  constexpr int kValues = 500'000;
  std::string text = "method: random\ntrials: 1\nparameters:\n  x:\n    values:\n";
  for (int i = 0; i < kValues; ++i) text += "      - " + std::to_string(i) + "\n";
  const auto start = std::chrono::steady_clock::now();
  const auto config = parse_sweep_config(text, "values.yaml");
  const double took = seconds_since(start);
  ASSERT_EQ(config.parameters.size(), 1u);
  EXPECT_EQ(config.parameters[0].values.size(), static_cast<std::size_t>(kValues));
  EXPECT_LT(took, std::chrono::duration<double>(kLoadBound).count());
}

TEST(ConfigLoadTime, RepeatsAmongManyValuesAreStillFound) {
  std::string text = "method: random\ntrials: 1\nparameters:\n  x:\n    values: [";
  for (int i = 0; i < 10'000; ++i) text += std::to_string(i) + ", ";
  text += "5000.0]\n";  // 5000 written as a float: the same number
  const auto config = parse_sweep_config(text, "values.yaml");
  ASSERT_EQ(config.warnings.size(), 1u);
  EXPECT_EQ(config.warnings[0].path, "parameters.x.values[10000]");
  EXPECT_NE(config.warnings[0].message.find("is listed twice (first at [5000])"),
            std::string::npos);
  EXPECT_EQ(config.parameters[0].values.size(), 10'001u);  // random draws keep the repeat
}

TEST(ConfigLoadTime, HalfAMillionRepeatedGridValuesLoadInLinearTime) {
  constexpr int kValues = 500'000;
  std::string text = "method: grid\nparameters:\n  x:\n    values:\n";
  for (int i = 0; i < kValues; ++i) text += "      - " + std::to_string(i % 1000) + "\n";
  const auto start = std::chrono::steady_clock::now();
  const auto config = parse_sweep_config(text, "values.yaml");
  const double took = seconds_since(start);
  ASSERT_EQ(config.parameters.size(), 1u);
  EXPECT_EQ(config.parameters[0].values.size(), 1000u);  // each grid value once
  EXPECT_EQ(config.warnings.size(), 1u);                 // one warning, not 499,000
  EXPECT_LT(took, std::chrono::duration<double>(kLoadBound).count());
}

TEST(ConfigLoadTime, TwentyThousandParametersLoadInLinearTime) {
  constexpr int kParameters = 20'000;
  std::string text = "method: random\ntrials: 1\nparameters:\n";
  for (int i = 0; i < kParameters; ++i)
    text += "  p" + std::to_string(i) + ": {min: 0.0, max: 1.0}\n  g" + std::to_string(i) +
            ":\n    parameters:\n      v: {values: [a, b]}\n";
  const auto start = std::chrono::steady_clock::now();
  const auto config = parse_sweep_config(text, "parameters.yaml");
  const double took = seconds_since(start);
  EXPECT_EQ(config.parameters.size(), static_cast<std::size_t>(2 * kParameters));
  EXPECT_LT(took, std::chrono::duration<double>(kLoadBound).count());
}

TEST(ConfigLoadTime, TrialsOfTwentyThousandParametersAreLinear) {
  // Params are ordered_json, whose operator[] scans for the key: filled key
  // by key, 40 trials took ~20 s here.
  constexpr int kParameters = 20'000;
  std::string text = "method: random\ntrials: 40\nparameters:\n";
  for (int i = 0; i < kParameters; ++i)
    text += "  p" + std::to_string(i) + ": {min: 0.0, max: 1.0}\n";
  const auto config = parse_sweep_config(text, "parameters.yaml");
  auto grid = config;  // one point: every parameter a constant
  grid.method = SearchMethod::kGrid;
  for (auto& p : grid.parameters) {
    p.distribution = Distribution::kConstant;
    p.values = {p.name};
  }
  for (const SweepConfig* c : std::vector<const SweepConfig*>{&config, &grid}) {
    const auto method = c->method;
    auto searcher = make_searcher(*c);
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < 40; ++i) {
      const auto params = searcher->suggest(method == SearchMethod::kGrid ? 0 : i);
      ASSERT_TRUE(params);
      ASSERT_EQ(params->size(), static_cast<std::size_t>(kParameters));
      EXPECT_EQ(params->begin().key(), "p0");
      EXPECT_EQ(params->back(), params->at("p19999"));
    }
    EXPECT_LT(seconds_since(start), std::chrono::duration<double>(kLoadBound).count())
        << search_method_name(method);
  }
}

TEST(ConfigCounts, TrialsAndRunCapAreBounded) {
  for (const std::string key : {"trials", "run_cap"}) {
    const std::string ok = "method: random\n" + key + ": 10000000\nparameters:\n  a: {value: 1}\n";
    EXPECT_EQ(parse_sweep_config(ok, "sweep.yaml").trial_budget(), kMaxTrials) << key;
    const auto error = test::single_error(
        "method: random\n" + key + ": 9000000000000000000\nparameters:\n" + "  a: {value: 1}\n");
    const std::string column = key == "trials" ? "9" : "10";
    EXPECT_NE(error.find("sweep.yaml:2:" + column + ": " + key +
                         ": expected at most 10000000, got 9000000000000000000"),
              std::string::npos)
        << error;
  }
  // Written as a float, a huge count is still a count (and still too large).
  EXPECT_NE(test::single_error("method: random\ntrials: 1e12\nparameters:\n  a: {value: 1}\n")
                .find("trials: expected at most 10000000, got 1000000000000"),
            std::string::npos);
}

// The message check_run_options throws; "" when the options are fine.
std::string run_options_error(const RunOptions& options) {
  try {
    check_run_options(options);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(RunOptionLimits, EveryNumberIsFiniteAndBounded) {
  EXPECT_EQ(run_options_error(RunOptions{}), "");
  RunOptions o;
  o.progress_interval_s = 0;
  EXPECT_EQ(run_options_error(o),
            "--progress-interval must be a number of seconds in (0, 86400], got 0");
  o.progress_interval_s = std::nan("");
  EXPECT_NE(run_options_error(o).find("got nan"), std::string::npos);
  o.progress_interval_s = 1e308;
  EXPECT_NE(run_options_error(o).find("got 1e+308"), std::string::npos);
  o = RunOptions{};
  o.trials = 9'000'000'000'000'000'000;
  EXPECT_EQ(run_options_error(o), "--trials must be in [1, 10000000], got 9000000000000000000");
  o = RunOptions{};
  o.task_count = -3;
  EXPECT_EQ(run_options_error(o),
            "--array-size must be in [0, 10000000] (0: no job array), got -3");
  o.task_count = 4;
  o.task = 7;
  EXPECT_EQ(run_options_error(o), "--array-task must be in [0, 4) for --array-size 4, got 7");
  o.task = 3;
  EXPECT_EQ(run_options_error(o), "");
  o.task_count = 0;
  EXPECT_NE(run_options_error(o).find("--array-task 3 needs --array-size"), std::string::npos);
}

// Loading skips the second scan that counts documents when the first one
// provably is the whole file; what follows a document is still never
// ignored.
TEST(ConfigDocuments, ContentAfterTheFirstDocumentIsNeverIgnored) {
  const std::string config = "method: grid\nparameters:\n  a: {value: 1}\n";
  for (const std::string tail :
       {"---\nmethod: random\n", "...\nmethod: random\n", "--- {method: random}\n", "...\n,\n"}) {
    const auto errors = test::errors_of(config + tail);
    ASSERT_EQ(errors.size(), 1u) << tail;
    EXPECT_GE(errors[0].where.line, 4) << tail;
  }
  // A lone CR ends a line in YAML (yaml-cpp reads it as a syntax error).
  auto errors = test::errors_of("method: grid\rparameters:\r  a: {value: 1}\r---\rmethod: x\r");
  EXPECT_EQ(errors.size(), 1u);
  // A root that is not a block mapping at column 0 ends before the text does.
  for (const std::string text : {"{method: grid, parameters: {a: {value: 1}}}\n{b: 2}\n",
                                 "  method: grid\n  parameters: {a: {value: 1}}\n,\n"}) {
    errors = test::errors_of(text);
    ASSERT_EQ(errors.size(), 1u) << text;
    EXPECT_NE(errors[0].message.find("YAML"), std::string::npos) << errors[0].format();
  }
  // A document start before the root and comments after it are one document.
  EXPECT_TRUE(test::errors_of("%YAML 1.2\n---\n" + config + "# --- not a marker\n").empty());
}

}  // namespace
}  // namespace xpscale
