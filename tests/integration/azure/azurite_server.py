#!/usr/bin/python3
"""Installs, starts or stops Azurite's blob service (npm, pinned by
package-lock.json beside this file) on a free loopback port, and the fault
proxy of the S3 tests (../s3/fault_proxy.py) in front of it, for ctest
fixtures.

  azurite_server.py install                 # npm ci, when node_modules lacks a pinned package
  azurite_server.py start --state DIR [--container NAME ...]   # prints the blob endpoint
  azurite_server.py proxy --state DIR [--name NAME] [fault_proxy.py options]
  azurite_server.py stop --state DIR        # all

DIR receives Azurite's workspace and log, azurite.pid, `endpoint`
(http://127.0.0.1:PORT/ACCOUNT, Azurite's path style), `account` and
`key` (the test account, made up per run so that a test can grep for the
key; Azurite reads it from AZURITE_ACCOUNTS); `proxy` writes NAME.pid,
NAME_endpoint (http://127.0.0.1:PROXYPORT/ACCOUNT) and NAME.log.
Containers are made with @azure/storage-blob, whose REST version is newer
than Azurite 3.37 knows: Azurite runs with --skipApiVersionCheck (xpscale
asks for 2025-11-05, which it knows).
"""
import argparse
import base64
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
MODULES = HERE / "node_modules"
AZURITE = MODULES / "azurite" / "dist" / "src" / "blob" / "main.js"
PINNED = [MODULES / "azurite" / "package.json", MODULES / "@azure" / "storage-blob" / "package.json"]
FAULT_PROXY = HERE.parent / "s3" / "fault_proxy.py"
ACCOUNT = "xpscaletest"


def install():
    """npm ci from the lockfile, only when a pinned package is missing."""
    if all(p.exists() for p in PINNED):
        return
    import fcntl
    with open(HERE / "package-lock.json") as f:  # ctest may start two installs at once
        fcntl.flock(f, fcntl.LOCK_EX)
        if all(p.exists() for p in PINNED):
            return
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=HERE, stdin=subprocess.DEVNULL, timeout=600)
        if r.returncode != 0:
            sys.exit(f"azurite_server.py: `npm ci` in {HERE} failed ({r.returncode})")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port, proc, seconds):
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


def spawn(args, log_path, env=None):
    log = open(log_path, "ab")
    # Its own session: stop() ends the process group and nothing else.
    return subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env)


def create_containers(endpoint, key, names):
    script = """
const { BlobServiceClient, StorageSharedKeyCredential } = require("@azure/storage-blob");
const [endpoint, account, ...names] = process.argv.slice(1);
const key = process.env.XPSCALE_AZURITE_KEY;  // not on the command line, which `ps` shows
const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(account, key));
(async () => { for (const n of names) await service.getContainerClient(n).createIfNotExists(); })()
  .catch((e) => { console.error(e.message); process.exit(1); });
"""
    r = subprocess.run(["node", "-e", script, endpoint, ACCOUNT] + names, cwd=HERE,
                       env=dict(os.environ, XPSCALE_AZURITE_KEY=key),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        sys.exit(f"azurite_server.py: creating containers failed: {r.stderr.strip()}")


def start(state, containers):
    install()
    stop_all(state)
    work = state / "azurite"
    shutil.rmtree(work, ignore_errors=True)  # every run starts from an empty account
    work.mkdir(parents=True)
    key = base64.b64encode(secrets.token_bytes(64)).decode()
    env = dict(os.environ, AZURITE_ACCOUNTS=f"{ACCOUNT}:{key}")
    for _ in range(5):  # another process may take the port meanwhile
        port = free_port()
        proc = spawn(["node", str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                      "--location", str(work), "--silent", "--disableTelemetry",
                      "--disableProductStyleUrl", "--skipApiVersionCheck"],
                     state / "azurite.log", env)
        if listening(port, proc, 60):
            (state / "azurite.pid").write_text(str(proc.pid))
            (state / "account").write_text(ACCOUNT)
            (state / "key").write_text(key)
            endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
            create_containers(endpoint, key, containers)
            (state / "endpoint").write_text(endpoint)
            print(endpoint)
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    sys.exit(f"azurite_server.py: Azurite did not start; see {state / 'azurite.log'}")


def start_proxy(state, name, proxy_args):
    stop(state, name + ".pid")
    endpoint = (state / "endpoint").read_text()
    target = endpoint.removeprefix("http://").split("/")[0]
    port_file = state / f"{name}.port"
    port_file.unlink(missing_ok=True)
    (state / f"{name}.log").unlink(missing_ok=True)
    proc = spawn([sys.executable, str(FAULT_PROXY), "--target", target, "--port-file",
                  str(port_file), "--log", str(state / f"{name}.log")] + proxy_args,
                 state / f"{name}.out")
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"azurite_server.py: the fault proxy did not start; see {state / name}.out")
        time.sleep(0.1)
    (state / f"{name}.pid").write_text(str(proc.pid))
    proxied = f"http://127.0.0.1:{port_file.read_text()}/{ACCOUNT}"
    (state / f"{name}_endpoint").write_text(proxied)
    print(proxied)


def running(pid):
    """A zombie (dead, never reaped in a container) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop(state, pid_name):
    pid_file = state / pid_name
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            if not running(pid):
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink()


def stop_all(state):
    for pid_file in state.glob("*.pid"):
        stop(state, pid_file.name)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["install", "start", "proxy", "stop"])
    p.add_argument("--state", type=pathlib.Path)
    p.add_argument("--name", default="proxy")
    p.add_argument("--container", action="append", default=[])
    a, proxy_args = p.parse_known_args()
    if proxy_args and a.action != "proxy":
        p.error(f"unknown arguments {proxy_args}")
    if a.action == "install":
        install()
        return
    if a.state is None:
        p.error("--state is required")
    a.state.mkdir(parents=True, exist_ok=True)
    if a.action == "start":
        start(a.state, a.container)
    elif a.action == "proxy":
        start_proxy(a.state, a.name, proxy_args)
    else:
        stop_all(a.state)


if __name__ == "__main__":
    main()
