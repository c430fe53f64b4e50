"""cgroup counters → container figures, on fixture trees of both versions and both drivers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from srvmon_agents.collector import cgroups
from srvmon_agents.collector.containers import ContainerCollector, counters_from_cgroup
from tests.helpers import missing

TREES = Path(__file__).parent / "cgroup_trees"
CID = "c0ffee" + "0" * 58
UNLIMITED = "d" * 64
MiB = 1024 * 1024
HOST_MEMORY = 8 * 1024 * MiB
VARIANTS = [
    ("v1-cgroupfs", 1, "cgroupfs"),
    ("v1-systemd", 1, "systemd"),
    ("v2-cgroupfs", 2, "cgroupfs"),
    ("v2-systemd", 2, "systemd"),
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _collector(clock: FakeClock) -> ContainerCollector:
    return ContainerCollector(
        api=None,
        cgroup_root=Path("/nonexistent"),
        proc_root=Path("/nonexistent"),
        host_memory_total_bytes=HOST_MEMORY,
        clock=clock,
    )


@pytest.mark.parametrize(("variant", "version", "driver"), VARIANTS)
def test_locate_finds_the_container_cgroup_for_each_version_and_driver(
    variant: str, version: int, driver: str
) -> None:
    """locate() recognises v1/v2 and the cgroupfs/systemd layouts, and misses unknown ids."""
    location = cgroups.locate(TREES / variant / "snap1", CID)
    assert location is not None
    assert (location.version, location.driver) == (version, driver)
    assert cgroups.locate(TREES / variant / "snap1", "f" * 64) is None


@pytest.mark.parametrize(("variant", "version", "driver"), VARIANTS)
def test_two_snapshots_give_exact_rates_and_levels(variant: str, version: int, driver: str) -> None:
    """Known deltas over 2 s: 75 % cpu, 50 % throttled, 0.2 s/s, 100 MiB of 256 MiB, io rates."""
    clock = FakeClock()
    collector = _collector(clock)
    first = cgroups.read(cgroups.locate(TREES / variant / "snap1", CID))  # type: ignore[arg-type]
    figures = collector.figures(CID, counters_from_cgroup(first))
    assert figures["cpu_percent"] is None, "the first reading has no rate"
    assert figures["block_read_bytes_per_s"] is None
    clock.now += 2.0
    second = cgroups.read(cgroups.locate(TREES / variant / "snap2", CID))  # type: ignore[arg-type]
    figures = collector.figures(CID, counters_from_cgroup(second))
    assert figures["cpu_percent"] == pytest.approx(75.0)
    assert figures["cpu_throttled_percent"] == pytest.approx(50.0)
    assert figures["cpu_throttled_seconds_per_s"] == pytest.approx(0.2)
    assert figures["cpu_limit_cores"] == pytest.approx(1.5)
    assert figures["memory_working_set_bytes"] == 100 * MiB
    assert figures["memory_limit_bytes"] == 256 * MiB
    assert figures["memory_percent"] == pytest.approx(100 / 256 * 100)
    assert figures["block_read_bytes_per_s"] == pytest.approx(2_000_000.0)
    assert figures["block_write_bytes_per_s"] == pytest.approx(500_000.0)
    assert figures["pids"] == 7


@pytest.mark.parametrize(("variant", "version", "driver"), VARIANTS)
def test_unlimited_container_reports_host_memory_as_limit(
    variant: str, version: int, driver: str
) -> None:
    """No quota → no cpu limit; no memory limit → the host's RAM is the limit (as docker)."""
    reading = cgroups.read(cgroups.locate(TREES / variant / "snap1", UNLIMITED))  # type: ignore[arg-type]
    assert reading.cpu_limit_cores is None
    assert reading.memory_limit_bytes is None
    figures = _collector(FakeClock()).figures(UNLIMITED, counters_from_cgroup(reading))
    assert figures["memory_limit_bytes"] == HOST_MEMORY
    assert figures["memory_working_set_bytes"] == 1000, "inactive file above usage is ignored"


def test_counter_reset_gives_no_rate(tmp_path: Path) -> None:
    """A restarted container's usage counter goes backwards: that interval has no cpu figure."""
    clock = FakeClock()
    collector = _collector(clock)
    second = cgroups.read(cgroups.locate(TREES / "v2-systemd" / "snap2", CID))  # type: ignore[arg-type]
    first = cgroups.read(cgroups.locate(TREES / "v2-systemd" / "snap1", CID))  # type: ignore[arg-type]
    collector.figures(CID, counters_from_cgroup(second))
    clock.now += 1.0
    assert collector.figures(CID, counters_from_cgroup(first))["cpu_percent"] is None


def test_vanished_cgroup_raises_cgroup_gone(tmp_path: Path) -> None:
    """A container that stops mid-read: its cgroup dir disappears and read() says so."""
    root = tmp_path / "cg"
    shutil.copytree(TREES / "v2-cgroupfs" / "snap1", root)
    location = cgroups.locate(root, CID)
    assert location is not None
    shutil.rmtree(root / "docker" / CID)
    with pytest.raises(cgroups.CgroupGone):
        cgroups.read(location)


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        ("Up 3 minutes (healthy)", "healthy"),
        ("Up 3 minutes (unhealthy)", "unhealthy"),
        ("Up 1 second (health: starting)", "health: starting"),
        ("Exited (1) 13 seconds ago", None),
        ("Up 2 hours", None),
    ],
)
def test_health_hint_reads_only_health_words(status: str, hint: str | None) -> None:
    """Only a health word in the list status triggers re-inspection, not exit-code text."""
    from srvmon_agents.collector.containers import _health_hint

    assert _health_hint(status) == hint


@pytest.mark.parametrize(("variant", "version", "driver"), VARIANTS)
def test_cached_limits_skip_the_limit_files(
    tmp_path: Path, variant: str, version: int, driver: str
) -> None:
    """Limits passed in are used as is; the limit files are not needed between resyncs."""
    root = tmp_path / "cg"
    shutil.copytree(TREES / variant / "snap1", root)
    location = cgroups.locate(root, CID)
    assert location is not None
    first = cgroups.read(location)
    for name in ("cpu.max", "memory.max", "cpu.cfs_quota_us", "memory.limit_in_bytes"):
        for path in root.rglob(name):
            if CID in str(path):
                path.unlink()
    assert cgroups.read(location).memory_limit_bytes is None, "the files are really gone"
    again = cgroups.read(location, cgroups.limits_of(first))
    assert again.memory_limit_bytes == 256 * MiB
    assert again.cpu_limit_cores == pytest.approx(1.5)
    assert again.cpu_usage_ns == first.cpu_usage_ns


def test_kept_files_read_the_current_content(tmp_path: Path) -> None:
    """Through kept fds a reading equals a plain one, also after the counters changed."""
    root = tmp_path / "cg"
    shutil.copytree(TREES / "v1-cgroupfs" / "snap1", root)
    location = cgroups.locate(root, CID)
    assert location is not None
    files = cgroups.OpenFiles()
    assert cgroups.read(location, files=files) == cgroups.read(location)
    kept = len(files)
    assert kept == 6, "cpuacct.usage, cpu.stat, memory.stat, memory usage, blkio, pids"
    for name in ("cpuacct.usage", "memory.usage_in_bytes", "pids.current"):
        source = TREES / "v1-cgroupfs" / "snap2" / Path(location.files[name]).relative_to(root)
        Path(location.files[name]).write_bytes(source.read_bytes())  # in place, same inode
    changed = cgroups.read(location, files=files)
    assert changed == cgroups.read(location)
    assert changed.pids == 7
    assert len(files) == kept
    files.close()
    assert len(files) == 0


def test_kept_files_stay_within_their_limit(tmp_path: Path) -> None:
    """Beyond ``limit`` fds, files are opened per read, with the same result."""
    location = cgroups.locate(TREES / "v2-systemd" / "snap1", CID)
    assert location is not None
    files = cgroups.OpenFiles(limit=2)
    assert cgroups.read(location, files=files) == cgroups.read(location)
    assert len(files) == 2
    files.close()


def _scratch_cgroup() -> Path:
    """A new, empty cgroup in this host's memory hierarchy (v1) or unified one (v2)."""
    import os
    import uuid

    if os.geteuid() != 0:
        missing("cgroup", "creating a cgroup needs root")
    for parent in (Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup")):
        if (parent / "memory.stat").exists() or (parent / "cgroup.controllers").exists():
            path = parent / f"srvmon-test-{uuid.uuid4().hex[:8]}"
            try:
                path.mkdir()
            except OSError as exc:
                missing("cgroup", f"cannot create a cgroup under {parent}: {exc}")
            return path
    missing("cgroup", "no cgroup hierarchy with memory.stat on this host")
    raise AssertionError("unreachable: missing() skips or fails")


def test_a_kept_file_of_a_removed_cgroup_says_cgroup_gone() -> None:
    """Real cgroupfs: the old fd of a removed cgroup fails (ENODEV); the read then reports the
    cgroup gone, as an open would, and the fd is closed."""
    directory = _scratch_cgroup()
    path = str(directory / "memory.stat")
    files = cgroups.OpenFiles()
    try:
        first = files.text(path)
        assert first is not None and "inactive_file" in first
        assert len(files) == 1
        assert files.text(path) is not None, "a second read goes through the kept fd"
    finally:
        directory.rmdir()
    with pytest.raises(cgroups.CgroupGone):
        files.text(path)
    assert len(files) == 0
