"""``srvmon collector``: the click command. Domain errors become ClickException here only."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from srvmon_agents.kafka_options import kafka_option, parse_kafka_options
from srvmon_core.errors import SrvmonError

if TYPE_CHECKING:
    from docker import APIClient

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"


def skip_charset_detection() -> None:
    """Keep ``charset_normalizer`` out of the collector process (2.7 MB resident).

    requests imports it only to guess the encoding of a text answer that declares none
    (``Response.apparent_encoding``) and falls back to UTF-8 when it is absent. The Engine
    API declares every answer (JSON, or text with a charset), so the collector never needs
    the guess. Called before the docker SDK is first imported; no other module of the
    collector imports requests.
    """
    import warnings

    if "charset_normalizer" in sys.modules or "requests" in sys.modules:
        return
    sys.modules["charset_normalizer"] = None  # type: ignore[assignment]
    warnings.filterwarnings("ignore", message="Unable to find acceptable character detection")


def _docker_api(url: str) -> APIClient | None:
    from srvmon_agents.collector.engine import EngineError, connect

    skip_charset_detection()
    try:
        return connect(url)
    except EngineError as exc:
        click.echo(
            f"srvmon collector: containers skipped, Docker at {url} unreachable: {exc}", err=True
        )
        return None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--interval",
    envvar="SRVMON_INTERVAL",
    show_envvar=True,
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between readings.",
)
@click.option(
    "--output",
    envvar="SRVMON_OUTPUT",
    show_envvar=True,
    type=click.Choice(["kafka", "stdout", "http"]),
    default="kafka",
    show_default=True,
    help="Where batches go.",
)
@click.option(
    "--bootstrap-server",
    envvar="BOOTSTRAP_SERVER",
    show_envvar=True,
    default=None,
    help="Kafka bootstrap servers (host:port[,host:port]).",
)
@click.option(
    "--topic",
    envvar="KAFKA_TOPIC_NAME",
    show_envvar=True,
    default="srvmon.metrics",
    show_default=True,
    help="Kafka topic.",
)
@kafka_option()
@click.option(
    "--server-url",
    envvar="API_BASE_URL",
    show_envvar=True,
    default=None,
    help="Server base URL for --output http.",
)
@click.option(
    "--token",
    envvar="SRVMON_INGEST_TOKEN",
    show_envvar=True,
    default=None,
    help="Bearer token for --output http.",
)
@click.option(
    "--proc-root",
    envvar="SRVMON_PROC_ROOT",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/proc"),
    show_default=True,
    help="The host's /proc (e.g. /host/proc in a container).",
)
@click.option(
    "--sys-root",
    envvar="SRVMON_SYS_ROOT",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/sys"),
    show_default=True,
    help="The host's /sys.",
)
@click.option(
    "--cgroup-root",
    envvar="SRVMON_CGROUP_ROOT",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/sys/fs/cgroup"),
    show_default=True,
    help="The host's cgroup hierarchy.",
)
@click.option(
    "--host-root",
    envvar="SRVMON_HOST_ROOT",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The host's / mounted read-only (e.g. /host/root in a container); filesystem usage "
    "is read below it. Default: / on the host, <proc-root>/1/root with another --proc-root.",
)
@click.option(
    "--docker-url",
    envvar="DOCKER_HOST",
    show_envvar=True,
    default=DEFAULT_DOCKER_URL,
    show_default=True,
    help="Docker API; containers are skipped when unreachable.",
)
@click.option(
    "--host-id-file",
    envvar="SRVMON_HOST_ID_FILE",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where a generated host id is kept when no machine-id exists.",
)
@click.option(
    "--machine-id-file",
    envvar="SRVMON_MACHINE_ID_FILE",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The host's machine-id (default /etc/machine-id, or <proc-root>/../etc/machine-id).",
)
@click.option(
    "--buffer-size",
    envvar="SRVMON_BUFFER_SIZE",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=3600,
    show_default=True,
    help="Batches kept while the sink is unreachable.",
)
@click.option("--once", is_flag=True, help="Print one batch and exit.")
def collector(  # noqa: PLR0917 - click passes every option by keyword
    interval: float,
    output: str,
    bootstrap_server: str | None,
    topic: str,
    kafka_options: tuple[str, ...],
    server_url: str | None,
    token: str | None,
    proc_root: Path,
    sys_root: Path,
    cgroup_root: Path,
    host_root: Path | None,
    docker_url: str,
    host_id_file: Path | None,
    machine_id_file: Path | None,
    buffer_size: int,
    once: bool,
) -> None:
    """Collect metrics of this host and its Docker containers."""

    from srvmon_agents.collector.setup import AgentConfig, build_agent

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    options = parse_kafka_options(kafka_options)
    if once:
        output = "stdout"
    if output == "kafka" and not bootstrap_server:
        raise click.UsageError("--output kafka needs --bootstrap-server (or BOOTSTRAP_SERVER)")
    if output == "http" and not server_url:
        raise click.UsageError("--output http needs --server-url (or API_BASE_URL)")
    if not (proc_root / "stat").exists():
        raise click.BadParameter(
            f"{proc_root} does not look like a /proc", param_hint="--proc-root"
        )
    config = AgentConfig(
        interval_seconds=interval,
        output=output,
        bootstrap=bootstrap_server,
        topic=topic,
        kafka_options=options,
        server_url=server_url,
        token=token,
        proc_root=proc_root,
        sys_root=sys_root,
        cgroup_root=cgroup_root,
        host_root=host_root,
        host_id_file=host_id_file,
        machine_id_file=machine_id_file,
        buffer_size=buffer_size,
        hostname=socket.gethostname(),
    )
    try:
        agent = build_agent(config, _docker_api(docker_url), sys.stdout.buffer)
    except SrvmonError as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:  # e.g. librdkafka rejecting a --kafka-option
        raise click.ClickException(f"cannot start the collector: {exc}") from exc
    if once:
        agent.collect_batch()  # a first reading, so the printed batch carries rates
        time.sleep(min(interval, 1.0))
        agent.tick()
        agent.sink.close(5.0)
        return
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    agent.run(stop)
    agent.sink.close(10.0)
