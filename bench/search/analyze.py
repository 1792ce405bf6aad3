"""bench/search's analysis: reads the JSON lines of the TPE runs, the
scheduler-decision runs and the Fashion-MNIST sweeps, prints one line per
comparison and the summary last.

    /usr/bin/python3 analyze.py TPE.jsonl DECISIONS.jsonl ASHA.jsonl

TPE vs Optuna: per objective, the ratio of the median regrets (best value
found minus the known minimum; < 1: xpscale found better values) and a
two-sided Wilcoxon signed-rank test over the seeds (pairs: same objective,
same seed number; the two libraries' seeds drive different generators, so
the pairing only blocks by objective and run). The summary's ratio is the
median of the per-objective ratios; its p-value is one Wilcoxon test over
all pairs, each difference scaled by that objective's median Optuna regret
so that no objective's units dominate.
"""
import collections
import json
import statistics
import sys

from scipy.stats import wilcoxon


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def emit(obj):
    print(json.dumps(obj), flush=True)


def tpe_part(rows):
    regret = collections.defaultdict(dict)
    for r in rows:
        regret[(r["objective"], r["sampler"])][r["seed"]] = max(r["regret"], 0.0)
    ratios, scaled = [], []
    for objective in sorted({o for o, _ in regret}):
        get = lambda s: regret[(objective, s)]
        xps, opt = get("xpscale_tpe"), get("optuna_tpe")
        seeds = sorted(set(xps) & set(opt))
        a, b = [xps[s] for s in seeds], [opt[s] for s in seeds]
        med = {s: statistics.median(get(s).values()) for s in
               ("xpscale_tpe", "optuna_tpe", "xpscale_random", "optuna_random")}
        ratio = med["xpscale_tpe"] / med["optuna_tpe"] if med["optuna_tpe"] > 0 else float("inf")
        p = wilcoxon(a, b).pvalue if any(x != y for x, y in zip(a, b)) else 1.0
        ratios.append(ratio)
        scale = med["optuna_tpe"] or 1.0
        scaled += [(x - y) / scale for x, y in zip(a, b)]
        emit({"measure": "tpe_vs_optuna", "objective": objective, "seeds": len(seeds),
              "median_regret": med, "median_ratio": ratio, "wilcoxon_p": p,
              "xpscale_wins": sum(x < y for x, y in zip(a, b)),
              "both_beat_random": med["xpscale_tpe"] < med["xpscale_random"] and
              med["optuna_tpe"] < med["optuna_random"]})
    p_all = wilcoxon(scaled).pvalue if any(scaled) else 1.0
    return statistics.median(ratios) if ratios else None, p_all


def main():
    tpe_rows, decisions, asha = (load(p) for p in sys.argv[1:4])
    for r in decisions:
        emit(r)
    ratio, p = tpe_part(tpe_rows) if tpe_rows else (None, None)
    by = {r["measure"]: r for r in asha}
    fraction = gap = stop_fraction = stop_gap = None
    if "fmnist_grid" in by and "fmnist_asha" in by:
        grid = by["fmnist_grid"]
        for name in ("fmnist_asha", "fmnist_asha_stop", "optuna_sha_replay",
                     "optuna_sha_replay_grid_order"):
            if name not in by:
                continue
            r = by[name]
            f = r["epochs"] / grid["epochs"]
            g = 100 * (grid["selected_test_accuracy"] - r["selected_test_accuracy"])
            emit({"measure": name + "_vs_grid", "epochs": r["epochs"],
                  "grid_epochs": grid["epochs"], "epochs_fraction": f,
                  "test_accuracy": r["selected_test_accuracy"],
                  "grid_test_accuracy": grid["selected_test_accuracy"], "acc_gap_points": g,
                  "within_1_point_at_third": g <= 1.0 and f <= 1 / 3})
            if name == "fmnist_asha":
                fraction, gap = f, g
            if name == "fmnist_asha_stop":
                stop_fraction, stop_gap = f, g
    rates = [r["decisions_per_s"] for r in decisions]
    emit({"bench": "search", "tpe_vs_optuna_median_ratio": ratio, "tpe_vs_optuna_p": p,
          "asha_epochs_fraction": fraction, "asha_acc_gap": gap,
          "asha_stop_epochs_fraction": stop_fraction, "asha_stop_acc_gap": stop_gap,
          "decisions_per_s": min(rates) if rates else None})


if __name__ == "__main__":
    main()
