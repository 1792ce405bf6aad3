#!/usr/bin/env bash
# The report page of a real sweep, in the browser: runs a small copy of
# examples/sweeps/quadratic_asha.yaml on 2 ranks (external Python trials,
# ASHA stops), writes its page with `xpscale report --html` and runs the
# page tests (test_report_page.py) on that page.
#   real_sweep_page.sh XPSCALE_BIN WORK_DIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
xpscale=$1
work=$(mktemp -d "$2/real-sweep.XXXXXX")
trap 'rm -rf "$work"' EXIT
sed -e 's/^trials: 60$/trials: 24/' -e "s|^program: examples/|program: $root/examples/|" \
  "$root/examples/sweeps/quadratic_asha.yaml" > "$work/sweep.yaml"
grep -q '^trials: 24$' "$work/sweep.yaml"
"$xpscale" launch -n 2 "$work/sweep.yaml" --out-dir "$work/out" --quiet
"$xpscale" report "$work/out" --html "$work/report.html"
cd "$here"
XPSCALE_REPORT_HTML="$work/report.html" /usr/bin/python3 -m unittest -v test_report_page.ReportPageTest
