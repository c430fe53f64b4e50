"""A 60 s broker outage under running collectors, a consumer and a server (real processes,
the durable broker): what fits in a collector's ``--buffer-size`` arrives afterwards, and a
collector with a smaller buffer drops exactly the batches that are missing."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from srvmon_core.schema import Batch
from tests.pipeline.processes import (
    CollectorProcess,
    ConsumerProcess,
    SampleCounter,
    ServerProcess,
    expected_rows,
    kill_when_in_flight,
)
from tests.pipeline.streams import create_topic, read_batches, unique_name, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

OUTAGE_SECONDS = 60.0
INTERVAL = 1.0
SMALL_BUFFER = 20


def missing_batches(timestamps: list[datetime]) -> int:
    """Batches a fixed-rate collector made but that never arrived: the gaps between the
    timestamps that did arrive, in whole intervals."""
    ordered = sorted(set(timestamps))
    return sum(
        round((later - earlier).total_seconds() / INTERVAL) - 1
        for earlier, later in itertools.pairwise(ordered)
    )


def check_buffers(produced: list[Batch], roomy_id: str, small_id: str) -> tuple[int, int, int]:
    """The roomy collector lost nothing and buffered the outage; the small one's drop
    counter equals the batches missing. Returns (roomy peak queue, small dropped, missing)."""
    roomy_batches = [b for b in produced if b.host_id == roomy_id]
    small_batches = [b for b in produced if b.host_id == small_id]
    assert len(roomy_batches) + len(small_batches) == len(produced)

    assert missing_batches([b.timestamp for b in roomy_batches]) == 0
    assert max(b.agent.dropped_batches for b in roomy_batches) == 0
    peak = max(b.agent.queue_depth for b in roomy_batches)
    assert peak >= OUTAGE_SECONDS / INTERVAL - 5, f"buffered during the outage: {peak}"

    missing = missing_batches([b.timestamp for b in small_batches])
    dropped = max(b.agent.dropped_batches for b in small_batches)
    assert missing >= OUTAGE_SECONDS / INTERVAL - SMALL_BUFFER - 5
    assert dropped == missing
    return peak, dropped, missing


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    running = ServerProcess(f"sqlite:///{tmp_path / 'srvmon.db'}", tmp_path).start()
    yield running
    running.stop()


def test_collectors_ride_out_a_60_s_broker_outage(
    durable_kafka_broker: Any, server: ServerProcess, tmp_path: Path
) -> None:
    """Broker SIGKILLed for 60 s under two collectors (1 s interval): the one with room for
    the outage loses nothing, its buffer peaked at about 60 batches; the one with
    --buffer-size 20 drops exactly as many batches as are missing from the topic. The
    consumer says once that Kafka is unreachable and once that it is back, and the rows
    are exactly what the topic holds."""
    broker = durable_kafka_broker
    topic = unique_name("outage")
    create_topic(broker.bootstrap, topic, partitions=4)
    options = ["enable.idempotence=false"]  # see tests/fixtures/kafka.py
    roomy = CollectorProcess(
        broker.bootstrap,
        topic,
        tmp_path,
        name="roomy",
        interval=INTERVAL,
        buffer_size=1000,
        kafka_options=options,
    ).start()
    small = CollectorProcess(
        broker.bootstrap,
        topic,
        tmp_path,
        name="small",
        interval=INTERVAL,
        buffer_size=SMALL_BUFFER,
        kafka_options=options,
    ).start()
    consumer = ConsumerProcess(broker.bootstrap, topic, unique_name("g"), server.url, tmp_path)
    consumer.env["SRVMON_CONSUMER_COMMIT_INTERVAL"] = "2"
    consumer.start()
    count = SampleCounter(server.db_url)
    try:
        wait_until(lambda: count() >= 4, 60, "both collectors' first rows")
        uncommitted = kill_when_in_flight(
            lambda: consumer.figure("srvmon_consumer_uncommitted_messages"),
            broker.kill,
            "acknowledged, uncommitted messages",
        )
        assert uncommitted > 0
        down_at = time.monotonic()
        try:
            wait_until(
                lambda: consumer.figure("srvmon_consumer_broker_reachable") == 0.0,
                20,
                "the consumer to report the broker unreachable",
            )
        except AssertionError:
            consumer.dump_threads()
            raise AssertionError(f"consumer stuck? its log:\n{consumer.log()[-6000:]}") from None
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        broker.start()
        wait_until(
            lambda: consumer.figure("srvmon_consumer_broker_reachable") == 1.0,
            30,
            "the consumer to report the broker back",
        )
        time.sleep(12)  # the collectors hand over their buffers (one probe at first)
        assert roomy.terminate() == 0
        assert small.terminate() == 0
        produced = read_batches(broker.bootstrap, topic)
        peak, dropped, missing = check_buffers(produced, roomy.host_id, small.host_id)

        expected = expected_rows({(b.host_id, b.timestamp): b for b in produced}.values())
        wait_until(lambda: count() >= sum(expected.values()), 60, "every row")
        assert count.rows() == expected
        log = consumer.log()
        assert log.count("Kafka unreachable at") == 1
        assert log.count("Kafka reachable again at") == 1
        print(
            f"figures: uncommitted_at_kill={uncommitted:.0f} roomy_peak_queue={peak} "
            f"small_dropped={dropped} small_missing={missing} "
            f"rows={sum(expected.values())}"
        )
    finally:
        for process in (roomy, small):
            process.kill()
        consumer.kill()
        count.close()
