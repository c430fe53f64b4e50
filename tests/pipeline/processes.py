"""Real ``srvmon server`` and ``srvmon consumer`` subprocesses for the fault tests.

Each is started on 127.0.0.1 with its output in a log file and stopped by its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import sqlalchemy as sa

from tests.helpers import free_port
from tests.pipeline.streams import wait_until

STREAM_AGE_ALLOWANCE_SECONDS = 10 * 365 * 86400
"""Accept the streams' fixed 2026-01-01 timestamps whatever today's date."""
SRVMON = [sys.executable, "-m", "srvmon_server.cli"]
TOKEN = "pipeline-test-token"


def _srvmon_command() -> list[str]:
    script = Path(sys.executable).with_name("srvmon")
    return [str(script)] if script.exists() else SRVMON


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
    ) -> None:
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
        }
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

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout: float = 40) -> int:
        """SIGTERM and wait for the graceful exit; return the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(f"consumer ignored SIGTERM for {timeout} s") from None
        return int(self.process.returncode)


class SampleCounter:
    """Counts rows of the server's ``samples`` table directly in SQL."""

    def __init__(self, db_url: str) -> None:
        self._engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)

    def __call__(self) -> int:
        try:
            with self._engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT COUNT(*) FROM samples")).scalar_one())
        except sa.exc.OperationalError:
            return -1

    def close(self) -> None:
        self._engine.dispose()


def wait_for_rows(count: SampleCounter, expected: int, timeout: float) -> None:
    """Wait until the samples table holds at least ``expected`` rows."""
    wait_until(lambda: count() >= expected, timeout, f"{expected} sample rows", every=0.2)
