"""Collector cost per container-sample, against Glances and a bare read-and-encode loop.

Starts a private dockerd (vfs, no network) with N idle containers and a tansu broker, then
measures, one after the other over windows of the same length (1 s interval, host metrics
included):

- ``srvmon collector`` with its Kafka sink (and, with ``--sinks kafka,stdout``, its stdout
  sink); container-samples are counted from what reached the topic (or stdout);
- Glances (``glances -q --export csv -t 1``), installed from PyPI with ``docker`` and
  ``python-dateutil`` (its containers plugin) into a separate venv, never into the project;
  container-samples are the CSV rows' containers with a CPU figure;
- a bare loop carried here (``--bare-loop``): once a second it opens, reads and closes the
  same /proc files and cgroup files srvmon reads, and writes one ``json.dumps`` document.
  It computes no rates and talks to no engine: the floor for reading and encoding.

For each agent: its CPU (every thread's ``schedstat`` run time, in ns) plus the extra CPU of
dockerd, its containerd and the containers' shims over their idle rate (measured in the same
run, before and after, over windows as long as the measured ones), per container-sample; peak
RSS (VmHWM); and wakes per interval per thread (``voluntary_ctxt_switches`` of
``/proc/PID/task/*/status``: each is one sleep the thread woke from).

``python bench/bench_collector.py [--seconds 30] [--containers 20] [--sinks kafka]`` as root.
``--producer-wakes`` instead measures librdkafka's wakes per thread for producer settings.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TICKS = os.sysconf("SC_CLK_TCK")
GLANCES_VENV = Path.home() / ".cache" / "srvmon-bench" / "glances-venv"
GLANCES_PACKAGES = ("glances", "docker", "python-dateutil")
WARM_UP_SECONDS = 4.0


# ---------------------------------------------------------------------------- /proc figures
def _task_cpu(task: Path) -> float:
    """A thread's CPU time in seconds: ``schedstat``'s nanoseconds on a CPU (the 10 ms ticks
    of ``stat``'s utime+stime are too coarse for agents that use milliseconds a second)."""
    try:
        return int((task / "schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_seconds(pid: int) -> float:
    """CPU seconds of every thread a process has now."""
    total = 0.0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        try:
            total += _task_cpu(task)
        except OSError:
            continue
    return total


def threads(pid: int) -> dict[int, tuple[str, float, int]]:
    """tid -> (label, CPU seconds, voluntary context switches). The main thread is "main";
    Python 3.11 does not name its other threads, so they keep the process's name, while
    librdkafka names its own (rdk:main, rdk:broker…)."""
    out: dict[int, tuple[str, float, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            cpu = _task_cpu(task)
            status = (task / "status").read_text()
        except OSError:
            continue
        voluntary = next(
            int(line.split()[1])
            for line in status.splitlines()
            if line.startswith("voluntary_ctxt_switches")
        )
        label = "main" if task.name == str(pid) else comm
        out[int(task.name)] = (label, cpu, voluntary)
    return out


def per_thread(
    before: dict[int, tuple[str, float, int]],
    after: dict[int, tuple[str, float, int]],
    intervals: float,
) -> dict[str, dict[str, float]]:
    """Per thread label: how many threads, wakes per interval (all of them), CPU seconds."""
    out: dict[str, dict[str, float]] = {}
    for tid, (label, cpu, wakes) in after.items():
        cpu0, wakes0 = (before[tid][1], before[tid][2]) if tid in before else (0.0, 0)
        row = out.setdefault(label, {"threads": 0, "wakes_per_interval": 0.0, "cpu_s": 0.0})
        row["threads"] += 1
        row["wakes_per_interval"] += (wakes - wakes0) / intervals
        row["cpu_s"] += cpu - cpu0
    for row in out.values():
        row["wakes_per_interval"] = round(row["wakes_per_interval"], 2)
        row["cpu_s"] = round(row["cpu_s"], 4)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["wakes_per_interval"]))


def engine_pids(dockerd_pid: int, engine_root: str) -> list[int]:
    """dockerd, its containerd, and the shims serving its containers."""
    pids = [dockerd_pid]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if engine_root in cmdline and ("containerd" in cmdline.split(" ")[0]):
            pids.append(int(entry.name))
    return pids


def total_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------------------- one window
def measure_window(
    process: subprocess.Popen[bytes], engine_procs: list[int], seconds: float
) -> dict[str, Any]:
    """The agent's and the engine's CPU, the agent's wakes by thread, over ``seconds``."""
    time.sleep(WARM_UP_SECONDS)  # start-up (imports, first inspections) is not steady state
    if process.poll() is not None:
        raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
    start_wall = time.time()
    threads0 = threads(process.pid)
    agent0, engine0 = cpu_seconds(process.pid), total_cpu(engine_procs)
    time.sleep(seconds)
    agent1, engine1 = cpu_seconds(process.pid), total_cpu(engine_procs)
    threads1 = threads(process.pid)
    end_wall = time.time()
    rss = vm_hwm_mb(process.pid)
    split = per_thread(threads0, threads1, seconds)
    return {
        "since": start_wall,
        "until": end_wall,
        "cpu_s": agent1 - agent0,
        "engine_cpu_s": engine1 - engine0,
        "rss_mb": rss,
        "wakes_per_interval": round(sum(r["wakes_per_interval"] for r in split.values()), 2),
        "threads": split,
    }


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# ---------------------------------------------------------------------------- srvmon
@dataclass(frozen=True)
class Stage:
    """What every measured agent shares: the engine, the broker, the window, a scratch dir."""

    engine: Any
    broker: Any
    engine_procs: list[int]
    seconds: float
    tmp: str
    srvmon_source: Path | None = None


def count_kafka_samples(bootstrap: str, topic: str, since: float, until: float) -> int:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from srvmon_core.codec import decode_batch

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions])
    samples, idle = 0, 0
    while idle < 6:
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            idle += 1
            continue
        idle = 0
        value = message.value()
        if value is None:
            continue
        batch = decode_batch(value)
        if since <= batch.timestamp.timestamp() <= until:
            samples += sum(1 for c in batch.containers if c.cpu_percent is not None)
    consumer.close()
    return samples


def count_jsonl_samples(path: Path, since: float, until: float) -> int:
    from srvmon_core.codec import decode_batch

    samples = 0
    for line in path.read_bytes().splitlines():
        batch = decode_batch(line)
        if since <= batch.timestamp.timestamp() <= until:
            samples += sum(1 for c in batch.containers if c.cpu_percent is not None)
    return samples


def run_srvmon(sink: str, stage: Stage) -> dict[str, Any]:
    engine, broker, tmp = stage.engine, stage.broker, stage.tmp
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    out_path = Path(tmp) / f"srvmon-{sink}.jsonl"
    args = [
        str(Path(sys.executable).parent / "srvmon"),
        "collector",
        "--interval=1",
        f"--docker-url={engine.base_url}",
    ]
    if sink == "kafka":
        args += ["--output=kafka", f"--bootstrap-server={broker.bootstrap}", f"--topic={topic}"]
    else:
        args += ["--output=stdout"]
    env = {**os.environ, "SRVMON_HOST_ID_FILE": f"{tmp}/host-id"}
    if stage.srvmon_source is not None:  # another checkout's collector, for a before/after
        env["PYTHONPATH"] = str(stage.srvmon_source)
    with out_path.open("wb") as out:
        process = subprocess.Popen(
            args,
            env=env,
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        try:
            figures = measure_window(process, stage.engine_procs, stage.seconds)
        finally:
            stop(process)
    if sink == "kafka":
        figures["samples"] = count_kafka_samples(
            broker.bootstrap, topic, figures["since"], figures["until"]
        )
    else:
        figures["samples"] = count_jsonl_samples(out_path, figures["since"], figures["until"])
    return figures


# ---------------------------------------------------------------------------- Glances
def glances_binary(venv: Path) -> Path:
    """Glances in its own venv (created once, then reused): never a project dependency."""
    binary = venv / "bin" / "glances"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", *GLANCES_PACKAGES],
            check=True,
            timeout=600,
        )
    return binary


def glances_version(venv: Path) -> str:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import glances; print(glances.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


def count_glances_samples(path: Path, since: float, until: float) -> int:
    """Rows in the window times the containers with a CPU figure in each row."""
    from datetime import datetime

    samples = 0
    with path.open(newline="") as f:
        rows = csv.reader(f)
        header = next(rows)
        cpu_columns = [
            i
            for i, name in enumerate(header)
            if name.startswith("containers.") and name.endswith(".cpu_percent")
        ]
        for row in rows:
            try:
                stamp = datetime.fromisoformat(row[0]).timestamp()  # local time, as written
            except ValueError:
                continue
            if since <= stamp <= until:
                samples += sum(1 for i in cpu_columns if i < len(row) and row[i] != "")
    return samples


def run_glances(venv: Path, stage: Stage) -> dict[str, Any]:
    binary = glances_binary(venv)
    engine, engine_procs, seconds = stage.engine, stage.engine_procs, stage.seconds
    out_path = Path(stage.tmp) / "glances.csv"
    process = subprocess.Popen(
        [str(binary), "-q", "--export", "csv", "--export-csv-file", str(out_path), "-t", "1"],
        env={**os.environ, "DOCKER_HOST": engine.base_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        figures = measure_window(process, engine_procs, seconds)
    finally:
        stop(process)
    figures["samples"] = count_glances_samples(out_path, figures["since"], figures["until"])
    figures["version"] = glances_version(venv)
    return figures


# ---------------------------------------------------------------------------- bare loop
def bare_plan(engine: Any, tmp: str) -> Path:
    """What the bare loop reads: srvmon's host files, real mounts and cgroup files."""
    from srvmon_agents.collector import cgroups
    from srvmon_agents.collector.mounts import parse_real_mounts

    mounts = [m.mount for m in parse_real_mounts(Path("/proc/1/mounts").read_text())]
    containers = {}
    for container_id in engine.cli("ps", "-q", "--no-trunc").split():
        location = cgroups.locate(Path("/sys/fs/cgroup"), container_id)
        if location is not None:
            # the per-interval files only, as srvmon reads them (limits: every 10 s there)
            containers[container_id] = [
                path
                for name, path in location.files.items()
                if name not in ("cpu.cfs_quota_us", "cpu.cfs_period_us", "memory.limit_in_bytes")
                and name not in ("cpu.max", "memory.max")
            ]
    host = ["stat", "meminfo", "loadavg", "uptime", "diskstats", "1/net/dev"]
    plan = {"host": [f"/proc/{name}" for name in host], "mounts": mounts, "containers": containers}
    path = Path(tmp) / "bare-plan.json"
    path.write_text(json.dumps(plan))
    return path


def bare_loop(plan_path: str) -> None:
    """Once a second: read every planned file (open, read, close), statvfs every mount,
    encode one JSON document, write it as a line. Runs until terminated."""
    import signal

    plan = json.loads(Path(plan_path).read_text())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    out = sys.stdout
    next_due = time.monotonic()
    while True:
        document: dict[str, Any] = {"time": time.time(), "host": {}, "disks": {}, "containers": {}}
        for path in plan["host"]:
            with open(path) as f:
                document["host"][path] = f.read().split()
        for mount in plan["mounts"]:
            st = os.statvfs(mount)
            document["disks"][mount] = [st.f_blocks, st.f_bfree, st.f_bavail, st.f_frsize]
        for container_id, paths in plan["containers"].items():
            figures = {}
            for path in paths:
                with open(path) as f:
                    figures[path.rsplit("/", 1)[1]] = f.read().split()
            document["containers"][container_id] = figures
        out.write(json.dumps(document) + "\n")
        out.flush()
        next_due += 1.0
        time.sleep(max(0.0, next_due - time.monotonic()))


def run_bare(plan: Path, stage: Stage) -> dict[str, Any]:
    out_path = Path(stage.tmp) / "bare.jsonl"
    with out_path.open("wb") as out:
        process = subprocess.Popen([sys.executable, __file__, "--bare-loop", str(plan)], stdout=out)
        try:
            figures = measure_window(process, stage.engine_procs, stage.seconds)
        finally:
            stop(process)
    documents = 0
    for line in out_path.read_bytes().splitlines():
        stamp = json.loads(line)["time"]
        if figures["since"] <= stamp <= figures["until"]:
            documents += len(json.loads(line)["containers"])
    figures["samples"] = documents
    return figures


# ---------------------------------------------------------------------------- librdkafka
PRODUCER_VARIANTS: dict[str, dict[str, str]] = {
    "before (linger.ms=50)": {"linger.ms": "50"},
    "linger.ms=5 (librdkafka's default)": {"linger.ms": "5"},
    "linger.ms=0 (srvmon's default)": {"linger.ms": "0"},
    "linger.ms=0, socket.keepalive.enable=true": {
        "linger.ms": "0",
        "socket.keepalive.enable": "true",
    },
    "linger.ms=0, topic.metadata.refresh.interval.ms=-1": {
        "linger.ms": "0",
        "topic.metadata.refresh.interval.ms": "-1",
    },
    "linger.ms=0, connections.max.idle.ms=5000": {
        "linger.ms": "0",
        "connections.max.idle.ms": "5000",
    },
    "linger.ms=0, statistics.interval.ms=1000": {
        "linger.ms": "0",
        "statistics.interval.ms": "1000",
    },
}


def producer_wakes(seconds: float) -> None:
    """One batch a second through librdkafka, as the Kafka sink sends it; wakes per thread."""
    from confluent_kafka import Producer

    from srvmon_agents.sinks.kafka import PRODUCER_DEFAULTS
    from tests.fixtures.kafka import KafkaBroker, _broker_binary
    from tests.helpers import free_port

    payload = os.urandom(2000)
    results = {}
    with tempfile.TemporaryDirectory(prefix="srvmon-bench-", dir="/tmp") as tmp:
        broker = KafkaBroker(f"127.0.0.1:{free_port()}", _broker_binary(), Path(tmp))
        broker.start()
        try:
            for name, extra in PRODUCER_VARIANTS.items():
                producer = Producer(
                    {**PRODUCER_DEFAULTS, **extra, "bootstrap.servers": broker.bootstrap}
                )
                for _ in range(3):  # connect, learn the metadata
                    producer.poll(0)
                    producer.produce("wakes", payload, key=b"host")
                    time.sleep(1.0)
                before = threads(os.getpid())
                for _ in range(int(seconds)):
                    producer.poll(0)
                    producer.produce("wakes", payload, key=b"host")
                    producer.poll(0)
                    time.sleep(1.0)
                after = threads(os.getpid())
                split = per_thread(before, after, int(seconds))
                results[name] = {
                    label: row["wakes_per_interval"]
                    for label, row in split.items()
                    if label.startswith("rdk:")
                }
                producer.flush(5)
                del producer
        finally:
            broker.stop()
    print(json.dumps(results, indent=2))


# ---------------------------------------------------------------------------- main
def ms_per_sample(figures: dict[str, Any], idle_rate: float, seconds: float) -> float:
    engine_extra = figures["engine_cpu_s"] - idle_rate * seconds
    figures["engine_extra_s"] = round(engine_extra, 4)
    return float((figures["cpu_s"] + engine_extra) * 1000 / max(figures["samples"], 1))


def summary(figures: dict[str, Any], ms: float) -> dict[str, Any]:
    return {
        "ms_cpu_per_container_sample": round(ms, 4),
        "process_alone_ms_per_container_sample": round(
            figures["cpu_s"] * 1000 / max(figures["samples"], 1), 4
        ),
        "container_samples": figures["samples"],
        "process_cpu_s": round(figures["cpu_s"], 4),
        "engine_extra_cpu_s": figures["engine_extra_s"],
        "peak_rss_mb": round(figures["rss_mb"], 1),
        "wakes_per_interval": figures["wakes_per_interval"],
        "wakes_per_interval_by_thread": {
            label: f"{row['wakes_per_interval']} ({int(row['threads'])} thread"
            f"{'s' if row['threads'] > 1 else ''}, {row['cpu_s']} s CPU)"
            for label, row in figures["threads"].items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help="window length; keep it a multiple of 30: the shims' CPU comes in one burst "
        "every 30 s, so every window (idle or measured) then holds the same share of it",
    )
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--sinks", default="kafka", help="comma-separated: kafka, stdout")
    parser.add_argument("--glances-venv", type=Path, default=GLANCES_VENV)
    parser.add_argument(
        "--srvmon-source",
        type=Path,
        help="run the collector from another checkout (e.g. a git worktree of an older commit)",
    )
    parser.add_argument("--bare-loop", metavar="PLAN")
    parser.add_argument("--producer-wakes", action="store_true")
    args = parser.parse_args()
    if args.bare_loop:
        bare_loop(args.bare_loop)
        return
    if args.producer_wakes:
        producer_wakes(args.seconds)
        return

    glances_binary(args.glances_venv)  # install before anything is measured
    print(json.dumps(compare(args), indent=2))


def idle_rate(engine_procs: list[int], seconds: float) -> float:
    """The engine's own CPU per second while no agent runs. The 20 shims together burn
    ~0.2 s in one burst every 30 s, whatever the agents do: an idle window as long as the
    measured ones holds the same share of it."""
    before = total_cpu(engine_procs)
    time.sleep(seconds)
    return (total_cpu(engine_procs) - before) / seconds


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Every agent over its own window, engine idle windows before and after."""
    from tests.fixtures.dockerd import Dockerd
    from tests.fixtures.kafka import KafkaBroker, _broker_binary
    from tests.helpers import free_port

    sinks = [s.strip() for s in args.sinks.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="srvmon-bench-", dir="/tmp") as tmp:
        engine = Dockerd(Path(tmp) / "d")
        engine.root.mkdir()
        broker = KafkaBroker(f"127.0.0.1:{free_port()}", _broker_binary(), Path(tmp))
        try:
            engine.start()
            engine.import_busybox()
            broker.start()
            for _ in range(args.containers):
                engine.run(engine.image, "sleep", "100000")
            assert engine._process is not None
            stage = Stage(
                engine,
                broker,
                engine_pids(engine._process.pid, str(engine.root)),
                args.seconds,
                tmp,
                args.srvmon_source,
            )
            plan = bare_plan(engine, tmp)
            idle_rates = [idle_rate(stage.engine_procs, args.seconds)]
            results: dict[str, dict[str, Any]] = {"bare loop": run_bare(plan, stage)}
            for sink in sinks:
                results[f"srvmon ({sink} sink)"] = run_srvmon(sink, stage)
            results["glances"] = run_glances(args.glances_venv, stage)
            idle_rates.append(idle_rate(stage.engine_procs, args.seconds))
        finally:
            broker.stop()
            engine.stop()
            subprocess.run(
                ["umount", "-R", str(engine.root / "exec")], capture_output=True, check=False
            )
    rate = statistics.mean(idle_rates)
    ms = {name: ms_per_sample(f, rate, args.seconds) for name, f in results.items()}
    report: dict[str, Any] = {
        "seconds": args.seconds,
        "containers": args.containers,
        "glances_version": results["glances"]["version"],
        "engine_idle_cpu_s_per_s": [round(r, 4) for r in idle_rates],
        "agents": {name: summary(results[name], ms[name]) for name in results},
    }
    for sink in sinks:
        ours = ms[f"srvmon ({sink} sink)"]
        report[f"glances_over_srvmon_{sink}"] = round(ms["glances"] / ours, 1)
        report[f"srvmon_{sink}_over_bare_loop"] = round(ours / ms["bare loop"], 2)
    return report


if __name__ == "__main__":
    main()
