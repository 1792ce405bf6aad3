#!/usr/bin/env bash
# bench/loader, all parts: run_file.sh (file:// loader against cat,
# small samples, the Fashion-MNIST trainer's stall fraction), run_s3.sh
# (the S3 Source against curl and boto3, the loader over S3 against the
# Source alone), then run_az.sh (the Azure Source against curl with a
# SAS URL). Prints every JSON line of each, then one summary merging
# their summaries:
#   {"bench":"loader","file_vs_cat":..,"small_samples_per_s":..,"stall_fraction":..,
#    "s3_vs_curl":..,"s3_vs_boto3":..,"s3_loader_samples_per_s":..,"s3_loader_vs_source":..,
#    "az_vs_curl":..}
#
#   bench/loader/run.sh
#   XPSCALE_BUILD_DIR=/tmp/b bench/loader/run.sh -- --mib 256
#
# Arguments after -- go to run_file.sh's binary; the S3 and Azure parts
# take their knobs from the environment (see run_s3.sh, run_az.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/xpscale-loader-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$here/run_file.sh" "$@" | tee "$work/file.jsonl"
"$here/run_s3.sh" | tee "$work/s3.jsonl"
"$here/run_az.sh" | tee "$work/az.jsonl"

/usr/bin/python3 - "$work/file.jsonl" "$work/s3.jsonl" "$work/az.jsonl" <<'PY'
import json, sys
def summary(path):
    lines = [l for l in open(path).read().splitlines() if l.strip()]
    if not lines:
        sys.exit(f"run.sh: {path} holds no summary line")
    return json.loads(lines[-1])
f, s, a = summary(sys.argv[1]), summary(sys.argv[2]), summary(sys.argv[3])
out = {"bench": "loader"}
for key in ("file_vs_cat", "small_samples_per_s", "stall_fraction"):
    out[key] = f[key]
for key in ("s3_vs_curl", "s3_vs_boto3", "s3_loader_samples_per_s", "s3_loader_vs_source"):
    out[key] = s[key]
out["az_vs_curl"] = a["az_vs_curl"]
print(json.dumps(out))
PY
