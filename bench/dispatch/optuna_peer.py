#!/usr/bin/python3
"""Optuna peer of bench/dispatch: WORKERS processes share one storage and run
a no-op objective (random sampler, one uniform parameter, as the xpscale
sweep) for TRIALS trials in total. Prints one JSON line.

  optuna_peer.py --dir D --trials 2000 --workers 4 [--storage auto|rdb|journal]

The clock starts when every worker has imported Optuna and opened the study
(a barrier), and stops when the last worker's optimize() returns: the same
span as xpscale's run summary wall_s (process start-up excluded on both
sides; the script's caller measures the outer time). `auto` tries
RDBStorage on SQLite first and falls back to JournalFileStorage when SQLite
reports a lock error. A run that fails is tried again in a fresh directory,
up to 3 times (the line's `retried_after` keeps the errors): Optuna 3.1's
JournalFileStorage can read a line another worker is still writing and fail
with a JSONDecodeError (optuna/optuna#5138), which is Optuna's bug, not a
reason to drop its fastest storage from the comparison.
"""
import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import traceback


def make_storage(kind, directory):
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if kind == "rdb":
        return optuna.storages.RDBStorage(
            "sqlite:///" + os.path.join(directory, "optuna.db"),
            engine_kwargs={"connect_args": {"timeout": 60}},
        )
    return optuna.storages.JournalStorage(
        optuna.storages.JournalFileStorage(os.path.join(directory, "optuna.journal"))
    )


def worker(kind, directory, name, n_trials, seed, barrier, out):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(
            study_name=name,
            storage=make_storage(kind, directory),
            sampler=optuna.samplers.RandomSampler(seed=seed),
        )
        barrier.wait()
        start = time.time()
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) * 0.0, n_trials=n_trials)
        out.put({"ok": True, "start": start, "end": time.time()})
    except Exception as e:  # reported to the parent, which may fall back
        barrier.abort()
        where = traceback.extract_tb(e.__traceback__)[-1]
        out.put({"ok": False, "error": f"{type(e).__name__}: {e} ({where.filename}:{where.lineno})"})


def run(kind, directory, trials, workers):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.makedirs(directory, exist_ok=True)
    name = f"dispatch-{kind}"
    optuna.create_study(study_name=name, storage=make_storage(kind, directory))
    ctx = mp.get_context("spawn")  # no SQLite handle crosses a fork
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    share = [trials // workers + (1 if w < trials % workers else 0) for w in range(workers)]
    procs = [
        ctx.Process(target=worker, args=(kind, directory, name, share[w], w + 1, barrier, out))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    errors = [r["error"] for r in results if not r["ok"]]
    if errors:
        return None, errors
    start = min(r["start"] for r in results)
    end = max(r["end"] for r in results)
    study = optuna.load_study(study_name=name, storage=make_storage(kind, directory))
    done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())
    return {"trials": done, "wall_s": end - start}, []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--storage", choices=["auto", "rdb", "journal"], default="auto")
    a = ap.parse_args()
    import optuna

    kinds = ["rdb", "journal"] if a.storage == "auto" else [a.storage]
    notes = []
    for kind in kinds:
        retried = []
        for attempt in range(3):
            res, errors = run(kind, os.path.join(a.dir, f"{kind}-{attempt}"), a.trials, a.workers)
            if res:
                break
            retried.append(errors[0])
        if res:
            storage = (
                "RDBStorage(sqlite)" if kind == "rdb" else "JournalStorage(JournalFileStorage)"
            )
            line = {
                "bench": "dispatch",
                "peer": "optuna",
                "optuna": optuna.__version__,
                "storage": storage,
                "sampler": "RandomSampler",
                "workers": a.workers,
                "trials": res["trials"],
                "wall_s": round(res["wall_s"], 4),
                "trials_per_s": round(res["trials"] / res["wall_s"], 2),
            }
            if retried:
                line["retried_after"] = retried
            if notes:
                line["fallback_from"] = notes
            print(json.dumps(line), flush=True)
            return 0
        notes.append(f"{kind}: {retried[-1]}")
    print(json.dumps({"bench": "dispatch", "peer": "optuna", "error": notes}), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
