"""Lag per assigned partition: messages behind the high watermark."""

from __future__ import annotations

from typing import Any


def partition_lag(consumer: Any, partitions: list[Any]) -> dict[str, int]:
    """``{"topic[partition]": high watermark - position}`` for ``partitions``.

    Position is the next offset to consume; before anything was consumed from a partition
    it is the committed offset, or the low watermark when there is none. Watermarks come
    from the last fetch, or from the broker when none is cached yet. Talks to the consumer:
    call from the consumer's thread only. Figures must never stop the relay, so a failing
    call leaves the partition out.
    """
    result: dict[str, int] = {}
    if not partitions:
        return result
    try:
        positions = consumer.position(partitions)
        unconsumed = [tp for tp in positions if tp.offset < 0]
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in (consumer.committed(unconsumed, 2) if unconsumed else [])
        }
    except Exception:
        return result
    for tp in positions:
        try:
            low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high is None or high < 0 or low is None or low < 0:
                low, high = consumer.get_watermark_offsets(tp, timeout=1)
        except Exception:
            continue
        position = tp.offset
        if position < 0:
            position = committed.get((tp.topic, tp.partition), -1)
        if position < 0:
            position = low
        result[f"{tp.topic}[{tp.partition}]"] = max(0, high - position)
    return result
