"""Build an Agent from plain configuration (used by the CLI, the bench and tests)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from attrs import frozen

from srvmon_agents.collector.containers import ContainerCollector
from srvmon_agents.collector.events import ContainerEvents, container_events
from srvmon_agents.collector.host import HostCollector
from srvmon_agents.collector.hostid import default_id_file, resolve_host_id
from srvmon_agents.collector.loop import Agent
from srvmon_agents.sinks.base import Sink
from srvmon_agents.sinks.http import HttpSink
from srvmon_agents.sinks.kafka import KafkaSink
from srvmon_agents.sinks.stdout import StdoutSink
from srvmon_core.errors import ConfigError

if TYPE_CHECKING:
    from docker import APIClient


@frozen(kw_only=True)
class AgentConfig:
    interval_seconds: float = 1.0
    output: str = "stdout"
    bootstrap: str | None = None
    topic: str = "srvmon.metrics"
    kafka_options: Mapping[str, str] = {}
    server_url: str | None = None
    token: str | None = None
    proc_root: Path = Path("/proc")
    sys_root: Path = Path("/sys")
    cgroup_root: Path = Path("/sys/fs/cgroup")
    host_root: Path | None = None
    host_id_file: Path | None = None
    machine_id_file: Path | None = None
    buffer_size: int = 3600
    hostname: str = "localhost"


def machine_id_candidates(config: AgentConfig) -> list[Path]:
    if config.machine_id_file is not None:
        return [config.machine_id_file]
    if config.proc_root != Path("/proc"):
        return [config.proc_root.parent / "etc" / "machine-id", Path("/etc/machine-id")]
    return [Path("/etc/machine-id")]


def build_sink(config: AgentConfig, stdout: BinaryIO) -> Sink:
    if config.output == "stdout":
        return StdoutSink(stdout)
    if config.output == "kafka":
        if not config.bootstrap:
            raise ConfigError("the Kafka sink needs a bootstrap server", "bootstrap_server")
        return KafkaSink(
            bootstrap=config.bootstrap,
            topic=config.topic,
            capacity=config.buffer_size,
            options=dict(config.kafka_options),
        )
    if config.output == "http":
        if not config.server_url:
            raise ConfigError("the HTTP sink needs a server URL", "server_url")
        return HttpSink(
            server_url=config.server_url, token=config.token, capacity=config.buffer_size
        )
    raise ConfigError(f"unknown output {config.output!r}", "output")


def build_agent(
    config: AgentConfig, docker_api: APIClient | None, stdout: BinaryIO, sink: Sink | None = None
) -> Agent:
    """``docker_api`` is a ``docker.APIClient`` (see ``engine.connect``) or None (no container
    figures).

    ``sink`` replaces the one ``config.output`` names (standalone mode hands batches to the
    server in-process).
    """
    host_id = resolve_host_id(
        machine_id_candidates(config), config.host_id_file or default_id_file()
    )
    host = HostCollector(
        proc_root=config.proc_root,
        sys_root=config.sys_root,
        host_root=config.host_root,
        clock=time.monotonic,
    )
    containers = None
    if docker_api is not None:
        containers = ContainerCollector(
            events=ContainerEvents(container_events(docker_api)),
            api=docker_api,
            cgroup_root=config.cgroup_root,
            proc_root=config.proc_root,
            host_memory_total_bytes=host.memory_total_bytes(),
            clock=time.monotonic,
        )
    return Agent(
        host_id=host_id,
        hostname=config.hostname,
        host=host,
        containers=containers,
        sink=sink if sink is not None else build_sink(config, stdout),
        interval_seconds=config.interval_seconds,
    )
