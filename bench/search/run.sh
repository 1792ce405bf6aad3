#!/usr/bin/env bash
# bench/search: xpscale's TPE against Optuna's TPESampler (random search of
# both as the floor), ASHA against a full grid and Optuna's
# SuccessiveHalvingPruner on the Fashion-MNIST example, and scheduler
# decisions per second with 10,000 running trials. One JSON line per
# measurement on stdout, the last one the summary; progress on stderr.
#
#   bench/search/run.sh
#   XPSCALE_BUILD_DIR=/tmp/b bench/search/run.sh       # build dir (default build/)
#   SEARCH_ASHA=full bench/search/run.sh               # the larger Fashion-MNIST grid
#
# Knobs (environment): SEARCH_SEEDS (30), SEARCH_TRIALS (100), SEARCH_ASHA
# (reduced: 8 configs x 9 epochs, ~2-4 min on 2 cores; full: 18 configs x 9
# epochs; off), SEARCH_RANKS (4), SEARCH_RUNNING (10000), SEARCH_REPORTS
# (2000000), SEARCH_ASHA_STOP (1: also the stop-based ASHA; 0 skips it),
# SEARCH_KEEP=1 keeps the work dir.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
py=/usr/bin/python3 # Debian's, where python3-optuna and python3-scipy live
here=bench/search
seeds=${SEARCH_SEEDS:-30}
trials=${SEARCH_TRIALS:-100}
asha=${SEARCH_ASHA:-reduced}
ranks=${SEARCH_RANKS:-4}

if ! "$py" -c 'import optuna, scipy' 2>/dev/null; then
  echo "run.sh: Optuna or SciPy is missing for $py; run scripts/setup" >&2
  exit 2
fi
build=${XPSCALE_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${XPSCALE_BUILD_TYPE:-RelWithDebInfo}" \
    -DXPSCALE_CUDA="${XPSCALE_CUDA:-AUTO}" -DXPSCALE_WERROR="${XPSCALE_WERROR:-ON}" >&2
fi
cmake --build "$build" -j "${XPSCALE_JOBS:-$(nproc)}" --target search_bench fashion_mnist >&2
bin=$(cd "$build" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/xpscale-search.XXXXXX")
if [ "${SEARCH_KEEP:-0}" = 1 ]; then echo "run.sh: work dir $work" >&2; else trap 'rm -rf "$work"' EXIT; fi

echo "run.sh: TPE and random search, $seeds seeds x $trials trials, xpscale then Optuna" >&2
"$bin/bench/search/search_bench" tpe "$seeds" "$trials" > "$work/tpe.jsonl"
"$py" "$here/optuna_search.py" "$seeds" "$trials" >> "$work/tpe.jsonl"

echo "run.sh: scheduler decisions with ${SEARCH_RUNNING:-10000} running trials" >&2
"$bin/bench/search/search_bench" decisions "${SEARCH_RUNNING:-10000}" "${SEARCH_REPORTS:-2000000}" \
  > "$work/decisions.jsonl"

: > "$work/asha.jsonl"
if [ "$asha" != off ]; then
  if [ "$asha" = full ]; then
    lrs='[0.003, 0.01, 0.03, 0.1, 0.2, 0.4]'; hidden='[32, 64, 128]'
  else
    lrs='[0.01, 0.03, 0.1, 0.3]'; hidden='[32, 128]'
  fi
  mpi=(mpiexec --oversubscribe -n "$ranks")
  [ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
  kinds='grid asha'
  [ "${SEARCH_ASHA_STOP:-1}" = 1 ] && kinds+=' asha_stop'
  for kind in $kinds; do
    # asha: the paper's ASHA (promotion: pause); asha_stop: the stop-based
    # rule that is `type: asha`'s default (docs/config.md).
    sched=''
    asha_sched='"type": "asha", "resource": "epoch", "min_resource": 1, "max_resource": 9, "eta": 3'
    [ "$kind" = asha ] && sched="\"scheduler\": {$asha_sched, \"promotion\": \"pause\"},"
    [ "$kind" = asha_stop ] && sched="\"scheduler\": {$asha_sched, \"promotion\": \"stop\"},"
    cat > "$work/$kind.yaml" <<YAML
{"method": "grid", "seed": 1, $sched
 "metric": {"name": "val_accuracy", "goal": "maximize"},
 "parameters": {"lr": {"values": $lrs}, "hidden": {"values": $hidden},
                "batch_size": {"value": 128}, "epochs": {"value": 9}},
 "resources": {"ranks_per_trial": 1}, "out_dir": "$work/$kind"}
YAML
    echo "run.sh: Fashion-MNIST $kind sweep ($asha) on $ranks ranks" >&2
    start=$(date +%s.%N)
    "${mpi[@]}" "$bin/examples/fashion_mnist/fashion_mnist" --quiet --sweep "$work/$kind.yaml" >&2
    end=$(date +%s.%N)
    "$py" - "$work/$kind/xpscale.db" "$kind" "$start" "$end" >> "$work/asha.jsonl" <<'PY'
import json, sqlite3, sys
db, kind, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
con = sqlite3.connect(db)
epochs = con.execute("SELECT count(*) FROM metrics").fetchone()[0]
best = None  # the config with the highest val accuracy at any epoch it ran
for trial, values in con.execute("SELECT trial, values_json FROM metrics"):
    m = json.loads(values)
    if best is None or m["val_accuracy"] > best[0]:
        best = (m["val_accuracy"], m["test_accuracy"], trial)
configs = con.execute("SELECT count(*) FROM trials").fetchone()[0]
print(json.dumps({"measure": "fmnist_" + kind, "configs": configs, "epochs": epochs,
                  "selected_trial": best[2], "selected_val_accuracy": best[0],
                  "selected_test_accuracy": best[1], "wall_s": end - start}))
PY
  done
  "$py" "$here/optuna_sha.py" "$work/grid/xpscale.db" 3 >> "$work/asha.jsonl"
fi

"$py" "$here/analyze.py" "$work/tpe.jsonl" "$work/decisions.jsonl" "$work/asha.jsonl"
