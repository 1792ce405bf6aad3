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
#include <tuple>

#include "xpscale/coordinator/preemption.h"
#include "xpscale/coordinator/stop_request.h"
#include "xpscale/coordinator/protocol.h"
#include "xpscale/core/text.h"

namespace xpscale::detail {
namespace {

constexpr double kCommitEvery = 0.2;  // seconds between commits of metric rows

std::string clock_text(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "--:--:--";
  const auto s = static_cast<long>(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

}  // namespace

Coordinator::Coordinator(CoordinatorSetup setup, MPI_Comm ctrl)
    : s_(std::move(setup)), ctrl_(ctrl), tty_(isatty(STDERR_FILENO) != 0) {}

void Coordinator::run() noexcept {
  started_ = last_commit_ = last_progress_ = unix_now();
  heard_.assign(s_.group_of_rank.size(), started_);
  try {
    serve();
  } catch (const std::exception& e) {
    internal_error_ = true;
    error_category_ = ErrorCategory::kInternal;
    if (const auto* error = dynamic_cast<const Error*>(&e)) error_category_ = error->category();
    s_.summary.stopped_early = true;
    s_.summary.stop_reason = std::string("coordinator error: ") + e.what();
    std::cerr << "xpscale: coordinator error: " << e.what()
              << "; no new trials start, running ones are stopped at their next report\n";
    // Release every group so that no rank hangs; results that cannot be
    // recorded are lost (their attempts stay running and are retried on
    // resume). First the request whose handling failed: its group waits.
    try {
      stopping_ = true;
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
      std::cerr << "xpscale: cannot release the groups: " << e2.what() << '\n';
    }
  }
  s_.summary.queued = s_.queue.size();
  s_.summary.wall_s = unix_now() - started_;
  // A store that stayed unavailable gets no more waiting: the run row stays
  // "running" and the next run closes it (mark_interrupted).
  if (error_category_ == ErrorCategory::kUnavailable) {
    progress(true);
    return;
  }
  try {
    const auto& r = s_.summary;
    s_.store->begin();
    // An unbounded sweep has planned what it drew: `xpscale report` counts those.
    if (auto row = s_.store->sweep(); row && r.unbounded && row->planned != r.planned) {
      row->planned = r.planned;
      row->updated_at = unix_now();
      s_.store->write_sweep(*row);
    }
    s_.store->end_run(s_.run,
                      internal_error_   ? "error"
                      : r.cancelled     ? "stopped"
                      : r.preempted     ? "preempted"
                      : r.stopped_early ? "stopped"
                      : r.queued == 0   ? "finished"
                                        : "incomplete",
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
    std::cerr << "xpscale: final commit failed: " << e.what() << '\n';
    internal_error_ = true;
  }
  progress(true);
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
  std::cerr << (tty_ ? "\r\033[K" : "") << "xpscale: " << what << "; ending the job (exit "
            << kExitRankLost << "): run the same command again to resume" << std::endl;
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
    std::cerr << (tty_ ? "\r\033[K" : "") << "xpscale: the disk of " << s_.config->out_dir
              << " is full: no trial starts until there is space again (waiting up to "
              << s_.store_retry_s << " s, --store-retry)\n";
  } else if (!disk_full_ && disk_full_since_) {
    std::cerr << (tty_ ? "\r\033[K" : "") << "xpscale: the disk of " << s_.config->out_dir
              << " has space again after " << static_cast<long>(now - *disk_full_since_) << " s\n";
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
    if (!s_.summary.preempted && (preemption_requested() || termination_signal()))
      begin_preemption();
    if (!m) {
      wait_out_full_disk();
      maybe_commit(false);
      progress(false);
      backoff.idle();
      continue;
    }
    backoff.reset();
    const std::string kind = m->body.value("k", "");
    in_flight_.emplace(m->source, kind, m->body.value("g", -1));
    if (kind == "next")
      handle_next(m->source, m->body);
    else if (kind == "report")
      handle_report(m->source, m->body);
    else
      throw Error("unknown control message '" + kind + "' from rank " + std::to_string(m->source));
    in_flight_.reset();  // answered, or parked (then parked_ holds it)
  }
}

void Coordinator::handle_next(int source, const nlohmann::json& body) {
  const int group = body.at("g").get<int>();
  group_where_[group] = {body.value("ranks", ""), body.value("hosts", "")};
  if (body.value("pre", false)) begin_preemption();
  if (!body.at("result").is_null()) record_result(group, body.at("result"));
  dispatch(source, group);
}

void Coordinator::record_result(int group, const nlohmann::json& r) {
  const auto id = r.at("t").get<std::uint64_t>();
  const int attempt = r.at("a").get<int>();
  if (r.at("status") == "preempted") {
    running_.erase(group);
    record_preempted(id, attempt, r);
    return;
  }
  auto status = parse_trial_status(r.at("status").get<std::string>());
  std::string reason = r.value("reason", "");
  running_.erase(group);
  // A trial that ends without ever reporting the sweep's metric (a typo in
  // metric.name, a script that logs another key) has no result: a failure
  // with that reason, retried like any other, rather than a blank row. One
  // stopped before it reported anything (the sweep ended) is not.
  if ((status == TrialStatus::kCompleted || status == TrialStatus::kStopped) && s_.config->metric) {
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
    requeue_interrupted(id, attempt, "failed while the disk of out_dir was full: " + reason,
                        r.value("end", unix_now()));
    return;
  }
  if (status == TrialStatus::kFailed) {
    const int failures = ++s_.failed_attempts[id];
    // A preempted sweep keeps the retry for its next run (it stays queued).
    if (failures <= s_.config->retries && (!stopping_ || s_.summary.preempted)) {
      final = false;
      s_.queue.push_back({id, {}, attempt + 1});
      if (auto row = s_.store->trial(id)) s_.queue.back().params = row->params;
    }
  }
  s_.store->begin();
  // A scheduler may restart the trial (PBT's exploit): first in line, as
  // it continues from a checkpoint.
  if (auto params = s_.algorithms->on_end(*s_.store, id, status, final)) {
    final = false;
    s_.queue.push_front({id, std::move(*params), attempt + 1});
  }
  s_.store->finish_attempt(id, attempt, status, reason, r.value("stderr_tail", ""),
                           r.value("end", unix_now()), final);
  if (final) {
    ++finished_this_run_;
    if (status == TrialStatus::kFailed) {
      ++s_.summary.failed;
      ++failed_this_run_;
      if (!s_.quiet)
        std::cerr << (tty_ ? "\r\033[K" : "") << "xpscale: trial " << id << " failed: " << reason
                  << '\n';
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
  } else if (!s_.quiet) {
    std::cerr << (tty_ ? "\r\033[K" : "") << "xpscale: trial " << id << " attempt " << attempt
              << " failed (" << reason << "); retrying\n";
  }
  // The finished trial is durable before its group gets new work.
  maybe_commit(true);
  // A retry may be waiting for a parked group; the last result may end the sweep.
  release_parked();
}

void Coordinator::dispatch(int source, int group) {
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
  if (!stopping_ && s_.queue.empty()) {
    s_.store->begin();
    if (auto t = s_.algorithms->propose(*s_.store)) {
      if (s_.summary.unbounded) ++s_.summary.planned;
      s_.queue.push_back({t->first, t->second, 1});
    }
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
    reply(source, {{"k", "trial"}, {"t", t.id}, {"a", t.attempt}, {"p", t.params}});
    return;
  }
  if (stopping_ || running_.empty()) {
    say_done(source, group);
    return;
  }
  parked_.emplace_back(source, group);
}

void Coordinator::release_parked() {
  auto parked = std::move(parked_);
  parked_.clear();
  for (auto [source, group] : parked) dispatch(source, group);
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
  if (!stop) {
    const auto d = s_.algorithms->on_report(id, step, metrics, value);
    stop = d.stop;
    reason = d.reason;
  }
  reply(source, {{"k", "decision"}, {"stop", stop}, {"reason", reason}});
  maybe_commit(false);
}

void Coordinator::reply(int source, const nlohmann::json& body) {
  send_json(ctrl_, source, kTagReply, body);
  if (in_flight_ && std::get<0>(*in_flight_) == source) in_flight_.reset();
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
    std::cerr << (tty_ ? "\r\033[K" : "") << "xpscale: " << reason
              << "; no new trials start, running ones finish\n";
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
    std::cerr << (tty_ ? "\r\033[K" : "") << "xpscale: " << why
              << (s_.summary.signal || !reason.empty() ? "" : " (SIGUSR1)")
              << ": no new trials start, "
              << running_.size()
              << (s_.summary.signal ? " running ones are ended and recorded interrupted\n"
                                    : " running ones checkpoint and stop\n");
  release_parked();
}

void Coordinator::record_preempted(std::uint64_t id, int attempt, const nlohmann::json& r) {
  begin_preemption();
  requeue_interrupted(id, attempt, r.value("reason", "preempted"), r.value("end", unix_now()));
}

void Coordinator::requeue_interrupted(std::uint64_t id, int attempt, const std::string& reason,
                                      double end) {
  s_.store->begin();
  s_.store->interrupt_attempt(id, attempt, reason, end);
  // Back in the queue, first: the summary counts it as not run, and it
  // continues from its checkpoint (in this run, or the next one).
  QueuedTrial t{id, {}, attempt + 1};
  if (auto row = s_.store->trial(id)) t.params = row->params;
  s_.queue.push_front(std::move(t));
  maybe_commit(true);
  release_parked();
}

void Coordinator::maybe_commit(bool force) {
  if (!s_.store->in_transaction()) return;
  const double now = unix_now();
  if (force || now - last_commit_ >= kCommitEvery) {
    s_.algorithms->save(*s_.store);  // in the transaction of the results it reflects
    s_.store->commit();
    last_commit_ = now;
  }
}

void Coordinator::warn_missing_metric(std::uint64_t id, const nlohmann::json& metrics) const {
  std::string has;
  if (metrics.is_object())
    for (const auto& [name, v] : metrics.items()) has += (has.empty() ? "" : ", ") + name;
  const auto& name = s_.config->metric->name;
  const bool there = metrics.is_object() && metrics.contains(name);
  std::cerr << (tty_ ? "\r\033[K" : "") << "xpscale: warning: trial " << id << ": metric '" << name
            << (there ? "' is not a number in the first report (it has: "
                      : "' not in the first report (it has: ")
            << (has.empty() ? "nothing" : escaped(has, 200, Escape::kControl)) << ")\n";
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

void Coordinator::progress(bool final) {
  if (s_.quiet) return;
  const double now = unix_now();
  const double interval = tty_ ? 0.5 : s_.progress_interval_s;
  if (!final && now - last_progress_ < interval) return;
  last_progress_ = now;
  const double elapsed = now - started_;
  const std::uint64_t done = s_.summary.completed + s_.summary.failed;
  const std::uint64_t queued = s_.queue.size();
  std::string line = "xpscale: " + std::to_string(done) +
                     (s_.summary.unbounded ? " done (drawing until stopped)"
                                           : "/" + std::to_string(s_.summary.planned) + " done");
  if (s_.summary.failed) line += " (" + std::to_string(s_.summary.failed) + " failed)";
  line +=
      ", " + std::to_string(running_.size()) + " running, " + std::to_string(queued) + " queued";
  if (s_.best && s_.config->metric) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", *s_.best);
    line += ", best " + s_.config->metric->name + " " + buf + " (trial " +
            std::to_string(s_.best_trial) + ")";
  }
  line += ", " + clock_text(elapsed) + " elapsed";
  const std::uint64_t left = queued + running_.size();
  if (!final && !s_.summary.unbounded && finished_this_run_ > 0 && left > 0)
    line += ", ETA " + clock_text(elapsed / static_cast<double>(finished_this_run_) *
                                  static_cast<double>(left));
  if (tty_)
    std::cerr << "\r\033[K" << line << (final ? "\n" : "") << std::flush;
  else
    std::cerr << line << '\n';
}

}  // namespace xpscale::detail
