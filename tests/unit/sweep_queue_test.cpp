// The queue of sweeps (sweep_queue.h) on a real PostgreSQL server
// (tests/support/pg-server), each test in a database of its own: claim
// order, concurrent claims, the resources filter, paused queues, leases and
// their takeover, cancel in every state, one active entry per sweep, list
// and its trial counts, and passwords kept out of what it shows.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <future>
#include <latch>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pg_test_server.h"
#include "xpscale/store/store.h"
#include "xpscale/store/sweep_queue.h"

namespace xpscale {
namespace {

using Beat = SweepQueue::Beat;

std::vector<std::string> names_of(const std::vector<QueueEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.sweep);
  return out;
}

class SweepQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("PGPASSWORD", pg().password().c_str(), 1);
    database_ = pg().create_database();
    url_ = pg().url_for_database(database_);
    q_ = std::make_unique<SweepQueue>(url_);
  }
  static test::PgTestServer& pg() { return test::shared_pg_server(); }
  std::string sql(const std::string& s) const { return pg().psql(s, database_); }

  static NewQueueEntry entry(const std::string& sweep, int priority = 0,
                             const std::string& queue = "default", std::int64_t ranks = 1,
                             std::int64_t gpus_per_rank = 0) {
    NewQueueEntry e;
    e.queue = queue;
    e.sweep = sweep;
    e.config_path = "/cfg/" + sweep + ".yaml";
    e.config_text = "name: " + sweep + "\n";
    e.config_hash = "hash-" + sweep;
    e.out_dir = "/out/" + sweep;
    e.cwd = "/work";
    e.ranks_per_trial = ranks;
    e.gpus_per_rank = gpus_per_rank;
    e.priority = priority;
    e.enqueued_by = "tester@host";
    return e;
  }
  static AgentOffer offer(const std::string& agent, std::vector<std::string> queues = {"default"},
                          std::int64_t ranks = 1, std::int64_t gpus = 0, double lease_s = 60) {
    AgentOffer o;
    o.queues = std::move(queues);
    o.ranks = ranks;
    o.gpus = gpus;
    o.agent = agent;
    o.lease_s = lease_s;
    return o;
  }
  // Claims until nothing is left; the sweeps in claim order.
  std::vector<std::string> drain(const AgentOffer& o) {
    std::vector<std::string> got;
    while (auto e = q_->claim(o)) got.push_back(e->sweep);
    return got;
  }
  // Makes entry `id`'s lease look expired: its last heartbeat long ago.
  void expire(std::int64_t id) {
    sql("UPDATE xpscale.queue SET heartbeat_at = heartbeat_at - 3600 WHERE id = " +
        std::to_string(id));
  }
  // The StoreError a call throws (fails the test when it throws none).
  template <class F>
  static StoreError error_of(F&& f) {
    try {
      f();
    } catch (const StoreError& e) {
      return e;
    }
    ADD_FAILURE() << "no StoreError";
    return StoreError("none");
  }

  std::string database_, url_;
  std::unique_ptr<SweepQueue> q_;
};

TEST_F(SweepQueueTest, ClaimsTakeTheHighestPriorityThenTheOldest) {
  const auto a = q_->enqueue(entry("a", 0));
  q_->enqueue(entry("b", 5));
  q_->enqueue(entry("c", 5));
  q_->enqueue(entry("d", -1));
  const auto e = q_->enqueue(entry("e", 0));
  EXPECT_EQ(a.status, "queued");
  EXPECT_GT(a.id, 0);
  EXPECT_EQ(q_->position(e.id), 3);  // b, c, a
  EXPECT_EQ(q_->position(a.id), 2);  // b, c
  EXPECT_EQ(drain(offer("agent 1")), (std::vector<std::string>{"b", "c", "a", "e", "d"}));
  for (const auto& name : {"a", "b", "c", "d", "e"}) {
    const auto got = q_->find(name);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, "running");
    EXPECT_EQ(got->agent, "agent 1");
    EXPECT_EQ(got->runs, 1);
    EXPECT_TRUE(got->started_at && got->heartbeat_at);
  }
}

TEST_F(SweepQueueTest, FourAgentsClaimingFiftyEntriesTakeEachExactlyOnce) {
  constexpr int kEntries = 50, kAgents = 4;
  for (int i = 0; i < kEntries; ++i) q_->enqueue(entry("s" + std::to_string(i), i % 3));
  std::latch start(kAgents);
  std::vector<std::future<std::vector<std::int64_t>>> agents;
  for (int a = 0; a < kAgents; ++a)
    agents.push_back(std::async(std::launch::async, [this, a, &start] {
      SweepQueue mine(url_);
      const auto o = offer("agent " + std::to_string(a));
      std::vector<std::int64_t> got;
      start.arrive_and_wait();
      while (auto e = mine.claim(o)) {
        EXPECT_EQ(e->agent, o.agent);
        got.push_back(e->id);
      }
      return got;
    }));
  std::map<std::int64_t, int> taken;  // id -> agent
  for (int a = 0; a < kAgents; ++a)
    for (auto id : agents[a].get()) EXPECT_TRUE(taken.emplace(id, a).second) << "entry " << id;
  EXPECT_EQ(taken.size(), static_cast<std::size_t>(kEntries));
  EXPECT_EQ(sql("SELECT count(*) FROM xpscale.queue WHERE status = 'running' AND runs = 1"),
            std::to_string(kEntries));
  for (const auto& [id, a] : taken)
    EXPECT_EQ(sql("SELECT agent FROM xpscale.queue WHERE id = " + std::to_string(id)),
              "agent " + std::to_string(a));
}

TEST_F(SweepQueueTest, AnAgentTakesOnlyEntriesWhoseResourcesItHas) {
  q_->enqueue(entry("four-ranks", 9, "default", 4));
  q_->enqueue(entry("two-gpus", 8, "default", 2, 1));  // 2 ranks x 1 GPU
  q_->enqueue(entry("small", 0));
  // 2 ranks, no GPU: only the small one, though it comes last.
  EXPECT_EQ(drain(offer("cpu", {"default"}, 2, 0)), std::vector<std::string>{"small"});
  // One GPU is not enough for 2 ranks x 1 GPU; 3 ranks not for 4 per trial.
  EXPECT_EQ(drain(offer("one gpu", {"default"}, 3, 1)), std::vector<std::string>{});
  EXPECT_EQ(drain(offer("two gpus", {"default"}, 2, 2)), std::vector<std::string>{"two-gpus"});
  EXPECT_EQ(drain(offer("big", {"default"}, 4, 0)), std::vector<std::string>{"four-ranks"});
}

TEST_F(SweepQueueTest, APausedQueueIsSkippedUntilResumed) {
  q_->enqueue(entry("urgent", 10, "a"));
  q_->enqueue(entry("later", 0, "b"));
  q_->set_paused("a", true, "tester");
  EXPECT_EQ(q_->queues(), (std::vector<std::pair<std::string, bool>>{{"a", true}, {"b", false}}));
  const auto listed = q_->list({});
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].sweep, "urgent");
  EXPECT_TRUE(listed[0].paused);
  EXPECT_FALSE(listed[1].paused);
  const auto o = offer("agent", {"a", "b"});
  EXPECT_EQ(drain(o), std::vector<std::string>{"later"});
  q_->set_paused("a", false, "tester");
  EXPECT_EQ(q_->queues(), (std::vector<std::pair<std::string, bool>>{{"a", false}, {"b", false}}));
  EXPECT_EQ(drain(o), std::vector<std::string>{"urgent"});
  // Pausing a queue that has no entries yet works, and keeps it paused.
  q_->set_paused("empty", true, "tester");
  q_->enqueue(entry("new", 0, "empty"));
  EXPECT_EQ(drain(offer("agent", {"empty"})), std::vector<std::string>{});
}

TEST_F(SweepQueueTest, HeartbeatSaysHeldCancelOrLost) {
  const auto id = q_->enqueue(entry("s")).id;
  const auto e = q_->claim(offer("agent 1"));
  ASSERT_TRUE(e);
  sql("UPDATE xpscale.queue SET heartbeat_at = heartbeat_at - 30");
  EXPECT_EQ(q_->heartbeat(id, "agent 1"), Beat::kHeld);
  EXPECT_GT(*q_->find("s")->heartbeat_at, *e->heartbeat_at - 1);  // renewed
  EXPECT_EQ(q_->heartbeat(id, "agent 2"), Beat::kLost);           // not its entry
  EXPECT_EQ(q_->heartbeat(id + 1000, "agent 1"), Beat::kLost);
  q_->cancel("s", "tester");
  EXPECT_EQ(q_->heartbeat(id, "agent 1"), Beat::kCancel);
  EXPECT_EQ(q_->heartbeat(id, "agent 1"), Beat::kCancel);  // until the agent ends it
  EXPECT_TRUE(q_->finish(id, "agent 1", "cancelled", 3, "cancelled; its job exited 3"));
  EXPECT_EQ(q_->heartbeat(id, "agent 1"), Beat::kLost);
  const auto after = q_->find(std::to_string(id));
  EXPECT_EQ(after->status, "cancelled");
  EXPECT_EQ(after->exit_code, 3);
  EXPECT_TRUE(after->finished_at);
}

TEST_F(SweepQueueTest, AnExpiredLeaseIsTakenOverAndTheOldAgentCanNoLongerFinish) {
  const auto id = q_->enqueue(entry("s")).id;
  // A real lease of 1 s, on the server's clock.
  ASSERT_TRUE(q_->claim(offer("old", {"default"}, 1, 0, 1.0)));
  EXPECT_FALSE(q_->claim(offer("new")));  // held
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto taken = q_->claim(offer("new"));
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->id, id);
  EXPECT_EQ(taken->agent, "new");
  EXPECT_EQ(taken->runs, 2);
  EXPECT_EQ(q_->heartbeat(id, "old"), Beat::kLost);
  const std::string row =
      "SELECT concat_ws('|', status, agent, exit_code, message, finished_at, lease_s) FROM "
      "xpscale.queue WHERE id = " +
      std::to_string(id);
  const auto before = sql(row);
  for (const auto* status : {"done", "failed", "queued", "cancelled"})
    EXPECT_FALSE(q_->finish(id, "old", status, 0, "from the old agent")) << status;
  EXPECT_EQ(sql(row), before);
  EXPECT_EQ(q_->heartbeat(id, "new"), Beat::kHeld);
  EXPECT_TRUE(q_->finish(id, "new", "done", 0, ""));
  EXPECT_EQ(q_->find("s")->status, "done");
  // A lease set back by SQL (60 s leases) is taken over the same way.
  const auto id2 = q_->enqueue(entry("t")).id;
  ASSERT_TRUE(q_->claim(offer("a")));
  EXPECT_FALSE(q_->claim(offer("b")));
  expire(id2);
  const auto t = q_->claim(offer("b"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->id, id2);
  EXPECT_FALSE(q_->finish(id2, "a", "done", 0, ""));
  EXPECT_EQ(q_->find("t")->agent, "b");
}

TEST_F(SweepQueueTest, CancelOfAQueuedEntryCancelsItAtOnce) {
  const auto id = q_->enqueue(entry("s")).id;
  const auto c = q_->cancel(std::to_string(id), "tester@host");
  EXPECT_EQ(c.status, "cancelled");
  EXPECT_TRUE(c.finished_at);
  EXPECT_NE(c.message.find("cancelled by tester@host"), std::string::npos) << c.message;
  EXPECT_FALSE(q_->claim(offer("agent")));
}

TEST_F(SweepQueueTest, CancelOfARunningEntryAsksItsAgentThroughTheHeartbeat) {
  const auto id = q_->enqueue(entry("s")).id;
  ASSERT_TRUE(q_->claim(offer("agent")));
  const auto c = q_->cancel("s", "tester");  // by sweep name
  EXPECT_EQ(c.id, id);
  EXPECT_EQ(c.status, "running");
  EXPECT_TRUE(c.cancel_requested);
  EXPECT_EQ(c.agent, "agent");
  EXPECT_EQ(q_->heartbeat(id, "agent"), Beat::kCancel);
  // Asked twice: still running, still asked.
  EXPECT_EQ(q_->cancel(std::to_string(id), "tester").status, "running");
  EXPECT_TRUE(q_->finish(id, "agent", "cancelled", std::nullopt, "cancelled; its job stopped"));
  EXPECT_EQ(q_->find("s")->status, "cancelled");
}

TEST_F(SweepQueueTest, CancelOfARunningEntryWhoseAgentIsGoneCancelsItAtOnce) {
  const auto id = q_->enqueue(entry("s")).id;
  ASSERT_TRUE(q_->claim(offer("agent")));
  expire(id);
  const auto c = q_->cancel("s", "tester");
  EXPECT_EQ(c.status, "cancelled");
  EXPECT_TRUE(c.finished_at);
  EXPECT_FALSE(q_->claim(offer("other")));  // not taken over
  EXPECT_FALSE(q_->finish(id, "agent", "done", 0, ""));
}

TEST_F(SweepQueueTest, ACancelRequestedEntryWhoseAgentDiedIsCancelledNotTakenOver) {
  const auto id = q_->enqueue(entry("s")).id;
  ASSERT_TRUE(q_->claim(offer("agent")));
  q_->cancel("s", "tester");  // asked while the agent was alive
  expire(id);                 // then it died
  EXPECT_FALSE(q_->claim(offer("other")));
  EXPECT_EQ(q_->find("s")->status, "cancelled");
}

TEST_F(SweepQueueTest, CancelOfAFinishedOrUnknownEntryIsAUserError) {
  const auto id = q_->enqueue(entry("s")).id;
  ASSERT_TRUE(q_->claim(offer("agent")));
  ASSERT_TRUE(q_->finish(id, "agent", "done", 0, ""));
  for (const auto& key : {std::to_string(id), std::string("s")}) {
    const auto e = error_of([&] { q_->cancel(key, "tester"); });
    EXPECT_EQ(e.category(), ErrorCategory::kUser);
    EXPECT_NE(std::string(e.what()).find("entry " + std::to_string(id) +
                                         " (sweep 's') is done "
                                         "already; nothing to cancel"),
              std::string::npos)
        << e.what();
  }
  const auto unknown_id = error_of([&] { q_->cancel("987654", "tester"); });
  EXPECT_EQ(unknown_id.category(), ErrorCategory::kUser);
  EXPECT_NE(std::string(unknown_id.what()).find("no entry '987654'"), std::string::npos)
      << unknown_id.what();
  const auto unknown_name = error_of([&] { q_->cancel("nosuch", "tester"); });
  EXPECT_EQ(unknown_name.category(), ErrorCategory::kUser);
  EXPECT_NE(std::string(unknown_name.what()).find("no entry of sweep 'nosuch'"), std::string::npos)
      << unknown_name.what();
  EXPECT_EQ(q_->find("s")->status, "done");  // unchanged
  // The queue works on after the failed cancels (no transaction left open).
  q_->enqueue(entry("t"));
  EXPECT_EQ(drain(offer("agent")), std::vector<std::string>{"t"});
}

TEST_F(SweepQueueTest, ASweepWithAnActiveEntryCannotBeEnqueuedAgain) {
  const auto first = q_->enqueue(entry("s", 0, "a"));
  for (int round = 0; round < 2; ++round) {
    const auto e = error_of([&] { q_->enqueue(entry("s", 3, "b")); });
    EXPECT_EQ(e.category(), ErrorCategory::kUser);
    const std::string what = e.what();
    EXPECT_NE(what.find("sweep 's' is already " + std::string(round ? "running" : "queued") +
                        " on queue 'a' as entry " + std::to_string(first.id)),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("xpscale queue cancel " + std::to_string(first.id)), std::string::npos);
    if (round == 0) {
      ASSERT_TRUE(q_->claim(offer("agent", {"a"})));
    }
  }
  EXPECT_EQ(sql("SELECT count(*) FROM xpscale.queue"), "1");
  // Once it finished, the sweep can be enqueued again; the old entry stays.
  ASSERT_TRUE(q_->finish(first.id, "agent", "done", 0, ""));
  const auto again = q_->enqueue(entry("s", 3, "b"));
  EXPECT_GT(again.id, first.id);
  EXPECT_EQ(q_->find("s")->id, again.id);  // the active one
  EXPECT_EQ(q_->find(std::to_string(first.id))->status, "done");
}

TEST_F(SweepQueueTest, EnqueuesOfOneSweepAtOnceLeaveOneEntryAndRefuseTheOthersNamingIt) {
  constexpr int kClients = 6;
  for (int round = 0; round < 5; ++round) {
    const std::string sweep = "race" + std::to_string(round);
    std::latch start(kClients);
    std::vector<std::future<std::string>> clients;
    for (int c = 0; c < kClients; ++c)
      clients.push_back(std::async(std::launch::async, [&, c] {
        SweepQueue mine(url_);
        start.arrive_and_wait();
        try {
          return "ok " + std::to_string(mine.enqueue(entry(sweep, c)).id);
        } catch (const StoreError& e) {
          return std::string(e.category() == ErrorCategory::kUser ? "user: " : "other: ") +
                 e.what();
        }
      }));
    std::vector<std::string> ok, refused;
    for (auto& f : clients) {
      const auto r = f.get();
      (r.starts_with("ok ") ? ok : refused).push_back(r);
    }
    ASSERT_EQ(ok.size(), 1u) << ::testing::PrintToString(refused);
    const std::string id = ok[0].substr(3);
    for (const auto& r : refused) {
      EXPECT_TRUE(r.starts_with("user: ")) << r;
      EXPECT_NE(r.find("as entry " + id), std::string::npos) << r;
    }
  }
}

TEST_F(SweepQueueTest, FinishQueuedPutsTheEntryBackForAnyAgent) {
  const auto id = q_->enqueue(entry("s")).id;
  ASSERT_TRUE(q_->claim(offer("first")));
  EXPECT_TRUE(q_->finish(id, "first", "queued", 3, "put back: its agent was stopped"));
  auto e = q_->find("s");
  EXPECT_EQ(e->status, "queued");
  EXPECT_EQ(e->agent, "");
  EXPECT_FALSE(e->heartbeat_at);
  EXPECT_FALSE(e->finished_at);
  EXPECT_EQ(e->message, "put back: its agent was stopped");
  EXPECT_EQ(q_->heartbeat(id, "first"), Beat::kLost);
  const auto again = q_->claim(offer("second"));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, id);
  EXPECT_EQ(again->runs, 2);
  EXPECT_EQ(again->message, "");
  EXPECT_EQ(again->started_at, e->started_at);  // its first start is kept
  EXPECT_THROW(q_->finish(id, "second", "paused", std::nullopt, ""), StoreError);
}

TEST_F(SweepQueueTest, PuttingBackAnEntryWhoseCancelWasAskedCancelsIt) {
  // The agent was stopped (SIGTERM) before its next heartbeat saw the
  // cancel: the entry must not go back to the queue, where no agent would
  // ever take it again (claims skip cancel_requested entries).
  const auto id = q_->enqueue(entry("s")).id;
  ASSERT_TRUE(q_->claim(offer("agent")));
  q_->cancel("s", "tester");
  EXPECT_TRUE(q_->finish(id, "agent", "queued", 3, "put back: its agent was stopped"));
  const auto e = q_->find("s");
  EXPECT_EQ(e->status, "cancelled");
  EXPECT_TRUE(e->finished_at);
  // A new entry for the sweep can be made.
  EXPECT_NO_THROW(q_->enqueue(entry("s")));
}

TEST_F(SweepQueueTest, ListShowsActiveEntriesThenFinishedOnesWithTheSweepsTrialCounts) {
  const auto done = q_->enqueue(entry("done", 9)).id;
  ASSERT_TRUE(q_->claim(offer("agent")));
  ASSERT_TRUE(q_->finish(done, "agent", "done", 0, ""));
  const auto failed = q_->enqueue(entry("failed", 9)).id;
  ASSERT_TRUE(q_->claim(offer("agent")));
  ASSERT_TRUE(q_->finish(failed, "agent", "failed", 1, "its job exited 1"));
  q_->enqueue(entry("low", 0));
  q_->enqueue(entry("high", 5));
  q_->enqueue(entry("run", -5));
  q_->enqueue(entry("other-queue", 1, "b"));
  ASSERT_EQ(q_->claim(offer("agent", {"default"}, 1, 0))->sweep, "high");
  // The sweep "high" in the same store: 3 completed, 1 failed, 2 running, 1 queued.
  sql("INSERT INTO xpscale.sweeps(name) VALUES ('high'), ('low')");
  sql("INSERT INTO xpscale.trials(sweep, id, params, status) SELECT s.id, t.i, '{}', "
      "(ARRAY['completed','completed','completed','failed','running','running','queued'])[t.i + 1] "
      "FROM xpscale.sweeps s, generate_series(0, 6) t(i) WHERE s.name = 'high'");
  sql("INSERT INTO xpscale.trials(sweep, id, params, status) SELECT s.id, 0, '{}', 'completed' "
      "FROM xpscale.sweeps s WHERE s.name = 'low'");
  const auto all = q_->list({});
  // Running first, then queued by priority then age, then the finished
  // ones, newest first.
  EXPECT_EQ(names_of(all),
            (std::vector<std::string>{"high", "other-queue", "low", "run", "failed", "done"}));
  EXPECT_EQ(all[0].trials, 7);
  EXPECT_EQ(all[0].completed, 3);
  EXPECT_EQ(all[0].failed, 1);
  EXPECT_EQ(all[0].running, 2);
  EXPECT_EQ(all[2].trials, 1);
  EXPECT_EQ(all[2].completed, 1);
  EXPECT_EQ(all[1].trials, 0);  // no sweep yet
  EXPECT_EQ(all[4].status, "failed");
  EXPECT_EQ(all[4].exit_code, 1);
  EXPECT_EQ(all[4].message, "its job exited 1");
  EXPECT_EQ(names_of(q_->list({"default"}, 1)),
            (std::vector<std::string>{"high", "low", "run", "failed"}));
  EXPECT_EQ(names_of(q_->list({"b"})), std::vector<std::string>{"other-queue"});
  EXPECT_EQ(names_of(q_->list({"default"}, 0)), (std::vector<std::string>{"high", "low", "run"}));
  EXPECT_TRUE(q_->list({"nosuch"}).empty());
}

TEST_F(SweepQueueTest, SeveralQueuesAreServedAndListedByName) {
  q_->enqueue(entry("on-a", 0, "q.a"));
  q_->enqueue(entry("on-b", 9, "q-b"));
  q_->enqueue(entry("on-c", 1, "q_c"));
  q_->enqueue(entry("on-d", 2, "default"));
  EXPECT_EQ(names_of(q_->list({"q.a", "q_c"})), (std::vector<std::string>{"on-c", "on-a"}));
  EXPECT_EQ(drain(offer("agent", {"q.a", "q_c"})), (std::vector<std::string>{"on-c", "on-a"}));
  EXPECT_EQ(q_->find("on-b")->status, "queued");
  EXPECT_EQ(q_->find("on-d")->status, "queued");
  EXPECT_EQ(drain(offer("agent", {"default", "q-b"})), (std::vector<std::string>{"on-b", "on-d"}));
  EXPECT_EQ(q_->queues().size(), 4u);
}

TEST_F(SweepQueueTest, APasswordInTheUrlIsNeverShown) {
  ::unsetenv("PGPASSWORD");
  const std::string password = pg().password();
  SweepQueue q(pg().url_with_password(database_));
  EXPECT_EQ(q.location().find(password), std::string::npos) << q.location();
  EXPECT_NE(q.location().find("127.0.0.1:" + std::to_string(pg().port())), std::string::npos)
      << q.location();
  // A server's error names the store, not its password.
  sql("ALTER TABLE xpscale.queue RENAME TO queue_gone");
  const auto e = error_of([&] { q.list({}); });
  EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
  EXPECT_EQ(std::string(e.what()).find(password), std::string::npos) << e.what();
  sql("ALTER TABLE xpscale.queue_gone RENAME TO queue");
  // A wrong password in the URL: a user error without it.
  const auto wrong = error_of([&] {
    SweepQueue w("postgresql://xpscale:wrong-secret-789@127.0.0.1:" + std::to_string(pg().port()) +
                 "/" + database_);
  });
  EXPECT_EQ(wrong.category(), ErrorCategory::kUser);
  EXPECT_NE(std::string(wrong.what()).find("password authentication failed"), std::string::npos)
      << wrong.what();
  EXPECT_EQ(std::string(wrong.what()).find("wrong-secret-789"), std::string::npos) << wrong.what();
}

}  // namespace
}  // namespace xpscale
