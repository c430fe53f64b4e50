"""Prometheus text exposition (format 0.0.4) of machine metrics and the server's own figures.

Pure: takes machine records (anything with key/kind/host_id/hostname/name/metrics) and a
dict of the server's figures, returns text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from srvmon_core.metrics import METRICS

_HELP = {(m.kind, m.name): m.help for m in METRICS}
OWN_HELP = {
    "ingest_batches_total": ("counter", "batches accepted by /api/v1/ingest"),
    "ingest_samples_total": ("counter", "machine samples accepted (host + containers)"),
    "ingest_duplicates_total": ("counter", "samples ignored as already stored"),
    "ingest_samples_per_second": ("gauge", "samples accepted per second, last 60 s"),
    "sse_clients": ("gauge", "connected Server-Sent Events clients"),
    "sse_dropped_clients_total": ("counter", "SSE clients dropped for reading too slowly"),
    "db_latency_seconds": ("gauge", "duration of the latest database call"),
    "db_errors_total": ("counter", "database calls that failed as unavailable"),
    "alert_events_total": ("counter", "alert transitions produced by the engine"),
    "notifications_sent_total": ("counter", "webhook/Alertmanager posts delivered"),
    "notifications_failed_total": ("counter", "notifications given up after retries"),
}


REJECTED_SAMPLES = "srvmon_ingest_rejected_samples_total"
REJECTED_SAMPLES_HELP = "machine samples refused at ingest, by reason (timestamp: out of window)"


def rejected_family(by_reason: Mapping[str, int]) -> tuple[str, str, list[Any]]:
    """The ``srvmon_ingest_rejected_samples_total{reason}`` counter family."""
    samples = [({"reason": reason}, float(n)) for reason, n in sorted(by_reason.items())]
    return ("counter", REJECTED_SAMPLES_HELP, samples)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())


def render_metrics(records: Iterable[Any], own: Mapping[str, float]) -> dict[str, Any]:
    """Families: name -> (type, help, [(labels, value)])."""
    families: dict[str, Any] = {}
    for record in records:
        for metric, value in sorted(record.metrics.items()):
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", metric):
                continue
            name = f"srvmon_{record.kind}_{metric}"
            help_text = _HELP.get((record.kind, metric), metric)
            family = families.setdefault(name, ("gauge", help_text, []))
            if record.kind == "host":
                labels = {"host_id": record.host_id, "hostname": record.hostname}
            else:
                labels = {"host_id": record.host_id, "container": record.name}
            family[2].append((labels, float(value)))
    for metric, (kind, help_text) in OWN_HELP.items():
        if metric in own:
            families[f"srvmon_server_{metric}"] = (kind, help_text, [({}, float(own[metric]))])
    return families


def exposition(families: Mapping[str, Any]) -> bytes:
    lines = []
    for name in sorted(families):
        kind, help_text, samples = families[name]
        lines.append(f"# HELP {name} {_escape(help_text)}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label_text = "{" + _labels(labels) + "}" if labels else ""
            lines.append(f"{name}{label_text} {_number(value)}")
    return ("\n".join(lines) + "\n").encode()
