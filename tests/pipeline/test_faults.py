"""End-to-end faults on real processes: tansu → ``srvmon consumer`` → ``srvmon server`` →
SQLite / MariaDB, and ``srvmon collector`` → tansu for the broker faults.

Every test injects its fault while work is provably in flight (it asserts a non-zero
in-flight figure read just before the kill), then requires the exact rows, one per
(machine, timestamp) produced, and the figure that shows what the fault did: requests
retried, samples redelivered and absorbed as duplicates, InnoDB crash recovery. The samples
table's primary key hides duplicates from ``count()``, so redelivery is proven through the
consumer's and the server's counters, never through row counts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from srvmon_core.schema import Batch
from tests.pipeline.processes import (
    TOKEN,
    AlertStream,
    CollectorProcess,
    ConsumerProcess,
    SampleCounter,
    ServerProcess,
    expected_rows,
    kill_when_in_flight,
)
from tests.pipeline.streams import (
    batches,
    create_topic,
    make_batch,
    produce,
    read_all,
    read_batches,
    unique_name,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

HOSTS = 25
FIRST_STEPS = range(60)
SECOND_STEPS = range(60, 80)
NOT_IDEMPOTENT = "enable.idempotence=false"
"""tansu 0.6.0 on S3 loses batches of an idempotent producer that it acknowledges after a
crash (docs/operations.md, "The test broker"); against the durable broker the collectors
produce without idempotence (duplicates in the topic are absorbed by the server)."""


@pytest.fixture(params=["sqlite", "mariadb"])
def db_backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'srvmon.db'}"
    request.applymarker(pytest.mark.mariadb)
    return str(request.getfixturevalue("mariadb_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'srvmon.db'}"


class Pipeline:
    def __init__(self, bootstrap: str, db_url: str, workdir: Path) -> None:
        self.bootstrap = bootstrap
        self.topic = unique_name("faults")
        self.group = unique_name("group")
        self.workdir = workdir
        create_topic(bootstrap, self.topic, partitions=4)
        self.server = ServerProcess(db_url, workdir).start()
        self.count = SampleCounter(db_url)
        self.consumers: list[ConsumerProcess] = []
        self.collectors: list[CollectorProcess] = []
        self.produced: list[Batch] = []

    def consumer(self, name: str = "consumer", **env: str) -> ConsumerProcess:
        process = ConsumerProcess(
            self.bootstrap, self.topic, self.group, self.server.url, self.workdir, name=name
        )
        process.env.update(env)
        self.consumers.append(process.start())
        return process

    def collector(self, name: str, **options: Any) -> CollectorProcess:
        process = CollectorProcess(self.bootstrap, self.topic, self.workdir, name=name, **options)
        self.collectors.append(process.start())
        return process

    def produce(self, steps: range) -> None:
        items = batches(HOSTS, steps)
        produce(self.bootstrap, self.topic, items)
        self.produced.extend(items)

    def wait_for_rows(self, expected: Counter[tuple[str, int]], timeout: float) -> None:
        """Wait until exactly the ``expected`` rows are stored (nothing missing, no extra)."""
        total = sum(expected.values())
        wait_until(lambda: self.count() >= total, timeout, f"{total} sample rows", every=0.2)
        assert self.count.rows() == expected

    def close(self) -> None:
        for process in [*self.consumers, *self.collectors]:
            process.kill()
        self.server.stop()
        self.count.close()


@pytest.fixture
def pipeline_factory(kafka_broker: Any, tmp_path: Path) -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []

    def make(db_url: str, broker: Any = kafka_broker) -> Pipeline:
        pipeline = Pipeline(broker.bootstrap, db_url, tmp_path)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.close()


def committed(bootstrap: str, topic: str, group: str) -> list[int]:
    """The group's committed offset of each of the 4 partitions (-1001: none)."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = [TopicPartition(topic, p) for p in range(4)]
        return [tp.offset for tp in reader.committed(partitions, 15)]
    finally:
        reader.close()


# ---- 1. the broker ---------------------------------------------------------------------


def test_broker_killed_mid_flight_resumes_from_committed_offsets(
    pipeline_factory: Any, durable_kafka_broker: Any, sqlite_url: str
) -> None:
    """SIGKILL of the (durable) broker while a collector produces and the consumer holds
    acknowledged, uncommitted work; restart. The group's committed offsets are back, the
    consumer says the broker was unreachable and is back, the rows are exactly the
    collector's batches, and a second consumer of the group then finds nothing left to
    deliver: it resumes from the committed offsets (a broker that lost them would have it
    deliver everything again)."""
    broker = durable_kafka_broker
    pipeline = pipeline_factory(sqlite_url, broker)
    first = pipeline.consumer("first", SRVMON_CONSUMER_COMMIT_INTERVAL="2")
    collector = pipeline.collector("collector", interval=0.1, kafka_options=[NOT_IDEMPOTENT])
    wait_until(lambda: pipeline.count() >= 10, 60, "the first rows")
    wait_until(
        lambda: max(committed(broker.bootstrap, pipeline.topic, pipeline.group)) > 0,
        30,
        "a first commit",
    )
    before = committed(broker.bootstrap, pipeline.topic, pipeline.group)
    uncommitted = kill_when_in_flight(
        lambda: first.figure("srvmon_consumer_uncommitted_messages"),
        broker.kill,
        "acknowledged, uncommitted messages",
    )
    assert uncommitted > 0
    wait_until(
        lambda: first.figure("srvmon_consumer_broker_reachable") == 0.0,
        15,
        "the consumer to report the broker unreachable",
    )
    time.sleep(2)  # the collector keeps reading into its buffer
    broker.start()
    after = committed(broker.bootstrap, pipeline.topic, pipeline.group)
    assert all(a >= b for a, b in zip(after, before, strict=True)), (before, after)
    wait_until(
        lambda: first.figure("srvmon_consumer_broker_reachable") == 1.0,
        30,
        "the consumer to report the broker back",
    )
    time.sleep(2)  # the collector hands over what it buffered
    assert collector.terminate() == 0
    produced = read_batches(broker.bootstrap, pipeline.topic)
    expected = expected_rows({(b.host_id, b.timestamp): b for b in produced}.values())
    pipeline.wait_for_rows(expected, 90)
    log = first.log()
    assert log.count("Kafka unreachable at") == 1 and log.count("Kafka reachable again") == 1
    assert first.terminate() == 0  # commits what it finished
    second = pipeline.consumer("second")
    wait_until(lambda: "assigned" in second.log(), 60, "the second consumer's assignment")
    time.sleep(2)
    assert second.figure("srvmon_consumer_delivered_batches_total") == 0.0
    assert second.figure("srvmon_consumer_duplicate_samples_total") == 0.0
    assert pipeline.count.rows() == expected
    print(
        f"figures: uncommitted_at_kill={uncommitted:.0f} committed_before={before} "
        f"committed_after_restart={after} rows={sum(expected.values())} "
        f"batches_in_topic={len(produced)}"
    )


# ---- 2. the database -------------------------------------------------------------------


@pytest.mark.mariadb
def test_mariadb_killed_mid_ingest_recovers_everything_acknowledged(
    pipeline_factory: Any, tmp_path: Path
) -> None:
    """SIGKILL of mariadbd while requests are in flight: the server answers 503, the
    consumer retries; mariadbd restarts through InnoDB crash recovery; every row stored
    before the kill is still there and the rows are exactly the produced samples."""
    from tests.fixtures.mariadb import start_mariadb, stop_mariadb
    from tests.helpers import missing

    try:
        database = start_mariadb(tmp_path / "own-mariadb")
    except (FileNotFoundError, RuntimeError) as exc:
        missing("mariadb", str(exc))
        return
    try:
        pipeline = pipeline_factory(database.create_database("srvmon_faults"))
        pipeline.produce(FIRST_STEPS)
        consumer = pipeline.consumer(SRVMON_CONSUMER_REQUEST_BATCHES="1")
        wait_until(lambda: pipeline.count() >= 300, 60, "the first rows")
        assert database.process is not None
        mariadbd = database.process
        in_flight = kill_when_in_flight(
            lambda: consumer.figure("srvmon_consumer_in_flight"),
            lambda: os.kill(mariadbd.pid, signal.SIGKILL),
            "messages in flight",
        )
        mariadbd.wait(10)
        assert in_flight > 0
        wait_until(lambda: "HTTP 503" in consumer.log(), 60, "the server answering 503")
        pipeline.produce(SECOND_STEPS)
        log_path = tmp_path / "own-mariadb" / "restart.log"
        with log_path.open("ab") as log:
            database.process = subprocess.Popen(mariadbd.args, stdout=log, stderr=subprocess.STDOUT)
        pipeline.wait_for_rows(expected_rows(pipeline.produced), 120)
        assert "crash recovery" in log_path.read_text(errors="replace").lower()
        retries = consumer.figure("srvmon_consumer_retries_total")
        assert retries > 0
        assert "malformed" not in consumer.log()
        print(
            f"figures: in_flight_at_kill={in_flight:.0f} retries={retries:.0f} "
            f"rows={pipeline.count()}"
        )
        pipeline.close()
    finally:
        stop_mariadb(database)


# ---- 3. the server ---------------------------------------------------------------------


def test_server_killed_with_a_request_in_flight(pipeline_factory: Any, db_backend: str) -> None:
    """SIGKILL of the server while the consumer has requests out: the consumer retries
    (its retries counter is above zero), and after the restart the rows are exact."""
    pipeline = pipeline_factory(db_backend)
    pipeline.produce(FIRST_STEPS)
    consumer = pipeline.consumer(SRVMON_CONSUMER_REQUEST_BATCHES="1")
    wait_until(lambda: pipeline.count() >= 300, 60, "the first rows")
    in_flight = kill_when_in_flight(
        lambda: consumer.figure("srvmon_consumer_in_flight"),
        pipeline.server.kill,
        "messages in flight",
    )
    assert in_flight > 0
    pipeline.produce(SECOND_STEPS)
    wait_until(
        lambda: consumer.figure("srvmon_consumer_retries_total") > 0, 30, "a retried request"
    )
    pipeline.server.start()
    pipeline.wait_for_rows(expected_rows(pipeline.produced), 90)
    retries = consumer.figure("srvmon_consumer_retries_total")
    assert retries > 0
    print(
        f"figures: in_flight_at_kill={in_flight:.0f} retries={retries:.0f} rows={pipeline.count()}"
    )
    log = consumer.log()
    assert re.search(
        r"ingest not available \((RemoteDisconnected|ConnectionResetError|"
        r"ConnectionRefusedError)",
        log,
    )
    assert "malformed" not in log


# ---- 4. the consumer -------------------------------------------------------------------

FLAP_HOST = "host-flap"
RULE_ID = "flap-cpu"


def flap_batches(steps: range) -> list[Batch]:
    """A host (no containers) whose CPU alternates 95 % (even steps) and 5 % (odd steps)."""
    import attrs

    out = []
    for step in steps:
        batch = make_batch(0, step)
        assert batch.host is not None
        host = attrs.evolve(batch.host, cpu_percent=95.0 if step % 2 == 0 else 5.0)
        out.append(
            attrs.evolve(batch, host_id=FLAP_HOST, hostname=FLAP_HOST, host=host, containers=())
        )
    return out


def post_rule(server_url: str) -> None:
    rule = {
        "id": RULE_ID,
        "name": "Flapping CPU",
        "metric": "cpu_percent",
        "warn": 50,
        "crit": 500,
        "selector": {"kind": "host", "machine": FLAP_HOST},
    }
    request = urllib.request.Request(
        f"{server_url}/api/v1/rules",
        data=json.dumps(rule).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status in (200, 201)


def stored_alert_events(server_url: str) -> list[tuple[str, str]]:
    url = f"{server_url}/api/v1/alerts/history?rule={RULE_ID}&limit=1000"
    with urllib.request.urlopen(url, timeout=10) as answer:
        events = json.loads(answer.read())["events"]
    return [(str(e["machine_name"]), str(e["to_state"])) for e in events]


def test_consumer_killed_between_ack_and_commit(pipeline_factory: Any, sqlite_url: str) -> None:
    """SIGKILL of a consumer holding acknowledged, uncommitted work (it commits every
    30 s here, so all it delivered is uncommitted). The next consumer delivers all of it
    again: the server absorbs exactly those samples as duplicates, the rows are exact, and
    the flapping host's alerts (one firing per breaching sample, one resolved per calm one)
    are stored and sent once each, redelivered breaching samples included."""
    pipeline = pipeline_factory(sqlite_url)
    post_rule(pipeline.server.url)
    stream = AlertStream(pipeline.server.url)
    try:
        steps = range(40)
        flapping = flap_batches(steps)
        produce(pipeline.bootstrap, pipeline.topic, flapping)
        pipeline.produced.extend(flapping)
        pipeline.produce(FIRST_STEPS)
        first = pipeline.consumer(
            "first", SRVMON_CONSUMER_COMMIT_INTERVAL="30", SRVMON_CONSUMER_REQUEST_BATCHES="5"
        )
        wait_until(lambda: pipeline.count() >= 600, 60, "the first rows")
        uncommitted = kill_when_in_flight(
            lambda: first.figure("srvmon_consumer_uncommitted_messages"),
            first.kill,
            "acknowledged, uncommitted messages",
        )
        assert uncommitted > 0
        time.sleep(0.5)  # let the server finish a request that was on the wire
        stored_before = pipeline.count()
        assert committed(pipeline.bootstrap, pipeline.topic, pipeline.group) == [-1001] * 4
        flap_keys = {k for k in pipeline.count.rows() if k[0] == FLAP_HOST}
        assert flap_keys, "some of the flapping host's samples were stored before the kill"
        second = pipeline.consumer("second")
        pipeline.wait_for_rows(expected_rows(pipeline.produced), 90)
        wait_until(
            lambda: second.figure("srvmon_consumer_duplicate_samples_total") >= stored_before,
            30,
            "the redelivered samples",
        )
        assert second.figure("srvmon_consumer_duplicate_samples_total") == stored_before
        server = pipeline.server.figures() or {}
        assert server["srvmon_server_ingest_duplicates_total"] == stored_before
        expected_events = Counter({(FLAP_HOST, "firing"): 20, (FLAP_HOST, "resolved"): 20})
        wait_until(lambda: len(stream.of_rule(RULE_ID)) >= 40, 30, "40 alert events sent")
        time.sleep(1)
        assert Counter(stored_alert_events(pipeline.server.url)) == expected_events
        assert Counter(stream.of_rule(RULE_ID)) == expected_events
        assert second.terminate() == 0
        print(
            f"figures: uncommitted_at_kill={uncommitted:.0f} duplicates={stored_before} "
            f"rows={pipeline.count()} alert_events=40"
        )
    finally:
        stream.close()


# ---- more faults: a locked database, one of two consumers, garbage ---------------------


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def test_sqlite_locked_for_a_while(pipeline_factory: Any, sqlite_url: str) -> None:
    """While another process holds SQLite's write lock the server answers 503; the consumer
    retries, and once the lock is gone every sample is stored exactly once."""
    pipeline = pipeline_factory(sqlite_url)
    pipeline.produce(FIRST_STEPS)
    consumer = pipeline.consumer(SRVMON_CONSUMER_REQUEST_BATCHES="1")
    wait_until(lambda: pipeline.count() >= 300, 60, "the first rows")
    blocker = sqlite3.connect(_sqlite_path(sqlite_url), timeout=30, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        pipeline.produce(SECOND_STEPS)
        wait_until(lambda: "HTTP 503" in consumer.log(), 60, "the server answering 503")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    pipeline.wait_for_rows(expected_rows(pipeline.produced), 90)
    assert consumer.figure("srvmon_consumer_retries_total") > 0


def test_two_consumers_one_killed(pipeline_factory: Any, db_backend: str) -> None:
    """Two consumers split the partitions; SIGKILL one while it holds work and the other
    takes over its partitions from their last commit: exact rows."""
    pipeline = pipeline_factory(db_backend)
    pipeline.produce(FIRST_STEPS)
    first = pipeline.consumer("first", SRVMON_CONSUMER_REQUEST_BATCHES="1")
    second = pipeline.consumer("second", SRVMON_CONSUMER_REQUEST_BATCHES="1")
    wait_until(
        lambda: "assigned" in first.log() and "assigned" in second.log(), 60, "both assigned"
    )
    wait_until(lambda: pipeline.count() >= 300, 60, "the first rows")
    held = kill_when_in_flight(
        lambda: (
            first.figure("srvmon_consumer_in_flight")
            + first.figure("srvmon_consumer_uncommitted_messages")
        ),
        first.kill,
        "work held by the first consumer",
    )
    assert held > 0
    pipeline.produce(SECOND_STEPS)
    pipeline.wait_for_rows(expected_rows(pipeline.produced), 120)
    assert second.terminate() == 0


def test_garbage_dead_lettered_through_the_real_server(
    pipeline_factory: Any, sqlite_url: str
) -> None:
    """1,000 garbage messages mixed into the stream land in the dead-letter topic (exactly
    1,000) and every valid sample is stored (exact rows)."""
    pipeline = pipeline_factory(sqlite_url)
    valid = batches(HOSTS, range(20))
    garbage = [b"{broken %d" % i for i in range(1000)]
    mixed: list[Any] = []
    for i in range(max(len(valid), len(garbage))):
        mixed.extend(valid[i : i + 1])
        mixed.extend(garbage[i : i + 1])
    produce(pipeline.bootstrap, pipeline.topic, mixed)
    consumer = pipeline.consumer()
    pipeline.wait_for_rows(expected_rows(valid), 90)
    dead = read_all(pipeline.bootstrap, f"{pipeline.topic}.dead", expected=1000)
    assert len(dead) == 1000
    assert sorted(m.value() for m in dead) == sorted(garbage)
    assert consumer.figure("srvmon_consumer_dead_lettered_total") == 1000
