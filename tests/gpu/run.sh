#!/usr/bin/env bash
# Builds xpscale with CUDA and NCCL and runs the GPU tests (ctest label
# gpu) on a machine with a GPU. A missing GPU is a failure here, not a skip.
#
#   tests/gpu/run.sh                  # sm_90 (H100/H200), build dir build-gpu/
#   CMAKE_CUDA_ARCHITECTURES=80 tests/gpu/run.sh
#   XPSCALE_GPU_BUILD_DIR=/tmp/b XPSCALE_JOBS=8 tests/gpu/run.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${XPSCALE_GPU_BUILD_DIR:-$root/build-gpu}
arch=${CMAKE_CUDA_ARCHITECTURES:-90}
jobs=${XPSCALE_JOBS:-$(nproc)}

echo "== GPU"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv || true
  nvidia-smi topo -m || true
else
  echo "nvidia-smi not found"
fi
echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-<unset>}"

echo "== configure ($build, CUDA architectures $arch)"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DXPSCALE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch"
echo "== build"
cmake --build "$build" -j "$jobs"
echo "== test"
XPSCALE_REQUIRE_GPU=1 ctest --test-dir "$build" -L gpu --output-on-failure
