#include "xpscale/config/parameter.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include <boost/math/distributions/beta.hpp>
#include <boost/math/distributions/normal.hpp>

namespace xpscale {
namespace {

struct NamedDistribution {
  Distribution distribution;
  std::string_view name;
};

constexpr std::array<NamedDistribution, 17> kDistributions{{
    {Distribution::kConstant, "constant"},
    {Distribution::kCategorical, "categorical"},
    {Distribution::kIntUniform, "int_uniform"},
    {Distribution::kUniform, "uniform"},
    {Distribution::kQUniform, "q_uniform"},
    {Distribution::kLogUniform, "log_uniform"},
    {Distribution::kLogUniformValues, "log_uniform_values"},
    {Distribution::kQLogUniform, "q_log_uniform"},
    {Distribution::kQLogUniformValues, "q_log_uniform_values"},
    {Distribution::kInvLogUniform, "inv_log_uniform"},
    {Distribution::kInvLogUniformValues, "inv_log_uniform_values"},
    {Distribution::kNormal, "normal"},
    {Distribution::kQNormal, "q_normal"},
    {Distribution::kLogNormal, "log_normal"},
    {Distribution::kQLogNormal, "q_log_normal"},
    {Distribution::kBeta, "beta"},
    {Distribution::kQBeta, "q_beta"},
}};

// Decimal places of q's shortest decimal form (0.05 -> 2), or -1 if it has
// none short enough. Used to print 0.3 rather than 0.30000000000000004.
int decimals_of(double q) {
  for (int d = 0; d <= 12; ++d) {
    const double scaled = q * std::pow(10.0, d);
    if (std::abs(scaled - std::round(scaled)) <= 1e-9 * std::max(1.0, std::abs(scaled))) return d;
  }
  return -1;
}

nlohmann::json multiple_of_q(double k, const ParameterSpec& p) {
  const double x = k * p.q + 0.0;  // + 0.0 turns -0 into 0
  if (p.q_is_integer && std::abs(x) < 9.0e18) return static_cast<std::int64_t>(std::llround(x));
  const int d = decimals_of(p.q);
  if (d >= 0) {
    const double scale = std::pow(10.0, d);
    const double cleaned = std::round(x * scale) / scale;
    if (std::isfinite(cleaned)) return cleaned;
  }
  return x;
}

nlohmann::json quantize(double x, const ParameterSpec& p) {
  return multiple_of_q(std::round(x / p.q), p);
}

double lerp(double lo, double hi, double u) { return lo + u * (hi - lo); }

double standard_normal_quantile(double u) {
  static const boost::math::normal standard(0.0, 1.0);
  return boost::math::quantile(standard, u);
}

}  // namespace

std::string_view distribution_name(Distribution d) {
  for (const auto& nd : kDistributions)
    if (nd.distribution == d) return nd.name;
  return "unknown";
}

std::optional<Distribution> distribution_from_name(std::string_view name) {
  for (const auto& nd : kDistributions)
    if (nd.name == name) return nd.distribution;
  return std::nullopt;
}

const std::vector<std::string>& distribution_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& nd : kDistributions) out.emplace_back(nd.name);
    return out;
  }();
  return names;
}

bool ParameterSpec::is_discrete() const {
  switch (distribution) {
    case Distribution::kConstant:
    case Distribution::kCategorical:
    case Distribution::kIntUniform:
    case Distribution::kQUniform:
      return true;
    default:
      return false;
  }
}

// A q_uniform grid as W&B builds it (grid_search.py: np.arange(min, max,
// q)): ceil((max - min) / q) points min + k q, so max is not one of them.
double q_grid_count(const ParameterSpec& p) {
  return std::max(0.0, std::ceil((p.max - p.min) / p.q));
}

nlohmann::json q_grid_point(double k, const ParameterSpec& p) {
  const double x = p.min + k * p.q + 0.0;  // + 0.0 turns -0 into 0
  if (p.q_is_integer && p.bounds_integer && std::abs(x) < 9.0e18)
    return static_cast<std::int64_t>(std::llround(x));
  // Printed as short as q and min allow: 0.15, not 0.15000000000000002.
  const int dq = decimals_of(p.q), dm = decimals_of(p.min);
  if (dq >= 0 && dm >= 0) {
    const double scale = std::pow(10.0, std::max(dq, dm));
    const double cleaned = std::round(x * scale) / scale;
    if (std::isfinite(cleaned)) return cleaned;
  }
  return x;
}

double ParameterSpec::grid_size() const {
  switch (distribution) {
    case Distribution::kConstant:
    case Distribution::kCategorical:
      return static_cast<double>(values.size());
    case Distribution::kIntUniform:
      return max - min + 1;
    case Distribution::kQUniform:
      return q_grid_count(*this);
    default:
      throw Error(name + ": distribution '" + std::string(distribution_name(distribution)) +
                  "' is continuous and has no grid");
  }
}

std::vector<nlohmann::json> ParameterSpec::grid_values() const {
  if (grid_size() > kMaxGridValues) throw Error(name + ": more than 1000000 values for a grid");
  switch (distribution) {
    case Distribution::kConstant:
    case Distribution::kCategorical:
      return values;
    case Distribution::kIntUniform: {
      std::vector<nlohmann::json> out;
      for (auto v = static_cast<std::int64_t>(min); v <= static_cast<std::int64_t>(max); ++v)
        out.emplace_back(v);
      return out;
    }
    case Distribution::kQUniform: {
      const double n = q_grid_count(*this);
      std::vector<nlohmann::json> out;
      for (double k = 0; k < n; k += 1) out.push_back(q_grid_point(k, *this));
      return out;
    }
    default:
      throw Error(name + ": distribution '" + std::string(distribution_name(distribution)) +
                  "' is continuous and has no grid");
  }
}

nlohmann::json ParameterSpec::from_unit(double u) const {
  switch (distribution) {
    case Distribution::kConstant:
      return values.at(0);
    case Distribution::kCategorical: {
      std::size_t i = 0;
      if (probabilities.empty()) {
        i = static_cast<std::size_t>(u * static_cast<double>(values.size()));
      } else {
        double cumulative = 0;
        for (; i + 1 < values.size(); ++i) {
          cumulative += probabilities[i];
          if (u < cumulative) break;
        }
      }
      return values.at(std::min(i, values.size() - 1));
    }
    case Distribution::kIntUniform: {
      const double span = max - min + 1;
      const double v = std::min(max, min + std::floor(u * span));
      return static_cast<std::int64_t>(v);
    }
    case Distribution::kUniform:
      return lerp(min, max, u);
    case Distribution::kQUniform:
      return quantize(lerp(min, max, u), *this);
    case Distribution::kLogUniform:
      return std::exp(lerp(min, max, u));
    case Distribution::kLogUniformValues:
      return std::exp(lerp(std::log(min), std::log(max), u));
    case Distribution::kQLogUniform:
      return quantize(std::exp(lerp(min, max, u)), *this);
    case Distribution::kQLogUniformValues:
      return quantize(std::exp(lerp(std::log(min), std::log(max), u)), *this);
    case Distribution::kInvLogUniform:
      // value = 1 / exp(X), X ~ U(min, max); large u gives large values.
      return std::exp(-lerp(min, max, 1 - u));
    case Distribution::kInvLogUniformValues:
      // The same with X's bounds ln(1/max) and ln(1/min): values in [min, max].
      return std::exp(-lerp(std::log(1 / max), std::log(1 / min), 1 - u));
    case Distribution::kNormal:
      return mu + sigma * standard_normal_quantile(u);
    case Distribution::kQNormal:
      return quantize(mu + sigma * standard_normal_quantile(u), *this);
    case Distribution::kLogNormal:
      return std::exp(mu + sigma * standard_normal_quantile(u));
    case Distribution::kQLogNormal:
      return quantize(std::exp(mu + sigma * standard_normal_quantile(u)), *this);
    case Distribution::kBeta:
      return boost::math::quantile(boost::math::beta_distribution<double>(a, b), u);
    case Distribution::kQBeta:
      return quantize(boost::math::quantile(boost::math::beta_distribution<double>(a, b), u),
                      *this);
  }
  throw Error(name + ": unknown distribution");
}

Params make_params(const std::vector<ParameterSpec>& specs, std::vector<nlohmann::json> values) {
  if (specs.size() != values.size())
    throw Error("make_params: " + std::to_string(values.size()) + " values for " +
                std::to_string(specs.size()) + " parameters");
  Params p = Params::object();
  // Appended to ordered_json's vector of entries: no lookup of keys that
  // are unique anyway.
  auto& entries = p.get_ref<Params::object_t&>();
  entries.reserve(specs.size());
  for (std::size_t j = 0; j < specs.size(); ++j)
    entries.Container::emplace_back(specs[j].name, Params(std::move(values[j])));
  return p;
}

}  // namespace xpscale
