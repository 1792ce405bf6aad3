#!/usr/bin/env python3
"""How long the report page takes to draw a big sweep in headless Chromium.

Builds a synthetic sweep of 10,000 trials x 100 steps (make_page.py; curves
downsampled as report.h does: 200,000 points in all, so 20 a curve, or
--no-budget for --points-per-curve each), loads it from file:// and prints
JSON. render_s: the time from navigation start until the page sets
window.__xpscaleReady (every chart drawn), as the page measured it, the
median of --runs first opens in a browser that has already shown another
report (each run opens a copy under a new name: V8 reuses the compiled
scripts of a page it has seen, which a first open does not get);
cold_render_s: the first open in a freshly started browser. The timed
browsers run without console logging (DevTools' console capture slows the
page by a third); one more load with it counts console errors (exit 1 if
any). main_thread_s: how long the renderer's main thread was busy in those
loads (DevTools' TaskDuration; a machine busy with other work stretches
render_s, much less this). load_avg: the 1-minute load average before.

    /usr/bin/python3 tests/report/measure_render.py [--trials N] [--steps S] [--page report.html]
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_page  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

CHROMEDRIVER = "/usr/bin/chromedriver"


def browser(logging=False):
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        opts.add_argument(a)
    if logging:
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def load(driver, path, timeout=120.0):
    """Seconds from navigation start to window.__xpscaleReady, as the page
    measured it (performance.now() when it set the flag), the seconds the
    renderer's main thread was busy until then, and the page's marks."""
    driver.execute_cdp_cmd("Performance.enable", {"timeDomain": "threadTicks"})
    before = busy_s(driver)
    driver.get("file://" + os.path.abspath(path))
    deadline = time.time() + timeout
    while not driver.execute_script("return window.__xpscaleReady === true"):
        if time.time() > deadline:
            raise TimeoutError("the page never set window.__xpscaleReady")
        time.sleep(0.02)
    after = busy_s(driver)
    # A navigation that moved to a new renderer process starts its count at 0.
    busy = after - before if after >= before else after
    ms = driver.execute_script("return window.__xpscaleReadyMs")
    marks = driver.execute_script(
        "return performance.getEntriesByType('mark').map(m => [m.name, Math.round(m.startTime)])")
    return ms / 1000.0, busy, dict(marks)


def busy_s(driver):
    """The renderer main thread's busy time so far (DevTools' TaskDuration)."""
    metrics = driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--points-per-curve", type=int, default=100)
    ap.add_argument("--no-budget", action="store_true", help="keep --points-per-curve points a curve")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--page", help="measure this page instead of a synthetic one")
    ap.add_argument("--marks", action="store_true", help="also print the last run's performance marks (ms)")
    args = ap.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="xpscale-measure-")
    try:
        small = os.path.join(tmp, "small.html")
        with open(small, "w", encoding="utf-8") as f:
            f.write(make_page.fill_template(make_page.synthetic(40, 20, seed=3)))
        info = {}
        page = os.path.join(tmp, "big.html")
        if args.page:
            shutil.copyfile(args.page, page)
        else:
            data = make_page.synthetic(args.trials, args.steps, per_curve_option=args.points_per_curve,
                                       budget=not args.no_budget, long_param=False)
            with open(page, "w", encoding="utf-8") as f:
                f.write(make_page.fill_template(data))
            info = {"trials": args.trials, "steps": args.steps, "points_per_curve": data["points_per_curve"],
                    "curve_points": sum(len(c) for c in data["curves"].values())}
        copies = []
        for i in range(args.runs + 1):
            copies.append(os.path.join(tmp, "big-%d.html" % i))
            shutil.copyfile(page, copies[-1])
        load_avg = os.getloadavg()[0]

        driver = browser()
        try:
            cold, cold_busy, _ = load(driver, copies[0])
        finally:
            driver.quit()
        driver = browser()
        runs, busy, marks = [], [], {}
        try:
            load(driver, small)
            for path in copies[1:]:
                s, b, marks = load(driver, path)
                runs.append(s)
                busy.append(b)
        finally:
            driver.quit()
        driver = browser(logging=True)
        try:
            load(driver, page)
            errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        finally:
            driver.quit()
        out = {"render_s": round(statistics.median(runs), 3), "bytes": os.path.getsize(page),
               "runs_s": [round(r, 3) for r in runs], "main_thread_s": round(statistics.median(busy), 3),
               "cold_render_s": round(cold, 3), "cold_main_thread_s": round(cold_busy, 3), **info,
               "load_avg": round(load_avg, 2), "console_errors": len(errors)}
        if args.marks:
            out["marks_ms"] = marks
        print(json.dumps(out))
        for e in errors[:5]:
            print(e, file=sys.stderr)
        return 1 if errors else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
