"""Parsers for the few /proc and /sys files the collector reads itself.

Each function takes the path (under a caller-chosen root), so tests point them at fixture
trees and a containerised collector at the host's ``/host/proc``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from attrs import frozen

SECTOR_BYTES = 512
"""/proc/diskstats counts 512-byte sectors whatever the device's real sector size."""

VIRTUAL_BLOCK_PREFIXES = ("loop", "ram", "dm-", "zram")


@frozen(kw_only=True)
class NetCounters:
    rx_bytes: int
    tx_bytes: int
    rx_errors: int
    tx_errors: int
    rx_drops: int
    tx_drops: int


@frozen(kw_only=True)
class DiskCounters:
    read_bytes: int
    write_bytes: int
    read_ops: int
    write_ops: int


def _read(path: str | Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def read_net_dev(path: str | Path) -> dict[str, NetCounters] | None:
    """Counters per interface from a ``net/dev`` file; None when it cannot be read."""
    text = _read(path)
    if text is None:
        return None
    out: dict[str, NetCounters] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        values = rest.split()
        if len(values) < 16:
            continue
        n = [int(v) for v in values[:16]]
        out[name.strip()] = NetCounters(
            rx_bytes=n[0],
            rx_errors=n[2],
            rx_drops=n[3],
            tx_bytes=n[8],
            tx_errors=n[10],
            tx_drops=n[11],
        )
    return out


def is_physical_block_device(sys_root: Path, name: str) -> bool:
    """A whole, real disk: listed in ``<sys>/block`` (partitions are not) and not virtual."""
    if name.startswith(VIRTUAL_BLOCK_PREFIXES):
        return False
    # os.path on a plain string: this runs for every diskstats line every interval, and
    # building Path objects cost more than the check.
    return os.path.exists(f"{sys_root}/block/{name.replace('/', '!')}")


def read_diskstats(proc_root: Path, sys_root: Path) -> dict[str, DiskCounters]:
    """Counters of physical whole disks from ``<proc>/diskstats``."""
    text = _read(f"{proc_root}/diskstats")
    out: dict[str, DiskCounters] = {}
    if text is None:
        return out
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        name = fields[2]
        if not is_physical_block_device(sys_root, name):
            continue
        out[name] = DiskCounters(
            read_ops=int(fields[3]),
            read_bytes=int(fields[5]) * SECTOR_BYTES,
            write_ops=int(fields[7]),
            write_bytes=int(fields[9]) * SECTOR_BYTES,
        )
    return out


def read_loadavg(proc_root: Path) -> tuple[float, float, float]:
    text = _read(f"{proc_root}/loadavg") or "0 0 0"
    one, five, fifteen = (float(v) for v in text.split()[:3])
    return one, five, fifteen


def read_uptime(proc_root: Path) -> float:
    text = _read(f"{proc_root}/uptime") or "0"
    return float(text.split()[0])


def count_processes(proc_root: Path) -> int:
    try:
        return sum(map(str.isdigit, os.listdir(proc_root)))
    except OSError:
        return 0


PSEUDO_FILESYSTEMS = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fuse.lxcfs",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "squashfs",
        "sysfs",
        "tmpfs",
        "tracefs",
    }
)


@frozen(kw_only=True)
class Mount:
    device: str
    mount: str
    fstype: str


def _unescape(path: str) -> str:
    """/proc/*/mounts escapes space, tab, newline and backslash as octal."""
    if "\\" not in path:
        return path
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def read_real_mounts(path: str | Path) -> list[Mount]:
    """Mounts of real filesystems (pseudo ones skipped), first mount of each device only."""
    text = _read(path)
    return [] if text is None else list(_parse_real_mounts(text))


@functools.lru_cache(maxsize=1)
def _parse_real_mounts(text: str) -> tuple[Mount, ...]:
    """Parsed once per distinct mount table: it is read every interval and rarely changes."""
    out: list[Mount] = []
    seen: set[str] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        device, mount, fstype = _unescape(fields[0]), _unescape(fields[1]), fields[2]
        if fstype in PSEUDO_FILESYSTEMS or device in seen:
            continue
        seen.add(device)
        out.append(Mount(device=device, mount=mount, fstype=fstype))
    return tuple(out)


@frozen(kw_only=True)
class HwmonReading:
    sensor: str
    celsius: float
    high_celsius: float | None
    critical_celsius: float | None


def _millidegrees(path: Path) -> float | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.strip()) / 1000.0
    except ValueError:
        return None


def read_hwmon(sys_root: Path) -> list[HwmonReading]:
    """Temperatures from ``<sys>/class/hwmon/hwmon*/temp*_input``."""
    base = sys_root / "class" / "hwmon"
    out: list[HwmonReading] = []
    try:
        chips = sorted(base.iterdir())
    except OSError:
        return out
    for chip in chips:
        chip_name = (_read(chip / "name") or chip.name).strip()
        for sensor_input in sorted(chip.glob("temp*_input")):
            prefix = sensor_input.name.removesuffix("_input")
            celsius = _millidegrees(sensor_input)
            if celsius is None:
                continue
            label = (_read(chip / f"{prefix}_label") or prefix).strip()
            out.append(
                HwmonReading(
                    sensor=f"{chip_name}/{label}",
                    celsius=celsius,
                    high_celsius=_millidegrees(chip / f"{prefix}_max"),
                    critical_celsius=_millidegrees(chip / f"{prefix}_crit"),
                )
            )
    return out
