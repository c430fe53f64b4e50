"""No message can stall a partition: poison of any size, an unwritable dead-letter topic and
a failing dead-letter broker are all moved past, and every valid message behind them is
delivered (real broker; real ``srvmon server`` and ``srvmon consumer`` where it matters)."""

from __future__ import annotations

import gc
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
)

from srvmon_agents.consumer.backoff import Backoff
from srvmon_agents.consumer.deadletter import TRUNCATE_BYTES, DeadLetterSink
from srvmon_agents.consumer.delivery import IngestClient
from srvmon_agents.consumer.relay import Relay, RelaySettings
from srvmon_core.codec import decode_for_forwarding, encode_batch
from srvmon_core.schema import Batch
from tests.helpers import free_port
from tests.pipeline.processes import ConsumerProcess, SampleCounter, ServerProcess, expected_rows
from tests.pipeline.receiver import Receiver
from tests.pipeline.streams import (
    FAST_GROUP,
    batches,
    committed_total,
    read_all,
    unique_name,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

MiB = 1024 * 1024
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
"""Apache Kafka's default ``message.max.bytes``; tansu enforces no limit and reports none."""
RECORD_ROOM = 128
"""Bytes a one-record batch needs besides its value (batch and record headers)."""
TOPIC_MAX_BYTES = 16 * MiB
"""The test topic's ``max.message.bytes`` (Apache Kafka honours it; tansu has no limit)."""


def create_big_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(
        topic,
        num_partitions=1,
        replication_factor=1,
        config={"max.message.bytes": str(TOPIC_MAX_BYTES)},
    )
    for future in admin.create_topics([new]).values():
        future.result(15)


def broker_max_message_bytes(bootstrap: str, topic: str) -> int:
    """The largest record the broker takes on ``topic``: the topic's ``max.message.bytes``,
    else the broker's ``message.max.bytes``, else Apache Kafka's default."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    broker_id = next(iter(admin.list_topics(timeout=10).brokers))
    for resource, name in (
        (ConfigResource("TOPIC", topic), "max.message.bytes"),
        (ConfigResource("BROKER", str(broker_id)), "message.max.bytes"),
    ):
        try:
            configs = next(iter(admin.describe_configs([resource]).values())).result(10)
        except Exception:
            continue
        if name in configs and configs[name].value:
            return int(configs[name].value)
    return KAFKA_DEFAULT_MAX_MESSAGE_BYTES


def produce_raw(bootstrap: str, topic: str, values: list[tuple[bytes | None, bytes]]) -> None:
    """(key, value) pairs in order to partition 0, with a producer that takes large ones."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "message.max.bytes": 32 * MiB,
        }
    )
    errors: list[Any] = []
    for key, value in values:
        producer.produce(
            topic, value=value, key=key, partition=0, on_delivery=lambda e, _m: errors.append(e)
        )
        producer.poll(0)
    assert producer.flush(60) == 0
    assert [e for e in errors if e is not None] == []


def garbage(size: int, mark: int) -> bytes:
    """``size`` bytes that are no JSON (and no UTF-8) at all."""
    head = b"\xff\xfe poison %d " % mark
    return head + b"\x00" * (size - len(head))


def interleave(
    valid: list[Batch], poison: list[bytes], every: int
) -> list[tuple[bytes | None, bytes]]:
    """``every`` valid batches, one poison message, ``every`` valid, … ending with valid."""
    out: list[tuple[bytes | None, bytes]] = []
    for index, batch in enumerate(valid):
        if index and index % every == 0 and poison:
            out.append((None, poison.pop(0)))
        out.append((batch.host_id.encode(), encode_batch(batch)))
    return out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    running = ServerProcess(f"sqlite:///{tmp_path / 'srvmon.db'}", tmp_path).start()
    yield running
    running.stop()


def test_poison_of_every_size_is_truncated_into_the_dead_letter_topic(
    kafka_broker: Any, server: ServerProcess, tmp_path: Path
) -> None:
    """1 MiB, 2 MiB, 10 MiB and a broker-maximum message, each followed by valid batches,
    on one partition: the four land in the dead-letter topic as truncated copies with their
    original size, partition, offset and the reason; all 25 valid batches are stored (75
    exact rows); the partition is committed to its end; a clean shutdown says nothing
    about a slow server."""
    topic = unique_name("poison")
    create_big_topic(kafka_broker.bootstrap, topic)
    maximum = broker_max_message_bytes(kafka_broker.bootstrap, topic) - RECORD_ROOM
    sizes = [1 * MiB, 2 * MiB, 10 * MiB, maximum]
    poison = [garbage(size, mark) for mark, size in enumerate(sizes)]
    valid = batches(hosts=5, steps=range(5))
    records = interleave(valid, list(poison), every=5)
    produce_raw(kafka_broker.bootstrap, topic, records)
    offsets = {value: offset for offset, (_k, value) in enumerate(records)}
    group = unique_name("g")
    consumer = ConsumerProcess(kafka_broker.bootstrap, topic, group, server.url, tmp_path)
    consumer.start()
    count = SampleCounter(server.db_url)
    try:
        wait_until(
            lambda: (
                consumer.figure("srvmon_consumer_delivered_batches_total") == len(valid)
                and consumer.figure("srvmon_consumer_dead_lettered_total") == len(poison)
            ),
            90,
            "every valid batch delivered and every poison message parked",
        )
        assert count.rows() == expected_rows(valid)
        figures = consumer.figures() or {}
        assert figures["srvmon_consumer_dead_letter_truncated_total"] == len(poison)
        assert figures["srvmon_consumer_dead_letter_failures_total"] == 0
        wait_until(
            lambda: committed_total(kafka_broker.bootstrap, topic, group, 1) == len(records),
            30,
            "the partition committed to its end",
        )
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
        count.close()
    dead = read_all(kafka_broker.bootstrap, f"{topic}.dead", expected=len(poison))
    assert len(dead) == len(poison)
    by_size = {len(p): p for p in poison}
    for message in dead:
        headers = {k: v.decode() for k, v in message.headers()}
        original = by_size[int(headers["original.size"])]
        assert message.value() == original[:TRUNCATE_BYTES]
        assert headers["truncated.size"] == str(TRUNCATE_BYTES)
        assert "MSG_SIZE_TOO_LARGE" in headers["truncated.reason"]
        assert headers["error"].startswith("undecodable:")
        assert headers["source.topic"] == topic
        assert headers["source.partition"] == "0"
        assert int(headers["source.offset"]) == offsets[original]
    assert sorted(int(dict(m.headers())["original.size"]) for m in dead) == sorted(sizes)
    log = consumer.log()
    assert log.count("dead-lettered a truncated copy of") == len(poison)
    assert "server slow or unreachable" not in log
    assert "paused consumption" not in log
    assert "Traceback" not in log
    print(f"figures: sizes={sizes} dead_lettered_truncated={len(dead)} rows={3 * len(valid)}")


def test_an_unwritable_dead_letter_topic_is_logged_counted_and_passed(
    kafka_broker: Any, server: ServerProcess, tmp_path: Path
) -> None:
    """A dead-letter topic the broker refuses (here an invalid name; on Apache Kafka with
    auto-creation off a missing topic fails the same way): each poison message gets one
    error line and counts in dead_letter_failures_total; every valid batch is stored and
    the partition is committed past the poison."""
    topic = unique_name("unwritable")
    create_big_topic(kafka_broker.bootstrap, topic)
    poison = [garbage(2 * MiB, 0), b"not json at all"]
    valid = batches(hosts=5, steps=range(3))
    records = interleave(valid, list(poison), every=5)
    produce_raw(kafka_broker.bootstrap, topic, records)
    group = unique_name("g")
    consumer = ConsumerProcess(kafka_broker.bootstrap, topic, group, server.url, tmp_path)
    consumer.env["SRVMON_DEAD_LETTER_TOPIC"] = "no such topic!"
    consumer.start()
    count = SampleCounter(server.db_url)
    try:
        wait_until(
            lambda: (
                consumer.figure("srvmon_consumer_dead_letter_failures_total") == len(poison)
                and consumer.figure("srvmon_consumer_delivered_batches_total") == len(valid)
            ),
            90,
            "every poison message passed and every valid batch delivered",
        )
        assert count.rows() == expected_rows(valid)
        assert consumer.figure("srvmon_consumer_dead_lettered_total") == 0
        wait_until(
            lambda: committed_total(kafka_broker.bootstrap, topic, group, 1) == len(records),
            30,
            "the partition committed to its end",
        )
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
        count.close()
    log = consumer.log()
    lines = [line for line in log.splitlines() if "could not dead-letter" in line]
    assert len(lines) == len(poison)
    # The broker's refusal, then librdkafka's memory of it for the next message.
    assert all(re.search(r"(TOPIC_EXCEPTION|_UNKNOWN_TOPIC)", line) for line in lines), lines
    assert all("moving past it" in line for line in lines)
    assert "Traceback" not in log


def test_a_failing_dead_letter_broker_is_logged_counted_and_passed(kafka_broker: Any) -> None:
    """The dead-letter producer's broker does not answer (every produce times out): after
    --dead-letter-timeout for the full copy and again for the truncated one, each poison
    message is counted as a dead-letter failure and passed; every valid batch arrives and
    the partition is committed to its end."""
    topic = unique_name("dlq-down")
    create_big_topic(kafka_broker.bootstrap, topic)
    poison = [b"garbage one", garbage(2 * MiB, 1), b"garbage three"]
    valid = batches(hosts=4, steps=range(4))
    records = interleave(valid, list(poison), every=4)
    produce_raw(kafka_broker.bootstrap, topic, records)
    receiver = Receiver().start()
    group = unique_name("g")
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **FAST_GROUP,
        }
    )
    nowhere = Producer(
        {
            "bootstrap.servers": f"127.0.0.1:{free_port()}",
            "message.timeout.ms": 1000,
            "logger": logging.getLogger("test.dead-letter-nowhere"),
        }
    )
    relay = Relay(
        consumer,
        ingest=IngestClient(receiver.url, receiver.token, timeout_seconds=5),
        dead_letter=DeadLetterSink(nowhere, f"{topic}.dead", retry_seconds=1.0),
        decode=decode_for_forwarding,
        settings=RelaySettings(topic=topic, backoff=Backoff(initial_seconds=0.02, max_seconds=0.2)),
    )
    stats = relay.stats
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        wait_until(
            lambda: (
                stats.dead_letter_failures == len(poison)
                and len(receiver.stored_keys()) == len(valid)
            ),
            60,
            "poison passed and valid batches delivered",
        )
        elapsed = time.monotonic() - started
        wait_until(
            lambda: committed_total(kafka_broker.bootstrap, topic, group, 1) == len(records),
            30,
            "the partition committed to its end",
        )
    finally:
        stop.set()
        thread.join(60)
        receiver.stop()
    # The relay and its lanes refer to each other: collect them now, so the producer of a
    # broker that never existed stops reconnecting for the rest of the session.
    del relay, nowhere
    gc.collect()
    assert receiver.stored_keys() == {(b.host_id, b.timestamp.isoformat()) for b in valid}
    assert stats.dead_lettered == 0
    assert stats.delivered_batches == len(valid)
    # Two bounded attempts per message (full, truncated), not a stall.
    assert elapsed < len(poison) * 2 * (1.0 + 6.0)
    print(f"figures: dead_letter_failures={len(poison)} seconds={elapsed:.1f}")
