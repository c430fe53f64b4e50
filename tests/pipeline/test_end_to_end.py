"""The whole path on real components: dockerd → collector → Kafka → consumer → server → SSE.

A busybox container burns a core; its CPU crosses a per-container rule's threshold; the alert
must arrive on the server's SSE stream and in the alert history.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.processes import TOKEN, ConsumerProcess, ServerProcess, _srvmon_command
from tests.pipeline.streams import create_topic, unique_name

pytestmark = [pytest.mark.docker, pytest.mark.kafka]


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


def _alerts_on_stream(url: str, container: str, seconds: float) -> dict[str, Any]:
    """Read the raw SSE stream until a firing alert for ``container`` arrives."""
    deadline = time.monotonic() + seconds
    with urllib.request.urlopen(f"{url}/api/v1/events?topics=alerts", timeout=5) as stream:
        event, data = "", ""
        while time.monotonic() < deadline:
            line = stream.readline().decode().rstrip("\n")
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data += line.split(":", 1)[1].strip()
            elif line == "":
                if event == "alert":
                    alert = json.loads(data)
                    if alert["machine_name"] == container and alert["to_state"] == "firing":
                        return alert
                event, data = "", ""
    raise AssertionError(f"no firing alert for {container} on the SSE stream in {seconds} s")


def test_container_cpu_burn_raises_an_alert_on_the_sse_stream(
    tmp_path: Path, dockerd: Any, kafka_broker: Any
) -> None:
    """A burning container, seen through cgroups by the real collector, fires a rule end to end."""
    burner = unique_name("e2e-burner")
    dockerd.run("--name", burner, dockerd.image, "sh", "-c", "yes > /dev/null")
    dockerd.run("--name", unique_name("e2e-idle"), dockerd.image, "sleep", "100000")
    topic = unique_name("e2e-metrics")
    create_topic(kafka_broker.bootstrap, topic)

    server = ServerProcess(f"sqlite:///{tmp_path / 'srvmon.db'}", tmp_path).start()
    collector: subprocess.Popen[bytes] | None = None
    consumer = ConsumerProcess(
        kafka_broker.bootstrap, topic, unique_name("e2e-group"), server.url, tmp_path
    )
    try:
        rule = {
            "id": "e2e-burn",
            "name": "Burner CPU",
            "metric": "cpu_percent",
            "warn": 50,
            "crit": 500,
            "selector": {"kind": "container", "machine": "e2e-burner-*"},
        }
        assert _post(f"{server.url}/api/v1/rules", rule)["id"] == "e2e-burn"
        with (tmp_path / "collector.log").open("ab") as log:
            collector = subprocess.Popen(
                [
                    *_srvmon_command(),
                    "collector",
                    "--output",
                    "kafka",
                    "--bootstrap-server",
                    kafka_broker.bootstrap,
                    "--topic",
                    topic,
                    "--docker-url",
                    dockerd.base_url,
                    "--interval",
                    "1",
                    "--host-id-file",
                    str(tmp_path / "host-id"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        consumer.start()
        alert = _alerts_on_stream(server.url, burner, 90)
        assert alert["rule_id"] == "e2e-burn"
        assert alert["level"] == "warning"
        assert 50 <= alert["value"] <= 130  # one busybox `yes` is about one core
        with urllib.request.urlopen(
            f"{server.url}/api/v1/alerts/history?rule=e2e-burn", timeout=10
        ) as answer:
            history = json.loads(answer.read())["events"]
        assert [e["machine_name"] for e in history if e["to_state"] == "firing"] == [burner]
    finally:
        if collector is not None:
            collector.terminate()
            collector.wait(30)
        if consumer.process is not None:
            consumer.terminate()
        server.stop()
    logs = (tmp_path / "collector.log").read_text() + consumer.log()
    assert "Traceback" not in logs, logs[-3000:]
