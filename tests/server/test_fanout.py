"""The live fan-out, pure: the replay ring, conflating client queues, views and routes,
frames encoded once, host summaries and their throttle."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srvmon_core.alert_state import ActiveAlert
from srvmon_core.schema import Batch, ContainerSample, HostSample
from srvmon_core.view import batch_view
from srvmon_server import sse
from srvmon_server.fleet import Fleet, count_containers
from srvmon_server.hub import Hub
from srvmon_server.live import SummaryThrottle
from srvmon_server.payloads import summary_json
from srvmon_server.sse import (
    Client,
    Event,
    RingBuffer,
    Subscription,
    parse_topics,
    view_subscription,
)

T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def sample(key: str, value: float, host: str | None = None) -> Event:
    host = host or key.split(":", maxsplit=1)[0]
    return Event(None, "sample", {"key": key, "v": value}, key, host)


def test_ring_buffer_since_per_topic() -> None:
    """since() replays after an id, [] when current, None when evicted or from the future;
    a flood of samples does not evict the alerts a subscriber of alerts resumes from."""
    ring = RingBuffer(3)
    assert ring.since(0) == []
    for n in range(5):
        ring.append("sample", {"n": n})
    assert ring.last_id == 5
    assert [e.id for e in ring.since(2) or []] == [3, 4, 5]
    assert [e.id for e in ring.since(4) or []] == [5]
    assert ring.since(5) == []
    assert ring.since(1) is None
    assert ring.since(99) is None
    alert = ring.append("alert", {"a": 1}, key="h1")  # id 6
    for n in range(10):
        ring.append("sample", {"n": n})
    assert [e.id for e in ring.since(5, ["alerts"]) or []] == [alert.id]
    assert ring.since(5, ["metrics"]) is None
    assert ring.since(5) is None


def test_state_events_conflate_to_the_newest_per_machine() -> None:
    """A client that has not sent yet holds one event per machine: the newest, moved to
    the back; alerts are all kept, in order."""
    client = Client(Subscription(), max_queue=10)
    assert client.offer(sample("h1", 1.0)) is True  # was idle: wake the writer
    assert client.offer(sample("h2", 2.0)) is False
    first_alert = Event(7, "alert", {"n": 1}, "h1", "h1")
    client.offer(first_alert)
    client.offer(sample("h1", 3.0))
    client.offer(Event(9, "alert", {"n": 2}, "h1", "h1"))
    assert client.conflated == 1
    taken = client.take_all().decode()
    assert [line for line in taken.splitlines() if line.startswith("data:")] == [
        'data: {"key":"h2","v":2.0}',
        'data: {"n":1}',
        'data: {"key":"h1","v":3.0}',
        'data: {"n":2}',
    ]
    assert not client.has_pending()
    assert client.offer(sample("h1", 4.0)) is True


def test_queue_is_bounded_by_machines_not_by_rate() -> None:
    """10,000 samples of 50 machines leave 50 waiting; take() hands out about max_bytes at a
    time, and the rest can still be replaced."""
    client = Client(Subscription(), max_queue=10)
    for n in range(10_000):
        client.offer(sample(f"h{n % 50}", float(n)))
    assert len(client.pending) == 50
    chunk = client.take(200)
    assert 200 <= len(chunk) < 400
    assert len(client.pending) < 50
    for n in range(50):
        client.offer(sample(f"h{n}", -1.0))
    assert len(client.pending) == 50


def test_too_many_alerts_become_one_resync_not_a_drop() -> None:
    """Past max_queue waiting alerts the client gets one resync carrying the newest id; it
    is not dropped and newer alerts queue behind it."""
    client = Client(Subscription(), max_queue=3)
    for n in range(1, 6):
        client.offer(Event(n, "alert", {"n": n}, "h1", "h1"))
    client.offer(sample("h1", 1.0))
    client.offer(Event(6, "alert", {"n": 6}, "h1", "h1"))
    assert not client.dropped and client.resyncs == 1
    frames = client.take_all().decode().split("\n\n")
    assert frames[0] == 'id: 4\nevent: resync\ndata: {"reason":"too many events"}'
    assert frames[1:3] == [
        'id: 5\nevent: alert\ndata: {"n":5}',
        'event: sample\ndata: {"key":"h1","v":1.0}',
    ]
    assert frames[3] == 'id: 6\nevent: alert\ndata: {"n":6}'


def test_unconflated_subscription_keeps_every_sample() -> None:
    """conflate=False (in-process subscribers that need every sample) queues each one."""
    client = Client(Subscription(conflate=False), max_queue=100)
    for n in range(5):
        client.offer(sample("h1", float(n)))
    assert len(client.pending) == 5 and client.conflated == 0


def test_views_and_topics() -> None:
    """Views set topics and scope; unknown topics and views are refused by name."""
    fleet = view_subscription("fleet")
    host = view_subscription("host", "h1")
    summary = Event(None, "summary", {}, "h1", "h1")
    other_sample = sample("h2:web", 1.0)
    own_sample = sample("h1:web", 1.0)
    alert_elsewhere = Event(3, "alert", {}, "h2:web", "h2")
    assert [fleet.wants(e) for e in (summary, own_sample, alert_elsewhere)] == [True, False, True]
    assert [host.wants(e) for e in (summary, own_sample, other_sample, alert_elsewhere)] == [
        True,
        True,
        False,
        True,
    ]
    assert not Subscription().wants(summary)  # API default: metrics and alerts, as before
    assert Subscription(machines="h1*").wants(own_sample)
    assert not Subscription(machines="h1*").wants(other_sample)
    assert parse_topics("metrics,summaries") == frozenset({"metrics", "summaries"})
    with pytest.raises(ValueError, match="bogus"):
        parse_topics("metrics,bogus")
    with pytest.raises(ValueError, match="host="):
        view_subscription("host")
    with pytest.raises(ValueError, match="unknown view 'tiles'"):
        view_subscription("tiles")


class Woken:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_hub_routes_encode_once_and_skip_uninterested_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sample is encoded once however many clients send it, and not at all when only
    fleet views (which take no samples) are connected; globs are matched once per key."""
    calls: list[str] = []
    real = sse.format_event

    def counting(event_id: int | None, name: str, data: object) -> bytes:
        calls.append(name)
        return real(event_id, name, data)

    monkeypatch.setattr(sse, "format_event", counting)
    hub = Hub(ring_size=100, client_queue_size=100)
    fleets = [hub.subscribe(view_subscription("fleet"), Woken(), Woken()) for _ in range(50)]
    hub.publish("sample", {"key": "h1:web"}, "h1:web", host="h1")
    assert all(not s.client.has_pending() for s in fleets)
    assert calls == []
    streams = [hub.subscribe(Subscription(), Woken(), Woken()) for _ in range(3)]
    globbed = hub.subscribe(Subscription(machines="h1:*"), Woken(), Woken())
    elsewhere = hub.subscribe(Subscription(machines="h2:*"), Woken(), Woken())
    hub.publish("sample", {"key": "h1:db"}, "h1:db", host="h1")
    frames = [s.client.take_all() for s in [*streams, globbed]]
    assert len(set(frames)) == 1 and frames[0].startswith(b"id: 2\nevent: sample")
    assert not elsewhere.client.has_pending()
    assert calls == ["sample"]


def test_hub_snapshot_resume_and_listeners() -> None:
    """A new fleet client starts with the newest summary of every host; a resuming client
    gets what it missed of its topics, or resync when the ring lost some; listeners see
    every event unconflated."""
    hub = Hub(ring_size=3, client_queue_size=100)
    heard: list[str] = []
    stop = hub.listen(lambda e: heard.append(f"{e.name}:{e.key}"))
    hub.publish("summary", {"v": 1}, "h1", host="h1")
    hub.publish("summary", {"v": 2}, "h1", host="h1")
    hub.publish("summary", {"v": 1}, "h2", host="h2")
    alert = hub.publish("alert", {"a": 1}, "h1", host="h1")
    for n in range(5):
        hub.publish("sample", {"n": n}, "h1", host="h1")
    fresh = hub.subscribe(view_subscription("fleet"), Woken(), Woken())
    assert fresh.client.take_all() == (
        b'event: summary\ndata: {"v":2}\n\nevent: summary\ndata: {"v":1}\n\n'
    )
    back = hub.subscribe(view_subscription("alerts"), Woken(), Woken(), resume_after=0)
    assert not back.resync
    assert back.client.take_all() == alert.frame
    lost = hub.subscribe(Subscription(), Woken(), Woken(), resume_after=0)
    assert lost.resync
    stop()
    hub.publish("summary", {"v": 3}, "h1", host="h1")
    assert heard == ["summary:h1", "summary:h1", "summary:h2", "alert:h1"] + ["sample:h1"] * 5


def test_wake_once_per_idle_period_and_unsubscribe() -> None:
    """The writer is woken when its queue stops being empty, not per event; a client that
    left gets nothing."""
    hub = Hub(ring_size=100, client_queue_size=100)
    wake = Woken()
    subscribed = hub.subscribe(Subscription(), wake, Woken())
    for n in range(100):
        hub.publish("sample", {"n": n}, f"h{n}", host=f"h{n}")
    assert wake.count == 1
    subscribed.client.take_all()
    hub.publish("sample", {}, "h1", host="h1")
    assert wake.count == 2
    hub.unsubscribe(subscribed.handle)
    hub.publish("sample", {}, "h2", host="h2")
    assert hub.client_count == 0 and wake.count == 2


def host_batch(
    host_id: str, at: datetime, cpu: float, states: list[tuple[str, str | None]]
) -> Batch:
    return Batch(
        host_id=host_id,
        hostname=f"{host_id}.rack",
        timestamp=at,
        host=HostSample(
            cpu_percent=cpu,
            load_1=0.1,
            load_5=0.1,
            load_15=0.1,
            memory_total_bytes=1000,
            memory_used_bytes=250,
            memory_available_bytes=750,
            memory_percent=25.0,
        ),
        containers=tuple(
            ContainerSample(id=f"c{n}", name=f"c{n}", state=state, health=health)
            for n, (state, health) in enumerate(states)
        ),
    )


def firing(host_id: str, machine: str, level: str, since: datetime, **kw: Any) -> ActiveAlert:
    values: dict[str, Any] = {
        "fingerprint": f"{machine}/{level}",
        "rule_id": "r",
        "rule_name": "cpu hot",
        "machine_key": machine,
        "machine_kind": "container" if ":" in machine else "host",
        "machine_name": machine,
        "host_id": host_id,
        "hostname": f"{host_id}.rack",
        "metric": "cpu_percent",
        "state": "firing",
        "level": level,
        "since": since,
        "value": 97.0,
        "threshold": 95.0,
        "silenced": False,
    }
    values.update(kw)
    return ActiveAlert(**values)


def test_fleet_summary_newest_wins_counts_and_worst_alert() -> None:
    """A host's summary: figures of its newest sample (an older batch changes nothing),
    containers counted by state, the worst firing alert of host or containers, silent."""
    fleet = Fleet()
    states = [("running", None), ("running", "unhealthy"), ("exited", None), ("running", None)]
    assert fleet.observe(batch_view(host_batch("h1", T0, 10.0, states)))
    assert not fleet.observe(batch_view(host_batch("h1", T0 - timedelta(seconds=1), 99.0, [])))
    summary = fleet.get("h1")
    assert summary is not None
    data = summary_json(summary)
    assert data["metrics"] == {"cpu_percent": 10.0, "memory_percent": 25.0}
    assert data["container_counts"] == {
        "total": 4,
        "running": 3,
        "unhealthy": 1,
        "problems": 2,
        "states": {"exited": 1, "running": 3},
    }
    assert data["status"] == "ok" and data["alert"] is None
    assert data["last_seen"] == "2026-11-25T10:00:00Z"
    warn = firing("h1", "h1", "warning", T0)
    crit = firing("h1", "h1:c1", "critical", T0 + timedelta(seconds=5))
    pending = firing("h1", "h1:c2", "critical", T0, state="pending")
    hushed = firing("h1", "h1:c3", "critical", T0 - timedelta(seconds=9), silenced=True)
    assert fleet.set_alerts([warn, crit, pending, hushed]) == {"h1"}
    assert fleet.set_alerts([crit, warn]) == set()
    held = fleet.get("h1")
    assert held is not None and held.status == "critical" and held.alert == crit
    assert fleet.set_silent("h1", True) and not fleet.set_silent("h1", True)
    assert summary_json(fleet.get("h1"))["status"] == "silent"  # type: ignore[arg-type]
    fleet.observe(batch_view(host_batch("h1", T0 + timedelta(seconds=9), 12.0, [])))
    back = fleet.get("h1")
    assert back is not None and back.status == "critical" and not back.silent
    assert back.containers == count_containers([])


def test_a_deleted_host_leaves_the_fleet() -> None:
    """forget() drops deleted hosts from the summaries and the pages; a container key
    drops nothing; the host reporting again comes back."""
    fleet = Fleet()
    for n in range(3):
        fleet.observe(batch_view(host_batch(f"h{n}", T0, 1.0, [])))
    assert fleet.forget({"h1", "h1:c0", "h1:c1"}) == ["h1"]
    assert fleet.forget({"h2:c0"}) == []
    page, cursor = fleet.page(None, 10)
    assert [s.key for s in page] == ["h0", "h2"] and cursor is None and len(fleet) == 2
    assert fleet.get("h1") is None
    fleet.observe(batch_view(host_batch("h1", T0 + timedelta(seconds=1), 2.0, [])))
    assert [s.key for s in fleet.page(None, 10)[0]] == ["h0", "h1", "h2"]


def test_fleet_pages_in_key_order() -> None:
    """page() walks hosts in key order with a cursor; the last page has none."""
    fleet = Fleet()
    for n in (3, 1, 4, 0, 2):
        fleet.observe(batch_view(host_batch(f"h{n}", T0, 1.0, [])))
    first, cursor = fleet.page(None, 2)
    assert [s.key for s in first] == ["h0", "h1"] and cursor == "h1"
    second, cursor = fleet.page(cursor, 2)
    assert [s.key for s in second] == ["h2", "h3"] and cursor == "h3"
    last, cursor = fleet.page(cursor, 2)
    assert [s.key for s in last] == ["h4"] and cursor is None


def test_summary_throttle_at_most_one_per_interval() -> None:
    """A host changed again within its interval is held; when due, it goes once."""
    throttle = SummaryThrottle(1.0)
    assert throttle.offer({"h1", "h2"}, 10.0) == ["h1", "h2"]
    assert throttle.offer({"h1"}, 10.4) == []
    assert throttle.offer({"h1"}, 10.8) == []
    assert throttle.next_due() == 11.0
    assert throttle.release(10.99) == []
    assert throttle.release(11.0) == ["h1"]
    assert throttle.next_due() is None
    assert throttle.offer({"h2"}, 11.0) == ["h2"]
    assert throttle.offer({"h2"}, 11.5) == []  # h2's own window 11 is used


def test_summary_throttle_a_released_summary_does_not_hold_the_next_sample() -> None:
    """Two samples of a host within one window (a request that waited, the next right behind
    it): the second is held to the window's end, and the host's later samples, a second
    apart, go at once again (they were held ~0.7 s each, for good, when the release used up
    the next window)."""
    throttle = SummaryThrottle(1.0)
    assert throttle.offer({"h1"}, 10.3) == ["h1"]
    assert throttle.offer({"h1"}, 10.9) == []
    assert throttle.release(11.0) == ["h1"]
    published = [throttle.offer({"h1"}, 11.3 + n) for n in range(5)]
    assert published == [["h1"]] * 5
    assert throttle.held == set()


def test_summary_throttle_never_ratchets_behind_a_steady_host() -> None:
    """A host reporting every second with jitter gets each summary out at once or held only
    until the next window starts: the delay never builds up round after round."""
    throttle = SummaryThrottle(1.0)
    jitter = [0.03, -0.02, 0.01, -0.03, 0.02, 0.0, -0.01, 0.03, -0.03, 0.02] * 10
    delays = []
    published_at: list[float] = []
    for n, wobble in enumerate(jitter):
        arrival = 100.99 + n + wobble  # close to the window boundary: the hard case
        due = throttle.next_due()
        if due is not None and due <= arrival:  # the timer released the held one
            published_at += [due] * len(throttle.release(due))
        if throttle.offer({"h1"}, arrival):
            published_at.append(arrival)
            delays.append(0.0)
        else:
            release = throttle.next_due()
            assert release is not None
            delays.append(release - arrival)
    assert max(delays) <= 0.05, max(delays)
    per_window = Counter(int(t) for t in published_at)
    assert max(per_window.values()) <= 2  # a released one and the window's own, at most
    assert len(published_at) <= len(jitter)


def test_another_replicas_events_keep_their_host() -> None:
    """Events from another replica are published here with their host key, so a host view
    (``view=host&host=``) gets them: a summary's own key, a payload's ``host_id``, else the
    machine key's host part."""
    from srvmon_server.replica import host_of_event

    assert host_of_event("summary", "h1", {"key": "h1"}) == "h1"
    assert host_of_event("sample", "h1:web", {"key": "h1:web", "host_id": "h1"}) == "h1"
    assert host_of_event("alert", "h2:db", {"host_id": "h2"}) == "h2"
    assert host_of_event("machine", "h3:web", {"key": "h3:web", "status": "silent"}) == "h3"
    assert host_of_event("machine", "h3", {"key": "h3", "status": "ok"}) == "h3"
    assert host_of_event("hello", None, {}) is None


def test_another_replicas_summary_is_kept_for_paging() -> None:
    """A summary as JSON (as another replica sends it) reads back into the same typed value,
    worst alert included; the fleet takes it unless it holds a newer sample of the host."""
    from srvmon_server.payloads import summary_from_json

    fleet = Fleet()
    states = [("running", None), ("exited", None)]
    fleet.observe(batch_view(host_batch("h1", T0, 10.0, states)))
    fleet.set_alerts([firing("h1", "h1", "critical", T0)])
    sent = fleet.get("h1")
    assert sent is not None
    back = summary_from_json(summary_json(sent))
    assert back == sent
    here = Fleet()
    assert here.take(back) and here.get("h1") == sent
    older = summary_from_json(summary_json(sent) | {"last_seen": "2026-11-25T09:59:59Z"})
    assert not here.take(older) and here.get("h1") == sent
    silent = summary_json(sent) | {"status": "silent", "last_seen": "2026-11-25T10:00:01Z"}
    assert here.take(summary_from_json(silent))
    assert summary_json(here.get("h1"))["status"] == "silent"  # type: ignore[arg-type]
    assert [s.key for s in here.page(None, 10)[0]] == ["h1"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from([None, "running", "exited", "restarting", "paused"]),
            st.sampled_from([None, "healthy", "unhealthy", "starting"]),
        ),
        max_size=40,
    )
)
def test_container_counts_follow_their_definition(
    pairs: list[tuple[str | None, str | None]],
) -> None:
    """Total, running, unhealthy, problems (not running, or unhealthy) and the states,
    against the definitions counted one by one."""
    counts = count_containers(pairs)
    names = [state or "unknown" for state, _ in pairs]
    assert counts.total == len(pairs)
    assert counts.running == names.count("running")
    assert counts.unhealthy == sum(health == "unhealthy" for _, health in pairs)
    assert counts.problems == sum(
        health == "unhealthy" or name != "running"
        for name, (_, health) in zip(names, pairs, strict=True)
    )
    assert counts.states == {name: names.count(name) for name in sorted(set(names))}
    assert list(counts.states) == sorted(counts.states)
