"""The legacy Java collector document, converted into a srvmon Batch.

The original system's collector sent one JSON object per host and collection loop, with
its numbers as Java wrote them (Gson/Jackson turn ``long`` byte counts into doubles)::

    {"type": "host", "hostId": "...", "name": "...", "timeStamp": "2024-03-01T12:00:05",
     "cpuUsagePercent": 12.5, "memoryUsedBytes": 1.551929344E10, "diskReadBytesDelta": 4096.0,
     "diskWriteBytesDelta": 0, "networkDelta": {"eth0_1": {"rxBytesDelta": 1, "txBytesDelta": 2}},
     "temperatures": {"cpu": 51.0},
     "containers": {"<id>": {"name": "/web", "cpuUsagePercent": 3.0, ...}}}

* Byte counts and deltas are whole numbers: a JSON integer or a double with an integral
  value (``4096.0``, ``1.551929344E10``). A fraction, NaN, Infinity or a wrong type is refused
  with the field path and what was expected.
* ``timeStamp`` is a local time without a zone; ``tz`` names the zone (default UTC).
  A timestamp that does carry an offset keeps it.
* ``...Delta`` figures count bytes since the previous loop; they become per-second rates
  by dividing by ``interval_seconds`` (default 1.0, the Java collector's loop period).
  A negative delta (a counter reset in the Java loop) becomes an absent rate.
* Network keys are the interface name plus the line index (``eth0_1``); the suffix is cut.
* Container names keep Docker's leading ``/`` (``/mysql-db``); it is cut as srvmon's
  collector does, so a container keeps one history across a migration.

``hostId`` and container names are the Java system's, not srvmon's to choose: one that is
not a valid srvmon id (docs/wire-format.md, "Ids and names") is mapped to a stable valid
one by ``schema.host_id_for`` / ``container_name_for`` instead of being refused, so such a
host keeps reporting, under a key no other machine can take.

What the document does not carry stays absent: the host has no load average, memory
total or swap (``HostSample.not_collected`` lists them, so they are left out of the flat
metrics and the alert engine), and containers have no restart count (``None``).
docs/wire-format.md has the full mapping table. Malformed documents raise DecodeError
whose path uses the legacy field names, e.g. ``$.containers["a1b2"].cpuUsagePercent``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, tzinfo
from typing import Any

from srvmon_core.codec import NonFiniteLiteral, describe
from srvmon_core.errors import ConfigError, DecodeError
from srvmon_core.schema import (
    CONTAINER_ID_MAX,
    HOSTNAME_MAX,
    AgentStats,
    Batch,
    ContainerSample,
    FieldValueError,
    HostSample,
    NetIO,
    Temperature,
    container_name_for,
    host_id_for,
    text_problem,
)

LEGACY_CONTAINER_SOURCE = "legacy-java"
"""``AgentStats.container_source`` of batches converted from a legacy document."""

LEGACY_NOT_COLLECTED: tuple[str, ...] = (
    "load_1",
    "load_5",
    "load_15",
    "memory_total_bytes",
    "memory_available_bytes",
    "memory_percent",
    "swap_total_bytes",
    "swap_used_bytes",
    "swap_percent",
    "uptime_seconds",
    "process_count",
)
"""HostSample fields a legacy document cannot fill; they hold 0 and are flagged absent."""

_INT_MAX = 2**63 - 1


def is_legacy_document(data: Any) -> bool:
    """True for a parsed legacy Java document: an object with ``hostId`` but no ``host_id``."""
    return type(data) is dict and "hostId" in data and "host_id" not in data


def _key_path(path: str, key: str) -> str:
    """The path of a fixed document field, e.g. ``$.cpuUsagePercent``."""
    return f"{path}.{key}"


def _map_path(path: str, key: str) -> str:
    """The path of an entry in a map keyed by data, e.g. ``$.containers["a1b2"]``."""
    return f"{path}[{json.dumps(key)}]"


def _required(doc: dict[str, Any], key: str, path: str) -> Any:
    if key not in doc:
        raise DecodeError("is required but missing", _key_path(path, key))
    return doc[key]


def _string(doc: dict[str, Any], key: str, path: str) -> str:
    value = _required(doc, key, path)
    if type(value) is not str or not value:
        raise DecodeError(
            f"must be a non-empty string, got {describe(value)}", _key_path(path, key)
        )
    return value


def _valid(problem: str | None, path: str) -> None:
    """Raise DecodeError at ``path`` when a schema check found a problem."""
    if problem is not None:
        raise DecodeError(problem, path)


def _finite(value: Any, path: str, expected: str) -> float:
    """A JSON number as a finite float; NaN/Infinity literals and other types refused."""
    if isinstance(value, NonFiniteLiteral):
        raise DecodeError(f"must be {expected}, got {value.literal}", path)
    if type(value) not in (int, float):
        raise DecodeError(f"must be {expected}, got {describe(value)}", path)
    try:
        number = float(value)
    except OverflowError:
        raise DecodeError(f"must be {expected}, got {describe(value)}", path) from None
    if not math.isfinite(number):
        raise DecodeError(f"must be {expected}, got {describe(value)}", path)
    return number


def _number(value: Any, path: str, *, non_negative: bool = True) -> float:
    if non_negative:
        number = _finite(value, path, "a finite number >= 0")
        if number < 0:
            raise DecodeError(f"must be a finite number >= 0, got {describe(value)}", path)
        return number
    return _finite(value, path, "a finite number")


_WHOLE = "a whole number of bytes (an integer, or a double such as 4096.0 or 1.551929344E10)"


def _whole(value: Any, path: str) -> int:
    """A byte count or delta as Java writes it: an integer, or an integral double."""
    if type(value) is int:
        number = value
    else:
        as_float = _finite(value, path, _WHOLE)
        if not as_float.is_integer():
            raise DecodeError(f"must be {_WHOLE}, got {describe(value)}", path)
        number = int(as_float)
    if not -_INT_MAX <= number <= _INT_MAX:
        raise DecodeError(f"must fit in 64 bits, got {describe(value)}", path)
    return number


def _bytes(value: Any, path: str) -> int:
    number = _whole(value, path)
    if number < 0:
        raise DecodeError(f"must be a byte count >= 0, got {describe(value)}", path)
    return number


def _optional_bytes(doc: dict[str, Any], key: str, path: str) -> int | None:
    value = doc.get(key)
    return None if value is None else _bytes(value, _key_path(path, key))


def _optional_percent(doc: dict[str, Any], key: str, path: str) -> float | None:
    value = doc.get(key)
    return None if value is None else _number(value, _key_path(path, key))


def _rate(doc: dict[str, Any], key: str, path: str, interval_seconds: float) -> float | None:
    """A per-loop delta as a per-second rate; absent or negative deltas give None."""
    value = doc.get(key)
    if value is None:
        return None
    delta = _whole(value, _key_path(path, key))
    if delta < 0:
        return None
    return delta / interval_seconds


def _object(doc: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if type(value) is not dict:
        raise DecodeError(f"must be an object, got {describe(value)}", _key_path(path, key))
    return value


def _entry(value: Any, path: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise DecodeError(f"must be an object, got {describe(value)}", path)
    return value


def _timestamp(doc: dict[str, Any], path: str, tz: tzinfo) -> datetime:
    text = _string(doc, "timeStamp", path)
    where = _key_path(path, "timeStamp")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise DecodeError(
            f"must be an ISO 8601 local time like 2024-03-01T12:00:05, got {describe(text)}",
            where,
        ) from None
    if parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=tz)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise DecodeError(f"is out of range, got {describe(text)}", where) from None


_LINE_INDEX = re.compile(r"(.+)_\d+")


def interface_name(key: str) -> str:
    """The interface of a legacy ``networkDelta`` key: ``eth0_1`` (name plus the line index
    of /proc/net/dev) is ``eth0``; a key without such a suffix is taken as it is."""
    match = _LINE_INDEX.fullmatch(key)
    return key if match is None else match.group(1)


def _net(doc: dict[str, Any], path: str, interval_seconds: float) -> list[NetIO]:
    out = []
    net_path = _key_path(path, "networkDelta")
    for key, raw in _object(doc, "networkDelta", path).items():
        where = _map_path(net_path, key)
        entry = _entry(raw, where)
        out.append(
            NetIO(
                interface=interface_name(key),
                rx_bytes_per_s=_rate(entry, "rxBytesDelta", where, interval_seconds),
                tx_bytes_per_s=_rate(entry, "txBytesDelta", where, interval_seconds),
            )
        )
    return out


def _sum_present(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _container(cid: str, raw: Any, path: str, interval_seconds: float) -> ContainerSample:
    entry = _entry(raw, path)
    if not cid:
        raise DecodeError("container id must not be empty", path)
    _valid(text_problem(cid, CONTAINER_ID_MAX), path)
    name = container_name_for(_string(entry, "name", path))
    net = [n for n in _net(entry, path, interval_seconds) if n.interface != "lo"]
    return ContainerSample(
        id=cid,
        name=name,
        state="running",
        restart_count=None,
        cpu_percent=_optional_percent(entry, "cpuUsagePercent", path),
        memory_working_set_bytes=_optional_bytes(entry, "memoryUsedBytes", path),
        block_read_bytes_per_s=_rate(entry, "diskReadBytesDelta", path, interval_seconds),
        block_write_bytes_per_s=_rate(entry, "diskWriteBytesDelta", path, interval_seconds),
        net_rx_bytes_per_s=_sum_present([n.rx_bytes_per_s for n in net]),
        net_tx_bytes_per_s=_sum_present([n.tx_bytes_per_s for n in net]),
    )


def _host(doc: dict[str, Any], interval_seconds: float) -> HostSample:
    temperatures = [
        Temperature(
            sensor=sensor,
            celsius=_number(value, _map_path("$.temperatures", sensor), non_negative=False),
        )
        for sensor, value in _object(doc, "temperatures", "$").items()
    ]
    return HostSample(
        cpu_percent=_number(_required(doc, "cpuUsagePercent", "$"), "$.cpuUsagePercent"),
        load_1=0.0,
        load_5=0.0,
        load_15=0.0,
        memory_total_bytes=0,
        memory_used_bytes=_bytes(_required(doc, "memoryUsedBytes", "$"), "$.memoryUsedBytes"),
        memory_available_bytes=0,
        memory_percent=0.0,
        disk_read_bytes_per_s=_rate(doc, "diskReadBytesDelta", "$", interval_seconds),
        disk_write_bytes_per_s=_rate(doc, "diskWriteBytesDelta", "$", interval_seconds),
        net=tuple(_net(doc, "$", interval_seconds)),
        temperatures=tuple(temperatures),
        not_collected=LEGACY_NOT_COLLECTED,
    )


def batch_from_legacy_dict(data: Any, *, tz: tzinfo = UTC, interval_seconds: float = 1.0) -> Batch:
    """Convert one parsed legacy Java document into a Batch, or raise DecodeError.

    ``tz`` is the zone of the document's zone-less ``timeStamp``; ``interval_seconds`` is
    the Java collection loop period that its ``...Delta`` figures cover.
    """
    if not (isinstance(interval_seconds, int | float) and 0 < interval_seconds < math.inf):
        raise ConfigError(
            f"must be a finite number > 0, got {interval_seconds!r}", "interval_seconds"
        )
    if type(data) is not dict:
        raise DecodeError(f"a legacy document must be a JSON object, got {describe(data)}")
    _string(data, "type", "$")
    host_id = host_id_for(_string(data, "hostId", "$"))
    hostname = _string(data, "name", "$")
    _valid(text_problem(hostname, HOSTNAME_MAX), "$.name")
    timestamp = _timestamp(data, "$", tz)
    try:
        host = _host(data, interval_seconds)
        containers_path = "$.containers"
        containers = tuple(
            _container(cid, raw, _map_path(containers_path, cid), interval_seconds)
            for cid, raw in _object(data, "containers", "$").items()
        )
        return Batch(
            host_id=host_id,
            hostname=hostname,
            timestamp=timestamp,
            interval_seconds=float(interval_seconds),
            host=host,
            containers=containers,
            agent=AgentStats(container_source=LEGACY_CONTAINER_SOURCE),
        )
    except FieldValueError as exc:  # a schema rule the checks above did not name
        raise DecodeError(exc.reason, f"$.{exc.field}") from None
