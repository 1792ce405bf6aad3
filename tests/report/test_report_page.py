"""The report page (report/web) in headless Chromium: every view draws what
its data holds, the leaderboard sorts, filters and follows the parallel
coordinates' brush, untrusted strings stay text, empty sweeps say so, and
nothing logs a console error.

The page: $XPSCALE_REPORT_HTML when set (a page written by `xpscale report
--html`), else one built by make_page.py --synthetic. The expectations are
computed from the data inside the page, so either works; the checks of the
malicious strings run when the data holds them (the synthetic data does).
The pages of an empty sweep, of one where every trial failed and of one
with no metric are always synthetic. A screenshot of each view goes to
$XPSCALE_ARTIFACTS (default /tmp/xpscale-report-artifacts).

    /usr/bin/python3 -m unittest tests/report/test_report_page.py -v
"""
import json
import math
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_page  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMEDRIVER = "/usr/bin/chromedriver"
VIEWS = ("summary", "leaderboard", "curves", "history", "parallel", "importance", "timeline")
PAGE_SIZE = 100
MAX_PARALLEL_LINES = 2000  # report.js
CURVE_POINT_BUDGET = 200000  # report.js, as report.h's kCurvePointBudget


def finite(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def clean_curve(curve):
    return [p for p in curve or [] if isinstance(p, list) and len(p) >= 2 and finite(p[0]) and finite(p[1])]


def scored(data):
    """The trials the parallel coordinates and the history count: a best
    value, and not failed."""
    return [t for t in data["trials"] if finite(t.get("best")) and t.get("status") != "failed"]


def holds(value, s):
    """Whether s is a string anywhere in value (keys included)."""
    if isinstance(value, str):
        return value == s
    if isinstance(value, dict):
        return any(k == s or holds(v, s) for k, v in value.items())
    if isinstance(value, list):
        return any(holds(v, s) for v in value)
    return False


def js_string(v):
    """A parameter value as String(v) writes it, for the letters-only filter
    terms used here (numbers never hold them)."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


class ReportPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="xpscale-report-test-")
        cls.artifacts = os.environ.get("XPSCALE_ARTIFACTS") or "/tmp/xpscale-report-artifacts"
        os.makedirs(cls.artifacts, exist_ok=True)
        cls.page = os.environ.get("XPSCALE_REPORT_HTML")
        if cls.page:
            cls.page = os.path.abspath(cls.page)
        else:
            cls.page = cls.build("main", make_page.synthetic(60, 30))
        cls.scenarios = {name: cls.build(name, make_page.synthetic(12, 20, scenario=name))
                         for name in ("empty", "only-failed", "no-metric")}
        opts = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1200"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        cls.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def build(cls, name, data):
        path = os.path.join(cls.tmp, name + ".html")
        with open(path, "w", encoding="utf-8") as f:
            f.write(make_page.fill_template(data))
        return path

    # ---- helpers ---------------------------------------------------------

    def open(self, path=None):
        """Loads a page, waits until every chart has drawn, returns its data."""
        self.driver.get_log("browser")  # drop what an earlier page logged
        self.driver.get("file://" + (path or self.page))
        deadline = time.time() + 60
        while not self.js("return window.__xpscaleReady === true"):
            self.assertLess(time.time(), deadline, "the page never set window.__xpscaleReady")
            time.sleep(0.05)
        return self.js("return JSON.parse(document.getElementById('xpscale-data').textContent)")

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def console_errors(self):
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def assertNoConsoleErrors(self):
        self.assertEqual([], self.console_errors())

    def series(self, view):
        """[{id, type, n}] of the view's chart (n: its data items)."""
        return self.js("""
            const el = document.querySelector('#' + arguments[0] + ' .chart');
            const c = echarts.getInstanceByDom(el);
            if (!c) return null;
            return c.getOption().series.map(s => ({id: s.id, type: s.type, n: s.data ? s.data.length : 0}));
        """, view)

    def option(self, view, path):
        return self.js("""
            const c = echarts.getInstanceByDom(document.querySelector('#' + arguments[0] + ' .chart'));
            let v = c.getOption();
            for (const k of arguments[1]) v = v[k];
            return JSON.parse(JSON.stringify(Array.from(v)));
        """, view, path)

    def empty_text(self, view):
        return self.js("""
            const p = document.querySelector('#' + arguments[0] + ' > p.empty');
            return p && !p.hidden ? p.textContent : null;""", view)

    def leaderboard_ids(self):
        return self.js("return window.__xpscale.leaderboardIds()")

    def wait_for(self, fn, what, timeout=5.0):
        deadline = time.time() + timeout
        while True:
            value = fn()
            if value:
                return value
            self.assertLess(time.time(), deadline, what)
            time.sleep(0.05)

    # ---- the page --------------------------------------------------------

    def test_loads_without_console_errors_and_says_what_it_shows(self):
        data = self.open()
        self.assertNoConsoleErrors()
        for view in VIEWS:
            self.assertTrue(self.js("return !!document.getElementById(arguments[0])", view), view)
        self.assertEqual(data["sweep"]["name"], self.js("return document.getElementById('sweep-name').textContent"))
        counts = self.js("return Array.from(document.querySelectorAll('#counts li .n')).map(e => e.textContent)")
        c = data["counts"]
        self.assertEqual([str(c["completed"] + c["stopped"]), str(c["running"]), str(c["failed"]), str(c["queued"]),
                          str(c["total"])], counts)
        self.assertEqual(not data["live"], self.js("return document.getElementById('live-badge').hidden"))
        if data["best_trial"] is not None:
            self.assertIn("#%d" % data["best_trial"], self.js("return document.getElementById('best-headline').textContent"))

    def test_every_view_screenshot(self):
        for name, path in [("main", self.page)] + sorted(self.scenarios.items()):
            self.open(path)
            for view in VIEWS:
                el = self.driver.find_element(By.ID, view)
                self.js("arguments[0].scrollIntoView()", el)
                out = os.path.join(self.artifacts, "%s-%s.png" % (name, view))
                self.assertTrue(el.screenshot(out), out)
                self.assertGreater(os.path.getsize(out), 1000, out)
            self.assertNoConsoleErrors()

    def test_learning_curves_draw_every_curve_stop_and_exploit(self):
        data = self.open()
        curves = {int(k): clean_curve(v) for k, v in data["curves"].items()}
        with_curve = [t for t in data["trials"] if curves.get(t["id"])]
        if not data["sweep"]["metric"] or not with_curve:
            self.assertIsNotNone(self.empty_text("curves"))
            return
        series = self.series("curves")
        lines = [s for s in series if s["type"] == "lines"]
        self.assertEqual(len({t["status"] for t in with_curve}), len(lines))
        self.assertEqual(len(with_curve), sum(s["n"] for s in lines))
        points = self.js("""
            const c = echarts.getInstanceByDom(document.querySelector('#curves .chart'));
            let n = 0;
            c.getModel().eachSeriesByType('lines', s => { for (let i = 0; i < s.getData().count(); i++) n += s.getLineCoordsCount(i); });
            return n;""")
        # A curve of one point is drawn as two (a segment of length 0);
        # beyond the budget the page thins each curve.
        if sum(len(c) for c in data["curves"].values()) <= CURVE_POINT_BUDGET:
            self.assertEqual(sum(max(2, len(curves[t["id"]])) for t in with_curve), points)
        else:
            cap = max(10, CURVE_POINT_BUDGET // len(data["curves"]))
            self.assertLessEqual(points, len(with_curve) * cap)
        by_id = {s["id"]: s for s in series}
        self.assertEqual(sum(1 for t in with_curve if t.get("stop")), by_id["stops"]["n"])
        self.assertEqual(sum(1 for t in with_curve for e in t.get("exploits") or [] if finite(e.get("step"))),
                         by_id["exploits"]["n"])
        best = data["best_trial"]
        self.assertEqual(len(curves.get(best, [])) if best is not None else 0, by_id["best"]["n"])
        self.assertEqual(0, by_id["selected"]["n"])
        if data["trials"] and any(t.get("stop") for t in with_curve) and len(with_curve) <= 150:
            labels = self.js("""
                const c = echarts.getInstanceByDom(document.querySelector('#curves .chart'));
                const s = c.getModel().getSeriesByIndex(c.getOption().series.findIndex(x => x.id === 'stops'));
                return Array.from({length: s.getData().count()}, (_, i) => s.getFormattedLabel(i, 'normal'));""")
            rungs = ["r%d" % t["stop"]["rung"] for t in with_curve if t.get("stop") and finite(t["stop"].get("rung"))]
            self.assertEqual(sorted(rungs), sorted(l for l in labels if l.startswith("r")))
        self.assertNoConsoleErrors()

    def test_clicking_a_leaderboard_row_highlights_its_curve(self):
        data = self.open()
        curves = {int(k): clean_curve(v) for k, v in data["curves"].items()}
        shown = [int(x) for x in self.js(
            "return Array.from(document.querySelectorAll('#lb-body tr[data-id]')).map(r => r.dataset.id)")]
        target = next((i for i in shown if curves.get(i)), None)
        if target is None or not data["sweep"]["metric"]:
            self.skipTest("no trial on the first page has a curve")
        row = self.driver.find_element(By.CSS_SELECTOR, '#lb-body tr[data-id="%d"]' % target)
        row.click()
        selected = {s["id"]: s for s in self.series("curves")}["selected"]
        self.assertEqual(len(curves[target]), selected["n"])
        self.assertEqual(target, self.js("return window.__xpscale.selected()"))
        self.assertIn("selected", self.driver.find_element(
            By.CSS_SELECTOR, '#lb-body tr[data-id="%d"]' % target).get_attribute("class"))
        # The toolbox's "reset zoom" keeps the highlight.
        self.js("echarts.getInstanceByDom(document.querySelector('#curves .chart')).dispatchAction({type: 'restore'})")
        self.assertEqual(len(curves[target]), {s["id"]: s for s in self.series("curves")}["selected"]["n"])
        self.driver.find_element(By.CSS_SELECTOR, '#lb-body tr[data-id="%d"]' % target).click()
        self.assertEqual(0, {s["id"]: s for s in self.series("curves")}["selected"]["n"])
        self.assertNoConsoleErrors()

    def test_history_draws_each_finished_trial_and_the_best_so_far(self):
        data = self.open()
        rows = [r for r in data["history"] if finite(r[2])]
        if not data["sweep"]["metric"] or not rows:
            self.assertIsNotNone(self.empty_text("history"))
            return
        by_id = {s["id"]: s for s in self.series("history")}
        self.assertEqual(len(rows), by_id["trials"]["n"])
        self.assertEqual(len(rows), by_id["best-so-far"]["n"])
        best = self.option("history", ["series", 1, "data"])
        values = [r[2] for r in rows]
        goal = max if data["sweep"]["goal"] == "maximize" else min
        self.assertEqual(goal(values), best[-1][1])
        self.assertEqual([goal(values[:i + 1]) for i in range(len(values))], [p[1] for p in best])
        self.assertNoConsoleErrors()

    def test_parallel_coordinates_draw_an_axis_per_parameter_and_a_line_per_trial(self):
        data = self.open()
        s = scored(data)
        if not data["sweep"]["metric"] or not s or not data["params"]:
            self.assertIsNotNone(self.empty_text("parallel"))
            return
        with_value = [p for p in data["params"] if any(t["params"].get(p) is not None for t in s)]
        axes = self.option("parallel", ["parallelAxis"])
        self.assertEqual(len(with_value) + 1, len(axes))
        for p, axis in zip(with_value, axes):
            values = [t["params"][p] for t in s if t["params"].get(p) is not None]
            numeric = all(finite(v) for v in values)
            self.assertEqual(numeric, axis["type"] in ("value", "log"), p[:40])
        self.assertEqual("metric", axes[-1]["id"])
        self.assertEqual(min(len(s), MAX_PARALLEL_LINES), self.series("parallel")[0]["n"])
        self.assertNoConsoleErrors()

    def test_brushing_the_parallel_coordinates_filters_the_leaderboard(self):
        data = self.open()
        s = scored(data)
        if not data["sweep"]["metric"] or len(s) < 4 or not data["params"]:
            self.skipTest("too few trials with a value to brush")
        values = sorted(t["best"] for t in s)
        lo, hi = values[len(values) // 4], values[(3 * len(values)) // 4]
        self.js("""echarts.getInstanceByDom(document.querySelector('#parallel .chart'))
                   .dispatchAction({type: 'axisAreaSelect', parallelAxisId: 'metric', intervals: [[arguments[0], arguments[1]]]});""",
                lo, hi)
        expected = {t["id"] for t in s if lo <= t["best"] <= hi}
        self.assertEqual(expected, set(self.leaderboard_ids()))
        self.assertFalse(self.js("return document.getElementById('lb-brush').hidden"))
        rows = self.js("return document.querySelectorAll('#lb-body tr[data-id]').length")
        self.assertEqual(min(PAGE_SIZE, len(expected)), rows)

        # A second axis narrows the selection: the first category of the
        # first categorical parameter.
        axes = self.option("parallel", ["parallelAxis"])
        cat = next((i for i, a in enumerate(axes) if a["type"] == "category"), None)
        if cat is not None:
            name = [p for p in data["params"] if any(t["params"].get(p) is not None for t in s)][cat]
            first = axes[cat]["data"][0]
            self.js("""echarts.getInstanceByDom(document.querySelector('#parallel .chart'))
                       .dispatchAction({type: 'axisAreaSelect', parallelAxisId: arguments[0], intervals: [[0, 0]]});""",
                    axes[cat]["id"])
            narrowed = {t["id"] for t in s if lo <= t["best"] <= hi and t["params"].get(name) is not None
                        and js_string(t["params"][name]) == first}
            self.assertEqual(narrowed, set(self.leaderboard_ids()))

        self.driver.find_element(By.ID, "lb-brush-clear").click()
        self.assertEqual(len(data["trials"]), len(self.leaderboard_ids()))
        self.assertTrue(self.js("return document.getElementById('lb-brush').hidden"))
        self.assertNoConsoleErrors()

    def test_importance_bars_or_the_note(self):
        data = self.open()
        items = [i for i in data["importance"] if finite(i.get("importance"))]
        if not items:
            self.assertIn(data["importance_note"] or "importance", self.empty_text("importance"))
            return
        self.assertEqual(len(items), self.series("importance")[0]["n"])
        self.assertEqual([i["param"] for i in items], self.option("importance", ["yAxis", 0, "data"]))
        self.assertNoConsoleErrors()

    def test_timeline_draws_every_attempt_on_its_lane_and_lists_failures(self):
        data = self.open()
        tl = data["timeline"]
        if not tl["bars"]:
            self.assertIsNotNone(self.empty_text("timeline"))
            return
        series = self.series("timeline")
        self.assertTrue(all(s["type"] == "custom" for s in series))
        self.assertEqual(len({b[5] for b in tl["bars"]}), len(series))
        items = [item for i in range(len(series)) for item in self.option("timeline", ["series", i, "data"])]
        self.assertEqual(len(tl["bars"]), sum(item[3] for item in items))
        self.assertEqual(tl["lanes"], self.option("timeline", ["yAxis", 0, "data"]))
        if finite(tl.get("busy_fraction")):
            self.assertIn("%d%%" % round(tl["busy_fraction"] * 100), self.js("return document.getElementById('busy').textContent"))
        failed = [t for t in data["trials"] if t["status"] == "failed"]
        shown = self.js("return Array.from(document.querySelectorAll('#failures pre')).map(p => p.textContent)")
        self.assertEqual(min(50, len(failed)), len(shown))
        for t, text in zip(failed, shown):
            last = (t["stderr_tail"] or "").rstrip().split("\n")[-1]
            self.assertIn(last, text)
        self.assertNoConsoleErrors()

    def test_timeline_tooltip_names_the_attempt_under_the_pointer(self):
        data = self.open()
        bars = data["timeline"]["bars"]
        if not bars:
            self.skipTest("no attempts")
        longest = max(bars, key=lambda b: b[4] - b[3])
        # The middle of the longest bar, in pixels, then a real mouse move there.
        xy = self.js("""
            const c = echarts.getInstanceByDom(document.querySelector('#timeline .chart'));
            const b = arguments[0];
            const p = c.convertToPixel({gridIndex: 0}, [(b[3] + b[4]) / 2 * 1000, b[0]]);
            const r = c.getDom().getBoundingClientRect();
            return [p[0], p[1], r.left, r.top];""", longest)
        el = self.driver.find_element(By.ID, "timeline-chart")
        self.js("arguments[0].scrollIntoView({block: 'center'})", el)
        from selenium.webdriver.common.action_chains import ActionChains
        size = el.size
        ActionChains(self.driver).move_to_element_with_offset(
            el, int(xy[0] - size["width"] / 2), int(xy[1] - size["height"] / 2)).perform()
        text = self.wait_for(lambda: self.js("""
            const t = Array.from(document.querySelectorAll('#timeline-chart div'))
              .find(d => d.style.position === 'absolute' && d.style.display !== 'none' && d.textContent.includes('trial #'));
            return t ? t.textContent : null;"""), "no tooltip over the longest bar")
        self.assertIn("trial #%d, attempt %d" % (longest[1], longest[2]), text)
        self.assertNoConsoleErrors()

    # ---- the leaderboard -------------------------------------------------

    def test_leaderboard_pages_and_sorts_by_best_first(self):
        data = self.open()
        trials = data["trials"]
        if not trials:
            self.assertIsNotNone(self.empty_text("leaderboard"))
            return
        sign = -1 if data["sweep"]["goal"] == "maximize" else 1
        expected = [t["id"] for t in sorted(trials, key=lambda t: (not finite(t["best"]),
                                                                   sign * t["best"] if finite(t["best"]) else 0, t["id"]))]
        self.assertEqual(expected, self.leaderboard_ids())
        rows = self.js("return Array.from(document.querySelectorAll('#lb-body tr[data-id]')).map(r => +r.dataset.id)")
        self.assertEqual(expected[:PAGE_SIZE], rows)
        if data["best_trial"] is not None:
            self.assertIn("best", self.driver.find_element(
                By.CSS_SELECTOR, '#lb-body tr[data-id="%d"]' % data["best_trial"]).get_attribute("class"))
        if len(trials) > PAGE_SIZE:
            self.driver.find_element(By.ID, "lb-next").click()
            rows = self.js("return Array.from(document.querySelectorAll('#lb-body tr[data-id]')).map(r => +r.dataset.id)")
            self.assertEqual(expected[PAGE_SIZE:2 * PAGE_SIZE], rows)
        self.assertNoConsoleErrors()

    def test_clicking_headers_sorts(self):
        data = self.open()
        trials = data["trials"]
        if not trials:
            self.skipTest("no trials")

        def click(key):
            self.driver.find_element(By.CSS_SELECTOR, '#lb-head th[data-key="%s"] button' % key).click()

        click("id")
        self.assertEqual(sorted(t["id"] for t in trials), self.leaderboard_ids())
        self.assertEqual("ascending", self.driver.find_element(
            By.CSS_SELECTOR, '#lb-head th[data-key="id"]').get_attribute("aria-sort"))
        click("id")
        self.assertEqual(sorted((t["id"] for t in trials), reverse=True), self.leaderboard_ids())

        # The goal's way first for a metric column, then the other way; no
        # value always last.
        click("final")
        sign = -1 if data["sweep"]["goal"] == "maximize" else 1
        for direction in (sign, -sign):
            expected = [t["id"] for t in sorted(trials, key=lambda t: (not finite(t["final"]),
                                                                       direction * t["final"] if finite(t["final"]) else 0,
                                                                       t["id"]))]
            self.assertEqual(expected, self.leaderboard_ids())
            click("final")

        numeric = next((i for i, p in enumerate(data["params"])
                        if any(finite(t["params"].get(p)) for t in trials)
                        and all(t["params"].get(p) is None or finite(t["params"][p]) for t in trials)), None)
        if numeric is not None:
            p = data["params"][numeric]
            click("param:%d" % numeric)
            expected = [t["id"] for t in sorted(trials, key=lambda t: (t["params"].get(p) is None,
                                                                       t["params"].get(p) or 0, t["id"]))]
            self.assertEqual(expected, self.leaderboard_ids())
        self.assertNoConsoleErrors()

    def test_filter_box_filters_over_params_status_and_reason(self):
        data = self.open()
        trials = data["trials"]
        if not trials:
            self.skipTest("no trials")
        box = self.driver.find_element(By.ID, "lb-filter")

        def text(t):
            bits = ["#%d" % t["id"], t["status"], t["reason"] or ""]
            bits += [js_string(t["params"][p]) for p in data["params"] if t["params"].get(p) is not None]
            return "\n".join(bits).lower()

        for term in ("failed", "sgd", "asha rung", "sgd completed", "nothing-matches-this"):
            box.clear()
            box.send_keys(term)
            expected = {t["id"] for t in trials if all(w in text(t) for w in term.split())}
            self.wait_for(lambda: set(self.leaderboard_ids()) == expected, "filter %r" % term)
            if not expected:
                self.assertIn("No trial matches", self.js("return document.getElementById('lb-body').textContent"))
        box.clear()
        box.send_keys(" ")
        self.wait_for(lambda: len(self.leaderboard_ids()) == len(trials), "cleared filter")
        self.assertNoConsoleErrors()

    # ---- untrusted strings -----------------------------------------------

    def test_malicious_strings_stay_text(self):
        data = self.open()
        mal = make_page.MALICIOUS
        if not holds(data, mal):
            self.skipTest("the page's data holds no malicious strings")
        self.assertIsNone(self.js("return window.__pwned"))
        self.assertEqual(0, self.js("return document.images.length"))
        self.assertEqual(3, self.js("return document.scripts.length"))
        if data["sweep"]["metric"] == mal:
            self.assertEqual(mal, self.js("return document.getElementById('metric-name').textContent"))
        if mal in data["params"]:
            titles = self.js("return Array.from(document.querySelectorAll('#lb-head button')).map(b => b.title)")
            self.assertIn(mal, titles)
        holders = [t for t in data["trials"] if mal in [v for v in t["params"].values()]]
        if holders:
            self.driver.find_element(By.ID, "lb-filter").send_keys("onerror")
            self.wait_for(lambda: {t["id"] for t in holders} <= set(self.leaderboard_ids()), "the malicious value")
            cells = self.js("return Array.from(document.querySelectorAll('#lb-body td')).map(td => td.textContent)")
            self.assertIn(mal, cells)
        stderr = [t["stderr_tail"] for t in data["trials"] if "<script>" in (t.get("stderr_tail") or "")]
        if stderr:
            pres = self.js("return Array.from(document.querySelectorAll('#failures pre')).map(p => [p.textContent, p.children.length])")
            self.assertTrue(any(make_page.STDERR_HTML in text and kids == 0 for text, kids in pres))
        # Tooltips are HTML: their text must come out escaped.
        if data["history"] and data["sweep"]["metric"] == mal:
            self.js("""echarts.getInstanceByDom(document.querySelector('#history .chart'))
                       .dispatchAction({type: 'showTip', seriesIndex: 0, dataIndex: 0});""")
            tip = self.wait_for(lambda: self.js("""
                const t = Array.from(document.querySelectorAll('#history-chart div'))
                  .find(d => d.style.position === 'absolute' && d.textContent.includes('trial #'));
                return t ? [t.textContent, t.querySelectorAll('img, script').length] : null;"""), "history tooltip")
            self.assertIn(mal[:50], tip[0])
            self.assertEqual(0, tip[1])
        self.assertIsNone(self.js("return window.__pwned"))
        self.assertNoConsoleErrors()

    def test_long_parameter_names_are_truncated_with_the_full_name_in_a_title(self):
        data = self.open()
        long_names = [p for p in data["params"] if len(p) > 200]
        if not long_names:
            self.skipTest("no long parameter name")
        heads = self.js("return Array.from(document.querySelectorAll('#lb-head button')).map(b => [b.textContent, b.title])")
        for name in long_names:
            shown = [text for text, title in heads if title == name]
            self.assertEqual(1, len(shown))
            self.assertLessEqual(len(shown[0]), 30)
        key = self.js("return Array.from(document.querySelectorAll('#parallel-key span')).map(s => [s.textContent, s.title])")
        for name in long_names:
            if any(t["params"].get(name) is not None for t in scored(data)):
                self.assertIn(name, [title for _, title in key])
                self.assertTrue(all(len(text) < 60 for text, title in key if title == name))
        self.assertNoConsoleErrors()

    # ---- empty and degenerate sweeps -------------------------------------

    def test_empty_sweep_says_so_in_every_view(self):
        data = self.open(self.scenarios["empty"])
        for view in ("leaderboard", "curves", "history", "parallel", "timeline"):
            self.assertIn("no trials", (self.empty_text(view) or "").lower(), view)
        self.assertEqual(data["importance_note"], self.empty_text("importance"))
        self.assertIn("No best trial", self.js("return document.getElementById('best-trial').textContent"))
        self.assertEqual(0, self.js("return document.querySelectorAll('canvas').length"))
        self.assertNoConsoleErrors()

    def test_only_failed_sweep_says_why_no_result(self):
        data = self.open(self.scenarios["only-failed"])
        self.assertIn("every trial failed", self.empty_text("history"))
        self.assertIn("every trial failed", self.empty_text("parallel"))
        self.assertEqual(data["importance_note"], self.empty_text("importance"))
        self.assertIn("No best trial", self.js("return document.getElementById('best-trial').textContent"))
        self.assertEqual(len(data["trials"]), len(self.leaderboard_ids()))
        failures = self.js("return document.querySelectorAll('#failures details').length")
        self.assertEqual(len(data["trials"]), failures)
        if any(clean_curve(c) for c in data["curves"].values()):
            self.assertIsNone(self.empty_text("curves"))
        self.assertNoConsoleErrors()

    def test_sweep_without_metric_says_so(self):
        self.open(self.scenarios["no-metric"])
        for view in ("curves", "history", "parallel"):
            self.assertIn("no metric", self.empty_text(view), view)
        self.assertEqual("The sweep has no metric.", self.empty_text("importance"))
        self.assertIsNone(self.empty_text("timeline"))
        self.assertEqual("no metric", self.js("return document.getElementById('metric-name').textContent"))
        self.assertNoConsoleErrors()

    def test_null_values_show_as_dashes(self):
        data = self.open()
        nulls = [t for t in data["trials"] if t["final"] is None]
        if not nulls:
            self.skipTest("no trial without a value")
        box = self.driver.find_element(By.ID, "lb-filter")
        box.send_keys("#%d" % nulls[0]["id"])
        self.wait_for(lambda: nulls[0]["id"] in self.leaderboard_ids(), "the trial without a value")
        cells = self.js("""
            const r = document.querySelector('#lb-body tr[data-id="' + arguments[0] + '"]');
            const keys = Array.from(document.querySelectorAll('#lb-head th')).map(th => th.dataset.key);
            return Object.fromEntries(Array.from(r.children).map((td, i) => [keys[i], td.textContent]));""",
                        nulls[0]["id"])
        self.assertEqual("\u2014", cells["final"])
        self.assertNoConsoleErrors()


class MakePageTest(unittest.TestCase):
    """The helper writes the page as html.cpp does."""

    def test_data_cannot_close_its_script_element(self):
        data = {"s": make_page.MALICIOUS + "\u2028\u2029&<!--", "n": None}
        text = make_page.script_safe_json(data)
        for bad in ("<", ">", "&", "\u2028", "\u2029"):
            self.assertNotIn(bad, text)
        self.assertEqual(data, json.loads(text))

    def test_markers_are_replaced_in_order_once(self):
        page = make_page.fill_template(make_page.synthetic(5, 5))
        for marker in make_page.MARKERS:
            self.assertNotIn(marker, page)
        self.assertEqual(3, page.count("<script"))
        self.assertEqual(1, page.count('<script id="xpscale-data" type="application/json">'))


if __name__ == "__main__":
    unittest.main()
