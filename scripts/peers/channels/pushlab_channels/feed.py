"""The feed of the Channels peer: pushlab's wire (scripts/peers/lib/pushlab_wire.py) with the
fan-out through the channel layer.

The history ring lives in the process even with the Redis channel layer: the layer carries the
fan-out (group_send of each MESSAGE, as the tutorial's chat does), the ring lets a subscriber
resume from its cursor and fills any seq the layer dropped. One asyncio loop touches it.
"""

from pushlab_wire import (  # noqa: F401 (re-exported for the consumers)
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

topic = Topics().get


def group_of(topic_name):
    """The channel-layer group a topic's subscribers join."""
    return "feed." + topic_name


async def publish(layer, topic_name, data):
    """Numbers `data` on the topic, keeps it in the ring, fans it out through the channel
    layer's group (the tutorial's group_send), and returns its seq."""
    t = topic(topic_name)
    seq, msg = t.publish(data)
    await layer.group_send(
        group_of(t.name), {"type": "feed.message", "seq": seq, "msg": msg.decode("utf-8")}
    )
    return seq
