"""The consumer's own figures for Prometheus, through ``prometheus_client``, and a small
HTTP endpoint.

:class:`ConsumerCollector` (prometheus_client's ``Collector`` interface) turns a
:class:`StatsSnapshot` into metric families at scrape time; :data:`FIGURES` maps each
snapshot field to its family, so a new figure is one row. ``MetricsEndpoint`` serves the
text format (0.0.4) at ``GET /metrics`` (and ``GET /healthz``) from a daemon thread with
the standard library's HTTP server: the consumer needs no web framework, and the snapshot
it reads is safe to take from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from srvmon_agents.consumer.stats import StatsSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

FIGURES: tuple[tuple[str, str, Literal["counter", "gauge"], str], ...] = (
    (
        "delivered_batches",
        "srvmon_consumer_delivered_batches_total",
        "counter",
        "Envelopes the server acknowledged as stored or duplicate.",
    ),
    (
        "delivered_samples",
        "srvmon_consumer_delivered_samples_total",
        "counter",
        "Samples in the acknowledged envelopes.",
    ),
    (
        "duplicate_samples",
        "srvmon_consumer_duplicate_samples_total",
        "counter",
        "Samples the server already had (replays).",
    ),
    (
        "retries",
        "srvmon_consumer_retries_total",
        "counter",
        "Ingest requests repeated after a 5xx answer, a timeout or a network error.",
    ),
    (
        "dead_lettered",
        "srvmon_consumer_dead_lettered_total",
        "counter",
        "Messages parked in the dead-letter topic.",
    ),
    (
        "dead_letter_truncated",
        "srvmon_consumer_dead_letter_truncated_total",
        "counter",
        "Of the dead-lettered messages, those parked as a truncated copy (full copy failed).",
    ),
    (
        "dead_letter_failures",
        "srvmon_consumer_dead_letter_failures_total",
        "counter",
        "Poison messages moved past without any dead-letter copy (dead-letter produce failed).",
    ),
    (
        "in_flight",
        "srvmon_consumer_in_flight",
        "gauge",
        "Messages taken from Kafka, not yet finished.",
    ),
    (
        "uncommitted",
        "srvmon_consumer_uncommitted_messages",
        "gauge",
        "Messages acknowledged or parked whose offsets are not committed yet.",
    ),
    (
        "paused",
        "srvmon_consumer_paused",
        "gauge",
        "1 while consumption is paused (server slow/down).",
    ),
)
"""(snapshot field, metric name, type, help) of every plain figure; booleans become 0/1."""
REACHABLE = "srvmon_consumer_broker_reachable"
REACHABLE_HELP = (
    "1 while a Kafka broker is reachable, 0 while none is (absent before the first verdict)."
)
LAG = "srvmon_consumer_lag_messages"
LAG_HELP = "Messages behind the partition's high watermark, as of the last stats interval."


def _partition(key: str) -> dict[str, str]:
    """``topic[3]`` (the snapshot's lag key) → ``{"topic": "topic", "partition": "3"}``."""
    topic, _, rest = key.rpartition("[")
    return {"topic": topic, "partition": rest.rstrip("]")}


class ConsumerCollector(Collector):
    """The figures of ``snapshot()``, taken once per scrape."""

    def __init__(self, snapshot: Callable[[], StatsSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        for field, name, metric_type, help_text in FIGURES:
            base = name.removesuffix("_total") if metric_type == "counter" else name
            family = Metric(base, help_text, metric_type)
            family.add_sample(name, {}, float(getattr(snapshot, field)))
            yield family
        reachable = Metric(REACHABLE, REACHABLE_HELP, "gauge")
        if snapshot.broker_reachable is not None:  # absent before the first verdict
            reachable.add_sample(REACHABLE, {}, float(snapshot.broker_reachable))
        yield reachable
        lag = Metric(LAG, LAG_HELP, "gauge")
        for key, value in sorted(snapshot.lag.items()):
            lag.add_sample(LAG, _partition(key), float(value))
        yield lag


def registry(snapshot: Callable[[], StatsSnapshot]) -> CollectorRegistry:
    """A registry of its own (never the global default) with the consumer's collector."""
    out = CollectorRegistry(auto_describe=False)
    out.register(ConsumerCollector(snapshot))
    return out


def render(snapshot: StatsSnapshot) -> str:
    """One snapshot in the Prometheus text format."""
    return generate_latest(registry(lambda: snapshot)).decode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/metrics":
            body = generate_latest(self.server.registry).decode()
            self._answer(200, body, CONTENT_TYPE)
        elif self.path == "/healthz":
            self._answer(200, "ok\n", "text/plain; charset=utf-8")
        else:
            self._answer(404, "not found: try /metrics\n", "text/plain; charset=utf-8")

    def _answer(self, status: int, text: str, content_type: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not worth a log line each."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], snapshot: Callable[[], StatsSnapshot]) -> None:
        super().__init__(address, _Handler)
        self.registry = registry(snapshot)


class MetricsEndpoint:
    """``GET /metrics`` on ``host:port`` (port 0: any free port) until :meth:`close`."""

    def __init__(self, host: str, port: int, snapshot: Callable[[], StatsSnapshot]) -> None:
        self._server = _Server((host, port), snapshot)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="srvmon-metrics", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
