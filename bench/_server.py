"""Shared by the server benchmarks: a real server on 127.0.0.1 in a thread, and SSE readers.

Not a benchmark itself (the leading underscore keeps it out of ``bench/*.py`` runs).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil

from srvmon_server.app import make_app
from srvmon_server.config import ServerConfig
from srvmon_server.storage import Storage

TOKEN = "bench-token"


class BenchServer:
    """make_app on SQLite in a temp dir, served from its own IOLoop thread."""

    def __init__(self, **overrides: Any) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.storage = Storage.open(f"sqlite:///{Path(self.tmp.name) / 'bench.db'}")
        config = ServerConfig(write_tokens={TOKEN}, **overrides)
        ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

        async def main() -> None:
            app = make_app(config, self.storage)
            self.context = app.settings["srvmon"]
            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
            self.port = sockets[0].getsockname()[1]
            server = tornado.httpserver.HTTPServer(app)
            server.add_sockets(sockets)
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready.set()
            await self._stop.wait()
            server.stop()
            self.context.close()

        self.thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self.thread.start()
        ready.wait(10)

    def call(self, fn: Callable[[], Any]) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        self.storage.close()
        self.tmp.cleanup()


async def read_events(
    port: int,
    path: str,
    on_event: Callable[[str, Any, float], bool],
    connected: Callable[[], None] | None = None,
) -> None:
    """Open one raw SSE connection; call ``on_event(name, data, received_wall_time)`` until it
    returns True."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    if connected is not None:
        connected()
    name = ""
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            text = line.decode().rstrip("\r\n")
            if text.startswith("event: "):
                name = text[7:]
            elif text.startswith("data: ") and on_event(name, json.loads(text[6:]), time.time()):
                return
    finally:
        writer.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]
