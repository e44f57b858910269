"""Django settings: no database, no templates; the channel layer is chosen by PUSHLAB_LAYER.

PUSHLAB_LAYER=memory (default): channels.layers.InMemoryChannelLayer.
PUSHLAB_LAYER=redis: channels_redis.core.RedisChannelLayer on 127.0.0.1:PUSHLAB_REDIS_PORT.

Both layers drop a group message for a channel that already holds `capacity` undelivered ones
(silently); the consumers here refill any seq they did not get from the history ring, and the
capacity is raised from 100 so that this is rare.
"""

import os

SECRET_KEY = "pushlab-lab-only"  # nothing here is signed or stored
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
DATABASES = {}
USE_TZ = True
ROOT_URLCONF = None
ASGI_APPLICATION = "pushlab_channels.asgi.application"

_layer = os.environ.get("PUSHLAB_LAYER", "memory")
if _layer == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [("127.0.0.1", int(os.environ["PUSHLAB_REDIS_PORT"]))],
                "capacity": 10000,
            },
        }
    }
elif _layer == "memory":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 10000},
        }
    }
else:
    raise RuntimeError(f"PUSHLAB_LAYER must be memory or redis, not {_layer!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
