// bench/search's C++ side (run.sh drives it):
//   search_bench tpe SEEDS TRIALS [FIRST_SEED]
//       xpscale's TPE (method: bayes) and random search on each objective of
//       objectives.h, one seed after another, trials in sequence (suggest,
//       evaluate, observe); one JSON line per (objective, sampler, seed)
//       with the best value found and its regret. Seeds FIRST_SEED (0) on;
//       tuning runs take seeds the reported ones never use. SEARCH_TPE (env),
//       if set, is the sweep's `tpe:` mapping (e.g. '{multivariate: false}').
//   search_bench decisions RUNNING REPORTS
//       scheduler decisions per second with RUNNING trials in flight: each
//       report goes to the scheduler's on_report, a stopped trial is
//       replaced by a new one so RUNNING stay in flight. One JSON line per
//       scheduler, its rate against the 100k/s target.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "objectives.h"
#include "xpscale/config/sweep_config.h"
#include "xpscale/schedule/scheduler.h"
#include "xpscale/search/rng.h"
#include "xpscale/search/searcher.h"

namespace {

using search_bench::Objective;

double run_search(const Objective& obj, const char* method, std::uint64_t seed, int trials) {
  std::string yaml = std::string("method: ") + method + "\ntrials: " + std::to_string(trials) +
                     "\nseed: " + std::to_string(seed) + "\nmetric: {name: y}\nparameters:\n" +
                     obj.parameters_yaml;
  const char* tpe_knobs = std::getenv("SEARCH_TPE");
  if (tpe_knobs && *tpe_knobs && method[0] == 'b') yaml += std::string("tpe: ") + tpe_knobs + "\n";
  const auto config = xpscale::parse_sweep_config(yaml, obj.name + ".yaml");
  auto searcher = xpscale::make_searcher(config);
  double best = INFINITY;
  for (int i = 0; i < trials; ++i) {
    const auto idx = static_cast<std::uint64_t>(i);
    const auto p = *searcher->suggest(idx);
    std::vector<double> x;
    for (const auto& n : obj.names) x.push_back(p[n].get<double>());
    const double y = obj.f(x);
    best = std::min(best, y);
    searcher->observe(idx, p, {xpscale::TrialEnd::kCompleted, y, 1});
  }
  return best;
}

int tpe(int seeds, int trials, int first) {
  for (const auto& obj : search_bench::objectives())
    for (const char* method : {"bayes", "random"})
      for (int s = first; s < first + seeds; ++s) {
        const double best = run_search(obj, method, static_cast<std::uint64_t>(s), trials);
        std::cout << nlohmann::json{{"objective", obj.name},
                                    {"sampler", std::string("xpscale_") +
                                                    (method[0] == 'b' ? "tpe" : "random")},
                                    {"seed", s},
                                    {"trials", trials},
                                    {"best", best},
                                    {"regret", best - obj.minimum}}
                         .dump()
                  << '\n';
      }
  return 0;
}

constexpr int kTrialSteps = 27;

struct Rate {
  double per_s;
  long stops;
};

Rate decisions_per_s(xpscale::Scheduler& s, int running, long reports) {
  std::vector<std::uint64_t> id(static_cast<std::size_t>(running));
  std::vector<double> step(id.size(), 0);
  std::uint64_t next = 0;
  for (auto& t : id) s.on_start(t = next++, {});
  long stops = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (long k = 0; k < reports; ++k) {
    const auto slot = static_cast<std::size_t>(k % running);
    const double score = xpscale::random_unit(1, id[slot], static_cast<std::uint64_t>(step[slot]));
    const auto d = s.on_report(id[slot], ++step[slot], score);
    stops += d.stop;
    // A trial ends when stopped or after kTrialSteps reports; a new one
    // takes its place.
    if (d.stop || step[slot] >= kTrialSteps) {
      s.on_end(id[slot], d.stop ? xpscale::TrialEnd::kStopped : xpscale::TrialEnd::kCompleted);
      s.on_start(id[slot] = next++, {});
      step[slot] = 0;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {static_cast<double>(reports) / secs, stops};
}

int decisions(int running, long reports) {
  struct Case {
    std::string name;
    std::unique_ptr<xpscale::Scheduler> s;
  };
  xpscale::ParameterSpec lr;
  lr.name = "lr";
  lr.distribution = xpscale::Distribution::kUniform;
  lr.max = 1;
  std::vector<Case> cases;
  cases.push_back({"asha", xpscale::make_asha_scheduler({1, kTrialSteps, 3})});
  cases.push_back({"hyperband", xpscale::make_hyperband_scheduler({{1, kTrialSteps, 3}, 3, 1})});
  cases.push_back({"wandb_hyperband", xpscale::make_wandb_hyperband_scheduler({{3, 9}, 3, false})});
  cases.push_back({"median", xpscale::make_median_scheduler({5, 3})});
  cases.push_back({"pbt", xpscale::make_pbt_scheduler({10, 0.25, 0.25, 1}, {lr})});
  for (auto& c : cases) {
    const auto [rate, stops] = decisions_per_s(*c.s, running, reports);
    std::cout << nlohmann::json{{"measure", "decisions"},
                                {"scheduler", c.name},
                                {"running", running},
                                {"reports", reports},
                                {"stops", stops},
                                {"decisions_per_s", rate},
                                {"vs_target_100k", rate / 1e5}}
                     .dump()
              << std::endl;  // one line at a time: a slow scheduler shows as such
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "tpe" && (argc == 4 || argc == 5))
    return tpe(std::atoi(argv[2]), std::atoi(argv[3]), argc == 5 ? std::atoi(argv[4]) : 0);
  if (mode == "decisions" && argc == 4) return decisions(std::atoi(argv[2]), std::atol(argv[3]));
  std::cerr << "usage: search_bench tpe SEEDS TRIALS [FIRST_SEED] | decisions RUNNING REPORTS\n";
  return 2;
}
