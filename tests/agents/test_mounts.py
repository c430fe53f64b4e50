"""The mount table: parsed once per change (poll on procfs, fstat on plain files)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from srvmon_agents.collector.mounts import Mount, MountTable, parse_real_mounts

TABLE = (
    "/dev/sda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\n"
    "/dev/sda1 /var/lib/docker ext4 rw 0 0\n"
    "server:/export /mnt/my\\040share nfs4 rw 0 0\n"
)


def test_parse_keeps_real_filesystems_once_per_device() -> None:
    """Pseudo filesystems are dropped, a device's bind mounts count once, octal escapes decode."""
    assert parse_real_mounts(TABLE) == (
        Mount(device="/dev/sda1", mount="/", fstype="ext4"),
        Mount(device="server:/export", mount="/mnt/my share", fstype="nfs4"),
    )


def test_a_plain_file_is_read_again_only_after_it_changed(tmp_path: Path) -> None:
    """Fixture trees: unchanged content is not read again; a rewrite is."""
    path = tmp_path / "mounts"
    path.write_text(TABLE)
    table = MountTable(str(path))
    first = table.mounts()
    for _ in range(5):
        assert table.mounts() == first
    assert table.reads == 1
    path.write_text(TABLE + "/dev/sdb1 /srv xfs rw 0 0\n")
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse-clock filesystem
    assert table.mounts()[-1] == Mount(device="/dev/sdb1", mount="/srv", fstype="xfs")
    assert table.reads == 2
    table.close()


PROBE = textwrap.dedent(
    """
    import subprocess, sys, tempfile
    sys.path.insert(0, sys.argv[1])
    from srvmon_agents.collector.mounts import MountTable, parse_real_mounts
    table = MountTable("/proc/self/mounts")
    table.mounts()
    for _ in range(5):
        table.mounts()
    steady = table.reads
    target = tempfile.mkdtemp()
    subprocess.run(["mount", "-t", "tmpfs", "none", target], check=True)
    table.mounts()
    after_mount = table.reads
    table.mounts()
    again = table.reads
    fresh = parse_real_mounts(open("/proc/self/mounts").read())
    print(steady, after_mount, again, table.mounts() == fresh)
    """
)


def test_procfs_mount_table_is_reread_only_when_the_kernel_flags_a_change() -> None:
    """Real /proc/self/mounts in a private mount namespace: five unchanged readings parse
    nothing; one new mount is seen at the next reading (POLLPRI), exactly once."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    root = str(Path(__file__).resolve().parents[2])
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", PROBE, root],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "2", "2", "True"]
