"""Replica mode of ``srvmon server``: the Kafka side, wired in the composition layer.

``srvmon server --kafka-bootstrap ...`` (options: ``srvmon_server.command``) runs the
server as one of several replicas on one MySQL/MariaDB database. This module connects it
to Kafka with the agents' machinery, so ``srvmon_server`` itself needs no Kafka client:

- **metrics**: the consumer's ``Relay`` (srvmon_agents.consumer) consumes the metrics
  topic in the replicas' consumer group. Its lanes hand decoded batches, with their
  partition, to the server's ingest path in this process
  (``srvmon_server.ingest.ingest_partitioned``), not over HTTP; offsets are committed only
  after the database committed, as the consumer does. Its rebalance hooks adopt and
  release the partitions' hosts (``Replica.assigned`` / ``Replica.revoked``).
- **events**: an :class:`EventLink` produces this replica's live events and rule/silence
  changes to the events topic and reads every other replica's from it (manual assignment
  of every partition from its end: each replica sees every event, no group to join).

docs/server.md ("Replica mode") and docs/operations.md ("Sizing", "Failover") describe it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from srvmon_core.errors import DecodeError

if TYPE_CHECKING:
    from srvmon_agents.consumer.delivery import IngestAnswer
    from srvmon_agents.consumer.work import Ready
    from srvmon_core.schema import Batch
    from srvmon_server.command import ReplicaOptions
    from srvmon_server.context import ServerContext
    from srvmon_server.ingest import TimestampRejected
    from srvmon_server.legacy.config import LegacyConfig
    from srvmon_server.replica import Replica
    from srvmon_server.storage import IngestResult

log = logging.getLogger(__name__)

INGEST_TIMEOUT_SECONDS = 30.0
"""How long one lane waits for the server's ingest before retrying (as an HTTP timeout)."""
EVENTS_POLL_SECONDS = 0.1


class InProcessIngest:
    """The consumer sender's ``Ingest`` for a server in this process: one ingest of a
    lane's run of batches on the server's event loop, answered like the HTTP endpoint
    would (accepted with counts, or retry while the database is unavailable)."""

    def __init__(self, context: ServerContext, loop: asyncio.AbstractEventLoop) -> None:
        self._context = context
        self._loop = loop

    def post_ready(self, group: list[Ready]) -> list[IngestAnswer] | IngestAnswer:
        from srvmon_agents.consumer.delivery import IngestAnswer, Verdict
        from srvmon_server.ingest import ingest_partitioned
        from srvmon_server.storage import StorageUnavailable

        arrivals = [(item.batch, item.work.key[1]) for item in group]
        future = asyncio.run_coroutine_threadsafe(
            ingest_partitioned(self._context, arrivals), self._loop
        )
        try:
            results = future.result(INGEST_TIMEOUT_SECONDS)
        except StorageUnavailable as exc:
            return IngestAnswer(Verdict.RETRY, 503, f"database unavailable: {exc}")
        except FutureTimeout:
            future.cancel()
            return IngestAnswer(Verdict.RETRY, None, "ingest timed out")
        except Exception as exc:  # a bug: like a 500, retried (the log has the traceback)
            log.exception("replica ingest failed")
            return IngestAnswer(Verdict.RETRY, 500, f"{type(exc).__name__}: {exc}")
        return [answer_of(result) for result in results]


def answer_of(result: IngestResult | TimestampRejected) -> IngestAnswer:
    """What the HTTP endpoint would answer for one envelope: its counts, or 422 for a
    timestamp outside the accepted window (dead-lettered, as the consumer does)."""
    from srvmon_agents.consumer.delivery import IngestAnswer, Verdict
    from srvmon_server.ingest import TimestampRejected

    if isinstance(result, TimestampRejected):
        return IngestAnswer(Verdict.REJECTED, 422, f"timestamp_out_of_range: {result.message}")
    return IngestAnswer(Verdict.ACCEPTED, 200, "", result.stored, result.duplicates)


class EventLink:
    """The events topic: ``send`` produces (on the IOLoop), a thread consumes and hands
    other replicas' events to ``replica.receive`` on the loop."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        replica: Replica,
        loop: asyncio.AbstractEventLoop,
        extra: dict[str, str],
    ) -> None:
        from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

        from srvmon_agents.consumer.brokers import log_kafka_error, rate_limited_kafka_logger

        self._topic = topic
        self._replica = replica
        self._loop = loop
        self._origin = replica.origin.encode()
        common = {"bootstrap.servers": bootstrap, "logger": rate_limited_kafka_logger()}
        self._producer = Producer(
            {"linger.ms": 2, "acks": "1", **common, **extra, "error_cb": log_kafka_error}
        )
        ensure_topic(bootstrap, topic, extra)
        self._consumer = Consumer(
            {
                "fetch.wait.max.ms": 50,
                **common,
                **extra,
                "group.id": f"srvmon-events-{replica.origin}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "error_cb": log_kafka_error,
            }
        )
        metadata = self._consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        self._consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="srvmon-events", daemon=True)
        self._thread.start()

    def send(self, payload: bytes) -> None:
        """Produce one message (on the IOLoop; never blocks for long)."""
        for attempt in range(2):
            try:
                self._producer.produce(self._topic, payload, headers={"origin": self._origin})
                break
            except BufferError:  # librdkafka's queue is full: let it send, then once more
                if attempt:
                    self.dropped += 1
                    log.warning("events topic: local queue full, %d message(s) dropped", 1)
                else:
                    self._producer.poll(0.05)
        self._producer.poll(0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(500, EVENTS_POLL_SECONDS)
            except Exception:  # a closed consumer at shutdown, or a broker error: go on
                if self._stop.is_set():
                    return
                log.exception("reading the events topic failed")
                self._stop.wait(1.0)
                continue
            items = []
            for message in messages:
                if message.error() is not None:
                    log.warning("events topic: %s", message.error())
                    continue
                headers = dict(message.headers() or ())
                if headers.get("origin") == self._origin:
                    continue  # ours: the hub had it at once
                try:
                    origin, decoded = decode_events(message.value() or b"")
                except DecodeError as exc:
                    self._replica.bad_messages += 1
                    log.warning("events topic: undecodable message skipped: %s", exc)
                    continue
                if origin != self._replica.origin:
                    items.extend(decoded)
            if items and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._replica.receive, items)
            self._producer.poll(0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
        self._producer.flush(5)


def message_decoder(legacy: LegacyConfig) -> Callable[[bytes], tuple[Batch, bytes]]:
    """How the replica's relay decodes a metrics message: orjson first
    (``srvmon_server.ingest.decode_message``), a legacy Java document in the server's
    configured zone and loop, as its HTTP ingest reads one."""
    from srvmon_server.ingest import decode_message

    return functools.partial(
        decode_message, legacy_tz=legacy.tz, legacy_interval_seconds=legacy.interval_seconds
    )


def decode_events(payload: bytes) -> tuple[str, list[Any]]:
    from srvmon_server.shared_bus import decode_events as decode

    origin, items = decode(payload)
    return origin, list(items)


def ensure_topic(bootstrap: str, topic: str, extra: dict[str, str]) -> None:
    """Create ``topic`` with one partition (one order of events for all replicas) unless it
    exists."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap, **extra})
    if topic in admin.list_topics(timeout=10).topics:
        return
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1)])
    try:
        futures[topic].result(15)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def start_replica(
    context: ServerContext, url: str, options: ReplicaOptions
) -> Callable[[], Awaitable[None]]:
    """Start the replica's Kafka side for the server of ``context`` (on its running loop);
    return the function that stops it, awaited by the server before it closes (leaving the
    group releases the held hosts, saving their alert state)."""
    from confluent_kafka import Consumer, KafkaException, Producer

    from srvmon_agents.consumer.brokers import BrokerWatch
    from srvmon_agents.consumer.command import dead_letter_producer_config, relay_consumer_config
    from srvmon_agents.consumer.deadletter import DeadLetterSink
    from srvmon_agents.consumer.relay import Relay, RelaySettings
    from srvmon_agents.kafka_options import parse_kafka_options
    from srvmon_core.errors import SrvmonError

    replica = context.replica
    if replica is None:
        raise SrvmonError("the server was not built in replica mode")
    loop = asyncio.get_running_loop()
    extra = parse_kafka_options(options.kafka_options)
    try:
        link = EventLink(
            bootstrap=options.bootstrap,
            topic=options.events_topic,
            replica=replica,
            loop=loop,
            extra=extra,
        )
        replica.connect(link.send, loop)
        broker = BrokerWatch(options.bootstrap)
        consumer = Consumer(relay_consumer_config(options.bootstrap, options.group, extra, broker))
        producer = Producer(dead_letter_producer_config(options.bootstrap, extra, 30.0))
    except KafkaException as exc:
        raise SrvmonError(f"replica mode: bad Kafka configuration: {exc}") from exc

    def partitions_of(keys: set[tuple[str, int]]) -> set[int]:
        return {p for t, p in keys if t == options.topic}

    relay = Relay(
        consumer,
        ingest=InProcessIngest(context, loop),
        dead_letter=DeadLetterSink(producer, f"{options.topic}.dead", retry_seconds=30.0),
        decode=message_decoder(context.config.legacy),
        settings=RelaySettings(topic=options.topic, shutdown_grace_seconds=10.0),
        broker=broker,
        on_assigned=lambda keys: replica.assigned(partitions_of(keys)),
        on_revoked=lambda keys: replica.revoked(partitions_of(keys)),
        on_lost=lambda keys: replica.revoked(partitions_of(keys), lost=True),
    )
    stop = threading.Event()

    def run() -> None:
        try:
            relay.run(stop)
        except Exception as exc:  # a fatal Kafka error: this replica cannot go on
            log.error("replica mode stopped: %s; stopping the server", exc, exc_info=True)
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=run, name="srvmon-replica", daemon=True)
    thread.start()
    log.info(
        "replica %s: consuming %s in group %s; events on %s",
        replica.origin,
        options.topic,
        options.group,
        options.events_topic,
    )

    async def finish() -> None:
        # The relay's last ingests and the revoke hook need this loop: wait off it.
        await asyncio.to_thread(thread.join, 20)
        await asyncio.to_thread(link.close)
        await asyncio.to_thread(producer.flush, 5)

    def stop_replica() -> Awaitable[None]:
        stop.set()
        return asyncio.ensure_future(finish())

    return stop_replica
