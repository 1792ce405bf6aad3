#!/usr/bin/python3
"""Optuna peer of bench/store: WORKERS processes share one study in an
RDBStorage on PostgreSQL and run a no-op objective (one uniform parameter,
as the xpscale sweep) for TRIALS trials in total. Prints one JSON line.

  optuna_peer.py --url postgresql+psycopg2://USER@HOST:PORT/DB --study NAME
                 [--trials 1000] [--workers 4] [--sampler random|tpe]

The password comes from PGPASSWORD (libpq reads it), never from the URL.
The parent creates the study (not timed); each worker loads it and calls
study.optimize(n_trials=its share). Two clocks:
  trials_per_s        from a barrier that every worker reaches after it has
                      imported Optuna and opened the study, to the last
                      optimize() return (as bench/dispatch's peer, and as
                      xpscale's figure from the store's opening on);
  outer_trials_per_s  from the parent starting the worker processes to the
                      last one exiting (Python start-up, imports and
                      connecting included).
RandomSampler is what a user would pick for throughput (no per-trial read
of the study's history); TPESampler reads every finished trial on each
suggest, so its rate falls as the study grows: keep its count moderate.
"""
import argparse
import json
import multiprocessing as mp
import sys
import time
import traceback


def make_sampler(kind, seed):
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def worker(url, name, sampler, n_trials, seed, barrier, out):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(
            study_name=name, storage=optuna.storages.RDBStorage(url), sampler=make_sampler(sampler, seed)
        )
        barrier.wait()
        start = time.time()
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) * 0.0, n_trials=n_trials)
        out.put({"ok": True, "start": start, "end": time.time()})
    except Exception as e:  # reported to the parent
        barrier.abort()
        where = traceback.extract_tb(e.__traceback__)[-1]
        out.put({"ok": False, "error": f"{type(e).__name__}: {e} ({where.filename}:{where.lineno})"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--study", required=True)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--sampler", choices=["random", "tpe"], default="random")
    ap.add_argument("--label", default="optuna_pg")
    a = ap.parse_args()
    if "@" in a.url and ":" in a.url.split("@")[0].split("//")[-1]:
        print("optuna_peer.py: put the password in PGPASSWORD, not in --url", file=sys.stderr)
        return 2
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    line = {
        "bench": "store",
        "measure": a.label,
        "peer": "optuna",
        "optuna": optuna.__version__,
        "storage": "RDBStorage(postgresql+psycopg2)",
        "sampler": "TPESampler" if a.sampler == "tpe" else "RandomSampler",
        "workers": a.workers,
    }
    try:
        optuna.create_study(study_name=a.study, storage=optuna.storages.RDBStorage(a.url),
                            load_if_exists=True)
        ctx = mp.get_context("spawn")  # no connection crosses a fork
        barrier, out = ctx.Barrier(a.workers), ctx.Queue()
        share = [a.trials // a.workers + (1 if w < a.trials % a.workers else 0) for w in range(a.workers)]
        outer_start = time.time()
        procs = [
            ctx.Process(target=worker, args=(a.url, a.study, a.sampler, share[w], w + 1, barrier, out))
            for w in range(a.workers)
        ]
        for p in procs:
            p.start()
        results = [out.get(timeout=1800) for _ in procs]
        for p in procs:
            p.join()
        outer_s = time.time() - outer_start
        errors = [r["error"] for r in results if not r["ok"]]
        if errors:
            line["error"] = errors[0]
            print(json.dumps(line), flush=True)
            return 1
        wall = max(r["end"] for r in results) - min(r["start"] for r in results)
        study = optuna.load_study(study_name=a.study, storage=optuna.storages.RDBStorage(a.url))
        done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())
    except Exception as e:  # the line says why; the caller's summary says null
        line["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(line), flush=True)
        return 1
    line.update({
        "trials": done,
        "wall_s": round(wall, 4),
        "trials_per_s": round(done / wall, 2),
        "outer_s": round(outer_s, 4),
        "outer_trials_per_s": round(done / outer_s, 2),
    })
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
