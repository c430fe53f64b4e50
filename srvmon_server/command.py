"""``srvmon server``: the click command. Options become a ServerConfig; errors become
ClickException here and nowhere else.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import gc
import inspect
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from srvmon_server.auth import is_loopback, placeholder_problem
from srvmon_server.config import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_SAMPLE_AGE_SECONDS,
    DEFAULT_MAX_SAMPLE_AHEAD_SECONDS,
    ReplicaSettings,
    ServerConfig,
)
from srvmon_server.cors import parse_origins
from srvmon_server.legacy.config import LegacyConfig
from srvmon_server.legacy.options import legacy_options

if TYPE_CHECKING:
    from srvmon_server.storage import Storage

log = logging.getLogger(__name__)
TOKEN_FILE = "server-token"


def default_data_dir(environ: dict[str, str] | os._Environ[str]) -> Path:
    """``$XDG_DATA_HOME/srvmon``, else ``~/.local/share/srvmon``."""
    base = environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "srvmon"


DATA_DIR_HINT = "choose another with --data-dir or SRVMON_DATA_DIR"


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'srvmon.db'}"


def default_db_url(environ: dict[str, str] | os._Environ[str], folder: Path) -> str:
    """``DATABASE_*`` variables when set, else SQLite in ``folder`` (not created here)."""
    from srvmon_server.storage import url_from_env

    return url_from_env(environ) or sqlite_url(folder)


def ensure_data_dir(folder: Path) -> None:
    """Create the data dir and prove it writable, or a one-line ClickException."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = folder / ".srvmon-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise click.ClickException(
            f"the data dir {folder} is not writable ({reason}); {DATA_DIR_HINT}"
        ) from None


def generated_token(folder: Path) -> tuple[str, bool]:
    """The token kept in ``folder/server-token`` (mode 0600); True when just created.
    An existing file others can read is made 0600 again, with a warning to rotate it; one
    this user cannot change is refused.
    Raises ClickException when the folder cannot hold it."""
    path = folder / TOKEN_FILE
    try:
        if path.exists():
            _private(path)
            token = path.read_text().strip()
            if token:
                return token, False
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        os.chmod(path, 0o600)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise click.ClickException(
            f"cannot keep the token in {path} ({reason}); {DATA_DIR_HINT}, or give --token"
        ) from None
    return token, True


def _private(path: Path) -> None:
    """Make a secret file readable by its owner only, or refuse it (``ClickException``)."""
    mode = path.stat().st_mode & 0o777
    if not mode & 0o077:
        return
    try:
        os.chmod(path, 0o600)
    except OSError as exc:
        raise click.ClickException(
            f"{path} is readable by other users (mode {mode:o}) and cannot be made private "
            f"({exc.strerror}); chmod 600 it or delete it to generate a new token"
        ) from None
    click.echo(
        f"warning: {path} was readable by other users (mode {mode:o}); it is 0600 now. "
        "Delete it and restart to rotate the token if others may have read it.",
        err=True,
    )


def check_tokens(given: dict[str, set[str]]) -> None:
    """Refuse placeholder tokens and one token given for two scopes (``ClickException``:
    one line naming the option)."""
    seen: dict[str, str] = {}
    for option, values in given.items():
        for token in values:
            problem = placeholder_problem(token)
            if problem is not None:
                raise click.ClickException(
                    f"{option}: {problem}; generate one with: "
                    "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            if token in seen and seen[token] != option:
                raise click.ClickException(
                    f"the same token is given as {seen[token]} and {option}; "
                    "give each role its own token"
                )
            seen[token] = option


def listen(host: str, port: int) -> list[socket.socket]:
    """Bind the listening sockets now (before any side effect), or a one-line
    ClickException naming the option that fixes it."""
    import tornado.netutil

    from srvmon_server.httpserver import BACKLOG

    try:
        return tornado.netutil.bind_sockets(port, host, backlog=BACKLOG)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            hint = "choose another port with --port or SRVMON_PORT (0 picks a free one)"
        else:
            hint = "choose another address with --host or SRVMON_HOST"
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason}; {hint}") from None


def open_storage(url: str, inventory_flush_seconds: float) -> Storage:
    """Open (and create or upgrade) the database now, or a one-line ClickException."""
    from srvmon_server.storage import Storage, StorageError

    try:
        return Storage.open(url, inventory_flush=timedelta(seconds=inventory_flush_seconds))
    except StorageError as exc:
        raise click.ClickException(
            f"database: {exc} (set it with --db-url or SRVMON_DB_URL)"
        ) from None


def configure_logging(level: str, access_log: bool) -> None:
    """The root log level, and Tornado's access log: one line per request when on, only
    failed requests (5xx) when off."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    access = logging.getLogger("tornado.access")
    access.setLevel(logging.NOTSET if access_log else logging.ERROR)


GC_THRESHOLDS = (200_000, 10, 10)
"""The cyclic garbage collector's generation thresholds in the server process."""


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a process that ingests continuously.

    Samples, views and SSE payloads are acyclic and freed by reference counting, but each
    machine's newest view, inventory row and replay event live a second or more. Every
    collection walks the young objects still alive, so the more often it runs, the more
    often it walks those. With the default 700 allocations it took a third of the
    server's CPU per sample; at 20,000 it still took 6.0 s of a 70 s run at 1,000 hosts x
    30 containers (``bench/bench_fleet.py``); at 200,000 it takes 0.9 s, in pauses of at
    most 137 ms. So everything start-up built is frozen out of the collections
    (``gc.freeze``) and the youngest generation is collected every 200,000 allocations;
    cyclic garbage is still collected, just later.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


Companion = Callable[[Any, str], Callable[[], object]]
"""Runs beside the server (standalone's collector, a replica's Kafka side): gets the
ServerContext and the base URL once the server listens, returns the function that stops
it (awaited when it returns an awaitable, with the loop still running)."""


async def serve(
    config: ServerConfig,
    storage: Storage,
    sockets: list[socket.socket],
    host: str,
    *,
    companion: Companion | None = None,
    announce: str | None = None,
) -> None:
    """Serve on ``sockets`` (bound by :func:`listen`) from ``storage`` (opened by
    :func:`open_storage`) until SIGTERM/SIGINT. ``announce`` is printed on stdout once the
    server listens (the generated token)."""
    from srvmon_server.app import make_app
    from srvmon_server.httpserver import connection_limit, make_http_server

    bound = sockets[0].getsockname()[1]
    if not config.external_url:
        config = attrs.evolve(config, external_url=f"http://{host}:{bound}")
    try:
        app = make_app(config, storage)
        context = app.settings["srvmon"]
        tune_gc()
        limit = connection_limit(config.max_connections)
        server = make_http_server(app, config, max_connections=limit)
        server.add_sockets(sockets)
        click.echo(f"srvmon server listening on http://{host}:{bound}/", err=True)
        if announce:
            click.echo(announce)
        stop_companion = companion(context, f"http://{host}:{bound}/") if companion else None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        click.echo("srvmon server stopping", err=True)
        if stop_companion is not None:
            stopped = stop_companion()
            if inspect.isawaitable(stopped):
                await stopped
        server.stop()
        context.hub.close_all()
        context.live.close()
        try:
            await asyncio.wait_for(server.close_all_connections(), timeout=5)
        except TimeoutError:
            log.warning("some connections did not close within 5 s")
        context.close()
    finally:
        for sock in sockets:
            sock.close()


# --- Replica mode: its own option group ----------------------------------------------------
# Setting --kafka-bootstrap makes this server one of several replicas on one MySQL/MariaDB
# database (docs/server.md, "Replica mode"). The Kafka side lives in the composition layer
# (srvmon_cli.replica): the srvmon group leaves its starter in the click context's meta
# under REPLICA_STARTER, so this package never imports a Kafka client.

REPLICA_STARTER = "srvmon.replica_starter"
REPLICA_GROUP_TITLE = "Replica mode (set --kafka-bootstrap; docs/server.md)"
DEFAULT_REPLICA_TOPIC = "srvmon.metrics"
DEFAULT_REPLICA_GROUP = "srvmon-server"
DEFAULT_EVENTS_TOPIC = "srvmon.events"


@attrs.frozen(kw_only=True)
class ReplicaOptions:
    """The replica-mode options, as given."""

    bootstrap: str
    topic: str
    group: str
    events_topic: str
    kafka_options: tuple[str, ...]
    replica_id: str


ReplicaStarter = Callable[[Any, str, ReplicaOptions], Callable[[], object]]
"""(ServerContext, base URL, options) → the function that stops the replica's Kafka side."""

REPLICA_OPTIONS = [
    click.option(
        "--kafka-bootstrap",
        envvar="SRVMON_REPLICA_KAFKA_BOOTSTRAP",
        default=None,
        help="Kafka bootstrap servers (host:port[,host:port]); set, this server is a "
        "replica: it consumes the metrics topic in the replicas' group and evaluates the "
        "hosts of its partitions",
    ),
    click.option(
        "--kafka-topic",
        envvar="SRVMON_REPLICA_KAFKA_TOPIC",
        default=DEFAULT_REPLICA_TOPIC,
        show_default=True,
        help="the metrics topic the collectors produce to (key = host id)",
    ),
    click.option(
        "--kafka-group",
        envvar="SRVMON_REPLICA_KAFKA_GROUP",
        default=DEFAULT_REPLICA_GROUP,
        show_default=True,
        help="the replicas' consumer group (not the srvmon consumers' group)",
    ),
    click.option(
        "--kafka-events-topic",
        envvar="SRVMON_REPLICA_EVENTS_TOPIC",
        default=DEFAULT_EVENTS_TOPIC,
        show_default=True,
        help="live events and rule/silence changes shared by the replicas (created with "
        "one partition when missing)",
    ),
    click.option(
        "--kafka-option",
        "replica_kafka_options",
        envvar="SRVMON_REPLICA_KAFKA_OPTIONS",
        multiple=True,
        default=(),
        metavar="KEY=VALUE",
        help="extra librdkafka setting for the replica's clients (SASL, TLS, timeouts), repeatable",
    ),
    click.option(
        "--replica-id",
        envvar="SRVMON_REPLICA_ID",
        default=None,
        help="this replica's name on the events topic; default <hostname>-<pid>-<random>",
    ),
]
REPLICA_PARAMS = frozenset(
    {
        "kafka_bootstrap",
        "kafka_topic",
        "kafka_group",
        "kafka_events_topic",
        "replica_kafka_options",
        "replica_id",
    }
)


def replica_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add the replica-mode options; the command gets them as one ``replica`` argument
    (``ReplicaOptions``, or None without ``--kafka-bootstrap``)."""

    @functools.wraps(command)
    def with_replica(**kwargs: Any) -> None:
        given = {name: kwargs.pop(name) for name in REPLICA_PARAMS}
        replica = None
        if given["kafka_bootstrap"]:
            for pair in given["replica_kafka_options"]:
                key, sep, _ = pair.partition("=")
                if not sep or not key.strip():
                    raise click.BadParameter(
                        f"expected KEY=VALUE, got {pair!r}", param_hint="--kafka-option"
                    )
            replica = ReplicaOptions(
                bootstrap=given["kafka_bootstrap"],
                topic=given["kafka_topic"],
                group=given["kafka_group"],
                events_topic=given["kafka_events_topic"],
                kafka_options=tuple(given["replica_kafka_options"]),
                replica_id=given["replica_id"] or default_replica_id(),
            )
        command(replica=replica, **kwargs)

    for option in reversed(REPLICA_OPTIONS):
        with_replica = option(with_replica)
    return with_replica


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def replica_mode(db_url: str, options: ReplicaOptions) -> tuple[ReplicaSettings, Companion]:
    """The settings and the companion of a replica; a ClickException when replica mode
    cannot run here (SQLite, or no srvmon group to start the Kafka side)."""
    if db_url.startswith("sqlite"):
        raise click.ClickException(
            "replica mode needs a database shared by the replicas (MySQL/MariaDB: --db-url "
            "mysql+pymysql://...); SQLite allows one writing process"
        )
    starter: ReplicaStarter | None = click.get_current_context().meta.get(REPLICA_STARTER)
    if starter is None:
        raise click.ClickException(
            "replica mode is started by the srvmon command (srvmon_cli) and needs the "
            "agents extra: pip install 'srvmon[all]', then srvmon server --kafka-bootstrap ..."
        )
    settings = ReplicaSettings(topic=options.topic, replica_id=options.replica_id)

    def companion(context: Any, url: str) -> Callable[[], object]:
        return starter(context, url, options)

    return settings, companion


class ServerCommand(click.Command):
    """``srvmon server``'s help lists the replica-mode options in a section of their own."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        general: list[tuple[str, str]] = []
        replica: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                (replica if param.name in REPLICA_PARAMS else general).append(record)
        with formatter.section("Options"):
            formatter.write_dl(general)
        with formatter.section(REPLICA_GROUP_TITLE):
            formatter.write_dl(replica)


HOST_OPTION = click.option(
    "--host",
    envvar="SRVMON_HOST",
    default="127.0.0.1",
    show_default=True,
    help="address to listen on",
)
PORT_OPTION = click.option(
    "--port",
    envvar="SRVMON_PORT",
    type=click.IntRange(0, 65535),
    default=8004,
    show_default=True,
    help="port to listen on (0: any free port)",
)
DATA_DIR_OPTION = click.option(
    "--data-dir",
    envvar="SRVMON_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="database (SQLite), token and host id live here (default $XDG_DATA_HOME/srvmon, "
    "else ~/.local/share/srvmon)",
)
LOG_LEVEL_OPTION = click.option(
    "--log-level",
    envvar="SRVMON_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="least severe log messages written to stderr",
)
ACCESS_LOG_OPTION = click.option(
    "--access-log/--no-access-log",
    envvar="SRVMON_ACCESS_LOG",
    default=False,
    show_default=True,
    help="log one line per HTTP request (off: only failed requests, 5xx)",
)
"""Shared by ``srvmon server`` and ``srvmon standalone``."""


@click.command(name="server", cls=ServerCommand)
@HOST_OPTION
@PORT_OPTION
@DATA_DIR_OPTION
@click.option(
    "--db-url",
    envvar="SRVMON_DB_URL",
    default=None,
    help="SQLAlchemy URL; default DATABASE_* variables, else SQLite in the data dir",
)
@click.option(
    "--token",
    "tokens",
    envvar="SRVMON_TOKEN",
    multiple=True,
    help="admin bearer token: everything, ingest and reads included (repeatable); "
    "generated when no token of any scope is given",
)
@click.option(
    "--ingest-token",
    "ingest_tokens",
    envvar="SRVMON_INGEST_TOKEN",
    multiple=True,
    help="bearer token that may ingest and nothing else: collectors, consumers (repeatable)",
)
@click.option(
    "--read-token",
    "read_tokens",
    envvar="SRVMON_READ_TOKEN",
    multiple=True,
    help="read-only bearer token (repeatable)",
)
@click.option(
    "--read-auth/--no-read-auth",
    envvar="SRVMON_READ_AUTH",
    default=None,
    help="require a token for reads too [default: on when --host is not a loopback address]",
)
@click.option(
    "--cors-allowed-origins",
    envvar="CORS_ALLOWED_ORIGINS",
    default="",
    help="comma-separated origins allowed by CORS, e.g. https://ops.example",
)
@click.option(
    "--webhook-url",
    "webhook_urls",
    envvar="SRVMON_WEBHOOK_URL",
    multiple=True,
    help="POST alert notifications here (Alertmanager v4 webhook shape; repeatable)",
)
@click.option(
    "--alertmanager-url",
    "alertmanager_urls",
    envvar="SRVMON_ALERTMANAGER_URL",
    multiple=True,
    help="push alerts to this Alertmanager's /api/v2/alerts (repeatable: each of an HA "
    "pair gets every alert)",
)
@click.option(
    "--alertmanager-resend-seconds",
    envvar="SRVMON_ALERTMANAGER_RESEND_SECONDS",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="send firing alerts to Alertmanager again this often (each valid 4 intervals)",
)
@click.option(
    "--external-url",
    envvar="SRVMON_EXTERNAL_URL",
    default=None,
    help="URL operators reach the dashboard at (for links in notifications)",
)
@click.option(
    "--max-body-bytes",
    envvar="SRVMON_MAX_BODY_BYTES",
    type=click.IntRange(1024),
    default=DEFAULT_MAX_BODY_BYTES,
    show_default=True,
    help="request body limit (413)",
)
@click.option(
    "--max-connections",
    envvar="SRVMON_MAX_CONNECTIONS",
    type=click.IntRange(1),
    default=4096,
    show_default=True,
    help="open connections at most (clamped to the file-descriptor limit); at the limit "
    "a new one replaces the connection idle longest, or gets 503 when none is idle",
)
@click.option(
    "--idle-timeout-seconds",
    envvar="SRVMON_IDLE_TIMEOUT_SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="close a connection that sends no complete request head for this long "
    "(idle keep-alive connections and slow headers alike)",
)
@click.option(
    "--body-timeout-seconds",
    envvar="SRVMON_BODY_TIMEOUT_SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="cut a request whose body takes longer than this to arrive",
)
@click.option(
    "--max-sample-age-seconds",
    envvar="SRVMON_MAX_SAMPLE_AGE_SECONDS",
    type=click.FloatRange(min=0),
    default=DEFAULT_MAX_SAMPLE_AGE_SECONDS,
    show_default=True,
    help="refuse (422) a batch whose timestamp is older than this by the server's clock",
)
@click.option(
    "--max-sample-ahead-seconds",
    envvar="SRVMON_MAX_SAMPLE_AHEAD_SECONDS",
    type=click.FloatRange(min=0),
    default=DEFAULT_MAX_SAMPLE_AHEAD_SECONDS,
    show_default=True,
    help="refuse (422) a batch whose timestamp is further ahead of the server's clock",
)
@click.option(
    "--raw-retention-days",
    envvar="SRVMON_RAW_RETENTION_DAYS",
    type=click.FloatRange(min=0, min_open=True),
    default=7.0,
    show_default=True,
    help="keep raw samples this long (rollups are kept longer)",
)
@click.option(
    "--rollup-1m-retention-days",
    envvar="SRVMON_ROLLUP_1M_RETENTION_DAYS",
    type=click.FloatRange(min=0, min_open=True),
    default=90.0,
    show_default=True,
    help="keep 1-minute rollups this long",
)
@click.option(
    "--rollup-1h-retention-days",
    envvar="SRVMON_ROLLUP_1H_RETENTION_DAYS",
    type=click.FloatRange(min=0, min_open=True),
    default=730.0,
    show_default=True,
    help="keep 1-hour rollups this long",
)
@click.option(
    "--alert-history-retention-days",
    envvar="SRVMON_ALERT_HISTORY_RETENTION_DAYS",
    type=click.FloatRange(min=0, min_open=True),
    default=365.0,
    show_default=True,
    help="keep alert events, and silences after they end, this long",
)
@click.option(
    "--inventory-flush-seconds",
    envvar="SRVMON_INVENTORY_FLUSH_SECONDS",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="write each machine's latest sample to the database at most this late "
    "(this server's reads never see the lag; 0: with every ingest)",
)
@click.option(
    "--heartbeat-seconds",
    envvar="SRVMON_HEARTBEAT_SECONDS",
    type=click.FloatRange(min=0.1),
    default=15.0,
    show_default=True,
    help="SSE heartbeat comment interval",
)
@click.option(
    "--metrics-stale-seconds",
    envvar="SRVMON_METRICS_STALE_SECONDS",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="/metrics drops the figures of a machine not heard from for this long "
    "(srvmon_machine_up and _last_seen_timestamp_seconds stay)",
)
@LOG_LEVEL_OPTION
@ACCESS_LOG_OPTION
@legacy_options
@replica_options
def server(
    *,
    host: str,
    port: int,
    data_dir: Path | None,
    db_url: str | None,
    tokens: tuple[str, ...],
    ingest_tokens: tuple[str, ...],
    read_tokens: tuple[str, ...],
    read_auth: bool | None,
    cors_allowed_origins: str,
    webhook_urls: tuple[str, ...],
    alertmanager_urls: tuple[str, ...],
    alertmanager_resend_seconds: float,
    external_url: str | None,
    max_body_bytes: int,
    max_connections: int,
    idle_timeout_seconds: float,
    body_timeout_seconds: float,
    max_sample_age_seconds: float,
    max_sample_ahead_seconds: float,
    raw_retention_days: float,
    rollup_1m_retention_days: float,
    rollup_1h_retention_days: float,
    alert_history_retention_days: float,
    inventory_flush_seconds: float,
    heartbeat_seconds: float,
    metrics_stale_seconds: float,
    log_level: str,
    access_log: bool,
    legacy: LegacyConfig,
    replica: ReplicaOptions | None,
) -> None:
    """Run the HTTP server: ingest, REST, SSE, alerts and the dashboard.

    Options, the port and the database are checked before anything is written: a start
    that fails prints one line and no token.
    """
    from srvmon_server.storage import StorageError

    configure_logging(log_level, access_log)
    try:
        origins = parse_origins(cors_allowed_origins)
    except ValueError as exc:
        raise click.ClickException(f"--cors-allowed-origins: {exc}") from None
    for url in (*webhook_urls, *alertmanager_urls):
        if not url.startswith(("http://", "https://")):
            raise click.ClickException(f"notification URL {url!r} must start with http(s)://")
    folder = data_dir or default_data_dir(os.environ)
    try:
        url = db_url or default_db_url(os.environ, folder)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    given = {
        "--token/SRVMON_TOKEN": {t for t in tokens if t},
        "--ingest-token/SRVMON_INGEST_TOKEN": {t for t in ingest_tokens if t},
        "--read-token/SRVMON_READ_TOKEN": {t for t in read_tokens if t},
    }
    check_tokens(given)
    replica_settings, companion = (None, None) if replica is None else replica_mode(url, replica)
    write_tokens = given["--token/SRVMON_TOKEN"]
    generate = not any(given.values())
    if url == sqlite_url(folder) or generate:
        ensure_data_dir(folder)
    sockets = listen(host, port)
    try:
        storage = open_storage(url, inventory_flush_seconds)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    try:
        announce = None
        if generate:
            token, created = generated_token(folder)
            write_tokens = {token}
            if created:
                announce = f"generated an admin token (kept in {folder / TOKEN_FILE}):\n{token}"
        config = ServerConfig(
            write_tokens=frozenset(write_tokens),
            ingest_tokens=frozenset(given["--ingest-token/SRVMON_INGEST_TOKEN"]),
            read_tokens=frozenset(given["--read-token/SRVMON_READ_TOKEN"]),
            read_auth=not is_loopback(host) if read_auth is None else read_auth,
            cors_allowed_origins=origins,
            webhook_urls=webhook_urls,
            alertmanager_urls=alertmanager_urls,
            alertmanager_resend_seconds=alertmanager_resend_seconds,
            metrics_stale_seconds=metrics_stale_seconds,
            external_url=external_url or "",
            max_body_bytes=max_body_bytes,
            max_connections=max_connections,
            idle_timeout_seconds=idle_timeout_seconds,
            body_timeout_seconds=body_timeout_seconds,
            max_sample_age_seconds=max_sample_age_seconds,
            max_sample_ahead_seconds=max_sample_ahead_seconds,
            raw_retention_days=raw_retention_days,
            rollup_1m_retention_days=rollup_1m_retention_days,
            rollup_1h_retention_days=rollup_1h_retention_days,
            alert_history_retention_days=alert_history_retention_days,
            inventory_flush_seconds=inventory_flush_seconds,
            heartbeat_seconds=heartbeat_seconds,
            legacy=legacy,
            replica=replica_settings,
        )
        asyncio.run(serve(config, storage, sockets, host, companion=companion, announce=announce))
    except StorageError as exc:
        raise click.ClickException(f"database: {exc}") from None
    finally:
        storage.close()
        for sock in sockets:
            sock.close()
