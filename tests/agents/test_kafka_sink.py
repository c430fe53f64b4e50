"""The Kafka sink against a real broker: keys, decoding, outages and exact overflow drops."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from srvmon_agents.sinks.kafka import KafkaSink
from srvmon_core.codec import decode_batch, encode_batch
from srvmon_core.schema import Batch
from tests.fixtures.kafka import KafkaBroker

pytestmark = pytest.mark.kafka

HOST_ID = "host-under-test"
EPOCH = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def batch(n: int) -> Batch:
    """Batch number n, recognisable by its timestamp."""
    return Batch(host_id=HOST_ID, hostname="h", timestamp=EPOCH + timedelta(seconds=n))


def number(message_value: bytes) -> int:
    return int((decode_batch(message_value).timestamp - EPOCH).total_seconds())


@pytest.fixture
def broker(kafka_broker: KafkaBroker) -> KafkaBroker:
    """The shared broker (tansu, or SRVMON_TEST_KAFKA's), for tests that leave it running."""
    return kafka_broker


@pytest.fixture
def stoppable_broker(own_kafka_broker: KafkaBroker) -> KafkaBroker:
    """A private broker the outage tests stop and start: they run whatever
    SRVMON_TEST_KAFKA says, and never take the shared broker away from other tests."""
    return own_kafka_broker


def consume(bootstrap: str, topic: str, want: int, seconds: float) -> list[tuple[bytes, bytes]]:
    """(key, value) of every message in every partition of ``topic``, until ``want`` arrived."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    out: list[tuple[bytes, bytes]] = []
    assigned: set[int] = set()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and len(out) < want:
            metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
            partitions = set(metadata.partitions) if metadata and not metadata.error else set()
            if partitions - assigned:
                assigned |= partitions
                consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in assigned])
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                out.append((message.key(), message.value()))
        return out
    finally:
        consumer.close()


def pump_until(sink: KafkaSink, condition: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sink.pump()
        if eval(condition, {"s": sink.stats()}):
            return
        time.sleep(0.05)
    raise AssertionError(f"{condition} not reached in {seconds} s: {sink.stats()}")


def test_batches_arrive_keyed_by_host_id_and_decode(broker: KafkaBroker) -> None:
    """Every produced batch arrives once, decodes, and carries the host id as its key."""
    topic = f"srvmon-{uuid.uuid4().hex[:8]}"
    sink = KafkaSink(bootstrap=broker.bootstrap, topic=topic, capacity=100)
    for n in range(10):
        sink.send(HOST_ID, encode_batch(batch(n)))
    pump_until(sink, "s.delivered_batches == 10", 30)
    assert sink.stats().queue_depth == 0
    messages = consume(broker.bootstrap, topic, 10, 30)
    assert [number(v) for _, v in messages] == list(range(10)), "one partition, in order"
    assert {k for k, _ in messages} == {HOST_ID.encode()}
    sink.close(5)


def test_outage_of_ten_seconds_loses_nothing_within_the_buffer(
    stoppable_broker: KafkaBroker,
) -> None:
    """Broker stopped 10 s then restarted: every batch made during the outage arrives."""
    broker = stoppable_broker
    topic = f"srvmon-{uuid.uuid4().hex[:8]}"
    sink = KafkaSink(bootstrap=broker.bootstrap, topic=topic, capacity=1000)
    sink.send(HOST_ID, encode_batch(batch(0)))
    pump_until(sink, "s.delivered_batches == 1", 30)
    broker.stop()
    made: list[int] = []
    outage_ends = time.monotonic() + 10.0
    n = 1
    while time.monotonic() < outage_ends:
        sink.send(HOST_ID, encode_batch(batch(n)))
        sink.pump()
        made.append(n)
        n += 1
        time.sleep(0.25)  # the collector's cadence during the outage
    assert sink.stats().queue_depth == len(made), "nothing delivered while the broker is down"
    broker.start()
    pump_until(sink, f"s.delivered_batches == {len(made) + 1}", 60)
    stats = sink.stats()
    assert stats.dropped_batches == 0
    assert stats.queue_depth == 0
    arrived = [number(v) for _, v in consume(broker.bootstrap, topic, len(made), 30)]
    assert arrived == made, "tansu lost pre-restart data; all outage batches arrive, in order"
    sink.close(5)


def test_overflow_drops_exactly_the_oldest(stoppable_broker: KafkaBroker) -> None:
    """Broker down from the start, buffer K=5, K+M=8 batches: exactly M=3 oldest dropped."""
    broker = stoppable_broker
    capacity, extra = 5, 3
    topic = f"srvmon-{uuid.uuid4().hex[:8]}"
    broker.stop()
    sink = KafkaSink(bootstrap=broker.bootstrap, topic=topic, capacity=capacity)
    for n in range(capacity + extra):
        sink.send(HOST_ID, encode_batch(batch(n)))
        sink.pump()
        time.sleep(0.2)
    stats = sink.stats()
    assert stats.dropped_batches == extra
    assert stats.queue_depth == capacity
    broker.start()
    pump_until(sink, f"s.delivered_batches == {capacity}", 60)
    assert sink.stats().dropped_batches == extra
    arrived = [number(v) for _, v in consume(broker.bootstrap, topic, capacity + extra, 15)]
    assert arrived == list(range(extra, capacity + extra)), "the K newest arrive, in order"
    sink.close(5)
