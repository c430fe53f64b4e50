"""Metric samples and the batch envelope that carries them.

Every class is frozen, slotted and keyword-only. Units are in the field names
(``_bytes``, ``_percent``, ``_per_s``, ``_celsius``, ``_seconds``). Rates are per
second; a rate that cannot be computed yet (first sample of a counter, or a counter
that went backwards) is ``None``, never 0 and never negative.

docs/metrics.md describes every field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from attrs import field, fields, frozen

SCHEMA_VERSION = 1
"""Version of the wire envelope. Bumped only for incompatible changes."""

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"

HOST_ID_MAX = 128
"""Longest host id (characters)."""
CONTAINER_NAME_MAX = 126
"""Longest container name (characters)."""
KEY_MAX = HOST_ID_MAX + 1 + CONTAINER_NAME_MAX
"""Longest machine key: 255, the width of the server's key columns (MySQL VARCHAR(255))."""
HOSTNAME_MAX = 255
"""Longest hostname (a DNS name has at most 253)."""
IMAGE_MAX = 512
STATE_MAX = 32
"""Longest container ``state`` and ``health`` word (Docker's are at most 10)."""
CONTAINER_ID_MAX = 128
LABELS_MAX = 128
"""Most labels one container may carry."""
LABEL_KEY_MAX = 255
LABEL_VALUE_MAX = 4096
LABELS_JSON_MAX = 16_384
"""Most bytes a container's label set may take as compact JSON (as the server stores it)."""

_ID_CHARS = "[A-Za-z0-9][A-Za-z0-9._-]"
HOST_ID_PATTERN = re.compile(rf"{_ID_CHARS}{{0,{HOST_ID_MAX - 1}}}")
"""A host id: letters, digits, ``.``, ``_``, ``-``, starting with a letter or digit; no
``:``, so a container key ``<host id>:<name>`` never reads as another host's id."""
CONTAINER_NAME_PATTERN = re.compile(rf"{_ID_CHARS}{{0,{CONTAINER_NAME_MAX - 1}}}")
"""A container name, as Docker allows them (``[a-zA-Z0-9][a-zA-Z0-9_.-]*``)."""


class FieldValueError(ValueError):
    """A field failed validation. ``field`` names it and ``reason`` says why.

    A ``ValueError``, so callers constructing samples directly can keep catching that;
    the codec uses ``field`` to build the error path (``$.containers[3].cpu_percent``).
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


def _finite_non_negative(_inst: object, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0:
        raise FieldValueError(attribute.name, f"must be a finite number >= 0, got {value!r}")


def _finite(_inst: object, attribute: Any, value: Any) -> None:
    if value is not None and not math.isfinite(value):
        raise FieldValueError(attribute.name, f"must be a finite number, got {value!r}")


def _aware(_inst: object, attribute: Any, value: Any) -> None:
    if value is not None and value.utcoffset() is None:
        raise FieldValueError(attribute.name, "must carry a time zone (UTC)")


def host_id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid host id, or None."""
    if HOST_ID_PATTERN.fullmatch(value):
        return None
    if not value:
        return "must not be empty"
    if len(value) > HOST_ID_MAX:
        return f"must be at most {HOST_ID_MAX} characters, got {len(value)}"
    return (
        "must be letters, digits, '.', '_' or '-', starting with a letter or digit"
        f" (no ':'), got {_shown(value)}"
    )


def container_name_problem(value: str) -> str | None:
    """Why ``value`` is not a valid container name, or None."""
    if CONTAINER_NAME_PATTERN.fullmatch(value):
        return None
    if not value:
        return "must not be empty"
    if len(value) > CONTAINER_NAME_MAX:
        return f"must be at most {CONTAINER_NAME_MAX} characters, got {len(value)}"
    return (
        "must be letters, digits, '.', '_' or '-', starting with a letter or digit"
        f" (as Docker names are), got {_shown(value)}"
    )


_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def _derived_id(value: str, limit: int) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()[:12]
    stem = _NOT_ID_CHARS.sub("_", value).lstrip("._-")[: limit - len(digest) - 2]
    return f"{stem or 'x'}--{digest}"


def host_id_for(value: str) -> str:
    """A valid host id for ``value``: itself when valid, else one derived from it (each
    disallowed character becomes ``_``, then ``--`` and 12 hex digits of its SHA-256, so
    distinct values stay distinct). For sources whose ids srvmon does not choose (legacy
    Java documents) and for stored ids from before validation."""
    if host_id_problem(value) is None:
        return value
    return _derived_id(value, HOST_ID_MAX)


def container_name_for(value: str) -> str:
    """A valid container name for ``value`` (a leading ``/``, as the Docker API writes
    names, is dropped first); like :func:`host_id_for` otherwise."""
    name = value[1:] if value.startswith("/") else value
    if container_name_problem(name) is None:
        return name
    return _derived_id(value, CONTAINER_NAME_MAX)


def text_problem(value: str, limit: int, *, empty: bool = True) -> str | None:
    """Why ``value`` is not printable text of at most ``limit`` characters, or None."""
    if not value and not empty:
        return "must not be empty"
    if len(value) > limit:
        return f"must be at most {limit} characters, got {len(value)}"
    if not value.isprintable():
        return "must not contain control or line-separator characters"
    return None


def labels_problem(labels: dict[str, str]) -> str | None:
    """Why a container's label set breaks the limits (count, key and value length, JSON
    size), or None."""
    if not labels:
        return None
    if len(labels) > LABELS_MAX:
        return f"must have at most {LABELS_MAX} labels, got {len(labels)}"
    keys = list(map(len, labels))
    values = list(map(len, labels.values()))
    if (  # the common case, checked in C: every limit holds, no JSON size to compute
        min(keys) > 0
        and max(keys) <= LABEL_KEY_MAX
        and max(values) <= LABEL_VALUE_MAX
        and (sum(keys) + sum(values) + 6 * len(keys)) * 12 <= LABELS_JSON_MAX
    ):
        return None
    chars = 0
    for key, value in labels.items():
        if not key or len(key) > LABEL_KEY_MAX:
            return f"label keys must be 1 to {LABEL_KEY_MAX} characters, got {len(key)}"
        if len(value) > LABEL_VALUE_MAX:
            return f"label {_shown(key)} is longer than {LABEL_VALUE_MAX} characters"
        chars += len(key) + len(value) + 6
    # \uXXXX escapes take at most 12 bytes per character: only a large set needs the JSON
    if chars * 12 > LABELS_JSON_MAX:
        size = len(json.dumps(labels, sort_keys=True))
        if size > LABELS_JSON_MAX:
            return f"must take at most {LABELS_JSON_MAX} bytes as JSON, got {size}"
    return None


def fit_labels(labels: dict[str, str]) -> dict[str, str]:
    """The labels within the limits: over-long keys and values left out; in sorted key
    order, a label that would pass the JSON size is left out, and none after the count.
    For collectors, whose Docker labels are not theirs to choose."""
    kept: dict[str, str] = {}
    size = 2
    for key in sorted(labels):
        value = labels[key]
        if not key or len(key) > LABEL_KEY_MAX or len(value) > LABEL_VALUE_MAX:
            continue
        entry = len(json.dumps({key: value}))  # '"k": "v"' plus room for ", "
        if len(kept) >= LABELS_MAX:
            break
        if size + entry > LABELS_JSON_MAX:
            continue
        kept[key] = value
        size += entry
    return kept


def _shown(value: str) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:36] + '..."'


@frozen
class IdRule:
    """A validator: the value must match ``pattern`` (host ids, container names)."""

    pattern: re.Pattern[str]
    problem: Callable[[str], str | None]

    def __call__(self, _inst: object, attribute: Any, value: Any) -> None:
        if self.pattern.fullmatch(value) is None:
            raise FieldValueError(attribute.name, self.problem(value) or "is not valid")


@frozen
class TextRule:
    """A validator: printable text of at most ``limit`` characters (None passes)."""

    limit: int
    empty: bool = True

    def __call__(self, _inst: object, attribute: Any, value: Any) -> None:
        if value is None:
            return
        reason = text_problem(value, self.limit, empty=self.empty)
        if reason is not None:
            raise FieldValueError(attribute.name, reason)


def _labels(_inst: object, attribute: Any, value: Any) -> None:
    reason = labels_problem(value)
    if reason is not None:
        raise FieldValueError(attribute.name, reason)


_host_id = IdRule(HOST_ID_PATTERN, host_id_problem)
_container_name = IdRule(CONTAINER_NAME_PATTERN, container_name_problem)
_hostname = TextRule(HOSTNAME_MAX)
_image = TextRule(IMAGE_MAX)
_state = TextRule(STATE_MAX)
_container_id = TextRule(CONTAINER_ID_MAX, empty=False)


def _host_field_names(_inst: object, attribute: Any, value: Any) -> None:
    if not value:
        return
    known = {a.name for a in fields(HostSample)}
    for name in value:
        if name not in known:
            raise FieldValueError(attribute.name, f"names an unknown HostSample field {name!r}")


_nn = _finite_non_negative


@frozen(kw_only=True)
class DiskUsage:
    """Space on one mounted filesystem."""

    mount: str
    device: str
    fstype: str
    total_bytes: int = field(validator=_nn)
    used_bytes: int = field(validator=_nn)
    used_percent: float = field(validator=_nn)


@frozen(kw_only=True)
class DiskIO:
    """Throughput of one physical block device (partitions, loop and dm devices excluded)."""

    device: str
    read_bytes_per_s: float | None = field(default=None, validator=_nn)
    write_bytes_per_s: float | None = field(default=None, validator=_nn)
    read_ops_per_s: float | None = field(default=None, validator=_nn)
    write_ops_per_s: float | None = field(default=None, validator=_nn)


@frozen(kw_only=True)
class NetIO:
    """Traffic of one network interface in the host's network namespace."""

    interface: str
    rx_bytes_per_s: float | None = field(default=None, validator=_nn)
    tx_bytes_per_s: float | None = field(default=None, validator=_nn)
    rx_errors_per_s: float | None = field(default=None, validator=_nn)
    tx_errors_per_s: float | None = field(default=None, validator=_nn)
    rx_drops_per_s: float | None = field(default=None, validator=_nn)
    tx_drops_per_s: float | None = field(default=None, validator=_nn)


@frozen(kw_only=True)
class Temperature:
    """One temperature sensor reading."""

    sensor: str
    celsius: float = field(validator=_finite)
    high_celsius: float | None = field(default=None, validator=_finite)
    critical_celsius: float | None = field(default=None, validator=_finite)


@frozen(kw_only=True)
class HostSample:
    """One reading of a whole host."""

    cpu_percent: float = field(validator=_nn)
    cpu_per_core_percent: tuple[float, ...] = ()
    cpu_iowait_percent: float | None = field(default=None, validator=_nn)
    cpu_steal_percent: float | None = field(default=None, validator=_nn)
    load_1: float = field(validator=_nn)
    load_5: float = field(validator=_nn)
    load_15: float = field(validator=_nn)
    memory_total_bytes: int = field(validator=_nn)
    memory_used_bytes: int = field(validator=_nn)
    memory_available_bytes: int = field(validator=_nn)
    memory_percent: float = field(validator=_nn)
    swap_total_bytes: int = field(default=0, validator=_nn)
    swap_used_bytes: int = field(default=0, validator=_nn)
    swap_percent: float = field(default=0.0, validator=_nn)
    disks: tuple[DiskUsage, ...] = ()
    disk_io: tuple[DiskIO, ...] = ()
    disk_read_bytes_per_s: float | None = field(default=None, validator=_nn)
    disk_write_bytes_per_s: float | None = field(default=None, validator=_nn)
    disk_read_ops_per_s: float | None = field(default=None, validator=_nn)
    disk_write_ops_per_s: float | None = field(default=None, validator=_nn)
    net: tuple[NetIO, ...] = ()
    temperatures: tuple[Temperature, ...] = ()
    uptime_seconds: float = field(default=0.0, validator=_nn)
    process_count: int = field(default=0, validator=_nn)
    not_collected: tuple[str, ...] = field(default=(), validator=_host_field_names)
    """Fields this host's source does not provide (e.g. a legacy Java collector has no
    load average). Their values are placeholders and are left out of the flat metrics."""

    @property
    def temperature_max_celsius(self) -> float | None:
        """The hottest sensor, or None when the host has no sensors."""
        return max((t.celsius for t in self.temperatures), default=None)

    @property
    def disk_used_percent_max(self) -> float | None:
        """The fullest mount, or None when no mount was read."""
        return max((d.used_percent for d in self.disks), default=None)


@frozen(kw_only=True)
class ContainerSample:
    """One reading of one Docker container. Stopped containers carry no resource figures."""

    id: str = field(validator=_container_id)
    name: str = field(validator=_container_name)
    """Docker's name (letters, digits, ``.``, ``_``, ``-``; at most 126 characters)."""
    image: str = field(default="", validator=_image)
    labels: dict[str, str] = field(factory=dict, validator=_labels)
    """At most 128 labels, keys up to 255 and values up to 4096 characters, 16 KiB as JSON
    (:func:`fit_labels` trims a set to that)."""
    state: str = field(default="running", validator=_state)
    health: str | None = field(default=None, validator=_state)
    restart_count: int | None = field(default=0, validator=_nn)
    """Restarts since the container was created; ``None`` when the source does not report
    it (the legacy Java collector), never a placeholder 0."""
    started_at: datetime | None = field(default=None, validator=_aware)
    finished_at: datetime | None = field(default=None, validator=_aware)
    exit_code: int | None = None
    cpu_percent: float | None = field(default=None, validator=_nn)
    cpu_limit_cores: float | None = field(default=None, validator=_nn)
    cpu_throttled_percent: float | None = field(default=None, validator=_nn)
    cpu_throttled_seconds_per_s: float | None = field(default=None, validator=_nn)
    memory_working_set_bytes: int | None = field(default=None, validator=_nn)
    memory_limit_bytes: int | None = field(default=None, validator=_nn)
    memory_percent: float | None = field(default=None, validator=_nn)
    net_rx_bytes_per_s: float | None = field(default=None, validator=_nn)
    net_tx_bytes_per_s: float | None = field(default=None, validator=_nn)
    block_read_bytes_per_s: float | None = field(default=None, validator=_nn)
    block_write_bytes_per_s: float | None = field(default=None, validator=_nn)
    pids: int | None = field(default=None, validator=_nn)

    @property
    def compose_project(self) -> str | None:
        return self.labels.get(COMPOSE_PROJECT_LABEL)

    @property
    def compose_service(self) -> str | None:
        return self.labels.get(COMPOSE_SERVICE_LABEL)


@frozen(kw_only=True)
class AgentStats:
    """The collector's own figures, so operators can see the monitor's cost and health."""

    collect_seconds: float = field(default=0.0, validator=_nn)
    queue_depth: int = field(default=0, validator=_nn)
    dropped_batches: int = field(default=0, validator=_nn)
    delivery_errors: int = field(default=0, validator=_nn)
    container_source: str = "cgroup"
    """Where container figures came from: ``cgroup``, ``docker-api`` (fallback), ``none``."""


@frozen(kw_only=True)
class Batch:
    """The envelope: everything one collector read of one host at one instant."""

    schema_version: int = SCHEMA_VERSION
    host_id: str = field(validator=_host_id)
    """Letters, digits, ``.``, ``_``, ``-`` (no ``:``); at most 128 characters."""
    hostname: str = field(validator=_hostname)
    timestamp: datetime = field(validator=_aware)
    interval_seconds: float = field(default=1.0, validator=_nn)
    host: HostSample | None = None
    containers: tuple[ContainerSample, ...] = ()
    agent: AgentStats = field(factory=AgentStats)


def host_key(host_id: str) -> str:
    """The machine key of a host: its stable host id."""
    return host_id


def container_key(host_id: str, container_name: str) -> str:
    """The machine key of a container: ``<host_id>:<name>``.

    Keyed by name, not by container id, so a re-created container keeps its history
    and its alerts. A host id never contains ``:`` (``Batch`` validates it), so the part
    before the first ``:`` is always the host id and no host's key equals a container's.
    """
    return f"{host_id}:{container_name}"
