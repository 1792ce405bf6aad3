#pragma once
// What a coordinator needs of a store when several jobs run one sweep at
// once (PostgresStore; Store::shared() returns it, null for one-writer
// engines such as SQLite).
//
// The protocol, for each job (its run):
//   - begin_run() gives the run a lease: the engine keeps it alive while the
//     run's connection lives and heartbeat() is called within lease_s.
//   - Trials are handed out by the store: claim_trial() takes the next
//     queued one (interrupted and retried ones first, then by id) and
//     starts its attempt, in one statement that no two jobs can both win.
//     The store's queued trials are the sweep's queue; there is no other.
//   - reap() ends the runs whose lease expired (killed, node lost, cut off)
//     and queues their running trials again, recording those attempts
//     "interrupted" (the run ended): they count against the retries.
//   - Fencing: once a run has begun, its writes about an attempt
//     (finish_attempt, interrupt_attempt, add_metrics) apply only while the
//     attempt is still this run's and running; a run whose lease expired
//     writes nothing over the job that took its trial. owns_attempt() says,
//     and in a transaction locks the attempt's row until the commit;
//     finish_owned() is the fenced finish that says whether it applied, so
//     that a result needs no check of its own when nothing else is decided
//     with it (a result it did not apply is dropped, never merged).
//   - Decisions that read and change shared state (the searcher's and the
//     scheduler's, new trial ids) run in a transaction after lock_sweep(),
//     which serializes them with every other job's: no last writer wins.
//     A sweep whose searcher and scheduler keep no state (random or grid,
//     no scheduler) has no such decisions: its results take neither the
//     lock nor a reload of the state.
//   - Round trips: in the steady state a trial costs one statement, the
//     finish_owned() of a group's result that claims the group's next trial
//     too; the trials a job queues in a transaction go in one statement at
//     its next one (put_queued_trial()).
// Times of leases are the database server's clock, so hosts whose clocks
// disagree cannot steal each other's leases early.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace xpscale {

enum class TrialStatus;  // store.h

// A claimed trial: its attempt was started for the run that claimed it.
struct Claim {
  std::uint64_t id = 0;
  int attempt = 0;  // the attempt's number (1 for a trial's first)
  nlohmann::ordered_json params;
  int failed = 0;   // its earlier attempts that failed
  int crashed = 0;  // its earlier attempts whose run ended under them
};

struct SweepCounts {
  std::uint64_t queued = 0, running = 0;  // trials, over every job
  bool alive = true;  // false: this run's lease had expired and it was ended
};

// How an attempt ended, as Store::finish_attempt() takes it.
struct AttemptEnd {
  std::uint64_t trial = 0;
  int attempt = 0;
  TrialStatus status{};
  std::string reason{}, stderr_tail{};
  double at = 0;       // Unix seconds
  bool final = true;   // false: the trial is queued again (a retry)
};

// Where a claimed trial runs (claim_trial()'s arguments).
struct ClaimFor {
  int group = 0;
  std::string ranks{}, hosts{};
  double now = 0;
};

struct Finished {
  bool applied = false;       // false: the attempt was no longer the run's; nothing written
  std::optional<Claim> next{};  // the trial claimed after it, when asked and one was queued
};

class SharedSweep {
 public:
  virtual ~SharedSweep() = default;
  // The lease begin_run() gives a run, in seconds (default 60).
  virtual void set_lease(double seconds) = 0;
  virtual double lease() const = 0;
  // In a transaction: waits until no other job's transaction on this sweep
  // has called it; holds that until commit or rollback.
  virtual void lock_sweep() = 0;
  // Outside a transaction. nullopt when no trial is queued.
  virtual std::optional<Claim> claim_trial(std::int64_t run, int group, const std::string& ranks,
                                           const std::string& hosts, double now) = 0;
  // Renews run's lease; the sweep's trial counts. Outside a transaction.
  virtual SweepCounts heartbeat(std::int64_t run) = 0;
  // Ends the runs (other than `run`) whose lease expired; returns how many
  // trials went back to the queue. Outside a transaction.
  virtual int reap(std::int64_t run, double now) = 0;
  // Ends run's own running attempts that its coordinator does not hold
  // (`held`: trial, attempt) "interrupted" and queues their trials again;
  // returns how many. A claim retried after its reply was lost leaves one
  // behind, which no job would ever finish (and every job would wait on).
  // Outside a transaction, with `held` complete.
  virtual int release_untracked(std::int64_t run,
                                const std::vector<std::pair<std::uint64_t, int>>& held,
                                double now) = 0;
  virtual bool owns_attempt(std::uint64_t trial, int attempt, std::int64_t run) = 0;
  // finish_attempt(end) fenced for `run`: applies only while the attempt is
  // still run's and running, and says whether it did (a retry of a call
  // whose commit was lost in flight finds its own finish and says applied;
  // its claim, as claim_trial()'s, is not undone). With `next`, also claims
  // the next queued trial for run as claim_trial() does, whether or not the
  // finish applied, in the same statement. Outside a transaction.
  virtual Finished finish_owned(std::int64_t run, const AttemptEnd& end,
                                const std::optional<ClaimFor>& next = std::nullopt) = 0;
  // The first trial id no trial has yet.
  virtual std::uint64_t next_trial_id() = 0;
  // Live runs: one line each (host, pid, since when), for `xpscale stop`.
  virtual std::vector<std::string> live_runs() = 0;
};

}  // namespace xpscale
