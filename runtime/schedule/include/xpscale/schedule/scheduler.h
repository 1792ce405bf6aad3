#pragma once
// Schedulers: early stopping and population training, decided per report.
//
// The coordinator (rank 0) asks the sweep's scheduler on every report that
// carries the sweep metric, and tells it when a trial's attempt ends. A
// scheduler sees only numbers:
//   resource  how far the trial has trained: the report's value of
//             scheduler.resource when the metrics hold that key, else the
//             report's step (W&B early_terminate always uses the step);
//   score     the sweep metric oriented so that LOWER IS BETTER (the
//             coordinator negates a metric whose goal is maximize).
// Failed trials contribute no score: a failure is not a bad result.
//
// A scheduler may also pause trials (ASHA with promotion: pause): the
// trial's attempt ends (it is recorded stopped, with the pause in the
// reason) but the trial stays resumable, and when a group is free the
// coordinator asks next_promotion() before it asks the searcher for a new
// config; a trial offered there runs again as its next attempt, from its
// checkpoint directory.
//
// Every scheduler is deterministic (random choices come from rng.h with the
// sweep's seed) and serialisable: state() captures everything it has seen
// and restore() on a fresh scheduler of the same config continues exactly
// where the first left off. The coordinator writes state() into the store
// in the same transaction as the reports it reflects (Store::put_state).
//
// Implementations, one per file: asha_scheduler.cpp (ASHA, Hyperband and
// W&B's hyperband early_terminate share the rung logic there),
// median_stopping.cpp, pbt_scheduler.cpp.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/config/sweep_config.h"
#include "xpscale/search/searcher.h"

namespace xpscale {

struct SchedulerDecision {
  bool stop = false;
  // The stop is the trial's full budget (ASHA at max_resource), not an
  // early stop: searchers then observe the trial as completed.
  bool complete = false;
  std::string reason;  // why, when stop ("asha: rung 3 ...")
  // With stop: the trial is paused, not ended for good: next_promotion()
  // may offer it later. Until then searchers count it as stopped early.
  bool pause = false;
};

// PBT's exploit: the stopped trial runs again from a copy of `copy_from`'s
// checkpoint directory, with `params`.
struct TrialRestart {
  std::uint64_t copy_from = 0;
  Params params;
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // A trial's attempt starts with `params` (PBT keeps them to copy).
  virtual void on_start(std::uint64_t /*trial*/, const Params& /*params*/) {}
  // One report of the sweep metric; see the header comment for the units.
  virtual SchedulerDecision on_report(std::uint64_t trial, double resource, double score) = 0;
  // The attempt ended. A TrialRestart asks the coordinator to run the trial
  // again (PBT exploit); nullopt otherwise.
  virtual std::optional<TrialRestart> on_end(std::uint64_t trial, TrialEnd end) = 0;
  // A paused trial to resume now, asked whenever a group is free and
  // before the searcher; each paused trial is offered at most once per
  // pause (the offer is recorded in state()). `drained`: no trial runs and
  // the searcher has no config left, so nothing will fill the rungs any
  // more (ASHA then promotes the top max(1, floor(n / eta)) of a rung).
  // nullopt: none (schedulers that never pause).
  virtual std::optional<std::uint64_t> next_promotion(bool /*drained*/) { return std::nullopt; }
  // Whether this scheduler pauses trials (next_promotion() can offer one).
  virtual bool pauses() const { return false; }
  // Everything seen so far, as JSON; restore() takes it back. restore()
  // throws Error for a state that this scheduler did not write.
  virtual nlohmann::json state() const = 0;
  virtual void restore(const nlohmann::json& state) = 0;
};

// ASHA (Li et al. 2020), the stop-based asynchronous variant: rungs at
// min_resource * eta^k (k = 0, 1, ...) below max_resource. When a trial
// first reaches a rung, its score there is recorded, and it continues only
// if it ranks in the top max(1, floor(n / eta)) of the n trials recorded at
// that rung so far, itself included; otherwise it stops. No trial ever
// waits for a rung to fill, so the first trials at a rung go on. On every
// later report below its next rung the trial is ranked again at its
// highest rung, by its score recorded there, against the n recorded there
// by then: it stops as soon as it is out of the top max(1, floor(n /
// eta)). That is the paper's promotion rule (promote only what is in the
// top 1/eta of the rung) applied as the rung fills, instead of letting an
// early arrival train to the next rung on the strength of few rivals. At
// max_resource the trial stops (done).
//
// With pause (promotion: pause; the paper's ASHA, Li et al. 2020,
// Algorithm 2, as Ray's HyperBandScheduler pauses): a trial that reaches a
// rung continues only if it is promotable there right away (in the top
// floor(n / eta) of the n recorded at that rung, itself included; no
// max(1, ...): the first arrivals wait); otherwise it is paused there
// (reason "asha: paused at rung k ..."). next_promotion() offers the best
// paused trial that is in the top floor(n / eta) of its rung, highest rung
// first; once drained, the top max(1, floor(n / eta)) (so that a finite
// sweep with fewer than eta^k configs still trains its best to
// max_resource). A promoted trial is not ranked again until its next rung;
// one that reports again while paused (its attempt retried after a crash)
// is promoted then if it is promotable, else paused again.
struct AshaOptions {
  double min_resource = 1;
  double max_resource = 81;
  double eta = 3;
  bool pause = false;
};
std::unique_ptr<Scheduler> make_asha_scheduler(const AshaOptions& options);

// Hyperband as ASHA brackets (Li et al. 2018; asynchronous as in Ray's
// AsyncHyperBand): bracket s (s = 0 .. brackets-1) has rungs starting at
// min_resource * eta^s. A trial joins bracket s with probability
// proportional to Hyperband's bracket size eta^h / (h + 1), h = brackets -
// 1 - s (more trials where there are more rungs to cut them), drawn from
// (seed, trial id).
struct HyperbandOptions {
  AshaOptions asha;
  int brackets = 3;
  std::uint64_t seed = 0;
};
std::unique_ptr<Scheduler> make_hyperband_scheduler(const HyperbandOptions& options);

// W&B's early_terminate {type: hyperband}: milestones ("bands") from
// min_iter * eta^k, or max_iter / eta^k for k = 1 .. s. On every report at
// or past a band, the trial stops when its best score so far (strict: its
// score at the band) is worse than the (1/eta)-quantile of the scores all
// trials had at that band (W&B's threshold: sorted[floor(n / eta)]).
struct WandbHyperbandOptions {
  std::vector<double> bands;
  double eta = 3;
  bool strict = false;
};
std::unique_ptr<Scheduler> make_wandb_hyperband_scheduler(const WandbHyperbandOptions& options);
// The bands W&B derives from early_terminate (sorted, distinct).
std::vector<double> wandb_hyperband_bands(const EarlyTerminateSpec& spec);

// Median stopping rule (Golovin et al. 2017, Google Vizier): at resource r
// >= grace_period, stop a trial whose best score so far is worse than the
// median, over trials that ended (completed or stopped, never failed) and
// reached r, of their running average of scores up to r. Needs at least
// min_samples such trials; until then every trial continues.
struct MedianOptions {
  double grace_period = 0;
  int min_samples = 3;
};
std::unique_ptr<Scheduler> make_median_scheduler(const MedianOptions& options);

// Population based training (Jaderberg et al. 2017). Each trial (member)
// is considered every `interval` of resource: when its latest score ranks
// in the bottom `quantile` of the members that have scores (failed ones
// left out), it stops, copies a top-`quantile` member's checkpoint
// directory and parameters (exploit) and runs again with the parameters
// explored: each searchable parameter is resampled from its distribution
// with probability resample_probability, else perturbed (numbers x0.8 or
// x1.2 within the distribution's range, categories to a neighbour).
struct PbtOptions {
  double interval = 1;
  double quantile = 0.25;
  double resample_probability = 0.25;
  std::uint64_t seed = 0;
};
std::unique_ptr<Scheduler> make_pbt_scheduler(const PbtOptions& options,
                                              std::vector<ParameterSpec> parameters);

// The config's scheduler (scheduler: or early_terminate:), nullptr when it
// has none. Throws ConfigError for a combination it cannot run (no metric).
std::unique_ptr<Scheduler> make_scheduler(const SweepConfig& config);

}  // namespace xpscale
