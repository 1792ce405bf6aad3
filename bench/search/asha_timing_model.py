"""ASHA rules replayed on the Fashion-MNIST grid's recorded curves under a
timing model (bench/search, README "ASHA on the Fashion-MNIST grid").

The trainer is deterministic, so what ASHA spends depends only on the
order in which reports arrive. This replays the grid's curves with W
workers (trials started in the grid's order), an epoch taking FAST s
(hidden 32) or SLOW s (hidden 128) times lognormal(0, SIGMA), and counts
epochs and the selected config's test accuracy (highest val accuracy at
any epoch) for:
  stop_on_arrival  the old rule: ranked once, when a trial reaches a rung
  stop_rechecked   the current rule (scheduler.h): also ranked again at its
                   highest rung on every report until the next one
  paused           the paper's ASHA (scheduler promotion: pause): a trial
                   stops at each rung
                   and a free worker promotes the best unpromoted trial in
                   the top floor(n/eta) of the highest rung it can, else
                   starts a new config; with the grid exhausted and nothing
                   running, max(1, floor(n/eta)) (paused_end_rule) or
                   nothing (paused_no_end_rule).

    /usr/bin/python3 asha_timing_model.py GRID_DB [DRAWS]
"""
import collections
import heapq
import json
import random
import sqlite3
import sys

ETA, RUNGS, MAX = 3, [1, 3], 9
FAST, SLOW, SIGMA, WORKERS = 1.3, 5.0, 0.35, 4


def load(db):
    con = sqlite3.connect(db)
    curves, slow = {}, {}
    for trial, params, values in con.execute(
            "SELECT m.trial, t.params, m.values_json FROM metrics m JOIN trials t ON t.id = m.trial "
            "ORDER BY m.trial, m.step"):
        m = json.loads(values)
        curves.setdefault(trial, []).append((m["val_accuracy"], m["test_accuracy"]))
        slow[trial] = json.loads(params).get("hidden", 0) > 32
    return curves, slow


def in_top(rung, score):  # higher is better here
    return 1 + sum(1 for s in rung if s > score) <= max(1, len(rung) // ETA)


def stop_based(curves, slow, rng, recheck):
    queue, events, rungs, at = sorted(curves), [], [[] for _ in RUNGS], {}
    epoch_s = lambda t: (SLOW if slow[t] else FAST) * rng.lognormvariate(0, SIGMA)
    for w in range(WORKERS):
        heapq.heappush(events, (epoch_s(queue[0]), w, queue.pop(0), 1))
    epochs, best = 0, None
    while events:
        now, w, t, e = heapq.heappop(events)
        epochs += 1
        val, test = curves[t][e - 1]
        best = max(best or (val, test), (val, test))
        stop = e >= MAX
        if not stop and e in RUNGS:
            k = RUNGS.index(e)
            rungs[k].append(val)
            at[t] = (k, val)
            stop = not in_top(rungs[k], val)
        elif not stop and recheck and t in at:
            stop = not in_top(rungs[at[t][0]], at[t][1])
        if not stop:
            heapq.heappush(events, (now + epoch_s(t), w, t, e + 1))
        elif queue:
            heapq.heappush(events, (now + epoch_s(queue[0]), w, queue.pop(0), 1))
    return epochs, best


def paused(curves, slow, rng, end_rule):
    milestones = RUNGS + [MAX]
    queue, events, idle = sorted(curves), [], list(range(WORKERS))
    rungs, promoted = [{} for _ in RUNGS], [set() for _ in RUNGS]
    epoch_s = lambda t: (SLOW if slow[t] else FAST) * rng.lognormvariate(0, SIGMA)
    epochs, best, running = 0, None, 0

    def job(relaxed):
        for k in reversed(range(len(RUNGS))):
            keep = len(rungs[k]) // ETA
            if relaxed:
                keep = max(1, keep)
            for t in sorted(rungs[k], key=lambda t: -rungs[k][t])[:keep]:
                if t not in promoted[k]:
                    promoted[k].add(t)
                    return t, milestones[k] + 1, milestones[k + 1]
        return (queue.pop(0), 1, milestones[0]) if queue else None

    def dispatch(now):
        nonlocal running
        while idle:
            j = job(False)
            if j is None and running == 0 and end_rule:
                j = job(True)
            if j is None:
                return
            t, first, last = j
            running += 1
            heapq.heappush(events, (now + epoch_s(t), idle.pop(), t, first, last))

    dispatch(0)
    while events:
        now, w, t, e, last = heapq.heappop(events)
        epochs += 1
        val, test = curves[t][e - 1]
        best = max(best or (val, test), (val, test))
        if e in RUNGS:
            rungs[RUNGS.index(e)][t] = val
        if e < last:
            heapq.heappush(events, (now + epoch_s(t), w, t, e + 1, last))
        else:
            running -= 1
            idle.append(w)
            dispatch(now)
    return epochs, best


def main():
    curves, slow = load(sys.argv[1])
    draws = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    grid_epochs = sum(len(c) for c in curves.values())
    grid_test = max(p for c in curves.values() for p in c)[1]
    rules = {"stop_on_arrival": lambda r: stop_based(curves, slow, r, False),
             "stop_rechecked": lambda r: stop_based(curves, slow, r, True),
             "paused_end_rule": lambda r: paused(curves, slow, r, True),
             "paused_no_end_rule": lambda r: paused(curves, slow, r, False)}
    for name, rule in rules.items():
        rng = random.Random(1)
        runs = [rule(rng) for _ in range(draws)]
        epochs = collections.Counter(e for e, _ in runs)
        gaps = [round(100 * (grid_test - b[1]), 2) for _, b in runs]
        print(json.dumps({"measure": "asha_timing_model", "rule": name, "draws": draws,
                          "grid_epochs": grid_epochs,
                          "epochs_share": {e: n / draws for e, n in sorted(epochs.items())},
                          "p_fraction_le_0.34": sum(e / grid_epochs <= 0.34 for e, _ in runs) / draws,
                          "max_acc_gap_points": max(gaps),
                          "p_gap_gt_1": sum(g > 1 for g in gaps) / draws}))


if __name__ == "__main__":
    main()
