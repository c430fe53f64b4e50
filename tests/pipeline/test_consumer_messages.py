"""The consumer speaks for itself: what its log says about the broker, the server and its
own shutdown, and librdkafka's lines rate-limited through Python logging."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest

from srvmon_agents.consumer.brokers import BrokerWatch, RateLimitFilter
from srvmon_agents.consumer.delivery import IngestAnswer, Verdict
from srvmon_agents.consumer.sender import retry_reason
from tests.helpers import free_port
from tests.pipeline.processes import ConsumerProcess
from tests.pipeline.streams import batches, create_topic, produce, unique_name, wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def librdkafka_record(facility: str, text: str, level: int = logging.ERROR) -> logging.LogRecord:
    """A record as confluent-kafka's ``logger`` setting logs it."""
    return logging.LogRecord(
        "srvmon.consumer.kafka", level, "", 0, "%s [%s] %s", (facility, "rdkafka#1", text), None
    )


def test_librdkafka_lines_are_rate_limited_per_kind() -> None:
    """100 FAIL lines in 30 s pass once; the next after the interval says how many were
    suppressed; another facility and another level are limited on their own."""
    clock = FakeClock()
    limiter = RateLimitFilter(30.0, clock)
    passed = []
    for n in range(100):
        record = librdkafka_record("FAIL", f"Connect failed: Connection refused #{n}")
        if limiter.filter(record):
            passed.append(record)
        clock.now += 0.25
    assert len(passed) == 1
    assert limiter.filter(librdkafka_record("REQTMOUT", "timed out"))
    assert limiter.filter(librdkafka_record("FAIL", "x", level=logging.INFO))
    assert limiter.filter(librdkafka_record("_ALL_BROKERS_DOWN", "1/1 brokers are down"))
    assert limiter.filter(librdkafka_record("_TRANSPORT", "Connect failed"))
    assert not limiter.filter(librdkafka_record("_TRANSPORT", "Connect failed again"))
    clock.now += 10.0
    later = librdkafka_record("FAIL", "Connect failed again")
    assert limiter.filter(later)
    assert later.getMessage().endswith("(99 similar line(s) suppressed)")


def stats(*states: str) -> str:
    return json.dumps({"brokers": {f"b{i}": {"state": state} for i, state in enumerate(states)}})


class KafkaError:
    """Stands in for confluent_kafka.KafkaError (name() and str())."""

    def __init__(self, name: str, text: str) -> None:
        self._name, self._text = name, text

    def name(self) -> str:
        return self._name

    def str(self) -> str:
        return self._text


def test_broker_watch_logs_each_change_once(caplog: pytest.LogCaptureFixture) -> None:
    """Not up within the grace: one 'unreachable' line; every further down report adds
    nothing; up again: one 'reachable again after N s' line; _ALL_BROKERS_DOWN is at once."""
    clock = FakeClock()
    watch = BrokerWatch("kafka:9092", grace_seconds=3.0, clock=clock)
    caplog.set_level(logging.INFO, logger="srvmon.consumer")
    watch.on_stats(stats("CONNECT"))
    assert watch.reachable is None
    clock.now += 3.5
    for _ in range(20):
        watch.on_stats(stats("CONNECT", "DOWN"))
        clock.now += 1.0
    assert watch.reachable is False
    watch.on_stats(stats("DOWN", "UP"))
    assert watch.reachable is True
    watch.on_error(KafkaError("_ALL_BROKERS_DOWN", "1/1 brokers are down"))
    assert watch.reachable is False
    clock.now += 4.0
    watch.on_stats(stats("UP"))
    lines = [r.getMessage() for r in caplog.records if r.name == "srvmon.consumer"]
    assert lines == [
        "Kafka unreachable at kafka:9092 (no broker connection for 4 s); consuming and "
        "committing resume when it is back",
        "Kafka reachable again at kafka:9092 after 20 s",
        "Kafka unreachable at kafka:9092 (1/1 brokers are down); consuming and committing "
        "resume when it is back",
        "Kafka reachable again at kafka:9092 after 4 s",
    ]
    assert watch.changes == 3


def test_a_refused_connection_is_named_as_such() -> None:
    """A single-envelope post that could not connect is reported with its network error,
    not as a malformed result entry."""
    refused = IngestAnswer(Verdict.RETRY, None, "ConnectionRefusedError: [Errno 111] refused")
    assert retry_reason([refused]) == "ConnectionRefusedError: [Errno 111] refused"
    malformed = IngestAnswer(Verdict.RETRY, 200, "malformed result entry")
    accepted = IngestAnswer(Verdict.ACCEPTED, 200, "")
    assert retry_reason([accepted, malformed]) == "malformed result entry"
    whole = IngestAnswer(Verdict.RETRY, 503, "HTTP 503: db_unavailable: down")
    assert retry_reason(whole) == "HTTP 503: db_unavailable: down"


def after(log: str, marker: str) -> str:
    index = log.find(marker)
    assert index >= 0, f"{marker!r} not in the log"
    return log[index:]


@pytest.mark.timeout(120)
def test_no_broker_one_clear_line_not_hundreds(tmp_path: Path) -> None:
    """A consumer whose broker does not exist: within seconds one 'Kafka unreachable' line
    and the gauge at 0; librdkafka's own lines come through logging, a handful in 12 s
    instead of ~20 a second; SIGTERM ends it cleanly (exit 0, nothing about a server)."""
    nowhere = f"127.0.0.1:{free_port()}"
    consumer = ConsumerProcess(nowhere, "t", unique_name("g"), "http://127.0.0.1:9", tmp_path)
    consumer.start()
    try:
        wait_until(
            lambda: (
                consumer.figure("srvmon_consumer_broker_reachable") == 0.0
                and "Kafka unreachable" in consumer.log()
            ),
            30,
            "the consumer to say the broker is unreachable",
        )
        time.sleep(12)
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
    log = consumer.log()
    assert log.count(f"Kafka unreachable at {nowhere}") == 1
    assert not re.search(r"^%\d\|", log, re.MULTILINE), "raw librdkafka lines on stderr"
    kafka_lines = [line for line in log.splitlines() if "srvmon.consumer.kafka:" in line]
    assert 1 <= len(kafka_lines) <= 10, kafka_lines
    assert "server slow or unreachable" not in log
    assert "paused consumption" not in after(log, "shutting down")


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_server_down_is_named_and_shutdown_is_quiet(kafka_broker: Any, tmp_path: Path) -> None:
    """With the server down the consumer says it cannot connect (not 'a result entry was
    malformed') and retries; SIGTERM then ends it with exit 0 without claiming the server
    is slow, and what it could not deliver stays uncommitted."""
    topic = unique_name("server-down")
    create_topic(kafka_broker.bootstrap, topic, partitions=1)
    produce(kafka_broker.bootstrap, topic, batches(hosts=2, steps=range(2)))
    down = f"http://127.0.0.1:{free_port()}"
    consumer = ConsumerProcess(kafka_broker.bootstrap, topic, unique_name("g"), down, tmp_path)
    consumer.env["SRVMON_CONSUMER_SHUTDOWN_TIMEOUT"] = "2"
    consumer.start()
    try:
        wait_until(
            lambda: (
                consumer.figure("srvmon_consumer_retries_total") >= 2
                and consumer.figure("srvmon_consumer_paused") == 1.0
            ),
            60,
            "retries against the down server, consumption paused",
        )
        assert consumer.figure("srvmon_consumer_in_flight") == 4
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
    log = consumer.log()
    assert re.search(r"ingest not available \(ConnectionRefusedError: .*\); retry 1 in", log)
    assert "malformed" not in log
    assert "paused consumption of 1 partition(s): the server is failing or unreachable" in log
    shutdown = after(log, "shutting down")
    assert "paused consumption" not in shutdown
    assert "shutdown timeout: 4 message(s) left uncommitted for redelivery" in shutdown
