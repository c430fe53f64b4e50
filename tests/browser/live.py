"""Helpers for the live-view browser tests: an in-process server with settings the CLI does
not expose, a link that delivers slowly, the consumer's largest batch, and a probe that
records what the page's EventSource receives."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from srvmon_core.codec import encode_batch
from srvmon_server.config import ServerConfig
from srvmon_server.storage import Storage
from tests.browser.feed import batch, container
from tests.server.harness import FakeClock, RunningServer

TOKEN = "live-test-write-token"

EVENT_PROBE = """
window.__probe = {urls: [], errors: 0, opens: 0, counts: {}, cpu: {}, sampleHosts: {}};
(() => {
  const Native = window.EventSource;
  window.EventSource = class extends Native {
    constructor(url, options) {
      super(url, options);
      const probe = window.__probe;
      probe.urls.push(String(url));
      this.addEventListener("open", () => { probe.opens += 1; });
      this.addEventListener("error", () => { probe.errors += 1; });
      const names = ["hello", "sample", "machine", "summary", "alert", "machine_deleted", "resync"];
      for (const name of names) {
        this.addEventListener(name, (event) => {
          probe.counts[name] = (probe.counts[name] || 0) + 1;
          const data = JSON.parse(event.data);
          if (name === "summary") (probe.cpu[data.key] ||= []).push(data.metrics.cpu_percent);
          if (name === "sample") {
            const kind = `${data.host_id}/${data.kind}`;
            probe.sampleHosts[kind] = (probe.sampleHosts[kind] || 0) + 1;
          }
        });
      }
    }
  };
})();
"""
"""An init script: counts the events the page's EventSource gets, by name, and keeps each
host's CPU values in arrival order."""


class InProcessServer:
    """``make_app`` on SQLite in a thread, with any ``ServerConfig`` settings."""

    def __init__(self, running: RunningServer, clock: Callable[[], datetime]) -> None:
        self.running = running
        self.clock = clock
        self.token = TOKEN

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.running.port}"


@pytest.fixture
def start_inprocess(tmp_path: Path) -> Iterator[Callable[..., InProcessServer]]:
    started: list[RunningServer] = []

    def start(clock: Callable[[], datetime] | None = None, **settings: Any) -> InProcessServer:
        use = clock or (lambda: datetime.now(UTC))
        storage = Storage.open(f"sqlite:///{tmp_path / f'live{len(started)}.db'}", clock=use)
        running = RunningServer(storage, ServerConfig(write_tokens={TOKEN}, **settings), use)
        started.append(running)
        return InProcessServer(running, use)

    yield start
    for running in started:
        running.stop()
        running.storage.close()


def fake_clock_now() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


class SlowLink:
    """A TCP relay to ``port`` that passes the server's bytes on at ``bytes_per_second``
    and reads them from a socket with a small receive buffer: to the server, the client
    behind it is a slow reader."""

    def __init__(self, port: int, bytes_per_second: int) -> None:
        self.port_to = port
        self.rate = bytes_per_second
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            upstream.connect(("127.0.0.1", self.port_to))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, 0), daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(upstream, client, self.rate), daemon=True
            ).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, rate: int) -> None:
        chunk = 2048
        try:
            while True:
                data = source.recv(chunk)
                if not data:
                    break
                sink.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


def host_name(n: int) -> str:
    return f"rack-{n:03d}"


def batches_body(hosts: int, containers: int, at: datetime, cpu: Callable[[int], float]) -> bytes:
    """``{"batches": [...]}`` with one envelope per host, each with its containers (one
    stopped), encoded as the collector encodes them."""
    boxes = [
        container(f"svc-{n:02d}", state="exited" if n == 0 else "running")
        for n in range(containers)
    ]
    envelopes = [
        encode_batch(batch(host_name(h), at=at, cpu=cpu(h), containers=boxes)) for h in range(hosts)
    ]
    return b'{"batches":[' + b",".join(envelopes) + b"]}"
