"""LegacyConfig: the settings of the original Java back end's routes (off by default)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from attrs import field, frozen

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(raw: str | Iterable[str | Network]) -> tuple[Network, ...]:
    """CIDRs separated by commas or spaces (``10.0.0.0/8, 192.168.1.7``); a bare address is
    one host. Raises ValueError naming a bad entry."""
    parts = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw)
    networks: list[Network] = []
    for part in parts:
        if not isinstance(part, str):
            networks.append(part)
            continue
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not a CIDR network such as 10.0.0.0/8") from None
    return tuple(networks)


def parse_zone(name: str) -> tzinfo:
    """An IANA zone name (``Europe/Berlin``) or ``UTC``; raises ValueError when unknown."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _networks(value: str | Iterable[str | Network]) -> tuple[Network, ...]:
    return parse_networks(value)


@frozen(kw_only=True)
class LegacyConfig:
    """``enabled`` serves the routes; ``tokenless_networks`` may POST /api/metrics without
    a token; ``tz`` and ``interval_seconds`` read the Java documents' local timestamps and
    per-loop deltas (and write them back the same way)."""

    enabled: bool = False
    tokenless_networks: tuple[Network, ...] = field(default=(), converter=_networks)
    tz: tzinfo = UTC
    interval_seconds: float = 1.0

    def tokenless(self, address: str | None) -> bool:
        """Whether a request from ``address`` may write /api/metrics without a token."""
        if not address or not self.tokenless_networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.tokenless_networks)
