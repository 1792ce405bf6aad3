#!/usr/bin/env bash
# bench/pyloader (issue 14): xpscale.data against the C++ loader, a
# boto3 + tarfile reader and itself with DataLoader workers, over file://
# and s3rver on loopback (see pyloader_bench.py). JSON lines on stdout, the
# last one the summary:
#   {"bench":"pyloader","py_vs_cpp":a,"small_samples_per_s":a2,"py_vs_baseline":b,
#    "workers2_vs_0":c,"stall_fraction":d}
#
#   bench/pyloader/run.sh
#   PYLOADER_ROUNDS=5 XPSCALE_BUILD_DIR=/tmp/b bench/pyloader/run.sh
#
# Knobs: PYLOADER_ROUNDS (3), PYLOADER_BIG_MIB (256), PYLOADER_SMALL
# (200000 samples of 1 KiB), PYLOADER_PNG (6000). Needs scripts/setup's
# packages (python3-torch, python3-boto3, python3-pil, dataset-fashion-mnist).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
py=/usr/bin/python3
build=${XPSCALE_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${XPSCALE_BUILD_TYPE:-RelWithDebInfo}" \
    -DXPSCALE_CUDA="${XPSCALE_CUDA:-AUTO}" -DXPSCALE_WERROR="${XPSCALE_WERROR:-ON}" >&2
fi
cmake --build "$build" -j "${XPSCALE_JOBS:-$(nproc)}" --target xpscale xpscale_python >&2
build=$(cd "$build" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/xpscale-pyloader.XXXXXX")
server() { "$py" tests/integration/s3/s3_server.py "$@" --state "$work/s3"; }
trap 'server stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
endpoint=$(server start --bucket bench)
# s3rver's account; it checks no signatures. No profile files get in the way.
export AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
export AWS_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3
export XPSCALE_BIN=$build/launcher/xpscale PYTHONPATH=$build/python
"$py" bench/pyloader/pyloader_bench.py "$@"
