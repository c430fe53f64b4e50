"""The SSE stream over a raw socket: headers, ids, resume, resync, heartbeat, slow and
stalled clients, views (fleet, host, alerts) and summaries."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta

import pytest

from tests.browser.feed import CPU_RULE
from tests.server.harness import T0, RunningServer, SseReader, make_batch, wait_for


def put_cpu_rule(server: RunningServer) -> None:
    resp = server.request("PUT", "/api/v1/rules/cpu-hot", json.dumps(CPU_RULE))
    assert resp.status == 200, resp.body


def is_sample(frame: dict[str, object]) -> bool:
    return frame.get("event") == "sample"


def test_stream_headers_hello_and_samples(server: RunningServer) -> None:
    """The stream starts with retry and hello, then numbered sample events per machine."""
    reader = SseReader(server.port, "/api/v1/events?topics=metrics")
    try:
        assert reader.status == 200
        assert reader.headers["content-type"].startswith("text/event-stream")
        assert reader.headers["cache-control"] == "no-cache"
        assert reader.headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in reader.headers
        first = reader.until(lambda f: f.get("event") == "hello")
        assert first[0] == {"retry": "2000"}
        assert first[-1]["data"]["last_id"] == 0
        server.ingest(make_batch(cpu=33.0, containers=(("web", 5.0),)))
        frames = reader.until(lambda f: is_sample(f) and f["data"]["key"] == "h1:web")
        samples = [f for f in frames if is_sample(f)]
        assert [(f["id"], f["data"]["key"]) for f in samples] == [(1, "h1"), (2, "h1:web")]
        machines = reader.until(lambda f: f.get("event") == "machine" and f["id"] == 4)
        assert [f["data"]["key"] for f in machines if f.get("event") == "machine"] == [
            "h1",
            "h1:web",
        ]
        assert samples[0]["data"]["metrics"]["cpu_percent"] == 33.0
        assert samples[1]["data"]["kind"] == "container"
    finally:
        reader.close()


def test_no_gzip_even_when_compression_on(start_server) -> None:  # type: ignore[no-untyped-def]
    """compress_response is never applied to the stream."""
    server = start_server()
    server.call(lambda: server.context.hub)  # server is running
    reader = SseReader(server.port, "/api/v1/events", headers={"Accept-Encoding": "gzip"})
    try:
        assert "content-encoding" not in reader.headers
        reader.until(lambda f: f.get("event") == "hello")
    finally:
        reader.close()


def test_resume_with_last_event_id(server: RunningServer) -> None:
    """Reconnecting with Last-Event-ID (header or query) replays exactly the missed events."""
    for n in range(3):
        server.ingest(make_batch(host_id=f"h{n}"))
    reader = SseReader(server.port, "/api/v1/events", headers={"Last-Event-ID": "1"})
    try:
        frames = reader.until(lambda f: f.get("id") == 6)
        # each new host yields a sample and a machine event
        assert [(f["id"], f["event"], f["data"]["key"]) for f in frames if "id" in f] == [
            (2, "machine", "h0"),
            (3, "sample", "h1"),
            (4, "machine", "h1"),
            (5, "sample", "h2"),
            (6, "machine", "h2"),
        ]
    finally:
        reader.close()
    reader = SseReader(server.port, "/api/v1/events?last_event_id=2&machines=h2")
    try:
        frames = reader.until(lambda f: f.get("id") == 6)
        assert [f["id"] for f in frames if "id" in f] == [5, 6]
    finally:
        reader.close()


def test_resync_when_too_far_behind(start_server) -> None:  # type: ignore[no-untyped-def]
    """A Last-Event-ID older than the ring buffer gets one resync event carrying the last id."""
    server = start_server(ring_buffer_size=2)
    for n in range(4):
        server.ingest(make_batch(host_id=f"h{n}"))
    reader = SseReader(server.port, "/api/v1/events", headers={"Last-Event-ID": "1"})
    try:
        frames = reader.until(lambda f: f.get("event") == "resync")
        resync = frames[-1]
        assert resync["data"] == {"reason": "too far behind"}
        assert resync["id"] == 8
        server.ingest(make_batch(host_id="h9"))
        after = reader.until(is_sample)
        assert [f["id"] for f in after if "id" in f] == [9]
    finally:
        reader.close()


def test_heartbeat(start_server) -> None:  # type: ignore[no-untyped-def]
    """An idle stream gets a ': hb' comment every heartbeat_seconds."""
    server = start_server(heartbeat_seconds=0.2)
    reader = SseReader(server.port, "/api/v1/events")
    try:
        started = time.monotonic()
        frames = reader.until(lambda f: f.get("comment") == "hb", timeout=3)
        assert frames[-1] == {"comment": "hb"}
        assert time.monotonic() - started >= 0.15
        reader.until(lambda f: f.get("comment") == "hb", timeout=3)
    finally:
        reader.close()


def slow_reader(port: int, path: str = "/api/v1/events") -> socket.socket:
    """A client with a tiny receive buffer that reads nothing until told to."""
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    slow.connect(("127.0.0.1", port))
    slow.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return slow


def drain(sock: socket.socket, quiet: float = 0.5) -> bytes:
    """Read until nothing arrives for ``quiet`` seconds."""
    sock.settimeout(quiet)
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


PAD = tuple((f"c{i:03d}-" + "x" * 40, 1.0) for i in range(60))
"""60 containers with long names: about 17 KB of sample frames per batch."""


def test_slow_client_gets_the_newest_values_and_is_not_dropped(start_server) -> None:  # type: ignore[no-untyped-def]
    """A client that reads far slower than the server publishes is not dropped and does not
    fall behind: what waits for it is the newest sample per machine, so when it reads, it
    gets each host's latest value, older values never after newer ones, and far fewer
    frames than were published."""
    server = start_server(client_queue_size=50)
    hub = server.context.hub
    slow = slow_reader(server.port, "/api/v1/events?topics=metrics")
    try:
        wait_for(lambda: server.call(lambda: hub.client_count) == 1)
        rounds, hosts = 40, 4
        for n in range(rounds):
            for h in range(hosts):
                at = T0 + timedelta(seconds=n)
                server.ingest(make_batch(host_id=f"h{h}", at=at, cpu=float(n), containers=PAD))
        assert server.call(lambda: hub.conflated) > 0, "the socket never backed up"
        text = drain(slow).decode(errors="replace")
        assert server.call(lambda: hub.dropped_clients) == 0
        assert server.call(lambda: hub.client_count) == 1
        seen: dict[str, list[float]] = {}
        for line in text.split("\n"):
            if line.startswith("data: ") and '"kind":"host"' in line:
                data = json.loads(line[6:])
                seen.setdefault(data["key"], []).append(data["metrics"]["cpu_percent"])
        assert sorted(seen) == [f"h{h}" for h in range(hosts)]
        for values in seen.values():
            assert values[-1] == rounds - 1  # the newest
            assert values == sorted(set(values))  # never an older value after a newer one
        published = rounds * hosts * (1 + len(PAD))
        received = text.count("event: sample")
        assert received < published / 2, (received, published)
    finally:
        slow.close()


def test_stalled_client_is_dropped_as_the_last_resort(start_server) -> None:  # type: ignore[no-untyped-def]
    """A socket that takes nothing for client_stall_seconds is closed and forgotten; a
    client that reads keeps streaming."""
    server = start_server(client_stall_seconds=0.3)
    hub = server.context.hub
    slow = slow_reader(server.port)
    fast = SseReader(server.port, "/api/v1/events")
    try:
        wait_for(lambda: server.call(lambda: hub.client_count) == 2)
        deadline = time.monotonic() + 20
        n = 0
        while server.call(lambda: hub.dropped_clients) == 0:
            assert time.monotonic() < deadline, "stalled client was never dropped"
            server.ingest(make_batch(host_id=f"h{n}", containers=PAD))
            n += 1
            fast.until(lambda f, n=n: is_sample(f) and f["data"]["key"] == f"h{n - 1}")
            time.sleep(0.05)
        wait_for(lambda: server.call(lambda: hub.client_count) == 1)
        server.ingest(make_batch(host_id="after"))
        fast.until(lambda f: is_sample(f) and f["data"]["key"] == "after")
        assert server.call(lambda: hub.dropped_clients) == 1
    finally:
        slow.close()
        fast.close()


def test_fleet_view_gets_summaries_and_alerts_not_samples(server: RunningServer) -> None:
    """view=fleet: on connect the newest summary of every host, then one per stored batch
    with container counts; alerts; never a sample or machine event."""
    put_cpu_rule(server)
    server.ingest(make_batch(host_id="h1", cpu=10.0, containers=(("web", 1.0), ("db", 1.0))))
    reader = SseReader(server.port, "/api/v1/events?view=fleet")
    try:
        first = reader.until(lambda f: f.get("event") == "summary")
        assert "id" not in first[-1]
        assert first[-1]["data"]["key"] == "h1"
        assert first[-1]["data"]["container_counts"]["total"] == 2
        server.ingest(
            make_batch(host_id="h2", at=T0, cpu=97.0, containers=(("web", 1.0),)),
        )
        frames = reader.until(
            lambda f: f.get("event") == "summary" and f["data"]["status"] == "critical"
        )
        names = [f.get("event") for f in frames if "event" in f]
        assert "alert" in names
        assert not {"sample", "machine"} & set(names)
        summary = frames[-1]["data"]
        assert summary["key"] == "h2"
        assert summary["metrics"]["cpu_percent"] == 97.0
        assert summary["alert"]["rule_id"] == "cpu-hot"
        assert summary["alert"]["level"] == "critical"
    finally:
        reader.close()


def test_host_view_gets_that_host_and_every_alert(server: RunningServer) -> None:
    """view=host&host=h1: samples of h1 and its containers, h1's summary, alerts of any
    host; nothing of h2's samples."""
    put_cpu_rule(server)
    reader = SseReader(server.port, "/api/v1/events?view=host&host=h1")
    try:
        reader.until(lambda f: f.get("event") == "hello")
        server.ingest(make_batch(host_id="h2", cpu=97.0, containers=(("web", 1.0),)))
        server.ingest(make_batch(host_id="h1", cpu=5.0, containers=(("web", 2.0),)))
        frames = reader.until(lambda f: f.get("event") == "summary")
        keys = [
            (f["event"], f["data"].get("key") or f["data"].get("machine_key"))
            for f in frames
            if "event" in f
        ]
        assert ("alert", "h2") in keys
        assert ("sample", "h1") in keys and ("sample", "h1:web") in keys
        assert not [k for k in keys if k[0] in {"sample", "machine"} and k[1].startswith("h2")]
        assert frames[-1]["data"]["key"] == "h1"
    finally:
        reader.close()


def test_summaries_at_most_one_per_host_per_interval(start_server) -> None:  # type: ignore[no-untyped-def]
    """Three batches of one host within a moment: the first summary goes at once, the
    second is replaced by the third, which goes when the interval's window is up (fixed
    windows of the monotonic clock, which the server and this test share: the held one goes
    at the next window boundary, anywhere from 0 to 0.5 s after the first)."""
    server = start_server(summary_interval_seconds=0.5)
    reader = SseReader(server.port, "/api/v1/events?topics=summaries")
    try:
        reader.until(lambda f: f.get("event") == "hello")
        started = time.monotonic()
        for n in range(3):
            server.ingest(make_batch(at=T0 + timedelta(seconds=n), cpu=float(n)))
        frames = reader.until(
            lambda f: f.get("event") == "summary" and f["data"]["metrics"]["cpu_percent"] == 2.0
        )
        assert int(time.monotonic() // 0.5) > int(started // 0.5)
        cpus = [f["data"]["metrics"]["cpu_percent"] for f in frames if f.get("event")]
        assert cpus == [0.0, 2.0]
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("view=tiles", "view"),
        ("view=host", "host"),
        ("view=fleet&topics=metrics", "topics"),
        ("view=fleet&machines=h1", "machines"),
        ("topics=samples", "topics"),
    ],
)
def test_bad_subscriptions_are_400(server: RunningServer, query: str, field: str) -> None:
    """A bad view, or a view mixed with topics/machines, is a 400 naming the parameter."""
    resp = server.request("GET", f"/api/v1/events?{query}")
    assert resp.status == 400
    assert resp.json()["error"]["field"] == field


def test_alerts_resume_although_samples_flooded_the_ring(start_server) -> None:  # type: ignore[no-untyped-def]
    """The ring keeps each topic apart: after a flood of samples a reconnecting alerts
    view replays the alert it missed, while a metrics stream from the same id resyncs."""
    server = start_server(ring_buffer_size=5)
    put_cpu_rule(server)
    server.ingest(make_batch(host_id="h0"))
    for n in range(1, 4):
        server.ingest(make_batch(host_id=f"h{n}", cpu=97.0 if n == 1 else 5.0, containers=PAD[:3]))
    alerts = SseReader(server.port, "/api/v1/events?view=alerts", headers={"Last-Event-ID": "2"})
    metrics = SseReader(server.port, "/api/v1/events?topics=metrics&last_event_id=2")
    try:
        replayed = alerts.until(lambda f: f.get("event") == "alert")
        assert replayed[-1]["data"]["machine_key"] == "h1"
        assert not [f for f in replayed if f.get("event") == "resync"]
        assert metrics.until(lambda f: f.get("event") == "resync")[-1]["event"] == "resync"
    finally:
        alerts.close()
        metrics.close()


def test_disconnect_cleans_up(server: RunningServer) -> None:
    """Closing the socket removes the client from the hub."""
    hub = server.context.hub
    reader = SseReader(server.port, "/api/v1/events")
    reader.until(lambda f: f.get("event") == "hello")
    wait_for(lambda: server.call(lambda: hub.client_count) == 1)
    reader.close()
    wait_for(lambda: server.call(lambda: hub.client_count) == 0)


def test_machine_events_silent_and_back(start_server, clock) -> None:  # type: ignore[no-untyped-def]
    """A machine not heard from for silent_after_seconds gets a 'silent' machine event, and
    an 'ok' one when it reports again."""
    server = start_server(silent_after_seconds=10, silence_check_seconds=0.05)
    reader = SseReader(server.port, "/api/v1/events?topics=metrics&machines=h1")
    try:
        server.ingest(make_batch(at=clock.now))
        first = reader.until(lambda f: f.get("event") == "machine")
        assert first[-1]["data"] == {
            "key": "h1",
            "status": "ok",
            "last_seen": "2026-11-25T10:00:00Z",
        }
        clock.advance(11)
        silent = reader.until(lambda f: f.get("event") == "machine")
        assert silent[-1]["data"] == {
            "key": "h1",
            "status": "silent",
            "last_seen": "2026-11-25T10:00:00Z",
        }
        assert server.request("GET", "/api/v1/machines").json()["hosts"][0]["status"] == "silent"
        server.ingest(make_batch(at=clock.now))
        back = reader.until(lambda f: f.get("event") == "machine")
        assert back[-1]["data"]["status"] == "ok"
        assert back[-1]["data"]["last_seen"] == "2026-11-25T10:00:11Z"
    finally:
        reader.close()
