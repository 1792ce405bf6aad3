#!/usr/bin/python3
"""An HTTP/1.1 proxy that injects faults between a client and a server
(s3rver in the tests), seeded and bounded, so that retry code can be tested
against the faults object stores really show:

  reset     the connection is reset (RST) before any answer
  slowdown  503 SlowDown with an S3 error body, the request never forwarded
  truncate  the server's answer is forwarded, its body cut at a random byte,
            then the connection is reset
  stall     the answer's headers and part of its body are sent, then nothing
            for --stall-seconds (a hung server: clients must time out)

Each request draws one fault (or none) with the given rates from
random.Random(seed); after --max-faults faults every request passes. One
request per client connection (the answer says Connection: close).

  fault_proxy.py --target 127.0.0.1:4568 [--port 0] [--port-file F] [--seed 1]
                 [--reset-rate 0.1] [--slowdown-rate 0.1] [--truncate-rate 0.1]
                 [--stall-rate 0] [--stall-seconds 30] [--max-faults 1000] [--log F]

Prints "listening on PORT" once ready (and writes PORT to --port-file);
--log appends one line per request (the fault drawn, method, target).
"""
import argparse
import asyncio
import random
import socket
import struct
import sys

SLOWDOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                 b'<Message>Please reduce your request rate.</Message></Error>')


class Faults:
    def __init__(self, args):
        self.rng = random.Random(args.seed)
        self.rates = [("reset", args.reset_rate), ("slowdown", args.slowdown_rate),
                      ("truncate", args.truncate_rate), ("stall", args.stall_rate)]
        self.left = args.max_faults
        self.counts = {"reset": 0, "slowdown": 0, "truncate": 0, "stall": 0, "none": 0}

    def draw(self):
        x = self.rng.random()
        fault = "none"
        for name, rate in self.rates:
            if x < rate and self.left > 0:
                fault = name
                break
            x -= rate
        if fault != "none":
            self.left -= 1
        self.counts[fault] += 1
        return fault

    def cut(self, size):
        return self.rng.randrange(0, max(size, 1))


def reset(writer):
    """Closes with RST (SO_LINGER 0), as a crashed peer or middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_request(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return lines[0], lines[1:], body


def upstream_request(request_line, header_lines, body):
    kept = [h for h in header_lines if h and not h.lower().startswith(("connection:", "expect:",
                                                                       "keep-alive:"))]
    return ("\r\n".join([request_line] + kept + ["Connection: close", "", ""])
            ).encode("latin-1") + body


def split_response(raw):
    end = raw.find(b"\r\n\r\n")
    head, body = raw[:end], raw[end + 4:]
    lines = [h for h in head.decode("latin-1").split("\r\n")
             if not h.lower().startswith(("connection:", "keep-alive:"))]
    return ("\r\n".join(lines + ["Connection: close", "", ""])).encode("latin-1"), body


async def handle(reader, writer, args, faults, log):
    try:
        request_line, header_lines, body = await read_request(reader, writer)
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        writer.close()
        return
    fault = faults.draw()
    if log:
        log.write(f"{fault} {request_line}\n")
        log.flush()
    if fault == "reset":
        reset(writer)
        return
    if fault == "slowdown":
        writer.write(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(SLOWDOWN_BODY)
                     + SLOWDOWN_BODY)
        await writer.drain()
        writer.close()
        return
    host, port = args.target.rsplit(":", 1)
    try:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        up_writer.write(upstream_request(request_line, header_lines, body))
        await up_writer.drain()
        raw = await up_reader.read()  # Connection: close: the answer ends at EOF
        up_writer.close()
    except ConnectionError:
        reset(writer)
        return
    head, response_body = split_response(raw)
    if fault == "truncate" and response_body:
        writer.write(head + response_body[:faults.cut(len(response_body))])
        await writer.drain()
        reset(writer)
        return
    if fault == "stall":
        writer.write(head + response_body[:faults.cut(len(response_body))])
        await writer.drain()
        await asyncio.sleep(args.stall_seconds)
        reset(writer)
        return
    writer.write(head + response_body)
    try:
        await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, help="HOST:PORT of the server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reset-rate", type=float, default=0.1)
    p.add_argument("--slowdown-rate", type=float, default=0.1)
    p.add_argument("--truncate-rate", type=float, default=0.1)
    p.add_argument("--stall-rate", type=float, default=0.0)
    p.add_argument("--stall-seconds", type=float, default=30.0)
    p.add_argument("--max-faults", type=int, default=1000)
    p.add_argument("--log")
    args = p.parse_args()
    if args.reset_rate + args.slowdown_rate + args.truncate_rate + args.stall_rate > 1:
        sys.exit("fault_proxy.py: the fault rates add up to more than 1")
    faults = Faults(args)
    log = open(args.log, "a") if args.log else None
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args, faults, log), "127.0.0.1", args.port,
        limit=1 << 20)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write(str(port))
    print(f"listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
