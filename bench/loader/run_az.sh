#!/usr/bin/env bash
# bench/loader, Azure Blob part (issue 18): the Azure Source reading N
# blobs from Azurite on loopback against `curl` GETs of the same blobs
# through SAS URLs, in the same run. Rounds alternate the two readers; the
# summary uses each one's median and the spread. Prints JSON lines on
# stdout, the last one the summary (az_vs_curl); progress goes to stderr.
#
#   bench/loader/run_az.sh
#   XPSCALE_BUILD_DIR=/tmp/b bench/loader/run_az.sh
#
# Knobs (environment): AZ_BENCH_OBJECTS (16), AZ_BENCH_SIZE (bytes,
# 32 MiB), AZ_BENCH_ROUNDS (5, after one warm-up round), AZ_BENCH_READERS
# (blobs read at once, 16). Both readers get the same connection count:
# READERS reader threads sharing one Azure Source (its defaults: 8 MiB
# ranged Get Blobs, 8 in flight shared among the reads) and
# `curl --parallel-max READERS`. Both use the same account SAS (read,
# write, list, create: the Source writes the blobs first), as a user
# handed a SAS URL would; the Source takes it from
# AZURE_STORAGE_CONNECTION_STRING as a trial does.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

objects=${AZ_BENCH_OBJECTS:-16}
size=${AZ_BENCH_SIZE:-$((32 << 20))}
rounds=${AZ_BENCH_ROUNDS:-5}
readers=${AZ_BENCH_READERS:-16}
py=/usr/bin/python3
azure=tests/integration/azure

command -v node >/dev/null || {
  echo "run_az.sh: node is missing; run scripts/setup" >&2
  exit 2
}
build=${XPSCALE_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${XPSCALE_BUILD_TYPE:-RelWithDebInfo}" \
    -DXPSCALE_CUDA="${XPSCALE_CUDA:-AUTO}" -DXPSCALE_WERROR="${XPSCALE_WERROR:-ON}" >&2
fi
cmake --build "$build" -j "${XPSCALE_JOBS:-$(nproc)}" --target s3_bench >&2
bench=$(cd "$build" && pwd)/bench/loader/s3_bench

work=$(mktemp -d "${TMPDIR:-/tmp}/xpscale-az-bench.XXXXXX")
server() { "$py" $azure/azurite_server.py "$@" --state "$work/az"; }
trap 'server stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
endpoint=$(server start --container bench)
account=$(cat "$work/az/account")

# An account SAS made by @azure/storage-blob, valid for an hour.
expires=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
printf '[{"op":"sas","account":"%s","key":"%s","expires":"%s","version":"2025-11-05"}]' \
  "$account" "$(cat "$work/az/key")" "$expires" >"$work/sas.json"
sas=$(cd $azure && node azure_sdk_signer.js <"$work/sas.json" |
  "$py" -c 'import json, sys; print(json.load(sys.stdin)[0]["sas"])')
rm "$work/sas.json"
unset AZURE_STORAGE_ACCOUNT AZURE_STORAGE_KEY AZURE_STORAGE_SAS_TOKEN
export AZURE_STORAGE_CONNECTION_STRING="BlobEndpoint=$endpoint;SharedAccessSignature=$sas"
common=(--store az --bucket bench --prefix data/)

echo "run_az.sh: writing $objects blobs of $size bytes to $endpoint" >&2
"$bench" "${common[@]}" --put "$objects" --size "$size"
for ((i = 0; i < objects; ++i)); do
  printf 'url = "%s/bench/data/obj-%06d.bin?%s"\noutput = "/dev/null"\n' "$endpoint" "$i" "$sas"
done >"$work/curl.cfg"

# One round: each reader reads every blob once, which one goes first
# alternating with the round ($2); lines go to $1 (the warm-up round, which
# fills the page cache and Azurite's JIT, to /dev/null).
xpscale_reads() { "$bench" "${common[@]}" --threads "$readers" | tee -a "$1"; }
curl_reads() {
  # curl's wall and CPU time from GNU time's -f format; the bytes it got
  # from -w, one line per transfer.
  /usr/bin/time -f '%e %U %S' -o "$work/curl.time" \
    curl -sS --no-progress-meter --fail --parallel --parallel-max "$readers" \
    -w '%{size_download}\n' -K "$work/curl.cfg" >"$work/curl.sizes"
  "$py" -c 'import json, sys; n, p = int(sys.argv[1]), int(sys.argv[2]); got = sum(int(l) for l in open(sys.argv[4]) if l.strip()); e, u, s = map(float, open(sys.argv[3]).read().split()[-3:]); print(json.dumps({"bench": "loader", "measure": "curl", "objects": n, "bytes": got, "seconds": e, "mib_per_s": round(got / 1048576 / e, 2), "cpu_s": round(u + s, 4), "parallel": p}))' \
    "$objects" "$readers" "$work/curl.time" "$work/curl.sizes" | tee -a "$1"
}
round() {
  if (($2 % 2)); then
    curl_reads "$1"
    xpscale_reads "$1"
  else
    xpscale_reads "$1"
    curl_reads "$1"
  fi
}
echo "run_az.sh: warm-up round (not counted)" >&2
round /dev/null 0 >/dev/null
for ((r = 1; r <= rounds; ++r)); do
  echo "run_az.sh: round $r of $rounds" >&2
  round "$work/lines.jsonl" "$r"
done

"$py" - "$work/lines.jsonl" "$((objects * size))" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
expected = int(sys.argv[2])
rate, cpu, spread = {}, {}, {}
for m in ("xpscale_az", "curl"):
    runs = [l for l in lines if l["measure"] == m]
    bad = [l for l in runs if l["bytes"] != expected]
    if bad:
        sys.exit(f"run_az.sh: {m} read {bad[0]['bytes']} bytes, not {expected}")
    rates = [l["mib_per_s"] for l in runs]
    rate[m] = statistics.median(rates)
    spread[m] = [min(rates), max(rates)]
    cpu[m] = statistics.median(l["cpu_s"] for l in runs)
# Round by round, the two readers ran back to back (in turns, first):
# their ratio cancels most of the machine's drift.
xp = [l["mib_per_s"] for l in lines if l["measure"] == "xpscale_az"]
cu = [l["mib_per_s"] for l in lines if l["measure"] == "curl"]
ratios = [round(a / b, 3) for a, b in zip(xp, cu)]
print(json.dumps({"bench": "loader", "part": "azure", "objects": lines[0]["objects"],
                  "bytes": expected, "xpscale_mib_per_s": rate["xpscale_az"],
                  "curl_mib_per_s": rate["curl"], "xpscale_spread": spread["xpscale_az"],
                  "curl_spread": spread["curl"], "xpscale_cpu_s": cpu["xpscale_az"],
                  "curl_cpu_s": cpu["curl"],
                  "az_vs_curl": round(rate["xpscale_az"] / rate["curl"], 3),
                  "az_vs_curl_rounds": ratios}))
PY
