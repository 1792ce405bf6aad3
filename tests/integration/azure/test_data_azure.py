"""xpscale.data over Azure Blob: `xpscale shard --upload az://` to Azurite
(ctest fixture azurite), then ShardedDataset reads az:// manifests, prefixes
and patterns as it reads the same shards from disk, also through
DataLoader workers; a wrong key is a data error without the key.

Environment (set by CMake): XPSCALE_BIN, XPSCALE_AZURE_STATE (the fixture's
state directory: endpoint, account, key), PYTHONPATH (the built package).
"""
import csv
import os
import shutil
import subprocess
import tempfile
import unittest
import uuid

STATE = os.environ["XPSCALE_AZURE_STATE"]


def state(name):
    with open(os.path.join(STATE, name)) as f:
        return f.read().strip()


def connection_string(key=None):
    return (f"AccountName={state('account')};AccountKey={key or state('key')};"
            f"BlobEndpoint={state('endpoint')}")


# The native Azure source reads the environment once per process, at its
# first az:// URL: set it before xpscale.data is used.
os.environ["AZURE_STORAGE_CONNECTION_STRING"] = connection_string()

import xpscale.data as xd  # noqa: E402

XPSCALE_BIN = os.environ["XPSCALE_BIN"]
ROWS = 61


def fields(sample):
    return {k: v for k, v in sample.items() if not k.startswith("__")}


class DataOverAzureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="xpscale-data-az-")
        cls.az = f"az://shards/pydata-{uuid.uuid4().hex[:10]}"
        with open(os.path.join(cls.tmp, "rows.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["cls", "txt"])
            for i in range(ROWS):
                w.writerow([i, "z" * (i * 131 % 2500)])
        p = subprocess.run([XPSCALE_BIN, "shard", os.path.join(cls.tmp, "rows.csv"), "--out",
                            os.path.join(cls.tmp, "out"), "--shards", "4", "--name", "train",
                            "--upload", cls.az],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"xpscale shard failed: {p.stdout}{p.stderr}")
        cls.printed = p.stdout + p.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def disk(self, **kw):
        return xd.ShardedDataset(os.path.join(self.tmp, "out", "train.manifest.json"), **kw)

    def test_az_manifest_prefix_and_pattern_read_as_the_shards_on_disk(self):
        kw = dict(seed=9, rank=0, world_size=2, shuffle_buffer_bytes=30000)
        for urls in (f"{self.az}/train.manifest.json", f"{self.az}/",
                     f"{self.az}/train-{{000000..000003}}.tar"):
            with self.subTest(urls=urls):
                disk, remote = self.disk(**kw), xd.ShardedDataset(urls, **kw)
                self.assertEqual(remote._dataset.digest, disk._dataset.digest)
                got = list(remote)
                self.assertEqual([fields(s) for s in got], [fields(s) for s in disk])
                self.assertTrue(all(s["__url__"].startswith(self.az + "/train-") for s in got))

    def test_dataloader_workers_over_az_give_the_disk_sequence(self):
        kw = dict(seed=4, rank=1, world_size=2, shuffle_buffer_bytes=20000)
        remote = xd.ShardedDataset(f"{self.az}/train.manifest.json", **kw)
        loader = xd.DataLoader(remote, batch_size=None, num_workers=2)
        self.assertEqual(sorted(int(s["cls"]) for s in loader),
                         sorted(int(s["cls"]) for s in self.disk(**kw)))

    def test_a_wrong_key_is_a_data_error_without_the_key(self):
        wrong = "d3Jvbmcta2V5LW5ldmVyLXNob3duLTRhOWI="  # base64 of a key Azurite refuses
        env = dict(os.environ, AZURE_STORAGE_CONNECTION_STRING=connection_string(wrong))
        code = ("import xpscale.data as xd, sys\n"
                "try:\n"
                f"    xd.ShardedDataset('{self.az}/train.manifest.json')\n"
                "except xd.DataError as e:\n"
                "    print(e); sys.exit(3)\n")
        p = subprocess.run(["/usr/bin/python3", "-c", code], env=env, capture_output=True,
                           text=True, timeout=120)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 3, out)
        self.assertIn("403", out)
        self.assertIn(self.az, out)
        for secret in (wrong, state("key")):
            self.assertNotIn(secret, out)
            self.assertNotIn(secret, self.printed)


if __name__ == "__main__":
    unittest.main()
