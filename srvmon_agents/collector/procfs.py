"""Parsers for the /proc and /sys files the collector reads, and a kept-open file.

Each parser takes the file's text, so tests feed it fixture content and the collector reads
through a :class:`KeptFile` under a caller-chosen root (``/host/proc`` in a container).
"""

from __future__ import annotations

import os
from pathlib import Path

from attrs import define, frozen

SECTOR_BYTES = 512
"""/proc/diskstats counts 512-byte sectors whatever the device's real sector size."""

VIRTUAL_BLOCK_PREFIXES = ("loop", "ram", "dm-", "zram")

READ_BYTES = 1 << 16


def _read(path: str | Path) -> str | None:
    """A file's whole text, opened for this one read; None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, READ_BYTES):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


@define
class KeptFile:
    """A /proc or /sys file read every interval through one fd that stays open.

    ``pread`` at offset 0 makes the kernel generate the file anew, so each ``text()`` is a
    fresh snapshot without the path lookup, open and close. When the read fails (the
    object behind the file went away) the fd is closed and the path opened again on the next
    call. Files up to 64 KiB are read in one call; a longer one is read to its end.
    """

    path: str
    _fd: int | None = None

    def text(self) -> str | None:
        """The current content; None when the file cannot be opened or read."""
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                return None
        try:
            data = os.pread(self._fd, READ_BYTES, 0)
            if len(data) == READ_BYTES:
                data += self._rest(len(data))
        except OSError:
            self.close()
            return None
        return data.decode("utf-8", "replace")

    def _rest(self, offset: int) -> bytes:
        assert self._fd is not None
        chunks = []
        while chunk := os.pread(self._fd, READ_BYTES, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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


def parse_net_dev(text: str) -> dict[str, NetCounters]:
    """Counters per interface from the text of a ``net/dev`` file."""
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


def read_net_dev(path: str | Path) -> dict[str, NetCounters] | None:
    """Counters per interface from a ``net/dev`` file; None when it cannot be read."""
    text = _read(path)
    return None if text is None else parse_net_dev(text)


def is_physical_block_device(sys_root: Path | str, name: str) -> bool:
    """A whole, real disk: listed in ``<sys>/block`` (partitions are not) and not virtual."""
    if name.startswith(VIRTUAL_BLOCK_PREFIXES):
        return False
    return os.path.exists(f"{sys_root}/block/{name.replace('/', '!')}")


def parse_diskstats(text: str) -> dict[str, DiskCounters]:
    """Counters of every device line of ``/proc/diskstats`` (partitions and virtual ones too)."""
    out: dict[str, DiskCounters] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        out[fields[2]] = DiskCounters(
            read_ops=int(fields[3]),
            read_bytes=int(fields[5]) * SECTOR_BYTES,
            write_ops=int(fields[7]),
            write_bytes=int(fields[9]) * SECTOR_BYTES,
        )
    return out


def parse_loadavg(text: str | None) -> tuple[float, float, float]:
    one, five, fifteen = (float(v) for v in (text or "0 0 0").split()[:3])
    return one, five, fifteen


def parse_uptime(text: str | None) -> float:
    return float((text or "0").split()[0])


def count_processes(proc_root: Path | str) -> int:
    try:
        return sum(map(str.isdigit, os.listdir(proc_root)))
    except OSError:
        return 0


@frozen(kw_only=True)
class MemInfo:
    """The host's memory and swap in bytes, as ``free`` and psutil report them."""

    total: int
    available: int
    swap_total: int
    swap_free: int

    @property
    def used(self) -> int:
        return max(0, self.total - self.available)

    @property
    def percent(self) -> float:
        return self.used / self.total * 100.0 if self.total else 0.0

    @property
    def swap_used(self) -> int:
        return max(0, self.swap_total - self.swap_free)

    @property
    def swap_percent(self) -> float:
        return self.swap_used / self.swap_total * 100.0 if self.swap_total else 0.0


MEMINFO_KEYS = ("MemTotal", "MemAvailable", "SwapTotal", "SwapFree")


def parse_meminfo(text: str) -> dict[str, int]:
    """The ``MEMINFO_KEYS`` lines of ``/proc/meminfo``, in bytes (the file says kB = KiB)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in MEMINFO_KEYS:
            value, _, unit = rest.strip().partition(" ")
            out[key] = int(value) * (1024 if unit == "kB" else 1)
            if len(out) == len(MEMINFO_KEYS):
                break
    return out


@frozen(kw_only=True)
class HwmonSensor:
    """One temperature input found under ``<sys>/class/hwmon``; its limits are read once."""

    sensor: str
    input_path: str
    high_celsius: float | None
    critical_celsius: float | None


@frozen(kw_only=True)
class HwmonReading:
    sensor: str
    celsius: float
    high_celsius: float | None
    critical_celsius: float | None


def millidegrees(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return int(text.strip()) / 1000.0
    except ValueError:
        return None


def discover_hwmon(sys_root: Path) -> list[HwmonSensor]:
    """Every ``hwmon*/temp*_input`` with its chip name, label and limits."""
    base = sys_root / "class" / "hwmon"
    out: list[HwmonSensor] = []
    try:
        chips = sorted(base.iterdir())
    except OSError:
        return out
    for chip in chips:
        chip_name = (_read(chip / "name") or chip.name).strip()
        for sensor_input in sorted(chip.glob("temp*_input")):
            prefix = sensor_input.name.removesuffix("_input")
            label = (_read(chip / f"{prefix}_label") or prefix).strip()
            out.append(
                HwmonSensor(
                    sensor=f"{chip_name}/{label}",
                    input_path=str(sensor_input),
                    high_celsius=millidegrees(_read(chip / f"{prefix}_max")),
                    critical_celsius=millidegrees(_read(chip / f"{prefix}_crit")),
                )
            )
    return out


def read_hwmon(sys_root: Path) -> list[HwmonReading]:
    """Temperatures from ``<sys>/class/hwmon/hwmon*/temp*_input``, each file opened once."""
    out = []
    for sensor in discover_hwmon(sys_root):
        celsius = millidegrees(_read(sensor.input_path))
        if celsius is not None:
            out.append(
                HwmonReading(
                    sensor=sensor.sensor,
                    celsius=celsius,
                    high_celsius=sensor.high_celsius,
                    critical_celsius=sensor.critical_celsius,
                )
            )
    return out
