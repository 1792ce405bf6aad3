#!/usr/bin/python3
"""Google's side of a service-account login, on loopback, for the gs://
tests: an OAuth2 token endpoint (POST /token, the JWT bearer grant of RFC
7523) that verifies the RS256 assertion against the key it made, and in
front of s3rver an XML-API door that lets a request through only with
"Authorization: Bearer <a token it issued>" (stripped before s3rver, which
serves unsigned requests).

  gcs_oauth_server.py --target 127.0.0.1:PORT --key-file SA.json
                      --port-file F [--log F] [--lifetime SECONDS]

Writes a service-account key file (type, client_email, private_key,
private_key_id, token_uri pointing here) to --key-file, then the port to
--port-file once listening. --log gets one line per request: "token OK",
"token REFUSED why", or "METHOD PATH STATUS" (401 for a missing or
expired token). Tokens live --lifetime seconds (3599, Google's).
"""
import argparse
import base64
import http.client
import http.server
import json
import secrets
import threading
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

EMAIL = "trainer@xpscale-test.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class State:
    def __init__(self, args, public_key, token_uri):
        self.args, self.public_key, self.token_uri = args, public_key, token_uri
        self.tokens = {}  # token -> the time it expires
        self.lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1) if args.log else None

    def note(self, line):
        if self.log:
            with self.lock:
                self.log.write(line + "\n")


def check_assertion(state, assertion):
    """The reason the assertion is refused, or None."""
    try:
        head, claims, sig = assertion.split(".")
        header = json.loads(b64url_decode(head))
        body = json.loads(b64url_decode(claims))
        state.public_key.verify(b64url_decode(sig), f"{head}.{claims}".encode(),
                                padding.PKCS1v15(), hashes.SHA256())
    except Exception as e:  # noqa: BLE001 - any malformed part is a refusal
        return f"bad assertion ({type(e).__name__})"
    now = time.time()
    if header.get("alg") != "RS256" or header.get("kid") != "key-1":
        return "bad header"
    if body.get("iss") != EMAIL or body.get("aud") != state.token_uri:
        return "bad iss or aud"
    if SCOPE not in body.get("scope", "").split():
        return "no devstorage scope"
    if not (abs(body.get("iat", 0) - now) < 300 and 0 < body.get("exp", 0) - body["iat"] <= 3600):
        return "bad iat or exp"
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, content_type, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def token(self):
        state = self.server.state
        form = urllib.parse.parse_qs(self.body().decode())
        why = None
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            why = "bad grant_type"
        else:
            why = check_assertion(state, form.get("assertion", [""])[0])
        if why:
            state.note(f"token REFUSED {why}")
            self.send(400, json.dumps({"error": "invalid_grant",
                                       "error_description": why}).encode(), "application/json")
            return
        token = "ya29.test-" + secrets.token_urlsafe(24)
        with state.lock:
            state.tokens[token] = time.monotonic() + state.args.lifetime
        state.note("token OK")
        self.send(200, json.dumps({"access_token": token, "expires_in": state.args.lifetime,
                                   "token_type": "Bearer"}).encode(), "application/json")

    def forward(self):
        state = self.server.state
        body = self.body()
        auth = self.headers.get("Authorization", "")
        with state.lock:
            expires = state.tokens.get(auth[7:], 0) if auth.startswith("Bearer ") else 0
        if time.monotonic() >= expires:
            state.note(f"{self.command} {self.path} 401")
            self.send(401, b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>"
                      b"AuthenticationRequired</Code><Message>Authentication required."
                      b"</Message></Error>", "application/xml")
            return
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("authorization", "host", "connection")}
        conn = http.client.HTTPConnection(self.server.state.args.target, timeout=60)
        conn.request(self.command, self.path, body=body if body else None, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        state.note(f"{self.command} {self.path} {answer.status}")
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        # A HEAD's length is the object's, not that of its (empty) body.
        self.send_header("Content-Length", answer.getheader("Content-Length", "0")
                         if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    def do_POST(self):
        if self.path == "/token":
            self.token()
        else:
            self.forward()

    do_GET = do_HEAD = do_PUT = do_DELETE = forward


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True)
    p.add_argument("--key-file", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log")
    p.add_argument("--lifetime", type=int, default=3599)
    args = p.parse_args()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    token_uri = f"http://127.0.0.1:{server.server_address[1]}/token"
    server.state = State(args, key.public_key(), token_uri)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    with open(args.key_file, "w") as f:
        json.dump({"type": "service_account", "project_id": "xpscale-test",
                   "private_key_id": "key-1", "private_key": pem, "client_email": EMAIL,
                   "client_id": "1", "token_uri": token_uri}, f)
    with open(args.port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
