"""Sample events that nobody takes are kept as one run per batch (``sse.Run``): numbered
as if published one by one, their data made only when a resume replays them."""

from __future__ import annotations

import pytest

from srvmon_server.hub import Hub
from srvmon_server.sse import RingBuffer, Subscription, view_subscription


class Maker:
    """``make(i)`` for a batch of ``keys``, counting the data it was asked to make."""

    def __init__(self, keys: list[str], tag: str) -> None:
        self.keys = keys
        self.tag = tag
        self.made: list[int] = []

    def __call__(self, index: int) -> dict[str, str]:
        self.made.append(index)
        return {"key": self.keys[index], "batch": self.tag}


def nobody() -> None:
    pass


def keys_of(host: str, containers: int) -> list[str]:
    return [host, *(f"{host}:c{n}" for n in range(containers))]


def test_a_run_is_numbered_evicted_and_replayed_as_its_events() -> None:
    """Ids run on across runs and single events; eviction counts events, cutting into the
    oldest run; since() gives the kept events after an id, made on demand, in id order."""
    ring = RingBuffer(5)
    first = Maker(keys_of("h1", 2), "a")  # ids 1-3
    ring.append_run("sample", first.keys, first, "h1")
    alert = ring.append("alert", {"a": 1}, key="h1")  # id 4, its own topic
    machine = ring.append("machine", {"m": 1}, key="h1:c0")  # id 5
    second = Maker(keys_of("h2", 2), "b")  # ids 6-8
    ring.append_run("sample", second.keys, second, "h2")
    assert ring.last_id == 8
    assert first.made == [] and second.made == []
    # metrics holds 3 + 1 + 3 = 7 events > 5: ids 1 and 2 of the first run are evicted
    assert ring.since(1, ["metrics"]) is None
    replay = ring.since(2, ["metrics"])
    assert replay is not None
    assert [(e.id, e.name, e.key, e.host) for e in replay] == [
        (3, "sample", "h1:c1", "h1"),
        (5, "machine", "h1:c0", None),
        (6, "sample", "h2", "h2"),
        (7, "sample", "h2:c0", "h2"),
        (8, "sample", "h2:c1", "h2"),
    ]
    assert [e.data for e in replay if e.name == "sample"] == [
        {"key": "h1:c1", "batch": "a"},
        {"key": "h2", "batch": "b"},
        {"key": "h2:c0", "batch": "b"},
        {"key": "h2:c1", "batch": "b"},
    ]
    assert first.made == [2] and second.made == [0, 1, 2]
    assert [e.id for e in ring.since(6) or []] == [7, 8]
    assert [e.id for e in ring.since(3, ["alerts"]) or []] == [alert.id]
    assert machine.id == 5
    # a run larger than the ring keeps only its newest events
    third = Maker(keys_of("h3", 9), "c")  # ids 9-18
    ring.append_run("sample", third.keys, third, "h3")
    assert ring.since(12, ["metrics"]) is None
    assert [e.id for e in ring.since(13, ["metrics"]) or []] == [14, 15, 16, 17, 18]
    assert third.made == [5, 6, 7, 8, 9]


def test_nobody_watching_the_host_makes_no_data() -> None:
    """Fleet views take no samples and a host view takes another host's: the batch becomes
    one run and its data is never made; the ids are used all the same."""
    hub = Hub(ring_size=100, client_queue_size=100)
    fleet = hub.subscribe(view_subscription("fleet"), nobody, nobody)
    other = hub.subscribe(view_subscription("host", "h2"), nobody, nobody)
    make = Maker(keys_of("h1", 3), "a")
    hub.publish_each("sample", make.keys, make, host="h1")
    assert make.made == []
    assert hub.ring.last_id == 4
    assert hub.published == 4
    assert not fleet.client.has_pending() and not other.client.has_pending()
    resumed = hub.subscribe(Subscription(), nobody, nobody, resume_after=0)
    assert not resumed.resync
    sent = resumed.client.take_all().decode()
    assert sent.count("event: sample") == 4
    assert "id: 1\n" in sent and "id: 4\n" in sent
    assert make.made == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("subscription", "expected"),
    [
        (view_subscription("host", "h1"), 4),
        (Subscription(machines="h1:c2"), 1),
        (Subscription(machines="h1:c*"), 3),
        (Subscription(), 4),
    ],
    ids=["host view", "one key", "glob", "every machine"],
)
def test_a_client_that_takes_any_of_the_batch_gets_its_events(
    subscription: Subscription, expected: int
) -> None:
    """A client whose route takes any machine of the batch: every event is published one
    by one, as before, and the client gets the ones it wants."""
    hub = Hub(ring_size=100, client_queue_size=100)
    watching = hub.subscribe(subscription, nobody, nobody)
    make = Maker(keys_of("h1", 3), "a")
    hub.publish_each("sample", make.keys, make, host="h1")
    assert make.made == [0, 1, 2, 3]
    sent = watching.client.take_all().decode()
    assert sent.count("event: sample") == expected
    assert hub.ring.last_id == 4


def test_a_listener_gets_every_event() -> None:
    hub = Hub(ring_size=100, client_queue_size=100)
    heard: list[tuple[int | None, str | None]] = []
    hub.listen(lambda event: heard.append((event.id, event.key)))
    make = Maker(keys_of("h1", 1), "a")
    hub.publish_each("sample", make.keys, make, host="h1")
    assert heard == [(1, "h1"), (2, "h1:c0")]
