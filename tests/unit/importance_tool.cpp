// xpscale_importance_tool: fanova_importance() on trials read from stdin,
// for importance_optuna_test.py to hold against Optuna.
//
// stdin: one JSON object per line, {"params": {...}, "value": v}.
// stdout: [{"param": name, "importance": x}, ...], most important first,
// then a line {"seconds": s}: the time fanova_importance took.
// Options: --seed N, --trees N, --max-depth N.
#include <chrono>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/report/importance.h"

int main(int argc, char** argv) try {
  xpscale::report::ImportanceOptions options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--seed")
      options.seed = std::stoull(value);
    else if (flag == "--trees")
      options.trees = std::stoi(value);
    else if (flag == "--max-depth")
      options.max_depth = std::stoi(value);
    else
      throw std::invalid_argument("unknown option " + flag);
  }

  std::vector<nlohmann::json> params;
  std::vector<double> values;
  for (std::string line; std::getline(std::cin, line);) {
    if (line.empty()) continue;
    const auto trial = nlohmann::json::parse(line);
    params.push_back(trial.at("params"));
    values.push_back(trial.at("value").get<double>());
  }

  const auto start = std::chrono::steady_clock::now();
  const auto importances = xpscale::report::fanova_importance(params, values, options);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;

  auto out = nlohmann::json::array();
  for (const auto& p : importances)
    out.push_back({{"param", p.param}, {"importance", p.importance}});
  std::cout << out.dump() << "\n" << nlohmann::json{{"seconds", took.count()}}.dump() << "\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "xpscale_importance_tool: " << e.what() << "\n";
  return 2;
}
