"""The consumers: one per pushlab transport, publishing, and the Channels tutorial's room chat.

    GET  /poll/T?since=S                  Poll        200 {"next":..,"messages":[..]}
    GET  /longpoll/T?since=S&timeout=SECS LongPoll    held until news or timeout (1..=120 s)
    GET  /sse/T (+ Last-Event-ID)         Follow      text/event-stream, retry: 1000 first
    GET  /stream/T?since=S                Follow      application/x-ndjson, chunked
    WS   /ws/T?since=S                    FeedSocket  a text frame per MESSAGE; text in publishes
    POST /publish/T                       Publish     202 {"seq":N}
    WS   /ws/chat/ROOM/                   ChatConsumer  the tutorial's {"message": ...} room;
                                          each message is also published on topic chat.ROOM
    GET  /healthz                         Health      200 {"status":"ok"}

Every subscriber joins the topic's channel-layer group and is sent each MESSAGE by group_send
(as the tutorial's chat_message is); its cursor skips what it already has and refills from the
history ring what the layer did not bring (a full channel drops messages silently).
Bad input: 400 {"error": reason}, 404, 405 with Allow, 413; a WebSocket with a bad cursor or topic
is refused (daphne answers 403), a binary frame closes it with 4003, a message over 64 KiB with
4009 (daphne allows an application no 1003 or 1009: see CLOSE_*). What the application never
sees, daphne's WebSocket layer (autobahn, failByDrop) answers by dropping the TCP connection
without a close frame: invalid UTF-8 in a text message (RFC 6455 says 1007) and a message over
daphne's --websocket-max-message-size (1 MiB; 1009). loadgen/tests/peers.rs checks each.
"""

import asyncio
import json
import time

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from . import feed
from .feed import WireError

HEARTBEAT_S = 15.0  # SSE comment / NDJSON empty line on an idle stream
LONGPOLL_DEFAULT_S = 30
LONGPOLL_RANGE_S = range(1, 121)
SSE_RETRY = b"retry: 1000\n\n"
JSON = b"application/json"
# daphne (autobahn's sendClose) lets an application close only with 1000 or 3000..=4999, so
# RFC 6455's 1003 (unsupported data), 1007 (invalid payload: here the tutorial room's text that
# is not {"message": "..."}) and 1009 (too big) become 4000 + the code, in the private-use range
# (RFC 6455 7.4.2).
CLOSE_UNSUPPORTED_DATA = 4003
CLOSE_INVALID_DATA = 4007
CLOSE_TOO_BIG = 4009


def error_body(reason):
    return json.dumps({"error": str(reason)}).encode()


class JsonHttp(AsyncConsumer):
    """An HTTP endpoint: collects the request body, checks the method, calls `start(body)`;
    `finish` answers and stops the consumer. Subclasses that hold the response open join the
    topic's group and leave it on disconnect."""

    methods = ("GET",)
    joined = None

    async def http_request(self, message):
        self.parts = getattr(self, "parts", [])
        self.parts.append(message.get("body", b""))
        if sum(map(len, self.parts)) > feed.MAX_MESSAGE_BYTES:
            await self.finish(413, error_body(f"message larger than {feed.MAX_MESSAGE_BYTES} bytes"))
        if message.get("more_body"):
            return
        if self.scope["method"] not in self.methods:
            await self.finish(
                405,
                error_body(f"method not allowed: use {', '.join(self.methods)}"),
                [(b"allow", ", ".join(self.methods).encode())],
            )
        try:
            await self.start(b"".join(self.parts))
        except WireError as e:
            await self.finish(400, error_body(e))

    async def start(self, body):
        raise NotImplementedError

    def topic(self):
        return feed.topic(self.scope["url_route"]["kwargs"]["topic"])

    def query(self):
        return feed.parse_query(self.scope.get("query_string", b""))

    async def send_head(self, status, content_type, extra=()):
        headers = [(b"content-type", content_type), (b"cache-control", b"no-store"), *extra]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def send_chunk(self, body, more=True):
        await self.send({"type": "http.response.body", "body": body, "more_body": more})

    async def finish(self, status, body, extra=(), content_type=JSON):
        length = (b"content-length", b"%d" % len(body))
        await self.send_head(status, content_type, [*extra, length])
        await self.send_chunk(body, more=False)
        await self.leave()
        raise StopConsumer()

    async def join(self, name):
        self.joined = feed.group_of(name)
        await self.channel_layer.group_add(self.joined, self.channel_name)

    async def leave(self):
        if self.joined:
            await self.channel_layer.group_discard(self.joined, self.channel_name)
            self.joined = None

    async def http_disconnect(self, message):
        await self.leave()
        raise StopConsumer()


class Health(JsonHttp):
    methods = ("GET", "HEAD")

    async def start(self, body):
        await self.finish(200, b'{"status":"ok"}')


class NotFound(JsonHttp):
    methods = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")

    async def start(self, body):
        await self.finish(404, error_body(f"no such path: {self.scope['path'][:200]}"))


class Publish(JsonHttp):
    methods = ("POST",)

    async def start(self, body):
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("message body must be UTF-8 text")
        t = self.topic()
        seq = await feed.publish(self.channel_layer, t.name, data)
        await self.finish(202, b'{"seq":%d}' % seq)


class Poll(JsonHttp):
    async def start(self, body):
        t = self.topic()
        since = t.check_cursor(self.query().get("since"))
        cursor, gap, msgs = t.read_after(since)
        await self.finish(200, feed.poll_batch(cursor, gap, msgs))


class LongPoll(JsonHttp):
    """Held until a message after `since` exists (then all of them, up to MAX_BATCH) or the
    timeout passes (an empty batch). The timer wakes the consumer through its own channel."""

    timer = None

    async def start(self, body):
        q = self.query()
        hold = q.get("timeout", LONGPOLL_DEFAULT_S)
        if hold not in LONGPOLL_RANGE_S:
            raise WireError(f"timeout must be 1..=120 seconds, got {hold}")
        self.t = self.topic()
        self.since = self.t.check_cursor(q.get("since"))
        await self.answer_if_news()
        await self.join(self.t.name)
        await self.answer_if_news()  # a publish while joining
        self.timer = asyncio.ensure_future(self.expire(hold))

    async def expire(self, hold):
        await asyncio.sleep(hold)
        await self.channel_layer.send(self.channel_name, {"type": "longpoll.timeout"})

    async def answer_if_news(self, force=False):
        cursor, gap, msgs = self.t.read_after(self.since)
        if msgs or gap or force:
            if self.timer:
                self.timer.cancel()
            await self.finish(200, feed.poll_batch(cursor, gap, msgs))

    async def feed_message(self, event):
        await self.answer_if_news()

    async def longpoll_timeout(self, event):
        await self.answer_if_news(force=True)

    async def leave(self):
        if self.timer:
            self.timer.cancel()
        await super().leave()


class Follow(JsonHttp):
    """SSE (`sse=True`) or NDJSON: one response body that follows the topic, one HTTP chunk per
    message, a heartbeat when idle for HEARTBEAT_S."""

    sse = False
    beat = None

    async def start(self, body):
        t = self.topic()
        since = self.query().get("since")
        if self.sse:
            for name, value in self.scope["headers"]:
                if name == b"last-event-id":
                    since = feed.parse_u64("Last-Event-ID", value.decode("latin-1").strip())
        self.t = t
        self.cursor = t.check_cursor(since)
        await self.join(t.name)
        kind = b"text/event-stream" if self.sse else b"application/x-ndjson"
        await self.send_head(200, kind)
        await self.send_chunk(SSE_RETRY if self.sse else b"")
        await self.catch_up()
        self.beat = asyncio.ensure_future(self.heartbeat())

    def frame(self, seq, msg):
        return feed.sse_event(seq, msg) if self.sse else msg + b"\n"

    async def catch_up(self, upto=None):
        self.cursor, items = self.t.catch_up(self.cursor, upto)
        for seq, item in items:
            if seq is None:
                gap = item
                await self.send_chunk(feed.sse_gap(gap) if self.sse else feed.gap_notice(gap) + b"\n")
            else:
                await self.send_chunk(self.frame(seq, item))
        self.last_write = time.monotonic()

    async def feed_message(self, event):
        seq = event["seq"]
        if seq <= self.cursor:
            return
        if seq == self.cursor + 1:
            self.cursor = seq
            self.last_write = time.monotonic()
            await self.send_chunk(self.frame(seq, event["msg"].encode("utf-8")))
        else:
            await self.catch_up(seq)

    async def heartbeat(self):
        while True:
            await asyncio.sleep(HEARTBEAT_S - (time.monotonic() - self.last_write))
            if time.monotonic() - self.last_write >= HEARTBEAT_S:
                self.last_write = time.monotonic()
                await self.send_chunk(b": hb\n\n" if self.sse else b"\n")

    async def leave(self):
        if self.beat:
            self.beat.cancel()
        await super().leave()


class Sse(Follow):
    sse = True


class FeedSocket(AsyncWebsocketConsumer):
    """`/ws/T?since=S`: one text frame per MESSAGE from the cursor on; a text frame from the
    client publishes on T (the chat of the tutorials)."""

    joined = None

    async def connect(self):
        try:
            self.t = feed.topic(self.scope["url_route"]["kwargs"]["topic"])
            q = feed.parse_query(self.scope.get("query_string", b""))
            self.cursor = self.t.check_cursor(q.get("since"))
        except WireError:
            await self.close()  # before accept: daphne refuses the handshake (403)
            return
        self.joined = feed.group_of(self.t.name)
        await self.channel_layer.group_add(self.joined, self.channel_name)
        await self.accept()
        await self.catch_up()

    async def catch_up(self, upto=None):
        self.cursor, items = self.t.catch_up(self.cursor, upto)
        for seq, item in items:
            await self.send(text_data=(feed.gap_notice(item) if seq is None else item).decode())

    async def feed_message(self, event):
        seq = event["seq"]
        if seq <= self.cursor:
            return
        if seq == self.cursor + 1:
            self.cursor = seq
            await self.send(text_data=event["msg"])
        else:
            await self.catch_up(seq)

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is None:
            await self.close(code=CLOSE_UNSUPPORTED_DATA)
        elif len(text_data.encode("utf-8")) > feed.MAX_MESSAGE_BYTES:
            await self.close(code=CLOSE_TOO_BIG)
        else:
            await feed.publish(self.channel_layer, self.t.name, text_data)

    async def disconnect(self, code):
        if self.joined:
            await self.channel_layer.group_discard(self.joined, self.channel_name)


class Refuse(AsyncWebsocketConsumer):
    """A WebSocket on a path nothing serves: refused (403)."""

    async def connect(self):
        await self.close()


class ChatConsumer(AsyncWebsocketConsumer):
    """The Channels tutorial's chat room (docs "Tutorial Part 3", async version), unchanged but
    for one line: each message is also published on the feed topic chat.ROOM."""

    async def connect(self):
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        self.room_group_name = f"chat_{self.room_name}"
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, close_code):
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            message = json.loads(text_data)["message"]
            if not isinstance(message, str):
                raise TypeError
        except (TypeError, ValueError, KeyError):
            await self.close(code=CLOSE_INVALID_DATA)
            return
        await self.channel_layer.group_send(
            self.room_group_name, {"type": "chat.message", "message": message}
        )
        await feed.publish(self.channel_layer, f"chat.{self.room_name}", message)

    async def chat_message(self, event):
        await self.send(text_data=json.dumps({"message": event["message"]}))
