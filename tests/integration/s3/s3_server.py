#!/usr/bin/python3
"""Starts or stops s3rver (tests/integration/s3/node_modules, pinned by
package-lock.json) on a free loopback port, for ctest fixtures and the
benchmark.

  s3_server.py start --state DIR [--bucket NAME ...]   # prints the endpoint
  s3_server.py proxy --state DIR [--name NAME] [fault_proxy.py options]
  s3_server.py oauth --state DIR --name NAME [--lifetime S]  # gcs_oauth_server.py, NAME_key.json
  s3_server.py stop --state DIR                          # all

DIR receives s3rver's data, its log, `s3rver.pid` and `endpoint`
(http://127.0.0.1:PORT); `proxy` starts fault_proxy.py in front of that
server and writes NAME.pid, NAME_endpoint and the proxy's log NAME.log
(NAME: "proxy" unless --name says otherwise; several may run). s3rver accepts the access key S3RVER (any secret:
it does not verify SigV4) and answers 403 InvalidAccessKeyId to any other.
"""
import argparse
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
S3RVER = HERE / "node_modules" / "s3rver" / "bin" / "s3rver.js"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def start(state, buckets):
    if not S3RVER.exists():
        sys.exit(f"s3_server.py: {S3RVER} is missing; run scripts/setup "
                 f"(or `npm ci` in {HERE})")
    stop_all(state)
    data = state / "data"
    shutil.rmtree(data, ignore_errors=True)  # every run starts from empty buckets
    data.mkdir(parents=True)
    for attempt in range(5):  # another process may take the port meanwhile
        port = free_port()
        args = ["node", "--openssl-legacy-provider", str(S3RVER), "-d", str(data),
                "-a", "127.0.0.1", "-p", str(port), "--silent"]
        for b in buckets:
            args += ["--configure-bucket", b]
        log = open(state / "s3rver.log", "ab")
        proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        if wait_listening(port, proc, 60):
            (state / "s3rver.pid").write_text(str(proc.pid))
            endpoint = f"http://127.0.0.1:{port}"
            (state / "endpoint").write_text(endpoint)
            print(endpoint)
            return
        if proc.poll() is None:
            proc.kill()
    sys.exit(f"s3_server.py: s3rver did not start; see {state / 's3rver.log'}")


def start_proxy(state, name, proxy_args, script="fault_proxy.py"):
    stop(state, quiet=True, name=f"{name}.pid")
    target = (state / "endpoint").read_text().removeprefix("http://")
    port_file = state / f"{name}.port"
    port_file.unlink(missing_ok=True)
    (state / f"{name}.log").unlink(missing_ok=True)
    log = open(state / f"{name}.out", "ab")
    proc = subprocess.Popen([sys.executable, str(HERE / script), "--target", target,
                             "--port-file", str(port_file), "--log", str(state / f"{name}.log")]
                            + proxy_args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"s3_server.py: {script} did not start; see {state / name}.out")
        time.sleep(0.1)
    (state / f"{name}.pid").write_text(str(proc.pid))
    endpoint = f"http://127.0.0.1:{port_file.read_text()}"
    (state / f"{name}_endpoint").write_text(endpoint)
    print(endpoint)


def alive(pid):
    """True while pid runs; a zombie (dead, not yet reaped by an init that
    may never reap it in a container) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop(state, quiet=False, name="s3rver.pid"):
    pid_file = state / name
    if not pid_file.exists():
        if not quiet:
            print("s3_server.py: not running")
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)  # its own session: the server and nothing else
        for _ in range(50):
            if not alive(pid):
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink()


def stop_all(state):
    for pid_file in state.glob("*.pid"):
        stop(state, quiet=True, name=pid_file.name)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["start", "proxy", "oauth", "stop"])
    p.add_argument("--state", required=True, type=pathlib.Path)
    p.add_argument("--bucket", action="append", default=[])
    p.add_argument("--name", default="proxy")
    a, proxy_args = p.parse_known_args()
    if proxy_args and a.action not in ("proxy", "oauth"):
        p.error(f"unknown arguments {proxy_args}")
    a.state.mkdir(parents=True, exist_ok=True)
    if a.action == "start":
        start(a.state, a.bucket)
    elif a.action == "proxy":
        start_proxy(a.state, a.name, proxy_args)
    elif a.action == "oauth":  # NAME_key.json: a service-account key for it
        start_proxy(a.state, a.name, ["--key-file", str(a.state / f"{a.name}_key.json")]
                    + proxy_args, script="gcs_oauth_server.py")
    else:
        stop_all(a.state)


if __name__ == "__main__":
    main()
