"""Producing known batches to a topic and reading topics back, for pipeline tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from srvmon_core.codec import encode_batch
from srvmon_core.schema import Batch, ContainerSample, HostSample

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
"""tansu completes a group join after about half the session timeout: keep it short."""


def make_batch(host_index: int, step: int) -> Batch:
    """One host and two containers: three samples. Distinct (host, step) → distinct timestamps."""
    host_id = f"host-{host_index:04d}"
    return Batch(
        host_id=host_id,
        hostname=host_id,
        timestamp=EPOCH + timedelta(seconds=step),
        host=HostSample(
            cpu_percent=float(step % 100),
            load_1=0.5,
            load_5=0.4,
            load_15=0.3,
            memory_total_bytes=8_000_000_000,
            memory_used_bytes=2_000_000_000,
            memory_available_bytes=6_000_000_000,
            memory_percent=25.0,
        ),
        containers=tuple(
            ContainerSample(id=f"{host_id}-c{i}", name=f"c{i}", cpu_percent=1.0 + i)
            for i in range(2)
        ),
    )


def batches(hosts: int, steps: Iterable[int]) -> list[Batch]:
    return [make_batch(h, s) for s in steps for h in range(hosts)]


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, topic: str, partitions: int = 4) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    )
    for future in futures.values():
        future.result(15)


def produce(
    bootstrap: str, topic: str, items: Iterable[Batch | bytes], *, one_per_request: bool = False
) -> int:
    """Produce batches (key = host_id, like the collector) or raw bytes (no key); wait for acks.

    ``one_per_request`` waits for each message's ack before the next, so every record batch
    holds one record: tansu 0.6.0 reports a partition's high watermark as one past the
    *first* offset of its last record batch, so only then is lag (high watermark minus
    position) exact against it.
    """
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5}
    )
    errors: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    count = 0
    for item in items:
        key: bytes | None
        if isinstance(item, Batch):
            key, value = item.host_id.encode(), encode_batch(item)
        else:
            key, value = None, item
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        if one_per_request:
            producer.flush(30)
    remaining = producer.flush(30)
    if remaining or errors:
        raise RuntimeError(f"produce failed: {remaining} unflushed, errors {errors[:3]}")
    return count


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
    """Read a topic from the start until ``expected`` messages arrived (or the deadline)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **FAST_GROUP,
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                if message.error() is None:
                    messages.append(message)
        # A little longer, so extra (unexpected) messages would be seen too.
        extra_deadline = time.monotonic() + 1.0
        while time.monotonic() < extra_deadline:
            messages.extend(m for m in consumer.consume(500, 0.2) if m.error() is None)
    finally:
        consumer.close()
    return messages


def committed_total(bootstrap: str, topic: str, group: str, partitions: int = 4) -> int:
    """Sum of the group's committed offsets over the topic's partitions (missing = 0)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 15)
    finally:
        consumer.close()
    return sum(max(0, tp.offset) for tp in offsets)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, every: float = 0.1
) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def read_batches(bootstrap: str, topic: str, quiet_seconds: float = 2.0) -> list[Batch]:
    """Every message of ``topic`` from the start, decoded, read until nothing new arrived
    for ``quiet_seconds`` (at most 60 s). Duplicates in the topic stay duplicates here."""
    from srvmon_core.codec import decode_batch

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **FAST_GROUP,
        }
    )
    consumer.subscribe([topic])
    found: list[Batch] = []
    deadline = time.monotonic() + 60
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            messages = [m for m in consumer.consume(500, 0.2) if m.error() is None]
            found.extend(decode_batch(m.value()) for m in messages)
            if messages:
                last_new = time.monotonic()
            elif found and time.monotonic() - last_new >= quiet_seconds:
                break
    finally:
        consumer.close()
    return found
