// fANOVA parameter importance (importance.h says what it computes).
//
// Why hand-written: Debian has no C++ library that does fANOVA, and the only
// C++ random forest it packages, OpenCV's ml module (libopencv-ml-dev, not
// among our dependencies), draws its randomness from the thread's
// cv::theRNG() rather than a seed per call, fits float32 features, and
// would bring OpenCV in for what is ~400 lines here; mlpack is not packaged
// for C++ and ranger and randomForest only as R packages. fANOVA needs
// the trees' structure anyway, so the forest is grown here as
// scikit-learn grows it for Optuna, and rankings agree with Optuna's
// (tests/unit/importance_optuna_test.py).
#include "xpscale/report/importance.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace xpscale::report {
namespace {

using nlohmann::json;

static_assert(kMaxCategories <= 64, "a categorical's columns are one 64-bit mask");

// One parameter's columns in the design matrix: one for a numeric
// parameter, one per category for a categorical one.
struct Param {
  std::string name;
  bool categorical = false;
  std::size_t first_column = 0;
  std::size_t columns = 1;
};

// The trials as the forest sees them.
struct Design {
  std::vector<Param> params;
  std::vector<std::vector<double>> x;  // x[column][trial]
  std::vector<double> low, high;       // each column's range
  std::vector<double> y;               // standardised: mean ~0, variance 1
};

bool finite_number(const json& v) { return v.is_number() && std::isfinite(v.get<double>()); }

// `param`'s values, one per trial (nullptr: missing), become its columns,
// or nothing when it does not vary. A NaN or infinite number (nlohmann can
// hold them, JSON text cannot) counts as missing.
void add_param(Design& d, const std::string& name, const std::vector<const json*>& values) {
  const std::size_t n = values.size();
  bool numeric = true;
  bool any_missing = false;
  double lo = INFINITY, hi = -INFINITY;
  for (const json* v : values) {
    if (v == nullptr || (v->is_number() && !finite_number(*v))) {
      any_missing = true;
    } else if (v->is_number()) {
      lo = std::min(lo, v->get<double>());
      hi = std::max(hi, v->get<double>());
    } else {
      numeric = false;
    }
  }

  if (numeric) {
    if (lo == hi && !any_missing) return;
    // Scaled to [0, 1] (halves first, so that no finite range overflows):
    // the trees split where scikit-learn's would (an affine map keeps
    // midpoints), and every column has a range of the same order.
    const double half_span = hi / 2 - lo / 2;
    std::vector<double> column(n);
    for (std::size_t i = 0; i < n; ++i) {
      const json* v = values[i];
      if (v == nullptr || !finite_number(*v))
        column[i] = -1;  // one range below the smallest value
      else
        column[i] = half_span > 0 ? (v->get<double>() / 2 - lo / 2) / half_span : 0;
    }
    d.params.push_back({name, false, d.x.size(), 1});
    d.x.push_back(std::move(column));
    d.low.push_back(any_missing ? -1 : 0);
    d.high.push_back(half_span > 0 ? 1 : 0);
    return;
  }

  // Categorical over the JSON text; "" (no JSON text) stands for missing.
  std::vector<std::string> text(n);
  std::map<std::string, std::size_t> count;
  for (std::size_t i = 0; i < n; ++i) {
    if (values[i] != nullptr) text[i] = values[i]->dump();
    ++count[text[i]];
  }
  if (count.size() < 2) return;
  std::vector<std::pair<std::size_t, std::string>> by_count;
  for (auto& [t, c] : count) by_count.emplace_back(c, t);
  std::stable_sort(by_count.begin(), by_count.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  const std::size_t columns = std::min(by_count.size(), kMaxCategories);
  std::map<std::string, std::size_t> column_of;
  for (std::size_t c = 0; c < by_count.size(); ++c)
    column_of[by_count[c].second] = std::min(c, columns - 1);

  d.params.push_back({name, true, d.x.size(), columns});
  for (std::size_t c = 0; c < columns; ++c) {
    d.x.emplace_back(n, 0.0);
    d.low.push_back(0);
    d.high.push_back(1);
  }
  const std::size_t first = d.params.back().first_column;
  for (std::size_t i = 0; i < n; ++i) d.x[first + column_of[text[i]]][i] = 1;
}

Design encode(const std::vector<json>& params, const std::vector<double>& values) {
  Design d;
  std::vector<std::size_t> kept;
  for (std::size_t i = 0; i < values.size(); ++i)
    if (std::isfinite(values[i])) kept.push_back(i);

  std::map<std::string, std::vector<const json*>> by_name;  // sorted: a fixed column order
  for (std::size_t k = 0; k < kept.size(); ++k) {
    const json& p = params[kept[k]];
    if (!p.is_object()) continue;
    for (auto it = p.begin(); it != p.end(); ++it) {
      auto& column = by_name[it.key()];
      column.resize(kept.size(), nullptr);
      column[k] = &it.value();
    }
  }
  for (auto& [name, column] : by_name) {
    column.resize(kept.size(), nullptr);
    add_param(d, name, column);
  }

  // Standardised, halving first and scaling by the largest deviation so
  // that no finite values overflow on the way.
  double mean = 0;
  for (std::size_t i : kept) mean += values[i] / static_cast<double>(kept.size());
  double scale = 0;
  for (std::size_t i : kept) scale = std::max(scale, std::abs(values[i] / 2 - mean / 2));
  d.y.reserve(kept.size());
  for (std::size_t i : kept) d.y.push_back(scale > 0 ? (values[i] / 2 - mean / 2) / scale : 0);
  double var = 0;
  for (double y : d.y) var += y * y / static_cast<double>(d.y.size());
  const double sd = std::sqrt(var);
  for (double& y : d.y) y = sd > 0 ? y / sd : 0;
  return d;
}

// A regression tree as scikit-learn stores one: nodes in an array, a leaf
// has feature -1.
struct Node {
  int feature = -1;
  double threshold = 0;  // x <= threshold goes left
  std::uint32_t left = 0, right = 0;
  double value = 0;  // the mean target of the node's samples
};
using Tree = std::vector<Node>;

// A uniform draw from [0, n); the modulo bias is below n / 2^64.
std::uint64_t below(std::mt19937_64& rng, std::uint64_t n) { return rng() % n; }

// Grows trees as scikit-learn's RandomForestRegressor does with Optuna's
// settings. Each column's samples are sorted once; a node owns the same
// range [start, end) in every column's list, and a split partitions each
// list stably, so no node sorts.
class TreeGrower {
 public:
  TreeGrower(const Design& d, int max_depth) : d_(d), max_depth_(max_depth) {
    const std::size_t n = d.y.size();
    sorted_.resize(d.x.size());
    for (std::size_t c = 0; c < d.x.size(); ++c) {
      auto& s = sorted_[c];
      s.resize(n);
      for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<std::uint32_t>(i);
      std::stable_sort(s.begin(), s.end(),
                       [&](std::uint32_t a, std::uint32_t b) { return d.x[c][a] < d.x[c][b]; });
    }
    lists_.resize(d.x.size());
    goes_left_.assign(n, 0);
    buffer_.resize(n);
    order_.resize(d.x.size());
  }

  // Grows one tree into `tree` (its storage is reused from tree to tree).
  void grow(std::mt19937_64& rng, Tree& tree) {
    const std::size_t n = d_.y.size();
    // The bootstrap sample as weights, as scikit-learn passes it.
    weight_.assign(n, 0.0);
    for (std::size_t k = 0; k < n; ++k) weight_[below(rng, n)] += 1;
    for (std::size_t c = 0; c < lists_.size(); ++c) {
      lists_[c].clear();
      for (std::uint32_t i : sorted_[c])
        if (weight_[i] > 0) lists_[c].push_back(i);
    }

    tree.assign(1, Node{});
    tree.reserve(2 * lists_[0].size());
    stack_.assign(1, {0, 0, static_cast<std::uint32_t>(lists_[0].size()), 0});
    while (!stack_.empty()) {
      const Pending p = stack_.back();
      stack_.pop_back();
      const Split s = split(tree[p.node], p.start, p.end, p.depth, rng);
      if (s.feature < 0) continue;
      partition(s, p.start, p.end);
      const auto left = static_cast<std::uint32_t>(tree.size());
      tree[p.node].feature = s.feature;
      tree[p.node].threshold = s.threshold;
      tree[p.node].left = left;
      tree[p.node].right = left + 1;
      tree.resize(tree.size() + 2);
      stack_.push_back({left + 1, s.pos, p.end, p.depth + 1});
      stack_.push_back({left, p.start, s.pos, p.depth + 1});
    }
  }

 private:
  struct Pending {
    std::uint32_t node, start, end;
    int depth;
  };
  struct Split {
    int feature = -1;
    std::uint32_t pos = 0;  // the right child starts here
    double threshold = 0;
  };

  // Sets the node's value and returns its best split (feature -1: a leaf).
  Split split(Node& node, std::uint32_t start, std::uint32_t end, int depth, std::mt19937_64& rng) {
    const auto& any = lists_[0];
    double w = 0, sum = 0;
    double y_min = INFINITY, y_max = -INFINITY;
    for (std::uint32_t k = start; k < end; ++k) {
      const std::uint32_t i = any[k];
      w += weight_[i];
      sum += weight_[i] * d_.y[i];
      y_min = std::min(y_min, d_.y[i]);
      y_max = std::max(y_max, d_.y[i]);
    }
    node.value = sum / w;
    Split best;
    // min_samples_split = 2 counts distinct samples; a pure node stays a leaf.
    if (end - start < 2 || depth >= max_depth_ || y_min == y_max) return best;

    // Every feature, in a random order: it only breaks ties, as in
    // scikit-learn (the first strictly best split wins).
    for (std::size_t c = 0; c < order_.size(); ++c) order_[c] = c;
    for (std::size_t c = order_.size(); c > 1; --c) std::swap(order_[c - 1], order_[below(rng, c)]);

    double best_proxy = -INFINITY;
    for (std::size_t c : order_) {
      const auto& list = lists_[c];
      const auto& x = d_.x[c];
      if (x[list[start]] == x[list[end - 1]]) continue;  // constant here
      double wl = 0, sl = 0;
      for (std::uint32_t k = start; k + 1 < end; ++k) {
        const std::uint32_t i = list[k];
        wl += weight_[i];
        sl += weight_[i] * d_.y[i];
        const double xi = x[i], xn = x[list[k + 1]];
        if (!(xn > xi)) continue;
        // scikit-learn's proxy for the decrease of the squared error.
        const double sr = sum - sl;
        const double proxy = sl * sl / wl + sr * sr / (w - wl);
        if (proxy > best_proxy) {
          best_proxy = proxy;
          best.feature = static_cast<int>(c);
          best.pos = k + 1;
          best.threshold = xi / 2 + xn / 2;
          if (best.threshold >= xn) best.threshold = xi;
        }
      }
    }
    return best;
  }

  // Splits [start, end) of every column's list at s, keeping each sorted.
  void partition(const Split& s, std::uint32_t start, std::uint32_t end) {
    const auto& chosen = lists_[static_cast<std::size_t>(s.feature)];
    for (std::uint32_t k = start; k < s.pos; ++k) goes_left_[chosen[k]] = 1;
    for (std::size_t c = 0; c < lists_.size(); ++c) {
      if (c == static_cast<std::size_t>(s.feature)) continue;
      auto& list = lists_[c];
      // Branch-free: which side a trial goes to is a coin toss to the CPU.
      std::uint32_t out = start, right = 0;
      for (std::uint32_t k = start; k < end; ++k) {
        const std::uint32_t i = list[k];
        const std::uint32_t left = goes_left_[i];
        list[out] = i;
        buffer_[right] = i;
        out += left;
        right += 1 - left;
      }
      std::copy(buffer_.begin(), buffer_.begin() + right, list.begin() + out);
    }
    for (std::uint32_t k = start; k < s.pos; ++k) goes_left_[chosen[k]] = 0;
  }

  const Design& d_;
  const int max_depth_;
  std::vector<std::vector<std::uint32_t>> sorted_;  // per column, all trials
  std::vector<std::vector<std::uint32_t>> lists_;   // per column, the bootstrap's trials
  std::vector<double> weight_;
  std::vector<std::uint8_t> goes_left_;
  std::vector<std::uint32_t> buffer_;
  std::vector<std::size_t> order_;
  std::vector<Pending> stack_;
};

// The fANOVA decomposition of one tree: the variance of the tree's
// prediction over the box of all columns' ranges (uniform measure), and of
// each parameter's marginal. A leaf's share of the box factorises over the
// parameters; the marginal of parameter p at a point of its columns is the
// sum, over the leaves whose box holds the point, of the leaf's value times
// its share of the other parameters' box (those shares sum to 1).
class TreeVariance {
 public:
  explicit TreeVariance(const Design& d)
      : d_(d), params_(d.params.size()), lo_(d.low), hi_(d.high) {
    lo_step_.assign(d.x.size(), 0);
    hi_step_.resize(d.x.size());
    cuts_.resize(d.x.size());
  }

  // Returns false when the tree's prediction does not vary; else sets
  // marginal[p] to parameter p's marginal variance / the tree's variance.
  bool compute(const Tree& tree, std::vector<double>& marginal) {
    index_cuts(tree);
    leaves_ = 0;
    value_.clear();
    share_.clear();
    lo_at_.clear();
    hi_at_.clear();
    fixed_.clear();
    high_.clear();
    visit(tree, 0);

    // A leaf's volume is the product of its shares; after_ holds, per leaf,
    // the products of its shares from parameter q on (after_[.. + 0]: all).
    const std::size_t stride = params_ + 1;
    after_.resize(leaves_ * stride);
    double total = 0, mean = 0;
    for (std::size_t l = 0; l < leaves_; ++l) {
      double* a = &after_[l * stride];
      a[params_] = 1;
      for (std::size_t q = params_; q-- > 0;) a[q] = a[q + 1] * share_[l * params_ + q];
      total += a[0];
      mean += a[0] * value_[l];
    }
    if (!(total > 0)) return false;
    mean /= total;
    double variance = 0;
    for (std::size_t l = 0; l < leaves_; ++l)
      variance += after_[l * stride] * (value_[l] - mean) * (value_[l] - mean);
    variance /= total;
    if (!(variance > 0)) return false;

    // c_[l]: leaf l's centred value times its share of every parameter's
    // box but p's, the product of its shares before p and after p.
    before_.assign(leaves_, 1.0);
    c_.resize(leaves_);
    for (std::size_t p = 0; p < params_; ++p) {
      for (std::size_t l = 0; l < leaves_; ++l) {
        c_[l] = before_[l] * after_[l * stride + p + 1] * (value_[l] - mean) / total;
        before_[l] *= share_[l * params_ + p];
      }
      const double v = d_.params[p].categorical ? categorical_variance(p) : numeric_variance(p);
      marginal[p] = std::max(0.0, v) / variance;
    }
    return true;
  }

 private:
  // cuts_[f]: the distinct thresholds the tree splits column f at, sorted;
  // step_[node]: the node's threshold's index in them. A box's side on f
  // is then a pair of steps (0: the column's low end; cuts + 1: its high).
  void index_cuts(const Tree& tree) {
    for (auto& c : cuts_) c.clear();
    for (const Node& node : tree)
      if (node.feature >= 0)
        cuts_[static_cast<std::size_t>(node.feature)].push_back(node.threshold);
    for (auto& c : cuts_) {
      std::sort(c.begin(), c.end());
      c.erase(std::unique(c.begin(), c.end()), c.end());
    }
    step_.resize(tree.size());
    for (std::size_t i = 0; i < tree.size(); ++i) {
      if (tree[i].feature < 0) continue;
      const auto& c = cuts_[static_cast<std::size_t>(tree[i].feature)];
      step_[i] = static_cast<std::uint32_t>(
          std::lower_bound(c.begin(), c.end(), tree[i].threshold) - c.begin() + 1);
    }
    for (std::size_t f = 0; f < cuts_.size(); ++f)
      hi_step_[f] = static_cast<std::uint32_t>(cuts_[f].size() + 1);
  }

  void visit(const Tree& tree, std::uint32_t index) {
    const Node& node = tree[index];
    if (node.feature >= 0) {
      const auto f = static_cast<std::size_t>(node.feature);
      const double saved_hi = hi_[f], saved_lo = lo_[f];
      const std::uint32_t saved_hi_step = hi_step_[f], saved_lo_step = lo_step_[f];
      hi_[f] = node.threshold;
      hi_step_[f] = step_[index];
      visit(tree, node.left);
      hi_[f] = saved_hi;
      hi_step_[f] = saved_hi_step;
      lo_[f] = node.threshold;
      lo_step_[f] = step_[index];
      visit(tree, node.right);
      lo_[f] = saved_lo;
      lo_step_[f] = saved_lo_step;
      return;
    }
    ++leaves_;
    value_.push_back(node.value);
    for (const Param& p : d_.params) {
      const std::size_t c0 = p.first_column;
      if (!p.categorical) {
        share_.push_back((hi_[c0] - lo_[c0]) / (d_.high[c0] - d_.low[c0]));
        lo_at_.push_back(lo_step_[c0]);
        hi_at_.push_back(hi_step_[c0]);
        fixed_.push_back(0);
        high_.push_back(0);
        continue;
      }
      // A 0/1 column splits at 0.5: a leaf holds its low half, its high
      // half or both. fixed is the mask of the columns held to one half,
      // high of those held to the high one.
      std::uint64_t fixed = 0, high = 0;
      for (std::size_t j = 0; j < p.columns; ++j) {
        if (hi_[c0 + j] <= 0.5) {
          fixed |= std::uint64_t{1} << j;
        } else if (lo_[c0 + j] >= 0.5) {
          fixed |= std::uint64_t{1} << j;
          high |= std::uint64_t{1} << j;
        }
      }
      share_.push_back(std::ldexp(1.0, -std::popcount(fixed)));
      lo_at_.push_back(0);
      hi_at_.push_back(0);
      fixed_.push_back(fixed);
      high_.push_back(high);
    }
  }

  // The marginal is a step function between the column's cuts: add each
  // leaf's c over its steps and take the variance of the steps, weighted
  // by their length.
  double numeric_variance(std::size_t p) {
    const std::size_t f = d_.params[p].first_column;
    const auto& cuts = cuts_[f];
    level_.assign(cuts.size() + 2, 0.0);
    for (std::size_t l = 0; l < leaves_; ++l) {
      const std::size_t k = l * params_ + p;
      level_[lo_at_[k]] += c_[l];
      level_[hi_at_[k]] -= c_[l];
    }
    const double low = d_.low[f], span = d_.high[f] - d_.low[f];
    double level = 0, m1 = 0, m2 = 0, from = low;
    for (std::size_t s = 0; s <= cuts.size(); ++s) {
      level += level_[s];
      const double to = s < cuts.size() ? cuts[s] : d_.high[f];
      const double len = (to - from) / span;
      m1 += len * level;
      m2 += len * level * level;
      from = to;
    }
    return m2 - m1 * m1;
  }

  // The marginal over a categorical's 0/1 columns, each uniform on [0, 1]
  // as Optuna takes them (so also over encodings no trial has): leaves with
  // the same columns held group into one term; E[m^2] sums over pairs of
  // terms the measure of their overlap.
  double categorical_variance(std::size_t p) {
    terms_.clear();
    for (std::size_t l = 0; l < leaves_; ++l) {
      const std::size_t k = l * params_ + p;
      terms_.push_back({fixed_[k], high_[k], c_[l]});
    }
    std::sort(terms_.begin(), terms_.end(), [](const Term& x, const Term& y) {
      return x.fixed != y.fixed ? x.fixed < y.fixed : x.high < y.high;
    });
    std::size_t out = 0;
    for (std::size_t t = 0; t < terms_.size(); ++t) {
      if (out > 0 && terms_[out - 1].fixed == terms_[t].fixed &&
          terms_[out - 1].high == terms_[t].high)
        terms_[out - 1].c += terms_[t].c;
      else
        terms_[out++] = terms_[t];
    }
    terms_.resize(out);
    double m1 = 0, m2 = 0;
    for (const Term& s : terms_) {
      m1 += s.c * std::ldexp(1.0, -std::popcount(s.fixed));
      for (const Term& t : terms_) {
        if ((s.fixed & t.fixed & (s.high ^ t.high)) != 0) continue;  // disjoint
        m2 += s.c * t.c * std::ldexp(1.0, -std::popcount(s.fixed | t.fixed));
      }
    }
    return m2 - m1 * m1;
  }

  struct Term {
    std::uint64_t fixed, high;
    double c;
  };

  const Design& d_;
  const std::size_t params_;
  // The box of the node being visited, as values and as steps.
  std::vector<double> lo_, hi_;
  std::vector<std::uint32_t> lo_step_, hi_step_;
  std::vector<std::vector<double>> cuts_;
  std::vector<std::uint32_t> step_;
  // Per leaf (and parameter: [leaf * params_ + p]): its value, its share of
  // the parameter's box, its steps (numeric) or masks (categorical).
  std::size_t leaves_ = 0;
  std::vector<double> value_, share_;
  std::vector<std::uint32_t> lo_at_, hi_at_;
  std::vector<std::uint64_t> fixed_, high_;
  // Scratch, kept between trees.
  std::vector<double> after_, before_, c_, level_;
  std::vector<Term> terms_;
};

std::vector<ParamImportance> equal_shares(const Design& d) {
  std::vector<ParamImportance> out;
  for (const Param& p : d.params)
    out.push_back({p.name, 1.0 / static_cast<double>(d.params.size())});
  return out;
}

}  // namespace

std::vector<ParamImportance> fanova_importance(const std::vector<json>& params,
                                               const std::vector<double>& values,
                                               const ImportanceOptions& options) {
  if (params.size() != values.size())
    throw std::invalid_argument("fanova_importance: " + std::to_string(params.size()) +
                                " parameter sets but " + std::to_string(values.size()) + " values");
  if (options.trees < 1 || options.max_depth < 1)
    throw std::invalid_argument("fanova_importance: trees and max_depth must be at least 1");

  const Design d = encode(params, values);
  if (d.y.size() < 2 || d.params.empty()) return {};
  if (std::all_of(d.y.begin(), d.y.end(), [](double v) { return v == 0; })) return equal_shares(d);

  // The trees are independent: grown on a few threads, each tree with its
  // own random stream, their marginals summed in tree order afterwards, so
  // the result does not depend on the thread count.
  std::vector<std::vector<double>> per_tree(static_cast<std::size_t>(options.trees));
  auto grow = [&](int first, int step) {
    TreeGrower grower(d, options.max_depth);
    TreeVariance decomposition(d);
    Tree tree;
    std::vector<double> marginal(d.params.size());
    for (int t = first; t < options.trees; t += step) {
      std::seed_seq seq{static_cast<std::uint32_t>(options.seed),
                        static_cast<std::uint32_t>(options.seed >> 32),
                        static_cast<std::uint32_t>(t)};
      std::mt19937_64 rng(seq);
      grower.grow(rng, tree);
      if (decomposition.compute(tree, marginal)) per_tree[static_cast<std::size_t>(t)] = marginal;
    }
  };
  const int threads = std::clamp(
      options.threads > 0 ? options.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())),
      1, std::min(options.trees, 8));
  std::vector<std::thread> workers;
  for (int w = 1; w < threads; ++w) workers.emplace_back(grow, w, threads);
  grow(0, threads);
  for (auto& w : workers) w.join();

  std::vector<double> sum(d.params.size(), 0.0);
  int used = 0;
  for (const auto& m : per_tree) {
    if (m.empty()) continue;
    ++used;
    for (std::size_t p = 0; p < sum.size(); ++p) sum[p] += m[p];
  }

  double total = 0;
  for (double s : sum) total += s;
  if (used == 0 || !(total > 0)) return equal_shares(d);

  std::vector<ParamImportance> out;
  for (std::size_t p = 0; p < d.params.size(); ++p)
    out.push_back({d.params[p].name, sum[p] / total});
  std::sort(out.begin(), out.end(), [](const ParamImportance& a, const ParamImportance& b) {
    return a.importance != b.importance ? a.importance > b.importance : a.param < b.param;
  });
  return out;
}

}  // namespace xpscale::report
