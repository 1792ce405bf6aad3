#!/usr/bin/env python3
"""The report page without the C++: fills report/web/report.html from a data
JSON exactly as report/src/html.cpp does (report/web/DATA.md), and makes
synthetic data that follows that contract.

    make_page.py DATA.json -o report.html
    make_page.py --synthetic 60 30 -o report.html [--scenario only-failed]
    make_page.py --synthetic 10000 100 --data-out data.json -o big.html

The synthetic data holds what the page must survive: every status, ASHA
stops with rungs, a PBT trial with exploits, retried and failed attempts
with stderr, a conditional parameter, a null point in a curve, a parameter
name of 10,000 characters and MALICIOUS as a parameter name, a parameter
value and the metric's name."""
import argparse
import json
import math
import os
import random
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WEB = os.path.join(ROOT, "report", "web")
ECHARTS = os.path.join(WEB, "node_modules", "echarts", "dist", "echarts.min.js")

# Markers of the template, in the order html.cpp requires them.
MARKERS = ("/*XPSCALE_CSS*/", "/*XPSCALE_DATA*/", "/*XPSCALE_ECHARTS*/", "/*XPSCALE_JS*/")

MALICIOUS = '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'
LONG_PARAM = "very_long_parameter_name_" + "x" * (10000 - len("very_long_parameter_name_"))
STDERR_HTML = "<b>bold?</b><script>window.__pwned=1</script>"

# report.h: about this many curve points in all, never fewer than 10 per curve.
CURVE_POINT_BUDGET = 200_000
MIN_POINTS_PER_CURVE = 10


def script_safe_json(data):
    """JSON that can sit inside <script type="application/json"> (html.cpp's
    script_safe_json): '<' '>' '&' U+2028 U+2029 as \\u escapes."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def fill_template(data, web=WEB, echarts=ECHARTS):
    """The page for `data`, as html.cpp writes it: every marker found in the
    template itself, in order, before anything is put in."""
    page = read(os.path.join(web, "report.html"))
    parts = [read(os.path.join(web, "report.css")), script_safe_json(data), read(echarts),
             read(os.path.join(web, "report.js"))]
    out = []
    at = 0
    for marker, text in zip(MARKERS, parts):
        i = page.find(marker, at)
        if i < 0:
            raise ValueError("report.html lacks the marker %s (in this order: css, data, echarts, js)" % marker)
        out.append(page[at:i])
        out.append(text)
        at = i + len(marker)
    out.append(page[at:])
    return "".join(out)


def downsample(points, n, maximize):
    """report_data.cpp's downsample(): at most n points; first, last and best
    kept, and each of the n/2 - 1 slices between keeps its lowest and highest."""
    if len(points) <= n:
        return [list(p) for p in points]
    best = 0
    for i in range(1, len(points)):
        if (points[i][1] > points[best][1]) if maximize else (points[i][1] < points[best][1]):
            best = i
    keep = {0, len(points) - 1, best}
    slices = max(1, n // 2 - 1)
    inner = len(points) - 2
    for s in range(slices):
        lo, hi = 1 + s * inner // slices, 1 + (s + 1) * inner // slices
        if lo >= hi:
            continue
        mn = min(range(lo, hi), key=lambda i: points[i][1])
        mx = max(range(lo, hi), key=lambda i: points[i][1])
        keep.update((mn, mx))
    return [list(points[i]) for i in sorted(keep)]


def points_per_curve(n_trials, option=100, budget=True):
    if not budget or n_trials == 0:
        return option
    return min(max(CURVE_POINT_BUDGET // n_trials, MIN_POINTS_PER_CURVE), max(MIN_POINTS_PER_CURVE, option))


def synthetic(n_trials, steps, scenario="mixed", seed=7, metric=MALICIOUS, per_curve_option=100,
              budget=True, live=False, long_param=True):
    """Data following DATA.md for a sweep of n_trials trials of `steps` steps.
    scenario: mixed | empty | only-failed | no-metric."""
    rng = random.Random(seed)
    if scenario == "empty":
        n_trials = 0
    if scenario == "no-metric":
        metric = ""
    t_start = 1733290000.0
    steps = max(1, steps)
    param_names = ["lr", "optimizer.name", "optimizer.momentum", "layers", "use_bn", MALICIOUS, LONG_PARAM]

    # Statuses: the last ones queued, a few running, the rest drawn.
    statuses = []
    for i in range(n_trials):
        if scenario == "only-failed":
            statuses.append("failed")
            continue
        frac = i / max(1, n_trials)
        if frac >= 0.95 and n_trials >= 20:
            statuses.append("queued")
        elif frac >= 0.92 and n_trials >= 20:
            statuses.append("running")
        else:
            r = rng.random()
            statuses.append("failed" if r < 0.06 else "stopped" if r < 0.30 else "completed")
    if scenario in ("mixed", "no-metric") and n_trials >= 12:
        for i, s in zip(range(2, 12), ["failed", "stopped", "stopped", "failed", "completed", "completed",
                                       "stopped", "completed", "completed", "completed"]):
            statuses[i] = s
    pbt_trial = 1 if n_trials >= 8 and scenario == "mixed" else None
    if pbt_trial is not None:
        statuses[pbt_trial] = "completed"
    rungs = [max(1, steps // 9), max(2, steps // 3)]

    trials, curves, raw_curves = [], {}, {}
    for i in range(n_trials):
        opt = rng.choice(["adam", "sgd", "rmsprop"])
        params = {"lr": 10 ** rng.uniform(-5, -1), "optimizer.name": opt}
        if opt == "sgd":  # conditional parameter
            params["optimizer.momentum"] = round(rng.uniform(0.5, 0.99), 3)
        params["layers"] = rng.randint(1, 8)
        params["use_bn"] = rng.random() < 0.5
        params[MALICIOUS] = round(rng.random(), 4)
        if long_param:
            params[LONG_PARAM] = rng.choice([16, 32, 64])
        if i == 3 and scenario != "empty":
            params["optimizer.name"] = MALICIOUS
        status = statuses[i]
        stop = None
        if status == "completed":
            n_steps = steps
        elif status == "stopped":
            rung = rng.choice([0, 0, 1])
            n_steps = min(steps, rungs[rung])
            stop = {"by": "asha", "rung": rung, "step": n_steps - 1}
        elif status == "running":
            n_steps = rng.randint(1, steps)
        elif status == "failed":
            n_steps = rng.choice([0, rng.randint(1, max(1, steps // 2))])
        else:
            n_steps = 0
        floor = (math.log10(params["lr"]) + 2.5) ** 2 * 0.08 + (0.05 if opt == "sgd" else 0) + 0.015 * params["layers"]
        start = 2.0 + rng.random()
        rate = rng.uniform(0.03, 0.2) * (30 / steps)
        raw = []
        for s in range(n_steps):
            v = floor + (start - floor) * math.exp(-rate * s) + rng.gauss(0, 0.01)
            raw.append([s, round(v, 6)])
        if pbt_trial == i and raw:  # after each exploit the curve jumps to the donor's level
            for s in range(steps // 3, steps):
                raw[s][1] = round(raw[s][1] * 0.8, 6)
        if metric == "":
            raw = []
        trial = {
            "id": i, "params": params, "status": status, "attempts": 1, "retries": 0,
            "group": None, "hosts": "", "started_at": None, "finished_at": None, "wall_s": None,
            "final": raw[-1][1] if raw else None,
            "best": min(p[1] for p in raw) if raw else None,
            "best_step": min(raw, key=lambda p: p[1])[0] if raw else None,
            "last_step": raw[-1][0] if raw else None, "steps": len(raw),
            "reason": "", "stop": stop, "exploits": [], "stderr_tail": "", "loader": None,
        }
        if stop:
            trial["reason"] = "asha: rung %d (resource %d): rank %d of %d, top %d continue" % (
                stop["rung"], rungs[stop["rung"]], rng.randint(4, 9), 9, 3)
        if status == "failed":
            code = rng.choice([1, 137])
            trial["reason"] = "exit code %d" % code if code == 1 else "killed by signal 9 (out of memory?)"
            trial["stderr_tail"] = "\n".join(
                ["Traceback (most recent call last):", '  File "train.py", line %d, in <module>' % (40 + i % 50),
                 "    loss.backward()", "RuntimeError: CUDA out of memory & more " + STDERR_HTML,
                 "last line of trial %d" % i])
        if pbt_trial == i:
            trial["exploits"] = [{"donor": min(4, n_trials - 1), "step": steps // 3},
                                 {"donor": min(7, n_trials - 1), "step": (2 * steps) // 3}]
        if i % 3 == 0 and status not in ("queued",):
            trial["loader"] = {"stall_fraction": round(rng.uniform(0, 0.3), 4),
                               "bytes_per_s": round(rng.uniform(1e7, 5e8))}
        if raw:
            raw_curves[i] = raw
        trials.append(trial)

    # A non-finite value in a curve arrives as null (DATA.md): one of them.
    nan_trial = next((t for t in trials if t["status"] == "completed" and t["steps"] >= 5 and t["id"] != pbt_trial), None)
    ppc = points_per_curve(n_trials, per_curve_option, budget)
    for tid, raw in raw_curves.items():
        curves[str(tid)] = downsample(raw, ppc, False)
    if nan_trial is not None:
        c = curves[str(nan_trial["id"])]
        c[len(c) // 2][1] = None

    # The timeline: attempts on the lanes (rank groups) in id order.
    n_lanes = min(32, max(2, round(math.sqrt(max(1, n_trials)) / 3)))
    clocks = [t_start + 0.5 * k for k in range(n_lanes)]
    bars = []
    step_s = 0.8

    def attempt(t, lane, status, duration):
        start = clocks[lane]
        end = start + duration
        clocks[lane] = end + rng.uniform(0.2, 2.0)
        bars.append([lane, t["id"], t["attempts_made"], start, end, status])
        t["attempts_made"] += 1
        return start, end

    running = []
    for k, t in enumerate(trials):
        t["attempts_made"] = 0
        if t["status"] == "queued":
            continue
        if t["status"] == "running":
            running.append(t)
            continue
        lane = min(range(n_lanes), key=lambda g: clocks[g])
        dur = max(1.0, t["steps"] * step_s * rng.uniform(0.7, 1.3))
        spans = []
        if t["status"] == "failed" and k % 2 == 0:  # failed, retried, failed again
            spans.append(attempt(t, lane, "failed", dur / 2))
            t["retries"] = 1
        if t["status"] == "completed" and k % 7 == 5:  # interrupted by a crash, retried
            spans.append(attempt(t, lane, "interrupted", dur / 3))
            t["retries"] = 1
        if t["id"] == pbt_trial:
            for _ in t["exploits"]:
                spans.append(attempt(t, lane, "stopped", dur / 3))
            dur /= 3
        spans.append(attempt(t, lane, t["status"], dur))
        t["group"], t["hosts"] = lane, "node%d,node%d" % (lane, lane)
        t["started_at"], t["finished_at"] = spans[0][0], spans[-1][1]
        t["wall_s"] = round(sum(e - s for s, e in spans), 3)
    generated_at = max(clocks) + 5.0
    for t in running:
        lane = min(range(n_lanes), key=lambda g: clocks[g])
        start = min(clocks[lane], generated_at - 1.0)
        bars.append([lane, t["id"], 0, start, generated_at, "running"])
        t["attempts_made"] = 1
        t["group"], t["hosts"] = lane, "node%d" % lane
        t["started_at"], t["wall_s"] = start, round(generated_at - start, 3)
    for t in trials:
        t["attempts"] = t.pop("attempts_made")
    used_lanes = sorted({b[0] for b in bars})
    lanes = ["group %d" % g for g in range(n_lanes)] if bars else []
    busy = sum(b[4] - b[3] for b in bars)
    tl_start = min((b[3] for b in bars), default=None)
    tl_end = max((b[4] for b in bars), default=None)
    busy_fraction = (min(1.0, busy / (len(used_lanes) * (tl_end - tl_start)))
                     if bars and tl_end > tl_start else None)

    scored = [t for t in trials if t["best"] is not None and t["status"] != "failed"]
    best_trial = min(scored, key=lambda t: t["best"])["id"] if scored else None
    history = sorted(([t["id"], t["finished_at"], t["best"]] for t in scored
                      if t["status"] in ("completed", "stopped") and t["finished_at"] is not None),
                     key=lambda r: (r[1], r[0]))
    if not metric:
        importance, note = [], "The sweep has no metric."
    elif len(scored) < 2:
        importance, note = [], "Parameter importance needs at least 2 trials with a value of %s." % metric
    else:
        shares = [("lr", 0.52), ("optimizer.name", 0.19), ("layers", 0.12), (MALICIOUS, 0.08),
                  (LONG_PARAM, 0.04), ("optimizer.momentum", 0.03), ("use_bn", 0.02)]
        importance = [{"param": p, "importance": v} for p, v in shares]
        note = ""
    counts = {s: sum(1 for t in trials if t["status"] == s)
              for s in ("completed", "stopped", "failed", "running", "queued")}
    counts["total"] = len(trials)
    used = {p for t in trials for p in t["params"]}
    return {
        "format": 1,
        "generated_at": generated_at,
        "live": live,
        "sweep": {
            "name": "synthetic-%s-%dx%d" % (scenario, n_trials, steps), "out_dir": "runs/synthetic",
            "metric": metric, "goal": "minimize", "planned": n_trials, "unbounded": False,
            "method": "random", "scheduler": "asha", "created_at": t_start, "updated_at": generated_at,
            "stores": 1, "found": True,
        },
        "params": [p for p in param_names if p in used],
        "counts": counts,
        "best_trial": best_trial,
        "trials": trials,
        "curves": curves,
        "points_per_curve": ppc,
        "history": history,
        "timeline": {"lanes": lanes, "bars": bars, "start": tl_start, "end": tl_end,
                     "busy_fraction": busy_fraction},
        "importance": importance,
        "importance_note": note,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="?", help="the data JSON (report/web/DATA.md)")
    ap.add_argument("--synthetic", nargs=2, type=int, metavar=("N_TRIALS", "STEPS"))
    ap.add_argument("--scenario", default="mixed", choices=["mixed", "empty", "only-failed", "no-metric"])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--metric", default=MALICIOUS, help="the synthetic sweep's metric name (default: malicious HTML)")
    ap.add_argument("--points-per-curve", type=int, default=100)
    ap.add_argument("--no-budget", action="store_true",
                    help="keep --points-per-curve per curve however many trials (report.h caps all curves at 200,000 points)")
    ap.add_argument("--live", action="store_true")
    ap.add_argument("--no-long-param", action="store_true",
                    help="leave out the parameter with a 10,000-character name (every trial repeats it: 10 kB each)")
    ap.add_argument("--data-out", help="also write the data JSON here")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args(argv)
    if (args.data is None) == (args.synthetic is None):
        ap.error("give a data JSON or --synthetic N_TRIALS STEPS")
    if args.data:
        with open(args.data, encoding="utf-8") as f:
            data = json.load(f)
    else:
        data = synthetic(args.synthetic[0], args.synthetic[1], args.scenario, args.seed, args.metric,
                         args.points_per_curve, not args.no_budget, args.live, not args.no_long_param)
    if args.data_out:
        with open(args.data_out, "w", encoding="utf-8") as f:
            json.dump(data, f, allow_nan=False)
    page = fill_template(data)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
