#pragma once
// The benchmark objectives of bench/search, written the same way as in
// optuna_search.py: Branin (2-d), Hartmann-6 and a 5-d Rosenbrock whose
// parameters are searched on log scales. Each with its search space (as
// sweep-config YAML) and its known minimum, so results are regrets.
#include <array>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

namespace search_bench {

struct Objective {
  std::string name;
  std::string parameters_yaml;  // the `parameters:` block
  std::vector<std::string> names;
  double minimum;
  double (*f)(const std::vector<double>&);
};

inline double branin(const std::vector<double>& x) {
  const double pi = std::numbers::pi;
  const double b = 5.1 / (4 * pi * pi), c = 5 / pi, t = 1 / (8 * pi);
  const double u = x[1] - b * x[0] * x[0] + c * x[0] - 6;
  return u * u + 10 * (1 - t) * std::cos(x[0]) + 10;
}

inline double hartmann6(const std::vector<double>& x) {
  static constexpr std::array<double, 4> alpha{1.0, 1.2, 3.0, 3.2};
  static constexpr double a[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                     {0.05, 10, 17, 0.1, 8, 14},
                                     {3, 3.5, 1.7, 10, 17, 8},
                                     {17, 8, 0.05, 10, 0.1, 14}};
  static constexpr double p[4][6] = {{1312, 1696, 5569, 124, 8283, 5886},
                                     {2329, 4135, 8307, 3736, 1004, 9991},
                                     {2348, 1451, 3522, 2883, 3047, 6650},
                                     {4047, 8828, 8732, 5743, 1091, 381}};
  double sum = 0;
  for (int i = 0; i < 4; ++i) {
    double inner = 0;
    for (int j = 0; j < 6; ++j) inner += a[i][j] * std::pow(x[j] - p[i][j] * 1e-4, 2);
    sum += alpha[i] * std::exp(-inner);
  }
  return -sum;
}

inline double rosenbrock5(const std::vector<double>& x) {
  double sum = 0;
  for (int i = 0; i < 4; ++i)
    sum += 100 * std::pow(x[i + 1] - x[i] * x[i], 2) + std::pow(1 - x[i], 2);
  return sum;
}

inline std::vector<Objective> objectives() {
  std::string h6, r5;
  std::vector<std::string> hn, rn;
  for (int j = 0; j < 6; ++j) {
    hn.push_back("x" + std::to_string(j));
    h6 += "  x" + std::to_string(j) + ": {distribution: uniform, min: 0.0, max: 1.0}\n";
  }
  for (int j = 0; j < 5; ++j) {
    rn.push_back("x" + std::to_string(j));
    r5 +=
        "  x" + std::to_string(j) + ": {distribution: log_uniform_values, min: 0.01, max: 10.0}\n";
  }
  return {{"branin",
           "  x0: {distribution: uniform, min: -5.0, max: 10.0}\n"
           "  x1: {distribution: uniform, min: 0.0, max: 15.0}\n",
           {"x0", "x1"},
           0.397887357729738,
           branin},
          {"hartmann6", h6, hn, -3.32236801141551, hartmann6},
          {"rosenbrock5_log", r5, rn, 0.0, rosenbrock5}};
}

}  // namespace search_bench
