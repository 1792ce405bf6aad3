#!/usr/bin/env python3
"""bench/report's peer: the same trials as an Optuna study, drawn by Optuna's
own plotly charts into one offline HTML page.

    optuna_peer.py EXPORT.jsonl PAGE.html [IMPORTANCE_LIMIT_S]

EXPORT.jsonl is `xpscale export OUT_DIR --metrics` of bench/report's store.
The study is built in memory first (untimed: an Optuna user already has it
in a storage); then timed, as a user would make a report: the optimisation
history, the intermediate values (learning curves), the parallel
coordinates and the parameter importances (Optuna's default evaluator,
fANOVA), written into one page with plotly.js inlined so that it opens with
no network, like ours. Prints one JSON object: write_s, the per-chart
seconds and the page's bytes.

Optuna's fANOVA takes ~20 s for 1,000 trials here and grows faster than
the trial count, so the importance chart is cut off after
IMPORTANCE_LIMIT_S (default 120) seconds: then importance_cut is true, the
page goes without it and write_s is a lower bound.
"""
import json
import signal
import sys
import time

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
import optuna.visualization as vis

DISTRIBUTIONS = {  # bench/report/make_store.cpp's parameters
    "lr": FloatDistribution(0.0001, 0.1, log=True),
    "batch": CategoricalDistribution([32, 64, 128, 256]),
    "layers": IntDistribution(1, 8),
    "dropout": FloatDistribution(0.0, 0.5),
    "optimizer": CategoricalDistribution(["adam", "sgd", "adamw"]),
}
STATES = {"completed": TrialState.COMPLETE, "stopped": TrialState.PRUNED,
          "failed": TrialState.FAIL}


def main():
    export, page = sys.argv[1], sys.argv[2]
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    trials = []
    with open(export) as f:
        for line in f:
            t = json.loads(line)
            if t.get("kind") != "trial" or t["status"] not in STATES:
                continue
            state = STATES[t["status"]]
            curve = {m["step"]: m["values"]["loss"] for m in t.get("metrics", [])
                     if "loss" in m["values"]}
            value = t["best_value"] if state == TrialState.COMPLETE else None
            if state == TrialState.PRUNED and curve:
                value = curve[max(curve)]  # Optuna keeps a pruned trial's last value
            trials.append(create_trial(
                state=state, value=value, params=t["params"], distributions=DISTRIBUTIONS,
                intermediate_values=curve))
    study.add_trials(trials)

    charts = [("history", vis.plot_optimization_history),
              ("curves", vis.plot_intermediate_values),
              ("parallel", vis.plot_parallel_coordinate),
              ("importance", vis.plot_param_importances)]
    seconds = {}
    cut = False

    def too_long(signum, frame):
        raise TimeoutError

    signal.signal(signal.SIGALRM, too_long)
    start = time.perf_counter()
    parts = []
    for i, (name, plot) in enumerate(charts):
        a = time.perf_counter()
        try:
            if name == "importance":
                signal.setitimer(signal.ITIMER_REAL, limit)
            fig = plot(study)
            signal.setitimer(signal.ITIMER_REAL, 0)
            parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
        except TimeoutError:
            cut = True
        seconds[name + "_s"] = round(time.perf_counter() - a, 3)
    html = "<!doctype html><html><head><meta charset='utf-8'></head><body>" + \
        "".join(parts) + "</body></html>"
    with open(page, "w") as f:
        f.write(html)
    write_s = time.perf_counter() - start
    print(json.dumps({"trials": len(trials), "write_s": round(write_s, 3), **seconds,
                      "importance_cut": cut, "bytes": len(html.encode())}))


if __name__ == "__main__":
    main()
