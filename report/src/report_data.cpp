// The report page's data from a sweep's stores (report/web/DATA.md).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "xpscale/config/sweep_config.h"
#include "xpscale/report/importance.h"
#include "xpscale/report/report.h"

namespace xpscale::report {
namespace {

using nlohmann::json;

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json number_or_null(std::optional<double> v) {
  if (!v || !std::isfinite(*v)) return nullptr;
  return *v;
}

// A trial's parameters as one flat object: nested objects become dotted
// names, as the config writes them ("optimizer.lr").
void flatten(const nlohmann::ordered_json& j, const std::string& prefix, json& out,
             std::vector<std::string>& order) {
  for (const auto& [k, v] : j.items()) {
    std::string name = prefix.empty() ? k : prefix + "." + k;
    if (v.is_object() && !v.empty()) {
      flatten(v, name, out, order);
      continue;
    }
    order.push_back(name);
    if (v.is_number_float() && !std::isfinite(v.get<double>()))
      out[name] = nullptr;
    else
      out[name] = v;
  }
}

// What the config says, when its text (kept in the store) still parses:
// the method, the scheduler, the parameters' order and whether the sweep
// is unbounded. A store from an older version may hold a config this
// version refuses: the page then does without.
struct ConfigFacts {
  std::string method, scheduler;
  std::vector<std::string> params;
  bool unbounded = false;
};

ConfigFacts config_facts(const SweepRow& sweep) {
  ConfigFacts f;
  try {
    const SweepConfig c = parse_sweep_config(sweep.config_text, sweep.config_path);
    f.method = std::string(search_method_name(c.method));
    if (c.scheduler) f.scheduler = c.scheduler->type;
    for (const auto& p : c.parameters) f.params.push_back(p.name);
    f.unbounded = !c.trial_budget().has_value();
  } catch (const std::exception&) {
  }
  return f;
}

// "asha: rung 1 (...)" or "hyperband bracket 0, asha: rung 1 (...)" or
// "median: ...": the scheduler that stopped a trial early, and its rung.
json scheduler_stop(const TrialRow& t) {
  if (t.status != TrialStatus::kStopped) return nullptr;
  const std::string& r = t.reason;
  json stop = nullptr;
  const auto rung_at = r.find("asha: rung ");
  if (rung_at != std::string::npos) {
    stop = {{"by", r.rfind("hyperband", 0) == 0 ? "hyperband" : "asha"},
            {"rung", std::atoi(r.c_str() + rung_at + 11)}};
  } else if (r.rfind("median:", 0) == 0) {
    stop = {{"by", "median"}, {"rung", nullptr}};
  } else {
    return nullptr;
  }
  stop["step"] = t.last_step ? json(*t.last_step) : json(nullptr);
  return stop;
}

// "pbt: exploit trial D at resource R (...)": the attempt ended so that the
// trial could go on from trial D's weights at step R.
std::optional<std::pair<std::uint64_t, double>> pbt_exploit(const std::string& reason) {
  constexpr std::string_view kHead = "pbt: exploit trial ";
  if (reason.rfind(kHead, 0) != 0) return std::nullopt;
  char* end = nullptr;
  const std::uint64_t donor = std::strtoull(reason.c_str() + kHead.size(), &end, 10);
  constexpr std::string_view kAt = " at resource ";
  if (end == nullptr || reason.compare(static_cast<std::size_t>(end - reason.c_str()),
                                       kAt.size(), kAt) != 0)
    return std::nullopt;
  const double step = std::strtod(end + kAt.size(), nullptr);
  return std::make_pair(donor, step);
}

// At most `n` points of one curve: the first, the last and the best are
// kept; between them each of the n/2 − 1 equal slices of the curve keeps
// its lowest and highest point, so a spike or a dip survives.
json downsample(const std::vector<std::pair<std::int64_t, double>>& pts, std::size_t n, bool maximize) {
  json out = json::array();
  if (pts.empty()) return out;
  std::vector<std::size_t> keep;
  if (pts.size() <= n) {
    keep.resize(pts.size());
    for (std::size_t i = 0; i < pts.size(); ++i) keep[i] = i;
  } else {
    std::size_t best = 0;
    for (std::size_t i = 1; i < pts.size(); ++i)
      if (maximize ? pts[i].second > pts[best].second : pts[i].second < pts[best].second)
        best = i;
    keep = {0, pts.size() - 1, best};
    const std::size_t slices = std::max<std::size_t>(1, n / 2 - 1);
    const std::size_t inner = pts.size() - 2;
    for (std::size_t s = 0; s < slices; ++s) {
      const std::size_t lo = 1 + s * inner / slices, hi = 1 + (s + 1) * inner / slices;
      if (lo >= hi) continue;
      std::size_t mn = lo, mx = lo;
      for (std::size_t i = lo; i < hi; ++i) {
        if (pts[i].second < pts[mn].second) mn = i;
        if (pts[i].second > pts[mx].second) mx = i;
      }
      keep.push_back(mn);
      keep.push_back(mx);
    }
    std::sort(keep.begin(), keep.end());
    keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  }
  for (const std::size_t i : keep) out.push_back(json::array({pts[i].first, pts[i].second}));
  return out;
}

}  // namespace

json report_data(const std::vector<const Store*>& stores, const ReportOptions& options) {
  const double now = options.now > 0 ? options.now : now_s();

  // The sweep: the first store's row, with `planned` summed over the array
  // tasks (each plans its share).
  std::optional<SweepRow> sweep;
  std::uint64_t planned = 0;
  for (const Store* s : stores) {
    auto row = s->sweep();
    if (!row) continue;
    planned += row->planned;
    if (!sweep) sweep = std::move(row);
  }
  const bool maximize = sweep && sweep->goal == Goal::kMaximize;
  const std::string metric = sweep ? sweep->metric : "";
  const ConfigFacts facts = sweep ? config_facts(*sweep) : ConfigFacts{};

  struct Source {
    std::size_t store;
    TrialRow row;
  };
  std::vector<Source> trials;
  std::map<std::uint64_t, std::vector<std::pair<std::int64_t, double>>> curves;
  std::vector<std::pair<std::size_t, AttemptRow>> attempts;
  for (std::size_t i = 0; i < stores.size(); ++i) {
    for (auto& t : stores[i]->trials()) trials.push_back({i, std::move(t)});
    for (auto& a : stores[i]->attempts()) attempts.emplace_back(i, std::move(a));
    for (const auto& m : stores[i]->metrics(std::nullopt, false))
      if (m.value && std::isfinite(*m.value))
        curves[m.trial].emplace_back(m.step, *m.value);
  }
  // One point per step, ascending: the rows come by attempt, and a retried
  // or resumed attempt reports steps again; the later attempt's value wins
  // (a stable sort keeps the attempts' order within a step).
  for (auto& [trial, pts] : curves) {
    std::stable_sort(pts.begin(), pts.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::size_t out = 0;
    for (std::size_t k = 0; k < pts.size(); ++k) {
      if (out > 0 && pts[out - 1].first == pts[k].first)
        pts[out - 1] = pts[k];
      else
        pts[out++] = pts[k];
    }
    pts.resize(out);
  }
  std::sort(trials.begin(), trials.end(),
            [](const Source& a, const Source& b) { return a.row.id < b.row.id; });
  std::unordered_map<std::uint64_t, std::vector<const AttemptRow*>> attempts_of;
  for (const auto& [store, a] : attempts) attempts_of[a.trial].push_back(&a);

  // The parameters in the config's order, then any the config does not
  // name (a store from an older config) as the trials hold them.
  std::vector<std::string> param_order = facts.params;
  std::set<std::string> used;

  json counts = {{"completed", 0}, {"stopped", 0}, {"failed", 0},
                 {"running", 0},   {"queued", 0},  {"total", trials.size()}};
  json rows = json::array();
  json curve_data = json::object();
  std::optional<std::uint64_t> best_trial;
  std::optional<double> best_value;
  std::vector<std::tuple<double, std::uint64_t, double>> history;

  const std::size_t per_curve =
      trials.empty()
          ? options.points_per_curve
          : std::clamp(kCurvePointBudget / trials.size(), kMinPointsPerCurve,
                       std::max(kMinPointsPerCurve, options.points_per_curve));

  for (const auto& [store, t] : trials) {
    json row;
    row["id"] = t.id;
    json params = json::object();
    std::vector<std::string> order;
    flatten(t.params, "", params, order);
    for (const auto& n : order)
      if (used.insert(n).second &&
          std::find(param_order.begin(), param_order.end(), n) == param_order.end())
        param_order.push_back(n);
    row["params"] = params;
    const std::string status(trial_status_name(t.status));
    row["status"] = status;
    counts[status] = counts[status].get<int>() + 1;
    row["attempts"] = t.attempts;

    // Retries: attempts that failed or were cut off and ran again. A PBT
    // exploit also ends an attempt, but it is the schedule, not a retry.
    int retries = 0;
    double wall = 0;
    bool any_time = false;
    json exploits = json::array();
    auto& mine = attempts_of[t.id];
    std::sort(mine.begin(), mine.end(),
              [](const AttemptRow* a, const AttemptRow* b) { return a->attempt < b->attempt; });
    for (std::size_t k = 0; k < mine.size(); ++k) {
      const AttemptRow& a = *mine[k];
      const double end = a.finished_at.value_or(now);
      if (end >= a.started_at) wall += end - a.started_at, any_time = true;
      if (const auto e = pbt_exploit(a.reason)) {
        exploits.push_back({{"donor", e->first}, {"step", e->second}});
        continue;
      }
      if (k + 1 < mine.size() && (a.status == "failed" || a.status == "interrupted")) ++retries;
    }
    row["retries"] = retries;
    row["exploits"] = std::move(exploits);
    row["group"] = t.group ? json(*t.group) : json(nullptr);
    row["hosts"] = t.hosts;
    row["started_at"] = number_or_null(t.started_at);
    row["finished_at"] = number_or_null(t.finished_at);
    row["wall_s"] = any_time ? json(wall) : json(nullptr);

    const auto curve_it = curves.find(t.id);
    std::optional<double> final_value;
    std::size_t steps = 0;
    if (curve_it != curves.end()) {
      final_value = curve_it->second.back().second;
      steps = curve_it->second.size();
      curve_data[std::to_string(t.id)] = downsample(curve_it->second, per_curve, maximize);
    }
    row["final"] = number_or_null(final_value);
    const std::optional<double> best =
        t.best_value && std::isfinite(*t.best_value) ? t.best_value : std::nullopt;
    row["best"] = number_or_null(best);
    row["best_step"] = t.best_step ? json(*t.best_step) : json(nullptr);
    row["last_step"] = t.last_step ? json(*t.last_step) : json(nullptr);
    row["steps"] = steps;
    row["reason"] = t.reason;
    row["stop"] = scheduler_stop(t);
    row["stderr_tail"] = t.status == TrialStatus::kFailed ? t.stderr_tail : std::string();

    // The data loader's figures, when the trial reported them (the C++
    // and Python loaders add them to each report).
    json loader = nullptr;
    if (t.last_metrics.is_object()) {
      const auto stall = t.last_metrics.find("loader/stall_fraction");
      const auto rate = t.last_metrics.find("loader/bytes_per_s");
      if (stall != t.last_metrics.end() && stall->is_number() && rate != t.last_metrics.end() &&
          rate->is_number())
        loader = {{"stall_fraction", stall->get<double>()}, {"bytes_per_s", rate->get<double>()}};
    }
    row["loader"] = std::move(loader);

    // A failed trial's early value is no result (as in `xpscale report`).
    if (best && t.status != TrialStatus::kFailed) {
      if (!best_value || (maximize ? *best > *best_value : *best < *best_value))
        best_value = best, best_trial = t.id;
      if (is_final(t.status) && t.finished_at)
        history.emplace_back(*t.finished_at, t.id, *best);
    }
    rows.push_back(std::move(row));
  }
  // Parameters no trial holds yet (a sweep that has not started) are left
  // out: there is nothing to draw for them.
  std::vector<std::string> params;
  for (const auto& p : param_order)
    if (used.count(p)) params.push_back(p);

  json data;
  data["format"] = 1;
  data["generated_at"] = now;
  data["live"] = options.live;
  json s;
  s["name"] = sweep ? (sweep->name.empty() ? sweep->config_path : sweep->name) : "";
  s["out_dir"] = options.out_dir;
  s["metric"] = metric;
  s["goal"] = maximize ? "maximize" : "minimize";
  s["planned"] = planned;
  s["unbounded"] = facts.unbounded;
  s["method"] = facts.method;
  s["scheduler"] = facts.scheduler;
  s["created_at"] = sweep ? json(sweep->created_at) : json(nullptr);
  s["updated_at"] = sweep ? json(sweep->updated_at) : json(nullptr);
  s["stores"] = stores.size();
  s["found"] = sweep.has_value();
  data["sweep"] = std::move(s);
  data["params"] = params;
  data["counts"] = counts;
  data["best_trial"] = best_trial ? json(*best_trial) : json(nullptr);
  data["trials"] = std::move(rows);
  data["curves"] = std::move(curve_data);
  data["points_per_curve"] = per_curve;

  std::sort(history.begin(), history.end());
  json hist = json::array();
  for (const auto& [at, id, v] : history) hist.push_back(json::array({id, at, v}));
  data["history"] = std::move(hist);

  // The timeline: one lane per rank group (per array task and group when
  // the stores are a job array's). Busy fraction: the attempts' time over
  // the lanes' time, run by run (a resumed sweep's pause between runs is
  // no idle time of the cluster).
  std::map<std::pair<std::size_t, int>, std::size_t> lane_of;
  for (const auto& [store, a] : attempts) lane_of.emplace(std::make_pair(store, a.group), 0);
  json lanes = json::array();
  for (auto& [key, index] : lane_of) {
    index = lanes.size();
    lanes.push_back(stores.size() > 1 ? "task " + std::to_string(key.first) + " group " +
                                            std::to_string(key.second)
                                      : "group " + std::to_string(key.second));
  }
  struct RunSpan {
    double start = 0, end = 0, busy = 0;
    std::set<int> groups;
  };
  std::map<std::pair<std::size_t, std::int64_t>, RunSpan> runs;
  json bars = json::array();
  double t0 = 0, t1 = 0;
  for (const auto& [store, a] : attempts) {
    const double end = std::max(a.started_at, a.finished_at.value_or(now));
    bars.push_back(json::array(
        {lane_of.at({store, a.group}), a.trial, a.attempt, a.started_at, end, a.status}));
    auto [it, fresh] = runs.try_emplace({store, a.run});
    RunSpan& r = it->second;
    if (fresh || a.started_at < r.start) r.start = a.started_at;
    if (fresh || end > r.end) r.end = end;
    r.busy += end - a.started_at;
    r.groups.insert(a.group);
    if (bars.size() == 1 || a.started_at < t0) t0 = a.started_at;
    if (bars.size() == 1 || end > t1) t1 = end;
  }
  double busy = 0, capacity = 0;
  for (const auto& [key, r] : runs) {
    busy += r.busy;
    capacity += static_cast<double>(r.groups.size()) * (r.end - r.start);
  }
  data["timeline"] = {{"lanes", lanes},
                      {"bars", bars},
                      {"start", bars.empty() ? json(nullptr) : json(t0)},
                      {"end", bars.empty() ? json(nullptr) : json(t1)},
                      {"busy_fraction", capacity > 0 ? json(std::min(1.0, busy / capacity))
                                                     : json(nullptr)}};

  data["importance"] = json::array();
  data["importance_note"] = "";
  if (options.importance) add_importance(data, options.importance_threads);
  return data;
}

void add_importance(json& data, int threads) {
  const std::string metric = data["sweep"].value("metric", "");
  std::vector<json> params;
  std::vector<double> values;
  for (const auto& t : data["trials"]) {
    if (t["status"] == "failed" || !t["best"].is_number()) continue;
    params.push_back(t["params"]);
    values.push_back(t["best"].get<double>());
  }
  json importance = json::array();
  std::string note;
  if (metric.empty()) {
    note = "The sweep has no metric.";
  } else if (values.size() < 2) {
    note = "Parameter importance needs at least 2 trials with a value of " + metric + ".";
  } else {
    ImportanceOptions o;
    o.threads = threads;
    for (const auto& p : fanova_importance(params, values, o))
      importance.push_back({{"param", p.param}, {"importance", p.importance}});
    if (importance.empty()) note = "No parameter varies across the trials with a value.";
  }
  data["importance"] = std::move(importance);
  data["importance_note"] = note;
}

}  // namespace xpscale::report
