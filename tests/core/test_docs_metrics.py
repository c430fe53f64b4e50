"""docs/metrics.md documents every schema field and every flat metric."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from srvmon_core import (
    METRICS,
    AgentStats,
    Batch,
    ContainerSample,
    DiskIO,
    DiskUsage,
    HostSample,
    NetIO,
    Temperature,
)
from srvmon_core.view import MachineView

pytestmark = pytest.mark.core

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
SCHEMA_CLASSES = [
    Batch,
    HostSample,
    DiskUsage,
    DiskIO,
    NetIO,
    Temperature,
    ContainerSample,
    AgentStats,
    MachineView,
]


def _sections() -> dict[str, str]:
    """The text under each ``##``/``###`` heading, keyed by heading."""
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^#{2,3} (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _table_names(section: str) -> list[str]:
    """The backticked names in the first column of a section's table."""
    return re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE)


@pytest.mark.parametrize("cls", SCHEMA_CLASSES, ids=lambda c: c.__name__)
def test_every_schema_field_is_documented_in_its_section(cls: type) -> None:
    """Each class has a section whose table lists exactly its fields, in order."""
    sections = _sections()
    assert cls.__name__ in sections, f"docs/metrics.md has no section '## {cls.__name__}'"
    documented = _table_names(sections[cls.__name__])
    assert documented == [a.name for a in cls.__attrs_attrs__]  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["host", "container"])
def test_every_flat_metric_is_documented(kind: str) -> None:
    """The flat metric tables list exactly the names of srvmon_core.metrics.METRICS."""
    heading = f"{kind.capitalize()} metrics (`kind = {kind}`)"
    documented = _table_names(_sections()[heading])
    assert documented == [m.name for m in METRICS if m.kind == kind]


def test_flat_metric_units_match_the_table() -> None:
    """The unit column of each flat metric agrees with Metric.unit."""
    sections = _sections()
    for metric in METRICS:
        section = sections[f"{metric.kind.capitalize()} metrics (`kind = {metric.kind}`)"]
        row = re.search(rf"^\| `{metric.name}` \| ([^|]+) \|", section, flags=re.MULTILINE)
        assert row is not None, metric.name
        assert row.group(1).strip() == metric.unit, metric.name
