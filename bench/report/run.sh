#!/usr/bin/env bash
# bench/report: how fast `xpscale report --html` writes the page of a large
# sweep, and how fast that page becomes interactive in headless Chromium.
# Prints one JSON line per measurement on stdout, the last one the summary;
# build output and progress go to stderr.
#
#   bench/report/run.sh
#   XPSCALE_BUILD_DIR=/tmp/b bench/report/run.sh
#
# Knobs (environment): REPORT_TRIALS (10000), REPORT_STEPS (100),
# REPORT_REPEATS (3: report writes and page loads timed, median kept),
# REPORT_OPTUNA_IMPORTANCE_LIMIT (120 s: the peer's fANOVA chart is cut off
# after it), REPORT_KEEP=1 keeps the work dir (the store and the pages).
#
# The peer: the same trials as an Optuna study (from `xpscale export
# --metrics`), drawn by optuna.visualization's plotly charts (history,
# intermediate values, parallel coordinates, importances) into one offline
# page, timed from the study in memory (optuna_peer.py).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

trials=${REPORT_TRIALS:-10000}
steps=${REPORT_STEPS:-100}
repeats=${REPORT_REPEATS:-3}
py=/usr/bin/python3 # Debian's, where python3-selenium lives

if ! "$py" -c 'import selenium' 2>/dev/null || [ ! -x /usr/bin/chromium ]; then
  echo "run.sh: chromium or python3-selenium is missing; run scripts/setup" >&2
  exit 2
fi

build=${XPSCALE_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${XPSCALE_BUILD_TYPE:-RelWithDebInfo}" \
    -DXPSCALE_CUDA="${XPSCALE_CUDA:-AUTO}" -DXPSCALE_WERROR="${XPSCALE_WERROR:-ON}" >&2
fi
cmake --build "$build" -j "${XPSCALE_JOBS:-$(nproc)}" --target xpscale report_make_store >&2
bin=$(cd "$build" && pwd)
xpscale=$bin/launcher/xpscale

work=$(mktemp -d "${TMPDIR:-/tmp}/xpscale-report.XXXXXX")
if [ "${REPORT_KEEP:-0}" = 1 ]; then
  echo "run.sh: work dir $work" >&2
else
  trap 'rm -rf "$work"' EXIT
fi

echo "run.sh: writing a store of $trials trials x $steps steps" >&2
"$bin/bench/report/report_make_store" "$work/sweep" "$trials" "$steps" >&2

# write_s: the whole command, as a user times it (start, reading the store,
# importance, the page, the write), median of $repeats.
write_times=()
for _ in $(seq "$repeats"); do
  a=$(date +%s.%N)
  "$xpscale" report "$work/sweep" --html "$work/report.html" >&2
  b=$(date +%s.%N)
  write_times+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b - a }')")
done
write_s=$(printf '%s\n' "${write_times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
bytes=$(stat -c %s "$work/report.html")
echo "{\"bench\":\"report_write\",\"trials\":$trials,\"steps\":$steps,\"write_s\":$write_s,\"write_s_all\":[$(IFS=,; echo "${write_times[*]}")],\"bytes\":$bytes}"

render=$("$py" bench/report/render_time.py "$work/report.html" "$repeats")
echo "{\"bench\":\"report_render\",${render#\{}"
render_s=$(echo "$render" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["render_s"])')

echo "run.sh: the peer, Optuna's plotly charts of the same trials" >&2
"$xpscale" export "$work/sweep" --metrics > "$work/export.jsonl"
peer=$("$py" bench/report/optuna_peer.py "$work/export.jsonl" "$work/optuna.html" \
  "${REPORT_OPTUNA_IMPORTANCE_LIMIT:-120}")
echo "{\"bench\":\"report_optuna_write\",${peer#\{}"
peer_render=$("$py" bench/report/render_time.py "$work/optuna.html" "$repeats" --until-load)
echo "{\"bench\":\"report_optuna_render\",${peer_render#\{}"
"$py" - "$trials" "$write_s" "$render_s" "$bytes" "$peer" "$peer_render" <<'PY'
import json, sys
trials, write_s, render_s, size = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
peer, peer_render = json.loads(sys.argv[5]), json.loads(sys.argv[6])
print(json.dumps({"bench": "report", "trials": trials, "write_s": write_s, "render_s": render_s,
                  "bytes": size, "optuna_write_s": peer["write_s"],
                  "optuna_importance_cut": peer["importance_cut"],
                  "optuna_render_s": peer_render["render_s"],
                  "write_vs_optuna": round(peer["write_s"] / write_s, 2),
                  "render_vs_optuna": round(peer_render["render_s"] / render_s, 2)}))
PY
