"""The consumer's Prometheus endpoint: exact exposition text, and real figures from a real run."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from srvmon_agents.consumer.exposition import CONTENT_TYPE, MetricsEndpoint, render
from srvmon_agents.consumer.stats import StatsSnapshot
from tests.helpers import free_port
from tests.pipeline.processes import ConsumerProcess, SampleCounter, ServerProcess
from tests.pipeline.streams import (
    batches,
    create_topic,
    produce,
    read_all,
    unique_name,
    wait_until,
)

SNAPSHOT = StatsSnapshot(
    at=12.5,
    delivered_batches=40,
    delivered_samples=120,
    duplicate_samples=6,
    retries=2,
    dead_lettered=3,
    dead_letter_truncated=1,
    dead_letter_failures=2,
    in_flight=5,
    uncommitted=4,
    paused=True,
    broker_reachable=False,
    lag={"srvmon.metrics[10]": 7, "srvmon.metrics[2]": 0, 'odd"name\\x[0]': 1},
)

EXPECTED = """\
# HELP srvmon_consumer_delivered_batches_total Envelopes the server acknowledged as stored or duplicate.
# TYPE srvmon_consumer_delivered_batches_total counter
srvmon_consumer_delivered_batches_total 40.0
# HELP srvmon_consumer_delivered_samples_total Samples in the acknowledged envelopes.
# TYPE srvmon_consumer_delivered_samples_total counter
srvmon_consumer_delivered_samples_total 120.0
# HELP srvmon_consumer_duplicate_samples_total Samples the server already had (replays).
# TYPE srvmon_consumer_duplicate_samples_total counter
srvmon_consumer_duplicate_samples_total 6.0
# HELP srvmon_consumer_retries_total Ingest requests repeated after a 5xx answer, a timeout or a network error.
# TYPE srvmon_consumer_retries_total counter
srvmon_consumer_retries_total 2.0
# HELP srvmon_consumer_dead_lettered_total Messages parked in the dead-letter topic.
# TYPE srvmon_consumer_dead_lettered_total counter
srvmon_consumer_dead_lettered_total 3.0
# HELP srvmon_consumer_dead_letter_truncated_total Of the dead-lettered messages, those parked as a truncated copy (full copy failed).
# TYPE srvmon_consumer_dead_letter_truncated_total counter
srvmon_consumer_dead_letter_truncated_total 1.0
# HELP srvmon_consumer_dead_letter_failures_total Poison messages moved past without any dead-letter copy (dead-letter produce failed).
# TYPE srvmon_consumer_dead_letter_failures_total counter
srvmon_consumer_dead_letter_failures_total 2.0
# HELP srvmon_consumer_in_flight Messages taken from Kafka, not yet finished.
# TYPE srvmon_consumer_in_flight gauge
srvmon_consumer_in_flight 5.0
# HELP srvmon_consumer_uncommitted_messages Messages acknowledged or parked whose offsets are not committed yet.
# TYPE srvmon_consumer_uncommitted_messages gauge
srvmon_consumer_uncommitted_messages 4.0
# HELP srvmon_consumer_paused 1 while consumption is paused (server slow/down).
# TYPE srvmon_consumer_paused gauge
srvmon_consumer_paused 1.0
# HELP srvmon_consumer_broker_reachable 1 while a Kafka broker is reachable, 0 while none is (absent before the first verdict).
# TYPE srvmon_consumer_broker_reachable gauge
srvmon_consumer_broker_reachable 0.0
# HELP srvmon_consumer_lag_messages Messages behind the partition's high watermark, as of the last stats interval.
# TYPE srvmon_consumer_lag_messages gauge
srvmon_consumer_lag_messages{partition="0",topic="odd\\"name\\\\x"} 1.0
srvmon_consumer_lag_messages{partition="10",topic="srvmon.metrics"} 7.0
srvmon_consumer_lag_messages{partition="2",topic="srvmon.metrics"} 0.0
"""  # noqa: E501 - exposition lines are as long as their help texts


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def figures(text: str) -> dict[str, float]:
    """``name{labels}`` → value for every sample line of an exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_render_is_the_exact_exposition() -> None:
    """Counters, gauges, and lag per partition with escaped label values (prometheus_client's
    text format 0.0.4), sorted by key."""
    assert render(SNAPSHOT) == EXPECTED


def test_endpoint_serves_metrics_health_and_404() -> None:
    endpoint = MetricsEndpoint("127.0.0.1", 0, lambda: SNAPSHOT)
    try:
        base = f"http://127.0.0.1:{endpoint.port}"
        assert get(f"{base}/metrics") == (200, CONTENT_TYPE, EXPECTED)
        assert get(f"{base}/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
        status, _, body = get(f"{base}/nothing-here")
        assert (status, body) == (404, "not found: try /metrics\n")
    finally:
        endpoint.close()


@pytest.mark.kafka
def test_a_running_consumer_reports_what_it_delivered_and_parked(
    kafka_broker: Any, tmp_path: Path
) -> None:
    """A real consumer, broker and server: 60 envelopes (180 samples) and 4 garbage
    messages. /metrics ends at exactly 60 delivered batches, 180 samples, 4 dead-lettered,
    nothing in flight, not paused, and zero lag on each of the 4 partitions."""
    topic = unique_name("metrics")
    create_topic(kafka_broker.bootstrap, topic, partitions=4)
    items = batches(hosts=6, steps=range(10))
    garbage = [b"not json %d" % i for i in range(4)]
    produce(kafka_broker.bootstrap, topic, [*items, *garbage])
    db_url = f"sqlite:///{tmp_path / 'srvmon.db'}"
    server = ServerProcess(db_url, tmp_path).start()
    port = free_port()
    consumer = ConsumerProcess(
        kafka_broker.bootstrap, topic, unique_name("g"), server.url, tmp_path
    )
    consumer.env["SRVMON_CONSUMER_METRICS_PORT"] = str(port)
    count = SampleCounter(db_url)
    consumer.start()
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        done = {
            "srvmon_consumer_delivered_batches_total": 60.0,
            "srvmon_consumer_delivered_samples_total": 180.0,
            "srvmon_consumer_dead_lettered_total": 4.0,
        }

        def delivered() -> bool:
            try:
                now = figures(get(url)[2])
            except OSError:
                return False  # not listening yet
            lag = [v for k, v in now.items() if k.startswith("srvmon_consumer_lag_messages{")]
            return all(now.get(k) == v for k, v in done.items()) and lag == [0.0] * 4

        wait_until(delivered, 90, "the consumer's figures to reach the produced counts")
        final = figures(get(url)[2])
        assert {k: final[k] for k in done} == done
        assert final["srvmon_consumer_duplicate_samples_total"] == 0.0
        assert final["srvmon_consumer_in_flight"] == 0.0
        assert final["srvmon_consumer_paused"] == 0.0
        assert final["srvmon_consumer_broker_reachable"] == 1.0
        assert final["srvmon_consumer_dead_letter_truncated_total"] == 0.0
        assert final["srvmon_consumer_dead_letter_failures_total"] == 0.0
        lag_lines = sorted(k for k in final if k.startswith("srvmon_consumer_lag_messages"))
        assert lag_lines == [
            f'srvmon_consumer_lag_messages{{partition="{p}",topic="{topic}"}}' for p in range(4)
        ]
        assert count() == 180
        assert len(read_all(kafka_broker.bootstrap, f"{topic}.dead", expected=4)) == 4
        assert re.search(rf"metrics at http://127\.0\.0\.1:{port}/metrics", consumer.log())
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
        server.stop()
        count.close()


@pytest.mark.kafka
def test_a_port_in_use_is_a_clear_error(kafka_broker: Any, tmp_path: Path) -> None:
    blocker = MetricsEndpoint("127.0.0.1", 0, lambda: SNAPSHOT)
    try:
        nowhere = "http://127.0.0.1:9"
        consumer = ConsumerProcess(
            kafka_broker.bootstrap, unique_name("t"), unique_name("g"), nowhere, tmp_path
        )
        consumer.env["SRVMON_CONSUMER_METRICS_PORT"] = str(blocker.port)
        consumer.start()
        assert consumer.process is not None
        assert consumer.process.wait(30) == 1
        log = consumer.log()
        assert f"Error: cannot serve metrics on 127.0.0.1:{blocker.port}" in log
        assert "Traceback" not in log
    finally:
        blocker.close()
