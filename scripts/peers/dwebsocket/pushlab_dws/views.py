"""The views, in the dwebsocket tutorials' style: a view decorated with `@accept_websocket`
holds its WSGI worker thread for as long as its WebSocket is open.

    WS   /echo                 the tutorial's echo: each text frame comes back
    WS   /ws/T?since=S         pushlab's WebSocket feed: one text frame per MESSAGE from the
                               cursor on (gap notices as pushlab-server); a text frame publishes
    POST /publish/T            202 {"seq":N}
    GET  /healthz              200 {"status":"ok"}

The feed (pushlab_wire's topics and history ring) is in this one gunicorn process, guarded by
one lock; a condition wakes the feed sockets when a message is published. A feed socket looks
at its own socket for client frames between wake-ups (at least every POLL_S): that is the
dwebsocket way (`websocket.has_messages()` / `read()`), there is no event loop.
Bad input: 400/404/405 with {"error": reason}; a WebSocket with a bad cursor is closed with
1008 right after the handshake (dwebsocket accepts before the view runs); binary frames 1003.
"""

import threading

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from dwebsocket.decorators import accept_websocket

from pushlab_wire import MAX_MESSAGE_BYTES, Topics, WireError, gap_notice, parse_query

POLL_S = 0.05  # longest a feed socket waits before looking at its client's frames

_lock = threading.Lock()
_news = threading.Condition(_lock)
_topics = Topics()


def error(status, reason):
    return JsonResponse({"error": str(reason)}, status=status)


def publish_data(topic_name, data):
    with _news:
        seq, _ = _topics.get(topic_name).publish(data)
        _news.notify_all()
    return seq


@accept_websocket
def echo(request):
    """The tutorial's view, as written there."""
    if not request.is_websocket():
        return error(426, "this endpoint speaks WebSocket")
    for message in request.websocket:
        if message is None:
            break
        request.websocket.send(message)


def _drain_client(ws, topic_name):
    """Publishes every text frame the client has sent; False once it has closed."""
    while ws.has_messages():
        message = ws.read()
        if message is None or ws.is_closed():
            return False
        if len(message) > MAX_MESSAGE_BYTES:
            ws.close(1009)
            return False
        try:
            publish_data(topic_name, message.decode("utf-8"))
        except UnicodeDecodeError:
            ws.close(1007)
            return False
    return not ws.is_closed()


@accept_websocket
def feed_socket(request, topic):
    if not request.is_websocket():
        return error(426, "this endpoint speaks WebSocket")
    ws = request.websocket
    ws.handle = lambda opcode, data: opcode == 0x2 and ws.close(1003)
    try:
        with _lock:
            t = _topics.get(topic)
            cursor = t.check_cursor(parse_query(request.META["QUERY_STRING"].encode()).get("since"))
    except WireError:
        ws.close(1008)  # RFC 6455 7.4.1: policy violation (the handshake is already answered)
        return
    while not ws.is_closed():
        with _news:
            cursor_now, gap, msgs = t.read_after(cursor)
            if not msgs and not gap:
                _news.wait(POLL_S)
                cursor_now, gap, msgs = t.read_after(cursor)
        cursor = cursor_now
        if gap:
            ws.send(gap_notice(gap))
        for msg in msgs:
            ws.send(msg)
        if not _drain_client(ws, topic):
            break


@csrf_exempt
def publish(request, topic):
    if request.method != "POST":
        response = error(405, "method not allowed: use POST")
        response["Allow"] = "POST"
        return response
    if len(request.body) > MAX_MESSAGE_BYTES:
        return error(413, f"message larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        seq = publish_data(topic, request.body.decode("utf-8"))
    except UnicodeDecodeError:
        return error(400, "message body must be UTF-8 text")
    except WireError as e:
        return error(400, e)
    return HttpResponse(b'{"seq":%d}' % seq, status=202, content_type="application/json")


def healthz(request):
    return HttpResponse('{"status":"ok"}', content_type="application/json")
