"""pushlab's wire for the Python peers: a topic's seqs and bounded history ring (what
pushlab-server's feed.rs does) and the encodings, byte for byte (proto/src/message.rs and
proto/src/frame.rs):

    MESSAGE   {"topic":"t","seq":42,"ts":TS,"data":"..."}     ts: ns since the Unix epoch
    poll      {"next":43,"messages":[MESSAGE,...]}  or with "gap":{"missed":K,"from":F,"to":T}
    SSE       id: 42\\ndata: MESSAGE\\n\\n     gap: id: T\\nevent: gap\\ndata: {"gap":{...}}\\n\\n
    NDJSON    MESSAGE\\n                      gap: {"gap":{...}}\\n
    WebSocket one text frame per MESSAGE;   gap: a text frame {"gap":{...}}

Seqs start at 1 per topic; a cursor of 0 means "from the start". Nothing here locks: the
caller does (one asyncio loop, or a lock around a threaded server's calls).
"""

import json
import re
import time
from collections import deque

HISTORY = 4096  # messages kept per topic (pushlab-server's --history default)
MAX_BATCH = 1000  # messages per poll answer (--max-batch)
MAX_TOPICS = 10000
MAX_MESSAGE_BYTES = 64 * 1024
TOPIC_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
DIGITS_RE = re.compile(r"^[0-9]{1,20}$")


class WireError(Exception):
    """Bad input: answered 400 with {"error": reason} (a WebSocket is refused)."""


def encode_message(topic, seq, ts, data):
    """MESSAGE as UTF-8 bytes; json.dumps(ensure_ascii=False) escapes exactly what
    serde_json and pushlab's escape_json_into do: quote, backslash, and controls as
    \\n \\r \\t \\b \\f or \\u00xx (lowercase hex); nothing else."""
    return (
        '{"topic":"%s","seq":%d,"ts":%d,"data":%s}'
        % (topic, seq, ts, json.dumps(data, ensure_ascii=False))
    ).encode("utf-8")


def gap_object(gap):
    missed, first, last = gap
    return b'{"missed":%d,"from":%d,"to":%d}' % (missed, first, last)


def gap_notice(gap):
    return b'{"gap":' + gap_object(gap) + b"}"


def poll_batch(cursor, gap, messages):
    head = b'{"next":%d' % cursor
    if gap:
        head += b',"gap":' + gap_object(gap)
    return head + b',"messages":[' + b",".join(messages) + b"]}"


def sse_event(seq, message):
    return b"id: %d\ndata: " % seq + message + b"\n\n"


def sse_gap(gap):
    return b"id: %d\nevent: gap\ndata: " % gap[2] + gap_notice(gap) + b"\n\n"


def parse_u64(name, value):
    if not DIGITS_RE.match(value) or int(value) >= 2**64:
        raise WireError(f"{name} must be an unsigned integer, got {value[:40]!r}")
    return int(value)


def parse_query(query_string):
    """since and timeout from a query string (each at most once), as pushlab's parse_query."""
    out = {}
    for pair in query_string.decode("latin-1").split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if key not in ("since", "timeout"):
            continue
        if key in out:
            raise WireError(f"{key} given more than once")
        out[key] = parse_u64(key, value)
    return out


class Topic:
    def __init__(self, name):
        self.name = name
        self.next_seq = 1
        self.ring = deque(maxlen=HISTORY)  # (seq, MESSAGE bytes)

    @property
    def latest(self):
        return self.next_seq - 1

    def publish(self, data):
        seq = self.next_seq
        self.next_seq += 1
        msg = encode_message(self.name, seq, time.time_ns(), data)
        self.ring.append((seq, msg))
        return seq, msg

    def check_cursor(self, since):
        """Where a subscription starts: `since`, or the newest seq when it is None."""
        if since is None:
            return self.latest
        if since > self.latest:
            raise WireError(
                f"cursor {since} is ahead of topic {self.name!r} (latest seq {self.latest})"
            )
        return since

    def read_after(self, since, limit=MAX_BATCH):
        """(cursor, gap or None, [MESSAGE]) after `since`: at most `limit`; seqs gone from the
        ring come back as a gap (missed, from, to)."""
        if since >= self.latest:
            return since, None, []
        first = self.next_seq - len(self.ring)
        start = max(since + 1, first)
        gap = (start - since - 1, since + 1, start - 1) if start > since + 1 else None
        offset = start - first
        msgs = [self.ring[i][1] for i in range(offset, min(len(self.ring), offset + limit))]
        cursor = start - 1 + len(msgs)
        return cursor, gap, msgs

    def catch_up(self, cursor, upto=None):
        """Everything after `cursor` (with `upto`: until the cursor reaches it), in batches:
        (new cursor, [(seq, MESSAGE) or (None, gap)])."""
        items = []
        while upto is None or cursor < upto:
            cursor_now, gap, msgs = self.read_after(cursor)
            if gap:
                items.append((None, gap))
            first = cursor_now - len(msgs) + 1
            items += [(first + i, m) for i, m in enumerate(msgs)]
            cursor = cursor_now
            if not msgs and not gap:
                break
        return cursor, items


class Topics:
    """Every topic, made on first use."""

    def __init__(self):
        self._topics = {}

    def get(self, name):
        """The topic called `name`; WireError for a bad name or too many topics."""
        if not TOPIC_RE.match(name):
            raise WireError(f"topic must be 1 to 64 of A-Z a-z 0-9 _ . -, got {name[:80]!r}")
        t = self._topics.get(name)
        if t is None:
            if len(self._topics) >= MAX_TOPICS:
                raise WireError(f"too many topics (at most {MAX_TOPICS})")
            t = self._topics[name] = Topic(name)
        return t
