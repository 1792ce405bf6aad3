"""xpscale.data over S3: shards put on s3rver (ctest fixture s3rver) with
boto3 read through ShardedDataset from s3:// URLs give exactly what the
same shards give from file:// (order, fields, resume state), also through
xpscale.data.DataLoader with worker processes, the node-local cache and
shards without sidecars (scanned over ranged GETs); errors name the URL
and never a secret.

Environment (set by CMake): XPSCALE_BIN, XPSCALE_S3_STATE (the fixture's
state directory, whose `endpoint` file names s3rver), PYTHONPATH (the
built package).
"""
import collections
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import unittest
import uuid
import warnings

import boto3
import botocore.config

BUCKET = "xpscale-test"


def endpoint():
    with open(os.path.join(os.environ["XPSCALE_S3_STATE"], "endpoint")) as f:
        return f.read().strip()


def s3_env(base=None, key_id="S3RVER", secret="s3rver-secret"):
    env = dict(os.environ if base is None else base, AWS_ENDPOINT_URL=endpoint(),
               AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret,
               AWS_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               # gs:// goes to the same server through GCS's configuration
               GCS_ENDPOINT_URL=endpoint(), GOOGLE_ACCESS_KEY_ID=key_id,
               GOOGLE_SECRET_ACCESS_KEY=secret, BOTO_CONFIG="/dev/null")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3",
                 "AWS_DEFAULT_REGION"):
        env.pop(name, None)
    return env


# The native S3 source reads the environment once per process, at its first
# s3:// URL: set it before xpscale.data is used.
_env = s3_env()
for _name in set(os.environ) - set(_env):
    del os.environ[_name]
os.environ.update(_env)

import xpscale  # noqa: E402
import xpscale._native as native  # noqa: E402
import xpscale.data as xd  # noqa: E402

PACKAGE_DIR = os.path.dirname(os.path.dirname(xpscale.__file__))
XPSCALE_BIN = os.environ.get("XPSCALE_BIN") or os.path.join(
    os.path.dirname(PACKAGE_DIR), "launcher", "xpscale")
CSV_ROWS = 53
FOREIGN_COUNTS = [8, 5, 9]


def keys(iterable):
    return [s["__key__"] for s in iterable]


def fields(sample):
    return {k: v for k, v in sample.items() if not k.startswith("__")}


def cls_int(sample):
    return int(sample["cls"])


def quiet(urls, **kw):
    """A ShardedDataset, without the warning about shards without sidecars."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return xd.ShardedDataset(urls, **kw)


class DataOverS3Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="xpscale-data-s3-")
        cls.prefix = f"pydata-{uuid.uuid4().hex[:10]}"
        cls.s3 = f"s3://{BUCKET}/{cls.prefix}"
        # `xpscale shard` of a CSV: sidecars and a manifest.
        with open(os.path.join(cls.tmp, "rows.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["cls", "txt"])
            for i in range(CSV_ROWS):
                w.writerow([i, "y" * (i * 137 % 3000)])
        p = subprocess.run([XPSCALE_BIN, "shard", os.path.join(cls.tmp, "rows.csv"), "--out",
                            os.path.join(cls.tmp, "cli"), "--shards", "5", "--name", "train"],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"xpscale shard failed: {p.stdout}{p.stderr}")
        # Shards by Python's tarfile (no sidecars), one of them gzip.
        os.makedirs(os.path.join(cls.tmp, "foreign"))
        i = 0
        for n, count in enumerate(FOREIGN_COUNTS):
            name = f"part-{n:02d}.tar" + (".gz" if n == 1 else "")
            with tarfile.open(os.path.join(cls.tmp, "foreign", name),
                              "w:gz" if n == 1 else "w") as tar:
                for _ in range(count):
                    for ext, data in (("cls", str(i).encode()), ("bin", bytes([i]) * (97 * i))):
                        info = tarfile.TarInfo(f"s{i:05d}.{ext}")
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
                    i += 1
        client = boto3.client(
            "s3", endpoint_url=endpoint(), aws_access_key_id="S3RVER",
            aws_secret_access_key="s3rver-secret", region_name="us-east-1",
            config=botocore.config.Config(s3={"addressing_style": "path"}))
        for sub in ("cli", "foreign"):
            for name in sorted(os.listdir(os.path.join(cls.tmp, sub))):
                client.upload_file(os.path.join(cls.tmp, sub, name), BUCKET,
                                   f"{cls.prefix}/{sub}/{name}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def local(self, sub, name=""):
        return os.path.join(self.tmp, sub, name)

    def test_a_manifest_on_s3_reads_as_the_same_manifest_on_disk(self):
        for rank, world, buf in ((0, 1, 0), (0, 2, 20000), (1, 2, 20000), (2, 3, None)):
            with self.subTest(rank=rank, world=world, buf=buf):
                kw = dict(seed=12, rank=rank, world_size=world, shuffle_buffer_bytes=buf)
                disk = xd.ShardedDataset(self.local("cli", "train.manifest.json"), **kw)
                remote = xd.ShardedDataset(f"{self.s3}/cli/train.manifest.json", **kw)
                self.assertEqual(remote._dataset.digest, disk._dataset.digest)
                for epoch in (0, 1):
                    want = [fields(s) for s in disk]
                    got = list(remote)
                    self.assertEqual([fields(s) for s in got], want)
                    self.assertTrue(all(s["__url__"].startswith(self.s3 + "/cli/train-")
                                        for s in got), got[0]["__url__"])
                self.assertGreater(remote.stats()["bytes"], 0)

    def test_gs_urls_read_the_bucket_through_the_gcs_configuration(self):
        gs = f"gs://{BUCKET}/{self.prefix}"
        kw = dict(seed=5, rank=1, world_size=2, shuffle_buffer_bytes=20000)
        for urls in (f"{gs}/cli/train.manifest.json", f"{gs}/cli/train-{{000000..000004}}.tar"):
            with self.subTest(urls=urls):
                disk = xd.ShardedDataset(self.local("cli", "train.manifest.json"), **kw)
                remote = xd.ShardedDataset(urls, **kw)
                self.assertEqual(remote._dataset.digest, disk._dataset.digest)
                got = list(remote)
                self.assertEqual([fields(s) for s in got], [fields(s) for s in disk])
                self.assertTrue(all(s["__url__"].startswith(gs + "/cli/train-") for s in got),
                                got[0]["__url__"])

    def test_foreign_shards_on_s3_are_scanned_and_read_as_on_disk(self):
        names = sorted(os.listdir(self.local("foreign")))
        urls = [f"{self.s3}/foreign/{n}" for n in names]
        for remote_urls in (urls, f"{self.s3}/foreign/"):
            with self.subTest(urls=remote_urls):
                with self.assertWarnsRegex(UserWarning, r"\b3 of 3 shards have no \.idx"):
                    remote = xd.ShardedDataset(remote_urls, seed=3, rank=0, world_size=1,
                                               shuffle_buffer_bytes=2000)
                disk = quiet([self.local("foreign", n) for n in names], seed=3, rank=0,
                             world_size=1, shuffle_buffer_bytes=2000)
                self.assertEqual(remote.urls, urls)
                want = [dict(fields(s), key=s["__key__"]) for s in disk]
                got = [dict(fields(s), key=s["__key__"]) for s in remote]
                self.assertEqual(got, want)
                self.assertEqual(len(got), sum(FOREIGN_COUNTS))

    # The workers are forked from a process whose S3 client holds the
    # keep-alive connections it opened the dataset over: each must make its
    # own (sharding/src/source.cpp, PerProcess), or they read each other's
    # answers on the shared sockets (this test and the next caught that).
    def test_dataloader_workers_over_s3_give_the_disk_sequence_and_resume(self):
        kw = dict(seed=5, rank=1, world_size=2, shuffle_buffer_bytes=15000)
        disk = xd.ShardedDataset(self.local("cli", "train.manifest.json"), **kw)
        want = [cls_int(s) for s in disk]
        remote = xd.ShardedDataset(f"{self.s3}/cli/train.manifest.json", **kw)
        loader = xd.DataLoader(remote.map(cls_int), batch_size=4, num_workers=2)
        self.assertEqual([x for b in loader for x in b.tolist()], want)
        # Interrupted after 2 batches, resumed from a state taken on disk.
        disk = xd.ShardedDataset(self.local("cli", "train.manifest.json"), **kw)
        it = iter(disk)
        head = [cls_int(next(it)) for _ in range(8)]
        remote = xd.ShardedDataset(f"{self.s3}/cli/train.manifest.json", **kw)
        remote.load_state_dict(disk.state_dict())
        loader = xd.DataLoader(remote.map(cls_int), batch_size=4, num_workers=2)
        self.assertEqual(head + [x for b in loader for x in b.tolist()], want)
        self.assertEqual(remote.epoch, 1)

    def test_a_plain_torch_dataloader_over_s3_loses_and_repeats_nothing(self):
        import torch.utils.data as torch_data
        kw = dict(seed=2, rank=0, world_size=1, shuffle_buffer_bytes=15000)
        want = collections.Counter(cls_int(s) for s in xd.ShardedDataset(
            self.local("cli", "train.manifest.json"), **kw))
        remote = xd.ShardedDataset(f"{self.s3}/cli/train.manifest.json", **kw)
        loader = torch_data.DataLoader(remote.map(cls_int), batch_size=None, num_workers=2,
                                       worker_init_fn=lambda _: warnings.simplefilter("ignore"))
        self.assertEqual(collections.Counter(int(x) for x in loader), want)

    def test_the_node_local_cache_holds_s3_shards(self):
        cache = os.path.join(self.tmp, "cache")
        kw = dict(seed=7, rank=0, world_size=1, shuffle_buffer_bytes=5000)
        want = [fields(s) for s in xd.ShardedDataset(self.local("cli", "train.manifest.json"),
                                                      **kw)]
        for _ in range(2):  # fills the cache, then reads from it
            remote = xd.ShardedDataset(f"{self.s3}/cli/train.manifest.json", cache_dir=cache,
                                       **kw)
            self.assertEqual([fields(s) for s in remote], want)
        self.assertTrue(any(n.endswith(".shard") for n in os.listdir(cache)), os.listdir(cache))

    def test_a_missing_object_is_a_data_error_naming_it(self):
        url = f"{self.s3}/cli/no-such-shard.tar"
        with self.assertRaises(xd.DataError) as e:
            xd.ShardedDataset(url)
        self.assertIsInstance(e.exception, OSError)
        self.assertIn(url, str(e.exception))

    def test_refused_credentials_are_a_data_error_without_the_secret(self):
        # The source reads the environment once per process: a child with a
        # key that s3rver does not know.
        code = textwrap.dedent(f"""
            import json, xpscale.data as xd
            try:
                xd.ShardedDataset({self.s3 + '/cli/train.manifest.json'!r})
                print(json.dumps(None))
            except Exception as e:
                print(json.dumps([isinstance(e, xd.DataError), isinstance(e, OSError), str(e)]))
        """)
        env = s3_env(key_id="AKIAOTHERKEY", secret="verysecret-do-not-print")
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        out = json.loads(p.stdout)
        self.assertIsNotNone(out, "s3rver refuses unknown keys")
        is_data_error, is_os_error, message = out
        self.assertTrue(is_data_error and is_os_error, message)
        self.assertIn("train.manifest.json", message)
        self.assertNotIn("verysecret", message + p.stderr)


if __name__ == "__main__":
    unittest.main()
