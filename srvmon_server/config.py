"""ServerConfig: every setting of the server in one frozen value."""

from __future__ import annotations

from collections.abc import Iterable

from attrs import field, frozen

from srvmon_server.auth import TokenPolicy
from srvmon_server.legacy.config import LegacyConfig

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_SAMPLE_AGE_SECONDS = 7 * 86400.0
DEFAULT_MAX_SAMPLE_AHEAD_SECONDS = 300.0
DEFAULT_INVENTORY_FLUSH_SECONDS = 5.0


def _strings(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


def _string_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@frozen(kw_only=True)
class ReplicaSettings:
    """Replica mode (docs/server.md, "Replica mode"): what the server itself needs to know;
    the Kafka connection is the composition layer's (``srvmon_cli.replica``)."""

    topic: str
    """The metrics topic: a host is evaluated by the replica holding its partition."""
    replica_id: str
    """This process's name among the replicas (events it sent are not taken back)."""


@frozen(kw_only=True)
class ServerConfig:
    write_tokens: frozenset[str] = field(converter=_strings)
    """Admin tokens (``--token``): everything, ingest and reads included."""
    read_tokens: frozenset[str] = field(default=frozenset(), converter=_strings)
    ingest_tokens: frozenset[str] = field(default=frozenset(), converter=_strings)
    """Tokens that may ingest and nothing else (collectors, consumers)."""
    read_auth: bool = False
    cors_allowed_origins: frozenset[str] = field(default=frozenset(), converter=_strings)
    webhook_urls: tuple[str, ...] = field(default=(), converter=_string_tuple)
    alertmanager_url: str | None = None
    """One Alertmanager (kept for embedders of earlier versions); see ``alertmanager_urls``."""
    alertmanager_urls: tuple[str, ...] = field(default=(), converter=_string_tuple)
    """Alertmanagers to push alerts to; each (e.g. both of an HA pair) gets every alert."""
    alertmanager_resend_seconds: float = 60.0
    """How often firing alerts are sent again to the Alertmanagers."""
    metrics_stale_seconds: float = 300.0
    """A machine not heard from for longer drops its value series from /metrics."""
    external_url: str = "http://127.0.0.1:8004"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_connections: int = 4096
    """Open connections at most; at the limit a new connection replaces the one waiting
    longest for a request head (``httpserver.py``)."""
    idle_timeout_seconds: float = 60.0
    """A connection waiting this long for a complete request head is closed."""
    body_timeout_seconds: float = 120.0
    """A request body still arriving after this long is cut."""
    max_sample_age_seconds: float = DEFAULT_MAX_SAMPLE_AGE_SECONDS
    """Ingest refuses a batch whose timestamp is older than this, by the server's clock."""
    max_sample_ahead_seconds: float = DEFAULT_MAX_SAMPLE_AHEAD_SECONDS
    """Ingest refuses a batch whose timestamp is further ahead of the server's clock."""
    raw_retention_days: float = 7.0
    rollup_1m_retention_days: float = 90.0
    rollup_1h_retention_days: float = 730.0
    alert_history_retention_days: float = 365.0
    inventory_flush_seconds: float = DEFAULT_INVENTORY_FLUSH_SECONDS
    """How late a machine's inventory row may be written (see storage/inventory.py)."""
    prune_interval_seconds: float = 3600.0
    heartbeat_seconds: float = 15.0
    ring_buffer_size: int = 10_000
    """Events kept per replayed topic (``metrics``, ``alerts``) for ``Last-Event-ID``."""
    client_queue_size: int = 10_000
    """Alerts that may wait for one SSE client; past this they become one ``resync``.
    State events (samples, summaries) never count: a client keeps the newest per machine."""
    client_stall_seconds: float = 60.0
    """An SSE client whose socket takes nothing for this long is dropped (the last resort)."""
    sse_send_buffer_bytes: int = 128 * 1024
    """The kernel send buffer of each SSE socket (0: the system's autotuning, which grows
    to megabytes): what a slow reader still has to read before it sees newer values."""
    summary_interval_seconds: float = 1.0
    """At most one ``summary`` event per host per this many seconds (the newest wins)."""
    silence_check_seconds: float = 1.0
    tokens_reload_seconds: float = 5.0
    """How often API tokens are read again from the database (``srvmon token`` changes)."""
    alert_state_save_seconds: float = 10.0
    """How often machines with pending timers, windows or never saved are written (each
    transition is written at once)."""
    silent_after_seconds: float = 30.0
    """A machine not heard from for this long shows as ``silent`` in /machines."""
    webhook_retries: int = 3
    webhook_backoff_seconds: float = 0.5
    webhook_timeout_seconds: float = 5.0
    static_path: str | None = None
    """Directory of the dashboard; defaults to the package's ``static`` folder."""
    replica: ReplicaSettings | None = None
    """Set: this server is one of several replicas (it evaluates only the hosts of the
    Kafka partitions it holds, and shares live events with the others)."""
    legacy: LegacyConfig = field(factory=LegacyConfig)
    """The original Java back end's routes (off by default; srvmon_server/legacy)."""

    @property
    def alertmanagers(self) -> tuple[str, ...]:
        """Every Alertmanager URL given, each once."""
        given = (*self.alertmanager_urls, *filter(None, [self.alertmanager_url]))
        return tuple(dict.fromkeys(given))

    @property
    def token_policy(self) -> TokenPolicy:
        """The tokens given as options (the server adds the stored ones: ``tokens.py``)."""
        return TokenPolicy.of_options(
            write_tokens=self.write_tokens,
            ingest_tokens=self.ingest_tokens,
            read_tokens=self.read_tokens,
            read_auth=self.read_auth,
        )
