"""The ASGI application daphne serves: pushlab's paths (consumers.py) by URLRouter."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pushlab_channels.settings")

import django  # noqa: E402

django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from . import consumers as c  # noqa: E402

TOPIC = r"(?P<topic>[^/]+)$"

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                re_path(r"^poll/" + TOPIC, c.Poll.as_asgi()),
                re_path(r"^longpoll/" + TOPIC, c.LongPoll.as_asgi()),
                re_path(r"^sse/" + TOPIC, c.Sse.as_asgi()),
                re_path(r"^stream/" + TOPIC, c.Follow.as_asgi()),
                re_path(r"^publish/" + TOPIC, c.Publish.as_asgi()),
                re_path(r"^healthz$", c.Health.as_asgi()),
                re_path(r"", c.NotFound.as_asgi()),
            ]
        ),
        "websocket": URLRouter(
            [
                re_path(r"^ws/chat/(?P<room_name>[A-Za-z0-9_]{1,59})/$", c.ChatConsumer.as_asgi()),
                re_path(r"^ws/" + TOPIC, c.FeedSocket.as_asgi()),
                re_path(r"", c.Refuse.as_asgi()),
            ]
        ),
    }
)
