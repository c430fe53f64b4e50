"""``/metrics``: the server's figures and every machine's latest metrics, through
``prometheus_client``.

Two custom collectors (prometheus_client's ``Collector`` interface) build the families at
scrape time from what the server already holds in memory, so a scrape never touches the
database:

- :class:`MachineCollector` reads the :class:`~srvmon_server.latest.LatestView`: per
  machine ``srvmon_machine_up`` and ``srvmon_machine_last_seen_timestamp_seconds``, and the
  flat metrics under Prometheus names (:data:`EXPOSED`) while the machine is fresh;
- :class:`ServerCollector` reads the server's own counters (:data:`OWN_HELP`).

A fleet of 1,000 hosts x 30 containers is about 380,000 machine series; prometheus_client's
``generate_latest`` writes each sample line generically (sorting and escaping every label
each time), about 10 us a series, and the scrape's thread holds the GIL for seconds that
ingest needs. So :class:`Scrape` writes the machine families with
:meth:`MachineCollector.render`: the same bytes (``tests/server/test_prometheus_render.py``
compares them with ``generate_latest`` of :meth:`MachineCollector.collect`), each
machine's label set escaped once and kept, each family's ``# HELP``/``# TYPE`` lines
written by prometheus_client itself and each value by its ``floatToGoString``. Everything
else goes through ``generate_latest``.

Names follow Prometheus conventions: base units (ratios 0-1, not percent; bytes;
seconds), ``_per_second`` for rates, ``_total`` only on counters, no ``_count`` on gauges.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import cache
from typing import Literal

from attrs import frozen
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString as _untyped_go_float

from srvmon_core.metrics import METRICS
from srvmon_server.latest import LatestMachine, LatestView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text format 0.0.4: what Prometheus, promtool and curl all read."""

MetricType = Literal["gauge", "counter"]

_go_float: Callable[[float], str] = _untyped_go_float
"""prometheus_client's value formatting (``1.0``, ``1.7e+09``, ``+Inf``), typed."""


@frozen(kw_only=True)
class Exposed:
    """How one flat metric appears in ``/metrics``."""

    flat: str
    kind: Literal["host", "container"]
    name: str
    """The family name; a counter's samples get ``_total`` appended (already in ``name``)."""
    type: MetricType
    divisor: float
    """Divides the flat value (100: percent → ratio)."""
    help: str


_RENAMED: dict[tuple[str, str], tuple[str, MetricType, float, str]] = {
    ("host", "cpu_percent"): (
        "cpu_ratio",
        "gauge",
        100.0,
        "CPU busy time of the whole machine, 0-1",
    ),
    ("host", "cpu_iowait_percent"): (
        "cpu_iowait_ratio",
        "gauge",
        100.0,
        "CPU time waiting for IO, 0-1",
    ),
    ("host", "cpu_steal_percent"): (
        "cpu_steal_ratio",
        "gauge",
        100.0,
        "CPU time stolen by the hypervisor, 0-1",
    ),
    ("host", "memory_percent"): ("memory_ratio", "gauge", 100.0, "memory in use, 0-1"),
    ("host", "swap_percent"): ("swap_ratio", "gauge", 100.0, "swap in use, 0-1"),
    ("host", "disk_used_percent_max"): (
        "disk_used_max_ratio",
        "gauge",
        100.0,
        "used share of the fullest mount, 0-1",
    ),
    ("host", "disk_read_ops_per_s"): (
        "disk_read_operations_per_second",
        "gauge",
        1.0,
        "read operations on physical disks per second",
    ),
    ("host", "disk_write_ops_per_s"): (
        "disk_write_operations_per_second",
        "gauge",
        1.0,
        "write operations on physical disks per second",
    ),
    ("host", "process_count"): ("processes", "gauge", 1.0, "processes on the host"),
    ("container", "cpu_percent"): (
        "cpu_ratio",
        "gauge",
        100.0,
        "CPU time per second of wall time; 1 = one core busy (docker stats' 100 %)",
    ),
    ("container", "cpu_throttled_percent"): (
        "cpu_throttled_ratio",
        "gauge",
        100.0,
        "share of CFS periods throttled, 0-1",
    ),
    ("container", "memory_percent"): (
        "memory_ratio",
        "gauge",
        100.0,
        "working set over the memory limit, 0-1",
    ),
    ("container", "restart_count"): (
        "restarts_total",
        "counter",
        1.0,
        "restarts since the container was created",
    ),
}
"""Flat metrics whose Prometheus name is not ``srvmon_<kind>_<flat>``. Every other
``_per_s`` rate becomes ``_per_second``; the rest keep their flat name."""


def _exposed(kind: Literal["host", "container"], flat: str, help_text: str) -> Exposed:
    renamed = _RENAMED.get((kind, flat))
    if renamed is not None:
        name, metric_type, divisor, help_text = renamed
    else:
        name, metric_type, divisor = flat, "gauge", 1.0
        if name.endswith("_per_s"):
            name = name.removesuffix("_per_s") + "_per_second"
            help_text = f"{help_text}, per second"
    return Exposed(
        flat=flat,
        kind=kind,
        name=f"srvmon_{kind}_{name}",
        type=metric_type,
        divisor=divisor,
        help=help_text,
    )


EXPOSED: dict[tuple[str, str], Exposed] = {
    (m.kind, m.name): _exposed(m.kind, m.name, m.help) for m in METRICS
}
"""Every flat metric of ``srvmon_core.metrics.METRICS``, keyed ``(kind, flat name)``."""

OLD_NAMES: dict[str, str] = {
    f"srvmon_{e.kind}_{e.flat}": e.name
    for e in EXPOSED.values()
    if e.name != f"srvmon_{e.kind}_{e.flat}"
}
"""Hand-written exposition name (before 0.2) → today's name, for the CHANGELOG."""

UP = "srvmon_machine_up"
LAST_SEEN = "srvmon_machine_last_seen_timestamp_seconds"
MACHINE_HELP = {
    UP: "1 while the machine reports (a sample within the silent-after time), else 0",
    LAST_SEEN: "when the server last received a sample of the machine, Unix time",
}

OWN_HELP: dict[str, tuple[MetricType, str]] = {
    "ingest_batches_total": ("counter", "batches accepted by /api/v1/ingest"),
    "ingest_samples_total": ("counter", "machine samples accepted (host + containers)"),
    "ingest_duplicates_total": ("counter", "samples ignored as already stored"),
    "ingest_samples_per_second": ("gauge", "samples accepted per second, last 60 s"),
    "ingest_behind_seconds": (
        "gauge",
        "age of the oldest ingest the server holds unfinished (0 when it keeps up)",
    ),
    "sse_clients": ("gauge", "connected Server-Sent Events clients"),
    "sse_dropped_clients_total": ("counter", "SSE clients dropped: their socket stalled"),
    "sse_conflated_events_total": (
        "counter",
        "SSE state events replaced by a newer one before a slow client got them",
    ),
    "sse_resyncs_total": ("counter", "SSE clients sent a resync: too many alerts waited"),
    "db_latency_seconds": ("gauge", "duration of the latest database call"),
    "db_errors_total": ("counter", "database calls that failed as unavailable"),
    "alert_events_total": ("counter", "alert transitions produced by the engine"),
    "notifications_sent_total": ("counter", "webhook/Alertmanager posts delivered"),
    "notifications_failed_total": ("counter", "notifications given up after retries"),
    "alertmanager_alerts_active": (
        "gauge",
        "alerts srvmon holds firing in Alertmanager (re-sent every resend interval)",
    ),
    "replica_hosts": ("gauge", "hosts this replica evaluates (replica mode only)"),
    "replica_events_sent_total": (
        "counter",
        "live events sent to the other replicas (replica mode only)",
    ),
    "replica_events_received_total": (
        "counter",
        "live events received from the other replicas (replica mode only)",
    ),
}
"""The server's own figures: ``srvmon_server_<name>`` → (type, help)."""


def _labels(machine: LatestMachine) -> dict[str, str]:
    if machine.kind == "host":
        return {"host_id": machine.host_id, "hostname": machine.hostname}
    return {"host_id": machine.host_id, "hostname": machine.hostname, "container": machine.name}


class MachineCollector(Collector):
    """Per machine: up, last seen, and its flat metrics while it is fresh.

    ``up`` is 1 while the machine was heard from within ``silent_after_seconds`` (the same
    test as the ``silent`` status of /api/v1/machines). A machine not heard from for longer
    than ``stale_after_seconds`` keeps ``up`` (0) and ``last_seen`` but drops its value
    series, so Prometheus marks them stale instead of repeating old figures forever.
    """

    def __init__(
        self,
        latest: LatestView,
        clock: Callable[[], datetime],
        *,
        silent_after_seconds: float,
        stale_after_seconds: float,
    ) -> None:
        self._latest = latest
        self._clock = clock
        self._silent_after = silent_after_seconds
        self._stale_after = stale_after_seconds
        self._labels: dict[tuple[str, str, str, str], tuple[str, str]] = {}
        """Each machine's label text (``_label_text``), by what it is written from."""

    def collect(self) -> Iterator[Metric]:
        now = self._clock().timestamp()
        up = Metric(UP, MACHINE_HELP[UP], "gauge")
        last_seen = Metric(LAST_SEEN, MACHINE_HELP[LAST_SEEN], "gauge")
        families: dict[str, Metric] = {}
        for machine in self._latest.machines():
            labels = _labels(machine)
            heard = machine.received_at.timestamp()
            quiet = now - heard
            up.add_sample(
                UP, {"kind": machine.kind, **labels}, 0.0 if quiet > self._silent_after else 1.0
            )
            last_seen.add_sample(LAST_SEEN, {"kind": machine.kind, **labels}, heard)
            if quiet > self._stale_after:
                continue
            for flat, value in machine.metrics.items():
                exposed = EXPOSED.get((machine.kind, flat))
                if exposed is None:
                    continue  # a name this server does not know (a newer collector)
                family = families.get(exposed.name)
                if family is None:
                    family = families[exposed.name] = _family(exposed)
                family.add_sample(exposed.name, labels, value / exposed.divisor)
        yield up
        yield last_seen
        for name in sorted(families):
            yield families[name]

    def render(self) -> bytes:
        """The text format of :meth:`collect`, byte for byte what ``generate_latest`` writes
        for it, in about a sixth of the time (see the module's docstring)."""
        now = self._clock().timestamp()
        up: list[str] = []
        last_seen: list[str] = []
        families: dict[str, list[str]] = {}
        labels_of = self._labels
        for machine in self._latest.machines():
            shown = (machine.kind, machine.host_id, machine.hostname, machine.name)
            labels = labels_of.get(shown)
            if labels is None:
                labels = labels_of[shown] = _label_text(machine)
            plain, with_kind = labels
            heard = machine.received_at.timestamp()
            quiet = now - heard
            up.append(f"{UP}{with_kind} {'0.0' if quiet > self._silent_after else '1.0'}\n")
            last_seen.append(f"{LAST_SEEN}{with_kind} {_go_float(heard)}\n")
            if quiet > self._stale_after:
                continue
            kind = machine.kind
            for flat, value in machine.metrics.items():
                exposed = EXPOSED.get((kind, flat))
                if exposed is None:
                    continue  # a name this server does not know (a newer collector)
                lines = families.get(exposed.name)
                if lines is None:
                    lines = families[exposed.name] = []
                lines.append(f"{exposed.name}{plain} {_go_float(value / exposed.divisor)}\n")
        if len(labels_of) > 2 * len(up) + 1024:  # machines gone (deleted, handed over)
            labels_of.clear()
        parts = [_header(UP), *up, _header(LAST_SEEN), *last_seen]
        for name in sorted(families):
            parts.append(_header(name))
            parts.extend(families[name])
        return "".join(parts).encode()


def _escape(value: str) -> str:
    """A label value as the text format writes it (backslash, newline, double quote)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(machine: LatestMachine) -> tuple[str, str]:
    """``{...}`` of the machine's labels without and with ``kind``, sorted by name as
    ``generate_latest`` sorts them (``kind`` after ``container``, ``host_id`` and
    ``hostname``)."""
    plain = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(_labels(machine).items()))
    return f"{{{plain}}}", f'{{{plain},kind="{_escape(machine.kind)}"}}'


@cache
def _header(name: str) -> str:
    """The ``# HELP`` and ``# TYPE`` lines of the family ``name`` (a machine family, or
    ``UP`` / ``LAST_SEEN``), written by prometheus_client."""
    if name in MACHINE_HELP:
        family = Metric(name, MACHINE_HELP[name], "gauge")
    else:
        family = _family(next(e for e in EXPOSED.values() if e.name == name))
    return generate_latest(_Fixed([family])).decode()


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _family(exposed: Exposed) -> Metric:
    base = exposed.name.removesuffix("_total") if exposed.type == "counter" else exposed.name
    return Metric(base, exposed.help, exposed.type)


class ServerCollector(Collector):
    """The server's own figures, read from ``figures()`` at each scrape."""

    def __init__(self, figures: Callable[[], Mapping[str, float]]) -> None:
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        figures = self._figures()
        for name, (metric_type, help_text) in OWN_HELP.items():
            if name not in figures:
                continue
            full = f"srvmon_server_{name}"
            base = full.removesuffix("_total") if metric_type == "counter" else full
            family = Metric(base, help_text, metric_type)
            family.add_sample(full, {}, float(figures[name]))
            yield family


REPLICA_PARTITION = "srvmon_server_replica_partition_assigned"


class ReplicaCollector(Collector):
    """``srvmon_server_replica_partition_assigned{topic, partition}``: 1 per partition of
    the metrics topic this replica holds (replica mode only)."""

    def __init__(self, held: Callable[[], tuple[str, frozenset[int]]]) -> None:
        self._held = held

    def collect(self) -> Iterator[Metric]:
        topic, partitions = self._held()
        family = Metric(
            REPLICA_PARTITION, "1 for each metrics-topic partition this replica holds", "gauge"
        )
        for partition in sorted(partitions):
            family.add_sample(REPLICA_PARTITION, {"topic": topic, "partition": str(partition)}, 1)
        yield family


REJECTED_SAMPLES = "srvmon_ingest_rejected_samples_total"
REJECTED_SAMPLES_HELP = "machine samples refused at ingest, by reason (timestamp: out of window)"


class RejectedCollector(Collector):
    """``srvmon_ingest_rejected_samples_total{reason}``, read from ``counts()`` at each
    scrape (``Stats.rejected_samples_total``)."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = Metric(REJECTED_SAMPLES.removesuffix("_total"), REJECTED_SAMPLES_HELP, "counter")
        for reason, count in sorted(self._counts().items()):
            family.add_sample(REJECTED_SAMPLES, {"reason": reason}, float(count))
        yield family


def registry(*collectors: Collector) -> CollectorRegistry:
    """A registry of its own (never the global default) holding ``collectors``."""
    out = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        out.register(collector)
    return out


def exposition(source: CollectorRegistry) -> bytes:
    """The text exposition (format 0.0.4) of everything ``source`` collects."""
    return generate_latest(source)


GZIP_LEVEL = 1
"""Fast and enough: the text format shrinks about tenfold even at level 1."""
GZIP_FROM_BYTES = 4096
"""Smaller bodies go as they are (a small server's scrape)."""


@frozen
class Scrape:
    """What ``/metrics`` serves: the machine families (:meth:`MachineCollector.render`),
    then everything ``others`` collects (``generate_latest``)."""

    machines: MachineCollector
    others: CollectorRegistry

    def body(self) -> bytes:
        """The text exposition (format 0.0.4)."""
        return self.machines.render() + generate_latest(self.others)

    def encoded(self, accept_encoding: str) -> tuple[bytes, str | None]:
        """:meth:`body`, gzip-compressed (``GZIP_LEVEL``) when the client accepts gzip
        (Prometheus always asks) and the body is at least ``GZIP_FROM_BYTES``; and the
        ``Content-Encoding`` to send (None: not compressed)."""
        body = self.body()
        if len(body) < GZIP_FROM_BYTES or not accepts_gzip(accept_encoding):
            return body, None
        return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0), "gzip"


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header admits gzip (RFC 9110: ``gzip`` or ``*``
    with a q-value above 0; an explicit ``gzip`` entry wins over ``*``)."""
    admitted: dict[str, bool] = {}
    for entry in accept_encoding.split(","):
        coding, _, params = entry.partition(";")
        coding = coding.strip().lower()
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = 0.0
        if coding:
            admitted[coding] = weight > 0
    if "gzip" in admitted:
        return admitted["gzip"]
    return admitted.get("*", False)


def names_table() -> str:
    """The Markdown table of docs/metrics.md, "In Prometheus" (a test keeps them equal)."""
    lines = ["| kind | flat metric | Prometheus name | type | value |", "|---|---|---|---|---|"]
    for exposed in EXPOSED.values():
        value = "flat value / 100" if exposed.divisor == 100.0 else "flat value"
        lines.append(
            f"| {exposed.kind} | `{exposed.flat}` | `{exposed.name}` | {exposed.type} | {value} |"
        )
    return "\n".join(lines) + "\n"
