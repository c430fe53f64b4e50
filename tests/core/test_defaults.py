"""The default rule set behaves as documented, and docs/alerts.md cannot drift from the code."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from srvmon_core.defaults import DEFAULT_RULES
from srvmon_core.engine import ActiveAlert, AlertEvent
from srvmon_core.rules import Rule, Selector, load_rules
from srvmon_core.schema import Batch, ContainerSample, HostSample
from srvmon_core.series import evaluate_series
from srvmon_core.transitions import render_markdown, render_mermaid

pytestmark = pytest.mark.core

DOC = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_docs_contain_the_rendered_transition_table_and_diagram() -> None:
    """docs/alerts.md includes the table and mermaid diagram rendered from TRANSITIONS."""
    assert render_markdown() in DOC
    assert render_mermaid() in DOC


@pytest.mark.parametrize("cls", [Rule, Selector, AlertEvent, ActiveAlert])
def test_every_field_is_documented(cls: type) -> None:
    """Every rule, selector, event and active-alert field appears in docs/alerts.md."""
    names = [a.name for a in cls.__attrs_attrs__]  # type: ignore[attr-defined]
    missing = [name for name in names if f"`{name}`" not in DOC]
    assert missing == []


def test_every_default_rule_is_documented_with_its_values() -> None:
    """Each default rule has a row in the defaults table naming its thresholds."""
    for rule in DEFAULT_RULES:
        row = next(line for line in DOC.splitlines() if line.startswith(f"| `{rule.id}` |"))
        for value in (rule.warn, rule.crit, rule.silent_seconds, rule.hold_seconds):
            if value is not None:
                assert f"{value:g}" in row, (rule.id, value)


def test_doc_examples_parse() -> None:
    """The TOML and JSON examples in docs/alerts.md are valid rule files."""
    toml = re.findall(r"```toml\n(.*?)```", DOC, re.S)
    json_blocks = re.findall(r"```json\n(.*?)```", DOC, re.S)
    assert len(toml) == 1 and len(json_blocks) == 1
    assert [r.id for r in load_rules(toml[0], "toml")] == [
        "web-cpu",
        "build-cpu-off",
        "shop-stopped",
    ]
    assert [r.id for r in load_rules(json_blocks[0], "json")] == [
        "db-free-memory",
        "quiet-containers",
    ]


def test_default_ids_are_unique() -> None:
    """Default rule ids are unique, so fingerprints never collide."""
    assert len({r.id for r in DEFAULT_RULES}) == len(DEFAULT_RULES)


def host_batch(second: float, cpu: float, containers: tuple[ContainerSample, ...] = ()) -> Batch:
    return Batch(
        host_id="h1",
        hostname="h1",
        timestamp=T0 + timedelta(seconds=second),
        host=HostSample(
            cpu_percent=cpu,
            load_1=0,
            load_5=0,
            load_15=0,
            memory_total_bytes=1,
            memory_used_bytes=0,
            memory_available_bytes=1,
            memory_percent=40.0,
        ),
        containers=containers,
    )


def test_default_cpu_rule_needs_a_sustained_minute() -> None:
    """Defaults: a 20 s CPU spike is ignored; 100 % held pends at once and fires after 60 s."""
    spike = [host_batch(s, 100.0 if s < 20 else 10.0) for s in range(120)]
    assert [(e.kind, e.rule_id) for e in evaluate_series(DEFAULT_RULES, spike)] == [
        ("pending", "default.host.cpu"),
        ("cancelled", "default.host.cpu"),
    ]
    held = [host_batch(s, 100.0) for s in range(70)]
    events = [
        (int((e.at - T0).total_seconds()), e.kind, e.level)
        for e in evaluate_series(DEFAULT_RULES, held)
    ]
    assert events == [(0, "pending", "critical"), (60, "firing", "critical")]


def test_default_container_rules() -> None:
    """Defaults: a crash (restart count up) warns; a container down for 15 s pages."""
    up = ContainerSample(id="c", name="api", restart_count=0)
    batches = [
        host_batch(0, 5, (up,)),
        host_batch(1, 5, (ContainerSample(id="c", name="api", restart_count=1),)),
    ]
    down = ContainerSample(id="c", name="api", restart_count=1, state="exited", exit_code=1)
    batches += [host_batch(s, 5, (down,)) for s in range(2, 20)]
    events = [
        (int((e.at - T0).total_seconds()), e.kind, e.rule_id, e.level)
        for e in evaluate_series(DEFAULT_RULES, batches)
    ]
    assert events == [
        (1, "firing", "default.container.restarted", "warning"),
        (2, "pending", "default.container.stopped", "critical"),
        (17, "firing", "default.container.stopped", "critical"),
    ]
