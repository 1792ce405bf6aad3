#!/usr/bin/python3
"""Reads an xpscale store (stdlib sqlite3) and prints one JSON line about a
sweep's dispatch: trials/s (over the run's wall_s, over the sweep from
opening the store to the last trial's end, and over the caller's outer
time) and, with --busy, how busy the groups were.

  analyze.py STORE --label L [--busy] [--outer-s S]

busy fraction = sum over attempts of (finished_at - started_at)
                / (groups * (last finished_at - first started_at))
started_at is stamped by the coordinator when it dispatches, finished_at by
the group leader when the train function returned, so what is not busy is
the round trip leader -> coordinator -> leader (result, store commit,
next trial) plus the end of the sweep, when groups that finish early wait
for the last trial. The line splits the two: gap_* are the per-group
pauses between one attempt's end and the next one's start; tail_s is, per
group, how long before the sweep's end its last trial ended.
"""
import argparse
import heapq
import json
import sqlite3
import statistics


def ideal_busy_fraction(lengths, groups):
    """The busy fraction of a perfect dispatcher (no gaps) handing out these
    trial lengths in this order to the first free group: what the end of
    the sweep alone costs."""
    free = [(0.0, g) for g in range(groups)]
    end = 0.0
    for length in lengths:
        t, g = heapq.heappop(free)
        end = max(end, t + length)
        heapq.heappush(free, (t + length, g))
    return sum(lengths) / (groups * end)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--label", required=True)
    ap.add_argument("--busy", action="store_true")
    ap.add_argument("--outer-s", type=float)
    a = ap.parse_args()
    db = sqlite3.connect(f"file:{a.store}?mode=ro", uri=True)
    summary, groups, run_started = db.execute(
        "SELECT summary, groups, started_at FROM runs ORDER BY run DESC LIMIT 1"
    ).fetchone()
    summary = json.loads(summary)
    rows = db.execute(
        "SELECT a.grp, a.started_at, a.finished_at, a.status, t.params FROM attempts a "
        "JOIN trials t ON t.id = a.trial ORDER BY a.started_at"
    ).fetchall()
    n = len(rows)
    done = sum(1 for r in rows if r[3] == "completed")
    wall = summary["wall_s"]
    line = {
        "bench": "dispatch",
        "measure": a.label,
        "groups": groups,
        "trials": n,
        "completed": done,
        # The run summary's wall_s: the coordinator thread's life, dispatch only.
        "wall_s": round(wall, 4),
        "wall_trials_per_s": round(n / wall, 2),
    }
    first = min(r[1] for r in rows)
    last = max(r[2] for r in rows)
    # Rank 0 from opening the store to the first dispatch: the queue of
    # trials written to the store (grows with the trial count), then the
    # groups' communicators.
    line["prepare_s"] = round(first - run_started, 4)
    # Opening the store to the last trial's end: every cost that grows with
    # the trial count (queueing them in the store, dispatch), none of the
    # fixed ones (mpiexec, MPI_Init, exit). The headline rate.
    line["sweep_s"] = round(last - run_started, 4)
    line["trials_per_s"] = round(n / (last - run_started), 2)
    # What one group spends per trial, start to start.
    line["group_cycle_us"] = round(1e6 * groups * (last - first) / n, 1)
    # Does the rate hold as the store grows? Trials/s over the first and
    # the last tenth of the trials by finish time (the queue's writing,
    # prepare_s, excluded from the first).
    if n >= 100:
        ends = sorted(r[2] for r in rows)
        k = n // 10
        head = k / (ends[k - 1] - first)
        tail = k / (ends[-1] - ends[n - k - 1])
        line["first_tenth_trials_per_s"] = round(head, 2)
        line["last_tenth_trials_per_s"] = round(tail, 2)
        line["rate_kept"] = round(tail / head, 3)
    if a.outer_s:
        line["outer_s"] = round(a.outer_s, 4)
        line["outer_trials_per_s"] = round(n / a.outer_s, 2)
        # The fixed costs: mpiexec, MPI_Init, reading the config, exit.
        line["fixed_s"] = round(a.outer_s - (last - run_started), 4)
    if a.busy:
        busy = sum(r[2] - r[1] for r in rows)
        line["group_busy_fraction"] = round(busy / (groups * (last - first)), 5)
        gaps, tails, own = [], [], []
        for g in range(groups):
            mine = [r for r in rows if r[0] == g]
            gaps += [b[1] - p[2] for p, b in zip(mine, mine[1:])]
            tails.append(last - mine[-1][2])
            own.append(sum(r[2] - r[1] for r in mine) / (mine[-1][2] - first))
        line["gap_mean_ms"] = round(1e3 * statistics.mean(gaps), 3)
        line["gap_max_ms"] = round(1e3 * max(gaps), 3)
        line["tail_s"] = [round(t, 4) for t in tails]
        # Busy fraction with each group's own last finish as its end: what
        # dispatch alone loses, without the end-of-sweep drain.
        line["busy_fraction_without_tail"] = round(statistics.mean(own), 5)
        ms = [json.loads(r[4]).get("ms", 0) for r in rows]
        over = [(r[2] - r[1]) * 1e3 - m for r, m in zip(rows, ms)]
        line["trial_ms_mean"] = round(statistics.mean(ms), 2)
        line["ideal_busy_fraction"] = round(ideal_busy_fraction([m / 1e3 for m in ms], groups), 5)
        # Recorded attempt length minus the asked sleep: the sleep's own
        # overshoot plus the reply's way to the leader.
        line["attempt_overshoot_ms_mean"] = round(statistics.mean(over), 3)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
