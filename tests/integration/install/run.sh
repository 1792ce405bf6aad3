#!/usr/bin/env bash
# The install tree is usable by an outside project: `cmake --install` the
# build into a temporary prefix, configure and build tests/integration/
# install/consumer against it (find_package(xpscale CONFIG REQUIRED),
# xpscale::xpscale, <xpscale/xpscale.h>), run its sweep on 2 ranks, and read
# the result with the installed `xpscale export`.
#
#   run.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(cd "$1" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xpscale-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log"
for f in bin/xpscale include/xpscale/xpscale.h include/xpscale/store/store.h \
         include/xpscale/trial/trial.h lib/cmake/xpscale/xpscaleConfig.cmake; do
  [ -e "$tmp/prefix/$f" ] || { echo "install: $f is missing from the install tree"; exit 1; }
done
# Private headers stay private.
if [ -e "$tmp/prefix/include/yaml_reader.h" ] || find "$tmp/prefix/include" -name 'group_worker.h' | grep -q .; then
  echo "install: a private header was installed"; exit 1
fi

# The wandb shim, where the installed command looks for it (a build with
# the Python package): importable from there alone (-S: no .pth to the build).
if [ -d "$build/python/xpscale/_wandb" ]; then
  shim="$tmp/prefix/share/xpscale/python/xpscale/_wandb"
  [ -e "$shim/wandb/__init__.py" ] || { echo "install: the wandb shim is missing"; exit 1; }
  PYTHONPATH="$shim" XPSCALE_WANDB=shim /usr/bin/python3 -S -c '
import sys, wandb
wandb.init(config={"a": 1}); wandb.log({"x": wandb.config.a}); wandb.finish()
assert sys.modules["xpscale"].__file__.startswith(sys.argv[1]), sys.modules["xpscale"].__file__
' "$tmp/prefix/" 2>"$tmp/shim.err" || { cat "$tmp/shim.err"; exit 1; }
  grep -q '"x":1' "$tmp/shim.err" || { echo "install: the shim did not report"; exit 1; }
fi

cmake -S "$here/consumer" -B "$tmp/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/configure.log" || { cat "$tmp/configure.log"; exit 1; }
cmake --build "$tmp/consumer" >"$tmp/build.log" || { cat "$tmp/build.log"; exit 1; }

mpiexec --allow-run-as-root --oversubscribe -n 2 "$tmp/consumer/consumer" \
  --sweep "$here/sweep.yaml" --out-dir "$tmp/out" --quiet
"$tmp/prefix/bin/xpscale" export "$tmp/out" >"$tmp/out.jsonl"
python3 - "$tmp/out.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
trials = [r for r in rows if r["kind"] == "trial"]
assert len(trials) == 2, f"expected 2 trials, got {len(trials)}"
for t in trials:
    assert t["status"] == "completed", t
    assert t["last_step"] == 4, t
    # (x-3)^2 after 5 steps of x -= lr*2*(x-3) from 0: 9 * (1-2lr)^10.
    lr = t["params"]["lr"]
    want = 9 * (1 - 2 * lr) ** 10
    assert abs(t["last_metrics"]["loss"] - want) < 1e-9 * max(1, want), (t, want)
print("install: the consumer ran", len(trials), "trials against the install tree")
PY
"$tmp/prefix/bin/xpscale" --version
