"""A real ``prometheus`` (Debian 2.42) scrapes a real ``srvmon server`` and ``srvmon
consumer`` (subprocesses on free 127.0.0.1 ports) with the documented scrape config and
rules; ``promtool check metrics`` reads both endpoints' real output."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from srvmon_core.codec import encode_batch
from srvmon_core.schema import Batch, ContainerSample, HostSample
from tests.fixtures.prometheus import Prometheus
from tests.helpers import free_port
from tests.pipeline.processes import TOKEN, ConsumerProcess, ServerProcess
from tests.pipeline.streams import EPOCH, batches, create_topic, produce, unique_name, wait_until
from tests.prometheus.blocks import doc_blocks

pytestmark = [pytest.mark.prometheus, pytest.mark.kafka]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def post_batch(server_url: str, batch: Batch) -> None:
    request = urllib.request.Request(
        f"{server_url}/api/v1/ingest",
        encode_batch(batch),
        {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def busy_host() -> Batch:
    """A host at 95 % memory with one container: the documented memory rule matches it."""
    return Batch(
        host_id="db-1",
        hostname="db-1.example",
        timestamp=EPOCH + timedelta(seconds=10),  # beside the streamed batches' times
        host=HostSample(
            cpu_percent=37.5,
            load_1=0.5,
            load_5=0.4,
            load_15=0.3,
            memory_total_bytes=8_000,
            memory_used_bytes=7_600,
            memory_available_bytes=400,
            memory_percent=95.0,
        ),
        containers=(ContainerSample(id="c-pg", name="postgres", cpu_percent=150.0),),
    )


def check_metrics(promtool: str, text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, "check", "metrics"],
        check=False,
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_prometheus_scrapes_server_and_consumer(
    kafka_broker: Any,
    tmp_path: Path,
    start_prometheus: Callable[..., Prometheus],
    promtool: str,
) -> None:
    """Both targets up; PromQL returns srvmon_machine_up and the per-machine series with the
    values sent; the consumer's delivered counts; the documented rules load healthy and the
    memory rule is pending for the host at 95 %; promtool finds nothing to warn about on
    either endpoint's real output."""
    topic = unique_name("prom")
    create_topic(kafka_broker.bootstrap, topic, partitions=2)
    produce(kafka_broker.bootstrap, topic, batches(hosts=2, steps=range(3)))  # 18 samples
    server = ServerProcess(f"sqlite:///{tmp_path / 'srvmon.db'}", tmp_path).start()
    consumer = ConsumerProcess(
        kafka_broker.bootstrap, topic, unique_name("g"), server.url, tmp_path
    )
    consumer_port = free_port()
    consumer.env["SRVMON_CONSUMER_METRICS_PORT"] = str(consumer_port)
    consumer.start()
    try:
        post_batch(server.url, busy_host())
        config = (
            doc_blocks()["prometheus.yml"]
            .replace("15s", "1s")
            .replace('["srvmon:8004"]', f'["127.0.0.1:{server.port}"]')
            .replace(
                '["srvmon-consumer-1:9464", "srvmon-consumer-2:9464"]',
                f'["127.0.0.1:{consumer_port}"]',
            )
        )
        assert str(server.port) in config and str(consumer_port) in config
        rules = {"srvmon-rules.yml": doc_blocks()["srvmon-rules.yml"]}
        prometheus = start_prometheus(config, rules)

        def delivered() -> bool:
            got = prometheus.query("srvmon_consumer_delivered_samples_total")
            return [value for _, value in got] == [18.0]

        wait_until(delivered, 60, "Prometheus to scrape the consumer's 18 delivered samples")

        def health() -> dict[str, str]:
            return {t["labels"]["job"]: t["health"] for t in prometheus.targets()}

        wait_until(
            lambda: health() == {"srvmon-server": "up", "srvmon-consumer": "up"},
            10,
            f"both targets up (now {health()})",
        )
        assert sorted(v for _, v in prometheus.query("up")) == [1.0, 1.0]

        def machines() -> list[tuple[str, str, str, float]]:
            got = prometheus.query('srvmon_machine_up{job="srvmon-server"}')
            return sorted((m["kind"], m["hostname"], m.get("container", ""), v) for m, v in got)

        expected = sorted(
            [("host", f"host-{h:04d}", "", 1.0) for h in range(2)]
            + [("container", f"host-{h:04d}", f"c{i}", 1.0) for h in range(2) for i in range(2)]
            + [("host", "db-1.example", "", 1.0), ("container", "db-1.example", "postgres", 1.0)]
        )
        wait_until(lambda: machines() == expected, 10, "srvmon_machine_up of all 8 machines")
        cpu = {m["hostname"]: v for m, v in prometheus.query("srvmon_host_cpu_ratio")}
        assert cpu == {"host-0000": 0.02, "host-0001": 0.02, "db-1.example": 0.375}
        assert prometheus.query('srvmon_container_cpu_ratio{container="postgres"}')[0][1] == 1.5
        seen = prometheus.query(
            'srvmon_machine_last_seen_timestamp_seconds{hostname="db-1.example",kind="host"}'
        )
        assert abs(seen[0][1] - datetime.now(UTC).timestamp()) < 60

        loaded = {r["name"]: r for r in prometheus.rules()}
        assert set(loaded) == {"SrvmonMachineDown", "SrvmonHostMemoryHigh"}
        assert all(r["health"] == "ok" for r in loaded.values()), loaded

        def pending() -> list[Any]:
            alerts = {r["name"]: r for r in prometheus.rules()}["SrvmonHostMemoryHigh"]["alerts"]
            return [(a["state"], a["labels"]["hostname"]) for a in alerts]

        wait_until(lambda: pending() == [("pending", "db-1.example")], 10, "the memory rule")

        for url in (f"{server.url}/metrics", f"http://127.0.0.1:{consumer_port}/metrics"):
            text = fetch(url)
            assert text.count("# TYPE") >= 8, text
            result = check_metrics(promtool, text)
            assert (result.returncode, result.stdout + result.stderr) == (0, ""), url
        bad = check_metrics(promtool, "# HELP x_count x\n# TYPE x_count gauge\nx_count 1\n")
        assert bad.returncode != 0 and "_count" in bad.stdout + bad.stderr  # it does lint
        assert json.loads(fetch(f"{server.url}/api/v1/health"))["status"] == "ok"
    finally:
        consumer.kill()
        server.stop()
