#!/usr/bin/env bash
# fashion_mnist_cuda with every GPU hidden (CUDA_VISIBLE_DEVICES="") must
# stop before the sweep starts with a message that names the cause and
# exit status 2: no crash, no out_dir, no store. Runs on any machine, with
# or without a GPU (label unit).
#
#   fmnist_cuda_no_gpu_test.sh TRAINER SWEEP.yaml
set -euo pipefail
trainer=$1
sweep=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

set +e
output=$(CUDA_VISIBLE_DEVICES="" "$trainer" --sweep "$sweep" --out-dir "$work/runs" 2>&1)
rc=$?
set -e
echo "$output"
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
((rc == 2)) || fail "exit status $rc, expected 2"
grep -q "^fashion_mnist_cuda: no CUDA device visible (.*); this trainer needs one GPU per rank" \
  <<<"$output" || fail "not the trainer's no-GPU message"
if [[ -e $work/runs ]]; then fail "the sweep started: $work/runs exists"; fi
echo "OK: refused with exit status 2"
