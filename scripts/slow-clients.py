#!/usr/bin/env python3
"""Holds many slow or idle connections open against a running Custos and
checks that it still answers.

    ulimit -n 1024; custos serve --data-dir /tmp/custos-slow &
    python3 scripts/slow-clients.py --port 8080 --count 1100

Opens COUNT connections, in equal parts: half a request head then nothing
(slow headers), a complete head with a body shorter than its
Content-Length (slow body), and one complete request then nothing (idle
keep-alive). While they are open it times GET /healthz on a new connection
and on one opened before them, and posts an event; then it waits past the
server's header and body timeouts and counts the connections the server
closed. Only loopback addresses are accepted: this is a test of a local
server. It stops by itself.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
import time


def connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.settimeout(10)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes] | None:
    """One answer with a Content-Length body, or None if the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]


def request(method: str, path: str, key: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\n"
    )
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def timed(what: str, action) -> None:
    started = time.monotonic()
    try:
        answer = action()
    except OSError as e:
        answer = None
        print(f"{what}: failed: {e}")
        return
    elapsed_ms = (time.monotonic() - started) * 1000
    if answer is None:
        print(f"{what}: closed without an answer after {elapsed_ms:.0f} ms")
        return
    status, _, body = answer
    code = ""
    try:
        code = json.loads(body).get("code") or json.loads(body).get("status", "")
    except (ValueError, AttributeError):
        pass
    print(f"{what}: {status} {code} in {elapsed_ms:.0f} ms")


def open_slow(host: str, port: int, kind: int, key: str) -> socket.socket | None:
    try:
        sock = connect(host, port)
        if kind == 0:
            sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        elif kind == 1:
            sock.sendall(
                b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Authorization: Bearer {key}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"event_id\":"
            )
        else:
            sock.sendall(request("GET", "/livez", key))
            read_answer(sock)
        return sock
    except OSError:
        return None


def server_acted(sock: socket.socket) -> bool:
    """Whether the server answered (408 for a slow body) or closed."""
    sock.setblocking(False)
    try:
        sock.recv(65536)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--count", type=int, default=1100)
    parser.add_argument("--key", default="custos-dev-key")
    parser.add_argument("--wait", type=float, default=35.0, help="seconds to wait for timeouts")
    args = parser.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        print("only loopback addresses", file=sys.stderr)
        return 2

    early = connect(args.host, args.port)
    timed("healthz before, new connection", lambda: (
        early.sendall(request("GET", "/healthz", args.key)), read_answer(early))[1])

    started = time.monotonic()
    held = []
    failed = 0
    for i in range(args.count):
        sock = open_slow(args.host, args.port, i % 3, args.key)
        if sock is None:
            failed += 1
        else:
            held.append((i % 3, sock))
    print(f"opened {len(held)} slow connections ({failed} failed) in "
          f"{time.monotonic() - started:.1f} s")

    def fresh(method: str, path: str, body: bytes = b""):
        sock = connect(args.host, args.port)
        try:
            sock.sendall(request(method, path, args.key, body))
            return read_answer(sock)
        finally:
            sock.close()

    event = json.dumps({"event_id": f"slow-{time.time()}", "type": "login",
                        "account_id": "slow-check", "time": "2018-05-01T08:00:00Z",
                        "status": "success", "ip": "81.2.69.160"}).encode()
    timed("healthz while held, new connection", lambda: fresh("GET", "/healthz"))
    timed("readyz while held, new connection", lambda: fresh("GET", "/readyz"))
    timed("POST /v1/events while held, new connection", lambda: fresh("POST", "/v1/events", event))
    timed("healthz while held, connection opened before", lambda: (
        early.sendall(request("GET", "/healthz", args.key)), read_answer(early))[1])

    # On the connection opened before: a new one would be shed.
    early.sendall(request("GET", "/metrics", args.key))
    metrics = read_answer(early)
    if metrics is not None:
        for line in metrics[2].decode().splitlines():
            if line.startswith("custos_http_") and "connections" in line:
                print(f"  {line}")

    # When the server answered or closed each connection, in seconds.
    acted: dict[int, float] = {}
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline and len(acted) < len(held):
        time.sleep(0.5)
        now = time.monotonic() - started
        for i, (_, sock) in enumerate(held):
            if i not in acted and server_acted(sock):
                acted[i] = now
    names = ["slow headers", "slow body", "idle keep-alive"]
    for kind, name in enumerate(names):
        times = sorted(acted[i] for i, (k, _) in enumerate(held) if k == kind and i in acted)
        total = sum(1 for k, _ in held if k == kind)
        span = f", between {times[0]:.1f} s and {times[-1]:.1f} s" if times else ""
        print(f"{name}: the server answered or closed {len(times)} of {total}{span}")
    timed("healthz after, new connection", lambda: fresh("GET", "/healthz"))
    timed("POST /v1/events after, new connection", lambda: fresh("POST", "/v1/events", event))
    for _, sock in held:
        sock.close()
    early.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
