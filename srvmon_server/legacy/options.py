"""The ``--legacy-*`` options of ``srvmon server``, folded into one ``legacy`` argument.

``@legacy_options`` adds the options to a click command and hands the command function a
single ``legacy: LegacyConfig`` keyword instead of the four values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from srvmon_server.legacy.config import LegacyConfig, parse_networks, parse_zone

_NAMES = (
    "legacy_api",
    "legacy_tokenless_networks",
    "legacy_timezone",
    "legacy_interval_seconds",
)

_OPTIONS = (
    click.option(
        "--legacy-api/--no-legacy-api",
        envvar="SRVMON_LEGACY_API",
        default=False,
        show_default=True,
        help="serve the original Java back end's routes (/api/metrics..., /api/inventory/list, "
        "/ws/metrics; docs/migration.md)",
    ),
    click.option(
        "--legacy-tokenless-networks",
        envvar="SRVMON_LEGACY_TOKENLESS_NETWORKS",
        default="",
        help="CIDRs (comma-separated) whose hosts may POST /api/metrics without a token, "
        "as the original consumer does; everyone else needs the write token",
    ),
    click.option(
        "--legacy-timezone",
        envvar="SRVMON_LEGACY_TZ",
        default="UTC",
        show_default=True,
        help="time zone of the Java documents' local timestamps (read on ingest, written in "
        "the legacy alerts, history and WebSocket documents)",
    ),
    click.option(
        "--legacy-interval-seconds",
        envvar="SRVMON_LEGACY_INTERVAL",
        type=click.FloatRange(min=0, min_open=True),
        default=1.0,
        show_default=True,
        help="collection loop of the Java collectors: their per-loop deltas are this many "
        "seconds of srvmon's per-second rates",
    ),
)


def legacy_config(
    *,
    legacy_api: bool,
    legacy_tokenless_networks: str,
    legacy_timezone: str,
    legacy_interval_seconds: float,
) -> LegacyConfig:
    """The options as a LegacyConfig; click.BadParameter names a bad one."""
    try:
        networks = parse_networks(legacy_tokenless_networks)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--legacy-tokenless-networks") from None
    try:
        zone = parse_zone(legacy_timezone)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--legacy-timezone") from None
    return LegacyConfig(
        enabled=legacy_api,
        tokenless_networks=networks,
        tz=zone,
        interval_seconds=legacy_interval_seconds,
    )


def legacy_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the ``--legacy-*`` options; the command receives ``legacy=LegacyConfig(...)``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _NAMES}
        return command(*args, legacy=legacy_config(**values), **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper
