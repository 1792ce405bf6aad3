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

# NCCL needs one GPU per rank of a communicator: with several GPUs, run the
# NCCL tests and the benchmark with one rank per GPU too.
gpus=$(XPSCALE_REQUIRE_GPU=0 "$build/tests/gpu/gpu_selftest_test" --gtest_filter=Gpu.Selftest* 2>/dev/null \
  | sed -n 's/^\([0-9][0-9]*\) CUDA device(s)$/\1/p' | head -1)
gpus=${gpus:-1}
mpi=(mpiexec --oversubscribe)
[[ $(id -u) == 0 ]] && mpi+=(--allow-run-as-root)
if (( gpus > 1 )); then
  echo "== NCCL tests on $gpus ranks"
  XPSCALE_REQUIRE_GPU=1 "${mpi[@]}" -n "$gpus" "$build/tests/gpu/nccl_communicator_test"
fi
echo "== NCCL allreduce benchmark ($gpus rank(s))"
"${mpi[@]}" -n "$gpus" "$build/bench/allreduce/allreduce_bench" --backend nccl
if (( gpus >= 4 )); then
  echo "== NCCL allreduce benchmark, 2 trial groups reducing at once"
  "${mpi[@]}" -n "$gpus" "$build/bench/allreduce/allreduce_bench" --backend nccl --groups 2
fi
