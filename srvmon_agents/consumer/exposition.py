"""The consumer's own figures for Prometheus: text exposition and a small HTTP endpoint.

``render`` turns a :class:`StatsSnapshot` into the Prometheus text format (version 0.0.4).
``MetricsEndpoint`` serves it at ``GET /metrics`` (and ``GET /healthz``) from a daemon
thread with the standard library's HTTP server: the consumer needs no web framework, and
the snapshot it reads is safe to take from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from srvmon_agents.consumer.stats import StatsSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_COUNTERS = (
    ("delivered_batches", "Envelopes the server acknowledged as stored or duplicate."),
    ("delivered_samples", "Samples in the acknowledged envelopes."),
    ("duplicate_samples", "Samples the server already had (replays)."),
    ("retries", "Ingest requests repeated after a 5xx answer, a timeout or a network error."),
    ("dead_lettered", "Messages parked in the dead-letter topic."),
    (
        "dead_letter_truncated",
        "Of the dead-lettered messages, those parked as a truncated copy (full copy failed).",
    ),
    (
        "dead_letter_failures",
        "Poison messages moved past without any dead-letter copy (dead-letter produce failed).",
    ),
)


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _partition_labels(key: str) -> str:
    """``topic[3]`` (the snapshot's lag key) → ``topic="topic",partition="3"``."""
    topic, _, rest = key.rpartition("[")
    return f'topic="{_label_value(topic)}",partition="{_label_value(rest.rstrip("]"))}"'


def render(snapshot: StatsSnapshot) -> str:
    """The snapshot as Prometheus text: counters ``srvmon_consumer_*_total``, gauges for
    what is in flight or uncommitted, whether consumption is paused, whether a broker is
    reachable, and lag per partition."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    for field, help_text in _COUNTERS:
        name = f"srvmon_consumer_{field}_total"
        family(name, "counter", help_text)
        lines.append(f"{name} {getattr(snapshot, field)}")
    family("srvmon_consumer_in_flight", "gauge", "Messages taken from Kafka, not yet finished.")
    lines.append(f"srvmon_consumer_in_flight {snapshot.in_flight}")
    family(
        "srvmon_consumer_uncommitted_messages",
        "gauge",
        "Messages acknowledged or parked whose offsets are not committed yet.",
    )
    lines.append(f"srvmon_consumer_uncommitted_messages {snapshot.uncommitted}")
    family("srvmon_consumer_paused", "gauge", "1 while consumption is paused (server slow/down).")
    lines.append(f"srvmon_consumer_paused {int(snapshot.paused)}")
    family(
        "srvmon_consumer_broker_reachable",
        "gauge",
        "1 while a Kafka broker is reachable, 0 while none is (absent before the first verdict).",
    )
    if snapshot.broker_reachable is not None:
        lines.append(f"srvmon_consumer_broker_reachable {int(snapshot.broker_reachable)}")
    family(
        "srvmon_consumer_lag_messages",
        "gauge",
        "Messages behind the partition's high watermark, as of the last stats interval.",
    )
    for key, lag in sorted(snapshot.lag.items()):
        lines.append(f"srvmon_consumer_lag_messages{{{_partition_labels(key)}}} {lag}")
    return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/metrics":
            self._answer(200, render(self.server.snapshot()), CONTENT_TYPE)
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
        self.snapshot = snapshot


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
