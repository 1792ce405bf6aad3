// The PostgreSQL engine's own behaviour beyond the shared suite
// (store_test.cpp): opening, refusing what is not a store, versions,
// passwords kept out of messages, the sweep lock, and a server that goes
// away and comes back. On a real server (tests/support/pg-server).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "pg_test_server.h"
#include "xpscale/store/postgres_store.h"
#include "xpscale/store/retrying_store.h"

namespace xpscale {
namespace {

using Clock = std::chrono::steady_clock;

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("PGPASSWORD", pg().password().c_str(), 1);
    database_ = pg().create_database();
    url_ = pg().url_for_database(database_);
  }
  static test::PgTestServer& pg() { return test::shared_pg_server(); }
  std::string database_, url_;
};

TEST(PostgresUrl, PasswordsAreTakenOutAndTheRestKept) {
  EXPECT_EQ(url_without_password("postgresql://u:s3cret@h:5432/db?sslmode=require"),
            "postgresql://u@h:5432/db?sslmode=require");
  EXPECT_EQ(url_without_password("postgres://u@h/db"), "postgres://u@h/db");
  EXPECT_EQ(url_without_password("postgresql://h/db?password=s3cret"), "postgresql://h/db");
  EXPECT_EQ(url_without_password("postgresql://h/db?password=s3cret&sslmode=require"),
            "postgresql://h/db?sslmode=require");
  EXPECT_EQ(url_without_password("postgresql://h/db?sslmode=require&password=s3cret"),
            "postgresql://h/db?sslmode=require");
  EXPECT_EQ(url_without_password("postgresql://u:p%40ss@h/db"), "postgresql://u@h/db");
  EXPECT_TRUE(is_postgres_url("postgresql://h/db"));
  EXPECT_TRUE(is_postgres_url("postgres://h/db"));
  EXPECT_FALSE(is_postgres_url("sqlite"));
  EXPECT_FALSE(is_postgres_url("mysql://h/db"));
}

TEST_F(PostgresStoreTest, APasswordInTheUrlIsNeverShown) {
  ::unsetenv("PGPASSWORD");
  const std::string with = pg().url_with_password(database_);
  PostgresStore s(with, "sweep");
  EXPECT_EQ(s.location().find(pg().password()), std::string::npos) << s.location();
  EXPECT_NE(s.location().find("127.0.0.1"), std::string::npos);
  EXPECT_NE(s.location().find("sweep sweep"), std::string::npos);
}

TEST_F(PostgresStoreTest, AWrongPasswordIsAUserErrorThatShowsNoPassword) {
  ::setenv("PGPASSWORD", "wrong-password-123", 1);
  try {
    PostgresStore s(url_, "sweep");
    FAIL() << "opened with a wrong password";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUser);
    const std::string what = e.what();
    EXPECT_NE(what.find("password authentication failed"), std::string::npos) << what;
    EXPECT_NE(what.find("PGPASSWORD"), std::string::npos) << what;
    EXPECT_EQ(what.find("wrong-password-123"), std::string::npos) << what;
  }
  // Written in the URL, it stays out of the message too.
  try {
    PostgresStore s("postgresql://xpscale:wrong-password-456@127.0.0.1:" +
                        std::to_string(pg().port()) + "/" + database_,
                    "sweep");
    FAIL() << "opened with a wrong password";
  } catch (const StoreError& e) {
    EXPECT_EQ(std::string(e.what()).find("wrong-password-456"), std::string::npos) << e.what();
  }
}

TEST_F(PostgresStoreTest, AnUnreachableServerFailsWithinTheConnectTimeout) {
  // A closed port on loopback: refused at once.
  const auto start = Clock::now();
  try {
    PostgresStore s("postgresql://xpscale@127.0.0.1:1/xpscale", "sweep");
    FAIL() << "opened a store on a closed port";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUser);
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:1"), std::string::npos) << e.what();
  }
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  // An address that never answers: the URL's connect_timeout bounds the wait.
  const auto blackhole = Clock::now();
  EXPECT_THROW(PostgresStore("postgresql://xpscale@10.255.255.1:5432/x?connect_timeout=2", "s"),
               StoreError);
  EXPECT_LT(Clock::now() - blackhole, std::chrono::seconds(8));
}

TEST_F(PostgresStoreTest, ADatabaseThatIsNotAStoreIsRefusedAndLeftAlone) {
  // Read-only, an empty database holds no store.
  try {
    PostgresStore s(url_, "sweep", Store::Mode::kReadOnly);
    FAIL() << "an empty database opened as a store";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUser);
    EXPECT_NE(std::string(e.what()).find("holds no xpscale store"), std::string::npos) << e.what();
  }
  // Someone else's schema called xpscale: refused, not changed.
  pg().psql("CREATE SCHEMA xpscale AUTHORIZATION xpscale; CREATE TABLE xpscale.theirs(x int); "
            "ALTER TABLE xpscale.theirs OWNER TO xpscale; INSERT INTO xpscale.theirs VALUES (7)",
            database_);
  try {
    PostgresStore s(url_, "sweep");
    FAIL() << "a foreign schema opened as a store";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUser);
    EXPECT_NE(std::string(e.what()).find("not an xpscale store"), std::string::npos) << e.what();
  }
  EXPECT_EQ(pg().psql("SELECT x FROM xpscale.theirs", database_), "7");
  EXPECT_EQ(pg().psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'xpscale'", database_),
            "1");
}

TEST_F(PostgresStoreTest, AStoreOfANewerVersionIsRefusedNamingBoth) {
  { PostgresStore s(url_, "sweep"); }
  pg().psql("UPDATE xpscale.meta SET value = '99' WHERE key = 'schema_version'", database_);
  const std::string mine = std::to_string(PostgresStore::schema_version());
  for (auto mode : {Store::Mode::kReadWrite, Store::Mode::kReadOnly}) {
    try {
      PostgresStore s(url_, "sweep", mode);
      FAIL() << "a newer store opened";
    } catch (const StoreError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("99"), std::string::npos) << what;
      EXPECT_NE(what.find("version " + mine), std::string::npos) << what;
    }
  }
  EXPECT_EQ(pg().psql("SELECT value FROM xpscale.meta WHERE key = 'schema_version'", database_),
            "99");
}

TEST_F(PostgresStoreTest, TheSchemaIsMigratedFromNothingOnceUnderConcurrentOpens) {
  // Eight jobs starting at once on a new database: one creates the
  // schema, the others wait for it and use it.
  std::vector<std::future<std::string>> opens;
  for (int i = 0; i < 8; ++i)
    opens.push_back(std::async(std::launch::async, [this, i] {
      try {
        PostgresStore s(url_, "sweep" + std::to_string(i % 2));
        s.put_queued_trial(static_cast<std::uint64_t>(i), {{"i", i}});
        return std::string();
      } catch (const std::exception& e) {
        return std::string(e.what());
      }
    }));
  for (auto& f : opens) EXPECT_EQ(f.get(), "");
  EXPECT_EQ(pg().psql("SELECT value FROM xpscale.meta WHERE key = 'schema_version'", database_),
            std::to_string(PostgresStore::schema_version()));
  EXPECT_EQ(pg().psql("SELECT count(*) FROM xpscale.sweeps", database_), "2");
  EXPECT_EQ(pg().psql("SELECT count(*) FROM xpscale.trials", database_), "8");
  // Each sweep sees its own trials only.
  PostgresStore even(url_, "sweep0", Store::Mode::kReadOnly);
  const auto trials = even.trials();
  ASSERT_EQ(trials.size(), 4u);
  for (const auto& t : trials) EXPECT_EQ(t.id % 2, 0u);
}

// ---- Many jobs on one sweep (shared_sweep.h) ----

TEST_F(PostgresStoreTest, ClaimsNeverHandOneTrialToTwoJobs) {
  {
    PostgresStore s(url_, "sweep");
    s.begin();
    for (std::uint64_t i = 0; i < 200; ++i) s.put_queued_trial(i, {{"i", i}});
    s.commit();
  }
  // Four jobs claim at once until the queue is empty.
  std::vector<std::future<std::vector<std::pair<std::uint64_t, std::int64_t>>>> jobs;
  for (int j = 0; j < 4; ++j)
    jobs.push_back(std::async(std::launch::async, [this, j] {
      PostgresStore s(url_, "sweep");
      const auto run = s.begin_run(2, 2, 1, "h", false, 1);
      std::vector<std::pair<std::uint64_t, std::int64_t>> got;
      while (auto c = s.claim_trial(run, j, "0", "h", 2)) {
        EXPECT_EQ(c->attempt, 1);
        EXPECT_EQ(c->params["i"], c->id);
        got.emplace_back(c->id, run);
      }
      return got;
    }));
  std::map<std::uint64_t, std::int64_t> claimed;
  for (auto& j : jobs)
    for (auto [id, run] : j.get()) EXPECT_TRUE(claimed.emplace(id, run).second) << "trial " << id;
  EXPECT_EQ(claimed.size(), 200u);
  PostgresStore reader(url_, "sweep", Store::Mode::kReadOnly);
  for (const auto& a : reader.attempts()) {
    EXPECT_EQ(a.status, "running");
    EXPECT_EQ(a.run, claimed.at(a.trial));
  }
}

TEST_F(PostgresStoreTest, RetriedTrialsAreClaimedFirstAndCountTheirFailures) {
  PostgresStore s(url_, "sweep");
  const auto run = s.begin_run(1, 1, 1, "h", false, 1);
  s.put_queued_trial(0, {{"x", 0}});
  s.put_queued_trial(1, {{"x", 1}});
  auto c = s.claim_trial(run, 0, "0", "h", 2);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, 0u);
  s.finish_attempt(0, 1, TrialStatus::kFailed, "boom", "", 3, /*final=*/false);
  c = s.claim_trial(run, 0, "0", "h", 4);  // the retry, before trial 1
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, 0u);
  EXPECT_EQ(c->attempt, 2);
  EXPECT_EQ(c->failed, 1);
  EXPECT_EQ(c->crashed, 0);
  EXPECT_EQ(s.claim_trial(run, 0, "0", "h", 5)->id, 1u);
  EXPECT_FALSE(s.claim_trial(run, 0, "0", "h", 6).has_value());
}

TEST_F(PostgresStoreTest, AClaimThisJobDoesNotHoldGoesBackToTheQueue) {
  // A claim replayed after its reply was lost: the first claimed trial is
  // the run's and running, but no group runs it.
  PostgresStore s(url_, "sweep");
  const auto run = s.begin_run(1, 1, 1, "h", false, 1);
  s.put_queued_trial(0, {{"x", 0}});
  s.put_queued_trial(1, {{"x", 1}});
  const auto lost = s.claim_trial(run, 0, "0", "h", 2);
  const auto held = s.claim_trial(run, 0, "0", "h", 2);
  ASSERT_TRUE(lost && held);
  const std::vector<std::pair<std::uint64_t, int>> holding = {{held->id, held->attempt}};
  EXPECT_EQ(s.release_untracked(run, holding, 3), 1);
  EXPECT_EQ(s.release_untracked(run, holding, 4), 0);  // once
  const auto t = s.trial(lost->id);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status, TrialStatus::kQueued);
  EXPECT_EQ(s.trial(held->id)->status, TrialStatus::kRunning);
  const auto again = s.claim_trial(run, 0, "0", "h", 5);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, lost->id);
  EXPECT_EQ(again->attempt, 2);
  EXPECT_EQ(again->crashed, 0);  // not the trial's doing: not held against it
}

TEST_F(PostgresStoreTest, TheTrialsOfAJobThatEndedGoBackToTheQueue) {
  PostgresStore survivor(url_, "sweep");
  auto killed = std::make_unique<PostgresStore>(url_, "sweep");
  killed->put_queued_trial(0, {{"x", 0}});
  const auto run = killed->begin_run(1, 1, 1, "h", false, 1);
  const auto mine = survivor.begin_run(1, 1, 1, "h", false, 1);
  ASSERT_TRUE(killed->claim_trial(run, 0, "0", "h", 2));
  EXPECT_EQ(survivor.reap(mine, 3), 0);  // alive: its trial stays its own
  EXPECT_EQ(survivor.live_runs().size(), 2u);
  killed.reset();  // the job dies: the server drops its connection and lock
  int reaped = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while ((reaped = survivor.reap(mine, 4)) == 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(reaped, 1);
  const auto a = survivor.attempts(0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, "interrupted");
  EXPECT_EQ(a[0].reason, kRunEndedReason);
  const auto c = survivor.claim_trial(mine, 0, "0", "h", 5);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->attempt, 2);
  EXPECT_EQ(c->crashed, 1);  // counted against its retries
  EXPECT_EQ(survivor.live_runs().size(), 1u);
}

TEST_F(PostgresStoreTest, AJobWhoseLeaseExpiredIsFencedOut) {
  // A job that stopped renewing its lease (stopped, cut off, or its clock
  // far off: leases run on the server's clock) is still connected, but its
  // trial goes to another job, and what it writes later is not merged.
  PostgresStore stale(url_, "sweep");
  stale.set_lease(1);
  stale.put_queued_trial(0, {{"x", 0}});
  const auto old_run = stale.begin_run(1, 1, 1, "h", false, 1);
  ASSERT_TRUE(stale.claim_trial(old_run, 0, "0", "h", 2));
  stale.add_metrics(0, 1, 0, 2, 5.0, {{"loss", 5.0}}, Goal::kMinimize);
  PostgresStore other(url_, "sweep");
  const auto run = other.begin_run(1, 1, 1, "h", false, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(other.reap(run, 3), 1);
  const auto c = other.claim_trial(run, 0, "0", "h", 4);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->attempt, 2);
  // The stale job's writes about its attempt change nothing.
  EXPECT_FALSE(stale.owns_attempt(0, 1, old_run));
  EXPECT_FALSE(stale.finish_owned(old_run, {.trial = 0,
                                            .attempt = 1,
                                            .status = TrialStatus::kCompleted,
                                            .at = 6})
                   .applied);
  stale.add_metrics(0, 1, 1, 5, 0.001, {{"loss", 0.001}}, Goal::kMinimize);
  stale.finish_attempt(0, 1, TrialStatus::kCompleted, "", "", 6, true);
  stale.interrupt_attempt(0, 1, "preempted", 6);
  EXPECT_FALSE(stale.heartbeat(old_run).alive);
  const auto t = *other.trial(0);
  EXPECT_EQ(t.status, TrialStatus::kRunning);
  EXPECT_EQ(t.attempts, 2);
  EXPECT_DOUBLE_EQ(*t.best_value, 5.0);  // not the stale 0.001
  EXPECT_EQ(other.metrics(0).size(), 1u);
  EXPECT_EQ(other.attempts(0)[0].status, "interrupted");
  EXPECT_TRUE(other.owns_attempt(0, 2, run));
  other.finish_attempt(0, 2, TrialStatus::kCompleted, "", "", 7, true);
  EXPECT_EQ(other.trial(0)->status, TrialStatus::kCompleted);
  EXPECT_TRUE(other.heartbeat(run).alive);
}

TEST_F(PostgresStoreTest, AFencedFinishSaysWhetherItAppliedAndClaimsTheNextTrial) {
  PostgresStore s(url_, "sweep");
  const auto run = s.begin_run(1, 1, 1, "h", false, 1);
  for (std::uint64_t i = 0; i < 3; ++i) s.put_queued_trial(i, {{"x", i}});
  ASSERT_EQ(s.claim_trial(run, 0, "0", "h", 2)->id, 0u);
  const AttemptEnd done0{.trial = 0,
                         .attempt = 1,
                         .status = TrialStatus::kCompleted,
                         .stderr_tail = "tail",
                         .at = 3};
  auto f = s.finish_owned(run, done0, ClaimFor{.group = 1, .ranks = "1", .hosts = "h1", .now = 3});
  EXPECT_TRUE(f.applied);
  ASSERT_TRUE(f.next);
  EXPECT_EQ(f.next->id, 1u);
  EXPECT_EQ(f.next->attempt, 1);
  EXPECT_EQ(f.next->params["x"], 1);
  EXPECT_EQ(s.trial(0)->status, TrialStatus::kCompleted);
  EXPECT_EQ(s.trial(0)->stderr_tail, "tail");
  EXPECT_EQ(s.attempts(0)[0].status, "completed");
  EXPECT_EQ(s.trial(1)->status, TrialStatus::kRunning);
  EXPECT_EQ(s.attempts(1)[0].run, run);
  EXPECT_EQ(s.attempts(1)[0].group, 1);
  // The same call again (its commit lost in flight): applied, nothing new.
  EXPECT_TRUE(s.finish_owned(run, done0).applied);
  EXPECT_DOUBLE_EQ(*s.trial(0)->finished_at, 3);
  // Another end of the same attempt is not this run's to write any more.
  EXPECT_FALSE(s.finish_owned(run, {.trial = 0, .attempt = 1, .status = TrialStatus::kFailed,
                                    .at = 4})
                   .applied);
  EXPECT_EQ(s.trial(0)->status, TrialStatus::kCompleted);
  // A failure with retries left queues its trial again; the claim made with
  // it takes the next one, never the trial it has just ended.
  f = s.finish_owned(run,
                     {.trial = 1, .attempt = 1, .status = TrialStatus::kFailed, .reason = "boom",
                      .at = 5, .final = false},
                     ClaimFor{.group = 1, .ranks = "1", .hosts = "h1", .now = 5});
  EXPECT_TRUE(f.applied);
  ASSERT_TRUE(f.next);
  EXPECT_EQ(f.next->id, 2u);
  EXPECT_EQ(s.trial(1)->status, TrialStatus::kQueued);
  const auto retry = s.claim_trial(run, 0, "0", "h", 6);
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->id, 1u);
  EXPECT_EQ(retry->attempt, 2);
  EXPECT_EQ(retry->failed, 1);
  // Nothing left to claim.
  f = s.finish_owned(run, {.trial = 2, .attempt = 1, .status = TrialStatus::kStopped, .at = 7},
                     ClaimFor{.group = 1, .ranks = "1", .hosts = "h1", .now = 7});
  EXPECT_TRUE(f.applied);
  EXPECT_FALSE(f.next);
  EXPECT_EQ(s.trial(2)->status, TrialStatus::kStopped);
}

TEST_F(PostgresStoreTest, FencedFinishesAndClaimsOfManyJobsNeverShareATrial) {
  {
    PostgresStore s(url_, "sweep");
    s.begin();
    for (std::uint64_t i = 0; i < 200; ++i) s.put_queued_trial(i, {{"i", i}});
    s.commit();
  }
  // Four jobs, each finishing its trial and claiming the next in one
  // statement, until the queue is empty.
  std::vector<std::future<std::vector<std::uint64_t>>> jobs;
  for (int j = 0; j < 4; ++j)
    jobs.push_back(std::async(std::launch::async, [this, j] {
      PostgresStore s(url_, "sweep");
      const auto run = s.begin_run(2, 2, 1, "h", false, 1);
      std::vector<std::uint64_t> got;
      auto c = s.claim_trial(run, j, "0", "h", 2);
      while (c) {
        got.push_back(c->id);
        const auto f = s.finish_owned(
            run, {.trial = c->id, .attempt = c->attempt, .status = TrialStatus::kCompleted, .at = 3},
            ClaimFor{.group = j, .ranks = "0", .hosts = "h", .now = 3});
        EXPECT_TRUE(f.applied);
        c = f.next;
      }
      return got;
    }));
  std::map<std::uint64_t, int> claimed;
  for (auto& j : jobs)
    for (auto id : j.get()) ++claimed[id];
  EXPECT_EQ(claimed.size(), 200u);
  for (auto [id, n] : claimed) EXPECT_EQ(n, 1) << "trial " << id;
  PostgresStore reader(url_, "sweep", Store::Mode::kReadOnly);
  for (const auto& t : reader.trials()) EXPECT_EQ(t.status, TrialStatus::kCompleted);
  EXPECT_EQ(reader.attempts().size(), 200u);
}

TEST_F(PostgresStoreTest, LockSweepSerializesDecisionsAcrossJobs) {
  PostgresStore a(url_, "sweep"), b(url_, "sweep");
  a.begin();
  a.lock_sweep();
  const auto start = Clock::now();
  auto waited = std::async(std::launch::async, [&b, start] {
    b.begin();
    b.lock_sweep();  // waits for a's commit
    const auto w = Clock::now() - start;
    b.commit();
    return w;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  a.put_state("scheduler", {{"n", 1}});
  a.commit();
  EXPECT_GE(waited.get(), std::chrono::milliseconds(450));
}

TEST_F(PostgresStoreTest, AStoreOfTheFirstVersionIsUpgradedInPlace) {
  // Version 1, written by hand as the first release's migration wrote it.
  pg().psql(PostgresStore::migration(0) +
                "UPDATE xpscale.meta SET value = '1' WHERE key = 'schema_version';"
                "INSERT INTO xpscale.sweeps(name, config_hash) VALUES ('old', 'h');"
                "INSERT INTO xpscale.trials(sweep, id, params, status) "
                "SELECT id, 0, '{\"x\":1}', 'completed' FROM xpscale.sweeps;"
                "ALTER SCHEMA xpscale OWNER TO xpscale;",
            database_);
  for (const char* t : {"meta", "sweeps", "runs", "trials", "attempts", "metrics",
                        "algorithm_state"})
    pg().psql(std::string("ALTER TABLE xpscale.") + t + " OWNER TO xpscale", database_);
  pg().psql("ALTER SEQUENCE xpscale.sweeps_id_seq OWNER TO xpscale; "
            "ALTER SEQUENCE xpscale.metrics_seq_seq OWNER TO xpscale",
            database_);
  ASSERT_GE(PostgresStore::schema_version(), 2);
  PostgresStore s(url_, "old");
  EXPECT_EQ(pg().psql("SELECT value FROM xpscale.meta WHERE key = 'schema_version'", database_),
            std::to_string(PostgresStore::schema_version()));
  ASSERT_TRUE(s.trial(0).has_value());
  EXPECT_EQ(s.trial(0)->status, TrialStatus::kCompleted);
  const auto run = s.begin_run(1, 1, 1, "h", true, 1);  // the new columns are there
  EXPECT_EQ(run, 1);
  EXPECT_TRUE(s.heartbeat(run).alive);
}

TEST_F(PostgresStoreTest, TextThatIsNotUtf8IsKeptWithReplacementCharacters) {
  PostgresStore s(url_, "sweep");
  s.put_queued_trial(0, {{"x", 1}});
  s.start_attempt(0, 1, 1, 0, "0", "a", 1);
  constexpr char kTail[] = "bad \xff\xfe bytes and a NUL \0 here";
  const std::string tail(kTail, sizeof kTail - 1);
  s.finish_attempt(0, 1, TrialStatus::kFailed, "exit 1", tail, 2, true);
  const auto t = *s.trial(0);
  EXPECT_EQ(t.stderr_tail, "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes and a NUL \xEF\xBF\xBD here");
  // NaN is no value (as in SQLite), so never a best.
  s.add_metrics(0, 1, 0, 1, std::numeric_limits<double>::quiet_NaN(), {{"loss", nullptr}},
                Goal::kMaximize);
  s.add_metrics(0, 1, 1, 2, 0.5, {{"loss", 0.5}}, Goal::kMaximize);
  EXPECT_DOUBLE_EQ(*s.trial(0)->best_value, 0.5);
  EXPECT_FALSE(s.metrics(0)[0].value.has_value());
}

// These stop their server: each has one of its own, so that the tests
// running beside them on the shared one go on.
class PostgresOutageTest : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("PGPASSWORD", pg_.password().c_str(), 1); }
  test::PgTestServer pg_;
};

TEST_F(PostgresOutageTest, AServerThatGoesAwayIsWaitedOutAndNothingIsLostOrDoubled) {
  RetryingStore s(std::make_unique<PostgresStore>(pg_.url(), "sweep"), std::chrono::seconds(60));
  s.put_queued_trial(0, {{"x", 1}});
  s.begin();
  s.add_metrics(0, 1, 0, 1, 1.0, {{"loss", 1.0}}, Goal::kMinimize);
  // The server stops mid-transaction and is back 3 s later.
  pg_.pause();
  auto back = std::async(std::launch::async, [this] {
    std::this_thread::sleep_for(std::chrono::seconds(3));
    pg_.resume();
  });
  // The direct call fails transient; the retrying store waits it out.
  s.add_metrics(0, 1, 1, 2, 0.5, {{"loss", 0.5}}, Goal::kMinimize);
  s.commit();
  back.get();
  const auto rows = s.metrics(0);
  ASSERT_EQ(rows.size(), 2u);  // the replayed transaction, exactly once
  EXPECT_EQ(rows[0].step, 0);
  EXPECT_EQ(rows[1].step, 1);
  EXPECT_DOUBLE_EQ(*s.trial(0)->best_value, 0.5);
}

TEST_F(PostgresOutageTest, ALostConnectionIsATransientErrorAndTheNextCallReconnects) {
  PostgresStore s(pg_.url(), "sweep");
  s.put_queued_trial(0, {{"x", 1}});
  pg_.pause();
  try {
    (void)s.trials();
    FAIL() << "read a stopped server";
  } catch (const StoreError& e) {
    EXPECT_TRUE(e.transient()) << e.what();
  }
  pg_.resume();
  ASSERT_EQ(s.trials().size(), 1u);
}

}  // namespace
}  // namespace xpscale
