"""Real ``srvmon server``, ``srvmon consumer`` and ``srvmon collector`` subprocesses for
the fault tests.

Each is started on 127.0.0.1 with its output in a log file and stopped (or killed) by its
pid. The consumer and the server expose their figures (``figures()``: the Prometheus text
of ``/metrics`` as ``{name{labels}: value}``), which is how the tests see what was in
flight at a kill and what was redelivered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import sqlalchemy as sa

from srvmon_core.schema import Batch, container_key, host_key
from srvmon_server.storage import tables as t
from srvmon_server.storage.settle import raw_rows
from tests.helpers import free_port
from tests.pipeline.streams import wait_until

STREAM_AGE_ALLOWANCE_SECONDS = 10 * 365 * 86400
"""Accept the streams' fixed 2026-01-01 timestamps whatever today's date."""
SRVMON = [sys.executable, "-m", "srvmon_cli"]
TOKEN = "pipeline-test-token"


def terminate_gracefully(process: subprocess.Popen[bytes], role: str, timeout: float) -> int:
    """SIGTERM and wait for the graceful exit; its exit code. A process still running after
    ``timeout`` is killed and the test fails."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise AssertionError(f"{role} ignored SIGTERM for {timeout} s") from None
    return int(process.returncode)


def _srvmon_command() -> list[str]:
    script = Path(sys.executable).with_name("srvmon")
    return [str(script)] if script.exists() else SRVMON


def parse_exposition(text: str) -> dict[str, float]:
    """``name{labels}`` → value for every sample line of a Prometheus text exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def scrape(url: str) -> dict[str, float] | None:
    """The figures at ``url`` (a /metrics endpoint), or None when it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return parse_exposition(answer.read().decode())
    except OSError:
        return None


class ServerProcess:
    """``srvmon server`` on a fixed free port and database URL; restartable."""

    def __init__(self, db_url: str, workdir: Path) -> None:
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        log = (self._workdir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                *_srvmon_command(),
                "server",
                "--port",
                str(self.port),
                "--db-url",
                self.db_url,
                "--token",
                TOKEN,
                # the streams are stamped from streams.EPOCH (2026-01-01): the time window
                # is not what these tests are about
                "--max-sample-age-seconds",
                str(STREAM_AGE_ALLOWANCE_SECONDS),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self._workdir,
        )
        log.close()
        wait_until(self.healthy, 30, f"srvmon server on {self.url}")
        return self

    def healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self._workdir / "server.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"srvmon server exited with {self.process.returncode}: {log}")
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no chance to flush or say goodbye."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def figures(self) -> dict[str, float] | None:
        return scrape(f"{self.url}/metrics")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class ConsumerProcess:
    """``srvmon consumer`` as a subprocess, configured through its environment variables."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        server_url: str,
        workdir: Path,
        *,
        name: str = "consumer",
        metrics: bool = True,
    ) -> None:
        self.metrics_port = free_port() if metrics else None
        self.env = {
            **os.environ,
            "BOOTSTRAP_SERVER": bootstrap,
            "KAFKA_TOPIC_NAME": topic,
            "KAFKA_CONSUMER_GROUP_ID": group,
            "API_BASE_URL": server_url,
            "SRVMON_INGEST_TOKEN": TOKEN,
            "SRVMON_CONSUMER_RETRY_MAX": "0.5",
            "SRVMON_CONSUMER_STATS_INTERVAL": "1",
            "SRVMON_CONSUMER_REQUEST_TIMEOUT": "8",
            # SIGABRT (see dump_threads) then writes every thread's stack to the log.
            "PYTHONFAULTHANDLER": "1",
        }
        if self.metrics_port is not None:
            self.env["SRVMON_CONSUMER_METRICS_PORT"] = str(self.metrics_port)
        self.args: list[str] = []
        """Extra command-line arguments."""
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir = workdir

    def start(self) -> ConsumerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *_srvmon_command(),
                "consumer",
                "--kafka-option",
                "session.timeout.ms=6000",
                "--kafka-option",
                "heartbeat.interval.ms=500",
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self._workdir,
        )
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def dump_threads(self) -> None:
        """SIGABRT: Python's fault handler writes every thread's stack to the log (for a
        test that found the consumer stuck), and the process ends."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGABRT)
            self.process.wait(10)

    def figures(self) -> dict[str, float] | None:
        """The consumer's /metrics now, or None while it does not answer."""
        if self.metrics_port is None:
            return None
        return scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def figure(self, name: str) -> float:
        """One figure (0 while the endpoint does not answer yet)."""
        return (self.figures() or {}).get(name, 0.0)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout: float = 40) -> int:
        """SIGTERM and wait for the graceful exit; return the exit code."""
        assert self.process is not None
        return terminate_gracefully(self.process, "consumer", timeout)


class CollectorProcess:
    """``srvmon collector --output kafka`` reading this host (no Docker), as a subprocess.

    Each one reports under its own machine id (a file of its own), so its rows are its own.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        workdir: Path,
        *,
        name: str = "collector",
        interval: float = 0.1,
        buffer_size: int = 3600,
        kafka_options: Iterable[str] = (),
    ) -> None:
        self.host_id = uuid.uuid4().hex
        """Its batches' host id (the collector takes the machine id it is given)."""
        machine_id = workdir / f"{name}.machine-id"
        machine_id.write_text(self.host_id + "\n")
        self.log_path = workdir / f"{name}.log"
        self.command = [
            *_srvmon_command(),
            "collector",
            "--output",
            "kafka",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--interval",
            str(interval),
            "--buffer-size",
            str(buffer_size),
            "--docker-url",
            f"unix://{workdir / 'no-docker.sock'}",
            "--machine-id-file",
            str(machine_id),
            "--host-id-file",
            str(workdir / f"{name}.host-id"),
        ]
        for option in kafka_options:
            self.command += ["--kafka-option", option]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CollectorProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM: the collector hands what it holds to Kafka (up to 10 s) and exits."""
        assert self.process is not None
        return terminate_gracefully(self.process, "collector", timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


RowKey = tuple[str, int]
"""(machine key, timestamp in ms): the samples table's identity of a sample."""


def ts_ms(batch: Batch) -> int:
    return round(batch.timestamp.timestamp() * 1000)


def expected_rows(batches: Iterable[Batch]) -> Counter[RowKey]:
    """One row per machine (host and each container) per batch timestamp."""
    rows: Counter[RowKey] = Counter()
    for batch in batches:
        at = ts_ms(batch)
        if batch.host is not None:
            rows[(host_key(batch.host_id), at)] += 1
        for container in batch.containers:
            rows[(container_key(batch.host_id, container.name), at)] += 1
    return rows


class SampleCounter:
    """Reads the server's raw rows directly in SQL (``samples``, and on SQLite
    ``samples_recent``): how many rows, and which."""

    def __init__(self, db_url: str) -> None:
        self._engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
        self._raw = raw_rows(self._engine.dialect.name)

    def __call__(self) -> int:
        try:
            with self._engine.connect() as conn:
                query = sa.select(sa.func.count()).select_from(self._raw)
                return int(conn.execute(query).scalar_one())
        except sa.exc.OperationalError:
            return -1

    def rows(self) -> Counter[RowKey]:
        """Every stored sample as (machine key, ts_ms) with its number of rows (a row in
        both raw tables counts twice)."""
        m = t.machines.c
        query = sa.select(m.key, self._raw.c.ts_ms).join(t.machines, m.id == self._raw.c.machine_id)
        with self._engine.connect() as conn:
            return Counter((str(key), int(at)) for key, at in conn.execute(query))

    def close(self) -> None:
        self._engine.dispose()


def wait_for_rows(count: SampleCounter, expected: int, timeout: float) -> None:
    """Wait until the samples table holds at least ``expected`` rows."""
    wait_until(lambda: count() >= expected, timeout, f"{expected} sample rows", every=0.2)


class AlertStream:
    """Reads the server's SSE stream (``topics=alerts``) on a thread and keeps every
    ``alert`` event: what the browsers were sent."""

    def __init__(self, server_url: str) -> None:
        import json
        import threading

        self.events: list[dict[str, object]] = []
        self._json = json
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(server_url,), daemon=True)
        self._thread.start()
        if not self._connected.wait(10):
            raise AssertionError("could not open the SSE stream")

    def _read(self, server_url: str) -> None:
        url = f"{server_url}/api/v1/events?topics=alerts"
        with urllib.request.urlopen(url, timeout=60) as stream:
            self._connected.set()
            event, data = "", ""
            while not self._stop.is_set():
                line = stream.readline().decode()
                if not line:
                    return
                line = line.rstrip("\n")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data += line.split(":", 1)[1].strip()
                elif line == "":
                    if event == "alert" and data:
                        self.events.append(self._json.loads(data))
                    event, data = "", ""

    def of_rule(self, rule_id: str) -> list[tuple[str, str]]:
        """(machine name, to_state) of the alert events of ``rule_id``, in arrival order."""
        return [
            (str(e["machine_name"]), str(e["to_state"]))
            for e in list(self.events)
            if e.get("rule_id") == rule_id
        ]

    def close(self) -> None:
        self._stop.set()


def kill_when_in_flight(figure: Callable[[], float], kill: Callable[[], None], what: str) -> float:
    """Read ``figure`` until it is above zero, then kill at once; return the value read
    just before the kill (what was in flight when it landed)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        value = figure()
        if value > 0:
            kill()
            return value
        time.sleep(0.005)
    raise AssertionError(f"{what} never went above zero: the fault would hit nothing")
