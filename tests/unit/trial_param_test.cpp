#include <gtest/gtest.h>

#include <mpi.h>

#include <filesystem>
#include <memory>

#include "trial_test_util.h"
#include "xpscale/trial/trial.h"

namespace xpscale {
namespace {

const auto* const kMpiSelf = ::testing::AddGlobalTestEnvironment(new test::MpiSelf);
using test::MpiSelf;
using test::NoChannel;

Trial make_trial(Params params, NoChannel& channel) {
  Trial::Info info;
  info.id = 7;
  info.params = std::move(params);
  info.checkpoint_dir = std::filesystem::temp_directory_path() / "xpscale-trial-param-test-none";
  return Trial(std::move(info), *MpiSelf::comm, channel);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const TrialError& e) {
    return e.what();
  }
  return "";
}

TEST(TrialParam, TypedGets) {
  NoChannel ch;
  auto t = make_trial({{"lr", 0.5}, {"width", 64}, {"opt", "adam"}, {"bn", true}, {"w", 32.0}}, ch);
  EXPECT_DOUBLE_EQ(t.param<double>("lr"), 0.5);
  EXPECT_DOUBLE_EQ(t.param<double>("width"), 64.0);  // an integer is a number
  EXPECT_EQ(t.param<int>("width"), 64);
  EXPECT_EQ(t.param<int>("w"), 32);  // a whole float is an integer
  EXPECT_EQ(t.param<std::string>("opt"), "adam");
  EXPECT_TRUE(t.param<bool>("bn"));
  EXPECT_TRUE(t.has_param("lr"));
  EXPECT_FALSE(t.has_param("momentum"));
}

TEST(TrialParam, WrongTypeNamesTrialParameterAndBothTypes) {
  NoChannel ch;
  auto t = make_trial({{"lr", "fast"}, {"frac", 0.5}, {"big", 1e12}}, ch);
  EXPECT_EQ(error_of([&] { t.param<double>("lr"); }),
            "trial 7: parameter 'lr' is a string (\"fast\"), expected a number");
  EXPECT_NE(error_of([&] { t.param<int>("frac"); }).find("expected an integer"), std::string::npos);
  EXPECT_NE(error_of([&] { t.param<std::int8_t>("big"); }).find("expected an integer"),
            std::string::npos);
}

TEST(TrialParam, MissingParameterSuggestsTheNearest) {
  NoChannel ch;
  auto t = make_trial({{"lr", 0.5}, {"optimizer.momentum", 0.9}}, ch);
  const auto msg = error_of([&] { t.param<double>("optimizer.momentun"); });
  EXPECT_NE(msg.find("no parameter 'optimizer.momentun'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'optimizer.momentum'"), std::string::npos) << msg;
}

TEST(CheckpointMarker, RoundTripsAndIsMinusOneWhenAbsent) {
  const auto dir = std::filesystem::temp_directory_path() / "xpscale-marker-test";
  std::filesystem::remove_all(dir);
  EXPECT_EQ(read_checkpoint_step(dir), -1);
  write_checkpoint_step(dir, 12);
  EXPECT_EQ(read_checkpoint_step(dir), 12);
  write_checkpoint_step(dir, 13);
  EXPECT_EQ(read_checkpoint_step(dir), 13);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace xpscale
