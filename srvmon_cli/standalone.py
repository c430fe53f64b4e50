"""``srvmon standalone``: a collector for this host and the server, in one process.

No Kafka, no consumer and no JSON in between: the collector reads on its own thread and
hands each ``Batch`` object to the server's ingest pipeline
(``srvmon_server.ingest.ingest_batch``) on the IOLoop, the same path an HTTP ingest takes
after decoding. Storage is SQLite in the user data dir. Ctrl-C stops both cleanly. The
``--legacy-*`` options serve the original Java back end's routes, as ``srvmon server`` does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from attrs import define, field

from srvmon_agents.sinks.base import SinkStats
from srvmon_core.codec import decode_batch
from srvmon_core.errors import SrvmonError
from srvmon_core.schema import Batch
from srvmon_server.command import (
    ACCESS_LOG_OPTION,
    DATA_DIR_OPTION,
    HOST_OPTION,
    LOG_LEVEL_OPTION,
    PORT_OPTION,
)
from srvmon_server.legacy.config import LegacyConfig
from srvmon_server.legacy.options import legacy_options

if TYPE_CHECKING:
    from srvmon_agents.collector.loop import Agent
    from srvmon_server.context import ServerContext

log = logging.getLogger(__name__)


@define
class InProcessHandoff:
    """Schedules each collected ``Batch`` on the server's event loop, as an object.

    Bounded: at most ``capacity`` batches wait for the database; beyond that a new one is
    dropped and counted, exactly as the Kafka and HTTP sinks do. It is also the agent's
    sink, so the batches' ``AgentStats`` carry its queue depth, drops and errors.
    """

    loop: asyncio.AbstractEventLoop
    deliver: Callable[[Batch], Awaitable[Any]]
    capacity: int = 600
    _waiting: int = 0
    _dropped: int = 0
    _errors: int = 0
    _delivered: int = 0
    _lock: threading.Lock = field(factory=threading.Lock)

    def offer(self, batch: Batch) -> None:
        """Hand one batch over (from the collector thread); never blocks."""
        with self._lock:
            if self._waiting >= self.capacity:
                self._dropped += 1
                return
            self._waiting += 1
        asyncio.run_coroutine_threadsafe(self._run(batch), self.loop)

    def send(self, key: str, payload: bytes) -> None:
        """The sink interface, for a caller that hands over encoded batches (the standalone
        loop never does: it offers the Batch itself)."""
        self.offer(decode_batch(payload))

    async def _run(self, batch: Batch) -> None:
        try:
            await self.deliver(batch)
        except Exception as exc:  # the DB may be down; the next interval tries again
            with self._lock:
                self._errors += 1
            log.warning("standalone ingest failed: %s", exc)
        else:
            with self._lock:
                self._delivered += 1
        finally:
            with self._lock:
                self._waiting -= 1

    def pump(self) -> None:
        """Delivery happens on the event loop; nothing to do on the collector thread."""

    def stats(self) -> SinkStats:
        with self._lock:
            return SinkStats(
                queue_depth=self._waiting,
                dropped_batches=self._dropped,
                delivery_errors=self._errors,
                delivered_batches=self._delivered,
            )

    def close(self, timeout: float) -> None:
        """Nothing is buffered outside the event loop, which drains on shutdown."""


def collect_until(
    agent: Agent,
    handoff: Callable[[Batch], None],
    stop: threading.Event,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Read every ``agent.interval_seconds`` and hand each Batch over until ``stop`` is set.

    Fixed-rate on monotonic deadlines, like ``Agent.run``: a late reading skips the missed
    ticks instead of bursting. Returns the number of batches made.
    """
    interval = agent.interval_seconds
    made = 0
    next_due = clock()
    while not stop.is_set():
        handoff(agent.collect_batch())
        made += 1
        next_due += interval
        now = clock()
        if next_due < now:
            next_due += (int((now - next_due) / interval) + 1) * interval
        stop.wait(max(0.0, next_due - clock()))
    return made


def docker_api_or_none(url: str) -> tuple[Any | None, str]:
    """The collector's Docker Engine client when the socket answers, else None and why."""
    from srvmon_agents.collector.engine import EngineClient, EngineError

    try:
        client = EngineClient(url, timeout=5.0)
        client.ping()
    except (EngineError, SrvmonError, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return client, ""


def start_collector(
    context: ServerContext, *, interval: float, docker_url: str, data_dir: Path
) -> Callable[[], None]:
    """Start the collector thread feeding ``context``; returns the function that stops it."""
    from srvmon_agents.collector.setup import AgentConfig, build_agent
    from srvmon_server.ingest import ingest_batch

    loop = asyncio.get_running_loop()

    async def deliver(batch: Batch) -> None:
        await ingest_batch(context, batch)

    api, reason = docker_api_or_none(docker_url)
    if api is None:
        click.echo(
            f"No Docker socket reachable at {docker_url} ({reason}): monitoring the host only.",
            err=True,
        )
    config = AgentConfig(
        interval_seconds=interval,
        output="stdout",
        host_id_file=data_dir / "host-id",
        hostname=socket.gethostname(),
    )
    handoff = InProcessHandoff(loop=loop, deliver=deliver)
    agent = build_agent(config, api, sys.stdout.buffer, sink=handoff)
    stop = threading.Event()
    thread = threading.Thread(
        target=collect_until,
        args=(agent, handoff.offer, stop),
        name="srvmon-collector",
        daemon=True,
    )
    thread.start()

    def stop_collector() -> None:
        stop.set()
        thread.join(timeout=max(5.0, 2 * interval))

    return stop_collector


@click.command(name="standalone", context_settings={"help_option_names": ["-h", "--help"]})
@HOST_OPTION
@PORT_OPTION
@click.option(
    "--interval",
    envvar="SRVMON_INTERVAL",
    type=click.FloatRange(min=0.2),
    default=1.0,
    show_default=True,
    help="seconds between two readings of this host",
)
@click.option(
    "--docker-url",
    envvar="DOCKER_HOST",
    default="unix:///var/run/docker.sock",
    show_default=True,
    help="Docker socket; containers are skipped, with a message, when it does not answer",
)
@DATA_DIR_OPTION
@LOG_LEVEL_OPTION
@ACCESS_LOG_OPTION
@legacy_options
def standalone(
    *,
    host: str,
    port: int,
    interval: float,
    docker_url: str,
    data_dir: Path | None,
    log_level: str,
    access_log: bool,
    legacy: LegacyConfig,
) -> None:
    """Collector + server + dashboard in one process, on embedded SQLite, no Kafka.

    The data dir, the port and the database are checked before anything is written: a
    start that fails prints one line and no token.
    """
    from srvmon_server.command import (
        configure_logging,
        default_data_dir,
        ensure_data_dir,
        generated_token,
        listen,
        open_storage,
        serve,
        sqlite_url,
    )
    from srvmon_server.config import DEFAULT_INVENTORY_FLUSH_SECONDS, ServerConfig
    from srvmon_server.storage import StorageError

    configure_logging(log_level, access_log)
    folder = data_dir or default_data_dir(os.environ)
    ensure_data_dir(folder)
    sockets = listen(host, port)
    try:
        storage = open_storage(sqlite_url(folder), DEFAULT_INVENTORY_FLUSH_SECONDS)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    try:
        token, created = generated_token(folder)
        if created:
            announce = f"Admin token (printed once, kept in {folder / 'server-token'}):\n{token}"
        else:
            announce = f"Admin token: in {folder / 'server-token'}"
        config = ServerConfig(write_tokens=frozenset({token}), legacy=legacy)

        def companion(context: ServerContext, url: str) -> Callable[[], None]:
            click.echo(f"srvmon dashboard: {url}  (Ctrl-C stops)")
            return start_collector(
                context, interval=interval, docker_url=docker_url, data_dir=folder
            )

        asyncio.run(serve(config, storage, sockets, host, companion=companion, announce=announce))
    except (StorageError, SrvmonError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        storage.close()
        for sock in sockets:
            sock.close()
