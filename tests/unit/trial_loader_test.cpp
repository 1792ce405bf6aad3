// Trial::loader: a split of the config's data section, its state saved by
// checkpoint_saved() and picked up by the next attempt.
#include <mpi.h>

#include <gtest/gtest.h>

#include "sharding_test_util.h"
#include "trial_test_util.h"
#include "xpscale/trial/trial.h"

namespace xpscale {
namespace {

const auto* const kMpiSelf = ::testing::AddGlobalTestEnvironment(new test::MpiSelf);
using test::MpiSelf;
using test::NoChannel;

std::vector<std::uint64_t> take(ShardedLoader& loader, std::size_t n) {
  std::vector<std::uint64_t> out;
  for (std::size_t i = 0; i < n; ++i) {
    auto s = loader.next();
    if (!s) break;
    out.push_back(test::sample_number(*s));
  }
  return out;
}

TEST(TrialLoader, ANewAttemptContinuesFromTheCheckpointsLoaderState) {
  test::TempDir dir;
  Trial::Info info;
  info.id = 3;
  info.checkpoint_dir = dir.path() / "checkpoint";
  DatasetSpec spec;
  spec.manifest = test::make_dataset(dir.path(), 103, 5);
  spec.shuffle_buffer_bytes = 8192;
  spec.seed = 4;
  info.data["train"] = spec;
  NoChannel channel;

  std::vector<std::uint64_t> expected;
  {
    Trial first(info, *MpiSelf::comm, channel);
    ShardedLoader& loader = first.loader("train");
    EXPECT_EQ(&loader, &first.loader("train"));  // one per split
    take(loader, 40);
    first.checkpoint_saved(3);
    expected = take(loader, 30);  // what an uninterrupted run reads next
    take(loader, 10);
    first.checkpoint_saved(4);  // a later checkpoint must not leak into step 3
  }
  write_checkpoint_step(info.checkpoint_dir, 3);  // as if step 4's marker never landed
  Trial second(info, *MpiSelf::comm, channel);
  ASSERT_EQ(second.resume_step(), 3);
  EXPECT_EQ(take(second.loader("train"), 30), expected);
  EXPECT_THROW(second.loader("val"), TrialError);
}

// Remembers what reached the sweep.
class RecordingChannel : public detail::TrialChannel {
 public:
  Decision report(std::int64_t, const nlohmann::json& m, std::string&) override {
    last = m;
    return Decision::kContinue;
  }
  Decision report_as_leader(std::int64_t, const nlohmann::json& m, std::string&) override {
    last = m;
    return Decision::kContinue;
  }
  nlohmann::json last;
};

TEST(TrialLoader, ReportsCarryTheLoadersFiguresForTheReportsTimeline) {
  test::TempDir dir;
  Trial::Info info;
  info.id = 1;
  info.checkpoint_dir = dir.path() / "checkpoint";
  DatasetSpec spec;
  spec.manifest = test::make_dataset(dir.path(), 50, 5);
  info.data["train"] = spec;
  RecordingChannel channel;
  Trial trial(info, *MpiSelf::comm, channel);
  trial.report(0, {{"loss", 1.0}});
  EXPECT_FALSE(channel.last.contains(kLoaderStallMetric)) << "no loader, no figures";
  take(trial.loader("train"), 20);
  trial.report(1, {{"loss", 0.5}});
  EXPECT_EQ(channel.last["loss"], 0.5);
  ASSERT_TRUE(channel.last[kLoaderStallMetric].is_number());
  EXPECT_GE(channel.last[kLoaderStallMetric].get<double>(), 0.0);
  EXPECT_LE(channel.last[kLoaderStallMetric].get<double>(), 1.0);
  EXPECT_GT(channel.last[kLoaderRateMetric].get<double>(), 0.0);
  // The trial's own value under the same name wins.
  trial.report_as_leader(2, {{"loss", 0.4}, {kLoaderRateMetric, 7}});
  EXPECT_EQ(channel.last[kLoaderRateMetric], 7);
}

}  // namespace
}  // namespace xpscale
