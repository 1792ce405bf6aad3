"""A throwaway PostgreSQL server for Python tests and benchmarks (stdlib only).

Wraps tests/support/pg-server (next to this file): loopback only, a free
port, a watchdog that stops the server and removes its directory once this
process is gone, even if it is killed.

    sys.path.insert(0, ".../tests/support")
    from pg_server import PgServer

    with PgServer() as pg:
        env = dict(os.environ, **pg.env)       # PGPASSWORD, XPSCALE_TEST_PG_URL
        subprocess.run([..., pg.url], env=env)
        psycopg2.connect(pg.url, password=pg.password)
        pg.psql("SELECT count(*) FROM trials")  # superuser, unix socket -> "3"
        pg.pause(); ...; pg.resume()            # same port, same data
        url = pg.url_for_database(pg.create_database())
"""
import os
import secrets
import shutil
import subprocess
import tempfile

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pg-server")


class PgServerError(RuntimeError):
    pass


def _run(args, timeout):
    proc = subprocess.run([SCRIPT] + args, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise PgServerError("pg-server %s failed (exit %d):\n%s%s" % (
            " ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout


class PgServer:
    """One server in a fresh directory under base_dir (default /tmp: the
    directory must be reachable by the unprivileged user the server runs as
    when we are root, and short enough for a unix socket path).

    owner: the pid whose exit stops the server (default: this process).
    """

    def __init__(self, base_dir=None, owner=None, max_seconds=7200, timeout=120):
        self.timeout = timeout
        base = base_dir or os.environ.get("XPSCALE_PG_TMPDIR", "/tmp")
        self.dir = tempfile.mkdtemp(prefix="xpscale-pg-", dir=base)
        try:
            self.url = _run(["start", self.dir, "--owner", str(owner or os.getpid()),
                             "--max-seconds", str(max_seconds)], timeout).strip()
        except BaseException:
            # pg-server removes what it made; the empty directory is ours.
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        with open(os.path.join(self.dir, "password")) as f:
            self.password = f.read().strip()
        with open(os.path.join(self.dir, "port")) as f:
            self.port = int(f.read().strip())
        self.host = "127.0.0.1"
        self.user = "xpscale"
        self.database = "xpscale"

    @property
    def env(self):
        """Variables to add to a subprocess's environment."""
        return {"PGPASSWORD": self.password, "XPSCALE_TEST_PG_URL": self.url}

    def url_for_database(self, name):
        return "postgresql://xpscale@127.0.0.1:%d/%s" % (self.port, name)

    def create_database(self, prefix="t_"):
        """Creates an empty database owned by xpscale; returns its name."""
        name = prefix + secrets.token_hex(6)
        self.psql('CREATE DATABASE "%s" OWNER xpscale' % name)
        return name

    def psql(self, sql, database=None):
        """Runs SQL as the superuser over the unix socket; returns psql's
        unaligned, tuples-only output without the final newline."""
        args = ["psql", self.dir, "-v", "ON_ERROR_STOP=1", "-Atc", sql]
        if database:
            args += ["-d", database]
        out = _run(args, self.timeout)
        return out[:-1] if out.endswith("\n") else out

    def pause(self):
        """Stops the server (fast shutdown); resume() starts it again."""
        _run(["pause", self.dir], self.timeout)

    def resume(self):
        _run(["resume", self.dir], self.timeout)

    def stop(self):
        if self.dir:
            _run(["stop", self.dir], self.timeout)
            self.dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
