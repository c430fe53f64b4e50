"""The relay posts many envelopes per request to the real server; a refused envelope is
dead-lettered alone (real tansu, real srvmon server over HTTP, SQLite)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, Producer

from srvmon_agents.consumer.backoff import Backoff
from srvmon_agents.consumer.deadletter import DeadLetterSink
from srvmon_agents.consumer.delivery import IngestAnswer, IngestClient
from srvmon_agents.consumer.relay import Relay, RelaySettings
from srvmon_core.codec import decode_for_forwarding
from srvmon_core.schema import Batch
from srvmon_server.config import ServerConfig
from srvmon_server.storage import Storage
from srvmon_server.storage.settle import raw_rows
from tests.pipeline.processes import STREAM_AGE_ALLOWANCE_SECONDS
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
from tests.server.harness import WRITE, RunningServer

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

REFUSED_HOST = "host-0003"
"""Its envelopes claim a schema version the server does not know (a newer consumer)."""


def decode_with_skew(raw: bytes) -> tuple[Batch, bytes]:
    """Forward as the consumer does, but REFUSED_HOST's envelopes with a schema version
    the server does not know."""
    batch, body = decode_for_forwarding(raw)
    if batch.host_id != REFUSED_HOST:
        return batch, body
    data = json.loads(body)
    data["schema_version"] = 99
    return batch, json.dumps(data).encode()


class CountingClient(IngestClient):
    """The real client, counting requests and envelopes sent in multi-envelope requests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests = 0
        self.enveloped = 0
        self._count_lock = threading.Lock()

    def post(self, body: bytes) -> IngestAnswer:
        with self._count_lock:
            self.requests += 1
        return super().post(body)

    def post_many(self, bodies: list[bytes]) -> list[IngestAnswer] | IngestAnswer:
        with self._count_lock:
            self.requests += 1
            self.enveloped += len(bodies)
        return super().post_many(bodies)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    storage = Storage.open(f"sqlite:///{tmp_path / 'srvmon.db'}")
    config = ServerConfig(
        write_tokens={WRITE}, max_sample_age_seconds=STREAM_AGE_ALLOWANCE_SECONDS
    )  # the stream is stamped from 2026-01-01 (streams.EPOCH)
    running = RunningServer(storage, config, lambda: datetime.now(UTC))
    yield running
    running.stop()
    storage.close()


def sample_rows(storage: Storage) -> int:
    with storage.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(raw_rows(storage.dialect))
        return int(conn.execute(query).scalar_one())


def test_only_the_refused_envelope_of_a_batched_request_is_dead_lettered(
    kafka_broker: Any, server: RunningServer
) -> None:
    """1,000 batches (20 hosts) flow in multi-envelope requests; the server refuses one
    host's envelopes individually: exactly those 50 land in the dead-letter topic with the
    server's message, every other sample is stored exactly once, every offset committed."""
    topic = unique_name("batched")
    create_topic(kafka_broker.bootstrap, topic, partitions=4)
    items = batches(hosts=20, steps=range(50))
    produce(kafka_broker.bootstrap, topic, items)
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
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap, "acks": "all"})
    client = CountingClient(f"http://127.0.0.1:{server.port}", WRITE, timeout_seconds=10)
    relay = Relay(
        consumer,
        ingest=client,
        dead_letter=DeadLetterSink(producer, f"{topic}.dead"),
        settings=RelaySettings(
            topic=topic,
            batch_size=500,
            parallelism=4,
            backoff=Backoff(initial_seconds=0.02, max_seconds=0.3),
        ),
        decode=decode_with_skew,
    )
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            relay.run(stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    accepted = [b for b in items if b.host_id != REFUSED_HOST]
    try:
        wait_until(lambda: relay.stats.dead_lettered >= 50, 60, "refused envelopes parked")
        wait_until(lambda: sample_rows(server.storage) >= 3 * len(accepted), 60, "accepted samples")
    finally:
        stop.set()
        thread.join(60)
        producer.flush(10)
    assert not thread.is_alive() and not errors, errors
    assert sample_rows(server.storage) == 3 * len(accepted)
    assert relay.stats.dead_lettered == 50
    dead = read_all(kafka_broker.bootstrap, f"{topic}.dead", expected=50)
    assert len(dead) == 50
    assert {m.key() for m in dead} == {REFUSED_HOST.encode()}
    errors_of = [dict(m.headers())["error"].decode() for m in dead]
    for error in errors_of:
        assert "HTTP 400" in error and "newer than this srvmon" in error
        assert re.search(r"at \$(\.batches\[\d+\])?\.schema_version$", error), error
    assert any("$.batches[" in error for error in errors_of)
    assert committed_total(kafka_broker.bootstrap, topic, group) == len(items)
    assert client.enveloped > 0
    assert client.requests < len(items) // 2
