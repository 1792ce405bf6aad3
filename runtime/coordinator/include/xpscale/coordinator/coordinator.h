#pragma once
// The coordinator: rank 0's background thread that hands trials to groups,
// decides on reports and is the only writer of the store (protocol.h).
#include <mpi.h>

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/config/sweep_config.h"
#include "xpscale/coordinator/line_writer.h"
#include "xpscale/coordinator/progress.h"
#include "xpscale/coordinator/sweep_algorithms.h"
#include "xpscale/coordinator/sweep_run.h"
#include "xpscale/store/store.h"
#include "xpscale/store/store_lock.h"

namespace xpscale::detail {

struct QueuedTrial {
  std::uint64_t id = 0;
  nlohmann::ordered_json params;
  int attempt = 1;  // the number the next attempt gets
};

// What run_sweep prepared on rank 0 before the groups start.
struct CoordinatorSetup {
  const SweepConfig* config = nullptr;
  std::unique_ptr<StoreLock> lock;  // held for the run (store_lock.h)
  std::unique_ptr<Store> store;
  std::int64_t run = 0;
  std::deque<QueuedTrial> queue;  // unused on a shared sweep (below)
  // Several jobs may run this sweep (a PostgreSQL store, shared_sweep.h):
  // trials are claimed from the store, leases renewed, decisions serialized.
  bool shared = false;
  std::map<std::uint64_t, int> failed_attempts;  // per trial, from earlier runs
  int groups = 0;
  RunSummary summary;          // planned, skipped, completed/failed before this run
  std::optional<double> best;  // best metric value so far
  std::uint64_t best_trial = 0;
  bool resumed = false;  // the store held this sweep already
  bool quiet = false;
  double progress_interval_s = 10;
  // --json-events: opened before anything runs, so that a bad path is a
  // user error on rank 0 (progress.h). Null: none.
  std::unique_ptr<LineWriter> json_events;
  // Liveness (protocol.h, kTagHeartbeat): ranks silent for longer than
  // heartbeat_timeout_s (0: never) are lost; so is a running attempt past
  // time_limit + attempt_margin_s.
  double heartbeat_timeout_s = 0;
  // How long a full disk under out_dir is waited out (no trial starts) before
  // the run ends with StoreUnavailable (the run's --store-retry).
  double store_retry_s = 300;
  double attempt_margin_s = 70;
  std::vector<int> group_of_rank;  // by world rank; -1: idle
  std::vector<std::string> hosts;  // by world rank
  // When the stop request in out_dir was made, if there was one when this
  // run took the store: that one was for an earlier run (stop_request.h).
  std::optional<double> old_stop_request;
  // Searcher and scheduler: proposes adaptive trials, decides on reports.
  std::unique_ptr<SweepAlgorithms> algorithms;
};

// An unbounded sweep (no trial budget) without max_failures stops when this
// many trials of a run have failed and none has finished: W&B's agent stops
// after 3 failures too. Otherwise it would fail trials forever.
inline constexpr std::uint64_t kUnboundedInitialFailures = 3;

// Crashed runs a trial survives beyond its retries (run.cpp's prepare(),
// and claims on a shared sweep).
inline constexpr int kCrashesForgiven = 2;

class Coordinator {
 public:
  Coordinator(CoordinatorSetup setup, MPI_Comm ctrl);
  // The thread body: serves requests until every group has been told
  // "done". Never throws: an internal error stops dispatching, is recorded
  // in the summary (stop_reason) and the groups are released.
  void run() noexcept;
  const RunSummary& summary() const { return s_.summary; }
  bool internal_error() const { return internal_error_; }
  // The category of the internal error (StoreUnavailable: kUnavailable).
  ErrorCategory error_category() const { return error_category_; }

 private:
  struct Running {
    std::uint64_t id = 0;
    int attempt = 0;
    double started = 0;
    std::int64_t reports = 0;  // of this attempt, for the missing-metric warning
    std::optional<double> best{};  // the best metric value this attempt reported
  };

  void serve();
  void handle_next(int source, const nlohmann::json& body);
  void handle_report(int source, const nlohmann::json& body);
  // Heartbeats in, and ranks or attempts that stopped answering: lost.
  void check_liveness();
  // Whether out_dir's file system has (almost) no space left; checked at
  // most every 0.5 s. A trial that fails meanwhile is not a failure (it
  // could not write), and no trial starts until there is space again.
  bool disk_full();
  void wait_out_full_disk();
  [[noreturn]] void lose(int group, const std::string& why);
  // The trial a group's result claimed along with its finish (shared
  // sweeps without state: one statement for both); `asked`: a claim was
  // made, and dispatch() must not claim again.
  struct Claimed {
    bool asked = false;
    std::optional<Claim> claim;
  };
  // Records a group's result. With `next`, on a shared sweep whose
  // searcher and scheduler keep no state, a result that ends its trial for
  // good claims the group's next trial in the same statement (into *next).
  void record_result(int group, const nlohmann::json& result, Claimed* next = nullptr);
  // What follows a recorded finish: the trial_ended event, the counts,
  // a stop for too many failures, the commit, parked groups served.
  void finished(std::uint64_t id, int attempt, int group, const Running& ran, TrialStatus status,
                bool final, const std::string& reason, double end);
  // Takes the group's attempt out of running_ (its time counts as busy);
  // a blank one, started at `end`, if it had none.
  Running end_running(int group, double end);
  // The trial_ended event of an attempt: `status` a trial status name or
  // "interrupted"; `final` false when the trial runs again.
  void ended(std::uint64_t id, int attempt, int group, const Running& ran, std::string status,
             bool final, const std::string& reason, double end);
  // Answers the request of `source` (group `group`) with the next trial, or
  // parks it, or says done.
  // `claimed`: the trial record_result() claimed for it, to start or, if
  // it may not start now, give back.
  void dispatch(int source, int group, Claimed* claimed = nullptr);
  // A paused trial that the scheduler promotes now, as its next attempt
  // (Scheduler::next_promotion); nullopt when none.
  std::optional<QueuedTrial> promotion(bool drained);
  // `group`: the group a "trial" reply starts a trial on.
  void reply(int source, const nlohmann::json& body, int group = -1);
  // Group commit: ends the batch, commits what its requests wrote, then
  // sends their replies (see batching_).
  void flush_batch();
  // After an error: the replies a failed commit held back are sent as
  // "done" (a trial not recorded as started) or "stop" (a report).
  void release_held_replies();
  // Tells group `group` (at `source`) that the sweep is over for it.
  void say_done(int source, int group);
  void stop_sweep(const std::string& reason);
  // Preemption (preemption.h): no new trials; running ones are told Stop
  // "preempted" at their next report and come back as interrupted. `why`
  // replaces the default reason (the signal, or "preempted").
  void begin_preemption(const std::string& why = "");
  // `xpscale stop` (stop_request.h), looked for about once a second.
  void check_stop_request();
  void record_preempted(std::uint64_t id, int attempt, int group, const Running& ran,
                        const nlohmann::json& result);
  // Records the attempt interrupted (not the trial's failure) and queues the
  // trial again, first in line.
  void requeue_interrupted(std::uint64_t id, int attempt, int group, const Running& ran,
                           const std::string& reason, double end);
  void release_parked();
  // A shared sweep (CoordinatorSetup::shared): claims the next trial from
  // the store, proposing one first when the searcher draws them; parks the
  // group while other jobs' trials may still come back, else says done.
  void dispatch_shared(int source, int group, Claimed* claimed = nullptr);
  // A shared sweep: before a searcher or scheduler decides, takes the
  // sweep's lock in the open transaction and reloads their states, so that
  // the decision sees every job's results; true when it did (then commit
  // at once: the lock is held until then).
  bool sync_algorithms(bool scheduler_only);
  // A shared sweep: renews the lease (every 2 s), queues again the trials
  // of jobs that stopped answering (every 5 s) and offers parked groups a
  // trial again (every 1 s).
  void shared_upkeep();
  void maybe_commit(bool force);
  // Progress (progress.h): the block, line or event when one is due.
  void progress();
  ProgressSnapshot snapshot(double now, bool final);
  // Records the end of the run in the store; a failure is an internal error.
  void close_run();
  // What the run row's status becomes: finished, incomplete, stopped,
  // preempted or error.
  std::string run_status() const;
  // The sweep_started and sweep_ended events' fields.
  nlohmann::ordered_json started_fields() const;
  nlohmann::ordered_json ended_fields(const ProgressSnapshot& last) const;
  std::optional<double> metric_value(const nlohmann::json& metrics) const;
  // The one-line warning for a first report without the sweep's metric.
  void warn_missing_metric(std::uint64_t id, const nlohmann::json& metrics);
  bool better(double a, double b) const;

  CoordinatorSetup s_;
  MPI_Comm ctrl_;
  Progress progress_;
  std::map<int, Running> running_;                                  // by group
  std::map<int, std::pair<std::string, std::string>> group_where_;  // ranks, hosts
  std::vector<std::pair<int, int>> parked_;                         // (source, group)
  int done_sent_ = 0;
  bool stopping_ = false;
  bool internal_error_ = false;
  ErrorCategory error_category_ = ErrorCategory::kInternal;
  // The request being handled (source, kind): answered even when its
  // handling throws, so its group never waits forever.
  std::optional<std::tuple<int, std::string, int>> in_flight_;  // (source, kind, group)
  std::uint64_t finished_this_run_ = 0, failed_this_run_ = 0;
  double started_ = 0, last_commit_ = 0;
  double busy_s_ = 0;  // trial time of the attempts that ended this run
  // The best trial's params, read from the store when the best changes.
  std::optional<std::uint64_t> best_params_of_;
  nlohmann::ordered_json best_params_;
  std::vector<double> heard_;  // when each rank last sent a heartbeat
  bool disk_full_ = false;
  double disk_checked_ = 0;
  std::optional<double> disk_full_since_;
  double last_liveness_check_ = 0;
  double last_stop_check_ = 0;
  // Trials that reported the metric's key without a finite number: their
  // "never reported" says so.
  std::set<std::uint64_t> not_a_number_;
  // A shared sweep: when the lease was last renewed, runs reaped and parked
  // groups polled; the sweep's counts at the last renewal; whether the
  // searcher may still propose.
  double last_heartbeat_ = 0, last_reap_ = 0, last_poll_ = 0;
  SweepCounts counts_{};
  bool more_proposals_ = true;
  // Group commit (sweeps in a store of their own): the requests already
  // waiting are handled as one batch, their writes in one transaction, and
  // their replies held until it commits, so that one commit, not one per
  // request, makes each result durable before its group gets new work.
  bool batching_ = false;
  bool commit_owed_ = false;  // a forced commit was asked for in the batch
  int batch_size_ = 0;
  struct HeldReply {
    int source;
    int group;
    nlohmann::json body;
  };
  std::vector<HeldReply> held_replies_;
};

}  // namespace xpscale::detail
