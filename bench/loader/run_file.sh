#!/usr/bin/env bash
# bench/loader, file:// part: builds loader_file_bench and runs it. JSON
# lines on stdout, the last one the summary; build output on stderr.
#
#   bench/loader/run_file.sh
#   XPSCALE_BUILD_DIR=/tmp/b bench/loader/run_file.sh -- --mib 128
#
# Arguments after -- go to the binary: --mib (1024, the file_vs_cat data;
# smaller runs are too short to time on a shared machine),
# --small (200000 1-KiB samples), --repeat (5, medians), --dir (a work dir
# under $TMPDIR, removed at the end), --fmnist (the IDX directory),
# --read-kib (4096, bytes per ranged read), --threads (0: automatic).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
build=${XPSCALE_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${XPSCALE_BUILD_TYPE:-RelWithDebInfo}" \
    -DXPSCALE_CUDA="${XPSCALE_CUDA:-AUTO}" -DXPSCALE_WERROR="${XPSCALE_WERROR:-ON}" >&2
fi
cmake --build "$build" -j "${XPSCALE_JOBS:-$(nproc)}" --target loader_file_bench >&2
[ "${1:-}" = "--" ] && shift
exec "$build/bench/loader/loader_file_bench" "$@"
