"""``srvmon server`` as a real process: zero-config start, generated token, SIGTERM, bad options."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from srvmon_core.codec import encode_batch
from tests.server.harness import make_batch

SRVMON = [sys.executable, "-c", "from srvmon_cli.main import main; main()"]


def run_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SRVMON_", "DATABASE_"))}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env.pop("CORS_ALLOWED_ORIGINS", None)
    return env


def listening_port(proc: subprocess.Popen[str], timeout: float = 20) -> int:
    """The port the server reports on stderr (started with --port 0: no port races)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.1)
        if not ready:
            continue
        line = proc.stderr.readline()
        if not line:
            raise AssertionError(f"server exited: {''.join(seen)}")
        seen.append(line)
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
        if match:
            return int(match.group(1))
    raise AssertionError(f"server did not report its port: {''.join(seen)}")


def wait_health(port: int, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=1) as r:
                if json.loads(r.read()) == {"status": "ok", "db": "ok"}:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise AssertionError("server did not become healthy")


def test_zero_config_start_token_and_sigterm(tmp_path: Path) -> None:
    """No options: SQLite in $XDG_DATA_HOME/srvmon, a 0600 token printed once, SIGTERM exits 0."""
    env = run_env(tmp_path)
    proc = subprocess.Popen(
        [*SRVMON, "server", "--port", "0"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        port = listening_port(proc)
        wait_health(port, proc)
        token_file = tmp_path / "data" / "srvmon" / "server-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        database = tmp_path / "data" / "srvmon" / "srvmon.db"
        assert stat.S_IMODE(database.stat().st_mode) == 0o600
        assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/ingest",
            # the real server's clock: a sample from now (a fixed date ages out of its window)
            data=encode_batch(make_batch(at=datetime.now(UTC).replace(microsecond=0))),
            headers={"Authorization": f"Bearer {token}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert json.loads(resp.read()) == {"stored": 1, "duplicates": 0}
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert token in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # a second start reuses the token and does not print it again
    proc = subprocess.Popen(
        [*SRVMON, "server", "--port", "0"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        port = listening_port(proc)
        wait_health(port, proc)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert token not in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_bad_options_are_clean_errors(tmp_path: Path) -> None:
    """Bad options end with a one-line error and exit code != 0, never a traceback."""
    env = run_env(tmp_path)
    cases = [
        (["--cors-allowed-origins", "not-an-origin"], "scheme://host"),
        (["--db-url", "nosuchdb://x"], "database"),
        (["--webhook-url", "ftp://x"], "http"),
        (["--port", "99999"], "99999"),
        (
            ["--alert-history-retention-days", "0"],
            "(env var: 'SRVMON_ALERT_HISTORY_RETENTION_DAYS'): 0.0 is not in the range x>0",
        ),
        (
            ["--alert-history-retention-days", "-1"],
            "(env var: 'SRVMON_ALERT_HISTORY_RETENTION_DAYS'): -1.0 is not in the range x>0",
        ),
        (
            ["--inventory-flush-seconds", "-0.5"],
            "(env var: 'SRVMON_INVENTORY_FLUSH_SECONDS'): -0.5 is not in the range x>=0",
        ),
    ]
    for args, expected in cases:
        result = subprocess.run(
            [*SRVMON, "server", "--token", "t", "--port", "0", *args],
            check=False,
            env=env,
            text=True,
            capture_output=True,
            timeout=30,
        )
        assert result.returncode != 0, args
        assert "Traceback" not in result.stderr, result.stderr
        assert expected in result.stderr, (args, result.stderr)
