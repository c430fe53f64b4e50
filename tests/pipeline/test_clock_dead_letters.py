"""A collector with a wrong clock, end to end: real broker (tansu), real consumer relay,
real server. The server refuses the envelopes outside its time window (422 per envelope in
the batched request); the consumer dead-letters exactly those, with the server's message,
commits past them, and delivers every other batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from srvmon_server.config import ServerConfig
from srvmon_server.storage import Storage
from tests.pipeline.streams import (
    committed_total,
    create_topic,
    produce,
    read_all,
    unique_name,
    wait_until,
)
from tests.pipeline.test_relay import RunningRelay
from tests.server.harness import T0, WRITE, FakeClock, RunningServer, make_batch

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


class Target:
    """What RunningRelay needs of an ingest endpoint: its base URL and token."""

    def __init__(self, server: RunningServer) -> None:
        self.url = f"http://127.0.0.1:{server.port}"
        self.token = WRITE


def test_wrong_clock_batches_are_dead_lettered(kafka_broker: Any, tmp_path: Any) -> None:
    """15 batches from correct clocks and 3 from wrong ones (1970, year 1, 2099), mixed in
    one topic: exactly the 3 land in ``<topic>.dead`` with the server's 422 message, every
    offset is committed, and only the correct hosts are stored."""
    clock = FakeClock(T0)
    storage = Storage.open(f"sqlite:///{tmp_path / 'srvmon.db'}", clock=clock)
    server = RunningServer(storage, ServerConfig(write_tokens={WRITE}), clock)
    topic = unique_name("clock")
    create_topic(kafka_broker.bootstrap, topic, partitions=4)
    good = [
        make_batch(f"good-{i}", at=T0 - timedelta(seconds=s)) for i in range(3) for s in range(5)
    ]
    wrong = [
        make_batch("rtc-dead", at=datetime(1970, 1, 1, tzinfo=UTC)),
        make_batch("rtc-dead", at=datetime(1, 1, 1, tzinfo=UTC)),
        make_batch("rtc-ahead", at=datetime(2099, 1, 1, tzinfo=UTC)),
    ]
    produce(kafka_broker.bootstrap, topic, [*good[:7], *wrong, *good[7:]])
    group = unique_name("g")
    relay = RunningRelay(kafka_broker.bootstrap, topic, group, Target(server))  # type: ignore[arg-type]
    try:
        wait_until(lambda: relay.relay.stats.dead_lettered >= 3, 60, "wrong clocks parked")
        wait_until(lambda: relay.relay.stats.delivered_batches >= len(good), 60, "good batches")
    finally:
        relay.stop()
        server.stop()
        storage.close()
    assert relay.relay.stats.dead_lettered == 3
    dead = read_all(kafka_broker.bootstrap, f"{topic}.dead", expected=3)
    assert sorted(m.key() for m in dead) == [b"rtc-ahead", b"rtc-dead", b"rtc-dead"]
    for message in dead:
        error = dict(message.headers())["error"].decode()
        assert "HTTP 422" in error and "timestamp_out_of_range" in error, error
        assert "$.timestamp" in error
    assert committed_total(kafka_broker.bootstrap, topic, group) == len(good) + len(wrong)
    reopened = Storage.open(f"sqlite:///{tmp_path / 'srvmon.db'}", clock=clock)
    try:
        keys = sorted(r.key for r in reopened.samples.machines())
    finally:
        reopened.close()
    assert keys == ["good-0", "good-1", "good-2"]
