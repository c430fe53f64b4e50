"""Real ``srvmon server`` replicas and a fleet that reports through Kafka, for the replica
tests (docs/server.md, "Replica mode").

A :class:`Replica` is ``srvmon server --kafka-bootstrap ...`` on a free port, its log in a
file, stopped or killed by its pid. What it holds is read from its ``/metrics``
(``srvmon_server_replica_partition_assigned``). A :class:`Fleet` produces one batch a
second per host, keyed by host id with the producer's default partitioner (what the
collector does), and keeps every batch it produced and the partition the broker put it on.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from srvmon_core.codec import encode_batch
from srvmon_core.schema import Batch, ContainerSample, HostSample
from tests.helpers import free_port
from tests.pipeline.processes import TOKEN, _srvmon_command, scrape
from tests.pipeline.streams import wait_until

ASSIGNED = re.compile(r"^srvmon_server_replica_partition_assigned\{(.*)\}$")


def request(base_url: str, path: str, method: str = "GET", body: object = None) -> Any:
    """A JSON API call with the write token; the decoded answer (raises on HTTP errors)."""
    data = None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(
        f"{base_url}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(call, timeout=10) as answer:
        raw = answer.read()
    return json.loads(raw) if raw else None


class Replica:
    """One ``srvmon server`` in replica mode."""

    def __init__(
        self,
        name: str,
        *,
        db_url: str,
        bootstrap: str,
        topic: str,
        events_topic: str,
        group: str,
        workdir: Path,
        webhook_url: str | None = None,
    ) -> None:
        self.name = name
        self.group = group
        self.topic = topic
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"replica-{name}.log"
        self.command = [
            *_srvmon_command(),
            "server",
            "--port",
            str(self.port),
            "--db-url",
            db_url,
            "--token",
            TOKEN,
            "--kafka-bootstrap",
            bootstrap,
            "--kafka-topic",
            topic,
            "--kafka-events-topic",
            events_topic,
            "--kafka-group",
            group,
            "--replica-id",
            name,
            # A dead replica's partitions move within seconds; tansu ends a join after
            # about half the session timeout.
            "--kafka-option",
            "session.timeout.ms=3000",
            "--kafka-option",
            "heartbeat.interval.ms=300",
        ]
        if webhook_url is not None:
            self.command += ["--webhook-url", webhook_url]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Replica:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}
        )
        log.close()
        wait_until(self.healthy, 30, f"replica {self.name} on {self.url}")
        return self

    def healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"replica {self.name} exited: {self.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def partitions(self) -> set[int]:
        """The metrics-topic partitions it holds now (empty while it does not answer)."""
        held: set[int] = set()
        for name in scrape(f"{self.url}/metrics") or {}:
            found = ASSIGNED.match(name)
            if found:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
                held.add(int(labels["partition"]))
        return held

    def figure(self, name: str) -> float:
        return (scrape(f"{self.url}/metrics") or {}).get(name, 0.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: nothing is saved, nothing is committed, no goodbye to the group."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: it stores and commits nothing more until :meth:`thaw` (or a kill)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def librdkafka_partition(key: str, partitions: int) -> int:
    """librdkafka's default partitioner (``consistent_random``): CRC-32 of the key, modulo
    the partition count (its documentation's definition)."""
    return zlib.crc32(key.encode()) % partitions


def host_on_partition(partition: int, partitions: int, prefix: str) -> str:
    """A host id the default partitioner puts on ``partition``."""
    for n in range(10_000):
        candidate = f"{prefix}-{n:04d}"
        if librdkafka_partition(candidate, partitions) == partition:
            return candidate
    raise AssertionError(f"no host id for partition {partition}")


class Fleet:
    """Hosts reporting once a second through Kafka, each with ``containers`` containers.

    ``cpu`` and ``memory`` (host id → percent) can be changed while it runs; the next batch
    of the host carries them. ``produced`` keeps every acknowledged batch; ``partition_of``
    where the broker put each host.
    """

    def __init__(
        self, bootstrap: str, topic: str, host_ids: list[str], containers: int = 2
    ) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.bootstrap = bootstrap
        self.host_ids = host_ids
        self.containers = containers
        self.cpu = dict.fromkeys(host_ids, 12.0)
        self.memory = dict.fromkeys(host_ids, 40.0)
        self.produced: list[Batch] = []
        self.partition_of: dict[str, int] = {}
        self.offset_of: dict[tuple[str, int], tuple[int, int]] = {}
        """(host, ts_ms) → (partition, offset) of each acknowledged batch."""
        self.sent_at: dict[tuple[str, float, float], float] = {}
        """(host, cpu, memory) → wall time its first batch with those values was produced."""
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Fleet:
        self._thread.start()
        return self

    def batch(self, host_id: str, at: datetime) -> Batch:
        return Batch(
            host_id=host_id,
            hostname=host_id,
            timestamp=at,
            host=HostSample(
                cpu_percent=self.cpu[host_id],
                load_1=0.5,
                load_5=0.5,
                load_15=0.5,
                memory_total_bytes=16 << 30,
                memory_used_bytes=int((16 << 30) * self.memory[host_id] / 100),
                memory_available_bytes=int((16 << 30) * (1 - self.memory[host_id] / 100)),
                memory_percent=self.memory[host_id],
            ),
            containers=tuple(
                ContainerSample(
                    id=f"{host_id}-c{i}",
                    name=f"svc-{i}",
                    cpu_percent=1.0 + i,
                    memory_working_set_bytes=64 << 20,
                    pids=3,
                )
                for i in range(self.containers)
            ),
        )

    def _delivered(self, batch: Batch) -> Any:
        def report(error: Any, message: Any) -> None:
            if error is None:
                with self.lock:
                    self.produced.append(batch)
                    self.partition_of[batch.host_id] = message.partition()
                    at = round(batch.timestamp.timestamp() * 1000)
                    self.offset_of[(batch.host_id, at)] = (message.partition(), message.offset())

        return report

    def _run(self) -> None:
        next_due = time.monotonic()
        first = datetime.now(UTC).replace(microsecond=0)
        step = 0
        while not self._stop.is_set():
            now = first + timedelta(seconds=step)  # one timestamp per round, never twice
            step += 1
            for host_id in self.host_ids:
                batch = self.batch(host_id, now)
                mark = (host_id, self.cpu[host_id], self.memory[host_id])
                self.sent_at.setdefault(mark, time.time())
                self._producer.produce(
                    self.topic,
                    encode_batch(batch),
                    key=host_id.encode(),
                    on_delivery=self._delivered(batch),
                )
            self._producer.flush(5)
            next_due += 1.0
            self._stop.wait(max(0.0, next_due - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._producer.flush(10)


def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: set[int]
) -> dict[int, int]:
    """The group's committed offset per partition, as the broker has it (0 when nothing
    was committed yet: the next holder starts from the beginning)."""
    from confluent_kafka import Consumer, TopicPartition

    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        answer = reader.committed([TopicPartition(topic, p) for p in sorted(partitions)], 10)
    finally:
        reader.close()
    return {tp.partition: max(0, tp.offset) for tp in answer}


def kill_with_stored_uncommitted(
    replica: Replica, fleet: Fleet, bootstrap: str, db_url: str, timeout: float = 20.0
) -> list[tuple[str, int]]:
    """SIGKILL ``replica`` at a moment it has stored batches whose offsets it has not
    committed (what the next holder must get again and must not store twice).

    Each try freezes the replica (SIGSTOP), reads the group's committed offsets from the
    broker and the stored rows from the database, and kills it if a stored batch of its
    partitions sits at or past the committed offset; else it thaws it and tries again.
    Returns those batches as (host id, ts_ms): the work in flight the kill hit.
    """
    from srvmon_core.schema import host_key

    held = replica.partitions()
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    query = sa.text(
        "SELECT m.`key`, s.ts_ms FROM samples s JOIN machines m ON m.id = s.machine_id "
        "WHERE m.`key` IN :keys"
    ).bindparams(sa.bindparam("keys", expanding=True))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            replica.freeze()
            committed = committed_offsets(bootstrap, replica.group, replica.topic, held)
            with fleet.lock:
                placed = dict(fleet.offset_of)
            hosts = {h for h, p in fleet.partition_of.items() if p in held}
            with engine.connect() as conn:
                stored = conn.execute(query, {"keys": [host_key(h) for h in hosts]}).all()
            by_key = {host_key(h): h for h in hosts}
            in_flight = []
            for key, at in stored:
                batch = (by_key[key], int(at))
                partition, offset = placed.get(batch, (-1, -1))
                if partition >= 0 and offset >= committed[partition]:
                    in_flight.append(batch)
            if in_flight:
                replica.kill()
                return sorted(in_flight)
            replica.thaw()
            time.sleep(0.03)
    finally:
        engine.dispose()
    raise AssertionError(
        "the replica never had stored, uncommitted batches: the kill would hit nothing"
    )
