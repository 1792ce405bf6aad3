"""bench/search's Optuna side: Optuna's TPESampler and RandomSampler on the
objectives of objectives.h (same formulas, same bounds and scales), one
study per (objective, sampler, seed), trials in sequence. One JSON line per
study on stdout, like `search_bench tpe`.

    /usr/bin/python3 optuna_search.py SEEDS TRIALS [FIRST_SEED]

FIRST_SEED (default 0) shifts the seeds: tuning runs use seeds the
reported runs (0 to SEEDS-1) never see.
"""
import json
import math
import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def branin(x):
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    u = x[1] - b * x[0] ** 2 + c * x[0] - 6
    return u * u + 10 * (1 - t) * math.cos(x[0]) + 10


ALPHA = [1.0, 1.2, 3.0, 3.2]
A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
     [17, 8, 0.05, 10, 0.1, 14]]
P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]


def hartmann6(x):
    return -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j] * 1e-4) ** 2
                                         for j in range(6))) for i in range(4))


def rosenbrock5(x):
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(4))


# name -> (function, [(low, high, log)], known minimum)
OBJECTIVES = {
    "branin": (branin, [(-5.0, 10.0, False), (0.0, 15.0, False)], 0.397887357729738),
    "hartmann6": (hartmann6, [(0.0, 1.0, False)] * 6, -3.32236801141551),
    "rosenbrock5_log": (rosenbrock5, [(0.01, 10.0, True)] * 5, 0.0),
}


def study_best(name, sampler, trials):
    f, bounds, _ = OBJECTIVES[name]

    def objective(trial):
        return f([trial.suggest_float("x%d" % j, lo, hi, log=log)
                  for j, (lo, hi, log) in enumerate(bounds)])

    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=trials)
    return study.best_value


def main():
    seeds, trials = int(sys.argv[1]), int(sys.argv[2])
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    for name, (_, _, minimum) in OBJECTIVES.items():
        for label, make in (("optuna_tpe", optuna.samplers.TPESampler),
                            ("optuna_random", optuna.samplers.RandomSampler)):
            for seed in range(first, first + seeds):
                best = study_best(name, make(seed=seed), trials)
                print(json.dumps({"objective": name, "sampler": label, "seed": seed,
                                  "trials": trials, "best": best, "regret": best - minimum}),
                      flush=True)


if __name__ == "__main__":
    main()
