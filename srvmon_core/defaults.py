"""The fleet's default rules. docs/alerts.md explains why each value was chosen.

All selectors name no machine, so any rule an operator writes for a machine, a glob, a
host or a label set overrides the matching default for the machines it selects.
"""

from __future__ import annotations

from srvmon_core.rules import Rule, Selector

_HOSTS = Selector(kind="host")
_CONTAINERS = Selector(kind="container")

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        id="default.host.cpu",
        name="Host CPU busy",
        selector=_HOSTS,
        metric="cpu_percent",
        warn=85.0,
        crit=95.0,
        warn_recovery=80.0,
        crit_recovery=90.0,
        window_seconds=30.0,
        window_agg="avg",
        for_seconds=60.0,
    ),
    Rule(
        id="default.host.memory",
        name="Host memory in use",
        selector=_HOSTS,
        metric="memory_percent",
        warn=85.0,
        crit=95.0,
        warn_recovery=80.0,
        crit_recovery=92.0,
        for_seconds=60.0,
    ),
    Rule(
        id="default.host.disk",
        name="Host disk filling up",
        selector=_HOSTS,
        metric="disk_used_percent_max",
        warn=85.0,
        crit=95.0,
        warn_recovery=83.0,
        crit_recovery=93.0,
        for_seconds=30.0,
    ),
    Rule(
        id="default.host.temperature",
        name="Host running hot",
        selector=_HOSTS,
        metric="temperature_max_celsius",
        warn=80.0,
        crit=90.0,
        warn_recovery=75.0,
        crit_recovery=85.0,
        window_seconds=10.0,
        window_agg="avg",
        for_seconds=30.0,
    ),
    Rule(
        id="default.host.silent",
        name="Host stopped reporting",
        kind="silent",
        selector=_HOSTS,
        silent_seconds=30.0,
        level="critical",
    ),
    Rule(
        id="default.container.unhealthy",
        name="Container unhealthy",
        kind="container_unhealthy",
        selector=_CONTAINERS,
        level="critical",
    ),
    Rule(
        id="default.container.stopped",
        name="Container stopped",
        kind="container_stopped",
        selector=_CONTAINERS,
        for_seconds=15.0,
        level="critical",
    ),
    Rule(
        id="default.container.restarted",
        name="Container restarted",
        kind="container_restarted",
        selector=_CONTAINERS,
        hold_seconds=300.0,
        level="warning",
    ),
)
"""The rules a fresh server starts with."""
