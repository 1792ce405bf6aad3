#pragma once
// Searchers propose trials' parameters. Grid, random and sobol need no
// results: trial i's parameters are a function of (config, seed, i). TPE
// (tpe_searcher.h) is adaptive: it observes finished trials and proposes
// the next one from them, so the coordinator asks it only when a group is
// free.
//
// Every searcher is deterministic: the same config (and seed) and the same
// observations give the same trials, in the same order, on every machine
// and compiler. state()/restore() carry an adaptive searcher's observations
// through the store (Store::put_state), so a resumed sweep proposes what an
// uninterrupted one would have.
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/config/sweep_config.h"

namespace xpscale {

// How a trial's (last) attempt ended. kStopped means a scheduler stopped it
// early (its score is from a shorter run); a trial stopped by metric.target
// or max_steps counts as kCompleted. kFailed carries no score.
enum class TrialEnd { kCompleted, kStopped, kFailed };

// What an adaptive searcher learns from a finished trial. score: the sweep
// metric's last reported value, oriented so that lower is better (nullopt
// when the trial reported none); resource: how far it got (last step).
struct Observation {
  TrialEnd end = TrialEnd::kCompleted;
  std::optional<double> score;
  double resource = 0;
};

class Searcher {
 public:
  virtual ~Searcher() = default;
  // Parameters of trial `index`; nullopt once the space is exhausted (grid).
  virtual std::optional<Params> suggest(std::uint64_t index) = 0;
  // Number of distinct trials, if finite (grid); nullopt if unbounded.
  virtual std::optional<std::uint64_t> size() const { return std::nullopt; }
  // True when suggest() depends on observe(): trials are then proposed one
  // at a time as groups free up, not planned up front.
  virtual bool adaptive() const { return false; }
  // Trial `index` (with these params) ended. Non-adaptive searchers ignore it.
  virtual void observe(std::uint64_t /*index*/, const Params& /*params*/, const Observation&) {}
  // What observe() has seen, as JSON (null for searchers that keep nothing);
  // restore() takes it back and throws Error for a state it did not write.
  virtual nlohmann::json state() const { return nullptr; }
  virtual void restore(const nlohmann::json& /*state*/) {}
};

// Builds the config's searcher. Throws ConfigError for a space the method
// cannot search (a continuous parameter in a grid, a grid too large to
// count). method: bayes builds TPE with its defaults (tpe_searcher.h).
std::unique_ptr<Searcher> make_searcher(const SweepConfig& config);

struct PlannedTrial {
  std::uint64_t id = 0;
  Params params;
};

// How many trials the sweep runs: the grid's size capped by the budget, or
// the budget (limit if given, else trials/run_cap); nullopt when that is
// unbounded (random, sobol or bayes without a budget: as under W&B, trials
// are drawn until the sweep is stopped).
std::optional<std::uint64_t> trial_limit(const SweepConfig& config, const Searcher& searcher,
                                         std::optional<std::int64_t> limit = std::nullopt);

// The trials a sweep would run, in memory (for tests and small sweeps): the grid (capped by the
// trial budget), or the first `limit` (default: the trial budget) random/sobol suggestions. Throws
// ConfigError when the number of trials is unbounded and no limit is given.
std::vector<PlannedTrial> plan_trials(const SweepConfig& config,
                                      std::optional<std::int64_t> limit = std::nullopt);

}  // namespace xpscale
