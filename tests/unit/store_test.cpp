// The store's contract (store.h), one suite over every engine: a new engine
// is added to kEngines below and is done when this suite passes for it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>

#include "pg_test_server.h"
#include "xpscale/store/postgres_store.h"
#include "xpscale/store/sqlite_store.h"
#include "xpscale/store/store.h"

namespace xpscale {
namespace {

namespace fs = std::filesystem;

// How a test opens a store of one engine. `dir` is the test's own empty
// directory; opening twice with the same dir opens the same store.
struct StoreEngine {
  std::string name;
  std::function<std::unique_ptr<Store>(const fs::path& dir, Store::Mode mode)> open;
};

// PostgreSQL: one throwaway server for the process (tests/support/pg-server),
// each test its own sweep, named after its directory, in one database, so
// that sweeps living side by side is tested too.
std::unique_ptr<Store> open_postgres(const fs::path& dir, Store::Mode mode) {
  auto& pg = test::shared_pg_server();
  ::setenv("PGPASSWORD", pg.password().c_str(), 1);
  return std::make_unique<PostgresStore>(pg.url(), dir.filename().string(), mode);
}

const StoreEngine kEngines[] = {
    {"sqlite",
     [](const fs::path& dir, Store::Mode mode) {
       return std::make_unique<SqliteStore>(store_path(dir), mode);
     }},
    {"postgres", open_postgres},
};

fs::path fresh_dir(const std::string& tag) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "-" + info->name();
  for (char& c : name)
    if (c == '/') c = '_';
  const fs::path dir =
      fs::temp_directory_path() /
      ("xpscale-" + tag + "-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
       "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

class StoreTest : public ::testing::TestWithParam<StoreEngine> {
 protected:
  void SetUp() override { dir_ = fresh_dir("store"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<Store> open(Store::Mode mode = Store::Mode::kReadWrite) const {
    return GetParam().open(dir_, mode);
  }
  fs::path dir_;
};

INSTANTIATE_TEST_SUITE_P(Engines, StoreTest, ::testing::ValuesIn(kEngines),
                         [](const auto& p) { return p.param.name; });

TEST(StoreDigest, Sha256MatchesTheKnownDigest) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_P(StoreTest, SweepRowRoundTrips) {
  const auto store = open();
  Store& s = *store;
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

TEST_P(StoreTest, AttemptsDriveTheTrialStatus) {
  const auto store = open();
  Store& s = *store;
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

TEST_P(StoreTest, BestValueFollowsTheGoal) {
  const auto store = open();
  Store& s = *store;
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

TEST_P(StoreTest, RunningAttemptsOfAKilledRunBecomeInterrupted) {
  {
    const auto store = open();
    Store& s = *store;
    s.put_queued_trial(0, {{"x", 1}});
    s.put_queued_trial(1, {{"x", 2}});
    s.start_attempt(0, 1, 1, 0, "0", "a", 1);
    s.start_attempt(1, 1, 1, 1, "1", "a", 1);
    s.finish_attempt(1, 1, TrialStatus::kCompleted, "", "", 2, true);
    // No end: as if the process was killed here.
  }
  const auto store = open();
  Store& s = *store;
  EXPECT_EQ(s.mark_interrupted(5), 1);
  EXPECT_EQ(s.trial(0)->status, TrialStatus::kQueued);
  EXPECT_EQ(s.attempts(0)[0].status, "interrupted");
  EXPECT_EQ(s.trial(1)->status, TrialStatus::kCompleted);
}

TEST_P(StoreTest, UncommittedWorkIsLostCommittedWorkSurvives) {
  {
    const auto store = open();
    Store& s = *store;
    s.begin();
    s.put_queued_trial(0, {{"x", 1}});
    s.commit();
    s.begin();
    s.put_queued_trial(1, {{"x", 2}});
    // The destructor commits an open transaction; a crash would not. Both
    // outcomes keep trial 0.
  }
  const auto store = open(Store::Mode::kReadOnly);
  Store& s = *store;
  EXPECT_TRUE(s.trial(0).has_value());
}

TEST_P(StoreTest, TrialsQueuedInATransactionAreReadBackAndRolledBackWithIt) {
  // PostgreSQL holds them back to write them in one statement: reads in
  // the transaction still see them, and a rollback takes them all away.
  const auto store = open();
  Store& s = *store;
  s.begin();
  for (std::uint64_t i = 0; i < 5; ++i) s.put_queued_trial(i, {{"x", i}});
  s.put_queued_trial(2, {{"x", 20}});  // twice in one transaction: the later params
  ASSERT_EQ(s.trials().size(), 5u);
  EXPECT_EQ(s.trial(2)->params["x"], 20);
  s.rollback();
  EXPECT_TRUE(s.trials().empty());
  s.begin();
  for (std::uint64_t i = 0; i < 3; ++i) s.put_queued_trial(i, {{"x", i}});
  s.put_queued_trial(1, {{"x", 10}});
  s.commit();
  const auto reader = open(Store::Mode::kReadOnly);
  const auto trials = reader->trials();
  ASSERT_EQ(trials.size(), 3u);
  EXPECT_EQ(trials[1].params["x"], 10);
  EXPECT_EQ(trials[2].status, TrialStatus::kQueued);
}

TEST_P(StoreTest, ExportWritesOneLinePerTrialAfterTheSweep) {
  const auto store = open();
  Store& s = *store;
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

TEST_P(StoreTest, RunsAreNumberedFromOne) {
  const auto store = open();
  EXPECT_EQ(store->begin_run(2, 2, 1, "a,a", false, 1), 1);
  store->end_run(1, "completed", {{"completed", 3}}, 2);
  EXPECT_EQ(store->begin_run(2, 1, 2, "a,b", true, 3), 2);
}

TEST_P(StoreTest, TrialsAreListedByIdWithTheirParams) {
  const auto store = open();
  store->put_queued_trial(7, {{"b", 2}, {"a", "x"}});
  store->put_queued_trial(2, {{"b", 1}, {"a", "y"}});
  const auto all = store->trials();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, 2u);
  EXPECT_EQ(all[1].id, 7u);
  EXPECT_EQ(all[1].params.dump(), R"({"b":2,"a":"x"})");
  EXPECT_EQ(all[1].status, TrialStatus::kQueued);
  EXPECT_EQ(all[1].attempts, 0);
  EXPECT_FALSE(store->trial(3).has_value());
}

TEST_P(StoreTest, PuttingAnExistingTrialRequeuesItWithNewParams) {
  const auto store = open();
  store->put_queued_trial(0, {{"x", 1}});
  store->start_attempt(0, 1, 1, 0, "0", "a", 1);
  store->add_metrics(0, 1, 0, 1, 0.5, {{"loss", 0.5}}, Goal::kMinimize);
  store->finish_attempt(0, 1, TrialStatus::kCompleted, "", "", 2, true);
  store->put_queued_trial(0, {{"x", 2}});  // --force with changed params
  const auto t = *store->trial(0);
  EXPECT_EQ(t.status, TrialStatus::kQueued);
  EXPECT_EQ(t.params.dump(), R"({"x":2})");
  EXPECT_FALSE(t.best_value.has_value());
  EXPECT_FALSE(t.last_step.has_value());
}

TEST_P(StoreTest, SetTrialParamsKeepsTheResultsSoFar) {
  const auto store = open();
  store->put_queued_trial(0, {{"lr", 0.1}});
  store->add_metrics(0, 1, 3, 1, 0.25, {{"loss", 0.25}}, Goal::kMinimize);
  store->set_trial_params(0, {{"lr", 0.2}});  // PBT's exploit
  const auto t = *store->trial(0);
  EXPECT_EQ(t.params.dump(), R"({"lr":0.2})");
  EXPECT_DOUBLE_EQ(*t.best_value, 0.25);
  EXPECT_EQ(*t.last_step, 3);
}

TEST_P(StoreTest, AlgorithmStateRoundTripsAndIsReplaced) {
  {
    const auto store = open();
    EXPECT_FALSE(store->state("searcher").has_value());
    store->put_state("searcher", {{"observed", {1, 2}}});
    store->put_state("searcher", {{"observed", {1, 2, 3}}});
    store->put_state("scheduler", nlohmann::json::array());
  }
  const auto store = open(Store::Mode::kReadOnly);
  EXPECT_EQ(store->state("searcher")->dump(), R"({"observed":[1,2,3]})");
  EXPECT_EQ(store->state("scheduler")->dump(), "[]");
}

TEST_P(StoreTest, APreemptedAttemptIsInterruptedAndItsTrialQueued) {
  const auto store = open();
  store->put_queued_trial(5, {{"x", 1}});
  store->start_attempt(5, 1, 1, 0, "0", "a", 1);
  store->interrupt_attempt(5, 1, "preempted", 2);
  EXPECT_EQ(store->trial(5)->status, TrialStatus::kQueued);
  const auto a = store->attempts(5);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, "interrupted");
  EXPECT_EQ(a[0].reason, "preempted");
  ASSERT_TRUE(a[0].finished_at.has_value());
  EXPECT_DOUBLE_EQ(*a[0].finished_at, 2);
}

TEST_P(StoreTest, MetricsComeBackInReportOrderWithTheirValues) {
  const auto store = open();
  store->put_queued_trial(0, {{"x", 1}});
  store->put_queued_trial(1, {{"x", 2}});
  store->add_metrics(1, 1, 0, 10, 3.0, {{"loss", 3.0}}, Goal::kMinimize);
  store->add_metrics(0, 1, 1, 11, std::nullopt, {{"acc", 0.5}}, Goal::kMinimize);
  store->add_metrics(0, 1, 0, 12, 2.0, {{"loss", 2.0}}, Goal::kMinimize);
  const auto all = store->metrics();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].trial, 0u);
  EXPECT_EQ(all[0].step, 0);
  EXPECT_EQ(all[1].step, 1);
  EXPECT_FALSE(all[1].value.has_value());
  EXPECT_EQ(all[1].values["acc"], 0.5);
  EXPECT_EQ(all[2].trial, 1u);
  EXPECT_DOUBLE_EQ(*all[2].value, 3.0);
  EXPECT_DOUBLE_EQ(all[2].time, 10);
  EXPECT_EQ(store->metrics(0).size(), 2u);
  // The lean read (the report's): the same rows, values left null.
  const auto lean = store->metrics(std::nullopt, false);
  ASSERT_EQ(lean.size(), 3u);
  EXPECT_EQ(lean[1].step, 1);
  EXPECT_FALSE(lean[1].value.has_value());
  EXPECT_TRUE(lean[1].values.is_null());
  EXPECT_DOUBLE_EQ(*lean[2].value, 3.0);
}

TEST_P(StoreTest, TransactionsNestAsOneAndCommitIsIdempotent) {
  const auto store = open();
  EXPECT_FALSE(store->in_transaction());
  store->begin();
  store->begin();
  EXPECT_TRUE(store->in_transaction());
  store->put_queued_trial(0, {{"x", 1}});
  store->commit();
  EXPECT_FALSE(store->in_transaction());
  store->commit();
  EXPECT_TRUE(store->trial(0).has_value());
}

TEST_P(StoreTest, AReadOnlyStoreRefusesWrites) {
  { open()->put_queued_trial(0, {{"x", 1}}); }
  const auto store = open(Store::Mode::kReadOnly);
  EXPECT_THROW(store->put_queued_trial(1, {{"x", 2}}), StoreError);
  EXPECT_FALSE(store->trial(1).has_value());
}

// SQLite's own: its file.

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fresh_dir("sqlite"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path db() const { return store_path(dir_); }
  fs::path dir_;
};

TEST_F(SqliteStoreTest, AFileThatIsNotAStoreIsAClearError) {
  std::ofstream(db()) << "not sqlite at all, just text that is long enough to have a header";
  try {
    SqliteStore s(db(), Store::Mode::kReadOnly);
    FAIL() << "opened a text file as a store";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find(db().string()), std::string::npos) << e.what();
  }
}

TEST_F(SqliteStoreTest, OpenStoreOpensTheFileWithSqlite) {
  {
    SqliteStore s(db());
    s.put_queued_trial(4, {{"x", 1}});
  }
  const auto store = open_store(db(), Store::Mode::kReadOnly);
  EXPECT_NE(dynamic_cast<SqliteStore*>(store.get()), nullptr);
  EXPECT_EQ(store->location(), db().string());
  EXPECT_TRUE(store->trial(4).has_value());
}

}  // namespace
}  // namespace xpscale
