#!/usr/bin/env python3
"""How long a report page takes to become interactive in headless Chromium.

    render_time.py PAGE.html [REPEATS] [--until-load]

Loads the page from disk REPEATS times (default 3) in Debian's chromium
through chromedriver and prints one JSON object: render_s, the median over
the loads of the time from navigation start until the page marked itself
ready (window.__xpscaleReadyMs, set after every chart has drawn), with the
min and max, and the console errors seen (there must be none). --until-load times a
page that does not mark itself (the peer's plotly page, which draws while
its scripts run) until its load event has ended.
"""
import json
import pathlib
import statistics
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service


def browser():
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def main():
    args = [a for a in sys.argv[1:] if a != "--until-load"]
    until_load = "--until-load" in sys.argv
    page = pathlib.Path(args[0]).resolve()
    repeats = int(args[1]) if len(args) > 1 else 3
    mark = ("var t = performance.getEntriesByType('navigation')[0];"
            "return t && t.loadEventEnd > 0 ? t.loadEventEnd : null" if until_load
            else "return window.__xpscaleReadyMs || null")
    driver = browser()
    times, errors = [], []
    try:
        for _ in range(repeats):
            driver.get(page.as_uri())
            deadline = time.time() + 60
            ready = None
            while time.time() < deadline:
                ready = driver.execute_script(mark)
                if ready is not None:
                    break
                time.sleep(0.02)
            if ready is None:
                raise SystemExit(f"render_time: {page} never got ready in 60 s")
            times.append(ready / 1000.0)  # performance.now() counts from navigation start
            errors += [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    print(json.dumps({"render_s": round(statistics.median(times), 3),
                      "render_min_s": round(min(times), 3), "render_max_s": round(max(times), 3),
                      "loads": repeats, "console_errors": errors[:5]}))


if __name__ == "__main__":
    main()
