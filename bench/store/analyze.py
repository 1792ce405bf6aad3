#!/usr/bin/python3
"""The JSON lines of bench/store.

  analyze.py sweep --label L --export FILE [--outer-s S] [--jobs N] [--ranks R]
                   [--statements "CALLS EXEC_MS" --top FILE] [--repeat I] [--store sqlite|postgresql]
                   [--note TEXT]
      one line about a no-op sweep from `xpscale export OUT_DIR` (FILE):
      trials/s over the store's clock, from the sweep's creation (the first
      job opening the store: created_at, which is the first run's
      started_at) to the last attempt's end; outer_* over the caller's clock
      (first job launched to last job exited); runs_with_trials: how many
      jobs ran at least one attempt. --note (the jobs did not all run):
      the rates are null and the note says why.
  analyze.py annotate [--statements ... --top FILE] [--repeat I] < LINE
      adds the same statement counts to a peer's line (optuna_peer.py).
  analyze.py summary LINES.jsonl --trials N --optuna-trials M --jobs J ...
      the summary: medians over the repeats, and every value.

--statements: pg_stat_statements' calls and total_exec_time (ms) of the
store's role over the measurement (statements run, BEGIN/COMMIT included,
and the server's time executing them); --top FILE: its statements of most
server time (calls, total ms, text; tab-separated), shown as top_statements.
"""
import argparse
import json
import statistics
import sys


def add_statements(line, statements, per, top=None):
    if not statements:
        return
    calls, exec_ms = statements.split()
    calls, exec_ms = int(float(calls)), float(exec_ms)
    line["statements"] = calls
    line["server_exec_s"] = round(exec_ms / 1e3, 4)
    if per:
        line["statements_per_trial"] = round(calls / per, 2)
        line["server_exec_us_per_trial"] = round(exec_ms * 1e3 / per, 1)
    if top:
        with open(top) as f:
            rows = [r.rstrip("\n").split("\t", 2) for r in f if r.strip()]
        line["top_statements"] = [
            {"calls": int(c), "exec_ms": float(ms), "mean_us": round(float(ms) * 1e3 / max(int(c), 1), 1),
             "sql": q} for c, ms, q in rows]


def sweep(a):
    created = None
    trials = completed = 0
    runs, first_start, last_end = set(), None, None
    with open(a.export) as f:
        for raw in f:
            d = json.loads(raw)
            if d.get("kind") == "sweep":
                created = d["created_at"]
            elif d.get("kind") == "trial":
                trials += 1
                completed += d["status"] == "completed"
                for h in d.get("history", []):
                    runs.add(h["run"])
                    first_start = min(first_start or h["started_at"], h["started_at"])
                    if h.get("finished_at"):
                        last_end = max(last_end or h["finished_at"], h["finished_at"])
    line = {"bench": "store", "measure": a.label}
    if a.repeat is not None:
        line["repeat"] = a.repeat
    line.update({"store": a.store, "jobs": a.jobs, "ranks_per_job": a.ranks,
                 "trials": trials, "completed": completed, "runs_with_trials": len(runs)})
    if created is None or last_end is None or completed == 0:
        line["trials_per_s"] = None
        line["error"] = "no completed trials in the export"
        print(json.dumps(line))
        return
    sweep_s = last_end - created
    line["prepare_s"] = round(first_start - created, 4)  # queue written, groups formed
    line["sweep_s"] = round(sweep_s, 4)
    line["trials_per_s"] = round(completed / sweep_s, 2)
    if a.outer_s:
        line["outer_s"] = round(a.outer_s, 4)
        line["outer_trials_per_s"] = round(completed / a.outer_s, 2)
        line["fixed_s"] = round(a.outer_s - sweep_s, 4)  # mpiexec, MPI_Init, exit
    add_statements(line, a.statements, completed, a.top)
    if a.jobs > 1 and len(runs) < a.jobs and not a.note:
        # All exited 0, but some found nothing left to do (they started late).
        line["jobs_note"] = f"only {len(runs)} of {a.jobs} jobs ran trials"
    if a.note:  # the jobs did not all run (refused, failed): no figure
        line["note"] = a.note
        for k in ("trials_per_s", "outer_trials_per_s"):
            if k in line:
                line[k] = None
    print(json.dumps(line))


def annotate(a):
    line = json.loads(sys.stdin.read())
    if a.repeat is not None:
        line = {**{k: line[k] for k in ("bench", "measure") if k in line}, "repeat": a.repeat, **line}
    add_statements(line, a.statements, line.get("trials"), a.top)
    print(json.dumps(line))


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def ratio(x, y):
    return round(x / y, 2) if x and y else None


def summary(a):
    by = {}
    with open(a.lines) as f:
        for raw in f:
            d = json.loads(raw)
            by.setdefault(d["measure"], []).append(d)

    def values(measure, key="trials_per_s"):
        return [d.get(key) for d in by.get(measure, [])]

    def med(measure, key="trials_per_s"):
        v = values(measure, key)
        # One failed repeat makes the median meaningless: null.
        return median(v) if v and None not in v else None

    def per_trial(measure, key):
        return median([d.get(key) for d in by.get(measure, [])])

    sqlite, pg1, pg = med("sqlite"), med("pg1"), med("pg")
    optuna, tpe = med("optuna_pg"), med("optuna_pg_tpe")
    notes = [d["note"] for d in by.get("pg", []) if d.get("note")]
    out = {"bench": "store", "repeats": a.repeats, "trials": a.trials, "jobs": a.jobs,
           "pg_trials_per_s": pg}
    if pg is None:
        out["pg_jobs_note"] = notes[0] if notes else f"{a.jobs}-job measurement failed"
    out["optuna_pg_trials_per_s"] = optuna
    out["optuna_sampler"] = "RandomSampler"
    out["optuna_trials"] = a.optuna_trials
    # Today one job per sweep: the ratio falls back on the one-job figure.
    basis = pg if pg is not None else pg1
    out["pg_vs_optuna"] = ratio(basis, optuna)
    out["pg_vs_optuna_from"] = "pg" if pg is not None else "pg1"
    out["sqlite_trials_per_s"] = sqlite
    out["pg1_trials_per_s"] = pg1
    out["pg1_vs_sqlite"] = ratio(pg1, sqlite)
    if "optuna_pg_tpe" in by:
        out["optuna_pg_tpe_trials_per_s"] = tpe
        out["optuna_tpe_trials"] = a.tpe_trials
    # Start-up included on both sides (mpiexec + MPI_Init; Python + imports).
    outer_basis = med("pg", "outer_trials_per_s") if pg is not None else med("pg1", "outer_trials_per_s")
    out["pg_vs_optuna_outer"] = ratio(outer_basis, med("optuna_pg", "outer_trials_per_s"))
    spt = {m: per_trial(m, "statements_per_trial")
           for m in ("pg1", "pg", "optuna_pg", "optuna_pg_tpe") if m in by}
    if any(v is not None for v in spt.values()):
        out["statements_per_trial"] = spt
    out["values"] = {m: values(m) for m in ("sqlite", "pg1", "pg", "optuna_pg", "optuna_pg_tpe")
                     if m in by}
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--label", required=True)
    s.add_argument("--export", required=True)
    s.add_argument("--outer-s", type=float)
    s.add_argument("--jobs", type=int, default=1)
    s.add_argument("--ranks", type=int)
    s.add_argument("--store", default="sqlite")
    s.add_argument("--statements")
    s.add_argument("--top")
    s.add_argument("--repeat", type=int)
    s.add_argument("--note")
    n = sub.add_parser("annotate")
    n.add_argument("--statements")
    n.add_argument("--top")
    n.add_argument("--repeat", type=int)
    m = sub.add_parser("summary")
    m.add_argument("lines")
    m.add_argument("--repeats", type=int, required=True)
    m.add_argument("--trials", type=int, required=True)
    m.add_argument("--optuna-trials", type=int, required=True)
    m.add_argument("--tpe-trials", type=int, default=0)
    m.add_argument("--jobs", type=int, required=True)
    a = ap.parse_args()
    {"sweep": sweep, "annotate": annotate, "summary": summary}[a.cmd](a)


if __name__ == "__main__":
    main()
