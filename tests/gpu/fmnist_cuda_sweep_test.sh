#!/usr/bin/env bash
# A 2-trial sweep of the CUDA trainer on a small synthetic Fashion-MNIST
# look-alike that an MLP learns in an epoch or two (class c is a bright
# band at rows 2c..2c+2 over noise). Checks that both trials complete and
# learn it (test_accuracy >= 0.9).
#
# Without a GPU the trainer must refuse with CUDA's reason and exit status
# 2; the test then checks that and skips (exit 77), unless
# XPSCALE_REQUIRE_GPU=1 (tests/gpu/run.sh) makes a missing GPU a failure.
#
#   fmnist_cuda_sweep_test.sh TRAINER XPSCALE [LAUNCHER...]
set -euo pipefail
trainer=$1
xpscale=$2
shift 2
launcher=("$@")
python=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# 6,000 training images (the trainer holds out the last 5,000 for
# validation) and 1,000 test images, as plain IDX files.
"$python" - "$work/data" <<'PY'
import os, random, struct, sys
out = sys.argv[1]
os.makedirs(out)
rng = random.Random(5)
def write(prefix, n):
    labels = bytes(rng.randrange(10) for _ in range(n))
    pixels = bytearray(rng.randbytes(n * 784))
    for i in range(n):
        base = i * 784
        for p in range(784):
            pixels[base + p] >>= 3              # dim noise, 0..31
        row = 2 * labels[i] + 4
        for p in range(row * 28, (row + 3) * 28):
            pixels[base + p] = 200 + (pixels[base + p] & 31)
    with open(os.path.join(out, prefix + "-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(pixels))
    with open(os.path.join(out, prefix + "-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels)
write("train", 6000)
write("t10k", 1000)
PY

cat >"$work/sweep.yaml" <<YAML
name: fmnist-cuda-sweep-test
method: grid
metric: {name: test_accuracy, goal: maximize}
parameters:
  lr: {values: [0.02, 0.05]}
  hidden: {value: 32}
  batch_size: {value: 50}
  epochs: {value: 2}
  data_dir: {value: "$work/data"}
resources: {ranks_per_trial: 1, time_limit: 5m}
out_dir: "$work/runs"
YAML

set +e
output=$("${launcher[@]}" "$trainer" --sweep "$work/sweep.yaml" --quiet 2>&1)
rc=$?
set -e
echo "$output"

if grep -q "no CUDA device visible" <<<"$output"; then
  # The refusal must be the trainer's clear message, not a crash.
  grep -q "fashion_mnist_cuda: no CUDA device visible (.*); this trainer needs one GPU per rank" \
    <<<"$output" || fail "the no-GPU message is not the trainer's"
  # mpiexec reports a rank's failure with a status of its own.
  if ((${#launcher[@]} == 0 && rc != 2)); then fail "exit status $rc without a GPU, expected 2"; fi
  if ((rc == 0)); then fail "exit status 0 without a GPU"; fi
  if [[ -e $work/runs ]]; then fail "the sweep started (out_dir exists) without a GPU"; fi
  if [[ ${XPSCALE_REQUIRE_GPU:-0} == 1 ]]; then
    fail "XPSCALE_REQUIRE_GPU=1 but no CUDA device visible"
  fi
  echo "SKIP: no CUDA device visible; checked that the trainer refuses with exit status $rc"
  exit 77
fi
[[ $rc -eq 0 ]] || fail "the sweep exited with status $rc"

"$xpscale" report "$work/runs" --format json >"$work/report.json"
"$python" - "$work/report.json" <<'PY'
import json, sys
trials = json.load(open(sys.argv[1]))
print(json.dumps(trials, indent=1))
assert len(trials) == 2, f"{len(trials)} trials, expected 2"
for t in trials:
    assert t["status"] == "completed", f"trial {t['id']}: {t['status']} ({t['reason']})"
    assert t["last_step"] == 2, f"trial {t['id']}: last step {t['last_step']}, expected 2"
    assert t["best_value"] >= 0.9, f"trial {t['id']}: test_accuracy {t['best_value']} < 0.9"
print("OK: 2 trials completed, test_accuracy", [t["best_value"] for t in trials])
PY
