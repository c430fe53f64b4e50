"""The durable test broker (tansu on moto's S3) keeps topics, every acknowledged message and
committed offsets across a SIGKILL, measured here while a producer is mid-stream."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.pipeline.streams import FAST_GROUP, create_topic, unique_name, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def test_sigkill_mid_produce_keeps_acked_messages_and_committed_offsets(
    durable_kafka_broker: Any,
) -> None:
    """5,000 messages are acknowledged, then the broker is SIGKILLed while the producer
    keeps sending and restarted: every acknowledged message is readable afterwards, the
    topic still has its 4 partitions, and the group's committed offsets are unchanged."""
    broker = durable_kafka_broker
    topic, group = unique_name("durable"), unique_name("g")
    create_topic(broker.bootstrap, topic, partitions=4)
    # Not idempotent: tansu 0.6.0 loses acknowledged batches of an idempotent producer
    # that it retries across a crash (docs/operations.md, "The test broker").
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": False}
    )
    acked: set[bytes] = set()
    lock = threading.Lock()

    def on_delivery(err: Any, message: Any) -> None:
        if err is None:
            with lock:
                acked.add(message.value())

    sent = 0
    while len(acked) < 5000:
        producer.produce(
            topic, key=b"k%d" % (sent % 40), value=b"v%d" % sent, on_delivery=on_delivery
        )
        sent += 1
        producer.poll(0)
    partitions = [TopicPartition(topic, p) for p in range(4)]
    taken, committed = consume_and_commit(broker.bootstrap, topic, group, 1000)
    assert sum(max(0, o) for o in committed) == taken >= 1000
    for n in range(sent, sent + 2000):  # still sending while the broker dies
        producer.produce(topic, key=b"k%d" % (n % 40), value=b"v%d" % n, on_delivery=on_delivery)
    sent += 2000
    with lock:
        unacknowledged_at_kill = sent - len(acked)
    broker.kill()
    assert unacknowledged_at_kill > 0
    broker.start()
    assert producer.flush(60) == 0
    assert len(acked) == sent, "every message acknowledged after the restart"

    check = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        assert [tp.offset for tp in check.committed(partitions, 10)] == committed
        metadata = check.list_topics(topic, timeout=10).topics[topic]
        assert len(metadata.partitions) == 4
    finally:
        check.close()
    assert acked <= read_values(broker.bootstrap, topic, acked)


def consume_and_commit(
    bootstrap: str, topic: str, group: str, at_least: int
) -> tuple[int, list[int]]:
    """Consume at least ``at_least`` messages as ``group``, commit, return how many were
    taken and the committed offset of each of the 4 partitions."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **FAST_GROUP,
        }
    )
    reader.subscribe([topic])
    taken = 0
    deadline = time.monotonic() + 30
    try:
        while taken < at_least and time.monotonic() < deadline:
            taken += sum(1 for m in reader.consume(200, 0.5) if m.error() is None)
        reader.commit(asynchronous=False)
        partitions = [TopicPartition(topic, p) for p in range(4)]
        return taken, [tp.offset for tp in reader.committed(partitions, 10)]
    finally:
        reader.close()


def read_values(bootstrap: str, topic: str, wanted: set[bytes]) -> set[bytes]:
    """Values read from the start of ``topic`` until all of ``wanted`` arrived (or 60 s)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("all"),
            "auto.offset.reset": "earliest",
            **FAST_GROUP,
        }
    )
    consumer.subscribe([topic])
    seen: set[bytes] = set()

    def arrived() -> bool:
        seen.update(m.value() for m in consumer.consume(500, 0.2) if m.error() is None)
        return wanted <= seen

    try:
        wait_until(arrived, 60, "every acknowledged message")
    finally:
        consumer.close()
    return seen
