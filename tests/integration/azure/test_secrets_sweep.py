"""Cloud secrets never leave the environment they were given in: sweeps of
the C++ Fashion-MNIST trainer (in-process trials, 2 ranks under mpiexec)
read their shards from Azurite (az://, Shared Key) and from the GCS
stand-in (gs:// through s3rver, with an HMAC secret and with a
service-account key whose tokens gcs_oauth_server.py issues), and one
sweep with a wrong Azure key fails its trial on the 403. After each, the
known secrets are looked for in everything xpscale left: what it printed,
every file under out_dir (the store, its WAL, trial logs, checkpoints),
`xpscale report` in every format and its HTML page, and, sampled while the
sweep ran, every process's command line (`ps`).

Environment (set by CMake): XPSCALE_BIN, XPSCALE_FMNIST (the trainer),
XPSCALE_AZURE_STATE and XPSCALE_S3_STATE (the fixtures' state
directories), XPSCALE_TEST_TMP.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import unittest
import uuid

FMNIST = "/usr/share/datasets/fashion-mnist"
MPI = ["mpiexec", "--allow-run-as-root", "--oversubscribe"]
AZURE = os.environ.get("XPSCALE_AZURE_STATE", "")
S3 = os.environ.get("XPSCALE_S3_STATE", "")
# s3rver checks no signatures: any HMAC secret passes, so this one is ours.
GS_HMAC_SECRET = "gs-hmac-secret-" + uuid.uuid4().hex
WRONG_AZURE_KEY = "d3Jvbmcta2V5LXRoYXQtbXVzdC1uZXZlci1zaG93LTk4NzY1NDMyMQ=="


def read(*parts):
    with open(os.path.join(*parts)) as f:
        return f.read().strip()


def base_env():
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               BOTO_CONFIG="/dev/null", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY",
                 "AZURE_STORAGE_SAS_TOKEN", "GOOGLE_ACCESS_KEY_ID", "GOOGLE_SECRET_ACCESS_KEY",
                 "GOOGLE_APPLICATION_CREDENTIALS", "GCS_ENDPOINT_URL"):
        env.pop(name, None)
    return env


def azure_env(key):
    return dict(base_env(), AZURE_STORAGE_CONNECTION_STRING=(
        f"AccountName={read(AZURE, 'account')};AccountKey={key};"
        f"BlobEndpoint={read(AZURE, 'endpoint')}"))


def gs_hmac_env():
    return dict(base_env(), GCS_ENDPOINT_URL=read(S3, "endpoint"),
                GOOGLE_ACCESS_KEY_ID="S3RVER", GOOGLE_SECRET_ACCESS_KEY=GS_HMAC_SECRET)


def gs_key_env():
    return dict(base_env(), GCS_ENDPOINT_URL=read(S3, "oauth_endpoint"),
                GOOGLE_APPLICATION_CREDENTIALS=os.path.join(S3, "oauth_key.json"))


def pem_body_lines():
    """The private key's base64 lines: any one of them is a leak."""
    with open(os.path.join(S3, "oauth_key.json")) as f:
        pem = json.load(f)["private_key"]
    return [l for l in pem.splitlines() if l and not l.startswith("-----")]


class CommandLines(threading.Thread):
    """Every process's command line, sampled every 50 ms until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen, self.done = set(), threading.Event()

    def run(self):
        while not self.done.is_set():
            p = subprocess.run(["ps", "-eo", "args", "ww"], capture_output=True, text=True)
            self.seen.update(p.stdout.splitlines())
            self.done.wait(0.05)

    def stop(self):
        self.done.set()
        self.join()
        return "\n".join(sorted(self.seen))


@unittest.skipUnless(os.path.isdir(FMNIST), "dataset-fashion-mnist is not installed")
class SecretsNeverLeaveTheEnvironmentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        base = os.environ.get("XPSCALE_TEST_TMP")
        if base:
            os.makedirs(base, exist_ok=True)
        cls.tmp = tempfile.mkdtemp(prefix="secrets-", dir=base)
        run = uuid.uuid4().hex[:10]
        cls.az = f"az://shards/secrets-{run}"
        cls.gs = f"gs://xpscale-test/secrets-{run}"
        for env, prefix in ((azure_env(read(AZURE, "key")), cls.az), (gs_key_env(), cls.gs)):
            p = subprocess.run([os.environ["XPSCALE_BIN"], "shard", FMNIST, "--split", "train",
                                "--range", "0:2000", "--out", os.path.join(cls.tmp, "shards"),
                                "--shards", "2", "--upload", prefix],
                               env=env, capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                raise RuntimeError(p.stdout + p.stderr)
            shutil.rmtree(os.path.join(cls.tmp, "shards"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def sweep(self, name, env, prefix):
        """Runs a one-trial sweep; returns (exit status, everything xpscale left, as text)."""
        out = os.path.join(self.tmp, name)
        cfg = {"method": "grid", "metric": {"name": "test_accuracy", "goal": "maximize"},
               "parameters": {"lr": {"value": 0.05}, "hidden": {"value": 32},
                              "batch_size": {"value": 128}, "epochs": {"value": 1}},
               "data": {"train": {"manifest": prefix + "/train.manifest.json", "seed": 3}},
               "resources": {"ranks_per_trial": 2}, "out_dir": out}
        path = os.path.join(self.tmp, name + ".yaml")
        with open(path, "w") as f:
            json.dump(cfg, f)
        ps = CommandLines()
        ps.start()
        try:
            p = subprocess.run(MPI + ["-n", "2", os.environ["XPSCALE_FMNIST"], "--sweep", path],
                               env=env, capture_output=True, text=True, timeout=600)
        finally:
            command_lines = ps.stop()
        # The sampling saw the sweep's own processes.
        self.assertIn(os.environ["XPSCALE_FMNIST"] + " --sweep " + path, command_lines)
        left = {"printed": p.stdout + p.stderr, "ps": command_lines}
        for root, _, files in os.walk(out):
            for f in files:
                with open(os.path.join(root, f), "rb") as data:
                    left[os.path.relpath(os.path.join(root, f), out)] = data.read().decode(
                        "latin-1")
        xpscale = os.environ["XPSCALE_BIN"]
        for fmt in ("table", "csv", "json"):
            r = subprocess.run([xpscale, "report", out, "--format", fmt], env=env,
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            left["report " + fmt] = r.stdout + r.stderr
        html = os.path.join(self.tmp, name + ".html")
        r = subprocess.run([xpscale, "report", out, "--html", html], env=env,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(html, encoding="utf-8") as f:
            left["report html"] = f.read()
        self.assertIn("xpscale.db", left)
        return p.returncode, left, out

    def assert_nowhere(self, left, secrets):
        for where, text in left.items():
            for secret in secrets:
                self.assertNotIn(secret, text, f"a secret in {where}")

    def status(self, out):
        con = sqlite3.connect(os.path.join(out, "xpscale.db"))
        try:
            return con.execute("SELECT status, reason FROM trials").fetchall()
        finally:
            con.close()

    def test_azure_shared_key(self):
        key = read(AZURE, "key")
        rc, left, out = self.sweep("az", azure_env(key), self.az)
        self.assertEqual(rc, 0, left["printed"][-3000:])
        self.assertEqual(self.status(out)[0][0], "completed")
        # The key, and its halves (a key cut by a log line's width).
        self.assert_nowhere(left, [key, key[:24], key[24:48]])

    def test_azure_wrong_key_fails_the_trial_without_the_key(self):
        rc, left, out = self.sweep("az-wrong", azure_env(WRONG_AZURE_KEY), self.az)
        rows = self.status(out)
        self.assertEqual(rows[0][0], "failed", (rc, rows, left["printed"][-3000:]))
        # The store and the report say why, naming the account, not the key.
        self.assertIn("403", rows[0][1])
        self.assertIn(read(AZURE, "account"), rows[0][1])
        self.assertIn("403", left["report json"])
        self.assert_nowhere(left, [WRONG_AZURE_KEY, WRONG_AZURE_KEY[:24], read(AZURE, "key")])

    def test_gcs_hmac_key(self):
        rc, left, out = self.sweep("gs-hmac", gs_hmac_env(), self.gs)
        self.assertEqual(rc, 0, left["printed"][-3000:])
        self.assertEqual(self.status(out)[0][0], "completed")
        self.assert_nowhere(left, [GS_HMAC_SECRET])

    def test_gcs_service_account_key(self):
        rc, left, out = self.sweep("gs-key", gs_key_env(), self.gs)
        self.assertEqual(rc, 0, left["printed"][-3000:])
        self.assertEqual(self.status(out)[0][0], "completed")
        # The key's PEM lines and every token the server issued ("ya29.").
        self.assert_nowhere(left, pem_body_lines() + ["ya29."])


if __name__ == "__main__":
    unittest.main()
