"""Optuna's SuccessiveHalvingPruner on the Fashion-MNIST grid's learning
curves (bench/search). The grid sweep recorded every config's val/test
accuracy per epoch; Optuna replays them (GridSampler over the same configs,
trials in sequence, one trial.report per epoch, pruned when the pruner
says so), so it sees exactly the curves the real trainer produced. Prints
two JSON lines, epochs used and the selected config's test accuracy: one
in GridSampler's shuffled order (seed 0), one in the grid's own order (the
order xpscale's ASHA sweep starts the trials in; enqueued). Both run the
trials one after another, so each decision sees every earlier trial's
whole curve: more than xpscale's ASHA, whose 4 ranks race, ever sees.

    /usr/bin/python3 optuna_sha.py GRID_DB ETA
"""
import json
import sqlite3
import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def main():
    db, eta = sys.argv[1], int(sys.argv[2])
    con = sqlite3.connect(db)
    curves, order = {}, []
    for params, step, values in con.execute(
            "SELECT t.params, m.step, m.values_json FROM metrics m JOIN trials t ON t.id = m.trial "
            "ORDER BY m.trial, m.step"):
        key = json.dumps(json.loads(params), sort_keys=True)
        if key not in curves:
            order.append(json.loads(params))
        curves.setdefault(key, []).append(json.loads(values))
    space = {}
    for key in curves:
        for name, value in json.loads(key).items():
            space.setdefault(name, set()).add(value)
    space = {k: sorted(v) for k, v in space.items()}
    for measure, enqueue in (("optuna_sha_replay", False), ("optuna_sha_replay_grid_order", True)):
        print(json.dumps(dict(measure=measure, configs=len(curves),
                              **replay(curves, space, eta, order if enqueue else []))))


def replay(curves, space, eta, order):
    used = {"epochs": 0}
    seen = []  # (val, test) at the best epoch of each trial, as far as it ran

    def objective(trial):
        params = {k: trial.suggest_categorical(k, v) for k, v in space.items()}
        curve = curves[json.dumps(params, sort_keys=True)]
        best = None
        for epoch, m in enumerate(curve, start=1):
            used["epochs"] += 1
            if best is None or m["val_accuracy"] > best[0]:
                best = (m["val_accuracy"], m["test_accuracy"])
            trial.report(m["val_accuracy"], epoch)
            if trial.should_prune():
                seen.append(best)
                raise optuna.TrialPruned()
        seen.append(best)
        return best[0]

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.GridSampler(space, seed=0),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=eta))
    for params in order:  # the grid's own order, else GridSampler's shuffle
        study.enqueue_trial(params)
    study.optimize(objective, n_trials=len(curves))
    val, test = max(seen)
    return {"epochs": used["epochs"], "selected_val_accuracy": val,
            "selected_test_accuracy": test}

if __name__ == "__main__":
    main()
