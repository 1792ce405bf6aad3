// Population based training (Jaderberg et al. 2017). Hand-written: no
// Debian C++ library has it. See scheduler.h for the rule; the coordinator
// copies the checkpoint directory (checkpoint_copy.h) when on_end returns
// a TrialRestart.
#include <algorithm>
#include <cmath>
#include <map>

#include <ext/pb_ds/assoc_container.hpp>
#include <ext/pb_ds/tree_policy.hpp>

#include "xpscale/schedule/scheduler.h"
#include "xpscale/search/rng.h"

namespace xpscale {
namespace {

constexpr std::uint64_t kPbtStream = 0x7062'7400'0000'0000ULL;  // "pbt"

std::string number_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

class Pbt : public Scheduler {
 public:
  Pbt(const PbtOptions& o, std::vector<ParameterSpec> parameters)
      : o_(o), parameters_(std::move(parameters)) {
    if (!(o.interval > 0) || !(o.quantile > 0 && o.quantile <= 0.5))
      throw Error("PBT needs interval > 0 and quantile in (0, 0.5]");
  }

  void on_start(std::uint64_t trial, const Params& params) override {
    auto& m = members_[trial];
    m.params = params;
    m.running = true;
    m.failed = false;  // a retry of a failed attempt is a member again
    reindex(trial);
  }

  SchedulerDecision on_report(std::uint64_t trial, double resource, double score) override {
    auto& m = members_[trial];
    m.running = true;
    m.score = score;
    m.resource = resource;
    reindex(trial);
    if (auto it = exploits_.find(trial); it != exploits_.end())
      return {true, false, it->second.reason};
    if (resource - m.last_perturb < o_.interval) return {};
    m.last_perturb = resource;
    const std::size_t n = ranked_.size();
    const std::size_t k = quantile_size(n);
    if (k == 0 || ranked_.order_of_key({score, trial}) < n - k) return {};
    const std::uint64_t donor =
        ranked_.find_by_order(static_cast<std::size_t>(draw() * static_cast<double>(k)))->second;
    Exploit e;
    e.donor = donor;
    e.params = explore(members_.at(donor).params);
    e.reason = "pbt: exploit trial " + std::to_string(donor) + " at resource " +
               number_text(resource) + " (score " + number_text(score) + " vs " +
               number_text(members_.at(donor).score) + ")";
    const std::string reason = e.reason;
    exploits_[trial] = std::move(e);
    reindex(trial);
    return {true, false, reason};
  }

  std::optional<TrialRestart> on_end(std::uint64_t trial, TrialEnd end) override {
    auto& m = members_[trial];
    m.running = false;
    if (end == TrialEnd::kFailed) m.failed = true;
    auto it = exploits_.find(trial);
    if (it == exploits_.end()) {
      reindex(trial);
      return std::nullopt;
    }
    Exploit e = std::move(it->second);
    exploits_.erase(it);
    reindex(trial);
    if (end != TrialEnd::kStopped) return std::nullopt;  // it ended some other way first
    m.params = e.params;
    m.failed = false;
    m.last_perturb = members_.at(e.donor).resource;
    return TrialRestart{e.donor, std::move(e.params)};
  }

  nlohmann::json state() const override {
    nlohmann::json members = nlohmann::json::object(), exploits = nlohmann::json::object();
    for (const auto& [id, m] : members_)
      members[std::to_string(id)] = {{"params", m.params},         {"score", m.score},
                                     {"resource", m.resource},     {"last_perturb", m.last_perturb},
                                     {"has_score", m.has_score()}, {"running", m.running},
                                     {"failed", m.failed}};
    for (const auto& [id, e] : exploits_)
      exploits[std::to_string(id)] = {
          {"donor", e.donor}, {"params", e.params}, {"reason", e.reason}};
    return {{"type", "pbt"}, {"members", members}, {"exploits", exploits}, {"draws", draws_}};
  }

  void restore(const nlohmann::json& j) override {
    try {
      if (j.at("type") != "pbt") throw Error("the stored scheduler state is not PBT's");
      members_.clear();
      exploits_.clear();
      for (const auto& [id, m] : j.at("members").items()) {
        Member x;
        x.params = m.at("params");
        x.score = m.at("has_score").get<bool>() ? m.at("score").get<double>() : kNoScore;
        x.resource = m.at("resource").get<double>();
        x.last_perturb = m.at("last_perturb").get<double>();
        x.running = m.at("running").get<bool>();
        x.failed = m.at("failed").get<bool>();
        members_[std::stoull(id)] = std::move(x);
      }
      for (const auto& [id, e] : j.at("exploits").items())
        exploits_[std::stoull(id)] = {e.at("donor").get<std::uint64_t>(), e.at("params"),
                                      e.at("reason").get<std::string>()};
      draws_ = j.at("draws").get<std::uint64_t>();
      ranked_.clear();
      for (auto& [id, m] : members_) {
        m.indexed = false;
        reindex(id);
      }
    } catch (const nlohmann::json::exception& e) {
      throw Error(std::string("the stored scheduler state is malformed: ") + e.what());
    }
  }

 private:
  static constexpr double kNoScore = HUGE_VAL;
  struct Member {
    Params params;
    double score = kNoScore;
    double resource = 0, last_perturb = 0;
    bool running = false, failed = false;
    bool indexed = false;  // in ranked_, under indexed_score
    double indexed_score = 0;
    bool has_score() const { return score != kNoScore; }
  };
  struct Exploit {
    std::uint64_t donor = 0;
    Params params;
    std::string reason;
  };

  // Keeps ranked_ = the members that can be compared: running, not
  // failed, with a score, not waiting for an exploit; best first, ties by
  // id. An order-statistics tree (GCC's policy-based tree, in libstdc++)
  // makes a member's rank O(log n); sorting the population on every check
  // took ~1 ms with 10,000 members (bench/search).
  void reindex(std::uint64_t id) {
    auto& m = members_.at(id);
    if (m.indexed) ranked_.erase({m.indexed_score, id});
    m.indexed = m.running && !m.failed && m.has_score() && !exploits_.count(id);
    if (m.indexed) ranked_.insert({m.indexed_score = m.score, id});
  }

  // Ray's rule: ceil(n * quantile) members, at most half the population.
  std::size_t quantile_size(std::size_t n) const {
    if (n < 2) return 0;
    auto k = static_cast<std::size_t>(std::ceil(static_cast<double>(n) * o_.quantile));
    return std::min(k, n / 2);
  }

  double draw() { return random_unit(o_.seed, kPbtStream, draws_++); }

  Params explore(const Params& donor) {
    Params p = donor;
    for (const auto& spec : parameters_) {
      if (!spec.is_searchable() || !p.contains(spec.name)) continue;
      if (draw() < o_.resample_probability)
        p[spec.name] = spec.from_unit(draw());
      else
        p[spec.name] = perturb(spec, p[spec.name]);
    }
    return p;
  }

  // Categories move to a neighbour; numbers by x0.8 or x1.2, mapped back
  // through from_unit so that int, quantized and bounded parameters stay
  // valid values of their distribution.
  nlohmann::json perturb(const ParameterSpec& spec, const nlohmann::json& value) {
    const bool up = draw() < 0.5;
    if (spec.distribution == Distribution::kCategorical) {
      auto i = static_cast<std::size_t>(std::find(spec.values.begin(), spec.values.end(), value) -
                                        spec.values.begin());
      if (i >= spec.values.size()) return spec.from_unit(draw());
      if (up && i + 1 < spec.values.size()) ++i;
      if (!up && i > 0) --i;
      return spec.values[i];
    }
    if (!value.is_number()) return spec.from_unit(draw());
    const double target = value.get<double>() * (up ? 1.2 : 0.8);
    // from_unit is increasing in u: bisect for the value nearest target.
    double lo = 1e-12, hi = 1 - 1e-12;
    for (int i = 0; i < 60; ++i) {
      const double mid = 0.5 * (lo + hi);
      (spec.from_unit(mid).get<double>() < target ? lo : hi) = mid;
    }
    return spec.from_unit(0.5 * (lo + hi));
  }

  PbtOptions o_;
  std::vector<ParameterSpec> parameters_;
  std::map<std::uint64_t, Member> members_;
  std::map<std::uint64_t, Exploit> exploits_;  // told to stop, restart pending
  std::uint64_t draws_ = 0;
  using Key = std::pair<double, std::uint64_t>;  // (score, trial)
  __gnu_pbds::tree<Key, __gnu_pbds::null_type, std::less<Key>, __gnu_pbds::rb_tree_tag,
                   __gnu_pbds::tree_order_statistics_node_update>
      ranked_;  // derived from members_; not saved
};

}  // namespace

std::unique_ptr<Scheduler> make_pbt_scheduler(const PbtOptions& options,
                                              std::vector<ParameterSpec> parameters) {
  return std::make_unique<Pbt>(options, std::move(parameters));
}

}  // namespace xpscale
