"""Silences: time windows in which matching alert events are recorded but not notified.

A :class:`Silence` is data like a rule: the engine marks each event it creates
``silenced`` when an active silence matches it (``evaluate_view(..., silences=...)``), so the
flag is part of the event from its creation on. Operators ask for one with a
:class:`SilenceRequest` (structured from the API body by :mod:`srvmon_core.structure`); the
server's storage gives it its ``id`` and creation time.

docs/api.md describes the fields.
"""

from __future__ import annotations

from datetime import datetime
from fnmatch import fnmatchcase
from typing import Protocol

from attrs import field, fields, frozen

from srvmon_core.errors import ConfigError
from srvmon_core.names import names_of, pattern_matches
from srvmon_core.structure import structure


class Silenceable(Protocol):
    """What a matcher reads: an ``AlertEvent`` or an ``ActiveAlert``."""

    @property
    def machine_key(self) -> str: ...
    @property
    def machine_kind(self) -> str: ...
    @property
    def machine_name(self) -> str: ...
    @property
    def hostname(self) -> str: ...
    @property
    def host_id(self) -> str: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def rule_name(self) -> str: ...


MAX_MATCHER_LENGTH = 200


def _glob(_inst: object, attribute: object, value: str | None) -> None:
    if value is not None and not 1 <= len(value) <= MAX_MATCHER_LENGTH:
        name = getattr(attribute, "name", "?")
        raise ConfigError(
            f"a matcher is a glob string of 1 to {MAX_MATCHER_LENGTH} characters", f"$.{name}"
        )


@frozen(kw_only=True)
class SilenceMatchers:
    """Globs an event must all match; at least one is given.

    ``machine`` is a machine name or key, exact or a glob (``vm``, ``web-*``, ``vm/db``;
    :mod:`srvmon_core.names`), ``rule`` globs the rule id or name, ``host`` the host id or
    hostname.
    """

    machine: str | None = field(default=None, validator=_glob)
    rule: str | None = field(default=None, validator=_glob)
    host: str | None = field(default=None, validator=_glob)

    def __attrs_post_init__(self) -> None:
        if self.machine is None and self.rule is None and self.host is None:
            names = ", ".join(a.name for a in fields(SilenceMatchers))
            raise ConfigError(f"give at least one matcher ({names})")

    def match(self, event: Silenceable) -> bool:
        if self.machine is not None:
            names = names_of(
                event.machine_key, event.machine_kind, event.hostname, event.machine_name
            )
            if not pattern_matches(self.machine, names):
                return False
        for pattern, values in (
            (self.rule, (event.rule_id, event.rule_name)),
            (self.host, (event.host_id, event.hostname)),
        ):
            if pattern is not None and not any(fnmatchcase(v, pattern) for v in values if v):
                return False
        return True


MAX_COMMENT_LENGTH = 1000


def _comment(_inst: object, _attribute: object, value: str) -> None:
    if len(value) > MAX_COMMENT_LENGTH:
        raise ConfigError(f"must be at most {MAX_COMMENT_LENGTH} characters", "$.comment")


def _after_start(instance: SilenceRequest, _attribute: object, ends: datetime) -> None:
    if instance.starts_at is not None and ends <= instance.starts_at:
        raise ConfigError("ends_at must be after starts_at", "$.ends_at")


@frozen(kw_only=True)
class SilenceRequest:
    """What an operator asks for; ``starts_at`` None means now."""

    matchers: SilenceMatchers
    starts_at: datetime | None = None
    ends_at: datetime = field(validator=_after_start)
    comment: str = field(default="", validator=_comment)


@frozen(kw_only=True)
class Silence:
    """A stored silence. One expired early may end at (or before) its start."""

    id: str
    matchers: SilenceMatchers
    starts_at: datetime
    ends_at: datetime
    comment: str = ""
    created_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, event: Silenceable, now: datetime) -> bool:
        """Active at ``now`` and every matcher globs the event."""
        return self.active(now) and self.matchers.match(event)


def silence_to_dict(silence: Silence) -> dict[str, object]:
    """Plain JSON-ready data (timestamps ISO 8601 with Z; matchers not given left out)."""
    from srvmon_core.alert_state import CONVERTER

    data: dict[str, object] = CONVERTER.unstructure(silence)
    data["matchers"] = {
        name: value
        for name, value in (
            ("machine", silence.matchers.machine),
            ("rule", silence.matchers.rule),
            ("host", silence.matchers.host),
        )
        if value is not None
    }
    return data


def silence_from_dict(data: object) -> Silence:
    """A stored silence back from :func:`silence_to_dict` data; DecodeError on junk."""
    from srvmon_core.alert_state import structure_state

    return structure_state(data, Silence, "$")


def silence_request(data: object) -> SilenceRequest:
    """Structure an API body, raising ConfigError naming the first bad field."""
    return structure(data, SilenceRequest)


def is_silenced(
    silences: tuple[Silence, ...] | list[Silence], event: Silenceable, now: datetime
) -> bool:
    """Whether any of ``silences`` matches ``event`` at ``now``."""
    return any(s.matches(event, now) for s in silences)
