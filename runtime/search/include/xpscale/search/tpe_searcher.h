#pragma once
// TPE: the tree-structured Parzen estimator (Bergstra et al. 2011).
// `method: bayes` (W&B) runs it. Multivariate by default (Falkner et al.
// 2018, Optuna's multivariate=True); univariate, with Optuna 3.1's
// defaults, when TpeOptions::multivariate is false.
//
// Each parameter is modelled on the unit interval that
// ParameterSpec::from_unit maps to values, i.e. after the distribution's
// own transform: log_uniform is searched in log space, normal through its
// CDF, int and q_* variants as the continuous u before rounding.
// Categorical parameters get a categorical estimator over their values.
//
// Observations are ordered best first: completed trials by score, then
// trials a scheduler stopped, furthest resource first, then by score (a
// stopped trial is evidence of a worse config, never of a better one).
// Failed trials and trials without a score are not observed. The best
// gamma(n) = min(ceil(gamma * n), gamma_cap) form l(x), the rest g(x);
// older observations weigh less once there are more than 25. The first
// n_startup trials are random search's draws (the same as method: random).
//
// Multivariate: l and g are mixtures of product kernels, one per
// observation over all searched parameters plus a prior of weight
// prior_weight (N(0.5, 1) truncated to [0, 1]; uniform over categories).
// A numeric factor's bandwidth follows Scott's rule per parameter,
// 1.06 * sd * n^(-1 / (d + 4)) (sd of that side's values, n its
// observations, d the searched parameters), inside Optuna's "magic clip";
// a categorical factor is Optuna's (1 on the observed category plus
// prior_weight / kernels on each). Of `candidates` whole points drawn from
// l, the one that maximises l(x)/g(x) is proposed, so the parameters'
// correlations in the good trials carry over.
//
// Univariate: each parameter has its own mixture of truncated Gaussians
// with Optuna 3.1's bandwidths (the larger gap to the sorted neighbours)
// and magic clip, and takes, of `candidates` draws from l, the one that
// maximises l(x)/g(x), independently of the other parameters.
//
// Both evaluate normalised densities (Bergstra et al.; Optuna >= 3.5),
// not Optuna 3.1's (optuna/optuna#5109).
//
// A parameter absent from an observation's params (null) is left out of
// that parameter's estimators (univariate) or is a flat factor of that
// observation's kernel (multivariate), so conditional parameters are
// modelled from the trials that have them.
#include <cstdint>
#include <memory>

#include "xpscale/search/searcher.h"

namespace xpscale {

struct TpeOptions {
  double gamma = 0.1;  // fraction of observations in l(x)
  int gamma_cap = 25;  // at most this many
  double prior_weight = 1.0;
  int n_startup = 10;
  int candidates = 24;
  bool multivariate = true;  // joint kernels over all parameters (false: one estimator each)
};

// The searcher keeps its own copy of config.
std::unique_ptr<Searcher> make_tpe_searcher(const SweepConfig& config, const TpeOptions& options);

}  // namespace xpscale
