"""A sink that writes each batch as one JSON line (for ``--once``, debugging, log shippers)."""

from __future__ import annotations

from typing import BinaryIO

from attrs import define

from srvmon_agents.sinks.base import SinkStats


@define
class StdoutSink:
    stream: BinaryIO
    delivered: int = 0

    def send(self, key: str, payload: bytes) -> None:
        self.stream.write(payload + b"\n")
        self.stream.flush()
        self.delivered += 1

    def pump(self) -> None:
        return None

    def stats(self) -> SinkStats:
        return SinkStats(delivered_batches=self.delivered)

    def close(self, timeout: float) -> None:
        self.stream.flush()
