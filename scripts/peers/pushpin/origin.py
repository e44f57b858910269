#!/usr/bin/env python3
"""The origin behind Pushpin: pushlab's wire through GRIP (Python standard library only).

    usage: origin.py PORT PUBLISH_URL        (PUBLISH_URL: Pushpin's http://127.0.0.1:P/publish/)

    GET /poll/T?since=S            answered here, at once
    GET /longpoll/T?since=S&timeout=N
                                   news: answered here; else a held response
                                   (Grip-Hold: response, channel lp.T, Grip-Timeout: N, the
                                   empty batch as the timeout answer)
    GET /sse/T (+ Last-Event-ID)   held stream on channel sse.T: retry + catch-up now,
                                   Pushpin appends each published event
    GET /stream/T?since=S          held stream on channel nd.T (NDJSON)
    WS  /ws/T?since=S              WebSocket-over-HTTP (route option over_http): OPEN answered
                                   with a subscription to ws.T and the catch-up; client TEXT
                                   events publish
    POST /publish/T                numbers and keeps the message, then one publish to Pushpin
                                   with a format per channel; 202 {"seq":N}
    GET /healthz                   200 {"status":"ok"}

Every published item carries id = seq and prev-id = seq - 1 and every hold names its channel's
prev-id, so Pushpin sees a message a hold missed and asks again (Grip-Link rel=next for the
streams, a retried request for long polls). The feed lives in this process under one lock.
"""

import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from pushlab_wire import (
    MAX_MESSAGE_BYTES,
    Topics,
    WireError,
    gap_notice,
    parse_query,
    parse_u64,
    poll_batch,
    sse_event,
    sse_gap,
)

HEARTBEAT_S = 15
LONGPOLL_DEFAULT_S = 30

_lock = threading.Lock()
_topics = Topics()
PUBLISH_URL = None


def publish(topic_name, data):
    """Numbers `data`, keeps it, and hands it to Pushpin for every held subscriber; the seq."""
    with _lock:
        t = _topics.get(topic_name)
        seq, msg = t.publish(data)
        ids = {"id": str(seq), "prev-id": str(seq - 1)}
        text = msg.decode("utf-8")
        items = [
            {
                "channel": "lp." + t.name,
                **ids,
                "formats": {
                    "http-response": {
                        "headers": [["Content-Type", "application/json"], ["Cache-Control", "no-store"]],
                        "body": poll_batch(seq, None, [msg]).decode("utf-8"),
                    }
                },
            },
            {"channel": "sse." + t.name, **ids,
             "formats": {"http-stream": {"content": sse_event(seq, msg).decode("utf-8")}}},
            {"channel": "nd." + t.name, **ids,
             "formats": {"http-stream": {"content": text + "\n"}}},
            {"channel": "ws." + t.name, **ids, "formats": {"ws-message": {"content": text}}},
        ]
        req = urllib.request.Request(
            PUBLISH_URL,
            data=json.dumps({"items": items}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
    return seq


def grip_last(values):
    """{channel: last id} from Grip-Last headers (`CHANNEL; last-id=ID`, comma-separated)."""
    out = {}
    for value in values:
        for part in value.split(","):
            channel, _, params = part.strip().partition(";")
            for param in params.split(";"):
                key, _, val = param.strip().partition("=")
                if key == "last-id" and val.isdigit():
                    out[channel.strip()] = int(val)
    return out


def ws_events(body):
    """[(type, content bytes)] from an application/websocket-events body."""
    out, i = [], 0
    while i < len(body):
        eol = body.index(b"\r\n", i)
        head = body[i:eol].split(b" ")
        i = eol + 2
        content = b""
        if len(head) > 1:
            n = int(head[1], 16)
            content = body[i : i + n]
            i += n + 2
        out.append((head[0].decode(), content))
    return out


def ws_event(kind, content=None):
    if content is None:
        return kind.encode() + b"\r\n"
    return kind.encode() + b" %x\r\n" % len(content) + content + b"\r\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=(), chunked=False):
        """The response; `chunked`: without a length (Pushpin keeps a held stream's length)."""
        self.send_response(status)
        fields = {"Content-Type": "application/json", "Cache-Control": "no-store"}
        fields.update(headers)
        for k, v in fields.items():
            self.send_header(k, v)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write((b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, reason, headers=()):
        self.answer(status, json.dumps({"error": str(reason)}).encode(), headers)

    def route(self):
        url = urlsplit(self.path)
        head, _, topic = url.path.lstrip("/").partition("/")
        return head, topic, url.query.encode()

    def do_GET(self):
        head, topic, query = self.route()
        if head == "healthz" and not topic:
            return self.answer(200, b'{"status":"ok"}')
        if head not in ("poll", "longpoll", "sse", "stream") or not topic:
            return self.error(404, f"no such path: {self.path[:200]}")
        try:
            with _lock:
                t = _topics.get(topic)
                q = parse_query(query)
                if head == "sse" and self.headers.get("Last-Event-ID") is not None:
                    q["since"] = parse_u64("Last-Event-ID", self.headers["Last-Event-ID"].strip())
                last = grip_last(self.headers.get_all("Grip-Last") or [])
                channel = {"sse": "sse.", "stream": "nd."}.get(head, "-") + t.name
                if channel in last:  # Pushpin following rel=next: resume after what it sent
                    q["since"] = last[channel]
                hold = q.get("timeout", LONGPOLL_DEFAULT_S)
                if head == "longpoll" and not 1 <= hold <= 120:
                    raise WireError(f"timeout must be 1..=120 seconds, got {hold}")
                since = t.check_cursor(q.get("since"))
                cursor, gap, msgs = t.read_after(since)
        except WireError as e:
            return self.error(400, e)
        if head == "poll" or (head == "longpoll" and (msgs or gap)):
            return self.answer(200, poll_batch(cursor, gap, msgs))
        if head == "longpoll":
            return self.answer(
                200,
                poll_batch(since, None, []),
                [("Grip-Hold", "response"), ("Grip-Channel", f"lp.{t.name}; prev-id={since}"),
                 ("Grip-Timeout", str(hold))],
            )
        self.follow(head, t, cursor, gap, msgs, "next=1" in query.decode("latin-1"))

    def follow(self, head, t, cursor, gap, msgs, is_next):
        """A held stream: the catch-up now, Pushpin appends the rest."""
        sse = head == "sse"
        first = cursor - len(msgs) + 1
        if sse:
            body = b"" if is_next else b"retry: 1000\n\n"
            body += (sse_gap(gap) if gap else b"") + b"".join(
                sse_event(first + i, m) for i, m in enumerate(msgs))
            kind, channel, beat = "text/event-stream", "sse", ": hb\\n\\n"
        else:
            body = (gap_notice(gap) + b"\n" if gap else b"") + b"".join(m + b"\n" for m in msgs)
            kind, channel, beat = "application/x-ndjson", "nd", "\\n"
        self.answer(
            200,
            body,
            [("Content-Type", kind), ("Grip-Hold", "stream"),
             ("Grip-Channel", f"{channel}.{t.name}; prev-id={cursor}"),
             ("Grip-Keep-Alive", f"{beat}; format=cstring; timeout={HEARTBEAT_S}"),
             ("Grip-Link", f"</{head}/{t.name}?since={cursor}&next=1>; rel=next")],
            chunked=True,
        )

    def do_POST(self):
        head, topic, query = self.route()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_MESSAGE_BYTES:
            return self.error(413, f"message larger than {MAX_MESSAGE_BYTES} bytes",
                              [("Connection", "close")])
        body = self.rfile.read(length)
        if self.headers.get("Content-Type", "").startswith("application/websocket-events"):
            return self.websocket(head, topic, query, body)
        if head != "publish" or not topic:
            return self.error(405 if head in ("poll", "longpoll", "sse", "stream") else 404,
                              "method not allowed: use GET", [("Allow", "GET")])
        try:
            seq = publish(topic, body.decode("utf-8"))
        except UnicodeDecodeError:
            return self.error(400, "message body must be UTF-8 text")
        except WireError as e:
            return self.error(400, e)
        except OSError as e:  # Pushpin's publish API did not take it
            return self.error(502, f"publishing to Pushpin failed: {e}")
        self.answer(202, b'{"seq":%d}' % seq)

    def websocket(self, head, topic, query, body):
        """WebSocket-over-HTTP: OPEN subscribes and catches up; TEXT publishes; CLOSE closes."""
        out = b""
        headers = [("Content-Type", "application/websocket-events")]
        for kind, content in ws_events(body):
            if kind == "OPEN":
                try:
                    if head != "ws":
                        raise WireError("no such path")
                    with _lock:
                        t = _topics.get(topic)
                        cursor, gap, msgs = t.read_after(t.check_cursor(parse_query(query).get("since")))
                except WireError as e:
                    return self.error(400, e)
                sub = json.dumps({"type": "subscribe", "channel": f"ws.{t.name}"}).encode()
                out += ws_event("OPEN") + ws_event("TEXT", b"c:" + sub)
                out += ws_event("TEXT", gap_notice(gap)) if gap else b""
                out += b"".join(ws_event("TEXT", m) for m in msgs)
                headers.append(("Sec-WebSocket-Extensions", "grip"))
            elif kind == "TEXT":
                try:
                    publish(topic, content.decode("utf-8"))
                except (UnicodeDecodeError, WireError):
                    out += ws_event("CLOSE", b"\x03\xef")  # 1007
            elif kind == "BINARY":
                out += ws_event("CLOSE", b"\x03\xeb")  # 1003: a type it cannot accept
            elif kind == "CLOSE":
                out += ws_event("CLOSE", content[:2])
        self.answer(200, out, headers)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # socketserver's 5 drops connects when many subscribers arrive


def main():
    global PUBLISH_URL
    port, PUBLISH_URL = int(sys.argv[1]), sys.argv[2]
    Server(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
