#include "group_worker.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <iostream>

#include "xpscale/collectives/error.h"
#include "xpscale/coordinator/preemption.h"
#include "xpscale/coordinator/protocol.h"

namespace xpscale::detail {

// A member's kTagOutcome message.
GroupWorker::Outcome GroupWorker::outcome_of(const nlohmann::json& body) {
  return {body.value("ok", false), body.value("reason", ""), body.value("stderr_tail", ""),
          body.value("preempted", false)};
}

namespace {

std::string describe_current_exception() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

}  // namespace

void GroupWorker::run(const TrainFn& train) {
  if (ctx_.group_rank == 0)
    leader_loop(train);
  else
    member_loop(train);
}

void GroupWorker::leader_loop(const TrainFn& train) {
  nlohmann::json result = nullptr;
  for (;;) {
    send_json(ctx_.ctrl, 0, kTagRequest,
              {{"k", "next"},
               {"g", ctx_.group},
               {"ranks", ctx_.ranks},
               {"hosts", ctx_.hosts_text},
               {"pre", preemption_requested()},
               {"result", result}});
    auto reply = recv_json(ctx_.ctrl, 0, kTagReply).body;
    const bool done = reply.value("k", "") != "trial";
    if (!done) ++seq_;
    reply["seq"] = seq_;
    for (int m = 1; m < ctx_.group_size; ++m) send_json(ctx_.gctl, m, kTagTrial, reply);
    if (done) return;
    member_outcomes_.clear();
    const Outcome own = run_trial(train, reply);
    collect_outcomes();
    result = result_of(own);
  }
}

void GroupWorker::member_loop(const TrainFn& train) {
  for (;;) {
    auto msg = recv_json(ctx_.gctl, 0, kTagTrial).body;
    if (msg.value("k", "") != "trial") return;
    seq_ = msg.at("seq").get<std::int64_t>();
    const Outcome own = run_trial(train, msg);
    send_json(ctx_.gctl, 0, kTagOutcome,
              {{"seq", seq_},
               {"ok", own.ok},
               {"reason", own.reason},
               {"stderr_tail", own.stderr_tail},
               {"preempted", own.preempted}});
  }
}

GroupWorker::Outcome GroupWorker::run_trial(const TrainFn& train, const nlohmann::json& msg) {
  trial_ = msg.at("t").get<std::uint64_t>();
  attempt_ = msg.at("a").get<int>();
  last_stop_reason_.clear();
  start_ = unix_now();
  Outcome out;
  try {
    Trial::Info info;
    info.id = trial_;
    info.attempt = attempt_;
    info.params = msg.at("p");
    info.trial_dir = trial_dir_of(ctx_.out_dir, trial_);
    info.checkpoint_dir = checkpoint_dir_of(ctx_.out_dir, trial_);
    info.group = ctx_.group;
    info.group_rank = ctx_.group_rank;
    info.group_size = ctx_.group_size;
    info.world_rank = ctx_.world_rank;
    info.local_rank = ctx_.local_rank;
    info.local_size = ctx_.local_size;
    info.hosts = ctx_.hosts;
    info.time_limit_s = ctx_.time_limit_s;
    info.data = ctx_.data;
    Trial trial(std::move(info), *ctx_.comm, *this);
    train(trial);
  } catch (const TrialPreempted& e) {
    out.preempted = true;
    out.reason = e.what();
  } catch (const TrialFailed& e) {
    out = {false, e.what(), e.stderr_tail()};
  } catch (...) {
    out = {false, describe_current_exception(), ""};
  }
  return out;
}

Decision GroupWorker::ask_coordinator(std::int64_t step, const nlohmann::json& metrics,
                                      std::string& reason) {
  send_json(ctx_.ctrl, 0, kTagRequest,
            {{"k", "report"},
             {"g", ctx_.group},
             {"t", trial_},
             {"a", attempt_},
             {"step", step},
             {"time", unix_now()},
             {"pre", preemption_requested()},
             {"m", metrics}});
  auto reply = recv_json(ctx_.ctrl, 0, kTagReply).body;
  if (!reply.value("stop", false)) {
    reason.clear();
    return Decision::kContinue;
  }
  reason = reply.value("reason", "stopped");
  last_stop_reason_ = reason;
  return Decision::kStop;
}

Decision GroupWorker::report_as_leader(std::int64_t step, const nlohmann::json& metrics,
                                       std::string& reason) {
  if (ctx_.group_rank != 0)
    throw TrialError("report_as_leader() called on group rank " + std::to_string(ctx_.group_rank) +
                     "; only the group's leader (rank 0) may");
  return ask_coordinator(step, metrics, reason);
}

Decision GroupWorker::report(std::int64_t step, const nlohmann::json& metrics,
                             std::string& reason) {
  if (ctx_.group_rank != 0) {
    send_json(ctx_.gctl, 0, kTagReport, {{"seq", seq_}, {"step", step}});
    for (;;) {
      auto d = recv_json(ctx_.gctl, 0, kTagDecision).body;
      if (!is_current(d)) continue;  // meant for a trial this rank has left
      if (!d.value("stop", false)) {
        reason.clear();
        return Decision::kContinue;
      }
      reason = d.value("reason", "stopped");
      last_stop_reason_ = reason;
      return Decision::kStop;
    }
  }
  // Leader: wait until every member is in report() or has left the trial.
  std::vector<int> waiting;
  for (int m = 1; m < ctx_.group_size; ++m) {
    if (member_outcomes_.count(m)) continue;
    for (;;) {
      auto msg = recv_json(ctx_.gctl, m, MPI_ANY_TAG);
      if (!is_current(msg.body)) continue;
      if (msg.tag == kTagReport) {
        waiting.push_back(m);
        break;
      }
      if (msg.tag == kTagOutcome) {
        member_outcomes_[m] = outcome_of(msg.body);
        break;
      }
    }
  }
  Decision d = ask_coordinator(step, metrics, reason);
  if (!member_outcomes_.empty() && d == Decision::kContinue) {
    const auto& [rank, o] = *member_outcomes_.begin();
    reason = "group rank " + std::to_string(rank) + " left the trial" +
             (o.ok ? " (its train function returned)" : ": " + o.reason);
    last_stop_reason_ = reason;
    d = Decision::kStop;
  }
  for (int m : waiting)
    send_json(ctx_.gctl, m, kTagDecision,
              {{"seq", seq_}, {"stop", d == Decision::kStop}, {"reason", reason}});
  return d;
}

void GroupWorker::collect_outcomes() {
  for (int m = 1; m < ctx_.group_size; ++m) {
    while (!member_outcomes_.count(m)) {
      auto msg = recv_json(ctx_.gctl, m, MPI_ANY_TAG);
      if (!is_current(msg.body)) continue;
      if (msg.tag == kTagReport) {
        send_json(
            ctx_.gctl, m, kTagDecision,
            {{"seq", seq_}, {"stop", true}, {"reason", "the trial ended on the group leader"}});
      } else if (msg.tag == kTagOutcome) {
        member_outcomes_[m] = outcome_of(msg.body);
      }
    }
  }
}

nlohmann::json GroupWorker::result_of(const Outcome& own) const {
  std::string status = "completed", reason, tail;
  // The first failing rank, leader first, names the failure.
  std::vector<std::pair<int, const Outcome*>> all{{0, &own}};
  for (const auto& [rank, o] : member_outcomes_) all.emplace_back(rank, &o);
  int failures = 0;
  for (const auto& [rank, o] : all) {
    if (o->ok) continue;
    if (failures++ == 0) {
      reason =
          ctx_.group_size > 1 ? "group rank " + std::to_string(rank) + ": " + o->reason : o->reason;
      tail = o->stderr_tail;
    }
  }
  if (failures > 1) reason += " (and " + std::to_string(failures - 1) + " more ranks failed)";
  const bool preempted =
      last_stop_reason_ == "preempted" ||
      std::any_of(all.begin(), all.end(), [](const auto& o) { return o.second->preempted; });
  if (preempted && failures == 0) {
    // Not a result: the next run resumes the trial from its checkpoint.
    status = "preempted";
    reason = "preempted";
    for (const auto& [rank, o] : all)  // "interrupted by SIGTERM" says more
      if (o->preempted && !o->reason.empty()) reason = o->reason;
  } else if (failures > 0) {
    status = "failed";
  } else if (last_stop_reason_ == "time_limit") {
    status = "failed";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", ctx_.time_limit_s.value_or(0));
    reason = std::string("passed resources.time_limit (") + buf + " s)";
  } else if (!last_stop_reason_.empty()) {
    status = "stopped";
    reason = last_stop_reason_;
  }
  return {{"t", trial_},         {"a", attempt_},   {"status", status}, {"reason", reason},
          {"stderr_tail", tail}, {"start", start_}, {"end", unix_now()}};
}

}  // namespace xpscale::detail
