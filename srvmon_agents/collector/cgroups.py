"""Read a Docker container's resource counters straight from its cgroup files.

Both cgroup versions and both Docker cgroup drivers are supported; the cgroup root is a
parameter so tests run against fixture trees:

- v1, cgroupfs driver: ``<root>/<controller>/docker/<id>``
- v1, systemd driver: ``<root>/<controller>/system.slice/docker-<id>.scope``
- v2, cgroupfs driver: ``<root>/docker/<id>``
- v2, systemd driver: ``<root>/system.slice/docker-<id>.scope``

A v2 hierarchy is recognised by ``<root>/cgroup.controllers``. Every reading is a snapshot of
counters; turning them into rates is the caller's job (see ``containers.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

from attrs import frozen

UNLIMITED_V1_THRESHOLD = 1 << 62
"""cgroup v1 reports "no memory limit" as a page-rounded LONG_MAX; anything above is unlimited."""


class CgroupGone(Exception):
    """The container's cgroup vanished while being read (the container stopped)."""


@frozen(kw_only=True)
class CgroupReading:
    """One snapshot of a container's cgroup counters. None: the file is absent."""

    cpu_usage_ns: int | None = None
    cpu_periods: int | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_ns: int | None = None
    cpu_limit_cores: float | None = None
    memory_usage_bytes: int | None = None
    memory_inactive_file_bytes: int | None = None
    memory_limit_bytes: int | None = None
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None
    pids: int | None = None

    @property
    def memory_working_set_bytes(self) -> int | None:
        """Usage minus inactive file cache, as ``docker stats`` computes it."""
        if self.memory_usage_bytes is None:
            return None
        inactive = self.memory_inactive_file_bytes or 0
        if inactive > self.memory_usage_bytes:
            return self.memory_usage_bytes
        return self.memory_usage_bytes - inactive


@frozen(kw_only=True)
class CgroupLocation:
    """Where one container's cgroup lives: a single v2 dir, or one dir per v1 controller."""

    version: int
    driver: str
    dirs: dict[str, Path]
    """v2: ``{"": dir}``; v1: controller name → dir (``cpu``, ``cpuacct``, ``memory``, …)."""


V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "blkio", "pids")


def _relative_dirs(container_id: str) -> tuple[tuple[str, str], ...]:
    return (
        ("cgroupfs", f"docker/{container_id}"),
        ("systemd", f"system.slice/docker-{container_id}.scope"),
    )


def _v1_controller_root(root: Path, controller: str) -> Path | None:
    direct = root / controller
    if direct.is_dir():
        return direct
    for combined in ("cpu,cpuacct", "cpuacct,cpu"):
        if controller in ("cpu", "cpuacct") and (root / combined).is_dir():
            return root / combined
    return None


def locate(cgroup_root: Path, container_id: str) -> CgroupLocation | None:
    """Find a container's cgroup under ``cgroup_root``; None when it is not there."""
    if (cgroup_root / "cgroup.controllers").exists():
        for driver, relative in _relative_dirs(container_id):
            candidate = cgroup_root / relative
            if candidate.is_dir():
                return CgroupLocation(version=2, driver=driver, dirs={"": candidate})
        return None
    for driver, relative in _relative_dirs(container_id):
        dirs: dict[str, Path] = {}
        for controller in V1_CONTROLLERS:
            base = _v1_controller_root(cgroup_root, controller)
            if base is not None and (base / relative).is_dir():
                dirs[controller] = base / relative
        if dirs:
            return CgroupLocation(version=1, driver=driver, dirs=dirs)
    return None


def _text(path: Path) -> str | None:
    """The file's text; None when absent. os-level I/O: this runs ~10x per container per second."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if not os.path.exists(os.path.dirname(path)):
            raise CgroupGone(str(path.parent)) from None
        return None
    except OSError:
        return None
    try:
        return os.read(fd, 1 << 16).decode("ascii", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _int(path: Path) -> int | None:
    text = _text(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _keyed(path: Path) -> dict[str, int]:
    """A flat-keyed file (``key value`` per line), e.g. cpu.stat or memory.stat."""
    text = _text(path)
    out: dict[str, int] = {}
    if text is None:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value.strip())
        except ValueError:
            continue
    return out


@frozen(kw_only=True)
class CgroupLimits:
    cpu_limit_cores: float | None
    memory_limit_bytes: int | None


def read(location: CgroupLocation, limits: CgroupLimits | None = None) -> CgroupReading:
    """Snapshot the counters. Raises CgroupGone when the cgroup disappeared meanwhile.

    Limits rarely change (``docker update``); pass the previous reading's ``limits()`` to
    skip re-reading their files.
    """
    if location.version == 2:
        return _read_v2(location.dirs[""], limits)
    return _read_v1(location.dirs, limits)


def limits_of(reading: CgroupReading) -> CgroupLimits:
    return CgroupLimits(
        cpu_limit_cores=reading.cpu_limit_cores, memory_limit_bytes=reading.memory_limit_bytes
    )


def _read_v2(cg: Path, limits: CgroupLimits | None) -> CgroupReading:
    cpu = _keyed(cg / "cpu.stat")
    memory_stat = _keyed(cg / "memory.stat")
    usage_usec = cpu.get("usage_usec")
    throttled_usec = cpu.get("throttled_usec")
    read_bytes, write_bytes = _v2_io(cg / "io.stat")
    return CgroupReading(
        cpu_usage_ns=None if usage_usec is None else usage_usec * 1000,
        cpu_periods=cpu.get("nr_periods"),
        cpu_throttled_periods=cpu.get("nr_throttled"),
        cpu_throttled_ns=None if throttled_usec is None else throttled_usec * 1000,
        cpu_limit_cores=limits.cpu_limit_cores if limits else _v2_cpu_max(cg / "cpu.max"),
        memory_usage_bytes=_int(cg / "memory.current"),
        memory_inactive_file_bytes=memory_stat.get("inactive_file"),
        memory_limit_bytes=(
            limits.memory_limit_bytes if limits else _v2_memory_max(cg / "memory.max")
        ),
        io_read_bytes=read_bytes,
        io_write_bytes=write_bytes,
        pids=_int(cg / "pids.current"),
    )


def _v2_cpu_max(path: Path) -> float | None:
    text = _text(path)
    if text is None:
        return None
    quota, _, period = text.strip().partition(" ")
    if quota == "max" or not period:
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _v2_memory_max(path: Path) -> int | None:
    text = _text(path)
    if text is None or text.strip() == "max":
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _v2_io(path: Path) -> tuple[int | None, int | None]:
    """Sum ``rbytes``/``wbytes`` over every device line of io.stat."""
    text = _text(path)
    if text is None:
        return None, None
    read_total = write_total = 0
    for line in text.splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes":
                read_total += int(value)
            elif key == "wbytes":
                write_total += int(value)
    return read_total, write_total


def _read_v1(dirs: dict[str, Path], limits: CgroupLimits | None) -> CgroupReading:
    cpuacct = dirs.get("cpuacct")
    cpu = dirs.get("cpu")
    memory = dirs.get("memory")
    blkio = dirs.get("blkio")
    pids = dirs.get("pids")
    cpu_stat = _keyed(cpu / "cpu.stat") if cpu else {}
    memory_stat = _keyed(memory / "memory.stat") if memory else {}
    limit = _int(memory / "memory.limit_in_bytes") if memory and not limits else None
    if limits is not None:
        limit = limits.memory_limit_bytes
    read_bytes, write_bytes = (
        _v1_blkio(blkio / "blkio.throttle.io_service_bytes") if blkio else (None, None)
    )
    return CgroupReading(
        cpu_usage_ns=_int(cpuacct / "cpuacct.usage") if cpuacct else None,
        cpu_periods=cpu_stat.get("nr_periods"),
        cpu_throttled_periods=cpu_stat.get("nr_throttled"),
        cpu_throttled_ns=cpu_stat.get("throttled_time"),
        cpu_limit_cores=(
            limits.cpu_limit_cores if limits else (_v1_cpu_quota(cpu) if cpu else None)
        ),
        memory_usage_bytes=_int(memory / "memory.usage_in_bytes") if memory else None,
        memory_inactive_file_bytes=memory_stat.get("total_inactive_file"),
        memory_limit_bytes=None if limit is None or limit >= UNLIMITED_V1_THRESHOLD else limit,
        io_read_bytes=read_bytes,
        io_write_bytes=write_bytes,
        pids=_int(pids / "pids.current") if pids else None,
    )


def _v1_cpu_quota(cpu: Path) -> float | None:
    quota = _int(cpu / "cpu.cfs_quota_us")
    period = _int(cpu / "cpu.cfs_period_us")
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def _v1_blkio(path: Path) -> tuple[int | None, int | None]:
    """Sum the ``Read``/``Write`` lines of blkio.throttle.io_service_bytes over devices."""
    text = _text(path)
    if text is None:
        return None, None
    read_total = write_total = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        _device, op, value = parts
        if op == "Read":
            read_total += int(value)
        elif op == "Write":
            write_total += int(value)
    return read_total, write_total
