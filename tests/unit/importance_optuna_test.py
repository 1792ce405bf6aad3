#!/usr/bin/env python3
"""fanova_importance() (report/include/xpscale/report/importance.h) against
Optuna's FanovaImportanceEvaluator on the same trials.

Synthetic sweeps with known importances, sampled uniformly; each is given to
xpscale_importance_tool and, as an Optuna study with the same distributions,
to optuna.importance.get_param_importances. The two must agree on the most
important parameter, rank the parameters with Spearman >= 0.8 and in the
order the functions were built with, and give each parameter an importance
within 0.03 of Optuna's.

Usage: importance_optuna_test.py PATH/TO/xpscale_importance_tool
(needs Debian's python3-optuna, python3-sklearn and python3-scipy).
"""
import json
import math
import random
import subprocess
import sys
import time
import unittest

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.importance import FanovaImportanceEvaluator
from scipy.stats import spearmanr

TOOL = None
TRIALS = 250


def sweep(distributions, objective, n, seed):
    """n trials sampled uniformly from distributions, valued by objective."""
    rng = random.Random(seed)
    trials = []
    for _ in range(n):
        params = {}
        for name, d in distributions.items():
            if isinstance(d, CategoricalDistribution):
                params[name] = rng.choice(d.choices)
            elif isinstance(d, IntDistribution):
                params[name] = rng.randint(d.low, d.high)
            else:
                params[name] = rng.uniform(d.low, d.high)
        trials.append((params, objective(params, rng)))
    return trials


def xpscale_importances(trials, seed=0):
    lines = "".join(json.dumps({"params": p, "value": v}) + "\n" for p, v in trials)
    out = subprocess.run([TOOL, "--seed", str(seed)], input=lines, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    return {r["param"]: r["importance"] for r in json.loads(out[0])}, json.loads(out[1])["seconds"]


def optuna_importances(distributions, trials):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    for params, value in trials:
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                  value=value))
    return dict(optuna.importance.get_param_importances(
        study, evaluator=FanovaImportanceEvaluator(seed=0)))


def ranking(importances):
    return sorted(importances, key=lambda k: (-importances[k], k))


class AgreesWithOptuna(unittest.TestCase):
    def compare(self, name, distributions, objective, expected_order):
        trials = sweep(distributions, objective, TRIALS, seed=len(name))
        ours, seconds = xpscale_importances(trials)
        started = time.monotonic()
        theirs = optuna_importances(distributions, trials)
        optuna_seconds = time.monotonic() - started
        names = sorted(distributions)
        rho = spearmanr([ours[k] for k in names], [theirs[k] for k in names]).correlation
        print(f"\n{name}: {TRIALS} trials, xpscale {seconds:.3f} s, Optuna {optuna_seconds:.1f} s"
              f"\n  xpscale: " + ", ".join(f"{k} {ours[k]:.4f}" for k in ranking(ours)) +
              f"\n  Optuna:  " + ", ".join(f"{k} {theirs[k]:.4f}" for k in ranking(theirs)) +
              f"\n  Spearman {rho:.3f}", flush=True)
        self.assertEqual(set(ours), set(names))
        self.assertAlmostEqual(sum(ours.values()), 1.0, places=9)
        self.assertEqual(ranking(ours)[0], ranking(theirs)[0])
        self.assertGreaterEqual(rho, 0.8)
        self.assertEqual(ranking(ours), expected_order)
        for k in names:
            self.assertAlmostEqual(ours[k], theirs[k], delta=0.03, msg=k)

    def test_linear_with_a_parameter_that_does_not_matter(self):
        # Variances 64/12, 16/12, 4/12 and 0: x0 > x1 > x2 > x3.
        distributions = {f"x{i}": FloatDistribution(0.0, 1.0) for i in range(4)}
        self.compare(
            "linear", distributions,
            lambda p, rng: 8 * p["x0"] + 4 * p["x1"] + 2 * p["x2"] + 0.1 * rng.gauss(0, 1),
            ["x0", "x1", "x2", "x3"])

    def test_categorical_int_and_a_bump(self):
        # optimizer: variance 1.5; dropout's bump 24 (d - 0.25)^2 on [0, 0.5]:
        # about 0.2; layers 0.1 * layers on 1..8: about 0.05; wd: nothing.
        distributions = {
            "optimizer": CategoricalDistribution(["adam", "sgd", "rmsprop"]),
            "dropout": FloatDistribution(0.0, 0.5),
            "layers": IntDistribution(1, 8),
            "wd": FloatDistribution(0.0, 0.1),
        }
        effect = {"adam": 0.0, "sgd": 3.0, "rmsprop": 1.5}
        self.compare(
            "mixed", distributions,
            lambda p, rng: (effect[p["optimizer"]] + 24 * (p["dropout"] - 0.25) ** 2 +
                            0.1 * p["layers"] + 0.05 * rng.gauss(0, 1)),
            ["optimizer", "dropout", "layers", "wd"])

    def test_interactions_and_a_bool(self):
        # y = 3 a + 2 a b + 0.8 [warmup]: a's marginal 4 a (variance 1.33)
        # leads; warmup's (variance 0.16 over its two valid encodings; Optuna,
        # and so we, average over all four of its one-hot cells) and b's
        # (b, variance 0.083) follow; c does nothing.
        distributions = {
            "a": FloatDistribution(0.0, 1.0),
            "b": FloatDistribution(0.0, 1.0),
            "c": FloatDistribution(-1.0, 1.0),
            "warmup": CategoricalDistribution([True, False]),
        }
        self.compare(
            "interaction", distributions,
            lambda p, rng: (3 * p["a"] + 2 * p["a"] * p["b"] + (0.8 if p["warmup"] else 0.0) +
                            0.05 * rng.gauss(0, 1)),
            ["a", "warmup", "b", "c"])


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    TOOL = sys.argv.pop(1)
    unittest.main(verbosity=2)
