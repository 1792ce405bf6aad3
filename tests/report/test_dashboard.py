"""`xpscale dashboard` and `xpscale run --dashboard` over HTTP (issue 16,
part 2): the page, /data.json and /events from a real store; the token off
loopback; a trial's report reaches /data.json within 2 s; clear errors for
a taken port or a missing out_dir.

Environment (set by CMake): XPSCALE_BIN, XPSCALE_TEST_TMP.
"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
XPSCALE = os.environ.get("XPSCALE_BIN", os.path.join(HERE, "../../build/launcher/xpscale"))
SLOW_TRIAL = os.path.join(HERE, "slow_trial.py")


def at(url, path):
    """url (http://host:port/?token=T) with `path` in place of its path."""
    u = urllib.parse.urlparse(url)
    return urllib.parse.urlunparse(u._replace(path="/" + path))


def get(url, headers=None, timeout=10):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, dict(r.headers), r.read()


class DashboardTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dashboard-", dir=os.environ.get("XPSCALE_TEST_TMP"))
        self.procs = []
        self.env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def config(self, trials=4, steps=5, every=0.2, extra=""):
        path = os.path.join(self.tmp, "sweep.yaml")
        with open(path, "w") as f:
            f.write(f"""name: dash
method: random
trials: {trials}
seed: 1
metric: {{name: loss, goal: minimize}}
parameters:
  x: {{min: 0.0, max: 1.0}}
  steps: {{value: {steps}}}
  every: {{value: {every}}}
program: {SLOW_TRIAL}
command: [/usr/bin/python3, "${{program}}", "${{args}}"]
out_dir: {os.path.join(self.tmp, "out")}
{extra}""")
        return path

    def run_sweep(self, *flags, trials=4, steps=2, every=0.01):
        subprocess.run([XPSCALE, "run", self.config(trials, steps, every), "--quiet", *flags],
                       check=True, env=self.env, capture_output=True, timeout=120)
        return os.path.join(self.tmp, "out")

    def dashboard(self, *args):
        """Starts `xpscale dashboard ARGS` and returns (process, url)."""
        p = subprocess.Popen([XPSCALE, "dashboard", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=self.env)
        self.procs.append(p)
        line = p.stdout.readline()
        m = re.search(r"(http://\S+)", line)
        self.assertIsNotNone(m, line + p.stderr.read() if p.poll() is not None else line)
        return p, m.group(1)

    def run_with_dashboard(self, cfg):
        """Starts `xpscale run CFG --dashboard 0`; returns (process, the address it printed)."""
        run = subprocess.Popen([XPSCALE, "run", cfg, "--quiet", "--dashboard", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=self.env)
        self.procs.append(run)
        deadline = time.time() + 30
        while time.time() < deadline:
            m = re.search(r"dashboard (http://\S+)", run.stderr.readline())
            if m:
                return run, m.group(1)
        self.fail("run --dashboard printed no address")

    def test_serves_the_page_data_and_events_of_a_store(self):
        out = self.run_sweep()
        p, url = self.dashboard(out, "--port", "0")
        self.assertTrue(url.startswith("http://127.0.0.1:"), url)
        self.assertRegex(url, r"/\?token=[0-9a-f]{32}$")
        with self.assertRaises(urllib.error.HTTPError) as e:  # a token even on loopback
            get(at(url, "").split("?")[0])
        self.assertEqual(e.exception.code, 403)
        status, headers, body = get(url)
        self.assertEqual(status, 200)
        self.assertIn("default-src 'none'", headers["Content-Security-Policy"])
        self.assertEqual(headers["Cache-Control"], "no-store")
        page = body.decode()
        self.assertIn('<script id="xpscale-data" type="application/json">', page)
        self.assertNotIn("/*XPSCALE_", page)
        # As is (no Brotli of a 10 MB page per request).
        status, headers, body = get(at(url, "data.json"), {"Accept-Encoding": "gzip, deflate, br"})
        self.assertNotIn("Content-Encoding", headers)
        data = json.loads(body)
        self.assertTrue(data["live"])
        self.assertEqual(data["counts"]["total"], 4)
        self.assertEqual(data["counts"]["completed"], 4)
        self.assertIn("ssh -N -L", data["dashboard"]["tunnel"])
        self.assertGreaterEqual(int(headers["X-Xpscale-Version"]), 1)
        # /events: the current version at once.
        u = urllib.parse.urlparse(url)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
        c.request("GET", "/events?" + u.query)
        r = c.getresponse()
        self.assertEqual(r.getheader("Content-Type"), "text/event-stream")
        self.assertEqual(r.readline().decode().strip(), "event: version")
        self.assertRegex(r.readline().decode(), r"^data: \d+")
        c.close()
        with self.assertRaises(urllib.error.HTTPError) as e:
            get(at(url, "nothing-here"))
        self.assertEqual(e.exception.code, 404)
        # Ctrl-C ends it cleanly.
        p.send_signal(2)
        self.assertEqual(p.wait(timeout=10), 0)

    def test_every_request_needs_the_printed_token(self):
        out = self.run_sweep()
        p, url = self.dashboard(out, "--port", "0", "--host", "0.0.0.0")
        m = re.search(r"\?token=([0-9a-f]{32})$", url)
        self.assertIsNotNone(m, url)
        token = m.group(1)
        port = urllib.parse.urlparse(url).port
        base = f"http://127.0.0.1:{port}/"
        for path in ("", "data.json", "events"):
            with self.assertRaises(urllib.error.HTTPError) as e:
                get(base + path)
            self.assertEqual(e.exception.code, 403, path)
            with self.assertRaises(urllib.error.HTTPError) as e:
                get(base + path + "?token=" + "0" * 32)
            self.assertEqual(e.exception.code, 403, path)
        self.assertEqual(get(base + "?token=" + token)[0], 200)
        status, _, body = get(base + "data.json", {"Authorization": "Bearer " + token})
        self.assertEqual(json.loads(body)["counts"]["total"], 4)
        # The token is never in the page's data (the page reads it from its own address).
        self.assertNotIn(token, get(base + "data.json?token=" + token)[2].decode().split(
            '"dashboard"')[0])

    def test_a_taken_port_and_a_missing_out_dir_are_user_errors(self):
        out = self.run_sweep()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run([XPSCALE, "dashboard", out, "--port", str(port)], capture_output=True,
                           text=True, timeout=30)
        s.close()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"127.0.0.1:{port}", r.stderr)
        self.assertIn("--port", r.stderr)
        r = subprocess.run([XPSCALE, "dashboard", os.path.join(self.tmp, "nope")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("nope", r.stderr)
        r = subprocess.run([XPSCALE, "dashboard", out, "--host", "0.0.0.0", "--token", "short"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--token", r.stderr)

    def test_an_answer_being_written_when_it_stops_is_written_whole(self):
        # A page that fetched just as the sweep ended must never get headers
        # with a cut body (Chromium: ERR_CONTENT_LENGTH_MISMATCH): each
        # answer is whole, or a whole 503, or no answer at all.
        out = self.run_sweep()
        p, url = self.dashboard(out, "--port", "0")
        u = urllib.parse.urlparse(url)
        request = f"GET /data.json?{u.query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

        def fetch():
            """(status, whole) of one answer; None when refused or reset before any."""
            try:
                with socket.create_connection((u.hostname, u.port), timeout=10) as s:
                    s.sendall(request.encode())
                    got = b""
                    while True:
                        chunk = s.recv(1 << 16)
                        if not chunk:
                            break
                        got += chunk
            except (ConnectionRefusedError, ConnectionResetError):
                return None
            if not got:
                return None
            head, _, body = got.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
            return int(head.split()[1]), len(body) == length

        self.assertEqual(fetch(), (200, True))
        p.send_signal(2)
        answers = []
        while p.poll() is None or not answers:
            answers.append(fetch())
        self.assertEqual(p.wait(timeout=10), 0)
        self.assertGreater(len(answers), 3)
        cut = [a for a in answers if a is not None and not a[1]]
        self.assertEqual(cut, [], f"{len(cut)} of {len(answers)} answers cut short")

    def test_a_running_sweeps_reports_reach_the_data_within_2_s(self):
        run, url = self.run_with_dashboard(self.config(trials=3, steps=30, every=0.25))
        deadline = time.time() + 30
        # Each new version of the data holds a report made at most 2 s before.
        lags = []
        last_steps = -1
        while time.time() < deadline and len(lags) < 5:
            data = json.loads(get(at(url, "data.json"))[2])
            steps = sum(t["steps"] for t in data["trials"])
            if steps > last_steps and data["trials"]:
                newest = max((t for t in data["trials"] if t["steps"]),
                             key=lambda t: t["started_at"] or 0, default=None)
                if newest is not None:
                    lags.append(time.time() - data["generated_at"])
                last_steps = steps
            time.sleep(0.3)
        self.assertGreaterEqual(len(lags), 3, "the data never changed while trials reported")
        # The data shown was taken at most 2 s before it was fetched.
        self.assertLess(max(lags), 2.0, lags)
        self.assertGreater(last_steps, 0)
        run.wait(timeout=90)
        self.assertEqual(run.returncode, 0, run.stderr.read()[-2000:])

    def test_the_page_in_a_browser_shows_a_new_trial_within_2_s_of_its_report(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        import sqlite3

        run, url = self.run_with_dashboard(self.config(trials=6, steps=8, every=0.25))
        opts = Options()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1400,1000"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        db = os.path.join(self.tmp, "out", "xpscale.db")
        first_report, first_shown = {}, {}
        page_ready = None
        try:
            driver.get(url)
            deadline = time.time() + 60
            while time.time() < deadline and run.poll() is None:
                now = time.time()
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
                        for trial, at in con.execute(
                                "SELECT trial, MIN(time) FROM metrics GROUP BY trial"):
                            first_report.setdefault(trial, at)
                except sqlite3.Error:
                    pass
                try:
                    shown = driver.execute_script(
                        "if (!window.__xpscaleReady || !window.__xpscale) return null;"
                        "return window.__xpscale.data().trials"
                        ".filter(t => t.steps > 0).map(t => t.id);")
                except Exception:  # between two drawings
                    shown = None
                if shown is not None and page_ready is None:
                    page_ready = now
                for trial in shown or []:
                    first_shown.setdefault(trial, now)
                time.sleep(0.05)
            # The sweep's end reaches the page: the last data comes with the
            # end of the event stream.
            final = None
            for _ in range(50):
                final = driver.execute_script(
                    "return [document.getElementById('live-badge').textContent,"
                    " window.__xpscale.data().counts.completed]")
                if final[0] == "dashboard stopped":
                    break
                time.sleep(0.1)
            self.assertEqual(final, ["dashboard stopped", 6])
            errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            artifacts = os.environ.get("XPSCALE_ARTIFACTS")
            if artifacts:
                driver.save_screenshot(os.path.join(artifacts, "dashboard-live.png"))
        finally:
            driver.quit()
        self.assertEqual(errors, [])
        run.wait(timeout=60)
        self.assertEqual(run.returncode, 0)
        # Trials that first reported after the page was drawn: each on the
        # page within 2 s of that report.
        self.assertIsNotNone(page_ready, "the page never drew")
        later = {t: first_shown.get(t, float("inf")) - at for t, at in first_report.items()
                 if at > page_ready}
        self.assertGreaterEqual(len(later), 2, (first_report, first_shown))
        self.assertLess(max(later.values()), 2.0, later)
        if os.environ.get("XPSCALE_TEST_VERBOSE"):
            print("lags", later)


class ReportHtmlTest(unittest.TestCase):
    """`xpscale report --html FILE` writes FILE whole or not at all."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="report-html-", dir=os.environ.get("XPSCALE_TEST_TMP"))
        self.env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        # The same small finished sweep as the dashboard's tests.
        self.out = DashboardTest.run_sweep(self)

    config = DashboardTest.config

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def report(self, target):
        return subprocess.run([XPSCALE, "report", self.out, "--html", target], capture_output=True,
                              text=True, timeout=60)

    def test_a_planted_symlink_is_not_written_through_and_a_fifo_is_refused(self):
        victim = os.path.join(self.tmp, "victim.txt")
        with open(victim, "w") as f:
            f.write("keep me")
        target = os.path.join(self.tmp, "r.html")
        # Every name the old code could have picked for its temporary file.
        for pid in range(os.getpid(), os.getpid() + 200):
            os.symlink(victim, f"{target}.tmp.{pid}")
        r = self.report(target)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(victim) as f:
            self.assertEqual(f.read(), "keep me")
        with open(target) as f:
            self.assertIn("xpscale-data", f.read())
        self.assertEqual(os.stat(target).st_mode & 0o777, 0o666 & ~self.umask())
        fifo = os.path.join(self.tmp, "pipe")
        os.mkfifo(fifo)
        r = self.report(fifo)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a regular file", r.stderr)
        self.assertTrue(os.path.exists(fifo))
        leftovers = [n for n in os.listdir(self.tmp) if ".tmp." in n and not os.path.islink(
            os.path.join(self.tmp, n))]
        self.assertEqual(leftovers, [])

    @staticmethod
    def umask():
        mask = os.umask(0)
        os.umask(mask)
        return mask


if __name__ == "__main__":
    unittest.main()
