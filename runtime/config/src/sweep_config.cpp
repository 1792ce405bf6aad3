// The sweep-config schema: W&B's keys plus xpscale's, checked in one pass
// that reports every problem with its place in the file.
#include "xpscale/config/sweep_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "parameter_parser.h"
#include "xpscale/config/command.h"
#include "xpscale/core/text.h"
#include "xpscale/sharding/brace.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/url.h"
#include "yaml_reader.h"

namespace xpscale {
namespace {

using yaml::Entry;
using yaml::find;
using yaml::format_number;

const std::vector<std::string> kTopKeys = {
    // W&B sweep keys
    "program", "command", "method", "metric", "parameters", "early_terminate", "run_cap", "name",
    "description", "project", "entity", "apiVersion", "kind",
    // xpscale keys
    "trials", "seed", "resources", "data", "scheduler", "out_dir", "retries", "max_failures",
    "max_steps", "tpe", "max_concurrent_trials", "nested_args", "wandb", "store",
    // W&B keys for W&B's own service: `controller` (local or cloud) and the
    // W&B Launch keys (job, image_uri in wandb/sweeps schema.json; `launch`
    // is read by `wandb launch-sweep`). Accepted with a warning below.
    "controller", "job", "image_uri", "launch"};
// Top-level W&B Launch keys, which name where W&B Launch runs the trials.
const std::vector<std::string> kLaunchTopKeys = {"job", "image_uri", "launch"};

// xpscale's scheduler keys, and W&B Launch's (`wandb launch-sweep` in
// wandb/cli/cli.py reads job, resource, resource_args, docker_image and
// settings; the scheduler job reads num_workers and polling_sleep).
// `resource` is in both.
const std::vector<std::string> kSchedulerKeys = {
    "type",     "resource", "min_resource",        "max_resource",
    "eta",      "brackets", "grace_period",        "min_samples",
    "interval", "quantile", "resample_probability", "promotion"};
const std::vector<std::string> kLaunchSchedulerKeys = {
    "job", "resource", "resource_args", "docker_image", "settings", "num_workers", "polling_sleep"};

const std::vector<std::string> kMethods = {"grid", "random", "bayes", "sobol"};
const std::vector<std::string> kSchedulerTypes = {"asha", "hyperband", "median", "pbt"};

// Diagnostics in file order, as a compiler prints them.
std::vector<Diagnostic> sorted(std::vector<Diagnostic> d) {
  std::stable_sort(d.begin(), d.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  });
  return d;
}

// What a file that is not a regular file is, for the error that refuses it.
std::string file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a pipe or FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// The bytes of a sweep config file, at most kMaxSweepConfigBytes of them.
// Only a regular file is read: a FIFO (process substitution, a pipe behind
// /dev/stdin) may never end and a device such as /dev/zero never does.
// O_NONBLOCK lets open() return at once on a FIFO that has no writer, so the
// check below refuses it instead of hanging.
std::string read_config_file(const std::string& path) {
  auto fail = [&](const std::string& message, const std::string& note = "") {
    return ConfigError({{{path, 0, 0}, "", message, note}});
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) throw fail(std::string("cannot read the sweep config: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    throw fail(std::string("cannot read the sweep config: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw fail("is a directory; expected a sweep config file");
  if (!S_ISREG(st.st_mode))
    throw fail("is " + file_kind(st.st_mode) + "; a sweep config must be a regular file",
               "write the config to a file first (process substitution <(...) and /dev/stdin "
               "are not read)");
  if (static_cast<std::uint64_t>(st.st_size) > kMaxSweepConfigBytes)
    throw fail(yaml::too_large_message(static_cast<std::size_t>(st.st_size)));
  // The size can change under us: the cap holds for the bytes actually read.
  std::string text;
  text.resize(std::min<std::size_t>(static_cast<std::size_t>(st.st_size), kMaxSweepConfigBytes) +
              1);
  std::size_t got = 0;
  for (;;) {
    if (got == text.size()) {
      if (got > kMaxSweepConfigBytes) throw fail(yaml::too_large_message(std::nullopt));
      text.resize(std::min(text.size() * 2, kMaxSweepConfigBytes + 1));
    }
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw fail(std::string("cannot read the sweep config: ") + std::strerror(errno));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  text.resize(got);
  return text;
}

class Parser {
 public:
  Parser(const std::string& text, const std::string& path, const ConfigOptions& options)
      : reader_(path, options.strict) {
    config_.path = path;
    config_.text = text;
  }

  SweepConfig parse() {
    auto root = yaml::parse_document(config_.text, config_.path, reader_.diagnostics());
    if (!root) throw ConfigError(std::move(reader_.diagnostics()));
    if (!root->IsMap()) {
      reader_.error(*root, "",
                    "expected a mapping of sweep keys, got " + yaml::Reader::describe(*root));
      throw ConfigError(std::move(reader_.diagnostics()));
    }
    root_ = *root;
    yaml::EntryMap top;
    for (auto& e : reader_.entries(root_, "", kTopKeys)) top.emplace(e.key, e);

    if (auto e = find(top, "controller")) parse_controller(*e);
    for (const auto& key : kLaunchTopKeys)
      if (auto e = find(top, key)) launch_keys_.push_back({key, e->key_node});
    for (const char* key : {"job", "image_uri"})
      if (auto e = find(top, key)) (void)reader_.string(e->value, key);  // W&B: a string
    if (find(top, "job") && find(top, "image_uri"))
      reader_.error(top.at("image_uri").key_node, "image_uri",
                    "'job' and 'image_uri' are both given; W&B Launch takes one of them");
    if (auto e = find(top, "launch"); e && !e->value.IsMap())
      reader_.error(
          e->value, "launch",
          "expected a mapping (W&B Launch's settings), got " + yaml::Reader::describe(e->value));

    if (auto e = find(top, "apiVersion")) {
      std::string ignored;
      set_string(*e, ignored);  // W&B ignores it too
    }
    if (auto e = find(top, "kind")) (void)one_of(e->value, "kind", {"sweep"});
    if (auto e = find(top, "name")) set_string(*e, config_.name);
    if (auto e = find(top, "description")) set_string(*e, config_.description);
    if (auto e = find(top, "project")) set_string(*e, config_.project);
    if (auto e = find(top, "entity")) set_string(*e, config_.entity);
    if (auto e = find(top, "program")) set_string(*e, config_.program);
    if (auto e = find(top, "out_dir")) set_string(*e, config_.out_dir);
    if (auto e = find(top, "store")) set_string(*e, config_.store);
    if (auto e = find(top, "wandb")) {
      const std::vector<std::string> modes = {"auto", "shim", "passthrough", "off"};  // enum order
      if (auto m = one_of(e->value, "wandb", modes))
        config_.wandb =
            static_cast<WandbMode>(std::find(modes.begin(), modes.end(), *m) - modes.begin());
    }

    if (auto e = find(top, "method")) {
      parse_method(*e);
    } else {
      if (!suggested("method"))
        reader_.error(root_, "method", "missing required key 'method'",
                      "expected one of " + quoted_list(kMethods));
    }
    if (auto e = find(top, "metric")) parse_metric(*e);
    if (auto e = find(top, "parameters")) {
      config_.parameters =
          parse_parameters(reader_, e->value, config_.method == SearchMethod::kGrid);
      if (e->value.IsMap() && e->value.size() == 0)
        reader_.error(e->value, "parameters", "expected at least one parameter, got none");
    } else {
      if (!suggested("parameters"))
        reader_.error(root_, "parameters", "missing required key 'parameters'");
    }
    if (auto e = find(top, "command")) parse_command(*e);
    if (auto e = find(top, "nested_args"))
      if (auto s = one_of(e->value, "nested_args", {"dict", "dotted"}))
        config_.nested_args = *s == "dotted" ? NestedArgs::kDotted : NestedArgs::kDict;
    if (auto e = find(top, "run_cap")) config_.run_cap = count(*e, 1, "", kMaxTrials);
    if (auto e = find(top, "trials")) config_.trials = count(*e, 1, "", kMaxTrials);
    if (auto e = find(top, "retries")) config_.retries = count(*e, 0).value_or(0);
    if (auto e = find(top, "max_failures")) config_.max_failures = count(*e, 0);
    if (auto e = find(top, "max_steps")) config_.max_steps = count(*e, 1);
    if (auto e = find(top, "max_concurrent_trials")) config_.max_concurrent_trials = count(*e, 1);
    if (auto e = find(top, "seed")) {
      if (auto v = reader_.integer(e->value, "seed")) {
        if (*v < 0)
          reader_.error(e->value, "seed", "expected a seed >= 0, got " + std::to_string(*v));
        else
          config_.seed = static_cast<std::uint64_t>(*v);
      }
    }
    if (auto e = find(top, "resources")) parse_resources(*e);
    if (auto e = find(top, "early_terminate")) parse_early_terminate(*e);
    if (auto e = find(top, "scheduler")) parse_scheduler(*e);
    if (auto e = find(top, "tpe")) parse_tpe(*e);
    if (auto e = find(top, "data")) parse_data(*e);

    warn_launch_keys();
    if (config_.scheduler && config_.early_terminate)
      reader_.error(top.at("scheduler").key_node, "scheduler",
                    "'scheduler' and 'early_terminate' both choose early stopping; keep one");
    if (config_.method == SearchMethod::kGrid)
      check_grid(reader_, config_.parameters, config_.method_where);
    check_command_macros();

    if (config_.out_dir.empty()) {
      std::string stem = config_.name;
      if (stem.empty()) stem = std::filesystem::path(config_.path).stem().string();
      if (stem.empty()) stem = "sweep";
      config_.out_dir = "runs/" + stem;
    }
    if (!reader_.ok()) throw ConfigError(sorted(std::move(reader_.diagnostics())));
    config_.warnings = sorted(std::move(reader_.warnings()));
    // A generated config may repeat a key thousands of times: the first
    // kMaxWarnings say where, one line counts the rest.
    constexpr std::size_t kMaxWarnings = 50;
    if (config_.warnings.size() > kMaxWarnings) {
      const std::size_t more = config_.warnings.size() - kMaxWarnings;
      const SourceLocation at = config_.warnings[kMaxWarnings].where;
      config_.warnings.erase(config_.warnings.begin() + kMaxWarnings, config_.warnings.end());
      config_.warnings.push_back(
          {at, "", std::to_string(more) + " more warnings like the ones above are not shown"});
    }
    return std::move(config_);
  }

 private:
  // Whether an unknown key was already reported as a likely typo of `key`:
  // then "missing 'key'" would only repeat it.
  bool suggested(const std::string& key) {
    const std::string note = "did you mean '" + key + "'?";
    for (const auto& d : reader_.diagnostics())
      if (d.note == note) return true;
    return false;
  }

  void set_string(const Entry& e, std::string& out) {
    if (auto s = reader_.string(e.value, e.key)) out = *s;
  }

  // A count such as run_cap or trials: an integer >= minimum (and <= maximum).
  std::optional<std::int64_t> count(const Entry& e, std::int64_t minimum,
                                    const std::string& path = "",
                                    std::optional<std::int64_t> maximum = std::nullopt) {
    const std::string p = path.empty() ? e.key : path;
    auto v = reader_.integer(e.value, p);
    if (!v) return std::nullopt;
    if (*v < minimum) {
      reader_.error(
          e.value, p,
          "expected an integer >= " + std::to_string(minimum) + ", got " + std::to_string(*v));
      return std::nullopt;
    }
    if (maximum && *v > *maximum) {
      reader_.error(e.value, p,
                    "expected at most " + std::to_string(*maximum) + ", got " + std::to_string(*v),
                    "each trial is a row in the store; split a larger search into several sweeps");
      return std::nullopt;
    }
    return v;
  }

  std::optional<std::string> one_of(const YAML::Node& node, const std::string& path,
                                    const std::vector<std::string>& allowed) {
    auto s = reader_.string(node, path);
    if (!s) return std::nullopt;
    if (std::find(allowed.begin(), allowed.end(), *s) != allowed.end()) return s;
    reader_.error(node, path,
                  "expected " + quoted_list(allowed) + ", got " + yaml::Reader::describe(node),
                  typo_note(*s, allowed));
    return std::nullopt;
  }

  void parse_method(const Entry& e) {
    config_.method_where = reader_.location(e.value);
    if (e.value.IsScalar() && e.value.Scalar() == "custom") {
      reader_.error(e.value, "method",
                    "method 'custom' (a W&B Launch sweep scheduler such as Optuna's or Ax's) is "
                    "not supported: it runs inside W&B Launch",
                    "use 'bayes' (TPE) or 'random'; see docs/wandb.md#top-level-keys");
      return;
    }
    auto m = one_of(e.value, "method", kMethods);
    if (!m) return;
    if (*m == "grid") config_.method = SearchMethod::kGrid;
    if (*m == "random") config_.method = SearchMethod::kRandom;
    if (*m == "sobol") config_.method = SearchMethod::kSobol;
    if (*m == "bayes") config_.method = SearchMethod::kBayes;  // TPE (tpe_searcher.h)
  }

  void parse_metric(const Entry& e) {
    auto m = reader_.entry_map(e.value, "metric",
                               {"name", "goal", "target", "impute", "impute_while_running"});
    if (!e.value.IsMap()) return;
    MetricSpec metric;
    if (auto n = find(m, "name")) {
      if (auto s = reader_.string(n->value, "metric.name")) {
        if (s->empty()) reader_.error(n->value, "metric.name", "expected a metric name, got \"\"");
        metric.name = *s;
      }
    } else {
      reader_.error(e.value, "metric.name", "missing required key 'name'");
    }
    if (auto g = find(m, "goal")) {
      if (auto s = one_of(g->value, "metric.goal", {"minimize", "maximize"}))
        metric.goal = *s == "maximize" ? Goal::kMaximize : Goal::kMinimize;
    }
    if (auto t = find(m, "target")) metric.target = reader_.number(t->value, "metric.target");
    // W&B's bayes search imputes a metric for failed runs (impute) and for
    // running ones (impute_while_running); xpscale's TPE learns from ended
    // trials that reported the metric and leaves failed ones out.
    if (auto i = find(m, "impute"))
      if (one_of(i->value, "metric.impute", {"latest", "best", "worst"}))
        reader_.warn(i->key_node, "metric.impute",
                     "xpscale's bayes search leaves failed trials out instead of imputing their "
                     "metric; 'impute' has no effect",
                     "see docs/wandb.md#metric");
    if (auto i = find(m, "impute_while_running"))
      if (auto v = one_of(i->value, "metric.impute_while_running",
                          {"latest", "best", "worst", "false"});
          v && *v != "false")
        reader_.warn(i->key_node, "metric.impute_while_running",
                     "xpscale's bayes search learns from ended trials only; "
                     "'impute_while_running' has no effect",
                     "see docs/wandb.md#metric");
    config_.metric = metric;
  }

  void parse_command(const Entry& e) {
    if (!e.value.IsSequence()) {
      reader_.error(e.value, "command",
                    "expected a list of words, got " + yaml::Reader::describe(e.value));
      return;
    }
    std::size_t i = 0;
    for (const auto& word : e.value) {
      const std::string p = "command[" + std::to_string(i++) + "]";
      if (auto s = reader_.string(word, p)) {
        config_.command.push_back(*s);
        command_where_.push_back(reader_.location(word));
      }
    }
    if (e.value.size() == 0) reader_.error(e.value, "command", "expected at least one word");
  }

  void check_command_macros() {
    const auto& macros = command_macros();
    static const std::set<std::string> kWordMacros = {
        "args",           "args_no_hyphens",   "args_no_boolean_flags",
        "args_no_equals", "args_append_hydra", "args_override_hydra"};
    for (std::size_t i = 0; i < config_.command.size(); ++i) {
      const std::string& word = config_.command[i];
      const std::string p = "command[" + std::to_string(i) + "]";
      for (std::size_t pos = word.find("${"); pos != std::string::npos;
           pos = word.find("${", pos + 2)) {
        const std::size_t end = word.find('}', pos);
        if (end == std::string::npos) {
          reader_.error(command_where_[i], p,
                        "unterminated macro in " + nlohmann::json(word).dump());
          break;
        }
        const std::string name = word.substr(pos + 2, end - pos - 2);
        if (name.rfind("envvar:", 0) == 0) {
          // W&B substitutes ${envvar:NAME} for NAME of A-Z, 0-9 and _ only
          // (an empty NAME too: it becomes "").
          const std::string var = name.substr(7);
          const bool ok = std::all_of(var.begin(), var.end(), [](char c) {
            return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
          });
          if (!ok)
            reader_.error(command_where_[i], p,
                          "'${" + name + "}': W&B's agent substitutes ${envvar:NAME} only for a "
                          "NAME of capital letters, digits and '_'",
                          "W&B's agent would not substitute it; write the variable's name in "
                          "capitals");
          continue;
        }
        if (std::find(macros.begin(), macros.end(), name) == macros.end() ||
            name == "envvar:NAME") {
          std::string note;
          if (auto near = nearest(name, macros))
            note = "did you mean '${" + *near + "}'?";
          else
            note = "known macros: ${" + [&] {
              std::string s;
              for (const auto& m : macros) s += (s.empty() ? "" : "}, ${") + m;
              return s;
            }() + "}";
          reader_.error(command_where_[i], p, "unknown macro '${" + name + "}'", note);
          continue;
        }
        if (kWordMacros.count(name) && word != "${" + name + "}")
          reader_.error(command_where_[i], p,
                        "'${" + name + "}' expands to several words and must be a word of its own",
                        "W&B's agent leaves it unexpanded inside a longer word");
        if (name == "program" && config_.program.empty())
          reader_.error(command_where_[i], p, "'${program}' is used but no 'program' is set");
      }
    }
  }

  void parse_resources(const Entry& e) {
    auto m =
        reader_.entry_map(e.value, "resources", {"ranks_per_trial", "gpus_per_rank", "time_limit"});
    if (auto r = find(m, "ranks_per_trial"))
      if (auto v = count(*r, 1, "resources.ranks_per_trial"))
        config_.resources.ranks_per_trial = *v;
    if (auto g = find(m, "gpus_per_rank"))
      if (auto v = count(*g, 0, "resources.gpus_per_rank")) config_.resources.gpus_per_rank = *v;
    if (auto t = find(m, "time_limit")) {
      if (!t->value.IsScalar()) {
        reader_.error(t->value, "resources.time_limit",
                      "expected a duration (\"90s\", \"15m\", \"2h\", \"01:30:00\"), got " +
                          yaml::Reader::describe(t->value));
      } else if (auto d = parse_duration(t->value.Scalar())) {
        config_.resources.time_limit_s = *d;
      } else {
        reader_.error(t->value, "resources.time_limit",
                      "expected a duration > 0 (\"90s\", \"15m\", \"2h\", \"01:30:00\"), got " +
                          yaml::Reader::describe(t->value));
      }
    }
  }

  void parse_early_terminate(const Entry& e) {
    auto m = reader_.entry_map(e.value, "early_terminate",
                               {"type", "min_iter", "max_iter", "s", "eta", "strict"});
    if (!e.value.IsMap()) return;
    EarlyTerminateSpec et;
    et.where = reader_.location(e.key_node);
    if (auto t = find(m, "type")) {
      if (auto s = one_of(t->value, "early_terminate.type", {"hyperband"})) et.type = *s;
    } else {
      reader_.error(e.value, "early_terminate.type", "missing required key 'type'",
                    "W&B's early termination is 'hyperband'");
    }
    if (auto v = find(m, "min_iter")) et.min_iter = count(*v, 1, "early_terminate.min_iter");
    if (auto v = find(m, "max_iter")) et.max_iter = count(*v, 1, "early_terminate.max_iter");
    if (auto v = find(m, "s")) {
      if (auto s = count(*v, 0, "early_terminate.s")) et.s = *s;
    }
    if (auto v = find(m, "eta")) {
      if (auto eta = reader_.number(v->value, "early_terminate.eta")) {
        if (*eta <= 1)
          reader_.error(v->value, "early_terminate.eta",
                        "expected a number > 1, got " + format_number(*eta));
        else
          et.eta = *eta;
      }
    }
    if (auto v = find(m, "strict")) {
      if (auto b = reader_.boolean(v->value, "early_terminate.strict")) et.strict = *b;
    }
    const bool has_min = m.count("min_iter") > 0, has_max = m.count("max_iter") > 0;
    if (has_min && has_max) {
      reader_.error(m.at("max_iter").key_node, "early_terminate",
                    "give either 'min_iter' or 'max_iter', not both");
    } else if (!has_min && !has_max) {
      reader_.error(e.value, "early_terminate", "missing 'min_iter' or 'max_iter'");
    } else if (has_max && et.s < 1) {
      reader_.error(m.count("s") ? m.at("s").value : e.value, "early_terminate.s",
                    "'max_iter' needs 's' >= 1 (the number of brackets)");
    }
    config_.early_terminate = et;
  }

  // W&B's controller: {type: local | cloud}. xpscale is the controller
  // either way.
  void parse_controller(const Entry& e) {
    const std::string shape = "expected 'controller: {type: local}' or 'controller: {type: cloud}'";
    if (!e.value.IsMap()) {
      reader_.error(e.value, "controller", shape + ", got " + yaml::Reader::describe(e.value));
      return;
    }
    auto m = reader_.entry_map(e.value, "controller", {"type"});
    auto t = find(m, "type");
    if (!t) {
      if (m.size() == e.value.size())  // not already reported as unknown keys
        reader_.error(e.value, "controller.type", "missing required key 'type'", shape);
      return;
    }
    auto type = one_of(t->value, "controller.type", {"local", "cloud"});
    if (type == "cloud")
      reader_.warn(e.key_node, "controller",
                   "xpscale is the sweep's controller; 'controller: {type: cloud}' has no effect");
  }

  // One warning naming every W&B Launch key of the config.
  void warn_launch_keys() {
    if (launch_keys_.empty()) return;
    std::string names;
    for (const auto& [name, node] : launch_keys_)
      names += (names.empty() ? "'" : ", '") + name + "'";
    reader_.warn(launch_keys_.front().second, launch_keys_.front().first,
                 "W&B Launch key" + std::string(launch_keys_.size() > 1 ? "s " : " ") + names +
                     (launch_keys_.size() > 1 ? " have" : " has") +
                     " no meaning here: xpscale runs the trials itself",
                 "trials run 'program'/'command' on the job's ranks; scheduler.num_workers, if "
                 "given, is read as max_concurrent_trials");
  }

  // `scheduler:` is xpscale's ({type: asha|hyperband|median|pbt, ...}) or
  // W&B Launch's ({job, resource, num_workers, ...}); the keys tell which.
  void parse_scheduler(const Entry& e) {
    if (e.value.IsMap()) {
      std::vector<std::string> ours, launch;
      for (auto it = e.value.begin(); it != e.value.end(); ++it) {
        if (!it->first.IsScalar()) continue;
        const std::string& k = it->first.Scalar();
        const bool is_ours =
            std::find(kSchedulerKeys.begin(), kSchedulerKeys.end(), k) != kSchedulerKeys.end();
        const bool is_launch = std::find(kLaunchSchedulerKeys.begin(), kLaunchSchedulerKeys.end(),
                                         k) != kLaunchSchedulerKeys.end();
        if (is_ours && !is_launch && std::find(ours.begin(), ours.end(), k) == ours.end())
          ours.push_back(k);
        if (is_launch && !is_ours && std::find(launch.begin(), launch.end(), k) == launch.end())
          launch.push_back(k);
      }
      if (!launch.empty() && !ours.empty()) {
        reader_.error(e.key_node, "scheduler",
                      "mixes xpscale's scheduler keys (" + quoted_list(ours) +
                          ") with W&B Launch's (" + quoted_list(launch) + ")",
                      "pick one: xpscale's early stopping is {type: asha|hyperband|median|pbt, "
                      "...}; W&B Launch's scheduler is {job, resource, num_workers, ...}");
        return;
      }
      if (!launch.empty()) {
        parse_launch_scheduler(e);
        return;
      }
    }
    static const std::map<std::string, std::vector<std::string>> kKeys = {
        {"asha", {"type", "resource", "min_resource", "max_resource", "eta", "promotion"}},
        {"hyperband", {"type", "resource", "min_resource", "max_resource", "eta", "brackets"}},
        {"median", {"type", "resource", "grace_period", "min_samples"}},
        {"pbt", {"type", "resource", "interval", "quantile", "resample_probability"}},
    };
    auto m = reader_.entry_map(e.value, "scheduler", kSchedulerKeys);
    if (!e.value.IsMap()) return;
    SchedulerSpec s;
    s.where = reader_.location(e.key_node);
    auto t = find(m, "type");
    if (!t) {
      reader_.error(e.value, "scheduler.type", "missing required key 'type'",
                    "expected one of " + quoted_list(kSchedulerTypes));
      return;
    }
    auto type = one_of(t->value, "scheduler.type", kSchedulerTypes);
    if (!type) return;
    s.type = *type;
    const auto& allowed = kKeys.at(s.type);
    for (const auto& [key, entry] : m) {
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        reader_.error(entry.key_node, "scheduler." + key,
                      "'" + key + "' does not apply to scheduler type '" + s.type + "'",
                      "keys of '" + s.type + "': " + quoted_list(allowed));
    }
    auto positive = [&](const char* key) -> std::optional<double> {
      auto v = find(m, key);
      if (!v) return std::nullopt;
      auto x = reader_.number(v->value, std::string("scheduler.") + key);
      if (x && *x <= 0) {
        reader_.error(v->value, std::string("scheduler.") + key,
                      "expected a number > 0, got " + format_number(*x));
        return std::nullopt;
      }
      return x;
    };
    if (auto r = find(m, "resource")) {
      if (auto str = reader_.string(r->value, "scheduler.resource")) s.resource = *str;
    } else {
      reader_.error(e.value, "scheduler.resource", "missing required key 'resource'",
                    "the name of the step counter the scheduler counts, e.g. 'epoch'");
    }
    s.min_resource = positive("min_resource");
    s.max_resource = positive("max_resource");
    s.eta = positive("eta");
    if (s.eta && *s.eta <= 1)
      reader_.error(m.at("eta").value, "scheduler.eta",
                    "expected a number > 1, got " + format_number(*s.eta));
    if (s.min_resource && s.max_resource && *s.min_resource >= *s.max_resource)
      reader_.error(m.at("max_resource").value, "scheduler.max_resource",
                    "max_resource (" + format_number(*s.max_resource) +
                        ") must be greater than min_resource (" + format_number(*s.min_resource) +
                        ")");
    if (auto v = find(m, "promotion"))
      if (auto p = one_of(v->value, "scheduler.promotion", {"stop", "pause"})) s.promotion = *p;
    if (auto v = find(m, "brackets")) s.brackets = count(*v, 1, "scheduler.brackets");
    if (auto v = find(m, "grace_period")) s.grace_period = count(*v, 0, "scheduler.grace_period");
    if (auto v = find(m, "min_samples")) s.min_samples = count(*v, 1, "scheduler.min_samples");
    if (auto v = find(m, "interval")) s.interval = count(*v, 1, "scheduler.interval");
    if (auto v = find(m, "quantile")) {
      s.quantile = reader_.number(v->value, "scheduler.quantile");
      if (s.quantile && !(*s.quantile > 0 && *s.quantile <= 0.5))
        reader_.error(v->value, "scheduler.quantile",
                      "expected a fraction in (0, 0.5], got " + format_number(*s.quantile));
    }
    if (auto v = find(m, "resample_probability")) {
      s.resample_probability = reader_.number(v->value, "scheduler.resample_probability");
      if (s.resample_probability && !(*s.resample_probability >= 0 && *s.resample_probability <= 1))
        reader_.error(
            v->value, "scheduler.resample_probability",
            "expected a probability in [0, 1], got " + format_number(*s.resample_probability));
    }
    config_.scheduler = s;
  }

  // W&B Launch's scheduler: only num_workers means something here (the
  // most trials at once); the rest is named by warn_launch_keys().
  void parse_launch_scheduler(const Entry& e) {
    auto m = reader_.entry_map(e.value, "scheduler", kLaunchSchedulerKeys);
    launch_keys_.push_back({"scheduler", e.key_node});
    auto n = find(m, "num_workers");
    if (!n) return;
    auto workers = count(*n, 1, "scheduler.num_workers");
    if (!workers) return;
    if (config_.max_concurrent_trials) {
      reader_.error(n->key_node, "scheduler.num_workers",
                    "'max_concurrent_trials' and 'scheduler.num_workers' both cap the trials "
                    "running at once; keep one");
      return;
    }
    config_.max_concurrent_trials = workers;
  }

  void parse_tpe(const Entry& e) {
    auto m = reader_.entry_map(
        e.value, "tpe", {"gamma", "prior_weight", "n_startup", "candidates", "multivariate"});
    if (!e.value.IsMap()) return;
    TpeSpec t;
    t.where = reader_.location(e.key_node);
    if (config_.method != SearchMethod::kBayes)
      reader_.error(e.key_node, "tpe",
                    "'tpe' configures method 'bayes', not '" +
                        std::string(search_method_name(config_.method)) + "'");
    auto fraction = [&](const char* key, bool up_to_one) -> std::optional<double> {
      auto v = find(m, key);
      if (!v) return std::nullopt;
      auto x = reader_.number(v->value, std::string("tpe.") + key);
      if (x && !(*x > 0 && (!up_to_one || *x <= 1))) {
        reader_.error(v->value, std::string("tpe.") + key,
                      std::string("expected a number ") + (up_to_one ? "in (0, 1]" : "> 0") +
                          ", got " + format_number(*x));
        return std::nullopt;
      }
      return x;
    };
    t.gamma = fraction("gamma", true);
    t.prior_weight = fraction("prior_weight", false);
    if (auto v = find(m, "n_startup")) t.n_startup = count(*v, 0, "tpe.n_startup");
    if (auto v = find(m, "candidates")) {
      t.candidates = count(*v, 1, "tpe.candidates");
      if (t.candidates && *t.candidates > 100000) {
        reader_.error(v->value, "tpe.candidates",
                      "expected at most 100000 candidates per parameter, got " +
                          std::to_string(*t.candidates));
        t.candidates.reset();
      }
    }
    if (auto v = find(m, "multivariate"))
      t.multivariate = reader_.boolean(v->value, "tpe.multivariate");
    config_.tpe = t;
  }

  void parse_data(const Entry& e) {
    auto m = reader_.entry_map(e.value, "data", {"train", "val"});
    if (!e.value.IsMap()) return;
    if (m.empty())
      reader_.error(e.value, "data", "expected a 'train' or 'val' dataset, got neither");
    if (auto t = find(m, "train")) config_.train_data = parse_dataset(*t, "data.train");
    if (auto v = find(m, "val")) config_.val_data = parse_dataset(*v, "data.val");
  }

  std::optional<DatasetSpec> parse_dataset(const Entry& e, const std::string& path) {
    auto m = reader_.entry_map(
        e.value, path,
        {"manifest", "urls", "pattern", "prefix", "on_error", "shuffle_buffer", "shuffle_shards",
         "seed", "cache_dir", "cache_max_bytes", "prefetch_bytes", "drop_last"});
    if (!e.value.IsMap()) return std::nullopt;
    DatasetSpec d;
    d.where = reader_.location(e.key_node);
    const int sources = static_cast<int>(m.count("manifest") + m.count("urls") +
                                         m.count("pattern") + m.count("prefix"));
    if (sources != 1)
      reader_.error(e.value, path,
                    sources == 0
                        ? "missing the shards: give 'manifest', 'urls', 'pattern' or 'prefix'"
                        : "give one of 'manifest', 'urls', 'pattern' or 'prefix', not several");
    auto check_url = [&](const std::string& url, const YAML::Node& at, const std::string& p) {
      try {
        (void)parse_url(url);
      } catch (const ShardingError& err) {
        reader_.error(at, p, err.what());
      }
    };
    if (auto u = find(m, "urls")) {
      if (!u->value.IsSequence() || u->value.size() == 0) {
        reader_.error(
            u->value, path + ".urls",
            "expected a non-empty list of shard URLs, got " + yaml::Reader::describe(u->value));
      } else {
        std::size_t i = 0;
        for (const auto& item : u->value) {
          const std::string p = path + ".urls[" + std::to_string(i++) + "]";
          if (auto s = reader_.string(item, p)) {
            check_url(*s, item, p);
            d.urls.push_back(*s);
          }
        }
      }
    }
    if (auto p = find(m, "pattern")) {
      if (auto s = reader_.string(p->value, path + ".pattern")) {
        d.pattern = *s;
        try {
          d.urls = expand_braces(*s);
          if (!d.urls.empty()) check_url(d.urls.front(), p->value, path + ".pattern");
        } catch (const ShardingError& err) {
          reader_.error(p->value, path + ".pattern", err.what());
        }
      }
    }
    if (auto p = find(m, "manifest")) {
      if (auto s = reader_.string(p->value, path + ".manifest")) {
        d.manifest = *s;
        check_url(*s, p->value, path + ".manifest");
      }
    }
    if (auto p = find(m, "prefix")) {
      if (auto s = reader_.string(p->value, path + ".prefix")) {
        d.prefix = *s;
        check_url(*s, p->value, path + ".prefix");
      }
    }
    if (auto o = find(m, "on_error"))
      if (auto s = one_of(o->value, path + ".on_error", {"fail", "skip"})) d.on_error = *s;
    if (auto b = find(m, "shuffle_buffer"))
      d.shuffle_buffer_bytes = count(*b, 0, path + ".shuffle_buffer");
    if (auto x = find(m, "shuffle_shards"))
      if (auto b = reader_.boolean(x->value, path + ".shuffle_shards")) d.shuffle_shards = *b;
    if (auto x = find(m, "seed"))
      if (auto v = count(*x, 0, path + ".seed")) d.seed = static_cast<std::uint64_t>(*v);
    if (auto x = find(m, "cache_max_bytes"))
      d.cache_max_bytes = count(*x, 0, path + ".cache_max_bytes");
    if (auto x = find(m, "prefetch_bytes"))
      d.prefetch_bytes = count(*x, 1, path + ".prefetch_bytes");
    if (auto c = find(m, "cache_dir"))
      if (auto s = reader_.string(c->value, path + ".cache_dir")) d.cache_dir = *s;
    if (auto x = find(m, "drop_last"))
      if (auto b = reader_.boolean(x->value, path + ".drop_last")) d.drop_last = *b;
    return d;
  }

  // parameters: name -> spec, or name -> {parameters: ...} (nested).
  yaml::Reader reader_;
  SweepConfig config_;
  YAML::Node root_;
  std::vector<SourceLocation> command_where_;
  std::vector<std::pair<std::string, YAML::Node>> launch_keys_;  // in the order seen
};

}  // namespace

std::string_view goal_name(Goal g) { return g == Goal::kMaximize ? "maximize" : "minimize"; }

std::string_view search_method_name(SearchMethod m) {
  switch (m) {
    case SearchMethod::kGrid:
      return "grid";
    case SearchMethod::kRandom:
      return "random";
    case SearchMethod::kBayes:
      return "bayes";
    case SearchMethod::kSobol:
      return "sobol";
  }
  return "unknown";
}

std::optional<std::int64_t> SweepConfig::trial_budget() const {
  if (trials) return trials;
  return run_cap;
}

SweepConfig parse_sweep_config(const std::string& text, const std::string& path,
                               const ConfigOptions& options) {
  try {
    return Parser(text, path, options).parse();
  } catch (const ConfigError&) {
    throw;
  } catch (const YAML::Exception& e) {
    // yaml-cpp may throw while walking nodes (e.g. a malformed alias).
    const bool known = !e.mark.is_null();
    throw ConfigError({{{path, known ? e.mark.line + 1 : 0, known ? e.mark.column + 1 : 0},
                        "",
                        "YAML error: " + e.msg}});
  }
}

SweepConfig load_sweep_config(const std::string& path, const ConfigOptions& options) {
  return parse_sweep_config(read_config_file(path), path, options);
}

void print_config_warnings(const SweepConfig& config, std::ostream& out) {
  for (const auto& w : config.warnings) out << w.format_warning() << '\n';
}

nlohmann::json dataset_spec_json(const DatasetSpec& spec) {
  nlohmann::ordered_json j;
  if (!spec.manifest.empty()) j["manifest"] = spec.manifest;
  if (!spec.prefix.empty()) j["prefix"] = spec.prefix;
  if (!spec.pattern.empty())
    j["pattern"] = spec.pattern;  // not its expansion: thousands of URLs outgrow an env string
  else if (spec.manifest.empty() && spec.prefix.empty())
    j["urls"] = spec.urls;
  j["on_error"] = spec.on_error;
  j["shuffle_shards"] = spec.shuffle_shards;
  j["shuffle_buffer_bytes"] = spec.shuffle_buffer_bytes.value_or(0);
  j["seed"] = spec.seed;
  j["drop_last"] = spec.drop_last;
  j["cache_dir"] = spec.cache_dir;
  j["cache_max_bytes"] = spec.cache_max_bytes.value_or(0);
  j["prefetch_bytes"] = spec.prefetch_bytes.value_or(0);
  return nlohmann::json(j);
}

void require_built(const SweepConfig& config, const std::string& command) {
  if (config.unbuilt.empty()) return;
  std::vector<Diagnostic> out;
  for (const auto& f : config.unbuilt)
    out.push_back(
        {f.where, f.key, f.what + "; `xpscale " + command + "` cannot run this config yet"});
  throw ConfigError(std::move(out));
}

}  // namespace xpscale
