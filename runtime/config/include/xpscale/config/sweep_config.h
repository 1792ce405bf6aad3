#pragma once
// The sweep config: W&B sweep keys plus xpscale's own, loaded from YAML.
//
// load_sweep_config() reads and checks the whole schema at once and throws
// ConfigError with every problem it found, each naming file:line:col, the
// key path, what was expected and what was found. Nothing here throws any
// other exception for any input text.
//
// Combinations of the schema that this build cannot run (see
// SweepConfig::unbuilt; none today) are parsed and checked like the rest;
// the commands that would need them refuse them by name (require_built()).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/config/diagnostics.h"
#include "xpscale/config/parameter.h"

namespace xpscale {

enum class SearchMethod { kGrid, kRandom, kBayes, kSobol };
std::string_view search_method_name(SearchMethod m);

enum class Goal { kMinimize, kMaximize };

// How ${args} and its kin pass nested parameters (command.h): as W&B does,
// one argument holding a dict (--optimizer={'lr': 0.1}), or one dotted
// argument per leaf (--optimizer.lr=0.1).
enum class NestedArgs { kDict, kDotted };
// "minimize" or "maximize", as the config writes it.
std::string_view goal_name(Goal g);

struct MetricSpec {
  std::string name;
  Goal goal = Goal::kMinimize;
  std::optional<double> target;  // stop the sweep once reached (W&B)
};

// W&B's early_terminate: {type: hyperband, min_iter | max_iter, s, eta, strict}.
// Defaults are W&B's (wandb/sweeps schema.json): eta 3, strict true; `s`
// has none there, so max_iter needs it.
struct EarlyTerminateSpec {
  std::string type = "hyperband";
  std::optional<std::int64_t> min_iter;
  std::optional<std::int64_t> max_iter;
  std::int64_t s = 0;
  double eta = 3;
  bool strict = true;
  SourceLocation where;
};

// xpscale's scheduler: {type: asha|hyperband|median|pbt, ...}. Fields that a
// type does not use stay unset.
struct SchedulerSpec {
  std::string type;
  std::string resource;  // the step name the rungs count, e.g. "epoch"
  std::optional<double> min_resource, max_resource, eta;
  std::string promotion = "stop";              // asha: stop | pause
  std::optional<std::int64_t> brackets;        // hyperband
  std::optional<std::int64_t> grace_period;    // median
  std::optional<std::int64_t> min_samples;     // median
  std::optional<std::int64_t> interval;        // pbt
  std::optional<double> quantile;              // pbt
  std::optional<double> resample_probability;  // pbt
  SourceLocation where;
};

// xpscale's tpe: {gamma, prior_weight, n_startup, candidates, multivariate}, the knobs
// of method: bayes (tpe_searcher.h has their defaults). Unset = default.
struct TpeSpec {
  std::optional<double> gamma, prior_weight;
  std::optional<std::int64_t> n_startup, candidates;
  std::optional<bool> multivariate;
  SourceLocation where;
};

// One split of the data: section (train, val).
struct DatasetSpec {
  std::string manifest;           // a manifest written by `xpscale shard`, if given
  std::vector<std::string> urls;  // from urls:, or pattern: expanded
  std::string pattern;            // as written, if given
  std::string prefix;             // listed at run time, if given
  std::string on_error = "fail";  // fail | skip
  std::optional<std::int64_t> shuffle_buffer_bytes;
  bool shuffle_shards = true;
  std::uint64_t seed = 0;  // of the loader's order (not the sweep's seed)
  std::string cache_dir;
  std::optional<std::int64_t> cache_max_bytes;
  std::optional<std::int64_t> prefetch_bytes;  // bytes in flight
  bool drop_last = false;
  SourceLocation where;
};

struct ResourcesSpec {
  std::int64_t ranks_per_trial = 1;
  std::int64_t gpus_per_rank = 0;
  std::optional<double> time_limit_s;  // "90", "90s", "15m", "2h", "01:30:00"
};

// A feature the config asks for that this build cannot run yet.
struct UnbuiltFeature {
  std::string key;   // the config key, e.g. "data"
  std::string what;  // one line for the user
  SourceLocation where;
};

// `wandb:` (xpscale key): how an external trial's `import wandb` is served.
// auto: the real wandb when the trial's Python has it, else xpscale's shim;
// shim: always the shim; passthrough: the real wandb, its log also reporting
// to xpscale; off: the trial's own PYTHONPATH, untouched (docs/python.md).
enum class WandbMode { kAuto, kShim, kPassthrough, kOff };

// "auto", "shim", "passthrough" or "off", as written in the config.
inline const char* wandb_mode_name(WandbMode m) {
  switch (m) {
    case WandbMode::kShim:
      return "shim";
    case WandbMode::kPassthrough:
      return "passthrough";
    case WandbMode::kOff:
      return "off";
    case WandbMode::kAuto:
      break;
  }
  return "auto";
}

struct SweepConfig {
  std::string path;  // as given to load_sweep_config
  std::string text;  // the file's bytes, for the store's hash
  std::string name, description;
  std::string project, entity;  // W&B labels, kept as metadata
  SearchMethod method = SearchMethod::kRandom;
  std::optional<MetricSpec> metric;
  std::vector<ParameterSpec> parameters;  // nested ones flattened, in file order
  std::string program;
  std::vector<std::string> command;  // W&B macros unexpanded; empty = default
  NestedArgs nested_args = NestedArgs::kDict;  // xpscale key `nested_args: dict|dotted`
  std::optional<EarlyTerminateSpec> early_terminate;
  std::optional<std::int64_t> run_cap;  // W&B
  std::optional<std::int64_t> trials;   // xpscale; defaults to run_cap
  std::uint64_t seed = 0;
  // A failed trial runs again up to `retries` more times (xpscale key).
  std::int64_t retries = 0;
  // The sweep stops handing out trials once more than this many trials
  // have failed for good (after their retries); unset = never.
  std::optional<std::int64_t> max_failures;
  // report(step, ...) with step >= max_steps answers Stop (xpscale key).
  std::optional<std::int64_t> max_steps;
  // At most this many trials run at once; a free group waits for a trial
  // to end (xpscale key max_concurrent_trials, or W&B Launch's
  // scheduler.num_workers). Unset: one trial per free group.
  std::optional<std::int64_t> max_concurrent_trials;
  ResourcesSpec resources;
  std::optional<DatasetSpec> train_data, val_data;
  std::optional<SchedulerSpec> scheduler;
  std::optional<TpeSpec> tpe;
  std::string out_dir;  // default: "runs/<name or file stem>"
  // Where results go (xpscale key): a postgresql:// URL, or "" / "sqlite"
  // for out_dir's SQLite file. --store and XPSCALE_STORE (docs/store.md).
  std::string store;
  WandbMode wandb = WandbMode::kAuto;
  std::vector<UnbuiltFeature> unbuilt;
  // What W&B accepts but means something else here, or nothing (a key
  // given twice, a value listed twice, W&B Launch keys), in file order.
  // Printed as "file:line:col: warning: path: message" by the commands;
  // errors with ConfigOptions::strict.
  std::vector<Diagnostic> warnings;
  SourceLocation method_where;  // where `method:` is written, for errors about it

  // Whether trials run an external program (program/command) rather than
  // an in-process C++ function.
  bool is_external() const { return !program.empty() || !command.empty(); }
  // trials if set, else run_cap, else nullopt (unbounded).
  std::optional<std::int64_t> trial_budget() const;
};

// The largest sweep config, in bytes (16 MiB). A config is a few KiB; a
// generated one with a very long `values:` list may reach MiBs. Anything
// larger is refused before it is parsed (docs/config.md).
inline constexpr std::size_t kMaxSweepConfigBytes = std::size_t{16} << 20;

// The most trials a sweep may plan (`trials`, `run_cap`, --trials): each
// is a row in the store, and a count beyond this is a typo, not a plan.
inline constexpr std::int64_t kMaxTrials = 10'000'000;

// Reads path and parses it. Reads at most kMaxSweepConfigBytes + 1 bytes,
// and only from a regular file: a directory, FIFO (`<(...)`, a pipe on
// /dev/stdin) or device is refused without blocking on it. Throws
// ConfigError (a UserError) naming the file for an unreadable, irregular
// or too large file, or any problem in it.
// How a config is loaded.
struct ConfigOptions {
  // Every warning (SweepConfig::warnings) is an error instead (--strict).
  bool strict = false;
};

SweepConfig load_sweep_config(const std::string& path, const ConfigOptions& options = {});

// Parses YAML text; `path` only names the source in diagnostics.
SweepConfig parse_sweep_config(const std::string& text, const std::string& path,
                               const ConfigOptions& options = {});

// Writes each of config.warnings to `out` as "file:line:col: warning: path:
// message" (and its note), one per line. Call on one rank only.
void print_config_warnings(const SweepConfig& config, std::ostream& out);

// One split of the data: section as JSON, the form external trials get it
// in (XPSCALE_DATA, read by xpscale.data.ShardedDataset.from_config): the
// keys of the config, with the defaults filled in (a pattern stays a
// pattern: xpscale.data expands it as the C++ loader does).
nlohmann::json dataset_spec_json(const DatasetSpec& spec);

// Throws ConfigError naming each feature in config.unbuilt, saying that
// `command` cannot run it yet. Use before running a sweep.
void require_built(const SweepConfig& config, const std::string& command);

// Parses a duration: plain seconds ("90", 90), "90s", "15m", "2h", "1d",
// "HH:MM:SS", "MM:SS", "D-HH:MM:SS" (Slurm). nullopt if malformed.
std::optional<double> parse_duration(const std::string& text);

}  // namespace xpscale
