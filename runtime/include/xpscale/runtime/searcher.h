#pragma once
// Searchers propose trials' parameters. This header has the searchers that
// need no results (grid, random, sobol); adaptive ones (TPE) observe results.
//
// Every searcher is deterministic: the same config (and seed) gives the same
// trials, in the same order, on every machine and compiler.
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/runtime/sweep_config.h"

namespace xpscale {

// A trial's parameters: dotted parameter name -> value, in the config's
// parameter order (nlohmann::ordered_json keeps insertion order).
using Params = nlohmann::ordered_json;

class Searcher {
 public:
  virtual ~Searcher() = default;
  // Parameters of trial `index`; nullopt once the space is exhausted (grid).
  virtual std::optional<Params> suggest(std::uint64_t index) = 0;
  // Number of distinct trials, if finite (grid); nullopt if unbounded.
  virtual std::optional<std::uint64_t> size() const { return std::nullopt; }
};

// Builds the config's searcher. Throws ConfigError for a space the method
// cannot search (a continuous parameter in a grid, a grid too large to
// count) and for methods not built yet (bayes).
std::unique_ptr<Searcher> make_searcher(const SweepConfig& config);

struct PlannedTrial {
  std::uint64_t id = 0;
  Params params;
};

// How many trials the sweep runs: the grid's size capped by the budget, or
// the budget (limit if given, else trials/run_cap). Throws ConfigError when
// that is unbounded.
std::uint64_t planned_trial_count(const SweepConfig& config, const Searcher& searcher,
                                  std::optional<std::int64_t> limit = std::nullopt);

// The trials a sweep would run, in memory (for tests and small sweeps): the grid (capped by the
// trial budget), or the first `limit` (default: the trial budget) random/sobol suggestions. Throws
// ConfigError when the number of trials is unbounded and no limit is given.
std::vector<PlannedTrial> plan_trials(const SweepConfig& config,
                                      std::optional<std::int64_t> limit = std::nullopt);

}  // namespace xpscale
