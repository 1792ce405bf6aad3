// The median stopping rule (Golovin et al. 2017). Hand-written: no Debian
// C++ library has it. See scheduler.h for the rule.
#include <algorithm>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include <ext/pb_ds/assoc_container.hpp>
#include <ext/pb_ds/tree_policy.hpp>

#include "xpscale/schedule/scheduler.h"

namespace xpscale {
namespace {

std::string number_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

class MedianStopping : public Scheduler {
 public:
  explicit MedianStopping(const MedianOptions& o) : o_(o) {
    if (o.min_samples < 1) throw Error("median stopping needs min_samples >= 1");
  }

  SchedulerDecision on_report(std::uint64_t trial, double resource, double score) override {
    auto& h = history_[trial];
    if (h.stopped) return {true, false, h.stop_reason};
    // A restarted attempt re-reports what is recorded already; keep the first.
    if (h.resource.empty() || resource > h.resource.back()) {
      h.resource.push_back(resource);
      h.prefix.push_back((h.prefix.empty() ? 0 : h.prefix.back()) + score);
      h.best = h.prefix.size() == 1 ? score : std::min(h.best, score);
    }
    if (resource < o_.grace_period) return {};
    const auto& averages = averages_at(resource);
    if (averages.size() < static_cast<std::size_t>(o_.min_samples)) return {};
    const double median = median_of(averages);
    if (h.best <= median) return {};
    h.stopped = true;
    h.stop_reason = "median: best " + number_text(h.best) + " is worse than the median " +
                    number_text(median) + " of " + std::to_string(averages.size()) +
                    " ended trials' running averages at resource " + number_text(resource);
    return {true, false, h.stop_reason};
  }

  std::optional<TrialRestart> on_end(std::uint64_t trial, TrialEnd end) override {
    if (end == TrialEnd::kFailed || !history_.count(trial) || !ended_set_.insert(trial).second)
      return std::nullopt;
    ended_.push_back(trial);
    for (auto& [resource, tree] : cache_) add_average(tree, trial, resource);
    return std::nullopt;
  }

  nlohmann::json state() const override {
    nlohmann::json trials = nlohmann::json::object();
    for (const auto& [id, h] : history_)
      trials[std::to_string(id)] = {{"resource", h.resource},
                                    {"prefix", h.prefix},
                                    {"best", h.best},
                                    {"stopped", h.stopped},
                                    {"reason", h.stop_reason}};
    return {{"type", "median"}, {"trials", trials}, {"ended", ended_}};
  }

  void restore(const nlohmann::json& j) override {
    try {
      if (j.at("type") != "median") throw Error("the stored scheduler state is not median's");
      history_.clear();
      for (const auto& [id, t] : j.at("trials").items())
        history_[std::stoull(id)] = {t.at("resource").get<std::vector<double>>(),
                                     t.at("prefix").get<std::vector<double>>(),
                                     t.at("best").get<double>(), t.at("stopped").get<bool>(),
                                     t.at("reason").get<std::string>()};
      ended_ = j.at("ended").get<std::vector<std::uint64_t>>();
      ended_set_ = {ended_.begin(), ended_.end()};
      cache_.clear();
    } catch (const nlohmann::json::exception& e) {
      throw Error(std::string("the stored scheduler state is malformed: ") + e.what());
    }
  }

 private:
  struct History {
    std::vector<double> resource;  // increasing
    std::vector<double> prefix;    // prefix sums of the scores
    double best = 0;
    bool stopped = false;
    std::string stop_reason;
  };

  // Running averages of ended trials at one resource, in an
  // order-statistics tree (GCC's policy-based tree, part of libstdc++):
  // keys (average, trial) keep equal averages distinct.
  using Key = std::pair<double, std::uint64_t>;
  using OrderTree =
      __gnu_pbds::tree<Key, __gnu_pbds::null_type, std::less<Key>, __gnu_pbds::rb_tree_tag,
                       __gnu_pbds::tree_order_statistics_node_update>;

  // Adds `trial`'s running average up to `resource`, if it got that far.
  void add_average(OrderTree& tree, std::uint64_t trial, double resource) const {
    const auto& o = history_.at(trial);
    if (o.resource.empty() || o.resource.back() < resource) return;
    const auto n = static_cast<std::size_t>(
        std::upper_bound(o.resource.begin(), o.resource.end(), resource) - o.resource.begin());
    tree.insert({o.prefix[n - 1] / static_cast<double>(n), trial});
  }

  // The averages at `resource`, built once per resource and then kept up
  // to date as trials end: a scan of every ended trial on each report was
  // O(ended) per decision (bench/search).
  const OrderTree& averages_at(double resource) {
    auto [it, fresh] = cache_.try_emplace(resource);
    if (fresh)
      for (std::uint64_t t : ended_) add_average(it->second, t, resource);
    return it->second;
  }

  static double median_of(const OrderTree& v) {
    const std::size_t mid = v.size() / 2;
    const double upper = v.find_by_order(mid)->first;
    if (v.size() % 2) return upper;
    return (v.find_by_order(mid - 1)->first + upper) / 2;
  }

  MedianOptions o_;
  std::unordered_map<std::uint64_t, History> history_;
  std::vector<std::uint64_t> ended_;  // completed or stopped, in the order they ended
  std::unordered_set<std::uint64_t> ended_set_;
  std::map<double, OrderTree> cache_;  // derived from the above; not saved
};

}  // namespace

std::unique_ptr<Scheduler> make_median_scheduler(const MedianOptions& options) {
  return std::make_unique<MedianStopping>(options);
}

}  // namespace xpscale
