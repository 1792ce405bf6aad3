#include "xpscale/coordinator/sweep_algorithms.h"

#include "xpscale/coordinator/checkpoint_dir.h"

#include <algorithm>

namespace xpscale::detail {
namespace {

constexpr const char* kSearcherState = "searcher";
constexpr const char* kSchedulerState = "scheduler";

}  // namespace

SweepAlgorithms::SweepAlgorithms(const SweepConfig& config, std::unique_ptr<Searcher> searcher,
                                 std::unique_ptr<Scheduler> scheduler, std::uint64_t next_trial,
                                 std::optional<std::uint64_t> planned, std::uint64_t stride)
    : config_(config),
      searcher_(std::move(searcher)),
      scheduler_(std::move(scheduler)),
      next_trial_(next_trial),
      planned_(planned),
      stride_(std::max<std::uint64_t>(stride, 1)),
      maximize_(config.metric && config.metric->goal == Goal::kMaximize) {}

void SweepAlgorithms::restore(const Store& store) {
  if (auto s = store.state(kSearcherState); s && !s->is_null()) searcher_->restore(*s);
  if (auto s = store.state(kSchedulerState); s && scheduler_) scheduler_->restore(*s);
}

void SweepAlgorithms::save(Store& store) {
  if (searcher_dirty_) store.put_state(kSearcherState, searcher_->state());
  if (scheduler_dirty_ && scheduler_) store.put_state(kSchedulerState, scheduler_->state());
  searcher_dirty_ = scheduler_dirty_ = false;
}

std::optional<std::pair<std::uint64_t, Params>> SweepAlgorithms::propose(Store& store) {
  if (planned_ && (!searcher_->adaptive() || next_trial_ >= *planned_)) return std::nullopt;
  if (exhausted_) return std::nullopt;
  auto params = searcher_->suggest(next_trial_);
  if (!params) {
    exhausted_ = true;
    return std::nullopt;
  }
  const std::uint64_t id = next_trial_;
  next_trial_ += stride_;
  store.put_queued_trial(id, *params);
  if (searcher_->adaptive()) searcher_dirty_ = true;
  return std::pair{id, std::move(*params)};
}

std::optional<std::uint64_t> SweepAlgorithms::next_promotion(bool drained) {
  if (!pauses()) return std::nullopt;
  const auto trial = scheduler_->next_promotion(drained);
  if (trial) scheduler_dirty_ = true;  // saved with the attempt that resumes it
  return trial;
}

void SweepAlgorithms::on_start(std::uint64_t trial, const Params& params) {
  if (!scheduler_) return;
  scheduler_->on_start(trial, params);
  scheduler_dirty_ = true;
}

SchedulerDecision SweepAlgorithms::on_report(std::uint64_t trial, std::int64_t step,
                                             const nlohmann::json& metrics,
                                             std::optional<double> value) {
  if (!value) return {};
  double resource = static_cast<double>(step);
  if (config_.scheduler && !config_.scheduler->resource.empty() && metrics.is_object()) {
    auto it = metrics.find(config_.scheduler->resource);
    if (it != metrics.end() && it->is_number()) resource = it->get<double>();
  }
  last_[trial] = {score_of(*value), resource};
  if (!scheduler_) return {};
  scheduler_dirty_ = true;
  SchedulerDecision d = scheduler_->on_report(trial, resource, score_of(*value));
  if (d.stop && !d.complete) stopped_early_.insert(trial);
  return d;
}

std::optional<Params> SweepAlgorithms::on_end(Store& store, std::uint64_t trial, TrialStatus status,
                                              bool final) {
  const TrialEnd end = status == TrialStatus::kFailed ? TrialEnd::kFailed
                       : stopped_early_.count(trial)  ? TrialEnd::kStopped
                                                      : TrialEnd::kCompleted;
  stopped_early_.erase(trial);
  std::optional<TrialRestart> restart;
  if (scheduler_) {
    restart = scheduler_->on_end(trial, end);
    scheduler_dirty_ = true;
  }
  if (restart) {
    copy_checkpoint_dir(checkpoint_dir_of(config_.out_dir, restart->copy_from),
                        checkpoint_dir_of(config_.out_dir, trial));
    store.set_trial_params(trial, restart->params);
    return std::move(restart->params);
  }
  if (!final) return std::nullopt;
  Observation o;
  o.end = end;
  if (auto it = last_.find(trial); it != last_.end() && end != TrialEnd::kFailed) {
    o.score = it->second.score;
    o.resource = it->second.resource;
  }
  if (searcher_->adaptive()) {  // the others ignore observe(): no read of the trial for them
    const auto row = store.trial(trial);
    searcher_->observe(trial, row ? row->params : Params::object(), o);
    searcher_dirty_ = true;
  }
  last_.erase(trial);
  return std::nullopt;
}

}  // namespace xpscale::detail
