#include "xpscale/search/searcher.h"

#include <algorithm>

#include "xpscale/search/rng.h"
#include "xpscale/search/sobol.h"
#include "xpscale/search/tpe_searcher.h"

namespace xpscale {
namespace {

// Sobol dimensions: one per parameter that draws (constants do not).
unsigned searchable_count(const SweepConfig& config) {
  unsigned n = 0;
  for (const auto& spec : config.parameters) n += spec.is_searchable() ? 1 : 0;
  return n;
}

// Cartesian product in the config's parameter order; the last parameter
// varies fastest (like nested for-loops written in file order).
class GridSearcher : public Searcher {
 public:
  explicit GridSearcher(const SweepConfig& config) : config_(config) {
    for (const auto& spec : config.parameters) axes_.push_back(spec.grid_values());
    size_ = 1;
    for (const auto& axis : axes_) size_ *= axis.size();
  }
  std::optional<Params> suggest(std::uint64_t index) override {
    if (index >= size_) return std::nullopt;
    std::vector<nlohmann::json> values(axes_.size());
    std::uint64_t rest = index;
    for (std::size_t i = axes_.size(); i-- > 0;) {
      const auto& axis = axes_[i];
      values[i] = axis[rest % axis.size()];
      rest /= axis.size();
    }
    return make_params(config_.parameters, std::move(values));
  }
  std::optional<std::uint64_t> size() const override { return size_; }

 private:
  const SweepConfig config_;  // a copy: a temporary config must not dangle
  std::vector<std::vector<nlohmann::json>> axes_;
  std::uint64_t size_ = 1;
};

// Independent draws: parameter j of trial i uses random_unit(seed, j, i), so
// adding a parameter at the end leaves the others' draws unchanged.
class RandomSearcher : public Searcher {
 public:
  explicit RandomSearcher(const SweepConfig& config) : config_(config) {}
  std::optional<Params> suggest(std::uint64_t index) override {
    std::vector<nlohmann::json> values;
    values.reserve(config_.parameters.size());
    for (std::size_t j = 0; j < config_.parameters.size(); ++j)
      values.push_back(config_.parameters[j].from_unit(random_unit(config_.seed, j, index)));
    return make_params(config_.parameters, std::move(values));
  }

 private:
  const SweepConfig config_;  // a copy: a temporary config must not dangle
};

// One Sobol dimension per searchable parameter, in config order.
class SobolSearcher : public Searcher {
 public:
  explicit SobolSearcher(const SweepConfig& config) : config_(config) {
    if (const unsigned dims = searchable_count(config); dims > 0) sobol_.emplace(dims, config.seed);
  }
  std::optional<Params> suggest(std::uint64_t index) override {
    std::vector<double> u;
    if (sobol_) u = sobol_->point(index);
    std::size_t d = 0;
    std::vector<nlohmann::json> values;
    values.reserve(config_.parameters.size());
    for (const auto& spec : config_.parameters)
      values.push_back(spec.is_searchable() ? spec.from_unit(u[d++]) : spec.from_unit(0.5));
    return make_params(config_.parameters, std::move(values));
  }

 private:
  const SweepConfig config_;  // a copy: a temporary config must not dangle
  std::optional<ScrambledSobol> sobol_;
};

}  // namespace

std::unique_ptr<Searcher> make_searcher(const SweepConfig& config) {
  switch (config.method) {
    case SearchMethod::kGrid:
      return std::make_unique<GridSearcher>(config);
    case SearchMethod::kRandom:
      return std::make_unique<RandomSearcher>(config);
    case SearchMethod::kSobol: {
      const unsigned dims = searchable_count(config);
      if (dims > ScrambledSobol::max_dimensions())
        throw ConfigError({{config.method_where, "method",
                            "method 'sobol' supports at most " +
                                std::to_string(ScrambledSobol::max_dimensions()) +
                                " searched parameters, got " + std::to_string(dims)}});
      return std::make_unique<SobolSearcher>(config);
    }
    case SearchMethod::kBayes: {
      TpeOptions o;
      if (const auto& t = config.tpe) {
        o.gamma = t->gamma.value_or(o.gamma);
        o.prior_weight = t->prior_weight.value_or(o.prior_weight);
        o.n_startup =
            static_cast<int>(std::min<std::int64_t>(t->n_startup.value_or(o.n_startup), 1 << 30));
        o.candidates = static_cast<int>(t->candidates.value_or(o.candidates));  // <= 100000
        o.multivariate = t->multivariate.value_or(o.multivariate);
      }
      return make_tpe_searcher(config, o);
    }
  }
  throw Error("make_searcher: unknown search method");
}

std::optional<std::uint64_t> trial_limit(const SweepConfig& config, const Searcher& searcher,
                                         std::optional<std::int64_t> limit) {
  const std::optional<std::int64_t> budget = limit ? limit : config.trial_budget();
  if (auto size = searcher.size())
    return budget ? std::min<std::uint64_t>(*size, static_cast<std::uint64_t>(*budget)) : *size;
  if (budget) return static_cast<std::uint64_t>(*budget);
  return std::nullopt;
}

std::vector<PlannedTrial> plan_trials(const SweepConfig& config,
                                      std::optional<std::int64_t> limit) {
  auto searcher = make_searcher(config);
  const auto bounded = trial_limit(config, *searcher, limit);
  if (!bounded)
    throw ConfigError({{config.method_where, "trials",
                        "method '" + std::string(search_method_name(config.method)) +
                            "' draws trials until the sweep is stopped; give a limit"}});
  const std::uint64_t n = *bounded;
  std::vector<PlannedTrial> out;
  for (std::uint64_t i = 0; i < n; ++i) {
    auto params = searcher->suggest(i);
    if (!params) break;
    out.push_back({i, std::move(*params)});
  }
  return out;
}

}  // namespace xpscale
