"""tests/support/pg-server and pg_server.py: the throwaway PostgreSQL server
of the store engine's tests and benchmarks. Real servers, real scram-sha-256
logins over TCP (psycopg2, Debian's python3-psycopg2), the watchdog."""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from pg_server import PgServer, PgServerError, SCRIPT  # noqa: E402  (tests/support)

import psycopg2  # noqa: E402

PORT_DIR = os.environ.get("XPSCALE_PG_PORT_DIR", "/tmp/xpscale-pg-ports")


def connect(url, password):
    return psycopg2.connect(url, password=password, connect_timeout=5)


def alive(pid):
    """True while pid runs (a zombie counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def postmaster_pid(directory):
    with open(os.path.join(directory, "data", "postmaster.pid")) as f:
        return int(f.readline())


def wait_until(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


class PgServerTest(unittest.TestCase):

    def test_two_servers_at_once(self):
        servers, errors = [None, None], []

        def start(i):
            try:
                servers[i] = PgServer()
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(e)

        threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        try:
            self.assertEqual(errors, [])
            a, b = servers
            print("two servers started at once in %.1f s" % elapsed, file=sys.stderr)
            self.assertNotEqual(a.port, b.port)
            self.assertNotEqual(a.password, b.password)
            for pg in (a, b):
                self.assertEqual(pg.url, "postgresql://xpscale@127.0.0.1:%d/xpscale" % pg.port)
                self.assertNotIn(pg.password, pg.url)
                self.assertEqual(os.stat(os.path.join(pg.dir, "password")).st_mode & 0o777, 0o600)
                with open(os.path.join(pg.dir, "env")) as f:
                    env_text = f.read()
                self.assertIn("export XPSCALE_TEST_PG_URL='%s'" % pg.url, env_text)
                self.assertIn("export PGPASSWORD='%s'" % pg.password, env_text)
                if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as nobody
                    self.assertNotEqual(os.stat("/proc/%d" % postmaster_pid(pg.dir)).st_uid, 0)
            with connect(a.url, a.password) as conn, conn.cursor() as cur:
                cur.execute("SELECT current_user, current_database(), "
                            "current_setting('listen_addresses'), current_setting('fsync')")
                self.assertEqual(cur.fetchone(), ("xpscale", "xpscale", "127.0.0.1", "off"))
                cur.execute("CREATE TABLE only_in_a (x int)")
            with connect(b.url, b.password) as conn, conn.cursor() as cur:
                cur.execute("SELECT to_regclass('only_in_a') IS NULL")
                self.assertTrue(cur.fetchone()[0])
            # The .env way, as a subprocess (libpq reads PGPASSWORD).
            out = subprocess.run(["/usr/lib/postgresql/15/bin/psql", b.url, "-Atc", "SELECT 7*6"],
                                 env=dict(os.environ, **b.env), capture_output=True,
                                 text=True, timeout=30)
            self.assertEqual((out.returncode, out.stdout.strip()), (0, "42"), out.stderr)
            # The superuser over the unix socket, and a database of one's own.
            self.assertEqual(a.psql("SELECT rolname FROM pg_roles WHERE rolname = 'xpscale'"), "xpscale")
            name = a.create_database()
            self.assertTrue(name.startswith("t_"))
            with connect(a.url_for_database(name), a.password) as conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE mine (x int)")
                cur.execute("SELECT current_database()")
                self.assertEqual(cur.fetchone()[0], name)
        finally:
            for pg in servers:
                if pg:
                    pg.stop()
        for pg in servers:
            if pg:
                self.assertFalse(os.path.lexists(os.path.join(PORT_DIR, str(pg.port))))

    def test_wrong_password_is_refused(self):
        with PgServer() as pg:
            with self.assertRaises(psycopg2.OperationalError) as e:
                connect(pg.url, "not-" + pg.password)
            self.assertIn("password authentication failed", str(e.exception))
            with self.assertRaises(psycopg2.OperationalError):
                connect(pg.url.replace("xpscale@", "postgres@"), pg.password)
            connect(pg.url, pg.password).close()

    def test_pause_and_resume_keep_data_and_port(self):
        with PgServer() as pg:
            with connect(pg.url, pg.password) as conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1), (2)")
            conn.close()
            pg.pause()
            with self.assertRaises(psycopg2.OperationalError):
                connect(pg.url, pg.password)
            pg.resume()
            with connect(pg.url, pg.password) as conn, conn.cursor() as cur:
                cur.execute("SELECT sum(x) FROM kept")
                self.assertEqual(cur.fetchone()[0], 3)
            conn.close()
            self.assertEqual(pg.psql("SELECT count(*) FROM kept"), "2")
            pg.resume()  # already running: nothing to do
        self.assertIsNone(pg.dir)

    def test_watchdog_stops_the_server_when_its_owner_exits(self):
        directory = tempfile.mkdtemp(prefix="xpscale-pg-", dir="/tmp")
        # The child starts the server with the default owner (its parent,
        # i.e. the child) and then sleeps until killed.
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import subprocess, sys, time\n"
             "url = subprocess.run([sys.argv[1], 'start', sys.argv[2]], check=True,\n"
             "                     stdout=subprocess.PIPE, text=True).stdout\n"
             "print(url, end='', flush=True)\n"
             "time.sleep(600)\n",
             SCRIPT, directory],
            stdout=subprocess.PIPE, text=True)
        try:
            url = child.stdout.readline().strip()
            self.assertTrue(url.startswith("postgresql://xpscale@127.0.0.1:"), url)
            with open(os.path.join(directory, "password")) as f:
                connect(url, f.read().strip()).close()
            pid = postmaster_pid(directory)
            with open(os.path.join(directory, "port")) as f:
                port = f.read().strip()
            self.assertTrue(alive(pid))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        t0 = time.monotonic()
        self.assertTrue(wait_until(lambda: not alive(pid) and not os.path.exists(directory), 5),
                        "server %d or %s still there 5 s after its owner died" % (pid, directory))
        print("watchdog cleaned up %.1f s after the owner died" % (time.monotonic() - t0),
              file=sys.stderr)
        self.assertFalse(os.path.lexists(os.path.join(PORT_DIR, port)))

    def test_watchdog_enforces_the_maximum_lifetime(self):
        pg = PgServer(max_seconds=2)
        pid = postmaster_pid(pg.dir)
        self.assertTrue(wait_until(lambda: not alive(pid) and not os.path.exists(pg.dir), 8))
        pg.stop()  # idempotent: nothing left to stop

    def test_start_failures_say_why(self):
        with tempfile.TemporaryDirectory(prefix="xpscale-pg-", dir="/tmp") as d:
            with open(os.path.join(d, "occupied"), "w"):
                pass
            out = subprocess.run([SCRIPT, "start", d], capture_output=True, text=True, timeout=60)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("is not empty", out.stderr)
        out = subprocess.run([SCRIPT, "psql", "/tmp/xpscale-pg-no-such-dir", "-c", "SELECT 1"],
                             capture_output=True, text=True, timeout=60)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("no server started there", out.stderr)
        with self.assertRaises(PgServerError):
            PgServer(owner=2 ** 22 + 12345)  # no such process


if __name__ == "__main__":
    unittest.main()
