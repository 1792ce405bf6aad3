#pragma once
// TPE: the tree-structured Parzen estimator (Bergstra et al. 2011), with
// Optuna 3.1's defaults, univariate. `method: bayes` (W&B) runs it.
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
// gamma(n) = min(ceil(gamma * n), gamma_cap) form l(x), the rest g(x); each
// is a mixture of truncated Gaussians (one per observation plus a prior of
// weight prior_weight) with Optuna's bandwidths and "magic clip"; older
// observations weigh less once there are more than 25. The first n_startup
// trials are random search's draws (the same as method: random); after
// that each parameter takes, of `candidates` draws from l, the one that
// maximises l(x)/g(x).
//
// A parameter absent from an observation's params (null) is left out of
// that parameter's estimators, so conditional parameters are modelled from
// the trials that have them.
#include <cstdint>
#include <memory>

#include "xpscale/runtime/searcher.h"

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
