"""``srvmon collector`` as operators run it: one batch to stdout, clear errors on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from srvmon_agents.collector.hostid import resolve_host_id
from srvmon_core.codec import decode_batch
from srvmon_core.errors import ConfigError
from tests.fixtures.dockerd import Dockerd

SRVMON = str(Path(sys.executable).parent / "srvmon")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SRVMON, "collector", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_once_prints_one_valid_batch_without_docker(tmp_path: Path) -> None:
    """No Docker reachable: a host-only batch that decode_batch accepts, and a clear note."""
    result = run(
        "--once",
        "--output",
        "stdout",
        "--docker-url",
        f"unix://{tmp_path}/none.sock",
        env={"SRVMON_HOST_ID_FILE": str(tmp_path / "id")},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    batch = decode_batch(lines[0])
    assert batch.host is not None
    assert batch.containers == ()
    assert batch.agent.container_source == "none"
    assert batch.host.memory_total_bytes > 0
    assert batch.host.net, "the host's interfaces are listed"
    assert "containers skipped" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.docker
def test_once_includes_containers_of_a_real_dockerd(dockerd: Dockerd, tmp_path: Path) -> None:
    """With DOCKER_HOST set to a real engine, the batch lists its running container."""
    container_id = dockerd.run(dockerd.image, "sleep", "100000", name="t-cli")
    try:
        result = run("--once", env={"DOCKER_HOST": dockerd.base_url})
        assert result.returncode == 0, result.stderr
        batch = decode_batch(result.stdout)
        names = {c.name: c for c in batch.containers}
        assert names["t-cli"].state == "running"
        assert names["t-cli"].cpu_percent is not None, "--once reads twice so rates exist"
        assert batch.agent.container_source == "cgroup"
    finally:
        dockerd.cli("rm", "-f", container_id)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kafka-option", "novalue"], "expected KEY=VALUE"),
        (["--output", "kafka"], "needs --bootstrap-server"),
        (["--output", "http"], "needs --server-url"),
        (["--proc-root", "/etc", "--output", "stdout"], "does not look like a /proc"),
        (["--interval", "-1", "--output", "stdout"], "--interval"),
        (["--buffer-size", "0", "--output", "stdout"], "--buffer-size"),
        (
            ["--output", "kafka", "--bootstrap-server", "127.0.0.1:1", "--kafka-option", "x.y=1"],
            "cannot start the collector",
        ),
    ],
)
def test_bad_options_give_a_clear_error(args: list[str], message: str) -> None:
    """Bad options exit non-zero with a one-line reason, never a traceback."""
    result = run(*args, env={"BOOTSTRAP_SERVER": "", "API_BASE_URL": ""})
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_host_id_prefers_machine_id_then_a_persisted_file(tmp_path: Path) -> None:
    """machine-id wins; without it a generated id is persisted and stable across restarts."""
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef0123456789abcdef\n")
    id_file = tmp_path / "data" / "host-id"
    assert resolve_host_id([machine_id], id_file) == "0123456789abcdef0123456789abcdef"
    assert not id_file.exists()
    generated = resolve_host_id([tmp_path / "absent"], id_file)
    assert id_file.read_text().strip() == generated
    assert resolve_host_id([tmp_path / "absent"], id_file) == generated


def test_unwritable_host_id_file_is_a_config_error(tmp_path: Path) -> None:
    """An id file that cannot be created is a ConfigError naming the file."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="host id file"):
        resolve_host_id([], blocker / "sub" / "host-id")
