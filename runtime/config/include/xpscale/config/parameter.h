#pragma once
// Search-space parameters: the W&B distributions and their transforms.
//
// A parameter maps a number u in the open interval (0, 1) to a value. Every
// searcher (grid aside) draws u from its own source (a seeded PRNG, a
// scrambled Sobol sequence, later TPE) and calls ParameterSpec::from_unit,
// so the distributions are defined once. Values are JSON so that
// categorical parameters can hold strings, bools, lists or maps, as in W&B.
//
// Meaning of min/max (same as W&B):
//   uniform, q_uniform, int_uniform       bounds of the value
//   log_uniform, q_log_uniform            bounds of ln(value)
//   inv_log_uniform                       bounds of ln(1/value)
//   *_values variants                     bounds of the value itself (> 0)
//   normal, q_normal                      value ~ N(mu, sigma)
//   log_normal, q_log_normal              ln(value) ~ N(mu, sigma)
//   beta, q_beta                          value ~ Beta(a, b), in [0, 1]
// q_* variants round to the nearest multiple of q; when q is written as an
// integer the value is an integer. Without q, q is W&B's default 1.0, a
// float: values are whole numbers as floats (3.0), as W&B gives them.
// A grid over q_uniform is W&B's np.arange(min, max, q): min, min + q, ...
// below max (max itself is not a point); integers when min, max and q are.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/config/diagnostics.h"

namespace xpscale {

// A trial's parameters: dotted parameter name -> value, in the config's
// parameter order (nlohmann::ordered_json keeps insertion order).
using Params = nlohmann::ordered_json;

enum class Distribution {
  kConstant,
  kCategorical,
  kIntUniform,
  kUniform,
  kQUniform,
  kLogUniform,
  kLogUniformValues,
  kQLogUniform,
  kQLogUniformValues,
  kInvLogUniform,
  kInvLogUniformValues,
  kNormal,
  kQNormal,
  kLogNormal,
  kQLogNormal,
  kBeta,
  kQBeta,
};

// The config spelling ("q_log_uniform_values") and back; nullopt if unknown.
std::string_view distribution_name(Distribution d);
std::optional<Distribution> distribution_from_name(std::string_view name);
const std::vector<std::string>& distribution_names();

struct ParameterSpec {
  std::string name;  // dotted for nested parameters: "optimizer.lr"
  // The keys from `parameters:` down to this one ({"optimizer", "lr"}): a
  // key may hold a dot itself. Empty means {name}.
  std::vector<std::string> path;
  Distribution distribution = Distribution::kConstant;
  std::vector<nlohmann::json> values;  // constant: one value; categorical: all
  std::vector<double> probabilities;   // categorical only; empty = uniform
  double min = 0, max = 0;
  double q = 1;
  bool q_is_integer = true;     // integer q => integer values (W&B)
  bool bounds_integer = false;  // min and max written as integers (q_uniform grids)
  double mu = 0, sigma = 1;
  double a = 1, b = 1;  // beta, q_beta (W&B's defaults)
  SourceLocation where;

  // At most this many values on one grid axis; more is a mistake that would
  // only exhaust memory.
  static constexpr double kMaxGridValues = 1e6;

  // True when the value set is finite and enumerable (grid search).
  bool is_discrete() const;
  // How many values grid_values() holds (a double: the range may be huge).
  // Throws Error if !is_discrete().
  double grid_size() const;
  // The values a grid enumerates, in order. Throws Error if !is_discrete().
  std::vector<nlohmann::json> grid_values() const;
  // The value at quantile u of the distribution; u must lie in (0, 1).
  nlohmann::json from_unit(double u) const;
  // True when from_unit consumes u (constant parameters do not).
  bool is_searchable() const { return distribution != Distribution::kConstant; }
};

// A trial's Params: values[j] under specs[j].name, in that order. Linear in
// the number of parameters: ordered_json's operator[] looks a key up by a
// scan, so filling Params key by key costs P^2 string compares (0.6 s a
// trial at 20,000 parameters). The names must be unique, as the config
// loader ensures. Throws Error if the sizes differ.
Params make_params(const std::vector<ParameterSpec>& specs, std::vector<nlohmann::json> values);

}  // namespace xpscale
