#!/usr/bin/env bash
# bench/dispatch: how many no-op trials per second the sweep runtime
# dispatches on 4 ranks, against one mpirun per trial and against Optuna
# (4 worker processes sharing one storage), plus how busy the groups stay on
# trials of random length. Prints one JSON line per measurement on stdout,
# the last one the summary; build output and progress go to stderr.
#
#   bench/dispatch/run.sh
#   XPSCALE_BUILD_DIR=/tmp/b bench/dispatch/run.sh     # build dir (default build/)
#
# Knobs (environment): DISPATCH_RANKS (4), DISPATCH_TRIALS (20000),
# DISPATCH_LOOP_TRIALS (20), DISPATCH_OPTUNA_TRIALS (2000),
# DISPATCH_BUSY_TRIALS (200), DISPATCH_SCALE_TRIALS ("10000 100000": the
# sweeps that check the rate holds as the store grows; "" skips them),
# DISPATCH_KEEP=1 keeps the work dir. The build
# follows scripts/setup: XPSCALE_BUILD_TYPE (RelWithDebInfo), XPSCALE_CUDA
# (AUTO), XPSCALE_WERROR (ON), XPSCALE_JOBS (nproc).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

ranks=${DISPATCH_RANKS:-4}
trials=${DISPATCH_TRIALS:-20000}
loop_trials=${DISPATCH_LOOP_TRIALS:-20}
optuna_trials=${DISPATCH_OPTUNA_TRIALS:-2000}
busy_trials=${DISPATCH_BUSY_TRIALS:-200}
scale_trials=${DISPATCH_SCALE_TRIALS:-10000 100000}
py=/usr/bin/python3 # Debian's, where python3-optuna lives
here=bench/dispatch

if ! "$py" -c 'import optuna' 2>/dev/null; then
  echo "run.sh: Optuna is missing for $py; run scripts/setup (or apt-get install python3-optuna)" >&2
  exit 2
fi

build=${XPSCALE_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${XPSCALE_BUILD_TYPE:-RelWithDebInfo}" \
    -DXPSCALE_CUDA="${XPSCALE_CUDA:-AUTO}" -DXPSCALE_WERROR="${XPSCALE_WERROR:-ON}" >&2
fi
cmake --build "$build" -j "${XPSCALE_JOBS:-$(nproc)}" --target dispatch_noop >&2
noop=$(cd "$build" && pwd)/bench/dispatch/dispatch_noop

work=$(mktemp -d "${TMPDIR:-/tmp}/xpscale-dispatch.XXXXXX")
if [ "${DISPATCH_KEEP:-0}" = 1 ]; then
  echo "run.sh: work dir $work" >&2
else
  trap 'rm -rf "$work"' EXIT
fi

mpi=(mpiexec --oversubscribe)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
emit() { echo "$1" | tee -a "$work/lines.jsonl"; }

# (a) No-op trials through xpscale. trials_per_s counts from rank 0 opening
# the store to the last trial's end: every cost that grows with the trial
# count (the queue written to the store, dispatch), none of the fixed ones
# (mpiexec, MPI_Init, exit: fixed_s), as the Optuna figure counts from its
# workers' barrier. wall_trials_per_s uses the run summary's wall_s (dispatch
# only), outer_trials_per_s the shell's clock around mpiexec.
noop_sweep() { # label out_dir
  cat >"$work/$1.json" <<EOF
{"method": "random", "trials": $trials, "seed": 1,
 "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1}},
 "resources": {"ranks_per_trial": 1}, "out_dir": "$2"}
EOF
  local t0 t1
  t0=$(now)
  "${mpi[@]}" -n "$ranks" "$noop" --sweep "$work/$1.json" --quiet >&2
  t1=$(now)
  emit "$("$py" $here/analyze.py "$2/xpscale.db" --label "$1" --outer-s "$(elapsed "$t0" "$t1")")"
}
echo "run.sh: (a) $trials no-op trials on $ranks ranks" >&2
noop_sweep xpscale_noop "$work/noop"
# Diagnostic: the same with out_dir on tmpfs, where the trials' directories
# and the store's writes cost no disk file system work.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  shm=$(mktemp -d /dev/shm/xpscale-dispatch.XXXXXX)
  [ "${DISPATCH_KEEP:-0}" = 1 ] || trap 'rm -rf "$work" "$shm"' EXIT
  noop_sweep xpscale_noop_tmpfs "$shm"
fi

# (b) One mpiexec per trial, the same no-op trial outside xpscale
# (MPI_Init, nothing, MPI_Finalize): one after another, as a shell loop does,
# and with $ranks launches at a time, as `xargs -P` does.
echo "run.sh: (b) $loop_trials mpiexec launches" >&2
t0=$(now)
for ((i = 0; i < loop_trials; ++i)); do "${mpi[@]}" -n 1 "$noop" --once; done
t1=$(now)
emit "$("$py" -c 'import json, sys; n, s = int(sys.argv[1]), float(sys.argv[2]); print(json.dumps({"bench": "dispatch", "measure": "mpirun_loop", "launches_at_once": 1, "trials": n, "wall_s": round(s, 4), "trials_per_s": round(n / s, 3)}))' \
  "$loop_trials" "$(elapsed "$t0" "$t1")")"
t0=$(now)
seq "$loop_trials" | xargs -P "$ranks" -I{} "${mpi[@]}" -n 1 "$noop" --once
t1=$(now)
emit "$("$py" -c 'import json, sys; n, p, s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]); print(json.dumps({"bench": "dispatch", "measure": "mpirun_parallel", "launches_at_once": p, "trials": n, "wall_s": round(s, 4), "trials_per_s": round(n / s, 3)}))' \
  "$loop_trials" "$ranks" "$(elapsed "$t0" "$t1")")"

# (c) Optuna, $ranks worker processes on one storage: RDBStorage on SQLite,
# then JournalFileStorage, Optuna's fastest storage for several processes
# (the headline peer: the summary's vs_optuna is against the faster of the
# two).
echo "run.sh: (c) Optuna, $optuna_trials trials, $ranks workers" >&2
for storage in rdb journal; do
  t0=$(now)
  # A failing peer prints its error as its line; the summary then says null.
  line=$("$py" $here/optuna_peer.py --dir "$work/optuna-$storage" --trials "$optuna_trials" \
    --workers "$ranks" --storage "$storage") || true
  t1=$(now)
  emit "$("$py" -c 'import json, sys; d = json.loads(sys.argv[1]); d["measure"] = sys.argv[2]; s = float(sys.argv[3]); d["outer_s"] = round(s, 4); d["outer_trials_per_s"] = round(d["trials"] / s, 2) if "trials" in d else None; print(json.dumps(d))' \
    "$line" "optuna_$storage" "$(elapsed "$t0" "$t1")")"
done

# (d) Busy fraction: trials that sleep 10-100 ms.
cat >"$work/busy.json" <<EOF
{"method": "random", "trials": $busy_trials, "seed": 1,
 "parameters": {"ms": {"distribution": "int_uniform", "min": 10, "max": 100}},
 "resources": {"ranks_per_trial": 1}, "out_dir": "$work/busy"}
EOF
echo "run.sh: (d) $busy_trials trials of 10-100 ms on $ranks ranks" >&2
t0=$(now)
"${mpi[@]}" -n "$ranks" "$noop" --sweep "$work/busy.json" --quiet >&2
t1=$(now)
emit "$("$py" $here/analyze.py "$work/busy/xpscale.db" --label xpscale_busy --busy \
  --outer-s "$(elapsed "$t0" "$t1")")"

# (e) Does the rate hold as the store grows? Larger sweeps of the same
# no-op trials; analyze.py's rate_kept = the last tenth's rate / the first's.
for n in $scale_trials; do
  echo "run.sh: (e) $n no-op trials on $ranks ranks" >&2
  trials=$n noop_sweep "xpscale_noop_$n" "$work/noop-$n"
  rm -rf "$work/noop-$n"
done

"$py" - "$work/lines.jsonl" "$ranks" $scale_trials <<'EOF'
import json, sys
m = {d["measure"]: d for d in map(json.loads, open(sys.argv[1]))}


def ratio(a, b, digits=2):
    return round(a / b, digits) if a and b else None


noop, loop, par = m["xpscale_noop"], m["mpirun_loop"], m["mpirun_parallel"]
rdb, journal = m["optuna_rdb"], m["optuna_journal"]
# The strongest Optuna: the faster of its two storages (null if both failed).
peers = [p for p in (rdb, journal) if p.get("trials_per_s")]
opt = max(peers, key=lambda p: p["trials_per_s"]) if peers else {}
x = noop["trials_per_s"]  # opening the store to the last trial's end
scale = [m[f"xpscale_noop_{n}"] for n in sys.argv[3:]]
print(json.dumps({
    "bench": "dispatch",
    "measure": "ratios_outer",  # every rate with its start-up included
    "vs_mpirun_loop": ratio(noop["outer_trials_per_s"], loop["trials_per_s"], 1),
    "vs_mpirun_parallel": ratio(noop["outer_trials_per_s"], par["trials_per_s"], 1),
    "vs_optuna_rdb": ratio(noop["outer_trials_per_s"], rdb.get("outer_trials_per_s")),
    "vs_optuna_journal": ratio(noop["outer_trials_per_s"], journal.get("outer_trials_per_s")),
}))
print(json.dumps({
    "bench": "dispatch",
    "measure": "ratios_other_peers",
    "vs_optuna_by_wall_s": ratio(noop["wall_trials_per_s"], opt.get("trials_per_s")),
    "vs_mpirun_parallel": ratio(x, par["trials_per_s"], 1),
}))
summary = {
    "bench": "dispatch",
    "ranks": int(sys.argv[2]),
    "trials_per_s": x,
    "vs_mpirun_loop": ratio(x, loop["trials_per_s"], 1),
    "vs_optuna": ratio(x, opt.get("trials_per_s")),
    "vs_optuna_journal": ratio(x, journal.get("trials_per_s")),
    "vs_optuna_rdb": ratio(x, rdb.get("trials_per_s")),
    "group_busy_fraction": m["xpscale_busy"]["group_busy_fraction"],
}
for s in scale:
    summary[f"trials_per_s_{s['trials']}"] = s["trials_per_s"]
    summary[f"rate_kept_{s['trials']}"] = s.get("rate_kept")
if scale:  # the largest sweep's rate against the headline one's
    summary["rate_kept_largest_vs_headline"] = ratio(scale[-1]["trials_per_s"], x, 3)
print(json.dumps(summary))
EOF
