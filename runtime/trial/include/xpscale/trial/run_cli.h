#pragma once
// The command-line options that `xpscale run` and trainers built on
// xpscale::run() share, declared once (Boost.Program_options).
#include <cstdint>
#include <string>

#include <boost/program_options.hpp>

#include "xpscale/coordinator/sweep_run.h"

namespace xpscale {

// Values parsed before they land in RunOptions (optional there).
struct RunCliValues {
  std::string out_dir, store;
  std::int64_t trials = 0;
  std::string json_events;
};

// Adds --store, --out-dir, --trials, --resume, --force, --quiet, --strict, --retry-failed,
// --store-retry, --heartbeat-timeout, --progress-interval, --json-events,
// --array-task and --array-size, bound to `options` and `values`.
void add_run_options(boost::program_options::options_description& desc, RunOptions& options,
                     RunCliValues& values);
// Copies what add_run_options() parsed into `values` to `options` (after
// notify); check_run_options() checks the ranges.
void apply_run_options(const boost::program_options::variables_map& vm, const RunCliValues& values,
                       RunOptions& options);

}  // namespace xpscale
