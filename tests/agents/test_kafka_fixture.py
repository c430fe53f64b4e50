"""The shared ``kafka_broker`` fixture really runs a broker that survives a restart."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.fixtures.kafka import KafkaBroker

pytestmark = pytest.mark.kafka


def _produce_and_consume(bootstrap: str, payload: bytes) -> bytes | None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    topic = f"fixture-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, payload, partition=0)
    assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                value: bytes | None = message.value()
                return value
        return None
    finally:
        consumer.close()


def test_broker_round_trips_a_message_before_and_after_restart(kafka_broker: KafkaBroker) -> None:
    """A produced message is consumed back, and again after ``restart()`` on the same port."""
    assert _produce_and_consume(kafka_broker.bootstrap, b"before") == b"before"
    if kafka_broker.external:
        return
    kafka_broker.restart()
    assert _produce_and_consume(kafka_broker.bootstrap, b"after") == b"after"
