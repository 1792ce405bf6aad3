#pragma once
// Parameter importance, fANOVA-style (Hutter, Hoos and Leyton-Brown 2014,
// "An Efficient Approach for Assessing Hyperparameter Importance"), done the
// way Optuna's FanovaImportanceEvaluator does it so that the report and
// Optuna rank a sweep's parameters alike (tests/unit/importance_optuna_test.py
// checks that against Debian's python3-optuna):
//
//   1. A random forest of regression trees is fitted to (params -> value):
//      scikit-learn's RandomForestRegressor defaults as Optuna uses them:
//      each tree on a bootstrap sample (n draws with replacement), every
//      feature considered at every split (max_features = 1.0), squared
//      error, split between two adjacent distinct values, grown until a
//      node is pure, has one distinct sample, or reaches max_depth.
//   2. For each tree, the marginal of a parameter (the tree's prediction
//      averaged uniformly over every other parameter's range) is a step
//      function of that parameter; its variance over the parameter's range,
//      divided by the variance of the tree's prediction over the whole
//      space, is the parameter's share in that tree.
//   3. The shares are averaged over the trees whose prediction varies and
//      normalised to sum to 1.
//
// Encoding, as Optuna's _SearchSpaceTransform does it:
// - A parameter whose value is a JSON number in every trial that has it is
//   one continuous feature on its raw scale (no log), over [smallest,
//   largest] value seen.
// - Any other parameter (strings, bools, null, arrays, objects, or numbers
//   mixed with those) is categorical over the values' JSON text, one-hot
//   encoded with one 0/1 feature per category; its importance is the
//   variance of the joint marginal over all its columns (as Optuna computes
//   it, which is not the sum of per-column importances). At most
//   kMaxCategories columns: the kMaxCategories - 1 most frequent values
//   keep their own, the rest share one.
// - A parameter missing in some trials (a conditional parameter): when
//   categorical, "missing" is one more category; when numeric, the missing
//   trials take the value one range below the smallest value seen, so the
//   trees can split them off, and the feature's range starts there: the
//   marginal gives "missing" about a quarter of the axis (half when all
//   present values are equal). Optuna instead drops a parameter that some
//   trial lacks.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace xpscale::report {

struct ParamImportance {
  std::string param;
  double importance;  // in [0, 1]; a result's importances sum to 1
};

struct ImportanceOptions {
  int trees = 64;      // Optuna's n_trees
  int max_depth = 64;  // Optuna's max_depth; the root is depth 0
  // The forest's randomness (bootstrap samples, feature order at each
  // split) comes from this seed alone: the same inputs and seed give the
  // same result.
  std::uint64_t seed = 0;
  // Threads growing the trees (0: one per core, at most 8); the result is
  // the same for any count.
  int threads = 0;
};

// The most one-hot columns a categorical parameter gets (see above).
inline constexpr std::size_t kMaxCategories = 32;

// params[i] is trial i's flat JSON object name -> value and values[i] its
// metric. Trials whose value is not finite are left out (as Optuna does); a
// params[i] that is not an object counts as a trial with no parameters.
//
// Returns every parameter that varies among the trials used (a numeric one
// with two distinct values or present in some trials and missing in others;
// a categorical one with two categories), sorted by importance descending
// (ties by name), the importances summing to 1. When no parameter's marginal
// varies in any tree (every value equal, or the value depends only on
// interactions, e.g. y = x0 XOR x1), each gets an equal share. Fewer than
// 2 trials used or no parameter that varies: empty.
//
// Time grows as trees * columns * n * tree depth for n trials (a column per
// numeric parameter, per category of a categorical one): 10,000 trials of
// 5 numeric parameters take about 0.3 s on one core.
//
// Throws std::invalid_argument when params and values differ in size or an
// option is below 1.
std::vector<ParamImportance> fanova_importance(const std::vector<nlohmann::json>& params,
                                               const std::vector<double>& values,
                                               const ImportanceOptions& options = {});

}  // namespace xpscale::report
