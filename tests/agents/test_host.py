"""Host metrics: exact parsing on a fake /proc + /sys tree, and real-host checks."""

from __future__ import annotations

import mmap
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from srvmon_agents.collector.host import HostCollector
from srvmon_agents.collector.mounts import MountProbe
from tests.helpers import missing

MiB = 1024 * 1024


class StepClock:
    """Advances exactly 1 s per reading, so a per-second rate equals the counter's delta."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture(autouse=True)
def restore_psutil_procfs() -> Iterator[None]:
    saved = psutil.PROCFS_PATH
    yield
    psutil.PROCFS_PATH = saved


NET_HEADER = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|"
    "bytes    packets errs drop fifo colls carrier compressed\n"
)


def net_dev(eth_rx: int, eth_tx: int, lo: int) -> str:
    return (
        NET_HEADER
        + f"    lo: {lo} 10 0 0 0 0 0 0 {lo} 10 0 0 0 0 0 0\n"
        + f"  eth0: {eth_rx} 100 2 1 0 0 0 0 {eth_tx} 90 0 3 0 0 0 0\n"
    )


def diskstats(sda_read_sectors: int, sda_writes: int) -> str:
    def line(device: tuple[int, int, str], reads: int, rsec: int, writes: int) -> str:
        major, minor, name = device
        return f"{major:4d} {minor:7d} {name} {reads} 0 {rsec} 0 {writes} 0 {writes * 8} 0 0 0 0"

    return "\n".join(
        [
            line((7, 0, "loop0"), 999, 999_999, 999),
            line((8, 0, "sda"), 100, sda_read_sectors, sda_writes),
            line((8, 1, "sda1"), 100, sda_read_sectors, sda_writes),
            line((253, 0, "dm-0"), 999, 999_999, 999),
            line((259, 0, "nvme0n1"), 10, 80, 0),
            line((259, 1, "nvme0n1p1"), 10, 80, 0),
            line((251, 0, "zram0"), 999, 999_999, 999),
            line((9, 0, "md0"), 1, 8, 0),
        ]
    )


def cpu_stat(user: int, system: int, idle: int, iowait: int, steal: int) -> str:
    half = [v // 2 for v in (user, system, idle, iowait, steal)]
    lines = [f"cpu  {user} 0 {system} {idle} {iowait} 10 10 {steal} 0 0"]
    for n in range(2):
        u, s, i, w, st = half
        lines.append(f"cpu{n} {u} 0 {s} {i} {w} 5 5 {st} 0 0")
    return "\n".join([*lines, "intr 0", "ctxt 0", "btime 0", "processes 0"]) + "\n"


MEMINFO = """MemTotal:        8000000 kB
MemFree:         2000000 kB
MemAvailable:    6000000 kB
Buffers:          100000 kB
Cached:          1000000 kB
SwapCached:            0 kB
Active:          1000000 kB
Inactive:        1000000 kB
Shmem:              1000 kB
SReclaimable:     100000 kB
SwapTotal:       1000000 kB
SwapFree:         750000 kB
"""


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    for pid in ("1", "42", "4242"):
        (proc / pid).mkdir(parents=True)
    (proc / "1" / "net").mkdir()
    (proc / "1" / "root").mkdir()
    (proc / "self").mkdir()
    (proc / "stat").write_text(cpu_stat(1000, 500, 10000, 100, 0))
    (proc / "loadavg").write_text("0.50 0.25 0.10 1/123 4242\n")
    (proc / "uptime").write_text("12345.67 20000.00\n")
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "vmstat").write_text("pswpin 0\npswpout 0\n")
    (proc / "diskstats").write_text(diskstats(1000, 50))
    (proc / "1" / "net" / "dev").write_text(net_dev(10_000, 20_000, 5))
    (proc / "1" / "mounts").write_text(
        "/dev/sda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\ntmpfs /run tmpfs rw 0 0\n"
        "overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0\n"
        "sysfs /sys sysfs rw 0 0\nnsfs /run/netns/a nsfs rw 0 0\n"
    )
    for dev in ("sda", "loop0", "dm-0", "nvme0n1", "zram0", "md0"):
        (sys / "block" / dev).mkdir(parents=True)
    hwmon = sys / "class" / "hwmon" / "hwmon0"
    hwmon.mkdir(parents=True)
    (hwmon / "name").write_text("coretemp\n")
    (hwmon / "temp1_input").write_text("45000\n")
    (hwmon / "temp1_label").write_text("Package id 0\n")
    (hwmon / "temp1_max").write_text("80000\n")
    (hwmon / "temp1_crit").write_text("100000\n")
    return tmp_path


def test_fake_tree_gives_exact_host_figures(fake_root: Path) -> None:
    """Known deltas in stat/diskstats/net dev → exact cpu %, physical-disk and network rates."""
    proc, sys = fake_root / "proc", fake_root / "sys"
    collector = HostCollector(proc_root=proc, sys_root=sys, clock=StepClock())
    first = collector.collect()
    assert first.disk_read_bytes_per_s is None, "first reading: no rate"
    assert {d.device for d in first.disk_io} == {"sda", "nvme0n1", "md0"}
    # +100 user, +50 system, +790 idle, +30 iowait, +10 steal, +10 irq/softirq? none: 1000 total
    (proc / "stat").write_text(cpu_stat(1100, 570, 10790, 130, 10))
    (proc / "diskstats").write_text(diskstats(1000 + 2048, 50 + 7))
    (proc / "1" / "net" / "dev").write_text(net_dev(10_000 + 3000, 20_000 + 500, 5 + 77))
    sample = collector.collect()
    assert sample.cpu_percent == pytest.approx(180 / 1000 * 100)
    assert sample.cpu_iowait_percent == pytest.approx(3.0)
    assert sample.cpu_steal_percent == pytest.approx(1.0)
    assert sample.cpu_per_core_percent == pytest.approx((18.0, 18.0))
    assert sample.disk_read_bytes_per_s == pytest.approx(2048 * 512), "sda only, not sda1/dm/loop"
    assert sample.disk_write_ops_per_s == pytest.approx(7)
    net = {n.interface: n for n in sample.net}
    assert net["eth0"].rx_bytes_per_s == pytest.approx(3000)
    assert net["eth0"].tx_bytes_per_s == pytest.approx(500)
    assert net["lo"].rx_bytes_per_s == pytest.approx(77)
    assert (sample.load_1, sample.load_5, sample.load_15) == (0.5, 0.25, 0.1)
    assert sample.uptime_seconds == pytest.approx(12345.67)
    assert sample.process_count == 3
    assert sample.memory_total_bytes == 8_000_000 * 1024
    assert sample.memory_available_bytes == 6_000_000 * 1024
    assert sample.swap_used_bytes == 250_000 * 1024
    assert [(d.mount, d.device, d.fstype) for d in sample.disks] == [("/", "/dev/sda1", "ext4")]
    [temp] = sample.temperatures
    assert (temp.sensor, temp.celsius, temp.high_celsius, temp.critical_celsius) == (
        "coretemp/Package id 0",
        45.0,
        80.0,
        100.0,
    )


def test_vanished_device_forgets_its_counters(fake_root: Path) -> None:
    """A disk that disappears and comes back starts fresh: no rate on its first new reading."""
    proc, sys = fake_root / "proc", fake_root / "sys"
    collector = HostCollector(proc_root=proc, sys_root=sys, clock=StepClock())
    collector.collect()
    listed = (proc / "diskstats").read_text()
    (sys / "block" / "sda").rmdir()
    (proc / "diskstats").write_text(
        "\n".join(line for line in listed.splitlines() if " sda" not in line)
    )
    assert "sda" not in {d.device for d in collector.collect().disk_io}
    (sys / "block" / "sda").mkdir()
    (proc / "diskstats").write_text(listed)
    again = {d.device: d for d in collector.collect().disk_io}
    assert again["sda"].read_bytes_per_s is None


def test_hung_mount_is_skipped_and_counted_without_stalling() -> None:
    """A statvfs that never returns costs one timeout once, then the mount is skipped."""
    release = threading.Event()

    def hanging_statvfs(path: str) -> os.statvfs_result:
        if path == "/mnt/nfs":
            release.wait(30)
        return os.statvfs("/")

    probe = MountProbe(timeout_seconds=0.2, statvfs=hanging_statvfs)
    started = time.monotonic()
    assert probe.usage("/mnt/nfs", "nfs4") is None
    assert probe.usage("/mnt/nfs", "nfs4") is None
    assert probe.usage("/mnt/other-nfs", "nfs4") is not None
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, "the second call must not wait again"
    assert probe.skipped == 2
    assert probe.hung_mounts == 1
    release.set()
    deadline = time.monotonic() + 5
    while probe.hung_mounts and time.monotonic() < deadline:
        time.sleep(0.02)
    assert probe.usage("/mnt/nfs", "nfs4") is not None, "a recovered mount is read again"


def test_local_filesystems_are_probed_on_the_callers_thread() -> None:
    """ext4/xfs/btrfs: statvfs runs on the collector's thread (no hand-off, no worker wakes);
    nfs, cifs, fuse.* and unknown types go through a worker thread."""
    threads: dict[str, int] = {}

    def recording_statvfs(path: str) -> os.statvfs_result:
        threads[path] = threading.get_ident()
        return os.statvfs("/")

    probe = MountProbe(timeout_seconds=2.0, statvfs=recording_statvfs)
    for path, fstype in (("/", "ext4"), ("/srv", "xfs"), ("/data", "btrfs")):
        assert probe.usage(path, fstype) is not None
    assert set(threads.values()) == {threading.get_ident()}
    assert probe.threaded_probes == 0
    assert probe._pool is None, "no worker thread exists while every mount is local"
    for path, fstype in (("/nfs", "nfs4"), ("/smb", "cifs"), ("/ssh", "fuse.sshfs"), ("/x", "odd")):
        assert probe.usage(path, fstype) is not None
        assert threads[path] != threading.get_ident(), fstype
    assert probe.threaded_probes == 4


def test_real_loopback_traffic_shows_on_lo() -> None:
    """Sending N bytes over 127.0.0.1 grows lo's rx by at least N (lo is per-interface only)."""
    collector = HostCollector(clock=StepClock())
    collector.collect()
    payload = b"x" * (4 * MiB)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        counted: list[int] = []

        def drain() -> None:
            peer, _ = server.accept()
            total = 0
            while chunk := peer.recv(1 << 20):
                total += len(chunk)
            peer.close()
            counted.append(total)

        reader = threading.Thread(target=drain)
        reader.start()
        with socket.create_connection(server.getsockname()) as client:
            client.sendall(payload)
        reader.join(30)
    assert counted == [len(payload)]
    sample = collector.collect()
    lo = {n.interface: n for n in sample.net}["lo"]
    assert lo.rx_bytes_per_s is not None
    assert lo.rx_bytes_per_s >= len(payload)


def test_real_disk_read_moves_disk_read_bytes(tmp_path: Path) -> None:
    """An O_DIRECT read of a 16 MiB file shows as at least 16 MiB read from physical disks."""
    size = 16 * MiB
    path = tmp_path / "blob"
    with path.open("wb") as f:
        f.write(os.urandom(size))
        f.flush()
        os.fsync(f.fileno())
    collector = HostCollector(clock=StepClock())
    if not collector.collect().disk_io:
        missing("physical block device", "this machine has none in /sys/block")
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        missing("O_DIRECT", f"unsupported on the file system of {tmp_path}: {exc}")
        return
    buffer = mmap.mmap(-1, MiB)
    read = 0
    try:
        while (n := os.readv(fd, [buffer])) > 0:
            read += n
    finally:
        os.close(fd)
    assert read == size
    sample = collector.collect()
    assert sample.disk_read_bytes_per_s is not None
    assert sample.disk_read_bytes_per_s >= size


def test_steady_readings_open_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first reading, every per-interval file is read through a kept fd: three more
    readings of the real host call os.open zero times."""
    collector = HostCollector(clock=StepClock())
    collector.collect()
    opened: list[str] = []
    real_open = os.open

    def counting_open(path: str, flags: int, *args: int) -> int:
        opened.append(str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", counting_open)
    for _ in range(3):
        sample = collector.collect()
    monkeypatch.undo()
    assert opened == []
    assert sample.memory_total_bytes > 0
    assert sample.net, "the host's interfaces were read"
    kept = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            kept.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # the fd of the listing itself
    for name in ("stat", "meminfo", "loadavg", "uptime", "diskstats", "1/net/dev", "1/mounts"):
        assert f"/proc/{name}" in kept, name
    collector.close()


def test_memory_figures_agree_with_psutil_on_this_host() -> None:
    """The collector's own /proc/meminfo reading gives psutil's totals (psutil is the
    reference here, not the collector's path)."""
    sample = HostCollector(clock=StepClock()).collect()
    memory, swap = psutil.virtual_memory(), psutil.swap_memory()
    assert sample.memory_total_bytes == memory.total
    assert sample.swap_total_bytes == swap.total
    assert abs(sample.memory_available_bytes - memory.available) <= 64 * MiB
    assert abs(sample.memory_percent - memory.percent) <= 1.0
    assert abs(sample.swap_used_bytes - swap.used) <= 64 * MiB


def test_filesystem_usage_is_read_below_the_host_root(fake_root: Path) -> None:
    """A containerised collector reads each host mount below the host's / bind-mounted at
    ``host_root``; without one, through ``<proc>/1/root`` (another proc root) or directly."""
    proc, sys = fake_root / "proc", fake_root / "sys"
    seen: list[str] = []

    def recording_statvfs(path: str) -> os.statvfs_result:
        seen.append(path)
        return os.statvfs("/")

    for host_root, expected in (
        (fake_root / "hostroot", f"{fake_root}/hostroot/"),
        (None, f"{proc}/1/root/"),
    ):
        seen.clear()
        collector = HostCollector(
            proc_root=proc,
            sys_root=sys,
            host_root=host_root,
            clock=StepClock(),
            mounts=MountProbe(statvfs=recording_statvfs),
        )
        [disk] = collector.collect().disks
        assert seen == [expected]
        assert (disk.mount, disk.total_bytes) == (
            "/",
            os.statvfs("/").f_blocks * os.statvfs("/").f_frsize,
        )


def test_a_mount_missing_below_the_host_root_is_left_out(fake_root: Path) -> None:
    """A host mount that is not a mount point below the host root (made after a private bind
    of the host's /) is left out, not reported with its parent filesystem's figures."""
    proc, sys = fake_root / "proc", fake_root / "sys"
    (proc / "1" / "mounts").write_text("/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /data xfs rw 0 0\n")
    (fake_root / "hostroot" / "data").mkdir(parents=True)  # a plain directory, not a mount
    (proc / "1" / "root" / "data").mkdir()
    collector = HostCollector(
        proc_root=proc, sys_root=sys, host_root=fake_root / "hostroot", clock=StepClock()
    )
    assert [d.mount for d in collector.collect().disks] == ["/"]
    through_pid_1 = HostCollector(proc_root=proc, sys_root=sys, clock=StepClock())
    assert [d.mount for d in through_pid_1.collect().disks] == ["/", "/data"], "pid 1's view"
