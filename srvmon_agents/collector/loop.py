"""The collection loop: read host and containers, wrap them in a Batch, hand it to a sink.

``Agent.collect_batch()`` reads once; ``Agent.run()`` repeats it on a fixed-rate schedule
(monotonic deadlines, no drift; a late reading skips missed ticks instead of bursting).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from attrs import define

from srvmon_agents.collector.containers import ContainerCollector
from srvmon_agents.collector.host import HostCollector
from srvmon_agents.sinks.base import Sink
from srvmon_core.codec import encode_batch
from srvmon_core.schema import AgentStats, Batch, ContainerSample

log = logging.getLogger(__name__)

PUMP_EVERY_SECONDS = 0.25
"""Between readings, while the sink holds a backlog (batches it could not hand to its
transport yet), it gets a chance to deliver this often. Otherwise the loop sleeps until the
next reading, which first serves the delivery reports that arrived meanwhile: one wake per
interval. On these VMs each wake of a sleeping thread costs more CPU than the work it does."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@define
class Agent:
    host_id: str
    hostname: str
    host: HostCollector | None
    containers: ContainerCollector | None
    sink: Sink
    interval_seconds: float = 1.0
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = utc_now
    collect_seconds: float = 0.0
    container_errors: int = 0

    def collect_batch(self) -> Batch:
        started = self.clock()
        timestamp = self.wall_clock()
        host_sample = self.host.collect() if self.host is not None else None
        container_samples: list[ContainerSample] = []
        source = "none"
        if self.containers is not None:
            try:
                container_samples = self.containers.collect()
                source = self.containers.last_source
            except Exception as exc:  # the Docker daemon went away mid-run
                self.container_errors += 1
                log.warning("containers skipped this interval: %s", exc)
        sink_stats = self.sink.stats()
        self.collect_seconds = self.clock() - started
        return Batch(
            host_id=self.host_id,
            hostname=self.hostname,
            timestamp=timestamp,
            interval_seconds=self.interval_seconds,
            host=host_sample,
            containers=tuple(container_samples),
            agent=AgentStats(
                collect_seconds=self.collect_seconds,
                queue_depth=sink_stats.queue_depth,
                dropped_batches=sink_stats.dropped_batches,
                delivery_errors=sink_stats.delivery_errors,
                container_source=source,
            ),
        )

    def tick(self) -> Batch:
        self.sink.pump()  # delivery reports that arrived since the last reading
        batch = self.collect_batch()
        self.sink.send(self.host_id, encode_batch(batch))
        self.sink.pump()
        return batch

    def run(self, stop: threading.Event, max_batches: int | None = None) -> int:
        """Collect every ``interval_seconds`` until ``stop`` is set; returns batches made."""
        made = 0
        next_due = self.clock()
        while not stop.is_set() and (max_batches is None or made < max_batches):
            self.tick()
            made += 1
            next_due += self.interval_seconds
            now = self.clock()
            if next_due < now:
                missed = int((now - next_due) / self.interval_seconds) + 1
                next_due += missed * self.interval_seconds
            self._wait_pumping(stop, next_due)
        return made

    def _wait_pumping(self, stop: threading.Event, until: float) -> None:
        """Wait for ``until`` (monotonic), pumping the sink while it holds a backlog."""
        while not stop.is_set():
            remaining = until - self.clock()
            if remaining <= 0:
                return
            if self.sink.stats().backlog == 0:
                stop.wait(remaining)
                continue
            stop.wait(min(remaining, PUMP_EVERY_SECONDS))
            self.sink.pump()
