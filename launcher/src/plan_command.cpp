// xpscale plan: what a sweep would run, without running it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "commands.h"
#include "xpscale/config/command.h"
#include "xpscale/config/sweep_config.h"
#include "xpscale/search/searcher.h"

namespace po = boost::program_options;

namespace xpscale::cli {
namespace {

constexpr const char* kUsage =
    "usage: xpscale plan SWEEP.yaml [--ranks N] [--limit N] [--format table|json]\n\n"
    "Loads and checks a sweep config and lists the trials it would run: every\n"
    "point of a grid, or the first `trials` (or W&B `run_cap`) suggestions of a\n"
    "random or sobol search, with each trial's id, parameters and, for external\n"
    "trials, its command line. Nothing is run and nothing is written.\n\n"
    "A random, sobol or bayes sweep without `trials` or `run_cap` draws trials\n"
    "until it is stopped, as under W&B; plan lists its first 10 (--limit N).\n"
    "Parameters of bayes trials depend on results: plan lists its first draws.\n\n"
    "With --ranks N it also says how the N ranks of a launch split into groups of\n"
    "resources.ranks_per_trial ranks, i.e. how many trials run at the same time.\n\n"
    "Config errors are printed as file:line:col: key.path: message; exit status 2.\n"
    "Warnings (what W&B accepts but xpscale reads otherwise) as file:line:col:\n"
    "warning: key.path: message; --strict makes them errors.\n\n"
    "options";

// A value for the table: short doubles, strings unquoted.
std::string cell(const nlohmann::ordered_json& v) {
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v.get<double>());
    return buf;
  }
  return format_arg_value(v);
}

std::string join_quoted(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& w : argv) out += (out.empty() ? "" : " ") + shell_quote(w);
  return out;
}

// What a trial's command would be; ${interpreter} as this host resolves it.
std::vector<std::string> trial_command(const SweepConfig& config, const Params& params,
                                       std::uint64_t id) {
  CommandContext context;
  context.args_json_file = config.out_dir + "/trials/" + std::to_string(id) + "/params.json";
  const char* path = std::getenv("PATH");
  context.interpreter = find_interpreter(path ? path : "").value_or("python");
  return build_command(config, params, context);
}

void print_notes(const SweepConfig& config) {
  for (const auto& f : config.unbuilt) {
    Diagnostic d{f.where, "",
                 "note: " + f.key + ": " + f.what +
                     "; `xpscale plan` checked it, but a run of this config will "
                     "refuse it until it is built"};
    std::cerr << d.format() << '\n';
  }
}

struct Parallelism {
  std::int64_t ranks = 0, per_trial = 1, groups = 0, idle = 0;
  std::int64_t at_once = 0;  // groups, or max_concurrent_trials if fewer
};

Parallelism parallelism(const SweepConfig& config, std::int64_t ranks) {
  Parallelism p;
  p.ranks = ranks;
  p.per_trial = config.resources.ranks_per_trial;
  if (ranks < p.per_trial)
    throw UserError("--ranks " + std::to_string(ranks) +
                    " is fewer than resources.ranks_per_trial (" + std::to_string(p.per_trial) +
                    ") of " + config.path);
  p.groups = ranks / p.per_trial;
  p.idle = ranks % p.per_trial;
  p.at_once = std::min(p.groups, config.max_concurrent_trials.value_or(p.groups));
  return p;
}

std::string describe_parallelism(const Parallelism& p, std::uint64_t trials) {
  std::string s = std::to_string(p.ranks) + " ranks: " + std::to_string(p.groups) +
                  (p.groups == 1 ? " group" : " groups") + " of " + std::to_string(p.per_trial) +
                  (p.per_trial == 1 ? " rank" : " ranks") + ", so " + std::to_string(p.at_once) +
                  " trials run at a time";
  if (p.at_once < p.groups) s += " (max_concurrent_trials)";
  const auto waves =
      (trials + static_cast<std::uint64_t>(p.at_once) - 1) / static_cast<std::uint64_t>(p.at_once);
  s += " (" + std::to_string(waves) + (waves == 1 ? " round" : " rounds") +
       " if trials take equal time)";
  if (p.idle > 0)
    s += "; " + std::to_string(p.idle) + (p.idle == 1 ? " rank" : " ranks") +
         " left over would be idle";
  return s;
}

}  // namespace

int plan_command(const std::vector<std::string>& args) {
  po::options_description options(kUsage);
  std::string format = "table";
  options.add_options()("help,h", "show this help")("ranks,n", po::value<std::int64_t>(),
                                                    "ranks of the launch (e.g. mpirun -n N)")(
      "limit", po::value<std::int64_t>(), "list at most this many trials")(
      "trials", po::value<std::int64_t>(), "the same as --limit")(
      "format", po::value<std::string>(&format)->default_value("table"), "table or json")(
      "strict", po::bool_switch(), "treat the config's warnings as errors");
  po::variables_map vm;
  const std::string config_path = parse_command_line(args, options, "config", vm);
  if (vm.count("help")) {
    std::cout << options << '\n';
    return kExitOk;
  }
  if (config_path.empty())
    throw UserError("plan: missing the sweep config (xpscale plan SWEEP.yaml)");
  if (format != "table" && format != "json")
    throw UserError("plan: --format must be 'table' or 'json', got '" + format + "'");
  std::optional<std::int64_t> limit;
  for (const char* flag : {"trials", "limit"}) {
    if (!vm.count(flag)) continue;
    limit = vm[flag].as<std::int64_t>();
    check_count_option(std::string("plan: --") + flag, *limit, 0, kMaxTrials);
  }
  // MPI counts ranks in an int.
  if (vm.count("ranks"))
    check_count_option("plan: --ranks", vm["ranks"].as<std::int64_t>(), 1,
                       std::numeric_limits<int>::max());

  const SweepConfig config =
      load_sweep_config(config_path, {.strict = vm.count("strict") && vm["strict"].as<bool>()});
  print_config_warnings(config, std::cerr);
  auto searcher = make_searcher(config);
  constexpr std::int64_t kUnboundedShown = 10;
  const std::optional<std::uint64_t> bounded = trial_limit(config, *searcher, limit);
  const std::uint64_t count = bounded.value_or(kUnboundedShown);
  std::optional<Parallelism> par;
  if (vm.count("ranks")) par = parallelism(config, vm["ranks"].as<std::int64_t>());
  print_notes(config);

  if (format == "json") {
    if (par) std::cerr << describe_parallelism(*par, count) << '\n';
    if (!bounded)
      std::cerr << "xpscale: method " << search_method_name(config.method)
                << " draws trials until the sweep is stopped; these are the first " << count
                << " (--limit N for more)\n";
    for (std::uint64_t id = 0; id < count; ++id) {
      auto params = searcher->suggest(id);
      if (!params) break;
      nlohmann::ordered_json line;
      line["id"] = id;
      line["params"] = *params;
      if (config.is_external())
        line["command"] = trial_command(config, *params, id);
      std::cout << line.dump() << '\n';
    }
    return kExitOk;
  }

  std::cout << "sweep " << (config.name.empty() ? config.path : config.name) << ": method "
            << search_method_name(config.method) << ", ";
  if (bounded)
    std::cout << count << (count == 1 ? " trial" : " trials");
  else
    std::cout << "unbounded: trials are drawn until the sweep is stopped (xpscale stop OUT_DIR, "
                 "Ctrl-C, the time limit); the first "
              << count << " are listed (--limit N for more)";
  if (config.method != SearchMethod::kGrid) std::cout << ", seed " << config.seed;
  if (auto size = searcher->size(); size && *size > count)
    std::cout << " (of a grid of " << *size << ")";
  std::cout << '\n';
  if (config.metric)
    std::cout << "metric: " << (config.metric->goal == Goal::kMaximize ? "maximize " : "minimize ")
              << config.metric->name << '\n';
  if (par && bounded) std::cout << describe_parallelism(*par, count) << '\n';
  std::cout << "out_dir: " << config.out_dir << "\n\n";

  // Column widths from the first rows; later rows may be wider, which only
  // shifts their tail, and a huge plan is never held in memory.
  std::vector<std::string> header{"id"};
  for (const auto& spec : config.parameters) header.push_back(spec.name);
  if (config.is_external()) header.push_back("command");
  std::vector<std::vector<std::string>> head_rows;
  auto row_of = [&](std::uint64_t id, const Params& params) {
    std::vector<std::string> row{std::to_string(id)};
    // Params hold the parameters in config order (make_params); at(name)
    // would scan them, P^2 per row.
    for (const auto& value : params) row.push_back(cell(value));
    if (config.is_external())
      row.push_back(join_quoted(trial_command(config, params, id)));
    return row;
  };
  constexpr std::uint64_t kWidthRows = 256;
  for (std::uint64_t id = 0; id < std::min(count, kWidthRows); ++id)
    if (auto p = searcher->suggest(id)) head_rows.push_back(row_of(id, *p));
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& r : head_rows) width[c] = std::max(width[c], r[c].size());
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      std::string v = row[c];
      if (c + 1 < row.size() && v.size() < width[c]) v.resize(width[c], ' ');
      line += (c == 0 ? "" : "  ") + v;
    }
    std::cout << line << '\n';
  };
  print_row(header);
  for (const auto& r : head_rows) print_row(r);
  for (std::uint64_t id = kWidthRows; id < count; ++id)
    if (auto p = searcher->suggest(id)) print_row(row_of(id, *p));
  return kExitOk;
}

}  // namespace xpscale::cli
