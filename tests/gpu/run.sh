#!/usr/bin/env bash
# Builds xpscale with CUDA and NCCL on a machine with a GPU, runs the GPU
# tests (ctest label gpu), a short sweep of the CUDA example trainer (and
# one trial of the CPU trainer to compare epoch times), and the allreduce
# benchmark with the NCCL backend, and prints the figures. A missing GPU is
# a failure here, not a skip.
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
  echo "== CUDA trainer against the CPU trainer on $gpus ranks (NCCL, bucketer)"
  XPSCALE_REQUIRE_GPU=1 "${mpi[@]}" -n "$gpus" "$build/tests/gpu/fmnist_cuda_trainer_test"
fi

# The CUDA trainer on the real data set, one trial per GPU at a time; the
# CPU trainer runs one trial of the same sweep for the epoch-time ratio.
data=${XPSCALE_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
if [[ -e $data/train-images-idx3-ubyte || -e $data/train-images-idx3-ubyte.gz ]]; then
  echo "== CUDA trainer: 4 trials of examples/sweeps/fmnist_mlp_cuda.yaml on $gpus rank(s)"
  XPSCALE_FMNIST_DIR=$data "${mpi[@]}" -n "$gpus" "$build/examples/fashion_mnist/fashion_mnist_cuda" \
    --sweep "$root/examples/sweeps/fmnist_mlp_cuda.yaml" --out-dir "$runs/cuda" --trials 4 \
    --progress-interval 30
  "$build/launcher/xpscale" report "$runs/cuda"
  echo "== CPU trainer: 1 trial of the same sweep, for comparison"
  XPSCALE_FMNIST_DIR=$data "$build/examples/fashion_mnist/fashion_mnist" --backend mpi \
    --sweep "$root/examples/sweeps/fmnist_mlp_cuda.yaml" --out-dir "$runs/cpu" --trials 1 \
    --progress-interval 30
  "$build/launcher/xpscale" report "$runs/cpu"
  "$build/launcher/xpscale" export "$runs/cuda" --metrics >"$runs/cuda.jsonl"
  "$build/launcher/xpscale" export "$runs/cpu" --metrics >"$runs/cpu.jsonl"
  /usr/bin/python3 - "$runs/cuda.jsonl" "$runs/cpu.jsonl" <<'PY' || true
import json, statistics, sys
def epoch_times(path):
    rows = [json.loads(line) for line in open(path)]
    return [m["values"]["epoch_s"] for r in rows if r.get("kind") == "trial"
            for m in r.get("metrics", []) if "epoch_s" in m["values"]]
gpu, cpu = epoch_times(sys.argv[1]), epoch_times(sys.argv[2])
if gpu and cpu:
    print(json.dumps({"bench": "fmnist_cuda_trainer", "median_epoch_s_cuda": statistics.median(gpu),
                      "median_epoch_s_cpu": statistics.median(cpu),
                      "cpu_over_cuda": statistics.median(cpu) / statistics.median(gpu)}))
else:
    print("epoch_s not found in the exports; see the report tables above")
PY
else
  echo "== CUDA trainer: no Fashion-MNIST in $data (set XPSCALE_FMNIST_DIR); the synthetic sweep" \
       "of ctest's fmnist_cuda_sweep_test ran above"
fi

echo "== NCCL allreduce benchmark ($gpus rank(s))"
"${mpi[@]}" -n "$gpus" "$build/bench/allreduce/allreduce_bench" --backend nccl
if (( gpus >= 4 )); then
  echo "== NCCL allreduce benchmark, 2 trial groups reducing at once"
  "${mpi[@]}" -n "$gpus" "$build/bench/allreduce/allreduce_bench" --backend nccl --groups 2
fi
