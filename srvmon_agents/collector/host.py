"""Host samples: CPU, load, memory, disks, network, temperatures, uptime, processes.

Everything is read below ``proc_root`` and ``sys_root``, so a collector in a container with
the host's /proc mounted at /host/proc reports the host:

- CPU from ``<proc>/stat``; load, uptime and processes from ``<proc>``;
- memory and swap from ``<proc>/meminfo`` (``MemAvailable``; psutil only on kernels older
  than 3.14, which lack it);
- network from ``<proc>/1/net/dev``: the network namespace of the host's init, not ours;
- disk IO from ``<proc>/diskstats``, whole physical disks only (see ``procfs``);
- filesystem usage of the real mounts of ``<proc>/1/mounts`` (see ``mounts``: the table is
  read again only when it changed; ``statvfs`` runs on this thread for local filesystems and
  in a worker with a timeout for network ones), each mount reached below ``host_root`` (the
  host's / bind-mounted read-only into a container), else through ``<proc>/1/root`` when
  ``proc_root`` is not ``/proc``;
- temperatures from ``<sys>/class/hwmon`` (sensors found at start and every minute).

Files read every interval stay open (:class:`~srvmon_agents.collector.procfs.KeptFile`).
Rates use ``CounterTracker`` with the injected monotonic ``clock``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from attrs import define, field, frozen

from srvmon_agents.collector import procfs
from srvmon_agents.collector.mounts import Mount, MountProbe, MountTable
from srvmon_core.rates import CounterTracker
from srvmon_core.schema import DiskIO, DiskUsage, HostSample, NetIO, Temperature

CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
HWMON_REDISCOVER_SECONDS = 60.0


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


def parse_cpu_times(text: str, where: str = "stat") -> tuple[CpuTimes, list[CpuTimes]]:
    """The aggregate ``cpu`` line and one entry per ``cpuN`` line."""
    total: CpuTimes | None = None
    cores: list[CpuTimes] = []
    for line in text.splitlines():
        if not line.startswith("cpu"):
            if total is not None:
                break  # the cpu lines come first
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
        raise OSError(f"no cpu line in {where}")
    return total, cores


def _percent(part: int, whole: int) -> float:
    return max(0.0, min(100.0, part / whole * 100.0)) if whole > 0 else 0.0


def _memory_without_memavailable(proc_root: Path) -> procfs.MemInfo:
    """Kernels before 3.14 have no MemAvailable; psutil estimates it from the zones."""
    import psutil

    psutil.PROCFS_PATH = str(proc_root)
    memory, swap = psutil.virtual_memory(), psutil.swap_memory()
    return procfs.MemInfo(
        total=int(memory.total),
        available=int(memory.available),
        swap_total=int(swap.total),
        swap_free=int(swap.free),
    )


@define
class PhysicalDisks:
    """Which ``diskstats`` names are whole physical disks, decided once per set of names."""

    sys_root: str
    _names: frozenset[str] = frozenset()
    _physical: frozenset[str] = frozenset()

    def select(self, devices: dict[str, procfs.DiskCounters]) -> dict[str, procfs.DiskCounters]:
        if devices.keys() != self._names:
            self._names = frozenset(devices)
            self._physical = frozenset(
                n for n in devices if procfs.is_physical_block_device(self.sys_root, n)
            )
        return {n: c for n, c in devices.items() if n in self._physical}


@define(kw_only=True)
class HostCollector:
    """Reads one HostSample per call to ``collect()``; ``clock`` is monotonic seconds."""

    clock: Callable[[], float]
    proc_root: Path = Path("/proc")
    sys_root: Path = Path("/sys")
    host_root: Path | None = None
    mounts: MountProbe = field(factory=MountProbe)
    _disk_rates: CounterTracker = field(factory=CounterTracker)
    _net_rates: CounterTracker = field(factory=CounterTracker)
    _last_cpu: tuple[CpuTimes, list[CpuTimes]] | None = None
    _stat: procfs.KeptFile = field(init=False)
    _loadavg: procfs.KeptFile = field(init=False)
    _uptime: procfs.KeptFile = field(init=False)
    _meminfo: procfs.KeptFile = field(init=False)
    _diskstats: procfs.KeptFile = field(init=False)
    _net_dev: procfs.KeptFile = field(init=False)
    _mount_table: MountTable = field(init=False)
    _disks_of: PhysicalDisks = field(init=False)
    _visible: tuple[int, tuple[Mount, ...]] = (-1, ())
    """Below ``host_root``: the mounts that are mount points there too, for one table read."""
    _sensors: list[tuple[procfs.HwmonSensor, procfs.KeptFile]] = field(factory=list)
    _sensors_found_at: float | None = None

    def __attrs_post_init__(self) -> None:
        proc = str(self.proc_root)
        self._stat = procfs.KeptFile(f"{proc}/stat")
        self._loadavg = procfs.KeptFile(f"{proc}/loadavg")
        self._uptime = procfs.KeptFile(f"{proc}/uptime")
        self._meminfo = procfs.KeptFile(f"{proc}/meminfo")
        self._diskstats = procfs.KeptFile(f"{proc}/diskstats")
        self._net_dev = procfs.KeptFile(f"{proc}/1/net/dev")
        self._mount_table = MountTable(f"{proc}/1/mounts")
        self._disks_of = PhysicalDisks(str(self.sys_root))
        self._last_cpu = self._cpu_times()

    @property
    def mount_table(self) -> MountTable:
        return self._mount_table

    def memory_total_bytes(self) -> int:
        return self._memory().total

    def close(self) -> None:
        """Close the kept files (a collector that is being thrown away)."""
        for kept in (self._stat, self._loadavg, self._uptime, self._meminfo, self._diskstats):
            kept.close()
        self._net_dev.close()
        self._mount_table.close()
        for _, sensor_file in self._sensors:
            sensor_file.close()

    def collect(self) -> HostSample:
        now = self.clock()
        cpu = self._cpu()
        load = procfs.parse_loadavg(self._loadavg.text())
        memory = self._memory()
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
            memory_total_bytes=memory.total,
            memory_used_bytes=memory.used,
            memory_available_bytes=memory.available,
            memory_percent=memory.percent,
            swap_total_bytes=memory.swap_total,
            swap_used_bytes=memory.swap_used,
            swap_percent=memory.swap_percent,
            disks=tuple(self._disks()),
            disk_io=tuple(disk_io),
            disk_read_bytes_per_s=total([d.read_bytes_per_s for d in disk_io]),
            disk_write_bytes_per_s=total([d.write_bytes_per_s for d in disk_io]),
            disk_read_ops_per_s=total([d.read_ops_per_s for d in disk_io]),
            disk_write_ops_per_s=total([d.write_ops_per_s for d in disk_io]),
            net=tuple(net),
            temperatures=tuple(self._temperatures(now)),
            uptime_seconds=procfs.parse_uptime(self._uptime.text()),
            process_count=procfs.count_processes(self.proc_root),
        )

    def _cpu_times(self) -> tuple[CpuTimes, list[CpuTimes]]:
        text = self._stat.text()
        if text is None:
            raise OSError(f"cannot read {self._stat.path}")
        return parse_cpu_times(text, self._stat.path)

    def _cpu(self) -> tuple[float, tuple[float, ...], float, float]:
        """busy %, per-core busy %, iowait %, steal % since the previous call."""
        current = self._cpu_times()
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

    def _memory(self) -> procfs.MemInfo:
        values = procfs.parse_meminfo(self._meminfo.text() or "")
        if "MemAvailable" not in values:
            return _memory_without_memavailable(self.proc_root)
        return procfs.MemInfo(
            total=values.get("MemTotal", 0),
            available=values["MemAvailable"],
            swap_total=values.get("SwapTotal", 0),
            swap_free=values.get("SwapFree", 0),
        )

    def _disk_io(self, now: float) -> list[DiskIO]:
        text = self._diskstats.text()
        devices = self._disks_of.select(procfs.parse_diskstats(text) if text else {})
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
        text = self._net_dev.text()
        interfaces = procfs.parse_net_dev(text) if text else {}
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

    def _temperatures(self, now: float) -> list[Temperature]:
        found_at = self._sensors_found_at
        if found_at is None or now - found_at >= HWMON_REDISCOVER_SECONDS:
            self._find_sensors(now)
        out = []
        lost = False
        for sensor, kept in self._sensors:
            celsius = procfs.millidegrees(kept.text())
            if celsius is None:
                lost = True
                continue
            out.append(
                Temperature(
                    sensor=sensor.sensor,
                    celsius=celsius,
                    high_celsius=sensor.high_celsius,
                    critical_celsius=sensor.critical_celsius,
                )
            )
        if lost:
            self._sensors_found_at = None  # a chip went away: look again next interval
        return out

    def _find_sensors(self, now: float) -> None:
        for _, kept in self._sensors:
            kept.close()
        self._sensors = [
            (sensor, procfs.KeptFile(sensor.input_path))
            for sensor in procfs.discover_hwmon(self.sys_root)
        ]
        self._sensors_found_at = now

    def _disks(self) -> list[DiskUsage]:
        out = []
        prefix = ""
        mounts = self._mount_table.mounts()
        if self.host_root is not None:
            prefix = str(self.host_root).rstrip("/")
            mounts = self._visible_below_host_root(prefix, mounts)
        elif self.proc_root != Path("/proc"):
            prefix = f"{self.proc_root}/1/root"
        for mount in mounts:
            path = f"{prefix}{mount.mount}"
            st = self.mounts.usage(path, mount.fstype)
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

    def _visible_below_host_root(self, prefix: str, mounts: tuple[Mount, ...]) -> tuple[Mount, ...]:
        """The mounts that are mount points below the host root too, decided once per read
        of the mount table. A mount made on the host after the host's / was bind-mounted
        privately into this container is not there: its directory would report the parent
        filesystem under the new mount's name, so it is left out until the collector restarts
        (with ``rslave`` propagation it is there at once)."""
        reads, visible = self._visible
        if reads != self._mount_table.reads:
            visible = tuple(
                m for m in mounts if m.mount == "/" or os.path.ismount(f"{prefix}{m.mount}")
            )
            self._visible = (self._mount_table.reads, visible)
        return visible
