// TPE, written here: no Debian C++ library implements it (Optuna's is
// Python), and the searcher must be deterministic across machines, which
// rng.h gives and std::*_distribution does not. See tpe_searcher.h.
#include "xpscale/search/tpe_searcher.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numbers>

#include "xpscale/search/rng.h"

namespace xpscale {
namespace {

// Candidate draws use their own streams, far from random search's (one
// stream per parameter index, which the startup trials share on purpose).
constexpr std::uint64_t kCandidateStream = 0x7470'6500'0000'0000ULL;
constexpr std::uint64_t kJointStream = 0x7470'6501'0000'0000ULL;  // multivariate: one stream
constexpr int kRecencyFlat = 25;  // Optuna: the newest 25 observations weigh 1

// One observed trial. u[j]: parameter j's unit value (numeric) or category
// index (categorical); nullopt when the trial does not have parameter j.
struct Obs {
  std::uint64_t index = 0;
  std::vector<std::optional<double>> u;
  TrialEnd end = TrialEnd::kCompleted;
  double score = 0;
  double resource = 0;
};

// Best first: completed by score, then stopped by resource (further is
// better), then score; the index breaks ties so the order is total.
bool ranks_before(const Obs& a, const Obs& b) {
  const bool ac = a.end == TrialEnd::kCompleted, bc = b.end == TrialEnd::kCompleted;
  if (ac != bc) return ac;
  if (!ac && a.resource != b.resource) return a.resource > b.resource;
  if (a.score != b.score) return a.score < b.score;
  return a.index < b.index;
}

// Optuna's default_weights: 1 for the newest 25, a ramp from 1/n up for the
// older ones. `n` observations in time order.
std::vector<double> recency_weights(std::size_t n) {
  std::vector<double> w(n, 1.0);
  if (n <= static_cast<std::size_t>(kRecencyFlat)) return w;
  const std::size_t ramp = n - kRecencyFlat;
  for (std::size_t i = 0; i < ramp; ++i)
    w[i] = ramp == 1 ? 1.0 / static_cast<double>(n)
                     : 1.0 / static_cast<double>(n) + (1.0 - 1.0 / static_cast<double>(n)) *
                                                          static_cast<double>(i) /
                                                          static_cast<double>(ramp - 1);
  return w;
}

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::numbers::sqrt2); }

// A mixture of Gaussians truncated to [0, 1].
struct Mixture {
  std::vector<double> weight, mu, sigma, log_mass;  // log_mass: log of the mass inside [0, 1]

  double log_density(double x) const {
    double best = -std::numeric_limits<double>::infinity();
    std::vector<double> terms(mu.size());
    for (std::size_t k = 0; k < mu.size(); ++k) {
      const double z = (x - mu[k]) / sigma[k];
      terms[k] = std::log(weight[k]) - 0.5 * z * z - std::log(sigma[k]) -
                 0.5 * std::log(2 * std::numbers::pi) - log_mass[k];
      best = std::max(best, terms[k]);
    }
    double sum = 0;
    for (double t : terms) sum += std::exp(t - best);
    return best + std::log(sum);
  }

  // Rejection sampling: sigma >= 1/100 and mu in [0, 1] keep the
  // acceptance high; after 100 misses, a uniform draw.
  double sample(Rng& rng) const {
    double pick = rng.next_unit(), acc = 0;
    std::size_t k = 0;
    for (; k + 1 < weight.size(); ++k) {
      acc += weight[k];
      if (pick < acc) break;
    }
    for (int tries = 0; tries < 100; ++tries) {
      // Box-Muller from two open-interval uniforms.
      const double r = std::sqrt(-2 * std::log(rng.next_unit()));
      const double x = mu[k] + sigma[k] * r * std::cos(2 * std::numbers::pi * rng.next_unit());
      if (x > 0 && x < 1) return x;
    }
    return rng.next_unit();
  }
};

// Optuna 3.1's _ParzenEstimator for a numeric parameter on [0, 1]
// (consider_prior, magic clip, no endpoints): one component per
// observation plus the prior N(0.5, 1), each observation's bandwidth the
// larger gap to its sorted neighbours, clipped to [1 / min(100, n + 1), 1].
Mixture numeric_mixture(const std::vector<double>& xs, const std::vector<double>& w,
                        double prior_weight) {
  struct C {
    double mu, weight;
    bool prior;
  };
  std::vector<C> cs;
  for (std::size_t i = 0; i < xs.size(); ++i) cs.push_back({xs[i], w[i], false});
  cs.push_back({0.5, prior_weight, true});
  std::stable_sort(cs.begin(), cs.end(), [](const C& a, const C& b) { return a.mu < b.mu; });
  const std::size_t n = cs.size();
  const double min_sigma = 1.0 / std::min(100.0, static_cast<double>(n) + 1.0);
  Mixture m;
  double total = 0;
  for (const auto& c : cs) total += c.weight;
  for (std::size_t i = 0; i < n; ++i) {
    double sigma = 1.0;
    if (!cs[i].prior && n >= 2) {
      const double left = i > 0 ? cs[i].mu - cs[i - 1].mu : 0;
      const double right = i + 1 < n ? cs[i + 1].mu - cs[i].mu : 0;
      sigma = std::max(left, right);
    }
    sigma = std::clamp(sigma, min_sigma, 1.0);
    m.weight.push_back(cs[i].weight / total);
    m.mu.push_back(cs[i].mu);
    m.sigma.push_back(sigma);
    m.log_mass.push_back(
        std::log(normal_cdf((1 - cs[i].mu) / sigma) - normal_cdf((0 - cs[i].mu) / sigma)));
  }
  return m;
}

// Category probabilities: prior_weight spread evenly plus each
// observation's weight on its category.
std::vector<double> categorical_probs(std::size_t n_cat, const std::vector<double>& cats,
                                      const std::vector<double>& w, double prior_weight) {
  std::vector<double> p(n_cat, prior_weight / static_cast<double>(n_cat));
  double total = prior_weight;
  for (std::size_t i = 0; i < cats.size(); ++i) {
    p[static_cast<std::size_t>(cats[i])] += w[i];
    total += w[i];
  }
  for (double& x : p) x /= total;
  return p;
}

// Multivariate TPE's estimator (Falkner et al. 2018; Optuna's
// multivariate=True): one product kernel per observation over all searched
// parameters, plus the prior N(0.5, 1) / uniform. Numeric factors are
// Gaussians truncated to [0, 1], one bandwidth per parameter and estimator
// (Scott's rule, see joint_mixture); categorical factors put weight 1 on
// the observed category over prior_weight / kernels spread on all
// (Optuna's). A parameter an observation lacks (conditional) is a flat
// factor: uniform on [0, 1] or over the categories.
struct Factor {
  double mu = 0.5, sigma = 1, log_mass = 0;
  std::vector<double> p;  // categorical: probability of each category
  bool flat = false;
};

struct JointMixture {
  std::vector<double> weight;               // per kernel, summing to 1
  std::vector<std::vector<Factor>> kernel;  // [kernel][parameter]; empty factor = not searched

  double log_density(const std::vector<std::optional<double>>& x) const {
    double best = -std::numeric_limits<double>::infinity();
    std::vector<double> terms(kernel.size());
    for (std::size_t k = 0; k < kernel.size(); ++k) {
      double t = std::log(weight[k]);
      for (std::size_t j = 0; j < x.size(); ++j) {
        if (!x[j]) continue;
        const Factor& f = kernel[k][j];
        if (!f.p.empty()) {
          t += std::log(f.p[static_cast<std::size_t>(*x[j])]);
        } else if (!f.flat) {
          const double z = (*x[j] - f.mu) / f.sigma;
          t += -0.5 * z * z - std::log(f.sigma) - 0.5 * std::log(2 * std::numbers::pi) - f.log_mass;
        }
      }
      terms[k] = t;
      best = std::max(best, t);
    }
    double sum = 0;
    for (double t : terms) sum += std::exp(t - best);
    return best + std::log(sum);
  }

  // A kernel by weight, then each searched parameter from its factor.
  void sample(Rng& rng, std::vector<std::optional<double>>& x) const {
    const double pick = rng.next_unit();
    double acc = 0;
    std::size_t k = 0;
    for (; k + 1 < weight.size(); ++k) {
      acc += weight[k];
      if (pick < acc) break;
    }
    for (std::size_t j = 0; j < x.size(); ++j) {
      if (!x[j]) continue;
      const Factor& f = kernel[k][j];
      if (!f.p.empty()) {
        const double u = rng.next_unit();
        double a = 0;
        std::size_t c = 0;
        for (; c + 1 < f.p.size(); ++c) {
          a += f.p[c];
          if (u < a) break;
        }
        x[j] = static_cast<double>(c);
      } else if (f.flat) {
        x[j] = rng.next_unit();
      } else {
        const Mixture one{{1.0}, {f.mu}, {f.sigma}, {f.log_mass}};
        x[j] = one.sample(rng);
      }
    }
  }
};

const char* end_name(TrialEnd e) {
  return e == TrialEnd::kCompleted ? "completed" : e == TrialEnd::kStopped ? "stopped" : "failed";
}

class TpeSearcher : public Searcher {
 public:
  TpeSearcher(const SweepConfig& config, const TpeOptions& options)
      : config_(config), options_(options) {}

  bool adaptive() const override { return true; }

  std::optional<Params> suggest(std::uint64_t index) override {
    auto it = pending_.find(index);
    if (it == pending_.end())
      it = pending_
               .emplace(index, static_cast<int>(observations_.size()) < options_.n_startup
                                   ? startup_draw(index)
                                   : tpe_draw(index))
               .first;
    return params_of(it->second);
  }

  void observe(std::uint64_t index, const Params& /*params*/, const Observation& o) override {
    auto it = pending_.find(index);
    if (it == pending_.end()) return;  // not proposed by this searcher (already observed)
    if (o.end != TrialEnd::kFailed && o.score && std::isfinite(*o.score))
      observations_.push_back({index, it->second, o.end, *o.score, o.resource});
    pending_.erase(it);
  }

  nlohmann::json state() const override {
    nlohmann::json pending = nlohmann::json::array(), obs = nlohmann::json::array();
    for (const auto& [index, u] : pending_) pending.push_back({{"i", index}, {"u", to_json(u)}});
    for (const auto& o : observations_)
      obs.push_back({{"i", o.index},
                     {"u", to_json(o.u)},
                     {"end", end_name(o.end)},
                     {"score", o.score},
                     {"resource", o.resource}});
    return {{"type", "tpe"}, {"pending", pending}, {"observations", obs}};
  }

  void restore(const nlohmann::json& state) override {
    try {
      if (state.at("type") != "tpe") throw Error("not a TPE state");
      pending_.clear();
      observations_.clear();
      for (const auto& p : state.at("pending"))
        pending_[p.at("i").get<std::uint64_t>()] = from_json(p.at("u"));
      for (const auto& o : state.at("observations")) {
        const std::string end = o.at("end").get<std::string>();
        observations_.push_back({o.at("i").get<std::uint64_t>(), from_json(o.at("u")),
                                 end == "completed" ? TrialEnd::kCompleted : TrialEnd::kStopped,
                                 o.at("score").get<double>(), o.at("resource").get<double>()});
      }
    } catch (const nlohmann::json::exception& e) {
      throw Error(std::string("the stored TPE state is malformed: ") + e.what());
    }
  }

 private:
  using Point = std::vector<std::optional<double>>;

  bool categorical(std::size_t j) const {
    return config_.parameters[j].distribution == Distribution::kCategorical;
  }

  // The same draws as method: random (stream j, index), so the startup
  // trials are random search's.
  Point startup_draw(std::uint64_t index) const {
    Point u(config_.parameters.size());
    for (std::size_t j = 0; j < u.size(); ++j) {
      const auto& spec = config_.parameters[j];
      const double x = random_unit(config_.seed, j, index);
      if (!spec.is_searchable()) continue;
      if (categorical(j)) {
        const auto value = spec.from_unit(x);
        u[j] = static_cast<double>(std::find(spec.values.begin(), spec.values.end(), value) -
                                   spec.values.begin());
      } else {
        u[j] = x;
      }
    }
    return u;
  }

  Point tpe_draw(std::uint64_t index) const {
    std::vector<const Obs*> sorted;
    for (const auto& o : observations_) sorted.push_back(&o);
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const Obs* a, const Obs* b) { return ranks_before(*a, *b); });
    const auto n = static_cast<double>(sorted.size());
    const auto n_below = static_cast<std::size_t>(
        std::min<double>(std::ceil(options_.gamma * n), options_.gamma_cap));
    std::vector<bool> below(observations_.size(), false);
    for (std::size_t i = 0; i < n_below; ++i)
      below[static_cast<std::size_t>(sorted[i] - observations_.data())] = true;

    if (options_.multivariate) return joint_draw(below, index);
    Point u(config_.parameters.size());
    for (std::size_t j = 0; j < u.size(); ++j) {
      if (!config_.parameters[j].is_searchable()) continue;
      // Each side's observations of parameter j, in time order.
      std::vector<double> xl, xg;
      for (std::size_t i = 0; i < observations_.size(); ++i)
        if (const auto& x = observations_[i].u[j]) (below[i] ? xl : xg).push_back(*x);
      Rng rng(random_bits(config_.seed, kCandidateStream + j, index), 0);
      u[j] = categorical(j) ? best_category(j, xl, xg, rng) : best_numeric(xl, xg, rng);
    }
    return u;
  }

  // Of `candidates` whole points drawn from l, the one with the highest
  // l(x)/g(x).
  Point joint_draw(const std::vector<bool>& below, std::uint64_t index) const {
    const JointMixture l = joint_mixture(below, true), g = joint_mixture(below, false);
    Point shape(config_.parameters.size());
    for (std::size_t j = 0; j < shape.size(); ++j)
      if (config_.parameters[j].is_searchable()) shape[j] = 0.0;
    Rng rng(random_bits(config_.seed, kJointStream, index), 0);
    Point best = shape, x = shape;
    double best_ei = -std::numeric_limits<double>::infinity();
    for (int c = 0; c < options_.candidates; ++c) {
      l.sample(rng, x);
      const double ei = l.log_density(x) - g.log_density(x);
      if (ei > best_ei) best_ei = ei, best = x;
    }
    return best;
  }

  // The estimator of one side (below: l, else g), observations in time order.
  JointMixture joint_mixture(const std::vector<bool>& below, bool side) const {
    std::vector<const Obs*> obs;
    for (std::size_t i = 0; i < observations_.size(); ++i)
      if (below[i] == side) obs.push_back(&observations_[i]);
    const std::vector<double> w = recency_weights(obs.size());
    std::size_t d = 0;
    for (const auto& spec : config_.parameters) d += spec.is_searchable() ? 1 : 0;
    const double n_kernels = static_cast<double>(obs.size()) + 1;
    // Scott's rule per parameter: 1.06 * sd_j * n^(-1 / (d + 4)), sd_j the
    // sample standard deviation of the side's values of parameter j (0.2,
    // Optuna's constant, while there are fewer than two), inside the magic
    // clip. The spread of l shrinks as its points gather, which a constant
    // does not see.
    const double scott = std::pow(std::max<double>(static_cast<double>(obs.size()), 1.0),
                                  -1.0 / (static_cast<double>(d) + 4));
    std::vector<double> sigmas(config_.parameters.size(), 1.0);
    for (std::size_t j = 0; j < sigmas.size(); ++j) {
      double sum = 0, sum_sq = 0, count = 0;
      for (const Obs* o : obs)
        if (const auto& x = o->u[j]) sum += *x, sum_sq += *x * *x, count += 1;
      const double sd =
          count > 1 ? 1.06 * std::sqrt(std::max(0.0, (sum_sq - sum * sum / count) / (count - 1)))
                    : 0.2;
      sigmas[j] = std::clamp(sd * scott, 1.0 / std::min(100.0, n_kernels + 1), 1.0);
    }
    JointMixture m;
    double total = options_.prior_weight;
    for (double x : w) total += x;
    for (std::size_t k = 0; k <= obs.size(); ++k) {
      const bool prior = k == obs.size();
      m.weight.push_back((prior ? options_.prior_weight : w[k]) / total);
      std::vector<Factor> fs(config_.parameters.size());
      for (std::size_t j = 0; j < fs.size(); ++j) {
        if (!config_.parameters[j].is_searchable()) continue;
        Factor& f = fs[j];
        // The prior has no value; an observation may lack parameter j.
        const bool has = !prior && obs[k]->u[j].has_value();
        const double x = has ? *obs[k]->u[j] : 0.5;
        if (categorical(j)) {
          const std::size_t n_cat = config_.parameters[j].values.size();
          f.p.assign(n_cat, 1.0 / static_cast<double>(n_cat));
          if (has) {
            const double spread = options_.prior_weight / n_kernels;
            for (double& p : f.p) p = spread / (1 + spread * static_cast<double>(n_cat));
            f.p[static_cast<std::size_t>(x)] += 1 / (1 + spread * static_cast<double>(n_cat));
          }
        } else if (prior) {
          f.mu = 0.5, f.sigma = 1;
        } else if (!has) {
          f.flat = true;
        } else {
          f.mu = x, f.sigma = sigmas[j];
        }
        if (f.p.empty() && !f.flat)
          f.log_mass =
              std::log(normal_cdf((1 - f.mu) / f.sigma) - normal_cdf((0 - f.mu) / f.sigma));
      }
      m.kernel.push_back(std::move(fs));
    }
    return m;
  }

  double best_numeric(const std::vector<double>& xl, const std::vector<double>& xg,
                      Rng& rng) const {
    const Mixture l = numeric_mixture(xl, recency_weights(xl.size()), options_.prior_weight);
    const Mixture g = numeric_mixture(xg, recency_weights(xg.size()), options_.prior_weight);
    double best = 0.5, best_ei = -std::numeric_limits<double>::infinity();
    for (int c = 0; c < options_.candidates; ++c) {
      const double x = l.sample(rng);
      const double ei = l.log_density(x) - g.log_density(x);
      if (ei > best_ei) best_ei = ei, best = x;
    }
    return best;
  }

  double best_category(std::size_t j, const std::vector<double>& xl, const std::vector<double>& xg,
                       Rng& rng) const {
    const std::size_t k = config_.parameters[j].values.size();
    const auto pl = categorical_probs(k, xl, recency_weights(xl.size()), options_.prior_weight);
    const auto pg = categorical_probs(k, xg, recency_weights(xg.size()), options_.prior_weight);
    std::size_t best = 0;
    double best_ei = -std::numeric_limits<double>::infinity();
    for (int c = 0; c < options_.candidates; ++c) {
      double pick = rng.next_unit(), acc = 0;
      std::size_t cat = 0;
      for (; cat + 1 < k; ++cat) {
        acc += pl[cat];
        if (pick < acc) break;
      }
      const double ei = std::log(pl[cat]) - std::log(pg[cat]);
      if (ei > best_ei) best_ei = ei, best = cat;
    }
    return static_cast<double>(best);
  }

  Params params_of(const Point& u) const {
    std::vector<nlohmann::json> values;
    values.reserve(u.size());
    for (std::size_t j = 0; j < u.size(); ++j) {
      const auto& spec = config_.parameters[j];
      if (!spec.is_searchable())
        values.push_back(spec.from_unit(0.5));
      else if (categorical(j))
        values.push_back(spec.values.at(static_cast<std::size_t>(*u[j])));
      else
        values.push_back(spec.from_unit(*u[j]));
    }
    return make_params(config_.parameters, std::move(values));
  }

  static nlohmann::json to_json(const Point& u) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& x : u) a.push_back(x ? nlohmann::json(*x) : nlohmann::json(nullptr));
    return a;
  }
  Point from_json(const nlohmann::json& a) const {
    if (!a.is_array() || a.size() != config_.parameters.size())
      throw Error("the stored TPE state has " + std::to_string(a.size()) +
                  " values per trial; the config has " + std::to_string(config_.parameters.size()) +
                  " parameters");
    Point u;
    for (const auto& x : a)
      u.push_back(x.is_null() ? std::nullopt : std::optional(x.get<double>()));
    return u;
  }

  SweepConfig config_;  // a copy: a temporary config must not dangle
  TpeOptions options_;
  std::map<std::uint64_t, Point> pending_;  // proposed, not yet observed
  std::vector<Obs> observations_;           // in the order they were observed
};

}  // namespace

std::unique_ptr<Searcher> make_tpe_searcher(const SweepConfig& config, const TpeOptions& options) {
  return std::make_unique<TpeSearcher>(config, options);
}

}  // namespace xpscale
