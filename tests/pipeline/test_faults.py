"""End-to-end faults: tansu → ``srvmon consumer`` → ``srvmon server`` → SQLite / MariaDB.

Every test produces a known set of batches (1 host + 2 containers each, distinct host and
timestamp), injects a fault while data is flowing, and then requires EXACTLY the produced
number of sample rows in the database: nothing lost, nothing duplicated.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.processes import (
    ConsumerProcess,
    SampleCounter,
    ServerProcess,
    wait_for_rows,
)
from tests.pipeline.streams import (
    batches,
    committed_total,
    create_topic,
    produce,
    read_all,
    unique_name,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

HOSTS = 25
FIRST_STEPS = range(20)
SECOND_STEPS = range(20, 40)
SAMPLES_PER_BATCH = 3
FIRST_SAMPLES = HOSTS * len(FIRST_STEPS) * SAMPLES_PER_BATCH
ALL_SAMPLES = HOSTS * (len(FIRST_STEPS) + len(SECOND_STEPS)) * SAMPLES_PER_BATCH


@pytest.fixture(params=["sqlite", "mariadb"])
def db_backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'srvmon.db'}"
    if request.param == "mariadb":
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

    def consumer(self, name: str = "consumer") -> ConsumerProcess:
        process = ConsumerProcess(
            self.bootstrap, self.topic, self.group, self.server.url, self.workdir, name=name
        ).start()
        self.consumers.append(process)
        return process

    def produce(self, steps: range) -> int:
        return produce(self.bootstrap, self.topic, batches(HOSTS, steps))

    def close(self) -> None:
        for consumer in self.consumers:
            consumer.kill()
        self.server.stop()
        self.count.close()


@pytest.fixture
def pipeline_factory(kafka_broker: Any, tmp_path: Path) -> Iterator[Any]:
    made: list[Pipeline] = []

    def make(db_url: str) -> Pipeline:
        pipeline = Pipeline(kafka_broker.bootstrap, db_url, tmp_path)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.close()


def test_server_killed_mid_stream_and_restarted(pipeline_factory: Any, db_backend: str) -> None:
    """SIGKILL of the server while batches flow loses nothing and duplicates nothing."""
    pipeline = pipeline_factory(db_backend)
    pipeline.produce(FIRST_STEPS)
    pipeline.consumer()
    wait_for_rows(pipeline.count, FIRST_SAMPLES // 4, 60)
    pipeline.server.kill()
    pipeline.produce(SECOND_STEPS)
    pipeline.server.start()
    wait_for_rows(pipeline.count, ALL_SAMPLES, 90)
    assert pipeline.count() == ALL_SAMPLES
    assert "retry" in pipeline.consumers[0].log()


def test_consumer_killed_mid_batch_and_restarted(pipeline_factory: Any, sqlite_url: str) -> None:
    """SIGKILL of the consumer mid-stream: the restarted one re-delivers from the last commit."""
    pipeline = pipeline_factory(sqlite_url)
    pipeline.produce(FIRST_STEPS)
    first = pipeline.consumer("first")
    wait_for_rows(pipeline.count, FIRST_SAMPLES // 4, 60)
    first.kill()
    killed_at = pipeline.count()
    assert killed_at < ALL_SAMPLES
    pipeline.produce(SECOND_STEPS)
    second = pipeline.consumer("second")
    wait_for_rows(pipeline.count, ALL_SAMPLES, 90)
    assert pipeline.count() == ALL_SAMPLES
    assert second.terminate() == 0
    total_batches = HOSTS * (len(FIRST_STEPS) + len(SECOND_STEPS))
    assert committed_total(pipeline.bootstrap, pipeline.topic, pipeline.group) == total_batches


def test_broker_restarted(pipeline_factory: Any, kafka_broker: Any, sqlite_url: str) -> None:
    """After a tansu restart (topics lost) the consumer reconnects by itself and delivers
    everything produced afterwards; rows acknowledged before the restart stay in the DB."""
    pipeline = pipeline_factory(sqlite_url)
    pipeline.produce(FIRST_STEPS)
    pipeline.consumer()
    wait_for_rows(pipeline.count, FIRST_SAMPLES, 60)
    kafka_broker.restart()
    create_topic(pipeline.bootstrap, pipeline.topic, partitions=4)
    pipeline.produce(SECOND_STEPS)
    wait_for_rows(pipeline.count, ALL_SAMPLES, 120)
    assert pipeline.count() == ALL_SAMPLES


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def test_sqlite_locked_for_a_while(pipeline_factory: Any, sqlite_url: str) -> None:
    """While another process holds SQLite's write lock the server answers 503; the consumer
    retries, and once the lock is gone every sample is stored exactly once."""
    pipeline = pipeline_factory(sqlite_url)
    pipeline.produce(FIRST_STEPS)
    consumer = pipeline.consumer()
    wait_for_rows(pipeline.count, FIRST_SAMPLES // 4, 60)
    blocker = sqlite3.connect(_sqlite_path(sqlite_url), timeout=30, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        pipeline.produce(SECOND_STEPS)
        wait_until(lambda: "HTTP 503" in consumer.log(), 60, "the server answering 503")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    wait_for_rows(pipeline.count, ALL_SAMPLES, 90)
    assert pipeline.count() == ALL_SAMPLES


@pytest.mark.mariadb
def test_mariadb_down_for_a_while(pipeline_factory: Any, tmp_path: Path) -> None:
    """mariadbd stopped mid-stream: the server answers 503, the consumer retries and pauses;
    after mariadbd is back every sample is stored exactly once."""
    from tests.fixtures.mariadb import start_mariadb, stop_mariadb
    from tests.helpers import missing

    try:
        database = start_mariadb(tmp_path / "own-mariadb")
    except (FileNotFoundError, RuntimeError) as exc:
        missing("mariadb", str(exc))
        return
    try:
        url = database.create_database("srvmon_faults")
        pipeline = pipeline_factory(url)
        pipeline.produce(FIRST_STEPS)
        consumer = pipeline.consumer()
        wait_for_rows(pipeline.count, FIRST_SAMPLES // 4, 60)
        assert database.process is not None
        arguments = database.process.args
        stop_mariadb(database)
        pipeline.produce(SECOND_STEPS)
        wait_until(lambda: "HTTP 503" in consumer.log(), 60, "the server answering 503")
        log = (tmp_path / "own-mariadb" / "restart.log").open("ab")
        database.process = subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for_rows(pipeline.count, ALL_SAMPLES, 120)
        assert pipeline.count() == ALL_SAMPLES
        pipeline.close()
    finally:
        stop_mariadb(database)


def test_two_consumers_one_killed(pipeline_factory: Any, db_backend: str) -> None:
    """Two consumers split the partitions; SIGKILL one mid-stream and the other takes over
    its partitions from their last commit: exact row count."""
    pipeline = pipeline_factory(db_backend)
    pipeline.produce(FIRST_STEPS)
    first = pipeline.consumer("first")
    second = pipeline.consumer("second")
    wait_until(
        lambda: "assigned" in first.log() and "assigned" in second.log(), 60, "both assigned"
    )
    wait_for_rows(pipeline.count, FIRST_SAMPLES // 4, 60)
    assert first.process is not None
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(10)
    pipeline.produce(SECOND_STEPS)
    wait_for_rows(pipeline.count, ALL_SAMPLES, 120)
    assert pipeline.count() == ALL_SAMPLES
    assert second.terminate() == 0


def test_garbage_dead_lettered_through_the_real_server(
    pipeline_factory: Any, sqlite_url: str
) -> None:
    """1,000 garbage messages mixed into the stream land in the dead-letter topic (exactly
    1,000) and every valid sample is stored (exact count)."""
    pipeline = pipeline_factory(sqlite_url)
    valid = batches(HOSTS, FIRST_STEPS)
    garbage = [b"{broken %d" % i for i in range(1000)]
    mixed: list[Any] = []
    for i in range(max(len(valid), len(garbage))):
        mixed.extend(valid[i : i + 1])
        mixed.extend(garbage[i : i + 1])
    produce(pipeline.bootstrap, pipeline.topic, mixed)
    pipeline.consumer()
    wait_for_rows(pipeline.count, FIRST_SAMPLES, 90)
    dead = read_all(pipeline.bootstrap, f"{pipeline.topic}.dead", expected=1000)
    assert len(dead) == 1000
    assert sorted(m.value() for m in dead) == sorted(garbage)
    assert pipeline.count() == FIRST_SAMPLES
