#!/usr/bin/env bash
# Runs the allreduce benchmark and its peer comparison, torch.distributed's
# gloo backend (Debian's python3-torch), on the same sizes and rank count,
# and prints the summary as the last line:
#   {"bench":"allreduce","backend":...,"ranks":N,
#    "overhead_vs_raw_mpi_at_4MiB":r1,"overhead_vs_raw_mpi_at_64MiB":r2,
#    "bucketed_vs_per_tensor_speedup":s,"time_us_at_4MiB":t,
#    "control_vs_raw_mpi_at_4MiB":c,"vs_torch_gloo_at_4MiB":g,...}
# c is raw MPI_Allreduce timed against itself the same way as ours: the
# noise floor to read r1 against (see allreduce_bench.cpp).
#
#   bench/allreduce/run.sh [RANKS] [extra allreduce_bench arguments]
#   XPSCALE_BUILD_DIR=/tmp/b bench/allreduce/run.sh 4 --backend mpi
# RANKS defaults to 2. The build directory (default build/) must hold
# bench/allreduce/allreduce_bench.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${XPSCALE_BUILD_DIR:-$root/build}
ranks=${1:-2}
shift || true
bench=$build/bench/allreduce/allreduce_bench
python=${XPSCALE_PYTHON:-/usr/bin/python3}
[[ -x $bench ]] || { echo "run.sh: $bench not built (ninja -C $build allreduce_bench)" >&2; exit 2; }
mpiexec=(mpiexec --oversubscribe -n "$ranks")
[[ $(id -u) == 0 ]] && mpiexec+=(--allow-run-as-root)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"${mpiexec[@]}" "$bench" "$@" | tee "$out/ours.jsonl"

gloo=null
if "$python" -c "import torch.distributed as d; assert d.is_gloo_available()" 2>/dev/null; then
  port=$("$python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  "${mpiexec[@]}" "$python" "$root/bench/allreduce/torch_gloo_allreduce.py" --port "$port" \
    | tee "$out/gloo.jsonl"
else
  echo "run.sh: $python has no torch with gloo (apt-get install python3-torch); vs_torch_gloo is null" >&2
fi

"$python" - "$out/ours.jsonl" "$out/gloo.jsonl" <<'PY'
import json, sys
ours = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
summary = dict(ours[-1])
try:
    gloo = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
except FileNotFoundError:
    gloo = []
at_4m = {r["size_bytes"]: r["time_us"] for r in gloo}.get(4 << 20)
ours_4m = summary.get("time_us_at_4MiB")
summary["vs_torch_gloo_at_4MiB"] = (round(ours_4m / at_4m, 4)
                                    if at_4m and ours_4m is not None else None)
if at_4m:
    summary["torch_gloo_time_us_at_4MiB"] = at_4m
print(json.dumps(summary))
PY
