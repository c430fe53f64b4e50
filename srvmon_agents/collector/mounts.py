"""The host's real mounts, re-read only when the mount table changes, and their usage.

:class:`MountTable` keeps ``<proc>/1/mounts`` open. The kernel flags that file with
``POLLPRI | POLLERR`` when a mount is added, removed or changed in that mount namespace, so a
``poll`` with a zero timeout (one syscall, no wait) says whether the table must be read again.
A plain file (a fixture tree) cannot be polled that way; for it the file's ``fstat`` size,
mtime and inode are compared instead.

:class:`MountProbe` calls ``statvfs`` on the collector's own thread for local filesystems
(ext4, xfs, btrfs, …: no thread hand-off, no wake of another thread). Network and user-space
filesystems (nfs, cifs, ceph, fuse.*, and any type not known to be local) go through a worker
thread with a timeout, because a dead server can block ``statvfs`` forever: a hung mount is
skipped and counted, never waited on twice.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import select
from collections.abc import Callable

from attrs import define, field, frozen

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

LOCAL_FILESYSTEMS = frozenset(
    {
        "bcachefs",
        "btrfs",
        "exfat",
        "ext2",
        "ext3",
        "ext4",
        "f2fs",
        "hfsplus",
        "iso9660",
        "jfs",
        "msdos",
        "nilfs2",
        "ntfs3",
        "reiserfs",
        "udf",
        "vfat",
        "xfs",
        "zfs",
    }
)
"""Block-device filesystems whose ``statvfs`` answers from memory: probed without a thread."""


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


def parse_real_mounts(text: str) -> tuple[Mount, ...]:
    """Mounts of real filesystems (pseudo ones skipped), first mount of each device only."""
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


@define
class MountTable:
    """The real mounts of one mount table file, read again only after it changed."""

    path: str
    reads: int = 0
    """How many times the table was read and parsed (tests and the docs use it)."""
    _fd: int | None = None
    _poller: select.poll = field(factory=select.poll)
    _signature: tuple[int, int, int] | None = None
    _mounts: tuple[Mount, ...] = ()

    def mounts(self) -> tuple[Mount, ...]:
        if self._fd is None:
            if not self._open():
                return ()
        elif self._changed():
            self._load()
        return self._mounts

    def _open(self) -> bool:
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        self._poller.register(self._fd, select.POLLPRI)
        self._load()
        return True

    def _changed(self) -> bool:
        assert self._fd is not None
        if self._poller.poll(0):
            return True  # procfs: POLLPRI | POLLERR, the namespace's mounts changed
        return self._stat() != self._signature  # a plain file (fixture trees)

    def _stat(self) -> tuple[int, int, int]:
        assert self._fd is not None
        st = os.fstat(self._fd)
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _load(self) -> None:
        assert self._fd is not None
        try:
            os.lseek(self._fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(self._fd, 1 << 16):
                chunks.append(chunk)
        except OSError:
            self.close()
            self._mounts = ()
            return
        self._signature = self._stat()
        self._mounts = parse_real_mounts(b"".join(chunks).decode("utf-8", "replace"))
        self.reads += 1

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._poller.unregister(self._fd)
            os.close(self._fd)
            self._fd = None


def probed_in_a_thread(fstype: str) -> bool:
    """Whether ``statvfs`` on this filesystem type may block (network, FUSE, unknown)."""
    return fstype not in LOCAL_FILESYSTEMS


@define
class MountProbe:
    """``statvfs`` per mount: directly for local filesystems, with a timeout for the others.

    A call that hangs keeps its worker thread; the mount is skipped (and counted in
    ``skipped``, ``hung_mounts``) until that call returns. Workers are started only when a
    mount needs one.
    """

    timeout_seconds: float = 1.0
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs
    workers: int = 4
    _pending: dict[str, concurrent.futures.Future[None]] = field(factory=dict)
    _pool: concurrent.futures.ThreadPoolExecutor | None = None
    skipped: int = 0
    threaded_probes: int = 0

    @property
    def hung_mounts(self) -> int:
        return sum(1 for f in self._pending.values() if not f.done())

    def usage(self, path: str, fstype: str) -> os.statvfs_result | None:
        if not probed_in_a_thread(fstype):
            try:
                return self.statvfs(path)
            except OSError:
                return None
        return self._usage_with_timeout(path)

    def _usage_with_timeout(self, path: str) -> os.statvfs_result | None:
        pending = self._pending.get(path)
        if pending is not None and not pending.done():
            self.skipped += 1
            return None
        result: list[os.statvfs_result] = []

        def probe() -> None:
            with contextlib.suppress(OSError):
                result.append(self.statvfs(path))

        if self._pool is None:
            # Reused threads: one per statvfs per second would be most of the host's cost.
            # Hung calls occupy workers; beyond ``workers`` hung mounts, probes queue and time out.
            self._pool = concurrent.futures.ThreadPoolExecutor(self.workers, "statvfs")
        self.threaded_probes += 1
        future = self._pool.submit(probe)
        try:
            future.result(timeout=self.timeout_seconds)
        except concurrent.futures.TimeoutError:
            self._pending[path] = future
            self.skipped += 1
            return None
        self._pending.pop(path, None)
        return result[0] if result else None
