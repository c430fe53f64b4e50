"""``srvmon consumer`` (subprocess) relays legacy Java collector documents as srvmon batches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.processes import TOKEN, ConsumerProcess
from tests.pipeline.receiver import Receiver
from tests.pipeline.streams import create_topic, make_batch, produce, unique_name, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(token=TOKEN).start()
    yield running
    running.stop()


def legacy_document(host_id: str, local_time: str) -> bytes:
    return json.dumps(
        {
            "type": "host",
            "hostId": host_id,
            "name": host_id,
            "timeStamp": local_time,
            "cpuUsagePercent": 12.5,
            "memoryUsedBytes": 1024,
            "containers": {"a1b2": {"name": "web", "cpuUsagePercent": 3.0}},
        }
    ).encode()


def test_legacy_documents_get_the_configured_time_zone(
    kafka_broker: Any, receiver: Receiver, tmp_path: Path
) -> None:
    """SRVMON_LEGACY_TZ=Europe/Berlin turns a January local 12:00:05 into 11:00:05 UTC; a
    srvmon envelope in the same topic passes unchanged; SIGTERM ends with exit code 0."""
    topic = unique_name("legacy")
    create_topic(kafka_broker.bootstrap, topic)
    documents = [legacy_document(f"java-{i}", f"2026-01-15T12:00:{i:02d}") for i in range(5)]
    envelope = make_batch(1, 7)
    produce(kafka_broker.bootstrap, topic, [*documents, envelope])
    consumer = ConsumerProcess(
        kafka_broker.bootstrap, topic, unique_name("g"), receiver.url, tmp_path
    )
    consumer.env["SRVMON_LEGACY_TZ"] = "Europe/Berlin"
    consumer.start()
    try:
        wait_until(lambda: len(receiver.stored_keys()) >= 6, 60, "6 batches")
    finally:
        assert consumer.terminate() == 0, consumer.log()
    assert receiver.stored_keys() == {
        (f"java-{i}", f"2026-01-15T11:00:{i:02d}+00:00") for i in range(5)
    } | {("host-0001", envelope.timestamp.isoformat())}
    assert "dead-lettered" not in consumer.log()
