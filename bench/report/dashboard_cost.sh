#!/usr/bin/env bash
# bench/report/dashboard_cost.sh: does an open dashboard slow the sweep?
# Runs the same sweep of short external trials (/bin/true) with `xpscale run`
# on 2 ranks, alternately without and with `--dashboard` while a client
# polls /data.json twice a second (as an open page does on each new
# version, and more often), and prints one JSON line: trials/s without and
# with (medians over REPEATS runs each), and their ratio.
#
#   bench/report/dashboard_cost.sh          # DASH_TRIALS (1500), DASH_REPEATS (3)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
trials=${DASH_TRIALS:-1500}
repeats=${DASH_REPEATS:-3}
build=${XPSCALE_BUILD_DIR:-build}
cmake --build "$build" -j "${XPSCALE_JOBS:-$(nproc)}" --target xpscale >&2
xpscale=$(cd "$build" && pwd)/launcher/xpscale
work=$(mktemp -d "${TMPDIR:-/tmp}/xpscale-dash.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat > "$work/sweep.yaml" <<YAML
name: dash-cost
method: random
trials: $trials
metric: {name: loss, goal: minimize}
parameters:
  x: {min: 0.0, max: 1.0}
command: [/bin/true]
YAML
mpi=(mpiexec --oversubscribe -n 2)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
one() { # with_dashboard -> trials/s
  local out="$work/out.$RANDOM" poller=""
  local args=(run "$work/sweep.yaml" --out-dir "$out" --quiet)
  [ "$1" = 1 ] && args+=(--dashboard 0)
  local a b
  a=$(date +%s.%N)
  if [ "$1" = 1 ]; then
    "${mpi[@]}" "$xpscale" "${args[@]}" 2> "$work/err" &
    local run=$!
    local url=""
    for _ in $(seq 100); do
      url=$(grep -o 'http://[^ ]*' "$work/err" 2>/dev/null | head -1 || true)
      [ -n "$url" ] && break
      sleep 0.05
    done
    ( while kill -0 "$run" 2>/dev/null; do curl -s -o /dev/null -H 'Accept-Encoding: gzip, deflate, br' "${url/\/\?/\/data.json?}" || true; sleep 0.5; done ) &
    poller=$!
    wait "$run"
    wait "$poller" || true
  else
    "${mpi[@]}" "$xpscale" "${args[@]}" 2> "$work/err"
  fi
  b=$(date +%s.%N)
  awk -v a="$a" -v b="$b" -v n="$trials" 'BEGIN { printf "%.1f", n / (b - a) }'
  rm -rf "$out"
}
without=() with=()
for _ in $(seq "$repeats"); do
  without+=("$(one 0)")
  with+=("$(one 1)")
done
med() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
w0=$(med "${without[@]}") w1=$(med "${with[@]}")
echo "{\"bench\":\"dashboard_cost\",\"trials\":$trials,\"trials_per_s_without\":$w0,\"trials_per_s_with\":$w1,\"with_vs_without\":$(awk -v a="$w1" -v b="$w0" 'BEGIN { printf "%.3f", a / b }'),\"without_all\":[$(IFS=,; echo "${without[*]}")],\"with_all\":[$(IFS=,; echo "${with[*]}")]}"
