// ASHA, Hyperband (ASHA brackets) and W&B's hyperband early_terminate.
// Hand-written: no Debian C++ library has schedulers (Ray Tune's and
// Optuna's are Python). See scheduler.h for the rules.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

#include <ext/pb_ds/assoc_container.hpp>
#include <ext/pb_ds/tree_policy.hpp>

#include "xpscale/schedule/scheduler.h"
#include "xpscale/search/rng.h"

namespace xpscale {
namespace {

constexpr std::uint64_t kBracketStream = 0x6862'0000'0000'0000ULL;  // "hb"

std::string number_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

// The scores recorded at each rung of one bracket, in an order-statistics
// tree (GCC's policy-based tree, part of libstdc++) so that a rank or the
// k-th best is O(log n) however many trials a rung holds; a sorted vector
// made each insert O(n) (10^5/s at 10^6 records, bench/search). Keys are
// (score, arrival number): equal scores stay distinct. A trial's rungs are
// recorded in order, so reached_[t].rungs is the number of rungs t has
// passed; reached_[t].score its score at the highest of them (NaN: unknown,
// from a state written before it was kept).
class Rungs {
 public:
  explicit Rungs(std::vector<double> milestones) : milestones_(std::move(milestones)) {
    scores_.resize(milestones_.size());
  }
  const std::vector<double>& milestones() const { return milestones_; }
  std::size_t size(std::size_t rung) const { return scores_[rung].size(); }

  // Records `score` at every rung whose milestone `resource` reached and
  // the trial had not; returns the highest rung recorded now, or -1.
  int record(std::uint64_t trial, double resource, double score) {
    auto& [reached, at_highest] = reached_[trial];
    int newest = -1;
    while (reached < milestones_.size() && resource >= milestones_[reached]) {
      scores_[reached].insert({score, arrivals_++});
      newest = static_cast<int>(reached++);
    }
    if (newest >= 0) at_highest = score;
    return newest;
  }
  // The highest rung `trial` has passed and its score there, if any.
  std::optional<std::pair<std::size_t, double>> highest(std::uint64_t trial) const {
    const auto it = reached_.find(trial);
    if (it == reached_.end() || it->second.rungs == 0 || std::isnan(it->second.score))
      return std::nullopt;
    return std::pair{it->second.rungs - 1, it->second.score};
  }
  // 1 + how many recorded scores at `rung` are strictly better than score.
  std::size_t rank(std::size_t rung, double score) const {
    return scores_[rung].order_of_key({score, 0}) + 1;
  }
  // The k-th best score at `rung` (0-based).
  double nth(std::size_t rung, std::size_t k) const {
    return scores_[rung].find_by_order(k)->first;
  }

  nlohmann::json state() const {
    nlohmann::json reached = nlohmann::json::object();
    nlohmann::json last = nlohmann::json::object();
    for (const auto& [t, r] : reached_) {
      reached[std::to_string(t)] = r.rungs;
      if (!std::isnan(r.score)) last[std::to_string(t)] = r.score;
    }
    std::vector<std::vector<double>> scores;
    for (const auto& rung : scores_) {
      scores.emplace_back();
      for (const auto& [score, arrival] : rung) scores.back().push_back(score);
    }
    return {{"milestones", milestones_},
            {"scores", scores},
            {"reached", reached},
            {"rung_score", last}};
  }
  void restore(const nlohmann::json& j) {
    if (j.at("milestones").get<std::vector<double>>() != milestones_)
      throw Error("the stored scheduler state has other rungs than this config (" +
                  j.at("milestones").dump() + ")");
    const auto scores = j.at("scores").get<std::vector<std::vector<double>>>();
    if (scores.size() != milestones_.size()) throw Error("the stored rung scores do not fit");
    // Arrival numbers only separate equal scores; fresh ones in stored
    // (sorted) order keep every rank and k-th value the same.
    arrivals_ = 0;
    for (std::size_t r = 0; r < scores.size(); ++r) {
      scores_[r].clear();
      for (double s : scores[r]) scores_[r].insert({s, arrivals_++});
    }
    reached_.clear();
    for (const auto& [t, n] : j.at("reached").items())
      reached_[std::stoull(t)] = {n.get<std::size_t>(), kUnknown};
    // A state written before rung_score existed: those trials are not
    // re-ranked between rungs (as the scheduler that wrote it did).
    if (auto it = j.find("rung_score"); it != j.end())
      for (const auto& [t, score] : it->items())
        reached_[std::stoull(t)].score = score.get<double>();
  }

 private:
  using Key = std::pair<double, std::uint64_t>;
  using OrderTree =
      __gnu_pbds::tree<Key, __gnu_pbds::null_type, std::less<Key>, __gnu_pbds::rb_tree_tag,
                       __gnu_pbds::tree_order_statistics_node_update>;
  std::vector<double> milestones_;
  std::vector<OrderTree> scores_;
  std::uint64_t arrivals_ = 0;
  static constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();
  struct Reached {
    std::size_t rungs = 0;
    double score = kUnknown;
  };
  std::unordered_map<std::uint64_t, Reached> reached_;
};

// Trials told to stop stay stopped: a trial that reports again after a
// crash (its attempt restarted from a checkpoint) gets the same answer.
class StopMemory {
 public:
  const std::string* find(std::uint64_t trial) const {
    auto it = stopped_.find(trial);
    return it == stopped_.end() ? nullptr : &it->second;
  }
  SchedulerDecision remember(std::uint64_t trial, SchedulerDecision d) {
    if (d.stop) stopped_[trial] = d.reason;
    return d;
  }
  nlohmann::json state() const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [t, r] : stopped_) j[std::to_string(t)] = r;
    return j;
  }
  void restore(const nlohmann::json& j) {
    stopped_.clear();
    for (const auto& [t, r] : j.items()) stopped_[std::stoull(t)] = r.get<std::string>();
  }

 private:
  std::unordered_map<std::uint64_t, std::string> stopped_;
};

std::vector<double> asha_milestones(const AshaOptions& o, int first) {
  std::vector<double> m;
  for (double r = o.min_resource * std::pow(o.eta, first); r < o.max_resource * (1 - 1e-12);
       r *= o.eta)
    m.push_back(r);
  return m;
}

void check_asha(const AshaOptions& o) {
  if (!(o.min_resource > 0) || !(o.max_resource > o.min_resource) || !(o.eta > 1))
    throw Error("ASHA needs 0 < min_resource < max_resource and eta > 1");
}

// Hyperband with one bracket is ASHA.
class AshaBrackets : public Scheduler {
 public:
  AshaBrackets(const AshaOptions& o, int brackets, std::uint64_t seed) : o_(o), seed_(seed) {
    check_asha(o);
    for (int s = 0; s < brackets; ++s) {
      auto m = asha_milestones(o, s);
      if (m.empty() && s > 0) break;  // no room for more brackets below max_resource
      waiting_.emplace_back(m.size());
      brackets_.emplace_back(std::move(m));
      const int h = brackets - 1 - s;
      weights_.push_back(std::pow(o.eta, h) / (h + 1));
    }
  }

  SchedulerDecision on_report(std::uint64_t trial, double resource, double score) override {
    if (const auto* reason = stops_.find(trial)) return {true, false, *reason};
    const std::size_t b = bracket_of(trial);
    Rungs& rungs = brackets_[b];
    const int rung = rungs.record(trial, resource, score);
    if (resource >= o_.max_resource) {
      unpause(trial);
      return stops_.remember(
          trial, {true, true, "asha: reached max_resource " + number_text(o_.max_resource)});
    }
    if (o_.pause) return pause_or_continue(b, trial, rung, score);
    // A trial goes on past a rung only while it ranks in the top of that
    // rung: decided when it reaches the rung, and again on every report
    // until the next one, as later trials fill the rung. A trial let on
    // while the rung held few scores (the first ones there always go on)
    // thus stops once the rung shows it would not have been promoted.
    std::size_t r = 0;
    double mine = score;
    const bool again = rung < 0;
    if (!again) {
      r = static_cast<std::size_t>(rung);
    } else {
      const auto at = rungs.highest(trial);
      if (!at) return {};
      std::tie(r, mine) = *at;
    }
    const std::size_t n = rungs.size(r);
    const std::size_t keep = std::max<std::size_t>(1, static_cast<std::size_t>(n / o_.eta));
    const std::size_t rank = rungs.rank(r, mine);
    if (rank <= keep) return {};
    std::string reason = "asha: rung " + std::to_string(r) + " (resource " +
                         number_text(rungs.milestones()[r]) + "): " + (again ? "now " : "") +
                         "rank " + std::to_string(rank) + " of " + std::to_string(n) + ", top " +
                         std::to_string(keep) + " continue";
    if (brackets_.size() > 1) reason = "hyperband bracket " + std::to_string(b) + ", " + reason;
    return stops_.remember(trial, {true, false, reason});
  }

  std::optional<TrialRestart> on_end(std::uint64_t, TrialEnd) override { return std::nullopt; }

  bool pauses() const override { return o_.pause; }

  std::optional<std::uint64_t> next_promotion(bool drained) override {
    if (!o_.pause || paused_.empty()) return std::nullopt;
    // The best paused trial of a rung is promotable when it ranks in the
    // rung's top; if it does not, no other paused trial there does.
    for (const bool relaxed : {false, true}) {
      if (relaxed && !drained) break;
      for (std::size_t b = 0; b < brackets_.size(); ++b)
        for (std::size_t r = waiting_[b].size(); r-- > 0;) {
          if (waiting_[b][r].empty()) continue;
          const auto [score, trial] = *waiting_[b][r].begin();
          if (brackets_[b].rank(r, score) > keep(b, r, relaxed)) continue;
          unpause(trial);
          return trial;
        }
    }
    return std::nullopt;
  }

  nlohmann::json state() const override {
    nlohmann::json b = nlohmann::json::array();
    for (const auto& r : brackets_) b.push_back(r.state());
    nlohmann::json j = {{"type", "asha"}, {"brackets", b}, {"stopped", stops_.state()}};
    if (o_.pause) {  // a stop-based ASHA's state stays as it was
      nlohmann::json paused = nlohmann::json::object();
      for (const auto& [t, at] : paused_)
        paused[std::to_string(t)] = {at.bracket, at.rung, at.score};
      j["promotion"] = "pause";
      j["paused"] = paused;
    }
    return j;
  }
  void restore(const nlohmann::json& j) override {
    try {
      if (j.at("type") != "asha" || j.at("brackets").size() != brackets_.size())
        throw Error("the stored scheduler state is not this config's ASHA/Hyperband state");
      for (std::size_t i = 0; i < brackets_.size(); ++i) brackets_[i].restore(j["brackets"][i]);
      stops_.restore(j.at("stopped"));
      paused_.clear();
      for (auto& w : waiting_)
        for (auto& rung : w) rung.clear();
      // A state without "paused" (a stop-based ASHA's, or one written
      // before pausing existed) has no paused trial.
      if (auto it = j.find("paused"); it != j.end())
        for (const auto& [t, at] : it->items()) {
          const auto b = at.at(0).get<std::size_t>(), r = at.at(1).get<std::size_t>();
          if (b >= brackets_.size() || r >= waiting_[b].size())
            throw Error("the stored scheduler state pauses a trial at a rung this config lacks");
          pause(std::stoull(t), b, r, at.at(2).get<double>());
        }
    } catch (const nlohmann::json::exception& e) {
      throw Error(std::string("the stored scheduler state is malformed: ") + e.what());
    }
  }

 private:
  // How many of a rung's n trials go on: floor(n / eta) as the paper (no
  // trial goes on from a rung of fewer than eta), max(1, ...) when relaxed
  // (the stop-based rule, and pausing once drained).
  std::size_t keep(std::size_t b, std::size_t rung, bool relaxed) const {
    const auto k = static_cast<std::size_t>(static_cast<double>(brackets_[b].size(rung)) / o_.eta);
    return relaxed ? std::max<std::size_t>(1, k) : k;
  }

  // promotion: pause. A trial that reaches a rung goes on only when it is
  // promotable there at once, else it pauses. A paused trial that reports
  // (its attempt was retried, or the pause was not heard before a crash)
  // is decided again at its rung; a promoted one goes on to its next rung.
  SchedulerDecision pause_or_continue(std::size_t b, std::uint64_t trial, int rung, double score) {
    std::size_t r = 0;
    double mine = score;
    if (rung >= 0) {
      r = static_cast<std::size_t>(rung);
    } else {
      if (!paused_.count(trial)) return {};
      r = paused_.at(trial).rung;
      mine = paused_.at(trial).score;
    }
    unpause(trial);
    const std::size_t n = brackets_[b].size(r);
    const std::size_t top = keep(b, r, false);
    const std::size_t rank = brackets_[b].rank(r, mine);
    if (rank <= top) return {};
    pause(trial, b, r, mine);
    std::string reason = "asha: paused at rung " + std::to_string(r) + " (resource " +
                         number_text(brackets_[b].milestones()[r]) + "): rank " +
                         std::to_string(rank) + " of " + std::to_string(n) + ", top " +
                         std::to_string(top) + " promoted";
    if (brackets_.size() > 1) reason = "hyperband bracket " + std::to_string(b) + ", " + reason;
    return {.stop = true, .complete = false, .reason = std::move(reason), .pause = true};
  }

  void pause(std::uint64_t trial, std::size_t b, std::size_t r, double score) {
    paused_[trial] = {b, r, score};
    waiting_[b][r].insert({score, trial});
  }
  void unpause(std::uint64_t trial) {
    const auto it = paused_.find(trial);
    if (it == paused_.end()) return;
    waiting_[it->second.bracket][it->second.rung].erase({it->second.score, trial});
    paused_.erase(it);
  }

  std::size_t bracket_of(std::uint64_t trial) const {
    if (brackets_.size() == 1) return 0;
    double total = 0;
    for (double w : weights_) total += w;
    const double u = random_unit(seed_, kBracketStream, trial) * total;
    double acc = 0;
    for (std::size_t b = 0; b + 1 < weights_.size(); ++b)
      if (u < (acc += weights_[b])) return b;
    return weights_.size() - 1;
  }

  AshaOptions o_;
  std::uint64_t seed_;
  std::vector<Rungs> brackets_;
  std::vector<double> weights_;
  StopMemory stops_;
  // promotion: pause. The paused trials, and per bracket and rung the same
  // trials by (score, id), best first, for next_promotion().
  struct Paused {
    std::size_t bracket = 0, rung = 0;
    double score = 0;
  };
  std::unordered_map<std::uint64_t, Paused> paused_;
  std::vector<std::vector<std::set<std::pair<double, std::uint64_t>>>> waiting_;
};

// W&B's rule, re-evaluated on every report past the first band.
class WandbHyperband : public Scheduler {
 public:
  explicit WandbHyperband(const WandbHyperbandOptions& o) : o_(o), rungs_(o.bands) {
    if (o.bands.empty() || !(o.eta > 1)) throw Error("hyperband needs bands and eta > 1");
  }

  SchedulerDecision on_report(std::uint64_t trial, double resource, double score) override {
    if (const auto* reason = stops_.find(trial)) return {true, false, *reason};
    auto& t = trials_[trial];
    rungs_.record(trial, resource, score);
    while (t.at_band.size() < o_.bands.size() && resource >= o_.bands[t.at_band.size()])
      t.at_band.push_back(score);
    t.best = t.seen ? std::min(t.best, score) : score;
    t.seen = true;
    if (t.at_band.empty()) return {};
    const std::size_t band = t.at_band.size() - 1;
    const std::size_t n = rungs_.size(band);
    const double threshold =
        rungs_.nth(band, static_cast<std::size_t>(static_cast<double>(n) / o_.eta));
    const double mine = o_.strict ? t.at_band[band] : t.best;
    if (mine <= threshold) return {};
    return stops_.remember(
        trial, {true, false,
                "hyperband: band " + number_text(o_.bands[band]) + ": " + number_text(mine) +
                    " is worse than the threshold " + number_text(threshold)});
  }

  std::optional<TrialRestart> on_end(std::uint64_t, TrialEnd) override { return std::nullopt; }

  nlohmann::json state() const override {
    nlohmann::json trials = nlohmann::json::object();
    for (const auto& [id, t] : trials_)
      trials[std::to_string(id)] = {{"best", t.best}, {"seen", t.seen}, {"at_band", t.at_band}};
    return {{"type", "wandb_hyperband"},
            {"rungs", rungs_.state()},
            {"trials", trials},
            {"stopped", stops_.state()}};
  }
  void restore(const nlohmann::json& j) override {
    try {
      if (j.at("type") != "wandb_hyperband")
        throw Error("the stored scheduler state is not W&B hyperband's");
      rungs_.restore(j.at("rungs"));
      trials_.clear();
      for (const auto& [id, t] : j.at("trials").items())
        trials_[std::stoull(id)] = {t.at("best").get<double>(), t.at("seen").get<bool>(),
                                    t.at("at_band").get<std::vector<double>>()};
      stops_.restore(j.at("stopped"));
    } catch (const nlohmann::json::exception& e) {
      throw Error(std::string("the stored scheduler state is malformed: ") + e.what());
    }
  }

 private:
  struct TrialScores {
    double best = 0;
    bool seen = false;
    std::vector<double> at_band;  // the score when each band was reached
  };
  WandbHyperbandOptions o_;
  Rungs rungs_;
  std::unordered_map<std::uint64_t, TrialScores> trials_;
  StopMemory stops_;
};

}  // namespace

std::unique_ptr<Scheduler> make_asha_scheduler(const AshaOptions& options) {
  return std::make_unique<AshaBrackets>(options, 1, 0);
}

std::unique_ptr<Scheduler> make_hyperband_scheduler(const HyperbandOptions& options) {
  if (options.brackets < 1) throw Error("hyperband needs at least one bracket");
  return std::make_unique<AshaBrackets>(options.asha, options.brackets, options.seed);
}

std::unique_ptr<Scheduler> make_wandb_hyperband_scheduler(const WandbHyperbandOptions& options) {
  return std::make_unique<WandbHyperband>(options);
}

std::vector<double> wandb_hyperband_bands(const EarlyTerminateSpec& spec) {
  std::set<double> bands;
  if (spec.max_iter) {
    double band = static_cast<double>(*spec.max_iter);
    for (std::int64_t i = 0; i < spec.s; ++i) {
      band /= spec.eta;
      if (band < 1) break;
      bands.insert(std::floor(band));
    }
  } else if (spec.min_iter) {
    // W&B lists 100 bands; past ~1e15 iterations none can be reached.
    for (double band = static_cast<double>(*spec.min_iter); band < 1e15; band *= spec.eta)
      bands.insert(std::floor(band));
  }
  return {bands.begin(), bands.end()};
}

}  // namespace xpscale
