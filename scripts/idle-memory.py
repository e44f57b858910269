#!/usr/bin/env python3
"""Memory per idle subscriber connection of a running pushlab-server, from its own /metrics.

Opens N subscriber connections of one transport (SSE, chunked stream or WebSocket) to
127.0.0.1, checks each got its 200 (101 for WebSocket) and its response head, waits for the
server to settle, and reads `pushlab_heap_bytes` (the counting allocator: bytes in use) and
`pushlab_socket_kernel_bytes{transport}` (SO_MEMINFO of every open socket) before and after.
Prints one line of JSON:

    {"transport": "sse", "connections": 10000, "heap_bytes_per_connection": 9012.3,
     "kernel_bytes_per_connection": 4608.0, "heap_bytes_before": ..., "heap_bytes_after": ...}

Heap per connection = (heap after - heap before) / N; kernel = the transport's socket memory
gauge after / N (SO_MEMINFO: what sits in the socket's queues, 0 for an idle socket); kernel
slab per connection pair = the growth of every slab cache's objects in use (/proc/slabinfo, as
root) / N: the sockets, inodes, files, epoll items and TCP state of both ends of each loopback
connection (the client's end lives in the same kernel), other activity on the machine
included. The connections stay idle (the topic gets no message) so what is measured is
what an open subscriber costs, not what it is sending.

    scripts/idle-memory.py --port 8080 --transport sse --clients 10000

Loopback only. Bounded: N at most 15,000 (this process needs one file per connection under
the 20,000 cap), each connect and read times out after 10 s, the whole probe after 300 s.
Needs a server started with --max-connections-per-ip above N (one source address here).
"""

import argparse
import base64
import json
import os
import re
import socket
import sys
import time

MAX_CLIENTS = 15_000
TIMEOUT_S = 10.0
TOTAL_LIMIT_S = 300.0
PATHS = {"sse": "/sse/idle", "stream": "/stream/idle", "ws": "/ws/idle"}


def scrape(port):
    """The server's /metrics text."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    text = b"".join(chunks).decode("utf-8", "replace")
    return text.split("\r\n\r\n", 1)[1]


def gauge(text, name, labels=""):
    """A sample's value from Prometheus text, or None."""
    pat = re.compile(r"^" + re.escape(name + labels) + r" ([0-9.eE+-]+)$", re.M)
    m = pat.search(text)
    return float(m.group(1)) if m else None


def request(transport):
    path = PATHS[transport]
    head = f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    if transport == "ws":
        key = base64.b64encode(os.urandom(16)).decode()
        head += (
            "upgrade: websocket\r\nconnection: upgrade\r\n"
            f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n"
        )
    return (head + "\r\n").encode()


def open_one(port, transport):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    s.sendall(request(transport))
    got = b""
    while b"\r\n\r\n" not in got:
        b = s.recv(4096)
        if not b:
            raise RuntimeError(f"connection closed before the response head: {got!r}")
        got += b
    want = b"HTTP/1.1 101" if transport == "ws" else b"HTTP/1.1 200"
    if not got.startswith(want):
        raise RuntimeError(f"unexpected answer: {got[:200]!r}")
    return s


def slab_bytes():
    """Bytes of kernel slab objects in use (active objects x object size, every cache), or None
    where /proc/slabinfo cannot be read (it needs root)."""
    try:
        with open("/proc/slabinfo") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return None
    total = 0
    for line in lines:
        fields = line.split()
        if len(fields) > 3:
            total += int(fields[1]) * int(fields[3])
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--transport", choices=sorted(PATHS), required=True)
    ap.add_argument("--clients", type=int, default=10_000)
    ap.add_argument("--settle", type=float, default=2.0, help="seconds to wait before scraping")
    a = ap.parse_args()
    if not 1 <= a.clients <= MAX_CLIENTS:
        sys.exit(f"--clients must be within 1..{MAX_CLIENTS}")
    deadline = time.monotonic() + TOTAL_LIMIT_S
    before = scrape(a.port)
    slab0 = slab_bytes()
    heap0 = gauge(before, "pushlab_heap_bytes")
    if heap0 is None:
        sys.exit("the server reports no pushlab_heap_bytes (a build without the counting allocator)")
    socks = []
    for _ in range(a.clients):
        if time.monotonic() > deadline:
            sys.exit(f"gave up after {TOTAL_LIMIT_S} s with {len(socks)} connections open")
        socks.append(open_one(a.port, a.transport))
    time.sleep(a.settle)
    slab1 = slab_bytes()
    after = scrape(a.port)
    heap1 = gauge(after, "pushlab_heap_bytes")
    kernel = gauge(after, "pushlab_socket_kernel_bytes", '{transport="%s"}' % a.transport)
    n = len(socks)
    print(
        json.dumps(
            {
                "transport": a.transport,
                "connections": n,
                "heap_bytes_per_connection": round((heap1 - heap0) / n, 1),
                "kernel_bytes_per_connection": None if kernel is None else round(kernel / n, 1),
                "kernel_slab_bytes_per_connection_pair": None
                if slab0 is None or slab1 is None
                else round((slab1 - slab0) / n, 1),
                "heap_bytes_before": heap0,
                "heap_bytes_after": heap1,
            }
        )
    )
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
