"""The original over- and under-limits, read from and written to srvmon's fleet-wide rules.

Pure: rules in, rules out. The original kept seven limits per side, each a string such as
``"85.0"``, compared with every machine's figure of that name. Each maps onto srvmon's
*fleet-wide* threshold rule of the same metric (a rule whose selector names no machine,
host or label: specificity 0), one per machine kind the metric exists for; over-limits are
``above`` rules, under-limits ``below`` rules. The limit is the rule's ``warn`` level.
Per-machine overrides are never read or written.

The original's ``...Delta`` limits count bytes per collection loop; srvmon's rules compare
per-second rates. A limit of D bytes per loop is a rule of D / interval bytes/s, and a rule
of R bytes/s reads back as R * interval (``LegacyConfig.interval_seconds``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
from attrs import frozen

from srvmon_core.errors import ConfigError
from srvmon_core.rules import Rule, Selector
from srvmon_server.legacy.java import java_double, per_loop

Side = Literal["over", "under"]
FIELDS = (
    "cpuPercent",
    "memoryUsage",
    "diskReadDelta",
    "diskWriteDelta",
    "networkRx",
    "networkTx",
    "temperature",
)
DIRECTION: dict[Side, Literal["above", "below"]] = {"over": "above", "under": "below"}


@frozen
class Target:
    """One srvmon metric that a legacy field maps onto, for one machine kind."""

    kind: Literal["host", "container"]
    metric: str
    per_loop: bool
    """A delta per collection loop in the original, a per-second rate in srvmon."""


TARGETS: dict[str, tuple[Target, ...]] = {
    "cpuPercent": (Target("host", "cpu_percent", False), Target("container", "cpu_percent", False)),
    "memoryUsage": (
        Target("host", "memory_used_bytes", False),
        Target("container", "memory_working_set_bytes", False),
    ),
    "diskReadDelta": (
        Target("host", "disk_read_bytes_per_s", True),
        Target("container", "block_read_bytes_per_s", True),
    ),
    "diskWriteDelta": (
        Target("host", "disk_write_bytes_per_s", True),
        Target("container", "block_write_bytes_per_s", True),
    ),
    "networkRx": (
        Target("host", "net_rx_bytes_per_s", True),
        Target("container", "net_rx_bytes_per_s", True),
    ),
    "networkTx": (
        Target("host", "net_tx_bytes_per_s", True),
        Target("container", "net_tx_bytes_per_s", True),
    ),
    "temperature": (Target("host", "temperature_max_celsius", False),),
}
"""Every field, and the rules it reads (the first one found) and writes (all of them)."""


class InvalidLimits(ConfigError):
    """A posted body the original would have refused (or answered 500). A ``ConfigError``:
    the handlers answer it 400 ``invalid_body`` with its ``path`` (``$.cpuPercent``)."""


def fleet_rule(rules: Sequence[Rule], target: Target, side: Side) -> Rule | None:
    """The fleet-wide threshold rule for ``target`` on one side, or None."""
    for rule in rules:
        if (
            rule.kind == "threshold"
            and rule.metric == target.metric
            and rule.direction == DIRECTION[side]
            and rule.selector.specificity == 0
            and rule.selector.kind in (target.kind, "any")
        ):
            return rule
    return None


def _limit(rule: Rule) -> float | None:
    return rule.warn if rule.warn is not None else rule.crit


def limits(rules: Sequence[Rule], side: Side, interval_seconds: float) -> dict[str, str | None]:
    """The seven limits as the original's GET answered them: strings, None where no
    enabled fleet-wide rule sets one."""
    out: dict[str, str | None] = {}
    for name in FIELDS:
        out[name] = None
        for target in TARGETS[name]:
            rule = fleet_rule(rules, target, side)
            if rule is None or not rule.enabled:
                continue
            value = _limit(rule)
            if value is None:
                continue
            out[name] = java_double(per_loop(value, interval_seconds) if target.per_loop else value)
            break
    return out


def parse_limits(body: Any) -> dict[str, float]:
    """The seven posted limits as numbers; InvalidLimits names a missing or non-numeric one.

    Values are strings as the original sent them (``"85.0"``); JSON numbers are taken too.
    """
    if not isinstance(body, Mapping):
        raise InvalidLimits("the body must be a JSON object with the seven limits", "$")
    values: dict[str, float] = {}
    for name in FIELDS:
        raw = body.get(name)
        where = f"$.{name}"
        if raw is None:
            raise InvalidLimits('is required (a number as a string, e.g. "85.0")', where)
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise InvalidLimits(f"must be a number as a string, got {type(raw).__name__}", where)
        try:
            number = float(raw.strip() if isinstance(raw, str) else raw)
        except (ValueError, OverflowError):
            number = math.nan
        if not math.isfinite(number):
            raise InvalidLimits(f'must be a finite number, e.g. "85.0", got {raw!r}', where)
        values[name] = number
    return values


def conflicts(
    side: Side, posted: Mapping[str, float], other: Mapping[str, str | None]
) -> list[str]:
    """Fields whose posted limit breaks over >= under against the other side's limit."""
    out = []
    for name in FIELDS:
        theirs = other.get(name)
        if theirs is None:
            continue
        mine, opposite = posted[name], float(theirs)
        if (side == "over" and mine < opposite) or (side == "under" and mine > opposite):
            out.append(name)
    return out


def conflict_message(side: Side, names: Sequence[str]) -> str:
    """The ``error`` text of a refused POST (docs/migration.md shows both forms)."""
    listed = ", ".join(names)
    if side == "over":
        return f"over-thresholds must be greater than or equal to under-thresholds: {listed}"
    return f"under-thresholds must be less than or equal to over-thresholds: {listed}"


def _with_limit(rule: Rule, limit: float) -> Rule:
    """``rule`` with ``warn`` set to ``limit``; levels that would contradict it move to it
    (a warn recovery beyond it, a critical level short of it), the rest stays."""
    sign = 1.0 if rule.direction == "above" else -1.0
    changes: dict[str, Any] = {"warn": limit, "enabled": True}
    if rule.warn_recovery is not None and sign * rule.warn_recovery > sign * limit:
        changes["warn_recovery"] = limit
    if rule.crit is not None and sign * rule.crit < sign * limit:
        changes["crit"] = limit
        if rule.crit_recovery is not None and sign * rule.crit_recovery > sign * limit:
            changes["crit_recovery"] = limit
    return attrs.evolve(rule, **changes)


def rule_id(side: Side, target: Target) -> str:
    """The id of a fleet-wide rule the legacy API had to create."""
    return f"legacy.{side}.{target.kind}.{target.metric}"


def apply_limits(
    rules: Sequence[Rule], side: Side, posted: Mapping[str, float], interval_seconds: float
) -> list[Rule]:
    """The fleet-wide rules to store so that they hold the posted limits: changed existing
    ones, and new ones where none existed. Raises InvalidLimits for a limit no valid rule
    can hold."""
    out: dict[str, Rule] = {}
    for name in FIELDS:
        for target in TARGETS[name]:
            limit = posted[name] / interval_seconds if target.per_loop else posted[name]
            rule = fleet_rule(rules, target, side)
            try:
                if rule is None:
                    rule = Rule(
                        id=rule_id(side, target),
                        name=f"{name} {side}-threshold ({target.kind}s)",
                        selector=Selector(kind=target.kind),
                        metric=target.metric,
                        direction=DIRECTION[side],
                        warn=limit,
                    )
                else:
                    rule = _with_limit(out.get(rule.id, rule), limit)
            except ConfigError as exc:
                message = f"cannot be held by a rule: {exc.message}"
                raise InvalidLimits(message, f"$.{name}") from None
            out[rule.id] = rule
    return list(out.values())
