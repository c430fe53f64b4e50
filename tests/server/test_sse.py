"""The SSE stream over a raw socket: headers, ids, resume, resync, heartbeat, slow clients."""

from __future__ import annotations

import socket
import time

from tests.server.harness import RunningServer, SseReader, make_batch, wait_for


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


def test_slow_client_dropped_and_cleaned_up(start_server) -> None:  # type: ignore[no-untyped-def]
    """A client that stops reading is dropped once its queue (200 frames) fills; others keep
    streaming. Each batch publishes 122 events, so a reader that keeps up never fills it."""
    server = start_server(client_queue_size=200)
    hub = server.context.hub
    slow = socket.create_connection(("127.0.0.1", server.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
    fast = SseReader(server.port, "/api/v1/events")
    try:
        wait_for(lambda: server.call(lambda: hub.client_count) == 2)
        pad = tuple((f"c{i:03d}-" + "x" * 40, 1.0) for i in range(60))
        deadline = time.monotonic() + 20
        n = 0
        while server.call(lambda: hub.dropped_clients) == 0:
            assert time.monotonic() < deadline, "slow client was never dropped"
            server.ingest(make_batch(host_id=f"h{n}", containers=pad))
            n += 1
            fast.until(lambda f, n=n: is_sample(f) and f["data"]["key"] == f"h{n - 1}")
        wait_for(lambda: server.call(lambda: hub.client_count) == 1)
        assert server.call(lambda: hub.dropped_clients) == 1
        server.ingest(make_batch(host_id="after"))
        fast.until(lambda f: is_sample(f) and f["data"]["key"] == "after")
    finally:
        slow.close()
        fast.close()


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
