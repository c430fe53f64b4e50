"""The collection loop: fixed-rate batches with the agent's own stats, on the real host."""

from __future__ import annotations

import io
import itertools
import threading
import time

from srvmon_agents.collector.host import HostCollector
from srvmon_agents.collector.loop import PUMP_EVERY_SECONDS, Agent
from srvmon_agents.sinks.base import SinkStats
from srvmon_agents.sinks.stdout import StdoutSink
from srvmon_core.codec import decode_batch


def test_run_emits_one_decodable_batch_per_interval() -> None:
    """Five batches at 0.2 s: JSON lines that decode, ~0.2 s apart, rates from the 2nd on."""
    out = io.BytesIO()
    agent = Agent(
        host_id="loop-host",
        hostname="loop",
        host=HostCollector(clock=time.monotonic),
        containers=None,
        sink=StdoutSink(out),
        interval_seconds=0.2,
    )
    started = time.monotonic()
    made = agent.run(threading.Event(), max_batches=5)
    elapsed = time.monotonic() - started
    assert made == 5
    batches = [decode_batch(line) for line in out.getvalue().splitlines()]
    assert len(batches) == 5
    assert {b.host_id for b in batches} == {"loop-host"}
    gaps = [(b.timestamp - a.timestamp).total_seconds() for a, b in itertools.pairwise(batches)]
    assert all(0.15 <= g <= 0.6 for g in gaps), gaps
    assert 0.8 <= elapsed <= 2.5
    assert batches[0].host is not None
    assert batches[0].host.disk_read_bytes_per_s is None, "first reading: no rate"
    assert batches[1].host is not None
    assert all(n.rx_bytes_per_s is not None for n in batches[1].host.net)
    assert all(b.agent.collect_seconds > 0 for b in batches)
    assert {b.agent.container_source for b in batches} == {"none"}


def test_stop_event_ends_the_loop_promptly() -> None:
    """Setting the stop event ends run() within one wait step, not a whole interval."""
    stop = threading.Event()
    out = io.BytesIO()
    agent = Agent(
        host_id="h",
        hostname="h",
        host=None,
        containers=None,
        sink=StdoutSink(out),
        interval_seconds=30.0,
    )
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 5
    while not out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.getvalue(), "the first batch is written at once"
    stopped_at = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - stopped_at < 0.5


def test_build_agent_accepts_a_caller_sink(tmp_path: object) -> None:
    """Standalone mode passes its own sink; build_agent uses it instead of config.output."""
    from pathlib import Path

    from srvmon_agents.collector.setup import AgentConfig, build_agent

    out = io.BytesIO()
    sink = StdoutSink(out)
    config = AgentConfig(output="kafka", host_id_file=Path(str(tmp_path)) / "id", hostname="x")
    agent = build_agent(config, None, io.BytesIO(), sink=sink)
    assert agent.sink is sink
    agent.tick()
    assert decode_batch(out.getvalue().splitlines()[0]).hostname == "x"


class InFlightSink:
    """A sink whose batches stay in flight until a pump after ``report_after`` seconds serves
    their delivery report (as librdkafka's poll does), and whose first ``backlog`` batches
    wait to be handed to the transport; it records when each pump happened."""

    def __init__(self, report_after: float, backlog: int = 0) -> None:
        self.report_after = report_after
        self.backlog = backlog
        self.sent_at: list[float] = []
        self.served_at: list[float] = []
        self.pumps: list[float] = []
        self.payloads: list[bytes] = []
        self._in_flight: list[float] = []

    def send(self, key: str, payload: bytes) -> None:
        now = time.monotonic()
        self.payloads.append(payload)
        self.sent_at.append(now)
        self._in_flight.append(now)

    def pump(self) -> None:
        now = time.monotonic()
        self.pumps.append(now)
        self.backlog = max(0, self.backlog - 1)
        due = [t for t in self._in_flight if now - t >= self.report_after]
        self._in_flight = [t for t in self._in_flight if now - t < self.report_after]
        self.served_at.extend(now for _ in due)

    def stats(self) -> SinkStats:
        return SinkStats(queue_depth=len(self._in_flight) + self.backlog, backlog=self.backlog)

    def close(self, timeout: float) -> None:
        return None


def test_an_idle_sink_is_pumped_only_around_each_reading() -> None:
    """Nothing queued: the pumps are the two of each reading (reports, then the new batch);
    the loop does not wake between readings."""
    sink = InFlightSink(report_after=0.0)
    agent = Agent(
        host_id="h", hostname="h", host=None, containers=None, sink=sink, interval_seconds=0.6
    )
    agent.run(threading.Event(), max_batches=3)
    assert len(sink.sent_at) == 3
    assert len(sink.pumps) == 6, "two pumps per reading, none while idle"
    assert len(sink.served_at) == 3


def test_a_report_in_flight_is_served_by_the_next_reading_not_a_wake() -> None:
    """A batch awaiting its delivery report does not wake the loop: the next reading's first
    pump serves it, and that reading's queue depth no longer counts it."""
    sink = InFlightSink(report_after=0.05)
    agent = Agent(
        host_id="h", hostname="h", host=None, containers=None, sink=sink, interval_seconds=0.5
    )
    agent.run(threading.Event(), max_batches=3)
    assert len(sink.pumps) == 6, [round(p - sink.sent_at[0], 2) for p in sink.pumps]
    assert len(sink.served_at) == 2, "the third report waits for a fourth reading"
    for sent, served in zip(sink.sent_at, sink.served_at, strict=False):
        assert 0.4 <= served - sent <= 0.7, served - sent
    assert [decode_batch(p).agent.queue_depth for p in sink.payloads] == [0, 0, 0]


def test_a_backlog_is_pumped_between_readings() -> None:
    """Batches not yet handed to the transport are pumped every PUMP_EVERY_SECONDS until the
    backlog is gone, then the loop sleeps until the next reading."""
    sink = InFlightSink(report_after=0.0, backlog=4)
    agent = Agent(
        host_id="h", hostname="h", host=None, containers=None, sink=sink, interval_seconds=2.0
    )
    agent.run(threading.Event(), max_batches=2)
    first = sink.sent_at[0]
    between = [p - first for p in sink.pumps if first + 0.01 < p < sink.sent_at[1] - 0.01]
    assert len(between) == 2, between  # backlog 4: two pumps of the reading, then 2 more
    for gap, expected in zip(between, (PUMP_EVERY_SECONDS, 2 * PUMP_EVERY_SECONDS), strict=True):
        assert abs(gap - expected) <= 0.1, between
    assert sink.backlog == 0
