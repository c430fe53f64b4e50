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
from collections.abc import Callable, Iterable
from pathlib import Path

from attrs import Factory, define, field, frozen

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


V1_FILES = {
    "cpuacct": ("cpuacct.usage",),
    "cpu": ("cpu.stat", "cpu.cfs_quota_us", "cpu.cfs_period_us"),
    "memory": ("memory.stat", "memory.usage_in_bytes", "memory.limit_in_bytes"),
    "blkio": ("blkio.throttle.io_service_bytes",),
    "pids": ("pids.current",),
}
V2_FILES = ("cpu.stat", "cpu.max", "memory.stat", "memory.current", "memory.max", "io.stat")
V2_FILES_ALL = (*V2_FILES, "pids.current")


def _file_paths(location: CgroupLocation) -> dict[str, str]:
    if location.version == 2:
        base = str(location.dirs[""])
        return {name: f"{base}/{name}" for name in V2_FILES_ALL}
    out: dict[str, str] = {}
    for controller, names in V1_FILES.items():
        directory = location.dirs.get(controller)
        if directory is not None:
            out.update({name: f"{directory}/{name}" for name in names})
    return out


@frozen(kw_only=True)
class CgroupLocation:
    """Where one container's cgroup lives: a single v2 dir, or one dir per v1 controller."""

    version: int
    driver: str
    dirs: dict[str, Path]
    """v2: ``{"": dir}``; v1: controller name → dir (``cpu``, ``cpuacct``, ``memory``, …)."""
    files: dict[str, str] = field(
        init=False, eq=False, repr=False, default=Factory(_file_paths, takes_self=True)
    )
    """File name → full path as a plain string, computed once: building ``Path`` objects
    every second cost more than the reads themselves."""


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


READ_BYTES = 1 << 16

Reader = Callable[[str], str | None]
"""A file's text by path; None when the file is absent. Raises CgroupGone with its directory."""


def _open(path: str) -> int | None:
    """A read-only fd; None when the file is absent. Raises CgroupGone when its dir is."""
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if not os.path.exists(os.path.dirname(path)):
            raise CgroupGone(os.path.dirname(path)) from None
        return None
    except OSError:
        return None


def _pread(fd: int) -> str | None:
    """The text of an open cgroup file from offset 0; None when it cannot be read."""
    try:
        return os.pread(fd, READ_BYTES, 0).decode("ascii", "replace")
    except OSError:
        return None


def _text(path: str) -> str | None:
    """The file's text; None when absent. os-level I/O: this runs ~6x per container per second."""
    fd = _open(path)
    if fd is None:
        return None
    try:
        return _pread(fd)
    finally:
        os.close(fd)


@define
class OpenFiles:
    """The per-interval cgroup files, kept open and re-read with ``pread`` at offset 0.

    A cgroup file regenerates its content on every read from offset 0, so an open fd reads
    the current counters without the path lookup, open and close (about 7 µs of a read's
    8 µs). When the cgroup is removed (the container stopped or restarted) a read of an old
    fd fails with ENODEV; the fd is then closed and the path opened anew, which raises
    :class:`CgroupGone` when the directory is gone, exactly as without kept fds. At most
    ``limit`` fds are kept; beyond that, files are opened for each read as before.
    """

    limit: int = 512
    _fds: dict[str, int] = field(factory=dict)

    def __len__(self) -> int:
        return len(self._fds)

    def text(self, path: str) -> str | None:
        fd = self._fds.get(path)
        if fd is not None:
            text = _pread(fd)
            if text is not None:
                return text
            del self._fds[path]  # ENODEV: the cgroup was removed; open the path anew
            os.close(fd)
        if len(self._fds) >= self.limit:
            return _text(path)
        fd = _open(path)
        if fd is None:
            return None
        text = _pread(fd)
        if text is None:
            os.close(fd)
        else:
            self._fds[path] = fd
        return text

    def forget(self, paths: Iterable[str]) -> None:
        """Close the fds of these paths (a container that stopped or went away)."""
        for path in paths:
            fd = self._fds.pop(path, None)
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        self.forget(list(self._fds))


def _int(path: str | None, read: Reader = _text) -> int | None:
    if path is None:
        return None
    text = read(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _keyed(path: str | None, read: Reader = _text) -> dict[str, int]:
    """A flat-keyed file (``key value`` per line), e.g. cpu.stat or memory.stat."""
    text = None if path is None else read(path)
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


def read(
    location: CgroupLocation, limits: CgroupLimits | None = None, files: OpenFiles | None = None
) -> CgroupReading:
    """Snapshot the counters. Raises CgroupGone when the cgroup disappeared meanwhile.

    Limits rarely change (``docker update``); pass the previous reading's ``limits()`` to
    skip re-reading their files. With ``files``, the per-interval files are read through
    kept fds (the limit files, read every few seconds, are still opened each time).
    """
    text = files.text if files is not None else _text
    if location.version == 2:
        return _read_v2(location.files, limits, text)
    return _read_v1(location.files, limits, text)


def limits_of(reading: CgroupReading) -> CgroupLimits:
    return CgroupLimits(
        cpu_limit_cores=reading.cpu_limit_cores, memory_limit_bytes=reading.memory_limit_bytes
    )


def _stat_value(path: str | None, key: str, read: Reader = _text) -> int | None:
    """One ``key value`` line of a flat-keyed file (memory.stat), without parsing the rest."""
    text = None if path is None else read(path)
    if text is None:
        return None
    prefix = key + " "
    if text.startswith(prefix):
        start = len(prefix)
    else:
        found = text.find("\n" + prefix)
        if found < 0:
            return None
        start = found + 1 + len(prefix)
    end = text.find("\n", start)
    try:
        return int(text[start : end if end >= 0 else None])
    except ValueError:
        return None


def _read_v2(files: dict[str, str], limits: CgroupLimits | None, text: Reader) -> CgroupReading:
    cpu = _keyed(files["cpu.stat"], text)
    usage_usec = cpu.get("usage_usec")
    throttled_usec = cpu.get("throttled_usec")
    read_bytes, write_bytes = _v2_io(files["io.stat"], text)
    return CgroupReading(
        cpu_usage_ns=None if usage_usec is None else usage_usec * 1000,
        cpu_periods=cpu.get("nr_periods"),
        cpu_throttled_periods=cpu.get("nr_throttled"),
        cpu_throttled_ns=None if throttled_usec is None else throttled_usec * 1000,
        cpu_limit_cores=limits.cpu_limit_cores if limits else _v2_cpu_max(files["cpu.max"]),
        memory_usage_bytes=_int(files["memory.current"], text),
        memory_inactive_file_bytes=_stat_value(files["memory.stat"], "inactive_file", text),
        memory_limit_bytes=(
            limits.memory_limit_bytes if limits else _v2_memory_max(files["memory.max"])
        ),
        io_read_bytes=read_bytes,
        io_write_bytes=write_bytes,
        pids=_int(files["pids.current"], text),
    )


def _v2_cpu_max(path: str) -> float | None:
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


def _v2_memory_max(path: str) -> int | None:
    text = _text(path)
    if text is None or text.strip() == "max":
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _v2_io(path: str, read: Reader) -> tuple[int | None, int | None]:
    """Sum ``rbytes``/``wbytes`` over every device line of io.stat."""
    text = read(path)
    if text is None:
        return None, None
    read_total = write_total = 0
    for line in text.splitlines():
        for pair in line.split()[1:]:
            key, _, value = pair.partition("=")
            if key == "rbytes":
                read_total += int(value)
            elif key == "wbytes":
                write_total += int(value)
    return read_total, write_total


def _read_v1(files: dict[str, str], limits: CgroupLimits | None, text: Reader) -> CgroupReading:
    cpu_stat = _keyed(files.get("cpu.stat"), text)
    limit = limits.memory_limit_bytes if limits else _int(files.get("memory.limit_in_bytes"))
    blkio = files.get("blkio.throttle.io_service_bytes")
    read_bytes, write_bytes = _v1_blkio(blkio, text) if blkio else (None, None)
    return CgroupReading(
        cpu_usage_ns=_int(files.get("cpuacct.usage"), text),
        cpu_periods=cpu_stat.get("nr_periods"),
        cpu_throttled_periods=cpu_stat.get("nr_throttled"),
        cpu_throttled_ns=cpu_stat.get("throttled_time"),
        cpu_limit_cores=limits.cpu_limit_cores if limits else _v1_cpu_quota(files),
        memory_usage_bytes=_int(files.get("memory.usage_in_bytes"), text),
        memory_inactive_file_bytes=_stat_value(
            files.get("memory.stat"), "total_inactive_file", text
        ),
        memory_limit_bytes=None if limit is None or limit >= UNLIMITED_V1_THRESHOLD else limit,
        io_read_bytes=read_bytes,
        io_write_bytes=write_bytes,
        pids=_int(files.get("pids.current"), text),
    )


def _v1_cpu_quota(files: dict[str, str]) -> float | None:
    quota = _int(files.get("cpu.cfs_quota_us"))
    period = _int(files.get("cpu.cfs_period_us"))
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def _v1_blkio(path: str, read: Reader) -> tuple[int | None, int | None]:
    """Sum the ``Read``/``Write`` lines of blkio.throttle.io_service_bytes over devices."""
    text = read(path)
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
