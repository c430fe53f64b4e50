"""``srvmon standalone`` and the README's first command: this host (and its containers) on
the dashboard, in one process, stopped cleanly by Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, missing

ROOT = Path(__file__).resolve().parents[2]
SRVMON = Path(sys.executable).with_name("srvmon")


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def _wait_for(
    check: Callable[[], Any], seconds: float, process: subprocess.Popen[bytes] | None = None
) -> Any:
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"exited with {process.returncode} before it was up:\n{output}")
        try:
            value = check()
        except Exception as exc:  # not up yet
            last = exc
        else:
            if value:
                return value
        time.sleep(0.3)
    raise AssertionError(f"condition not met within {seconds} s (last error: {last})")


def _hosts(base: str) -> list[dict[str, Any]]:
    status, body = _get(f"{base}/api/v1/machines")
    assert status == 200
    hosts: list[dict[str, Any]] = json.loads(body)["hosts"]
    return hosts


def _containers(base: str, host_key: str) -> list[dict[str, Any]]:
    status, body = _get(f"{base}/api/v1/machines/{host_key}/containers")
    assert status == 200
    containers: list[dict[str, Any]] = json.loads(body)["containers"]
    return containers


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> int:
    os.killpg(process.pid, sig)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise


def _machine_id() -> str:
    return Path("/etc/machine-id").read_text().strip()


@pytest.mark.docker
def test_standalone_shows_this_host_and_its_containers(tmp_path: Path, dockerd: Any) -> None:
    """One process collects this host and its containers and serves them; Ctrl-C stops it."""
    name = "standalone-idle"
    dockerd.run("--name", name, dockerd.image, "sleep", "100000")
    port = free_port()
    process = subprocess.Popen(
        [
            str(SRVMON),
            "standalone",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
            "--docker-url",
            dockerd.base_url,
            "--interval",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def host_with_container() -> dict[str, Any] | None:
            for host in _hosts(base):
                if any(c["name"] == name for c in _containers(base, host["key"])):
                    return host
            return None

        host = _wait_for(host_with_container, 30, process)
        if Path("/etc/machine-id").exists():
            assert host["host_id"] == _machine_id()
        assert 0 <= host["metrics"]["cpu_percent"] <= 100
        assert host["metrics"]["memory_percent"] > 0
        container = next(c for c in _containers(base, host["key"]) if c["name"] == name)
        assert container["state"] == "running"
        status, page = _get(f"{base}/")
        assert status == 200 and b"<html" in page.lower()
        token = (tmp_path / "data" / "server-token").read_text().strip()
        assert len(token) >= 32
    finally:
        code = _stop(process)
    output = process.stdout.read().decode() if process.stdout else ""
    assert code == 0, output
    assert f"srvmon dashboard: http://127.0.0.1:{port}/" in output
    assert token in output  # printed once, on first start
    assert "Traceback" not in output


def test_standalone_without_docker_monitors_the_host_only(tmp_path: Path) -> None:
    """No Docker socket: a clear message, and the host is still monitored."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(SRVMON),
            "standalone",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
            "--docker-url",
            f"unix://{tmp_path}/nothing.sock",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        hosts = _wait_for(lambda: _hosts(f"http://127.0.0.1:{port}"), 30, process)
        assert len(hosts) == 1 and hosts[0]["container_counts"]["total"] == 0
        assert _containers(f"http://127.0.0.1:{port}", hosts[0]["key"]) == []
    finally:
        code = _stop(process, signal.SIGTERM)
    output = process.stdout.read().decode() if process.stdout else ""
    assert code == 0, output
    assert "monitoring the host only" in output


@pytest.mark.timeout(900)
def test_readme_first_command_on_a_fresh_clone(tmp_path: Path) -> None:
    """The README's first command takes a fresh clone to a running dashboard showing this host."""
    readme = (ROOT / "README.md").read_text()
    commands = [
        line.split("#")[0].strip()
        for line in readme.split("```sh", 1)[1].split("```", 1)[0].splitlines()
        if line.strip()
    ]
    assert commands == ["make run", "make test"], commands
    if shutil.which("git") is None or shutil.which("make") is None:
        missing("git and make", "needed to clone and run the README's command")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    port = free_port()
    env = {**os.environ, "SRVMON_PORT": str(port), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("VIRTUAL_ENV", None)
    process = subprocess.Popen(
        commands[0].split(),
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        hosts = _wait_for(lambda: _hosts(f"http://127.0.0.1:{port}"), 600, process)
        assert hosts[0]["metrics"]["cpu_percent"] >= 0
        status, _ = _get(f"http://127.0.0.1:{port}/")
        assert status == 200
    finally:
        _stop(process)
    output = process.stdout.read().decode() if process.stdout else ""
    assert f"srvmon dashboard: http://127.0.0.1:{port}/" in output, output[-3000:]
