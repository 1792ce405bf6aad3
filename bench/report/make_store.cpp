// bench/report's input: the store of a sweep of TRIALS trials reporting up
// to STEPS steps each, written through the Store interface as a run writes
// it (one transaction per trial), so that `xpscale report --html` reads
// what it would read after a real sweep of that size. Most trials run
// every step, a third are stopped early at a rung, a few fail with a stderr tail, one in
// fifty is retried once, and the trials are packed on GROUPS lanes.
//
//   make_store OUT_DIR TRIALS STEPS [GROUPS]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "xpscale/store/sqlite_store.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: make_store OUT_DIR TRIALS STEPS [GROUPS]\n");
    return 2;
  }
  namespace fs = std::filesystem;
  using xpscale::TrialStatus;
  const fs::path dir = argv[1];
  const long trials = std::atol(argv[2]), steps = std::atol(argv[3]);
  const int groups = argc > 4 ? std::atoi(argv[4]) : 8;
  fs::create_directories(dir);
  xpscale::SqliteStore store(xpscale::store_path(dir), xpscale::Store::Mode::kReadWrite);
  const std::string config =
      "name: report-bench\nmethod: random\ntrials: " + std::to_string(trials) +
      "\nmetric: {name: loss, goal: minimize}\n"
      "parameters:\n  lr: {distribution: log_uniform_values, min: 0.0001, max: 0.1}\n"
      "  batch: {values: [32, 64, 128, 256]}\n  layers: {distribution: int_uniform, min: 1, "
      "max: 8}\n  dropout: {min: 0.0, max: 0.5}\n  optimizer: {values: [adam, sgd, adamw]}\n"
      "scheduler: {type: asha, resource: epoch, max_resource: " +
      std::to_string(steps) + ", eta: 3}\n";
  xpscale::SweepRow row;
  row.name = "report-bench";
  row.config_path = "sweep.yaml";
  row.config_text = config;
  row.config_hash = xpscale::sha256_hex(config);
  row.metric = "loss";
  row.planned = static_cast<std::uint64_t>(trials);
  row.created_at = 1.7e9;
  store.write_sweep(row);
  const std::int64_t run = store.begin_run(groups, groups, 1, "node1", false, 1.7e9);

  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  const char* optimizers[] = {"adam", "sgd", "adamw"};
  std::vector<double> free_at(static_cast<std::size_t>(groups), 1.7e9);
  for (long id = 0; id < trials; ++id) {
    const double lr = std::pow(10.0, -4 + 3 * u(rng));
    const int batch = 32 << static_cast<int>(u(rng) * 4);
    const int layers = 1 + static_cast<int>(u(rng) * 8);
    const double dropout = 0.5 * u(rng);
    const char* opt = optimizers[static_cast<int>(u(rng) * 3)];
    const auto tid = static_cast<std::uint64_t>(id);
    store.begin();
    store.put_queued_trial(tid, {{"lr", lr},
                                 {"batch", batch},
                                 {"layers", layers},
                                 {"dropout", dropout},
                                 {"optimizer", opt}});
    // The loss this configuration converges to: lr matters most, then
    // layers, then the optimizer; batch and dropout barely.
    const double floor = 0.1 + 2.0 * std::pow(std::log10(lr) + 2.5, 2) +
                         0.08 * std::abs(layers - 4) + (opt[0] == 's' ? 0.2 : 0.0) +
                         0.01 * dropout;
    const long rungs[] = {1, 3, 9, 27, 81};
    long last = steps;
    for (const long r : rungs)
      if (r < steps && u(rng) < 0.08) {
        last = r;
        break;
      }
    const bool fails = u(rng) < 0.02, retried = u(rng) < 0.02;
    auto g = static_cast<std::size_t>(std::min_element(free_at.begin(), free_at.end()) -
                                      free_at.begin());
    int attempt = 1;
    double t = free_at[g];
    if (retried) {
      store.start_attempt(tid, attempt, run, static_cast<int>(g), std::to_string(g), "node1", t);
      t += 2;
      store.finish_attempt(tid, attempt, TrialStatus::kFailed, "exit status 1",
                           "Traceback (most recent call last):\nRuntimeError: CUDA error", t,
                           false);
      ++attempt;
    }
    store.start_attempt(tid, attempt, run, static_cast<int>(g), std::to_string(g), "node1", t);
    const long n = fails ? std::max(1L, last / 2) : last;
    for (long s = 0; s < n; ++s) {
      const double loss = floor + 3.0 * std::exp(-0.08 * static_cast<double>(s)) + 0.02 * u(rng);
      t += 0.5;
      store.add_metrics(tid, attempt, s, t, loss, {{"loss", loss}, {"epoch", s}},
                        xpscale::Goal::kMinimize);
    }
    if (fails)
      store.finish_attempt(tid, attempt, TrialStatus::kFailed, "exit status 1",
                           "Traceback (most recent call last):\n  File \"train.py\", line 9\n"
                           "RuntimeError: CUDA out of memory",
                           t + 0.1, true);
    else if (last < steps)
      store.finish_attempt(tid, attempt, TrialStatus::kStopped,
                           "asha: rung " + std::to_string(std::lround(std::log(last) / std::log(3))) +
                               " (resource " + std::to_string(last) + "): rank 9 of 10, top 3 continue",
                           "", t + 0.1, true);
    else
      store.finish_attempt(tid, attempt, TrialStatus::kCompleted, "", "", t + 0.1, true);
    free_at[g] = t + 0.2;
    store.commit();
  }
  store.end_run(run, "completed", nlohmann::json::object(),
                *std::max_element(free_at.begin(), free_at.end()));
  std::printf("%s: %ld trials\n", xpscale::store_path(dir).c_str(), trials);
  return 0;
}
