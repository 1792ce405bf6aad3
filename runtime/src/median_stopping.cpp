// The median stopping rule (Golovin et al. 2017). Hand-written: no Debian
// C++ library has it. See scheduler.h for the rule.
#include <algorithm>
#include <unordered_map>

#include "xpscale/runtime/scheduler.h"

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
    std::vector<double> averages;
    for (std::uint64_t other : ended_) {
      const auto& o = history_.at(other);
      if (o.resource.empty() || o.resource.back() < resource) continue;  // did not get this far
      const auto n = static_cast<std::size_t>(
          std::upper_bound(o.resource.begin(), o.resource.end(), resource) - o.resource.begin());
      averages.push_back(o.prefix[n - 1] / static_cast<double>(n));
    }
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
    if (end != TrialEnd::kFailed && history_.count(trial)) {
      if (std::find(ended_.begin(), ended_.end(), trial) == ended_.end()) ended_.push_back(trial);
    }
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

  static double median_of(std::vector<double> v) {
    const std::size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
    const double upper = v[mid];
    if (v.size() % 2) return upper;
    const double lower = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
    return (lower + upper) / 2;
  }

  MedianOptions o_;
  std::unordered_map<std::uint64_t, History> history_;
  std::vector<std::uint64_t> ended_;  // completed or stopped, in the order they ended
};

}  // namespace

std::unique_ptr<Scheduler> make_median_scheduler(const MedianOptions& options) {
  return std::make_unique<MedianStopping>(options);
}

}  // namespace xpscale
