#!/usr/bin/env python3
"""The origin behind Pushpin: pushlab's wire through GRIP (Python standard library only).

    usage: origin.py PORT PUBLISH_URL [--hold-delay-ms N]
           (PUBLISH_URL: Pushpin's http://127.0.0.1:P/publish/; --hold-delay-ms: a fault for
           tests, each long-poll hold is answered N ms after the feed was read, as from a slow
           origin, so the hold and the next publish race on every message)

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
    GET /healthz                   200 {"status":"ok","longpoll_repairs":N} (N: repair items
                                   published so far, below)

Every published item carries id = seq and prev-id = seq - 1 and every hold names its channel's
prev-id, so Pushpin sees a message a hold missed and asks again (Grip-Link rel=next for the
streams, a retried request for long polls). The feed lives in this process under one lock.

Long polls need one more step (Pushpin 1.36 handler, engine.cpp AcceptWorker and
httpsession.cpp publish). Pushpin checks a new response hold's prev-id against the last id it
published on the channel and retries the request when they differ, but on every such conflict
it forgets that last id. A second hold answered before the same publish (prev-id one behind)
that registers before the next publish is then not checked: it waits for a message Pushpin has
already sent, and learns of it only from the next publish, or, after the last message of a
run, at its Grip-Timeout. Pushpin's retry of a conflicting request carries `Grip-Last:
lp.T; last-id=ID`, so the origin knows each conflict: answering such a retry it publishes a
repair item on lp.T (id = prev-id = the newest seq, meta sender=origin). The repair sets
Pushpin's last id again, so holds registering after it are checked; every hold registered since
the conflict sees it: one a message behind fails its prev-id check and is retried (and answered
with what it missed), one up to date takes it as its next prev-id and drops it through the
`skip-self` filter its hold names (`Grip-Set-Meta: user=origin`). run.sh sets id_cache_ttl=0
so Pushpin does not drop a repair whose id it has seen.
"""

import argparse
import json
import sys
import threading
import time
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
# Who publishes repair items; the long-poll holds skip items from it (`filter=skip-self`).
REPAIR_SENDER = "origin"

_lock = threading.Lock()
_topics = Topics()
PUBLISH_URL = None
HOLD_DELAY_S = 0.0  # --hold-delay-ms
_repairs = 0  # repair items published (under _lock)


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
        pushpin_publish(items)
    return seq


def pushpin_publish(items):
    """POSTs `items` to Pushpin's publish API; OSError when it does not take them."""
    req = urllib.request.Request(
        PUBLISH_URL,
        data=json.dumps({"items": items}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


def repair_longpoll_channel(topic_name):
    """After Pushpin retried a long poll on a prev-id conflict (and forgot lp.T's last id): one
    item on lp.T with id = prev-id = the newest seq (module doc). Holds a message behind retry;
    holds up to date drop it (skip-self)."""
    global _repairs
    with _lock:
        t = _topics.get(topic_name)
        latest = str(t.latest)
        pushpin_publish([{
            "channel": "lp." + t.name,
            "id": latest,
            "prev-id": latest,
            "meta": {"sender": REPAIR_SENDER},
            "formats": {"http-response": {
                "headers": [["Content-Type", "application/json"], ["Cache-Control", "no-store"]],
                "body": poll_batch(t.latest, None, []).decode("utf-8"),
            }},
        }])
        _repairs += 1


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
            with _lock:
                repairs = _repairs
            return self.answer(200, b'{"status":"ok","longpoll_repairs":%d}' % repairs)
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
        if head == "longpoll":
            self.longpoll(t, since, hold, (cursor, gap, msgs), f"lp.{t.name}" in last)
            return
        if head == "poll":
            return self.answer(200, poll_batch(cursor, gap, msgs))
        self.follow(head, t, cursor, gap, msgs, "next=1" in query.decode("latin-1"))

    def longpoll(self, t, since, hold_s, batch, conflict):
        """News now, else a response hold on lp.T after `since`. `conflict`: this is Pushpin's
        retry after a prev-id conflict on lp.T, which then needs a repair item (module doc)."""
        cursor, gap, msgs = batch
        if msgs or gap:
            self.answer(200, poll_batch(cursor, gap, msgs))
        else:
            time.sleep(HOLD_DELAY_S)
            self.answer(
                200,
                poll_batch(since, None, []),
                [("Grip-Hold", "response"),
                 ("Grip-Channel", f"lp.{t.name}; prev-id={since}; filter=skip-self"),
                 ("Grip-Set-Meta", f"user={REPAIR_SENDER}"),
                 ("Grip-Timeout", str(hold_s))],
            )
        if conflict:
            try:
                repair_longpoll_channel(t.name)
            except OSError as e:  # the answer is out; Pushpin recovers at the next publish
                sys.stderr.write(f"origin: repair publish on lp.{t.name} failed: {e}\n")

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

    def handle_error(self, request, client_address):
        """Pushpin closing its connections (it stopped first) is no error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def hold_delay_ms(text):
    """--hold-delay-ms: whole milliseconds, 0..=10000."""
    if not text.isdigit() or int(text) > 10_000:
        raise argparse.ArgumentTypeError(f"want whole milliseconds 0..10000, got {text!r}")
    return int(text)


def main():
    global PUBLISH_URL, HOLD_DELAY_S
    ap = argparse.ArgumentParser(description="pushlab's wire through GRIP, behind Pushpin")
    ap.add_argument("port", type=int)
    ap.add_argument("publish_url")
    ap.add_argument("--hold-delay-ms", type=hold_delay_ms, default=0, metavar="0..10000")
    args = ap.parse_args()
    PUBLISH_URL, HOLD_DELAY_S = args.publish_url, args.hold_delay_ms / 1000
    Server(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
