"""Small, frozen result objects the gateway returns. Readers never see rows or SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from attrs import field, frozen

Resolution = Literal["raw", "1m", "1h"]


@frozen(kw_only=True)
class IngestResult:
    """What one ``ingest`` call did: rows stored, samples already present, machines new."""

    stored: int
    duplicates: int
    new_machines: list[str] = field(factory=list)


@frozen(kw_only=True)
class MachineRecord:
    """One monitored machine (a host or a container) and its latest flat metrics."""

    key: str
    kind: Literal["host", "container"]
    host_id: str
    hostname: str
    name: str
    image: str | None
    labels: dict[str, str]
    state: str | None
    health: str | None
    restart_count: int | None
    """None when the source does not report it (hosts, legacy Java containers)."""
    first_seen: datetime
    last_seen: datetime
    last_received: datetime | None
    metrics: dict[str, float]


@frozen(kw_only=True)
class Series:
    """Points of one metric: ``(ts_epoch_seconds, avg, min, max)``, oldest first.

    ``bucket_seconds`` is 0 for unbucketed raw points, else the width each point covers.
    """

    resolution: Resolution
    bucket_seconds: float
    points: list[tuple[float, float, float, float]]


@frozen(kw_only=True)
class Checkpoint:
    """What one SQLite WAL checkpoint (``Storage.checkpoint``) did."""

    log_frames: int
    """Frames (pages) in the write-ahead log when it ran."""
    copied_frames: int
    """Of those, the frames now copied into the database file; fewer when a reader still
    needs older pages or a writer committed meanwhile (the next checkpoint copies them)."""
