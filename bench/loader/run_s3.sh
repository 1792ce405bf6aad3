#!/usr/bin/env bash
# bench/loader, object-store part (issue 5, benchmark (b)): the S3 Source
# reading N objects from s3rver on loopback against `curl` GETs and boto3
# downloads of the same objects, in the same run. Rounds alternate the
# three readers; the summary uses each one's median. Prints JSON lines on
# stdout, the last one the summary; progress goes to stderr.
#
#   bench/loader/run_s3.sh
#   XPSCALE_BUILD_DIR=/tmp/b bench/loader/run_s3.sh
#
# Knobs (environment): S3_BENCH_OBJECTS (16), S3_BENCH_SIZE (bytes, 32 MiB),
# S3_BENCH_ROUNDS (5, after one warm-up round), S3_BENCH_READERS (objects
# read at once, 16). Every reader gets the same connection count: READERS
# reader threads sharing one S3 Source (its defaults: 8 MiB parts, 8 in
# flight shared among the reads), `curl --parallel-max READERS`, boto3
# with READERS threads sharing a pool of READERS connections (its
# TransferConfig defaults: 8 MiB chunks, max_concurrency 10).
#
# Then the loader over S3 (s3_loader_bench): S3_LOADER_SAMPLES (65536)
# samples of 4 KiB in 16 shards on the same s3rver, read S3_LOADER_ROUNDS
# (5) times by a one-rank ShardedLoader and by the Source alone (whole
# shards, 4 threads, like the loader's prefetcher).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

objects=${S3_BENCH_OBJECTS:-16}
size=${S3_BENCH_SIZE:-$((32 << 20))}
rounds=${S3_BENCH_ROUNDS:-5}
readers=${S3_BENCH_READERS:-16}
py=/usr/bin/python3 # Debian's, where python3-boto3 lives
here=bench/loader

"$py" -c 'import boto3' 2>/dev/null || {
  echo "run_s3.sh: boto3 is missing for $py; run scripts/setup" >&2
  exit 2
}
build=${XPSCALE_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${XPSCALE_BUILD_TYPE:-RelWithDebInfo}" \
    -DXPSCALE_CUDA="${XPSCALE_CUDA:-AUTO}" -DXPSCALE_WERROR="${XPSCALE_WERROR:-ON}" >&2
fi
cmake --build "$build" -j "${XPSCALE_JOBS:-$(nproc)}" --target s3_bench s3_loader_bench >&2
bench=$(cd "$build" && pwd)/bench/loader/s3_bench
loader_bench=$(cd "$build" && pwd)/bench/loader/s3_loader_bench

work=$(mktemp -d "${TMPDIR:-/tmp}/xpscale-s3-bench.XXXXXX")
server() { "$py" tests/integration/s3/s3_server.py "$@" --state "$work/s3"; }
trap 'server stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
endpoint=$(server start --bucket bench)

# s3rver's account; it checks no signatures. No profile files get in the way.
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
common=(--endpoint "$endpoint" --bucket bench --prefix data/)

echo "run_s3.sh: writing $objects objects of $size bytes to $endpoint" >&2
"$bench" "${common[@]}" --put "$objects" --size "$size"
for ((i = 0; i < objects; ++i)); do
  printf 'url = "%s/bench/data/obj-%06d.bin"\noutput = "/dev/null"\n' "$endpoint" "$i"
done >"$work/curl.cfg"

# One round: each reader reads every object once; lines go to $1 (the
# warm-up round, which fills s3rver's page cache and JIT, to /dev/null).
round() {
  "$bench" "${common[@]}" --threads "$readers" | tee -a "$1"
  # curl's wall and CPU time from GNU time's -f format, on stderr.
  /usr/bin/time -f '%e %U %S' -o "$work/curl.time" \
    curl -sS --fail --parallel --parallel-max "$readers" -K "$work/curl.cfg"
  "$py" -c 'import json, sys; n, b, p = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]); e, u, s = map(float, open(sys.argv[4]).read().split()[-3:]); print(json.dumps({"bench": "loader", "measure": "curl", "objects": n, "bytes": n * b, "seconds": e, "mib_per_s": round(n * b / 1048576 / e, 2), "cpu_s": round(u + s, 4), "parallel": p}))' \
    "$objects" "$size" "$readers" "$work/curl.time" | tee -a "$1"
  "$py" $here/boto3_peer.py "${common[@]}" --threads "$readers" | tee -a "$1"
}
echo "run_s3.sh: warm-up round (not counted)" >&2
round /dev/null >/dev/null
for ((r = 1; r <= rounds; ++r)); do
  echo "run_s3.sh: round $r of $rounds" >&2
  round "$work/lines.jsonl"
done

# The loader over S3; it reads the endpoint from AWS_ENDPOINT_URL, as a trial does.
echo "run_s3.sh: the loader over S3 against the Source alone" >&2
AWS_ENDPOINT_URL=$endpoint "$loader_bench" --url s3://bench/shards \
  --write "${S3_LOADER_SAMPLES:-65536}" --sample-bytes 4096 --shards 16
AWS_ENDPOINT_URL=$endpoint "$loader_bench" --url s3://bench/shards \
  --rounds "${S3_LOADER_ROUNDS:-5}" | tee "$work/loader.jsonl"

"$py" - "$work/lines.jsonl" "$((objects * size))" "$work/loader.jsonl" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
loader = json.loads(open(sys.argv[3]).read().splitlines()[-1])
expected = int(sys.argv[2])
rate, cpu = {}, {}
for m in ("xpscale_s3", "curl", "boto3"):
    runs = [l for l in lines if l["measure"] == m]
    bad = [l for l in runs if l["bytes"] != expected]
    if bad:
        sys.exit(f"run_s3.sh: {m} read {bad[0]['bytes']} bytes, not {expected}")
    rate[m] = statistics.median(l["mib_per_s"] for l in runs)
    cpu[m] = statistics.median(l["cpu_s"] for l in runs)
sums = {l["checksum"] for l in lines if "checksum" in l}
if len(sums) != 1:
    sys.exit(f"run_s3.sh: readers disagree on the bytes (checksums {sorted(sums)})")
print(json.dumps({"bench": "loader", "part": "s3", "objects": len(lines) and lines[0]["objects"],
                  "bytes": expected, "xpscale_mib_per_s": rate["xpscale_s3"],
                  "curl_mib_per_s": rate["curl"], "boto3_mib_per_s": rate["boto3"],
                  "xpscale_cpu_s": cpu["xpscale_s3"], "curl_cpu_s": cpu["curl"],
                  "boto3_cpu_s": cpu["boto3"],
                  "s3_vs_curl": round(rate["xpscale_s3"] / rate["curl"], 3),
                  "s3_vs_boto3": round(rate["xpscale_s3"] / rate["boto3"], 3),
                  "s3_loader_samples_per_s": loader["s3_loader_samples_per_s"],
                  "s3_loader_mib_per_s": loader["loader_mib_per_s"],
                  "s3_source_mib_per_s": loader["source_mib_per_s"],
                  "s3_loader_vs_source": loader["loader_vs_source"]}))
PY
