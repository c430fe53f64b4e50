"""Standalone mode hands the collector's Batch objects to the server's ingest pipeline in
process: no JSON encode and decode between two threads of one process."""

from __future__ import annotations

import asyncio
import io
import itertools
import threading
from pathlib import Path
from typing import Any

import pytest

from srvmon_agents.collector.setup import AgentConfig, build_agent
from srvmon_cli import standalone
from srvmon_core import codec
from srvmon_core.schema import Batch
from srvmon_server.ingest import ingest_batch
from tests.server.harness import RunningServer, make_batch, wait_for


def test_the_collector_loop_hands_over_batch_objects(tmp_path: Path) -> None:
    """collect_until reads this host at the agent's interval and hands over each Batch as
    it was built (nothing encoded); it stops when told."""
    agent = build_agent(
        AgentConfig(interval_seconds=0.2, host_id_file=tmp_path / "host-id", hostname="me"),
        None,
        io.BytesIO(),
    )
    handed: list[Any] = []
    stop = threading.Event()

    def take(batch: Batch) -> None:
        handed.append(batch)
        if len(handed) == 3:
            stop.set()

    assert standalone.collect_until(agent, take, stop) == 3
    assert [type(b) for b in handed] == [Batch, Batch, Batch]
    assert all(b.host is not None and b.hostname == "me" for b in handed)
    gaps = [(b.timestamp - a.timestamp).total_seconds() for a, b in itertools.pairwise(handed)]
    assert all(0.15 <= gap <= 1.0 for gap in gaps), gaps


def _refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("standalone must not encode or decode JSON in process")


def test_handoff_stores_batches_without_a_json_round_trip(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offered batches reach storage through ingest_batch with every codec entry point
    refused; the handoff counts them delivered and its queue drains."""
    for name in ("encode_batch", "decode_batch", "decode_message", "message_from_dict"):
        monkeypatch.setattr(codec, name, _refuse)
    monkeypatch.setattr(standalone, "decode_batch", _refuse)
    context = server.context
    assert context is not None and server._loop is not None

    async def deliver(batch: Batch) -> None:
        await ingest_batch(context, batch)

    handoff = standalone.InProcessHandoff(loop=server._loop, deliver=deliver)
    batches = [make_batch(host_id="solo", cpu=float(i), containers=(("db", 1.0),)) for i in (1, 2)]
    handoff.offer(batches[0])
    wait_for(lambda: handoff.stats().delivered_batches == 1)
    handoff.offer(make_batch(host_id="solo2"))
    wait_for(lambda: handoff.stats().delivered_batches == 2)
    stats = handoff.stats()
    assert (stats.queue_depth, stats.dropped_batches, stats.delivery_errors) == (0, 0, 0)
    record = server.storage.samples.machine("solo:db")
    assert record is not None and record.metrics["cpu_percent"] == 1.0
    assert server.storage.samples.machine("solo2") is not None


def test_handoff_is_bounded(server: RunningServer) -> None:
    """Beyond ``capacity`` waiting batches a new one is dropped and counted."""
    assert server._loop is not None
    release = asyncio.Event()
    loop = server._loop

    async def slow(_batch: Batch) -> None:
        await release.wait()

    handoff = standalone.InProcessHandoff(loop=loop, deliver=slow, capacity=2)
    for _ in range(3):
        handoff.offer(make_batch())
    stats = handoff.stats()
    assert (stats.queue_depth, stats.dropped_batches) == (2, 1)
    loop.call_soon_threadsafe(release.set)
    wait_for(lambda: handoff.stats().queue_depth == 0)
    assert handoff.stats().delivered_batches == 2


def test_standalone_takes_the_legacy_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``srvmon standalone --legacy-*`` hands the server the same LegacyConfig as
    ``srvmon server`` would (routes on, tokenless networks, zone and loop); a bad value is
    a click error naming the option."""
    from datetime import UTC
    from ipaddress import ip_network
    from zoneinfo import ZoneInfo

    from click.testing import CliRunner

    import srvmon_server.command
    from srvmon_server.config import ServerConfig

    seen: list[ServerConfig] = []

    async def fake_serve(config: ServerConfig, *_args: Any, **_kwargs: Any) -> None:
        seen.append(config)

    monkeypatch.setattr(srvmon_server.command, "serve", fake_serve)
    data = ["--data-dir", str(tmp_path), "--port", "0"]

    def invoke(args: list[str]) -> Any:
        """On a thread of its own: the command calls asyncio.run, and another test's
        browser may hold this thread's event loop."""
        box: list[Any] = []

        def run() -> None:
            box.append(CliRunner().invoke(standalone.standalone, args))

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(30)
        return box[0]

    result = invoke(data)
    assert result.exit_code == 0, result.output
    assert seen[-1].legacy.enabled is False
    result = invoke(
        [*data, "--legacy-api", "--legacy-timezone", "Europe/Berlin",
         "--legacy-interval-seconds", "5", "--legacy-tokenless-networks", "10.0.0.0/8"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    legacy = seen[-1].legacy
    assert (legacy.enabled, legacy.tz, legacy.interval_seconds) == (
        True, ZoneInfo("Europe/Berlin"), 5.0,
    )  # fmt: skip
    assert legacy.tokenless_networks == (ip_network("10.0.0.0/8"),)
    assert len(seen) == 2 and seen[0].legacy.tz is UTC
    result = invoke([*data, "--legacy-timezone", "Mars/Olympus"])
    assert result.exit_code == 2 and "--legacy-timezone" in result.output
