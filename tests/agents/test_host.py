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

from srvmon_agents.collector.host import HostCollector, MountProbe
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
    (sys / "block" / "sda").rmdir()
    assert "sda" not in {d.device for d in collector.collect().disk_io}
    (sys / "block" / "sda").mkdir()
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
    assert probe.usage("/mnt/nfs") is None
    assert probe.usage("/mnt/nfs") is None
    assert probe.usage("/") is not None
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, "the second call must not wait again"
    assert probe.skipped == 2
    assert probe.hung_mounts == 1
    release.set()
    deadline = time.monotonic() + 5
    while probe.hung_mounts and time.monotonic() < deadline:
        time.sleep(0.02)
    assert probe.usage("/mnt/nfs") is not None, "a recovered mount is read again"


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
