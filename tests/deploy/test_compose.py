"""The compose files, checked structurally (images cannot be built or run here).

Each service's environment must name variables the CLI really reads, mounts must be
read-only where the docs promise it, ports must line up with the server's defaults, and
every service command must be a real ``srvmon`` subcommand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from srvmon_cli.main import SUBCOMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
FILES = sorted(COMPOSE.glob("docker-compose.*.yml"))

# Variables read by something other than a srvmon option: the storage layer's DATABASE_*
# (see docs/configuration.md), the time zone, and the images of third-party services.
NON_OPTION_VARIABLES = {
    "TZ",
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_NAME",
    "DATABASE_USERNAME",
    "DATABASE_PASSWORD",
}


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _command(name: str) -> click.Command:
    command = main.get_command(click.Context(main), name)
    assert command is not None, name
    return command


def _envvars(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            names.add(envvar)
        elif envvar:
            names.update(envvar)
    return names


def _srvmon_services() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path in FILES:
        for name, service in _load(path)["services"].items():
            if str(service.get("image", "")).startswith("srvmon"):
                found.append((path.name, name, service))
    return found


def test_the_four_roles_have_compose_files() -> None:
    """collector, consumer, backend and a trial Kafka, mirroring the original system's roles."""
    assert [p.name for p in FILES] == [
        "docker-compose.backend.yml",
        "docker-compose.collector.yml",
        "docker-compose.consumer.yml",
        "docker-compose.kafka.yml",
    ]


@pytest.mark.parametrize(("file", "name", "service"), _srvmon_services())
def test_service_runs_a_real_subcommand_with_known_env(
    file: str, name: str, service: dict[str, Any]
) -> None:
    """Every srvmon service's command is a subcommand, and every env var it sets is read."""
    subcommand = service["command"][0]
    assert subcommand in SUBCOMMANDS, f"{file}:{name} runs unknown subcommand {subcommand}"
    known = _envvars(_command(subcommand)) | NON_OPTION_VARIABLES
    unknown = set(service.get("environment", {})) - known
    assert not unknown, f"{file}:{name} sets variables srvmon {subcommand} never reads: {unknown}"


def test_collector_mounts_host_views_read_only() -> None:
    """The collector sees the host's /proc, /sys, cgroups and Docker socket, read-only."""
    service = _load(COMPOSE / "docker-compose.collector.yml")["services"]["collector"]
    mounts = {v.split(":")[1]: v for v in service["volumes"] if v.startswith("/")}
    for target in ("/host/proc", "/host/sys", "/host/sys/fs/cgroup", "/var/run/docker.sock"):
        assert target in mounts, target
        assert mounts[target].endswith(":ro"), mounts[target]
    env = service["environment"]
    assert env["SRVMON_PROC_ROOT"] == "/host/proc"
    assert env["SRVMON_SYS_ROOT"] == "/host/sys"
    assert env["SRVMON_CGROUP_ROOT"] == "/host/sys/fs/cgroup"
    assert service["pid"] == "host"


def test_server_runs_as_non_root_and_ports_line_up() -> None:
    """The server is not root, publishes the port it listens on, and the consumer targets it."""
    backend = _load(COMPOSE / "docker-compose.backend.yml")["services"]
    server = backend["server"]
    assert not str(server["user"]).startswith("0")
    port = server["environment"]["SRVMON_PORT"]
    assert server["ports"] == [f"{port}:{port}"]
    server_cmd = _command("server")
    port_option = next(p for p in server_cmd.params if p.name == "port")
    assert str(port_option.default) == port
    consumer = _load(COMPOSE / "docker-compose.consumer.yml")["services"]["consumer"]
    assert consumer["environment"]["API_BASE_URL"].endswith(f":{port}}}")


def test_env_example_names_every_variable_the_files_use() -> None:
    """Every ${VAR} a compose file interpolates is explained in .env.example."""
    import re

    example = (COMPOSE / ".env.example").read_text()
    defined = set(re.findall(r"^([A-Z_]+)=", example, flags=re.M))
    used: set[str] = set()
    for path in FILES:
        used |= set(re.findall(r"\$\{([A-Z_]+)", path.read_text()))
    assert used - defined <= {"KAFKA_ADVERTISED_HOST"}, used - defined
