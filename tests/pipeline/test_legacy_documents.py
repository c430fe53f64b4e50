"""Java-style documents on both migration paths, into real processes (issue 10).

1. The old Java collectors keep producing to Kafka; ``srvmon consumer`` relays to
   ``srvmon server``.
2. The old Spring consumer is pointed at ``srvmon server``: it POSTs the same documents to
   ``/api/metrics`` without a token, from a network the server lets do so.

The documents are hand-written text as the Java collector writes it (doubles with exponents,
``eth0_1`` keys, ``/mysql-db`` names, zone-less local timestamps, a 5 s loop), so every byte
count and delta must come out as the right per-second value, whichever path it took.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.processes import TOKEN, ConsumerProcess, ServerProcess
from tests.pipeline.streams import create_topic, produce, unique_name, wait_until
from tests.server.legacy_client import MYSQL_ID, NGINX_ID, java_document

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

LOCAL_TIMES = ["2026-01-15T12:00:00", "2026-01-15T12:00:05", "2026-01-15T12:00:10"]
"""Europe/Berlin local times (UTC+1 in January) of three 5-second loops."""


def _get(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _post_without_token(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, answer.read()


def _series(base: str, key: str, metric: str) -> list[tuple[str, float]]:
    answer = _get(
        f"{base}/api/v1/machines/{key}/series?metric={metric}"
        "&from=2026-01-15T10:59:00Z&to=2026-01-15T11:01:00Z"
    )
    return [(f"{p[0]:.0f}", p[1]) for p in answer["points"]]


EXPECTED_HOST = {
    "cpu_percent": 37.5,
    "memory_used_bytes": 15_519_293_440.0,  # 1.551929344E10
    "disk_read_bytes_per_s": 819.2,  # 4096.0 per 5 s loop
    "disk_write_bytes_per_s": 2457.6,  # 1.2288E4 per loop
    "net_rx_bytes_per_s": 500_000.0,  # eth0_1 only: lo_0 is loopback
    "net_tx_bytes_per_s": 100_000.0,
    "temperature_max_celsius": 61.0,
}
EXPECTED_MYSQL = {
    "cpu_percent": 140.25,
    "memory_working_set_bytes": 1_073_741_824.0,
    "block_read_bytes_per_s": 40_960.0,
    "block_write_bytes_per_s": 204_800.0,
    "net_rx_bytes_per_s": 200_000.0,
    "net_tx_bytes_per_s": 800_000.0,
}
EXPECTED_NGINX = {
    "cpu_percent": 0.0,
    "memory_working_set_bytes": 52_428_800.0,
    "block_read_bytes_per_s": 0.0,  # its negative write delta is a counter reset: absent
}


def _check_stored(base: str, host_id: str) -> None:
    """What one host's three documents became, read back over srvmon's REST API."""
    host = _get(f"{base}/api/v1/machines/{host_id}")
    assert host["metrics"] == EXPECTED_HOST
    assert host["last_seen"] == "2026-01-15T11:00:10Z"  # Berlin local 12:00:10
    assert set(host["sample"]["not_collected"]) >= {"load_1", "memory_percent", "swap_percent"}
    inventory = _get(f"{base}/api/v1/machines")["hosts"]
    (entry,) = [h for h in inventory if h["key"] == host_id]
    containers = {c["name"]: c for c in entry["containers"]}
    assert set(containers) == {"mysql-db", "nginx"}  # the leading "/" is gone
    assert containers["mysql-db"]["key"] == f"{host_id}:mysql-db"
    assert containers["mysql-db"]["metrics"] == EXPECTED_MYSQL
    assert containers["nginx"]["metrics"] == EXPECTED_NGINX
    assert {c["restart_count"] for c in containers.values()} == {None}  # none was sent
    mysql = _get(f"{base}/api/v1/machines/{host_id}:mysql-db")
    assert mysql["sample"]["id"] == MYSQL_ID
    assert _series(base, host_id, "disk_read_bytes_per_s") == [
        ("1768474800", 819.2),
        ("1768474805", 819.2),
        ("1768474810", 819.2),
    ]
    assert _series(base, f"{host_id}:nginx", "restart_count") == []
    nginx = _get(f"{base}/api/v1/machines/{host_id}:nginx")
    assert nginx["sample"]["id"] == NGINX_ID


def test_java_documents_through_the_consumer_and_through_post_api_metrics(
    kafka_broker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both paths store the same per-second values, in UTC, under srvmon's machine keys."""
    for name, value in {
        "SRVMON_LEGACY_API": "1",
        "SRVMON_LEGACY_TZ": "Europe/Berlin",
        "SRVMON_LEGACY_INTERVAL": "5",
        "SRVMON_LEGACY_TOKENLESS_NETWORKS": "127.0.0.0/8",
    }.items():
        monkeypatch.setenv(name, value)  # the server subprocess inherits them
    server = ServerProcess(f"sqlite:///{tmp_path / 'srvmon.db'}", tmp_path).start()
    try:
        # path 2: the original consumer posts to /api/metrics, no token
        for local in LOCAL_TIMES:
            status, body = _post_without_token(
                f"{server.url}/api/metrics", java_document(local, host_id="posted-host")
            )
            assert (status, body) == (200, b"")
        _check_stored(server.url, "posted-host")

        # path 1: old collectors → Kafka → srvmon consumer → srvmon server
        topic = unique_name("legacy-java")
        create_topic(kafka_broker.bootstrap, topic)
        documents = [java_document(local, host_id="kafka-host") for local in LOCAL_TIMES]
        assert produce(kafka_broker.bootstrap, topic, documents) == 3
        consumer = ConsumerProcess(
            kafka_broker.bootstrap, topic, unique_name("g"), server.url, tmp_path
        )
        consumer.env["SRVMON_LEGACY_TZ"] = "Europe/Berlin"
        consumer.env["SRVMON_LEGACY_INTERVAL"] = "5"
        consumer.start()
        try:

            def relayed() -> bool:
                try:
                    return _get(f"{server.url}/api/v1/machines/kafka-host")["last_seen"] == (
                        "2026-01-15T11:00:10Z"
                    )
                except OSError:
                    return False

            wait_until(relayed, 60, "the consumer to relay three Java documents")
        finally:
            assert consumer.terminate() == 0, consumer.log()
        assert "dead-lettered" not in consumer.log()
        _check_stored(server.url, "kafka-host")
    finally:
        server.stop()
