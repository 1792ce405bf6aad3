#!/usr/bin/python3
"""bench/loader's boto3 peer: downloads every object under a prefix with
boto3's download_fileobj (s3transfer: ranged parts on a thread pool, its
default TransferConfig) into a writer that only counts, `--threads`
objects at a time over a pool of `--threads` connections, and prints one
JSON line like s3_bench's. Timed from after the listing to the last byte."""
import argparse
import concurrent.futures
import json
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


class Discard:
    def __init__(self):
        self.bytes = 0
        self.sum = 0

    def write(self, data):
        # s3_bench's checksum: the bytes at object offsets 0, 4096, 8192, ...
        self.sum += sum(data[(4096 - self.bytes % 4096) % 4096::4096])
        self.bytes += len(data)
        return len(data)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", default="")
    p.add_argument("--threads", type=int, default=16)
    a = p.parse_args()
    client = boto3.client("s3", endpoint_url=a.endpoint,
                          config=Config(s3={"addressing_style": "path"},
                                        max_pool_connections=a.threads))
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=a.bucket, Prefix=a.prefix) for o in page.get("Contents", [])]
    config = TransferConfig()

    def fetch(key):
        sink = Discard()
        client.download_fileobj(a.bucket, key, sink, Config=config)
        return sink

    cpu0 = time.process_time()
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(a.threads) as pool:
        sinks = list(pool.map(fetch, keys))
    seconds = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    total = sum(s.bytes for s in sinks)
    print(json.dumps({"bench": "loader", "measure": "boto3", "objects": len(keys),
                      "bytes": total, "seconds": round(seconds, 4),
                      "mib_per_s": round(total / (1 << 20) / seconds, 2),
                      "cpu_s": round(cpu, 4),
                      "threads": a.threads, "part_size": config.multipart_chunksize,
                      "checksum": sum(s.sum for s in sinks)}))


if __name__ == "__main__":
    main()
