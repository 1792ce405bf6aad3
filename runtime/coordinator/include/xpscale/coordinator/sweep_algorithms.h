#pragma once
// The coordinator's one hook into searchers and schedulers: it proposes
// trials of adaptive searchers, asks the scheduler on each report, feeds
// ended trials back to both and keeps their state in the store.
//
// Everything here runs on the coordinator thread. Store writes happen in
// the coordinator's open transaction; save() is called right before each
// commit, so the saved states always match the committed results.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "xpscale/schedule/scheduler.h"
#include "xpscale/search/searcher.h"
#include "xpscale/store/store.h"

namespace xpscale::detail {

class SweepAlgorithms {
 public:
  // next_trial: the first trial id that the searcher has not proposed yet;
  // planned: how many trials the sweep runs, nullopt: unbounded (drawn
  // until the sweep stops). Trials are proposed here by an adaptive
  // searcher, and by any searcher of an unbounded sweep, every `stride`-th
  // id from next_trial (a job-array task's share); the trials of a bounded
  // sweep with a searcher that is not adaptive were all queued by prepare().
  SweepAlgorithms(const SweepConfig& config, std::unique_ptr<Searcher> searcher,
                  std::unique_ptr<Scheduler> scheduler, std::uint64_t next_trial,
                  std::optional<std::uint64_t> planned, std::uint64_t stride = 1);

  // The states a previous run saved, if any. Throws Error for a state that
  // does not fit this config.
  void restore(const Store& store);
  // Writes the states that changed since the last save.
  void save(Store& store);

  // The next trial to propose (see the constructor), put into the store as
  // queued; nullopt when there is none (all planned trials exist, or the
  // searcher is exhausted).
  std::optional<std::pair<std::uint64_t, Params>> propose(Store& store);
  // The next id propose() gives (a shared sweep: the store's next free id).
  void set_next_trial(std::uint64_t id) { next_trial_ = id; }
  // Whether a searcher or scheduler keeps state that decisions change.
  bool stateful() const { return scheduler_ != nullptr || searcher_->adaptive(); }
  bool has_scheduler() const { return scheduler_ != nullptr; }
  void on_start(std::uint64_t trial, const Params& params);
  // The scheduler's decision on one report (Continue without a scheduler
  // or without the metric's value).
  SchedulerDecision on_report(std::uint64_t trial, std::int64_t step, const nlohmann::json& metrics,
                              std::optional<double> value);
  // An attempt ended with `status`; `final` when the trial will not be
  // retried. Returns new params when the scheduler restarts the trial
  // (PBT): its checkpoint directory has then been replaced by the donor's
  // copy and the store holds the new params.
  std::optional<Params> on_end(Store& store, std::uint64_t trial, TrialStatus status, bool final);
  // Whether the scheduler pauses trials (ASHA with promotion: pause).
  bool pauses() const { return scheduler_ && scheduler_->pauses(); }
  // A paused trial to resume now (Scheduler::next_promotion); nullopt when
  // none is promotable. `drained`: nothing runs and nothing is queued or
  // left to propose. The offer is saved with the next save().
  std::optional<std::uint64_t> next_promotion(bool drained);

 private:
  struct Last {
    double score = 0, resource = 0;
  };
  double score_of(double value) const { return maximize_ ? -value : value; }

  const SweepConfig& config_;
  std::unique_ptr<Searcher> searcher_;
  std::unique_ptr<Scheduler> scheduler_;
  std::uint64_t next_trial_;
  std::optional<std::uint64_t> planned_;
  std::uint64_t stride_;
  bool maximize_ = false;
  bool exhausted_ = false;  // the searcher has no more trials
  bool searcher_dirty_ = false, scheduler_dirty_ = false;
  std::unordered_map<std::uint64_t, Last> last_;  // latest scored report per trial
  std::set<std::uint64_t> stopped_early_;         // stopped by the scheduler, not complete
};

}  // namespace xpscale::detail
