"""The queue of sweeps end to end (sweep_queue.h, issue 17): `xpscale enqueue`,
`xpscale queue` and `xpscale agent` as real processes on a throwaway
PostgreSQL server (tests/support/pg_server.py), each agent running its
entries as real jobs (`xpscale launch -n 2` through mpirun, or in-process
with --launcher none) of external trials (ext_trial.py). What happened is
read from the store's own tables with psql (pg.psql), so no Python driver
for PostgreSQL is needed.

Environment (set by CMake): XPSCALE_BIN, XPSCALE_TEST_TMP.
"""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "pylib"))
from pg_server import PgServer, PgServerError  # noqa: E402  (tests/support)
from sweep_case import SweepCase  # noqa: E402  (tests/pylib)

XPSCALE = os.environ["XPSCALE_BIN"]
EXT_TRIAL = os.path.join(HERE, "ext_trial.py")


def descendants(pid):
    """The live processes below pid (children, their children, ...)."""
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(p))
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class QueueTest(SweepCase):
    tmp_prefix = "queue-"

    def setUp(self):
        super().setUp()
        self.pg = PgServer()
        self.addCleanup(self.pg.stop)
        self.env.update(self.pg.env)  # PGPASSWORD
        self.env.pop("XPSCALE_STORE", None)
        self.url = self.pg.url
        self.logs = os.path.join(self.tmp, "logs")
        self.agents = []  # (Popen, output path)
        self.addCleanup(self.kill_agents)

    def kill_agents(self):
        for p, _ in self.agents:
            if p.poll() is None:
                for pid in [p.pid] + descendants(p.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                p.wait()

    # -- helpers ---------------------------------------------------------
    def sweep_config(self, name, trials=4, ms=100, steps=3, **keys):
        """An external grid sweep of `trials` trials, each `steps` reports
        `ms` apart, with `name:` and an out_dir of its own."""
        cfg = {"name": name, "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
               "command": ["${interpreter}", EXT_TRIAL, "${args}"],
               "parameters": {"x": {"values": list(range(trials))}, "ms": {"value": ms},
                              "steps": {"value": steps}},
               "out_dir": os.path.join(self.tmp, "out-" + name)}
        cfg.update(keys)
        path = os.path.join(self.tmp, name + ".yaml")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        return path

    def xpscale(self, *args, expect=0, env=None, timeout=60):
        p = subprocess.run([XPSCALE] + list(args), env=env or self.env, capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if expect is not None and p.returncode != expect:
            self.fail("xpscale %s exited %d, expected %d\nstdout:\n%s\nstderr:\n%s\nqueue:\n%s" % (
                " ".join(args), p.returncode, expect, p.stdout[-3000:], p.stderr[-3000:],
                self.queue_state()))
        return p

    def enqueue(self, cfg, queue="default", priority=0, url=None, env=None):
        p = self.xpscale("enqueue", cfg, "--queue", queue, "--priority", str(priority),
                         "--store", url or self.url, env=env)
        self.assertRegex(p.stdout, r"queued sweep '.*' as entry \d+")
        return int(p.stdout.split(" as entry ")[1].split()[0])

    def start_agent(self, *args, ranks=1, url=None, env=None):
        """An agent in its own session, its output (stderr and stdout) in a
        file; mpirun for 2 ranks, in-process for 1."""
        k = len(self.agents)
        out = os.path.join(self.tmp, "agent%d.out" % k)
        launcher = "mpirun" if ranks > 1 else "none"
        with open(out, "w") as f:
            p = subprocess.Popen([XPSCALE, "agent", "--store", url or self.url, "-n", str(ranks),
                                  "--launcher", launcher, "--poll", "0.3", "--log-dir", self.logs]
                                 + list(args), env=env or self.env, start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        self.agents.append((p, out))
        return p

    def output_of(self, p):
        path = next(o for q, o in self.agents if q is p)
        with open(path, errors="replace") as f:
            return f.read()

    def job_logs(self):
        text = ""
        if os.path.isdir(self.logs):
            for name in sorted(os.listdir(self.logs)):
                with open(os.path.join(self.logs, name), errors="replace") as f:
                    text += "== %s\n%s" % (name, f.read())
        return text

    def wait_agent(self, p, expect=0, timeout=120):
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_agents()
            self.fail("agent %d did not end within %d s\n%s\n%s" % (
                p.pid, timeout, self.output_of(p)[-4000:], self.queue_state()))
        self.assertEqual(p.returncode, expect, "agent %d:\n%s\nqueue:\n%s\njobs:\n%s" % (
            p.pid, self.output_of(p)[-4000:], self.queue_state(), self.job_logs()[-4000:]))
        return self.output_of(p)

    def sql(self, query):
        return self.pg.psql(query)

    def entry(self, sweep):
        """The latest entry of `sweep` as a dict."""
        row = self.sql("SELECT row_to_json(q) FROM xpscale.queue q WHERE sweep = '%s' "
                       "ORDER BY id DESC LIMIT 1" % sweep)
        self.assertTrue(row, "no entry of sweep %s" % sweep)
        return json.loads(row)

    def queue_state(self):
        try:
            return self.sql("SELECT id, queue, sweep, priority, status, runs, agent, exit_code, "
                            "message FROM xpscale.queue ORDER BY id")
        except Exception as e:  # noqa: BLE001  (only a diagnostic)
            return "(cannot read the queue: %s)" % e

    def attempts(self, sweep):
        """{trial: [attempt statuses in order]} of `sweep`."""
        rows = self.sql("SELECT t.id, coalesce(string_agg(a.status, ',' ORDER BY a.attempt), '') "
                        "FROM xpscale.trials t JOIN xpscale.sweeps s ON s.id = t.sweep "
                        "LEFT JOIN xpscale.attempts a ON a.sweep = t.sweep AND a.trial = t.id "
                        "WHERE s.name = '%s' GROUP BY t.id ORDER BY t.id" % sweep)
        out = {}
        for line in rows.splitlines():
            trial, statuses = line.split("|")
            out[int(trial)] = statuses.split(",") if statuses else []
        return out

    def assert_each_trial_completed_once(self, sweep, trials):
        got = self.attempts(sweep)
        self.assertEqual(sorted(got), list(range(trials)), "sweep %s: trials %s" % (sweep, got))
        for t, statuses in got.items():
            self.assertEqual(statuses.count("completed"), 1, "sweep %s trial %d: %s" % (
                sweep, t, statuses))
            self.assertEqual(statuses[-1], "completed", "sweep %s trial %d: %s" % (
                sweep, t, statuses))
        self.assertEqual(self.sql("SELECT string_agg(DISTINCT t.status, ',') FROM xpscale.trials "
                                  "t JOIN xpscale.sweeps s ON s.id = t.sweep WHERE s.name = '%s'"
                                  % sweep), "completed")

    def poll(self, query, at_least, timeout=60):
        """Waits until `query` counts at_least; fails when an agent that was
        running at the call ends meanwhile."""
        watched = [p for p, _ in self.agents if p.poll() is None]
        deadline = time.time() + timeout
        n = 0
        while time.time() < deadline:
            try:
                n = int(self.sql(query) or 0)
            except PgServerError:  # the sweep's tables are not there yet
                n = 0
            if n >= at_least:
                return n
            for p in watched:
                if p.poll() is not None:
                    self.fail("an agent ended (exit %d) while waiting for %s >= %d\n%s" % (
                        p.returncode, query, at_least, self.output_of(p)[-4000:]))
            time.sleep(0.1)
        self.fail("%s stayed at %d (< %d) for %d s\nqueue:\n%s" % (query, n, at_least, timeout,
                                                                  self.queue_state()))

    def running_attempts(self, sweep):
        return ("SELECT count(*) FROM xpscale.attempts a JOIN xpscale.sweeps s ON s.id = a.sweep "
                "WHERE s.name = '%s' AND a.status = 'running'" % sweep)

    # -- tests -----------------------------------------------------------
    def test_two_agents_serve_three_queued_sweeps(self):
        sweeps = {"low": 1, "high": 5, "mid": 3}  # name -> priority
        for name, priority in sweeps.items():
            self.enqueue(self.sweep_config(name, trials=4, ms=150), queue="q", priority=priority)
        listed = self.xpscale("queue", "list", "--store", self.url).stdout
        self.assertRegex(listed, r"high +- ")  # not started: no trial counts yet
        two = self.start_agent("--queue", "q", "--idle-exit", "2", ranks=2)
        one = self.start_agent("--queue", "q", "--idle-exit", "2", ranks=1)
        outs = [self.wait_agent(p) for p in (two, one)]
        entries = {name: self.entry(name) for name in sweeps}
        for name, e in entries.items():
            self.assertEqual(e["status"], "done", e)
            self.assertEqual(e["runs"], 1, e)
            self.assertEqual(e["exit_code"], 0, e)
            self.assert_each_trial_completed_once(name, 4)
        # Each agent ran at least one entry; an entry's agent is "user@host pid N".
        by = {name: int(e["agent"].rsplit(" ", 1)[1]) for name, e in entries.items()}
        self.assertEqual(set(by.values()), {two.pid, one.pid}, by)
        for p, out in zip((two, one), outs):
            mine = [n for n, pid in by.items() if pid == p.pid]
            for name in mine:
                self.assertIn("sweep '%s' (queue 'q'" % name, out)
            self.assertIn("nothing to run for", out)
        # The highest priority was taken first, the lowest last.
        order = sorted(entries, key=lambda n: entries[n]["started_at"])
        self.assertEqual(order[0], "high", entries)
        self.assertEqual(order[-1], "low", entries)
        # The 2-rank agent ran its jobs through mpirun on 2 ranks.
        self.assertRegex(outs[0], r"on 2 ranks: \S+ launch -n 2 ")
        listed = self.xpscale("queue", "list", "--store", self.url).stdout
        for name in sweeps:
            self.assertRegex(listed, r"%s +4/4 " % name)

    def test_a_paused_queue_is_not_served_until_resumed(self):
        self.enqueue(self.sweep_config("paused", trials=2, ms=0), queue="p")
        self.xpscale("queue", "pause", "p", "--store", self.url)
        self.assertIn("queued (paused)", self.xpscale("queue", "list", "--store", self.url).stdout)
        idle = self.start_agent("--queue", "p", "--idle-exit", "1.5")
        out = self.wait_agent(idle)
        self.assertIn("nothing to run for", out)
        self.assertNotIn("entry ", out)
        e = self.entry("paused")
        self.assertEqual((e["status"], e["runs"], e["started_at"]), ("queued", 0, None), e)
        self.assertEqual(self.sql("SELECT count(*) FROM xpscale.sweeps"), "0")  # nothing ran
        self.xpscale("queue", "resume", "p", "--store", self.url)
        self.wait_agent(self.start_agent("--queue", "p", "--once"))
        self.assertEqual(self.entry("paused")["status"], "done")
        self.assert_each_trial_completed_once("paused", 2)

    def test_cancelling_a_running_entry_stops_its_job_and_the_agent_goes_on(self):
        # "long" would take ~20 s: 6 trials of 10 steps 300 ms apart, 2 at once.
        self.enqueue(self.sweep_config("long", trials=6, ms=300, steps=10), priority=5)
        self.enqueue(self.sweep_config("next", trials=2, ms=0))
        agent = self.start_agent("--idle-exit", "1", "--lease", "10", ranks=2)
        self.poll(self.running_attempts("long"), at_least=2)
        running = self.sql("SELECT a.trial, a.attempt FROM xpscale.attempts a JOIN "
                           "xpscale.sweeps s ON s.id = a.sweep WHERE s.name = 'long' AND "
                           "a.status = 'running'").splitlines()
        asked = time.time()
        p = self.xpscale("queue", "cancel", "long", "--store", self.url)
        self.assertIn("asked the agent of entry", p.stdout)
        self.assertIn("(sweep 'long'", p.stdout)
        deadline = asked + 20
        while self.entry("long")["status"] == "running" and time.time() < deadline:
            time.sleep(0.1)
        took = time.time() - asked
        e = self.entry("long")
        self.assertEqual(e["status"], "cancelled", e)
        self.assertLess(took, 10, "the job took %.1f s to stop" % took)
        self.assertIn("cancelled; its job", e["message"])
        out = self.wait_agent(agent)
        self.assertIn("was cancelled: stopping its job", out)
        # Its running trials were interrupted, not run to the end.
        attempts = self.attempts("long")
        for line in running:
            trial, attempt = map(int, line.split("|"))
            self.assertEqual(attempts[trial][attempt - 1], "interrupted", attempts)
        self.assertNotIn("running", sum(attempts.values(), []))
        self.assertLess(sum(s.count("completed") for s in attempts.values()), 6, attempts)
        # The agent went on to the next entry.
        self.assertEqual(self.entry("next")["status"], "done")
        self.assert_each_trial_completed_once("next", 2)

    def test_an_agent_killed_mid_sweep_loses_its_entry_to_another_after_the_lease(self):
        n = 4  # 2 s a trial (10 steps of 200 ms), 2 at once
        self.enqueue(self.sweep_config("killed", trials=n, ms=200, steps=10))
        victim = self.start_agent("--lease", "10", ranks=2)
        self.poll(self.running_attempts("killed"), at_least=2)
        # The machine dies: the agent and its whole job at once.
        tree = [victim.pid] + descendants(victim.pid)
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        victim.wait()
        killed_at = time.time()
        self.assertEqual(self.entry("killed")["status"], "running")
        heir = self.start_agent("--lease", "10", "--once", ranks=2)
        self.poll("SELECT runs FROM xpscale.queue WHERE sweep = 'killed'", at_least=2,
                  timeout=30)
        waited = time.time() - killed_at
        self.assertGreater(waited, 7, "taken before the lease ran out")
        self.assertLess(waited, 20)
        out = self.wait_agent(heir)
        self.assertIn("sweep 'killed'", out)
        e = self.entry("killed")
        self.assertEqual((e["status"], e["runs"]), ("done", 2), e)
        self.assertEqual(int(e["agent"].rsplit(" ", 1)[1]), heir.pid)
        self.assert_each_trial_completed_once("killed", n)
        self.assertIn("interrupted", sum(self.attempts("killed").values(), []))

    def test_sigterm_to_an_agent_puts_its_entry_back_and_it_exits_3(self):
        n = 4
        self.enqueue(self.sweep_config("termed", trials=n, ms=200, steps=10))
        agent = self.start_agent("--lease", "10", ranks=2)
        self.poll(self.running_attempts("termed"), at_least=2)
        agent.send_signal(signal.SIGTERM)
        out = self.wait_agent(agent, expect=3, timeout=30)
        self.assertIn("checkpoints and stops (SIGUSR1)", out)
        e = self.entry("termed")
        self.assertEqual((e["status"], e["agent"], e["heartbeat_at"]), ("queued", None, None), e)
        self.assertIn("put back: its agent was stopped", e["message"])
        self.assertEqual(descendants(agent.pid), [])
        self.assertEqual(self.sql(self.running_attempts("termed")), "0")
        self.assertIn("interrupted", sum(self.attempts("termed").values(), []))
        # A later agent finishes it.
        self.wait_agent(self.start_agent("--once", ranks=2))
        e = self.entry("termed")
        self.assertEqual((e["status"], e["runs"]), ("done", 2), e)
        self.assert_each_trial_completed_once("termed", n)

    def test_bad_input_exits_2_with_a_clear_message(self):
        good = self.sweep_config("good", trials=1)
        env = dict(self.env)
        env.pop("XPSCALE_STORE", None)
        # No PostgreSQL store: none given, or sqlite.
        p = self.xpscale("enqueue", good, expect=2, env=env)
        self.assertIn("the queue lives in a PostgreSQL store", p.stderr)
        p = self.xpscale("enqueue", good, "--store", "sqlite", expect=2, env=env)
        self.assertIn("the queue lives in a PostgreSQL store", p.stderr)
        for cmd in (["queue", "list"], ["agent", "--once"]):
            p = self.xpscale(*cmd, expect=2, env=env)
            self.assertIn("postgresql://", p.stderr)
        # A config that does not load: where and what.
        bad = os.path.join(self.tmp, "bad.yaml")
        with open(bad, "w") as f:
            f.write("name: bad\nmethod: grid\nparameters:\n  x:\n    values: [1, 2]\n"
                    "no_such_key: 1\n")
        p = self.xpscale("enqueue", bad, "--store", self.url, expect=2)
        self.assertIn("bad.yaml:6", p.stderr)
        self.assertIn("no_such_key", p.stderr)
        # Bad queue names, wherever a queue is named.
        for args in (["enqueue", good, "--queue", "a b"], ["agent", "--queue", "../x", "--once"],
                     ["queue", "list", "--queue", "x;y"], ["queue", "pause", "a'b"]):
            p = self.xpscale(*args, "--store", self.url, expect=2)
            self.assertIn("a queue name is 1-64 letters, digits", p.stderr)
        # Cancel of what is not there.
        p = self.xpscale("queue", "cancel", "424242", "--store", self.url, expect=2)
        self.assertIn("no entry '424242'", p.stderr)
        p = self.xpscale("queue", "cancel", "nosuch", "--store", self.url, expect=2)
        self.assertIn("no entry of sweep 'nosuch'", p.stderr)
        # Twice the same sweep: refused naming the entry.
        first = self.enqueue(good)
        p = self.xpscale("enqueue", good, "--store", self.url, expect=2)
        self.assertIn("sweep 'good' is already queued on queue 'default' as entry %d" % first,
                      p.stderr)
        self.assertEqual(self.sql("SELECT count(*) FROM xpscale.queue"), "1")
        p = self.xpscale("queue", "cancel", str(first), "--store", self.url)
        self.assertIn("cancelled entry %d" % first, p.stdout)
        p = self.xpscale("queue", "cancel", str(first), "--store", self.url, expect=2)
        self.assertIn("is cancelled already; nothing to cancel", p.stderr)
        self.assertNotIn("Traceback", p.stderr)

    def test_a_changed_config_fails_its_entry_and_a_too_big_one_stays_queued(self):
        changed = self.sweep_config("changed", trials=3)
        self.enqueue(changed, priority=5)
        big = self.sweep_config("big", trials=2, resources={"ranks_per_trial": 2})
        self.enqueue(big, priority=9)
        # The config file is changed after it was enqueued.
        self.sweep_config("changed", trials=4)
        out = self.wait_agent(self.start_agent("--idle-exit", "1.5", ranks=1))
        e = self.entry("changed")
        self.assertEqual(e["status"], "failed", e)
        self.assertIn("changed since it was enqueued", e["message"])
        self.assertIn("parameters.x.values: 3 values -> 4 values", e["message"])
        self.assertIn("changed since it was enqueued", out)
        self.assertEqual(self.sql("SELECT count(*) FROM xpscale.sweeps WHERE name = 'changed'"),
                         "0")  # not run
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "out-changed")))
        # Two ranks per trial on a 1-rank agent: left for a bigger one.
        e = self.entry("big")
        self.assertEqual((e["status"], e["runs"]), ("queued", 0), e)
        self.assertNotIn("sweep 'big'", out)
        self.wait_agent(self.start_agent("--once", ranks=2))
        self.assertEqual(self.entry("big")["status"], "done")
        self.assert_each_trial_completed_once("big", 2)

    def test_the_store_password_never_shows(self):
        password = self.pg.password
        url = "postgresql://xpscale:%s@127.0.0.1:%d/xpscale" % (password, self.pg.port)
        env = dict(self.env)
        env.pop("PGPASSWORD")
        shown = []  # everything the user or `ps` sees
        p = self.xpscale("enqueue", self.sweep_config("secret", trials=4, ms=250, steps=4),
                         "--store", url, env=env)
        shown += [p.stdout, p.stderr]
        agent = self.start_agent("--once", ranks=2, url=url, env=env)
        self.poll(self.running_attempts("secret"), at_least=1)
        # The jobs' command lines, all of them (mpirun, its ranks, the
        # trials), sampled while they run.
        seen = set()
        own = cmdline(agent.pid)  # what the user typed, the password with it
        while agent.poll() is None:
            for pid in descendants(agent.pid):
                line = cmdline(pid)
                if line and line != own:  # not a child between fork and exec
                    seen.add(line)
            for fmt in ("table", "json"):
                p = self.xpscale("queue", "list", "--store", url,
                                 *(["--json"] if fmt == "json" else []), env=env)
                shown += [p.stdout, p.stderr]
            time.sleep(0.1)
        self.wait_agent(agent)
        self.assertEqual(self.entry("secret")["status"], "done")
        listed = self.xpscale("queue", "list", "--store", url, env=env).stdout
        self.assertRegex(listed, r"secret +4/4")
        shown.append(listed)
        self.assertTrue(any(" run " in c or " launch " in c for c in seen), seen)
        self.assertTrue(any("ext_trial.py" in c for c in seen), seen)
        for c in seen:
            self.assertNotIn(password, c)
        self.assertTrue(any("127.0.0.1:%d" % self.pg.port in c for c in seen), seen)
        shown += [self.output_of(agent), self.job_logs()]
        for s in shown:
            self.assertNotIn(password, s)
        self.assertIn("xpscale@127.0.0.1", self.output_of(agent))


if __name__ == "__main__":
    unittest.main()
