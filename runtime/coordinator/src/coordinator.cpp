#include "xpscale/coordinator/coordinator.h"

#include <sys/prctl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <sstream>
#include <tuple>

#include "xpscale/coordinator/preemption.h"
#include "xpscale/coordinator/stop_request.h"
#include "xpscale/coordinator/protocol.h"
#include "xpscale/core/text.h"

namespace xpscale::detail {
namespace {

constexpr double kCommitEvery = 0.2;  // seconds between commits of metric rows
// Requests handled in one group commit at most: with every group waiting,
// the last reply of a batch waits for the ones before it (~30-100 us each).
constexpr int kMaxBatch = 16;

ProgressOptions progress_options(CoordinatorSetup& s) {
  ProgressOptions o;
  o.quiet = s.quiet;
  o.interval_s = s.progress_interval_s;
  o.sweep = s.config->name.empty() ? s.config->path : s.config->name;
  o.metric = s.config->metric ? s.config->metric->name : "";
  o.json_events = std::move(s.json_events);
  return o;
}

}  // namespace

Coordinator::Coordinator(CoordinatorSetup setup, MPI_Comm ctrl)
    : s_(std::move(setup)), ctrl_(ctrl), progress_(progress_options(s_)) {}

void Coordinator::run() noexcept {
  started_ = last_commit_ = unix_now();
  heard_.assign(s_.group_of_rank.size(), started_);
  try {
    progress_.sweep_started(started_fields());
    serve();
  } catch (const std::exception& e) {
    internal_error_ = true;
    error_category_ = ErrorCategory::kInternal;
    if (const auto* error = dynamic_cast<const Error*>(&e)) error_category_ = error->category();
    s_.summary.stopped_early = true;
    s_.summary.stop_reason = std::string("coordinator error: ") + e.what();
    progress_.message(std::string("xpscale: coordinator error: ") + e.what() +
                      "; no new trials start, running ones are stopped at their next report");
    // Release every group so that no rank hangs; results that cannot be
    // recorded are lost (their attempts stay running and are retried on
    // resume). First the request whose handling failed: its group waits.
    try {
      stopping_ = true;
      release_held_replies();
      auto parked = std::move(parked_);
      parked_.clear();
      if (in_flight_) {
        const auto [source, kind, group] = *in_flight_;  // a copy: reply() resets it
        const bool is_parked = std::any_of(parked.begin(), parked.end(),
                                           [&](const auto& p) { return p.first == source; });
        if (kind == "report")
          reply(source, {{"k", "decision"}, {"stop", true}, {"reason", "coordinator error"}});
        else if (!is_parked)
          say_done(source, group);
      }
      for (auto [source, group] : parked) say_done(source, group);
      Backoff backoff;
      while (done_sent_ < s_.groups) {
        check_liveness();  // a rank lost meanwhile must not hang rank 0 here
        auto m = try_recv_json(ctrl_, MPI_ANY_SOURCE, kTagRequest);
        if (!m) {
          backoff.idle();
          continue;
        }
        backoff.reset();
        if (m->body.value("k", "") == "report")
          reply(m->source, {{"k", "decision"}, {"stop", true}, {"reason", "coordinator error"}});
        else
          say_done(m->source, m->body.value("g", -1));
      }
    } catch (const std::exception& e2) {
      progress_.message(std::string("xpscale: cannot release the groups: ") + e2.what());
    }
  }
  s_.summary.queued = s_.queue.size();
  if (s_.shared && !internal_error_) {
    // Other jobs finished trials too: the summary is the sweep's.
    try {
      std::uint64_t completed = 0, failed = 0, queued = 0;
      const auto trials = s_.store->trials();
      if (s_.summary.unbounded) s_.summary.planned = trials.size();
      for (const auto& t : trials) {
        completed += t.status == TrialStatus::kCompleted || t.status == TrialStatus::kStopped;
        failed += t.status == TrialStatus::kFailed;
        queued += t.status == TrialStatus::kQueued;
      }
      s_.summary.completed = completed;
      s_.summary.failed = failed;
      s_.summary.queued = queued;
    } catch (const std::exception&) {  // this job's own counts stand
    }
  }
  s_.summary.wall_s = unix_now() - started_;
  // A store that stayed unavailable gets no more waiting: the run row stays
  // "running" and the next run closes it (mark_interrupted).
  if (error_category_ != ErrorCategory::kUnavailable) close_run();
  try {
    const auto last = snapshot(unix_now(), true);
    progress_.finish(last, ended_fields(last));
  } catch (const std::exception& e) {  // formatting only; never the run's failure
    std::cerr << "xpscale: cannot show the summary: " << e.what() << '\n';
  }
}

void Coordinator::close_run() {
  try {
    const auto& r = s_.summary;
    s_.store->begin();
    // An unbounded sweep has planned what it drew: `xpscale report` counts those.
    if (auto row = s_.store->sweep(); row && r.unbounded && row->planned != r.planned) {
      row->planned = r.planned;
      row->updated_at = unix_now();
      s_.store->write_sweep(*row);
    }
    s_.store->end_run(s_.run, run_status(),
                      {{"planned", r.planned},
                       {"completed", r.completed},
                       {"failed", r.failed},
                       {"skipped", r.skipped},
                       {"queued", r.queued},
                       {"stop_reason", r.stop_reason},
                       {"wall_s", r.wall_s}},
                      unix_now());
    maybe_commit(true);
  } catch (const std::exception& e) {
    progress_.message(std::string("xpscale: final commit failed: ") + e.what());
    internal_error_ = true;
  }
}

std::string Coordinator::run_status() const {
  const auto& r = s_.summary;
  return internal_error_   ? "error"
         : r.cancelled     ? "stopped"
         : r.preempted     ? "preempted"
         : r.stopped_early ? "stopped"
         : r.queued == 0   ? "finished"
                           : "incomplete";
}

void Coordinator::check_liveness() {
  // Every 0.25 s, not on each turn of the serve loop: a probe per turn
  // would sit on the dispatch path, and heartbeats come seconds apart.
  const double now = unix_now();
  if (now - last_liveness_check_ < 0.25) return;
  last_liveness_check_ = now;
  // A rank told "done" (heard_ infinite) stops its heartbeats; one it sent
  // just before, drained only now, must not make it look alive again, and
  // then lost a second later.
  while (auto m = try_recv_json(ctrl_, MPI_ANY_SOURCE, kTagHeartbeat))
    if (m->source >= 0 && static_cast<std::size_t>(m->source) < heard_.size() &&
        std::isfinite(heard_[static_cast<std::size_t>(m->source)]))
      heard_[static_cast<std::size_t>(m->source)] = now;
  if (s_.heartbeat_timeout_s > 0)
    for (std::size_t r = 1; r < heard_.size(); ++r)
      if (s_.group_of_rank[r] >= 0 && now - heard_[r] > s_.heartbeat_timeout_s) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.0f", now - heard_[r]);
        const int group = r < s_.group_of_rank.size() ? s_.group_of_rank[r] : -1;
        lose(group, "rank " + std::to_string(r) + " on " +
                        (r < s_.hosts.size() ? s_.hosts[r] : std::string("?")) +
                        " sent no heartbeat for " + buf +
                        " s (stopped, stuck in the kernel or in MPI?)");
      }
  // External trials only: the runtime ends those at their time limit by
  // itself; an in-process trial is told at its next report(), which may
  // legitimately be far off.
  if (const auto limit = s_.config->resources.time_limit_s; limit && s_.config->is_external())
    for (const auto& [group, r] : running_)
      if (now - r.started > *limit + s_.attempt_margin_s) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "%.0f s, past resources.time_limit (%g s) + %.0f s",
                      now - r.started, *limit, s_.attempt_margin_s);
        lose(group, "trial " + std::to_string(r.id) + " attempt " + std::to_string(r.attempt) +
                        " of group " + std::to_string(group) + " has run " + buf +
                        ", and its group does not answer");
      }
}

void Coordinator::lose(int group, const std::string& why) {
  std::string what = why;
  try {
    s_.store->begin();
    const double now = unix_now();
    for (const auto& [g, r] : running_) {
      s_.store->interrupt_attempt(
          r.id, r.attempt, g == group ? "lost: " + why : "the job ended: " + why, now, g == group);
      if (g == group)
        what += "; trial " + std::to_string(r.id) + " attempt " + std::to_string(r.attempt) +
                " recorded lost";
    }
    s_.store->end_run(s_.run, "lost", {{"stop_reason", why}}, now);
    s_.store->commit();
  } catch (const std::exception& e) {
    what += " (and the store could not record it: " + std::string(e.what()) + ")";
  }
  progress_.message("xpscale: " + what + "; ending the job (exit " + std::to_string(kExitRankLost) +
                    "): run the same command again to resume");
  progress_.flush(2);  // a stderr that blocks must not keep the job from ending
  MPI_Abort(MPI_COMM_WORLD, kExitRankLost);
  std::_Exit(kExitRankLost);  // MPI_Abort does not return; if it did, end anyway
}

bool Coordinator::disk_full() {
  const double now = unix_now();
  if (now - disk_checked_ < 0.5) return disk_full_;
  disk_checked_ = now;
  struct statvfs fs {};
  constexpr double kFullBelow = 4 << 20;  // bytes a trial and the store need at least
  disk_full_ = ::statvfs(s_.config->out_dir.c_str(), &fs) == 0 &&
               static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize) < kFullBelow;
  if (disk_full_ && !disk_full_since_) {
    disk_full_since_ = now;
    std::ostringstream line;
    line << "xpscale: the disk of " << s_.config->out_dir
         << " is full: no trial starts until there is space again (waiting up to "
         << s_.store_retry_s << " s, --store-retry)";
    progress_.message(line.str());
  } else if (!disk_full_ && disk_full_since_) {
    progress_.message("xpscale: the disk of " + s_.config->out_dir + " has space again after " +
                      std::to_string(static_cast<long>(now - *disk_full_since_)) + " s");
    disk_full_since_.reset();
  }
  return disk_full_;
}

void Coordinator::wait_out_full_disk() {
  if (!disk_full_since_ || parked_.empty()) return;
  if (!disk_full()) {
    release_parked();
    return;
  }
  if (unix_now() - *disk_full_since_ > s_.store_retry_s)
    throw StoreUnavailable("the disk of " + s_.config->out_dir + " has been full for " +
                           std::to_string(static_cast<long>(unix_now() - *disk_full_since_)) +
                           " s (--store-retry); run again to resume once there is space");
}

void Coordinator::serve() {
  // A 50 us cap and 1 us timer slack: a result waits at most ~50 us to be
  // seen (500 us polls left groups idle ~0.7 ms per trial, bench/dispatch).
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  Backoff backoff(std::chrono::microseconds(50));
  while (done_sent_ < s_.groups) {
    auto m = try_recv_json(ctrl_, MPI_ANY_SOURCE, kTagRequest);
    check_liveness();
    check_stop_request();
    if (s_.shared) shared_upkeep();
    if (!s_.summary.preempted && (preemption_requested() || termination_signal()))
      begin_preemption();
    progress();  // on busy turns too: a busy coordinator may have no idle ones
    if (!m) {
      flush_batch();  // nothing more waiting: commit, then answer
      wait_out_full_disk();
      maybe_commit(false);
      backoff.idle();
      continue;
    }
    backoff.reset();
    // A shared sweep's claims commit on their own (dispatch_shared).
    if (!s_.shared) batching_ = true;
    const std::string kind = m->body.value("k", "");
    in_flight_.emplace(m->source, kind, m->body.value("g", -1));
    if (kind == "next")
      handle_next(m->source, m->body);
    else if (kind == "report")
      handle_report(m->source, m->body);
    else
      throw Error("unknown control message '" + kind + "' from rank " + std::to_string(m->source));
    in_flight_.reset();  // answered, or parked (then parked_ holds it)
    if (batching_ && ++batch_size_ >= kMaxBatch) flush_batch();
  }
  flush_batch();  // the last "done" replies
}

void Coordinator::flush_batch() {
  batching_ = false;
  batch_size_ = 0;
  if (commit_owed_) {
    commit_owed_ = false;
    maybe_commit(true);  // on failure the replies stay held: release_held_replies()
  }
  auto held = std::move(held_replies_);
  held_replies_.clear();
  for (const auto& h : held) send_json(ctrl_, h.source, kTagReply, h.body);
}

void Coordinator::release_held_replies() {
  batching_ = false;
  commit_owed_ = false;
  auto held = std::move(held_replies_);
  held_replies_.clear();
  for (auto& h : held) {
    const std::string k = h.body.value("k", "");
    if (k == "trial") {
      // Its start was not committed: the trial stays queued (or running
      // in the store, which the next run's resume puts back).
      running_.erase(h.group);
      say_done(h.source, h.group);
    } else if (k == "decision") {
      reply(h.source, {{"k", "decision"}, {"stop", true}, {"reason", "coordinator error"}});
    } else {
      send_json(ctrl_, h.source, kTagReply, h.body);  // "done": already counted
    }
  }
}

void Coordinator::handle_next(int source, const nlohmann::json& body) {
  const int group = body.at("g").get<int>();
  group_where_[group] = {body.value("ranks", ""), body.value("hosts", "")};
  if (body.value("pre", false)) begin_preemption();
  Claimed claimed;
  if (!body.at("result").is_null()) record_result(group, body.at("result"), &claimed);
  dispatch(source, group, &claimed);
}

Coordinator::Running Coordinator::end_running(int group, double end) {
  auto it = running_.find(group);
  if (it == running_.end()) return {.started = end};
  Running ran = it->second;
  running_.erase(it);
  busy_s_ += std::max(0.0, end - ran.started);
  return ran;
}

void Coordinator::ended(std::uint64_t id, int attempt, int group, const Running& ran,
                        std::string status, bool final, const std::string& reason, double end) {
  progress_.trial_ended({.id = id,
                         .attempt = attempt,
                         .group = group,
                         .status = std::move(status),
                         .final = final,
                         .value = ran.best,
                         .best_value = s_.best,
                         .seconds = std::max(0.0, end - ran.started),
                         .reason = reason});
}

void Coordinator::record_result(int group, const nlohmann::json& r, Claimed* next) {
  const auto id = r.at("t").get<std::uint64_t>();
  const int attempt = r.at("a").get<int>();
  const double end = r.value("end", unix_now());
  const Running ran = end_running(group, end);
  if (r.at("status") == "preempted") {
    record_preempted(id, attempt, group, ran, r);
    return;
  }
  const auto dropped = [&] {
    progress_.message("xpscale: trial " + std::to_string(id) + " attempt " +
                      std::to_string(attempt) +
                      ": this job's lease on it ran out and another job took the trial over; "
                      "this attempt's result is dropped");
  };
  // A shared sweep whose searcher and scheduler keep no state decides
  // nothing under the sweep's lock: its fenced finish (finish_owned) is the
  // ownership check, and nothing is written before it.
  const bool stateless = s_.shared && !s_.algorithms->stateful();
  if (s_.shared && !stateless) {
    // Fencing: a job whose lease ran out may have lost this attempt to
    // another job; the row stays locked until this result commits.
    s_.store->begin();
    if (!s_.store->shared()->owns_attempt(id, attempt, s_.run)) {
      dropped();
      maybe_commit(true);
      release_parked();
      return;
    }
  }
  auto status = parse_trial_status(r.at("status").get<std::string>());
  std::string reason = r.value("reason", "");
  // A trial that ends without ever reporting the sweep's metric (a typo in
  // metric.name, a script that logs another key) has no result: a failure
  // with that reason, retried like any other, rather than a blank row. One
  // stopped before it reported anything (the sweep ended) is not.
  // (An attempt that reported it needs no read of the store.)
  if ((status == TrialStatus::kCompleted || status == TrialStatus::kStopped) && s_.config->metric &&
      !ran.best) {
    const auto row = s_.store->trial(id);
    if (row && !row->best_value && (status == TrialStatus::kCompleted || row->last_step)) {
      status = TrialStatus::kFailed;
      reason = not_a_number_.count(id)
                   ? "metric '" + s_.config->metric->name +
                         "' was never a finite number (NaN or inf in every report: did the "
                         "training diverge?)"
                   : "metric '" + s_.config->metric->name + "' never reported";
    }
  }
  bool final = true;
  if (status == TrialStatus::kFailed && disk_full()) {
    // It could not write: not the trial's failure.
    requeue_interrupted(id, attempt, group, ran,
                        "failed while the disk of out_dir was full: " + reason, end);
    return;
  }
  if (status == TrialStatus::kFailed) {
    int failures = ++s_.failed_attempts[id];
    if (s_.shared) {  // every job's failures of it count
      failures = 1;
      for (const auto& a : s_.store->attempts(id))
        if (a.status == "failed") ++failures;
    }
    // A preempted sweep keeps the retry for its next run (it stays queued).
    if (failures <= s_.config->retries && (!stopping_ || s_.summary.preempted)) {
      final = false;
      if (!s_.shared) {  // a shared sweep's queue is the store's queued trials
        s_.queue.push_back({id, {}, attempt + 1});
        if (auto row = s_.store->trial(id)) s_.queue.back().params = row->params;
      }
    }
  }
  if (stateless) {
    maybe_commit(true);  // metric rows first: the finish commits on its own
    // The group's next trial in the same statement, when it may start one
    // now (as dispatch() would decide) and this result cannot stop the
    // sweep (only failures can).
    std::optional<ClaimFor> claim_for;
    if (next && final && status != TrialStatus::kFailed && !stopping_ &&
        !s_.config->max_concurrent_trials && !disk_full()) {
      const auto& [ranks, hosts] = group_where_[group];
      claim_for = ClaimFor{.group = group, .ranks = ranks, .hosts = hosts, .now = unix_now()};
    }
    Finished f = s_.store->shared()->finish_owned(s_.run,
                                                  {.trial = id,
                                                   .attempt = attempt,
                                                   .status = status,
                                                   .reason = reason,
                                                   .stderr_tail = r.value("stderr_tail", ""),
                                                   .at = end,
                                                   .final = final},
                                                  claim_for);
    if (claim_for) *next = {.asked = true, .claim = std::move(f.next)};
    if (!f.applied) {
      dropped();
      release_parked();
      return;
    }
    s_.algorithms->on_end(*s_.store, id, status, final);  // no scheduler: never a restart
    finished(id, attempt, group, ran, status, final, reason, end);
    return;
  }
  s_.store->begin();
  sync_algorithms(false);
  // A scheduler may restart the trial (PBT's exploit): first in line, as
  // it continues from a checkpoint.
  if (auto params = s_.algorithms->on_end(*s_.store, id, status, final)) {
    final = false;
    if (!s_.shared) s_.queue.push_front({id, std::move(*params), attempt + 1});
  }
  s_.store->finish_attempt(id, attempt, status, reason, r.value("stderr_tail", ""), end, final);
  finished(id, attempt, group, ran, status, final, reason, end);
}

void Coordinator::finished(std::uint64_t id, int attempt, int group, const Running& ran,
                           TrialStatus status, bool final, const std::string& reason, double end) {
  ended(id, attempt, group, ran, std::string(trial_status_name(status)), final, reason, end);
  if (final) {
    ++finished_this_run_;
    if (status == TrialStatus::kFailed) {
      ++s_.summary.failed;
      ++failed_this_run_;
      if (s_.config->max_failures &&
          static_cast<std::int64_t>(s_.summary.failed) > *s_.config->max_failures) {
        s_.summary.too_many_failures = true;
        stop_sweep("more than max_failures (" + std::to_string(*s_.config->max_failures) +
                   ") trials failed");
      } else if (s_.summary.unbounded && !s_.config->max_failures &&
                 failed_this_run_ >= kUnboundedInitialFailures &&
                 failed_this_run_ == finished_this_run_) {
        // An unbounded sweep whose every trial fails would fail forever.
        s_.summary.too_many_failures = true;
        stop_sweep("the first " + std::to_string(failed_this_run_) +
                   " trials of this run failed and none finished, so this unbounded sweep "
                   "stops (as W&B's agent does); max_failures sets the limit");
      }
    } else {
      ++s_.summary.completed;
    }
  }
  // The finished trial is durable before its group gets new work.
  maybe_commit(true);
  // A retry may be waiting for a parked group; the last result may end the sweep.
  release_parked();
}

void Coordinator::dispatch(int source, int group, Claimed* claimed) {
  if (claimed && claimed->asked) {  // claimed when it could start
    dispatch_shared(source, group, claimed);
    return;
  }
  if (!stopping_ && disk_full()) {  // wait_out_full_disk() releases it
    parked_.emplace_back(source, group);
    return;
  }
  // max_concurrent_trials: a trial is running (the cap is >= 1), and
  // record_result() releases the parked group when one ends.
  if (!stopping_ && s_.config->max_concurrent_trials &&
      static_cast<std::int64_t>(running_.size()) >= *s_.config->max_concurrent_trials) {
    parked_.emplace_back(source, group);
    return;
  }
  if (s_.shared) {
    dispatch_shared(source, group);
    return;
  }
  if (!stopping_) {
    // ASHA with promotion: pause (Li et al. 2020, Algorithm 2): a free
    // group first resumes a promotable paused trial, and only then takes
    // a new config; once nothing runs and no config is left, the scheduler
    // may relax its rule (drained) so that the best go on to the end.
    std::optional<QueuedTrial> promoted = promotion(false);
    if (!promoted && s_.queue.empty()) {
      s_.store->begin();
      if (auto t = s_.algorithms->propose(*s_.store)) {
        if (s_.summary.unbounded) ++s_.summary.planned;
        s_.queue.push_back({t->first, t->second, 1});
      }
    }
    if (!promoted && s_.queue.empty() && running_.empty()) promoted = promotion(true);
    if (promoted) s_.queue.push_front(std::move(*promoted));
  }
  if (!stopping_ && !s_.queue.empty()) {
    QueuedTrial t = std::move(s_.queue.front());
    s_.queue.pop_front();
    const double now = unix_now();
    const auto& [ranks, hosts] = group_where_[group];
    s_.store->begin();
    s_.store->start_attempt(t.id, t.attempt, s_.run, group, ranks, hosts, now);
    s_.algorithms->on_start(t.id, t.params);
    running_[group] = {t.id, t.attempt, now};
    reply(source, {{"k", "trial"}, {"t", t.id}, {"a", t.attempt}, {"p", t.params}}, group);
    progress_.trial_started(t.id, t.attempt, group, t.params);
    return;
  }
  if (stopping_ || running_.empty()) {
    say_done(source, group);
    return;
  }
  parked_.emplace_back(source, group);
}

std::optional<QueuedTrial> Coordinator::promotion(bool drained) {
  if (!s_.algorithms->pauses()) return std::nullopt;
  s_.store->begin();  // the offer is saved with the attempt that resumes it
  const auto id = s_.algorithms->next_promotion(drained);
  if (!id) return std::nullopt;
  QueuedTrial t{*id, nlohmann::ordered_json::object(), 1};
  if (auto row = s_.store->trial(*id)) {
    t.params = row->params;
    t.attempt = row->attempts + 1;
  }
  // Counted when it paused (recorded stopped); it runs again now. Its
  // checkpoint directory is its own: the attempt continues from it.
  if (s_.summary.completed > 0) --s_.summary.completed;
  return t;
}

void Coordinator::release_parked() {
  auto parked = std::move(parked_);
  parked_.clear();
  for (auto [source, group] : parked) dispatch(source, group);
}

void Coordinator::dispatch_shared(int source, int group, Claimed* claimed) {
  SharedSweep& shared = *s_.store->shared();
  const bool asked = claimed && claimed->asked;
  if (stopping_ && asked && claimed->claim) {
    // Claimed with the last result, and the job stops since: it goes back.
    s_.store->begin();
    s_.store->interrupt_attempt(claimed->claim->id, claimed->claim->attempt,
                                "not started: the job is stopping", unix_now());
    maybe_commit(true);
  }
  if (!stopping_) {
    maybe_commit(true);  // a claim commits on its own, outside a transaction
    const auto& [ranks, hosts] = group_where_[group];
    for (int round = 0; round < 2; ++round) {
      std::optional<Claim> c = round == 0 && asked
                                   ? std::move(claimed->claim)
                                   : shared.claim_trial(s_.run, group, ranks, hosts, unix_now());
      // A trial whose jobs kept dying under it (a crash of its rank takes
      // the job with it) is not handed to another job forever.
      while (c && c->crashed > s_.config->retries + kCrashesForgiven) {
        const std::string why = "the job running it ended under it " +
                                std::to_string(c->crashed) +
                                " times (a crash of its rank?); not retried again";
        s_.store->begin();
        s_.store->finish_attempt(c->id, c->attempt, TrialStatus::kFailed, why, "", unix_now(),
                                 true);
        maybe_commit(true);
        ++s_.summary.failed;
        progress_.message("xpscale: trial " + std::to_string(c->id) + " failed: " + why);
        c = shared.claim_trial(s_.run, group, ranks, hosts, unix_now());
      }
      if (c) {
        const double now = unix_now();
        if (s_.algorithms->has_scheduler()) {
          s_.store->begin();
          sync_algorithms(true);
          s_.algorithms->on_start(c->id, c->params);
          maybe_commit(true);
        }
        running_[group] = {c->id, c->attempt, now};
        reply(source, {{"k", "trial"}, {"t", c->id}, {"a", c->attempt}, {"p", c->params}},
              group);
        progress_.trial_started(c->id, c->attempt, group, c->params);
        return;
      }
      // None queued: the searcher may draw one (bayes, or an unbounded
      // sweep), from every job's results and with the sweep's next id.
      if (round > 0 || !more_proposals_) break;
      s_.store->begin();
      shared.lock_sweep();
      s_.algorithms->restore(*s_.store);
      s_.algorithms->set_next_trial(shared.next_trial_id());
      const auto t = s_.algorithms->propose(*s_.store);
      maybe_commit(true);
      if (!t) {
        more_proposals_ = false;
        break;
      }
      if (s_.summary.unbounded) ++s_.summary.planned;
    }
  }
  if (stopping_) {
    say_done(source, group);
    return;
  }
  // Trials running in other jobs may come back (a failure with retries
  // left, a job lost): wait for them, polled by shared_upkeep().
  counts_ = shared.heartbeat(s_.run);
  if (running_.empty() && counts_.queued == 0 && counts_.running == 0) {
    say_done(source, group);
    return;
  }
  parked_.emplace_back(source, group);
}

bool Coordinator::sync_algorithms(bool scheduler_only) {
  if (!s_.shared || !(scheduler_only ? s_.algorithms->has_scheduler()
                                     : s_.algorithms->stateful()))
    return false;
  s_.store->shared()->lock_sweep();
  s_.algorithms->restore(*s_.store);
  return true;
}

void Coordinator::shared_upkeep() {
  SharedSweep& shared = *s_.store->shared();
  const double now = unix_now();
  if (now - last_heartbeat_ >= 2) {
    last_heartbeat_ = now;
    counts_ = shared.heartbeat(s_.run);
    if (!counts_.alive && !s_.summary.preempted) {
      // Another job found this one's lease expired (the store did not
      // answer, or this job was stopped for longer than --lease) and took
      // its trials: their results here would be dropped.
      begin_preemption("this job lost its lease (its connection to the store dropped, or it "
                       "did not renew for " +
                       std::to_string(static_cast<int>(shared.lease())) +
                       " s, --lease) and other jobs took its trials");
    }
  }
  if (now - last_reap_ >= 5) {
    last_reap_ = now;
    if (const int n = shared.reap(s_.run, now); n > 0) {
      progress_.message("xpscale: " + std::to_string(n) + (n == 1 ? " trial" : " trials") +
                        " of jobs that ended or stopped renewing their lease go back to the "
                        "queue");
      last_poll_ = 0;  // offer them now
    }
    // And this job's own attempts that no group runs (a claim replayed
    // after its reply was lost): else the sweep would wait on them forever.
    std::vector<std::pair<std::uint64_t, int>> held;
    for (const auto& [group, r] : running_) held.emplace_back(r.id, r.attempt);
    if (const int n = shared.release_untracked(s_.run, held, now); n > 0) {
      progress_.message("xpscale: " + std::to_string(n) + (n == 1 ? " trial" : " trials") +
                        " this job had claimed but was not running (a store call replayed "
                        "after a lost reply) go back to the queue");
      last_poll_ = 0;
    }
  }
  if (!parked_.empty() && now - last_poll_ >= 1) {
    last_poll_ = now;
    release_parked();
  }
}

void Coordinator::handle_report(int source, const nlohmann::json& body) {
  const int group = body.at("g").get<int>();
  const auto id = body.at("t").get<std::uint64_t>();
  const int attempt = body.at("a").get<int>();
  const auto step = body.at("step").get<std::int64_t>();
  const auto& metrics = body.at("m");
  const double now = body.value("time", unix_now());
  const auto value = metric_value(metrics);
  if (!value && s_.config->metric && metrics.is_object() &&
      metrics.contains(s_.config->metric->name))
    not_a_number_.insert(id);  // reported, but NaN, inf or not a number
  const Goal goal = s_.config->metric ? s_.config->metric->goal : Goal::kMinimize;
  s_.store->begin();
  s_.store->add_metrics(id, attempt, step, now, value, metrics, goal);
  if (value && (!s_.best || better(*value, *s_.best))) {
    s_.best = value;
    s_.best_trial = id;
  }

  bool stop = false;
  std::string reason;
  auto it = running_.find(group);
  if (it != running_.end() && value && (!it->second.best || better(*value, *it->second.best)))
    it->second.best = value;
  if (it != running_.end() && it->second.reports++ == 0 && !value && s_.config->metric)
    warn_missing_metric(id, metrics);
  if (body.value("pre", false)) begin_preemption();
  if (s_.summary.preempted) {
    stop = true;
    reason = "preempted";
  }
  if (!stop && value && s_.config->metric && s_.config->metric->target) {
    const double target = *s_.config->metric->target;
    if (goal == Goal::kMaximize ? *value >= target : *value <= target) {
      stop = true;
      reason = "target";
      stop_sweep("trial " + std::to_string(id) + " reached the metric target");
    }
  }
  if (!stop && s_.config->max_steps && step >= *s_.config->max_steps) {
    stop = true;
    reason = "max_steps";
  }
  // In-process trials hear their time limit here. External ones are ended
  // at it by their runner, which knows whether the process was still
  // running: a report read late (the rank was descheduled or stopped) from
  // a process that had already exited must not fail it.
  if (!stop && s_.config->resources.time_limit_s && !s_.config->is_external() &&
      it != running_.end() && now - it->second.started > *s_.config->resources.time_limit_s) {
    stop = true;
    reason = "time_limit";
  }
  bool synced = false;
  if (!stop) {
    if (value) synced = sync_algorithms(true);
    const auto d = s_.algorithms->on_report(id, step, metrics, value);
    stop = d.stop;
    reason = d.reason;
  }
  reply(source, {{"k", "decision"}, {"stop", stop}, {"reason", reason}});
  maybe_commit(synced);  // the sweep's lock is not held past this decision
  // A trial that goes on past a rung makes the rung larger, and may make a
  // paused trial there promotable: a waiting group may take it now.
  if (!stop && value && !parked_.empty() && s_.algorithms->pauses()) release_parked();
}

void Coordinator::reply(int source, const nlohmann::json& body, int group) {
  const bool answers_in_flight = in_flight_ && std::get<0>(*in_flight_) == source;
  if (batching_) {
    held_replies_.push_back({source, group, body});
  } else {
    send_json(ctrl_, source, kTagReply, body);
  }
  if (answers_in_flight) in_flight_.reset();
}

void Coordinator::say_done(int source, int group) {
  reply(source, {{"k", "done"}});
  ++done_sent_;
  // Its ranks leave their group loop and stop their heartbeats.
  for (std::size_t r = 0; r < s_.group_of_rank.size() && r < heard_.size(); ++r)
    if (s_.group_of_rank[r] == group) heard_[r] = std::numeric_limits<double>::infinity();
}

void Coordinator::stop_sweep(const std::string& reason) {
  if (stopping_) return;
  stopping_ = true;
  release_parked();  // groups waiting for work are told done
  s_.summary.stopped_early = true;
  s_.summary.stop_reason = reason;
  if (!s_.quiet)
    progress_.message("xpscale: " + reason + "; no new trials start, running ones finish");
}

void Coordinator::check_stop_request() {
  const double now = unix_now();
  if (now - last_stop_check_ < 1.0 || s_.summary.preempted) return;
  last_stop_check_ = now;
  const auto request = read_stop_request(s_.config->out_dir);
  // The request there when this run started was meant for an earlier run.
  // (Compared as written, not with this node's clock: nodes' clocks differ.)
  if (!request || (s_.old_stop_request && request->at == *s_.old_stop_request)) return;
  const std::string by = request->by.empty() ? "" : " (" + request->by + ")";
  if (request->cancel) {
    s_.summary.cancelled = true;
    s_.summary.stopped_early = true;
    s_.summary.stop_reason = "cancelled by `xpscale stop --cancel`" + by;
    begin_preemption("cancelled by xpscale stop --cancel");
  } else if (!stopping_) {
    stop_sweep("stopped by `xpscale stop`" + by);
  }
}

void Coordinator::begin_preemption(const std::string& reason) {
  if (s_.summary.preempted) return;
  request_preemption();  // this rank's external trials forward the signal too
  s_.summary.preempted = true;
  s_.summary.signal = termination_signal();
  stopping_ = true;
  const std::string why = !reason.empty()     ? reason
                          : s_.summary.signal ? std::string("interrupted by SIG") +
                                                    sigabbrev_np(s_.summary.signal)
                                              : "preempted";
  // Recorded now, not when the groups answer: a SIGKILL may follow (Slurm's
  // KillWait, mpirun's abort), and then the attempts are not left running.
  s_.store->begin();
  for (const auto& [group, r] : running_)
    s_.store->interrupt_attempt(r.id, r.attempt, why, unix_now());
  maybe_commit(true);
  if (!s_.quiet)
    progress_.message("xpscale: " + why +
                      (s_.summary.signal || !reason.empty() ? "" : " (SIGUSR1)") +
                      ": no new trials start, " + std::to_string(running_.size()) +
                      (s_.summary.signal ? " running ones are ended and recorded interrupted"
                                         : " running ones checkpoint and stop"));
  release_parked();
}

void Coordinator::record_preempted(std::uint64_t id, int attempt, int group, const Running& ran,
                                   const nlohmann::json& r) {
  begin_preemption();
  requeue_interrupted(id, attempt, group, ran, r.value("reason", "preempted"),
                      r.value("end", unix_now()));
}

void Coordinator::requeue_interrupted(std::uint64_t id, int attempt, int group, const Running& ran,
                                      const std::string& reason, double end) {
  s_.store->begin();
  s_.store->interrupt_attempt(id, attempt, reason, end);
  ended(id, attempt, group, ran, "interrupted", false, reason, end);
  // Back in the queue, first: the summary counts it as not run, and it
  // continues from its checkpoint (in this run, or the next one).
  if (!s_.shared) {  // a shared sweep's queue is the store's queued trials
    QueuedTrial t{id, {}, attempt + 1};
    if (auto row = s_.store->trial(id)) t.params = row->params;
    s_.queue.push_front(std::move(t));
  }
  maybe_commit(true);
  release_parked();
}

void Coordinator::maybe_commit(bool force) {
  if (!s_.store->in_transaction()) return;
  if (batching_ && force) {  // flush_batch() commits before any reply goes out
    commit_owed_ = true;
    return;
  }
  const double now = unix_now();
  if (force || now - last_commit_ >= kCommitEvery) {
    s_.algorithms->save(*s_.store);  // in the transaction of the results it reflects
    s_.store->commit();
    last_commit_ = now;
  }
}

void Coordinator::warn_missing_metric(std::uint64_t id, const nlohmann::json& metrics) {
  std::string has;
  if (metrics.is_object())
    for (const auto& [name, v] : metrics.items()) has += (has.empty() ? "" : ", ") + name;
  const auto& name = s_.config->metric->name;
  const bool there = metrics.is_object() && metrics.contains(name);
  progress_.message("xpscale: warning: trial " + std::to_string(id) + ": metric '" + name +
                    (there ? "' is not a number in the first report (it has: "
                           : "' not in the first report (it has: ") +
                    (has.empty() ? "nothing" : escaped(has, 200, Escape::kControl)) + ")");
}

std::optional<double> Coordinator::metric_value(const nlohmann::json& metrics) const {
  if (!s_.config->metric || !metrics.is_object()) return std::nullopt;
  auto it = metrics.find(s_.config->metric->name);
  if (it == metrics.end() || !it->is_number()) return std::nullopt;
  const double v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

bool Coordinator::better(double a, double b) const {
  return s_.config->metric && s_.config->metric->goal == Goal::kMaximize ? a > b : a < b;
}

void Coordinator::progress() {
  const double now = unix_now();
  if (progress_.due(now)) progress_.update(snapshot(now, false), now);
}

ProgressSnapshot Coordinator::snapshot(double now, bool final) {
  ProgressSnapshot p;
  p.completed = s_.summary.completed;
  p.failed = s_.summary.failed;
  p.running = running_.size();
  p.queued = s_.queue.size();
  p.planned = s_.summary.planned;
  p.unbounded = s_.summary.unbounded;
  p.elapsed_s = now - started_;
  if (s_.best && s_.config->metric) {
    p.best = s_.best;
    p.best_trial = s_.best_trial;
    // Read once per new best; not from a store that stopped answering (a
    // read would wait out --store-retry again).
    if (best_params_of_ != s_.best_trial && error_category_ != ErrorCategory::kUnavailable) {
      best_params_of_ = s_.best_trial;
      best_params_ = nullptr;
      try {
        if (auto row = s_.store->trial(s_.best_trial)) best_params_ = row->params;
      } catch (const std::exception&) {  // shown without params; the run goes on
      }
    }
    p.best_params = best_params_;
  }
  const std::uint64_t left = p.queued + p.running;
  if (!final && !s_.summary.unbounded && finished_this_run_ > 0 && left > 0)
    p.eta_s = p.elapsed_s / static_cast<double>(finished_this_run_) * static_cast<double>(left);
  double busy = busy_s_;
  for (const auto& [group, r] : running_) busy += std::max(0.0, now - r.started);
  if (s_.groups > 0 && p.elapsed_s > 0)
    p.busy_fraction = std::min(1.0, busy / (s_.groups * p.elapsed_s));
  return p;
}

nlohmann::ordered_json Coordinator::started_fields() const {
  const auto& m = s_.config->metric;
  return {{"run", s_.run},
          {"out_dir", s_.config->out_dir},
          {"planned", s_.summary.planned},
          {"unbounded", s_.summary.unbounded},
          {"skipped", s_.summary.skipped},
          {"resumed", s_.resumed},
          {"groups", s_.groups},
          {"ranks_per_trial", s_.config->resources.ranks_per_trial},
          {"metric", m ? nlohmann::ordered_json(m->name) : nullptr},
          {"goal", m ? nlohmann::ordered_json(m->goal == Goal::kMaximize ? "maximize" : "minimize")
                     : nullptr}};
}

nlohmann::ordered_json Coordinator::ended_fields(const ProgressSnapshot& last) const {
  const auto& r = s_.summary;
  return {{"status", run_status()},
          {"exit_status", internal_error_ ? exit_status_of(error_category_) : exit_status(r)},
          {"planned", r.planned},
          {"unbounded", r.unbounded},
          {"completed", r.completed},
          {"failed", r.failed},
          {"skipped", r.skipped},
          {"queued", r.queued},
          {"stopped_early", r.stopped_early},
          {"preempted", r.preempted},
          {"cancelled", r.cancelled},
          {"stop_reason", r.stop_reason},
          {"wall_s", std::round(r.wall_s * 1e3) / 1e3},
          {"best_value", last.best ? nlohmann::ordered_json(*last.best) : nullptr},
          {"best_trial", last.best ? nlohmann::ordered_json(last.best_trial) : nullptr},
          {"best_params", last.best_params},
          {"busy_fraction", std::round(last.busy_fraction * 1e4) / 1e4}};
}

}  // namespace xpscale::detail
