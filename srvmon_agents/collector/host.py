"""Host samples: CPU, load, memory, disks, network, temperatures, uptime, processes.

Everything is read below ``proc_root`` and ``sys_root``, so a collector in a container with
the host's /proc mounted at /host/proc reports the host:

- CPU from ``<proc>/stat``; load, uptime and processes from ``<proc>``;
- memory and swap via psutil, whose module-global ``psutil.PROCFS_PATH`` is set to
  ``proc_root`` once, when a HostCollector is built (one proc root per process);
- network from ``<proc>/1/net/dev``: the network namespace of the host's init, not ours;
- disk IO from ``<proc>/diskstats``, whole physical disks only (see ``procfs``);
- filesystem usage of the real mounts of ``<proc>/1/mounts``, each ``statvfs`` in a worker
  thread with a timeout: a hung mount (dead NFS server) is skipped and counted, never waited on;
- temperatures from ``<sys>/class/hwmon``.

Rates use ``CounterTracker`` with the injected monotonic ``clock``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import psutil
from attrs import define, field, frozen

from srvmon_agents.collector import procfs
from srvmon_core.rates import CounterTracker
from srvmon_core.schema import DiskIO, DiskUsage, HostSample, NetIO, Temperature

CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@frozen(kw_only=True)
class CpuTimes:
    """Jiffies of one CPU line of /proc/stat (guest time is already inside user/nice)."""

    busy: int
    idle: int
    iowait: int
    steal: int

    @property
    def total(self) -> int:
        return self.busy + self.idle + self.iowait


def read_cpu_times(proc_root: Path) -> tuple[CpuTimes, list[CpuTimes]]:
    """The aggregate ``cpu`` line and one entry per ``cpuN`` line."""
    total: CpuTimes | None = None
    cores: list[CpuTimes] = []
    with open(f"{proc_root}/stat", encoding="utf-8") as stat:
        text = stat.read()
    for line in text.splitlines():
        if not line.startswith("cpu"):
            continue
        parts = line.split()
        values = dict(zip(CPU_FIELDS, (int(v) for v in parts[1:9]), strict=False))
        times = CpuTimes(
            busy=sum(values.get(k, 0) for k in ("user", "nice", "system", "irq", "softirq"))
            + values.get("steal", 0),
            idle=values.get("idle", 0),
            iowait=values.get("iowait", 0),
            steal=values.get("steal", 0),
        )
        if parts[0] == "cpu":
            total = times
        else:
            cores.append(times)
    if total is None:
        raise OSError(f"no cpu line in {proc_root / 'stat'}")
    return total, cores


def _percent(part: int, whole: int) -> float:
    return max(0.0, min(100.0, part / whole * 100.0)) if whole > 0 else 0.0


@define
class MountProbe:
    """``statvfs`` with a timeout. A call that hangs keeps its thread; the mount is skipped
    (and counted in ``hung_mounts``) until that call returns."""

    timeout_seconds: float = 1.0
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs
    workers: int = 4
    _pending: dict[str, concurrent.futures.Future[None]] = field(factory=dict)
    _pool: concurrent.futures.ThreadPoolExecutor = field(init=False)
    skipped: int = 0

    def __attrs_post_init__(self) -> None:
        # Reused threads: starting one per statvfs per second would be most of the host's cost.
        # Hung calls occupy workers; beyond ``workers`` hung mounts new probes queue and time out.
        self._pool = concurrent.futures.ThreadPoolExecutor(self.workers, "statvfs")

    @property
    def hung_mounts(self) -> int:
        return sum(1 for f in self._pending.values() if not f.done())

    def usage(self, path: str) -> os.statvfs_result | None:
        pending = self._pending.get(path)
        if pending is not None and not pending.done():
            self.skipped += 1
            return None
        result: list[os.statvfs_result] = []

        def probe() -> None:
            with contextlib.suppress(OSError):
                result.append(self.statvfs(path))

        future = self._pool.submit(probe)
        try:
            future.result(timeout=self.timeout_seconds)
        except concurrent.futures.TimeoutError:
            self._pending[path] = future
            self.skipped += 1
            return None
        self._pending.pop(path, None)
        return result[0] if result else None


@define(kw_only=True)
class HostCollector:
    """Reads one HostSample per call to ``collect()``; ``clock`` is monotonic seconds."""

    clock: Callable[[], float]
    proc_root: Path = Path("/proc")
    sys_root: Path = Path("/sys")
    mounts: MountProbe = field(factory=MountProbe)
    _disk_rates: CounterTracker = field(factory=CounterTracker)
    _net_rates: CounterTracker = field(factory=CounterTracker)
    _last_cpu: tuple[CpuTimes, list[CpuTimes]] | None = None

    def __attrs_post_init__(self) -> None:
        psutil.PROCFS_PATH = str(self.proc_root)
        self._last_cpu = read_cpu_times(self.proc_root)

    def memory_total_bytes(self) -> int:
        return int(psutil.virtual_memory().total)

    def collect(self) -> HostSample:
        now = self.clock()
        cpu = self._cpu()
        load = procfs.read_loadavg(self.proc_root)
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        disk_io = self._disk_io(now)
        net = self._net(now)

        def total(values: list[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return sum(present) if values and len(present) == len(values) else None

        return HostSample(
            cpu_percent=cpu[0],
            cpu_per_core_percent=cpu[1],
            cpu_iowait_percent=cpu[2],
            cpu_steal_percent=cpu[3],
            load_1=load[0],
            load_5=load[1],
            load_15=load[2],
            memory_total_bytes=int(memory.total),
            memory_used_bytes=int(memory.total - memory.available),
            memory_available_bytes=int(memory.available),
            memory_percent=float(memory.percent),
            swap_total_bytes=int(swap.total),
            swap_used_bytes=int(swap.used),
            swap_percent=float(swap.percent),
            disks=tuple(self._disks()),
            disk_io=tuple(disk_io),
            disk_read_bytes_per_s=total([d.read_bytes_per_s for d in disk_io]),
            disk_write_bytes_per_s=total([d.write_bytes_per_s for d in disk_io]),
            disk_read_ops_per_s=total([d.read_ops_per_s for d in disk_io]),
            disk_write_ops_per_s=total([d.write_ops_per_s for d in disk_io]),
            net=tuple(net),
            temperatures=tuple(
                Temperature(
                    sensor=t.sensor,
                    celsius=t.celsius,
                    high_celsius=t.high_celsius,
                    critical_celsius=t.critical_celsius,
                )
                for t in procfs.read_hwmon(self.sys_root)
            ),
            uptime_seconds=procfs.read_uptime(self.proc_root),
            process_count=procfs.count_processes(self.proc_root),
        )

    def _cpu(self) -> tuple[float, tuple[float, ...], float, float]:
        """busy %, per-core busy %, iowait %, steal % since the previous call."""
        current = read_cpu_times(self.proc_root)
        previous = self._last_cpu or current
        self._last_cpu = current
        (now_total, now_cores), (prev_total, prev_cores) = current, previous
        whole = now_total.total - prev_total.total
        cores = tuple(
            _percent(c.busy - p.busy, c.total - p.total)
            for c, p in zip(now_cores, prev_cores, strict=False)
        )
        return (
            _percent(now_total.busy - prev_total.busy, whole),
            cores,
            _percent(now_total.iowait - prev_total.iowait, whole),
            _percent(now_total.steal - prev_total.steal, whole),
        )

    def _disk_io(self, now: float) -> list[DiskIO]:
        devices = procfs.read_diskstats(self.proc_root, self.sys_root)
        self._disk_rates.forget_missing(
            {(name, counter) for name in devices for counter in ("rb", "wb", "ro", "wo")}
        )
        out = []
        for name, c in sorted(devices.items()):
            out.append(
                DiskIO(
                    device=name,
                    read_bytes_per_s=self._disk_rates.update((name, "rb"), c.read_bytes, now),
                    write_bytes_per_s=self._disk_rates.update((name, "wb"), c.write_bytes, now),
                    read_ops_per_s=self._disk_rates.update((name, "ro"), c.read_ops, now),
                    write_ops_per_s=self._disk_rates.update((name, "wo"), c.write_ops, now),
                )
            )
        return out

    def _net(self, now: float) -> list[NetIO]:
        interfaces = procfs.read_net_dev(f"{self.proc_root}/1/net/dev") or {}
        self._net_rates.forget_missing(
            {(name, c) for name in interfaces for c in ("rxb", "txb", "rxe", "txe", "rxd", "txd")}
        )
        out = []
        for name, c in sorted(interfaces.items()):

            def per_s(counter: str, value: int, name: str = name) -> float | None:
                return self._net_rates.update((name, counter), value, now)

            out.append(
                NetIO(
                    interface=name,
                    rx_bytes_per_s=per_s("rxb", c.rx_bytes),
                    tx_bytes_per_s=per_s("txb", c.tx_bytes),
                    rx_errors_per_s=per_s("rxe", c.rx_errors),
                    tx_errors_per_s=per_s("txe", c.tx_errors),
                    rx_drops_per_s=per_s("rxd", c.rx_drops),
                    tx_drops_per_s=per_s("txd", c.tx_drops),
                )
            )
        return out

    def _disks(self) -> list[DiskUsage]:
        out = []
        for mount in procfs.read_real_mounts(f"{self.proc_root}/1/mounts"):
            path = mount.mount
            if self.proc_root != Path("/proc"):
                path = str(self.proc_root / "1" / "root") + mount.mount
            st = self.mounts.usage(path)
            if st is None or st.f_blocks == 0:
                continue
            total = st.f_blocks * st.f_frsize
            free_for_users = st.f_bavail * st.f_frsize
            used = total - st.f_bfree * st.f_frsize
            denominator = used + free_for_users
            out.append(
                DiskUsage(
                    mount=mount.mount,
                    device=mount.device,
                    fstype=mount.fstype,
                    total_bytes=total,
                    used_bytes=used,
                    used_percent=used / denominator * 100.0 if denominator else 0.0,
                )
            )
        return out
