#pragma once
// Helpers shared by the runtime unit tests.
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "xpscale/config/sweep_config.h"

namespace xpscale::test {

// The diagnostics a config text produces; empty if it loads.
inline std::vector<Diagnostic> errors_of(const std::string& yaml,
                                         const std::string& file = "sweep.yaml") {
  try {
    (void)parse_sweep_config(yaml, file);
  } catch (const ConfigError& e) {
    return e.diagnostics();
  }
  return {};
}

// The one error of a config, formatted; fails the test if not exactly one.
inline std::string single_error(const std::string& yaml) {
  auto errors = errors_of(yaml);
  EXPECT_EQ(errors.size(), 1u) << [&] {
    std::string all;
    for (const auto& d : errors) all += d.format() + "\n";
    return all;
  }();
  return errors.empty() ? "" : errors.front().format();
}

// Kolmogorov-Smirnov statistic of samples against a continuous CDF.
inline double ks_statistic(std::vector<double> xs, const std::function<double(double)>& cdf) {
  std::sort(xs.begin(), xs.end());
  const double n = static_cast<double>(xs.size());
  double d = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double f = cdf(xs[i]);
    d = std::max({d, f - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - f});
  }
  return d;
}

// The KS critical value at significance 0.001 (asymptotic: 1.949 / sqrt(n)).
inline double ks_critical(std::size_t n) { return 1.949 / std::sqrt(static_cast<double>(n)); }

// Pearson chi-square statistic of counts against expected probabilities.
inline double chi_square(const std::vector<double>& counts, const std::vector<double>& probs) {
  double n = 0;
  for (double c : counts) n += c;
  double x = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const double e = n * probs[i];
    x += (counts[i] - e) * (counts[i] - e) / e;
  }
  return x;
}

}  // namespace xpscale::test
