"""A stored batch as the original's compact document, for ``WebSocket /ws/metrics``. Pure.

The shape is the Java collector's document (docs/wire-format.md), written compactly (no
spaces), which the original back end relayed to its front end:

    {"type":"host","hostId":…,"name":…,"timeStamp":"2024-03-01T12:00:05",
     "cpuUsagePercent":…,"memoryUsedBytes":…,"diskReadBytesDelta":…,"diskWriteBytesDelta":…,
     "networkDelta":{"eth0_1":{"rxBytesDelta":…,"txBytesDelta":…}},"temperatures":{…},
     "containers":{"<docker id>":{"name":…,"cpuUsagePercent":…,"memoryUsedBytes":…,
       "diskReadBytesDelta":…,"diskWriteBytesDelta":…,"networkDelta":{…}}}}

Rates go back to per-loop deltas (rate times the batch's ``interval_seconds``, rounded to whole
bytes), ``timeStamp`` is local time in the legacy zone, network keys get a line index
again (``<interface>_<position>``). srvmon keeps one network total per container, sent as
the single entry ``total_0``. A figure srvmon does not have is left out, never sent as 0.
"""

from __future__ import annotations

import json
from datetime import tzinfo
from typing import Any

from srvmon_core.schema import Batch, ContainerSample, HostSample
from srvmon_server.legacy.java import local_time

_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _delta(rate: float | None, interval_seconds: float) -> int | None:
    return None if rate is None else round(rate * interval_seconds)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def _pair(rx: float | None, tx: float | None, interval_seconds: float) -> dict[str, int]:
    pair: dict[str, int] = {}
    _put(pair, "rxBytesDelta", _delta(rx, interval_seconds))
    _put(pair, "txBytesDelta", _delta(tx, interval_seconds))
    return pair


def _host(out: dict[str, Any], host: HostSample, interval_seconds: float) -> None:
    skipped = frozenset(host.not_collected)
    if "cpu_percent" not in skipped:
        out["cpuUsagePercent"] = host.cpu_percent
    if "memory_used_bytes" not in skipped:
        out["memoryUsedBytes"] = host.memory_used_bytes
    _put(out, "diskReadBytesDelta", _delta(host.disk_read_bytes_per_s, interval_seconds))
    _put(out, "diskWriteBytesDelta", _delta(host.disk_write_bytes_per_s, interval_seconds))
    out["networkDelta"] = {
        f"{net.interface}_{index}": _pair(net.rx_bytes_per_s, net.tx_bytes_per_s, interval_seconds)
        for index, net in enumerate(host.net)
    }
    out["temperatures"] = {t.sensor: t.celsius for t in host.temperatures}


def _container(sample: ContainerSample, interval_seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"name": sample.name}
    _put(out, "cpuUsagePercent", sample.cpu_percent)
    _put(out, "memoryUsedBytes", sample.memory_working_set_bytes)
    _put(out, "diskReadBytesDelta", _delta(sample.block_read_bytes_per_s, interval_seconds))
    _put(out, "diskWriteBytesDelta", _delta(sample.block_write_bytes_per_s, interval_seconds))
    total = _pair(sample.net_rx_bytes_per_s, sample.net_tx_bytes_per_s, interval_seconds)
    out["networkDelta"] = {"total_0": total} if total else {}
    return out


def compact_document(batch: Batch, tz: tzinfo) -> dict[str, Any]:
    """The batch as the original's document (plain data)."""
    interval = batch.interval_seconds
    out: dict[str, Any] = {
        "type": "host",
        "hostId": batch.host_id,
        "name": batch.hostname,
        "timeStamp": local_time(batch.timestamp, tz),
    }
    if batch.host is not None:
        _host(out, batch.host, interval)
    out["containers"] = {
        c.id: _container(c, interval) for c in batch.containers if c.state == "running"
    }
    return out


def compact_text(batch: Batch, tz: tzinfo) -> str:
    """:func:`compact_document` as compact JSON text (one WebSocket message)."""
    return _COMPACT.encode(compact_document(batch, tz))
