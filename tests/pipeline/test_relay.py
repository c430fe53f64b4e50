"""The relay loop against a real broker (tansu) and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from srvmon_agents.consumer.backoff import Backoff
from srvmon_agents.consumer.deadletter import DeadLetterSink
from srvmon_agents.consumer.delivery import IngestClient
from srvmon_agents.consumer.relay import Relay, RelaySettings
from srvmon_core.codec import decode_for_forwarding
from tests.pipeline.receiver import Receiver
from tests.pipeline.streams import (
    FAST_GROUP,
    batches,
    committed_total,
    create_topic,
    produce,
    read_all,
    unique_name,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


class RunningRelay:
    def __init__(
        self, bootstrap: str, topic: str, group: str, receiver: Receiver, **settings: Any
    ) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                **FAST_GROUP,
            }
        )
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        self.relay = Relay(
            consumer,
            ingest=IngestClient(receiver.url, receiver.token, timeout_seconds=5),
            dead_letter=DeadLetterSink(self.producer, f"{topic}.dead"),
            decode=decode_for_forwarding,
            settings=RelaySettings(
                topic=topic,
                batch_size=200,
                parallelism=4,
                backoff=Backoff(initial_seconds=0.02, max_seconds=0.3),
                stats_interval_seconds=0.5,
                **settings,
            ),
        )
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.relay.run(self.stop_event)
        except BaseException as exc:
            self.errors.append(exc)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(60)
        self.producer.flush(10)
        assert not self.thread.is_alive(), "relay did not shut down"
        assert not self.errors, f"relay crashed: {self.errors!r}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture
def topic(kafka_broker: Any) -> str:
    name = unique_name("relay")
    create_topic(kafka_broker.bootstrap, name, partitions=4)
    return name


def expected_keys(items: list[Any]) -> set[tuple[str, str]]:
    return {(b.host_id, b.timestamp.isoformat()) for b in items}


def test_every_batch_arrives_and_offsets_are_committed(
    kafka_broker: Any, topic: str, receiver: Receiver
) -> None:
    """All produced batches reach the receiver; after shutdown the group has committed the end."""
    items = batches(hosts=20, steps=range(30))
    produce(kafka_broker.bootstrap, topic, items)
    group = unique_name("g")
    running = RunningRelay(kafka_broker.bootstrap, topic, group, receiver)
    try:
        wait_until(lambda: len(receiver.stored_keys()) >= len(items), 60, "all batches")
    finally:
        running.stop()
    assert receiver.stored_keys() == expected_keys(items)
    assert committed_total(kafka_broker.bootstrap, topic, group) == len(items)
    assert running.relay.stats.delivered_batches >= len(items)
    assert running.relay.stats.delivered_samples >= 3 * len(items)


def test_server_unavailable_pauses_commits_nothing_then_delivers(
    kafka_broker: Any, topic: str, receiver: Receiver
) -> None:
    """While ingest answers 503 nothing is committed and consumption pauses; then all arrive."""
    receiver.fail_status = 503
    items = batches(hosts=10, steps=range(20))
    produce(kafka_broker.bootstrap, topic, items, one_per_request=True)
    group = unique_name("g")
    running = RunningRelay(kafka_broker.bootstrap, topic, group, receiver)
    try:
        wait_until(lambda: receiver.failures >= 20, 30, "failed attempts")
        wait_until(lambda: running.relay.snapshot().paused, 10, "consumption paused")
        # Lag (high watermark - position) plus what was taken but not acknowledged is
        # everything produced: nothing was finished while the server answered 503.
        wait_until(
            lambda: (
                running.relay.latest is not None
                and sum(running.relay.latest.lag.values()) + running.relay.latest.in_flight
                == len(items)
            ),
            10,
            "lag + in_flight == produced",
        )
        assert running.relay.latest is not None
        assert running.relay.latest.as_dict()["lag_total"] == len(items) - (
            running.relay.latest.in_flight
        )
        assert running.relay.stats.retries >= 20
        assert committed_total(kafka_broker.bootstrap, topic, group) == 0
        assert receiver.stored_keys() == set()
        receiver.fail_status = None
        wait_until(lambda: len(receiver.stored_keys()) >= len(items), 60, "all batches")
        wait_until(lambda: not running.relay.snapshot().paused, 10, "consumption resumed")
    finally:
        running.stop()
    assert receiver.stored_keys() == expected_keys(items)
    assert committed_total(kafka_broker.bootstrap, topic, group) == len(items)


def test_bytes_in_flight_pause_consumption_then_everything_arrives(
    kafka_broker: Any, topic: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A slow server and --max-in-flight-bytes far below what the topic holds: consumption
    pauses on bytes (the message count stays far below its limit), resumes, and every
    batch arrives once, with the end committed."""
    items = batches(hosts=10, steps=range(30))
    produce(kafka_broker.bootstrap, topic, items)
    receiver.delay_seconds = 0.2
    group = unique_name("g")
    caplog.set_level("INFO", logger="srvmon.consumer")
    running = RunningRelay(
        kafka_broker.bootstrap, topic, group, receiver, max_in_flight_bytes=16 * 1024
    )
    try:
        wait_until(lambda: running.relay.snapshot().paused, 30, "consumption paused on bytes")
        assert running.relay.snapshot().in_flight < running.relay.settings.max_in_flight
        receiver.delay_seconds = 0.0
        wait_until(lambda: len(receiver.stored_keys()) >= len(items), 60, "all batches")
        wait_until(lambda: not running.relay.snapshot().paused, 10, "consumption resumed")
    finally:
        running.stop()
    assert "bytes of messages in flight (limit 16384)" in caplog.text
    assert receiver.stored_keys() == expected_keys(items)
    assert committed_total(kafka_broker.bootstrap, topic, group) == len(items)


def test_garbage_goes_to_dead_letter_and_valid_batches_still_arrive(
    kafka_broker: Any, topic: str, receiver: Receiver
) -> None:
    """1,000 undecodable messages land in <topic>.dead with headers; every valid batch arrives."""
    items = batches(hosts=10, steps=range(40))
    garbage = [b"not json %d" % i if i % 2 else b'{"host_id": 5}' for i in range(1000)]
    mixed: list[Any] = []
    for i in range(max(len(items), len(garbage))):
        if i < len(items):
            mixed.append(items[i])
        if i < len(garbage):
            mixed.append(garbage[i])
    produce(kafka_broker.bootstrap, topic, mixed)
    running = RunningRelay(kafka_broker.bootstrap, topic, unique_name("g"), receiver)
    try:
        wait_until(lambda: len(receiver.stored_keys()) >= len(items), 60, "all valid batches")
        wait_until(lambda: running.relay.stats.dead_lettered >= 1000, 60, "dead letters")
    finally:
        running.stop()
    assert receiver.stored_keys() == expected_keys(items)
    assert running.relay.stats.dead_lettered == 1000
    dead = read_all(kafka_broker.bootstrap, f"{topic}.dead", expected=1000)
    assert len(dead) == 1000
    assert sorted(m.value() for m in dead) == sorted(garbage)
    headers = dict(dead[0].headers())
    assert headers["source.topic"] == topic.encode()
    assert headers["error"].startswith(b"undecodable:")
    source = {
        (int(dict(m.headers())["source.partition"]), int(dict(m.headers())["source.offset"]))
        for m in dead
    }
    assert len(source) == 1000


def test_server_rejection_is_dead_lettered_with_the_server_message(
    kafka_broker: Any, topic: str, receiver: Receiver
) -> None:
    """A 4xx answer about the body parks the message with the server's error; others arrive."""
    receiver.reject_hosts = {"host-0003"}
    items = batches(hosts=5, steps=range(10))
    produce(kafka_broker.bootstrap, topic, items)
    group = unique_name("g")
    running = RunningRelay(kafka_broker.bootstrap, topic, group, receiver)
    try:
        wait_until(lambda: running.relay.stats.dead_lettered >= 10, 60, "rejected batches parked")
        wait_until(lambda: len(receiver.stored_keys()) >= 40, 60, "accepted batches")
    finally:
        running.stop()
    accepted = {k for k in expected_keys(items) if k[0] != "host-0003"}
    assert receiver.stored_keys() == accepted
    dead = read_all(kafka_broker.bootstrap, f"{topic}.dead", expected=10)
    assert len(dead) == 10
    assert {m.key() for m in dead} == {b"host-0003"}
    error = dict(dead[0].headers())["error"].decode()
    assert "HTTP 422" in error and "host refused by test" in error and "$.host_id" in error
    assert committed_total(kafka_broker.bootstrap, topic, group) == len(items)


def test_second_consumer_joining_mid_stream_splits_partitions_without_loss(
    kafka_broker: Any, topic: str, receiver: Receiver
) -> None:
    """A rebalance while the first relay has work in flight (slow server): revoked partitions
    are committed only up to what was acknowledged, the newcomer takes over, all arrive."""
    receiver.delay_seconds = 0.05
    items = batches(hosts=20, steps=range(40))
    produce(kafka_broker.bootstrap, topic, items)
    group = unique_name("g")
    first = RunningRelay(kafka_broker.bootstrap, topic, group, receiver)
    second: RunningRelay | None = None
    try:
        wait_until(lambda: len(receiver.stored_keys()) >= 50, 60, "first deliveries")
        second = RunningRelay(kafka_broker.bootstrap, topic, group, receiver)
        wait_until(lambda: second.relay.stats.delivered_batches > 0, 60, "newcomer delivering")
        wait_until(lambda: len(receiver.stored_keys()) >= len(items), 60, "all batches")
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert receiver.stored_keys() == expected_keys(items)
    assert first.relay.stats.delivered_batches > 0
    assert committed_total(kafka_broker.bootstrap, topic, group) == len(items)
