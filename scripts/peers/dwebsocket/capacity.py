#!/usr/bin/env python3
"""How many WebSockets a peer serves at once: opens WebSockets one at a time on
ws://127.0.0.1:PORT/PATH, keeping each open, until one gets no `101 Switching Protocols`
within --timeout seconds (it waits or fails) or --max are open; then closes one served socket
and times how long the waiting one then takes to be answered. Bounded: at most --max sockets,
each wait at most --timeout seconds. Loopback only. Prints one JSON object:

    {"served_concurrently": 50, "limit_reached": true, "next": "waited", "next_served_after_close_s": 0.01}

`next` is "waited" (answered once a socket closed), "failed" (refused or reset) or "timeout"
(still unanswered --timeout seconds after the close).
"""

import argparse
import base64
import json
import os
import socket
import time


def open_ws(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return s


def answered(s, timeout):
    """'served' on a 101 within `timeout`, 'failed' on another answer or a reset, else 'timeout'."""
    s.settimeout(timeout)
    try:
        head = s.recv(4096)
    except socket.timeout:
        return "timeout"
    except OSError:
        return "failed"
    return "served" if head.startswith(b"HTTP/1.1 101") else "failed"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--path", default="/ws/capacity")
    ap.add_argument("--max", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=3.0)
    a = ap.parse_args()
    served, pending, outcome = [], None, None
    try:
        while len(served) < a.max:
            s = open_ws(a.port, a.path)
            outcome = answered(s, a.timeout)
            if outcome != "served":
                pending = s
                break
            served.append(s)
        result = {"served_concurrently": len(served), "limit_reached": pending is not None}
        if pending is not None and outcome == "timeout" and served:
            served.pop().close()
            t0 = time.monotonic()
            nxt = answered(pending, a.timeout)
            result["next"] = "waited" if nxt == "served" else nxt
            if nxt == "served":
                result["next_served_after_close_s"] = round(time.monotonic() - t0, 3)
        elif pending is not None:
            result["next"] = outcome
        print(json.dumps(result))
    finally:
        for s in served + ([pending] if pending else []):
            s.close()


if __name__ == "__main__":
    main()
