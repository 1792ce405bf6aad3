#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "xpscale/runtime/store.h"

namespace xpscale {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("xpscale-store-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path db() const { return store_path(dir_); }
  fs::path dir_;
};

TEST_F(StoreTest, Sha256MatchesTheKnownDigest) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(StoreTest, SweepRowRoundTrips) {
  Store s(db());
  EXPECT_FALSE(s.sweep().has_value());
  SweepRow r;
  r.name = "n";
  r.config_path = "c.yaml";
  r.config_text = "method: grid\n";
  r.config_hash = sha256_hex(r.config_text);
  r.metric = "acc";
  r.goal = Goal::kMaximize;
  r.planned = 7;
  r.created_at = 1.5;
  s.write_sweep(r);
  auto back = s.sweep();
  ASSERT_TRUE(back);
  EXPECT_EQ(back->config_hash, r.config_hash);
  EXPECT_EQ(back->goal, Goal::kMaximize);
  EXPECT_EQ(back->planned, 7u);
}

TEST_F(StoreTest, AttemptsDriveTheTrialStatus) {
  Store s(db());
  const auto run = s.begin_run(4, 2, 2, "a,a,a,a", false, 10);
  s.put_queued_trial(3, nlohmann::ordered_json{{"lr", 0.1}, {"opt", "adam"}});
  s.start_attempt(3, 1, run, 1, "2,3", "a,a", 11);
  EXPECT_EQ(s.trial(3)->status, TrialStatus::kRunning);
  s.finish_attempt(3, 1, TrialStatus::kFailed, "boom", "tail", 12, /*final=*/false);
  EXPECT_EQ(s.trial(3)->status, TrialStatus::kQueued);  // a retry
  s.start_attempt(3, 2, run, 0, "0,1", "a,a", 13);
  s.finish_attempt(3, 2, TrialStatus::kCompleted, "", "", 14, true);
  const auto t = *s.trial(3);
  EXPECT_EQ(t.status, TrialStatus::kCompleted);
  EXPECT_EQ(t.attempts, 2);
  EXPECT_EQ(t.group, 0);
  EXPECT_EQ(t.params.dump(), R"({"lr":0.1,"opt":"adam"})");  // order kept
  const auto a = s.attempts(3);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].status, "failed");
  EXPECT_EQ(a[0].stderr_tail, "tail");
  EXPECT_EQ(a[1].status, "completed");
}

TEST_F(StoreTest, BestValueFollowsTheGoal) {
  Store s(db());
  s.put_queued_trial(0, {{"x", 1}});
  for (auto [step, v] : {std::pair{0, 0.5}, {1, 0.9}, {2, 0.7}})
    s.add_metrics(0, 1, step, 1.0 * step, v, {{"acc", v}}, Goal::kMaximize);
  s.add_metrics(0, 1, 3, 3.0, std::nullopt, {{"other", 1}}, Goal::kMaximize);
  auto t = *s.trial(0);
  EXPECT_DOUBLE_EQ(*t.best_value, 0.9);
  EXPECT_EQ(*t.best_step, 1);
  EXPECT_EQ(*t.last_step, 3);
  EXPECT_EQ(s.metrics(0).size(), 4u);
}

TEST_F(StoreTest, RunningAttemptsOfAKilledRunBecomeInterrupted) {
  {
    Store s(db());
    s.put_queued_trial(0, {{"x", 1}});
    s.put_queued_trial(1, {{"x", 2}});
    s.start_attempt(0, 1, 1, 0, "0", "a", 1);
    s.start_attempt(1, 1, 1, 1, "1", "a", 1);
    s.finish_attempt(1, 1, TrialStatus::kCompleted, "", "", 2, true);
    // No end: as if the process was killed here.
  }
  Store s(db());
  EXPECT_EQ(s.mark_interrupted(5), 1);
  EXPECT_EQ(s.trial(0)->status, TrialStatus::kQueued);
  EXPECT_EQ(s.attempts(0)[0].status, "interrupted");
  EXPECT_EQ(s.trial(1)->status, TrialStatus::kCompleted);
}

TEST_F(StoreTest, UncommittedWorkIsLostCommittedWorkSurvives) {
  {
    Store s(db());
    s.begin();
    s.put_queued_trial(0, {{"x", 1}});
    s.commit();
    s.begin();
    s.put_queued_trial(1, {{"x", 2}});
    // The destructor commits an open transaction; a crash would not. Both
    // outcomes keep trial 0.
  }
  Store s(db(), Store::Mode::kReadOnly);
  EXPECT_TRUE(s.trial(0).has_value());
}

TEST_F(StoreTest, ExportWritesOneLinePerTrialAfterTheSweep) {
  Store s(db());
  SweepRow r;
  r.config_text = "x";
  r.config_hash = sha256_hex("x");
  s.write_sweep(r);
  s.put_queued_trial(0, {{"x", 1}});
  s.put_queued_trial(1, {{"x", 2}});
  s.add_metrics(1, 1, 0, 0, 1.0, {{"loss", 1.0}}, Goal::kMinimize);
  std::ostringstream out;
  s.export_jsonl(out, true);
  std::istringstream in(out.str());
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["kind"], "sweep");
  EXPECT_EQ(lines[2]["id"], 1);
  EXPECT_EQ(lines[2]["metrics"].size(), 1u);
}

TEST_F(StoreTest, AFileThatIsNotAStoreIsAClearError) {
  std::ofstream(db()) << "not sqlite at all, just text that is long enough to have a header";
  try {
    Store s(db(), Store::Mode::kReadOnly);
    FAIL() << "opened a text file as a store";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find(db().string()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace xpscale
