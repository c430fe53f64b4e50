"""The compose files, checked structurally (test_compose_stack.py runs them for real).

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
    mounts = {}
    for volume in service["volumes"]:
        source, target, *mode = volume.rsplit(":", 2)  # a ${VAR:-default} source holds ":"
        mounts[target] = (source, mode)
    for target in ("/host/proc", "/host/sys", "/host/sys/fs/cgroup", "/var/run/docker.sock"):
        assert target in mounts, target
        assert mounts[target][1] == ["ro"], (target, mounts[target])
    assert mounts["/host/root"] == ("/", ["ro"])
    assert mounts["/var/run/docker.sock"][0] == "${DOCKER_SOCKET:-/var/run/docker.sock}"
    env = service["environment"]
    assert env["SRVMON_PROC_ROOT"] == "/host/proc"
    assert env["SRVMON_SYS_ROOT"] == "/host/sys"
    assert env["SRVMON_CGROUP_ROOT"] == "/host/sys/fs/cgroup"
    assert env["SRVMON_HOST_ROOT"] == "/host/root"
    assert service["pid"] == "host"


def test_server_runs_as_non_root_and_ports_line_up() -> None:
    """The server is not root, publishes the port it listens on, and the consumer targets it."""
    backend = _load(COMPOSE / "docker-compose.backend.yml")["services"]
    server = backend["server"]
    assert not str(server["user"]).startswith("0")
    port = server["environment"]["SRVMON_PORT"]
    assert server["ports"] == [f"${{SRVMON_PUBLISHED_PORT:-{port}}}:{port}"]
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
    assert used <= defined, used - defined


def test_images_build_from_the_dockerfile_with_a_base_image_argument() -> None:
    """Every srvmon service builds compose/Dockerfile, passing SRVMON_BASE_IMAGE as BASE_IMAGE;
    the Dockerfile's default base is the public Python image and it ends as a non-root user."""
    for file, name, service in _srvmon_services():
        build = service["build"]
        assert (build["context"], build["dockerfile"]) == ("..", "compose/Dockerfile"), file
        assert build["args"] == {"BASE_IMAGE": "${SRVMON_BASE_IMAGE:-python:3.11-slim}"}, name
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n" in dockerfile
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users == ["10001:10001"]


def test_readme_and_compose_readme_give_the_same_commands() -> None:
    """The README's and the quickstart's compose commands are compose/README.md's `up`
    commands, which the stack test runs (tests/deploy/test_compose_stack.py)."""
    import re

    from tests.deploy.stack import readme_commands

    tested = [c for c in readme_commands() if "up" in c]
    assert len(tested) == 4
    for page in (ROOT / "README.md", ROOT / "docs" / "quickstart.md"):
        given = [
            line.split()[2:]
            for block in re.findall(r"```sh\n(.*?)```", page.read_text(), re.S)
            for line in block.splitlines()
            if line.startswith("docker compose ")
        ]
        assert given == tested, page.name
