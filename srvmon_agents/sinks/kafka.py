"""The Kafka sink: an idempotent, lz4-compressed producer fed from a bounded buffer.

Every batch is keyed by the host id, so one host's batches stay in one partition, in order.
Batches wait in a :class:`BatchBuffer`; ``pump()`` hands them to librdkafka in production
order. librdkafka's delivery callback says what was delivered; a failed batch goes back into
the buffer in its place, so nothing is lost while the broker is down (at start or later)
unless the buffer overflows. On overflow the OLDEST batches are dropped and counted, and
batches still queued inside librdkafka are first purged back into the buffer so the dropped
ones really are the oldest. While the broker looks down only one batch is out as a probe.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from attrs import define, field

from srvmon_agents.sinks.base import SinkStats
from srvmon_agents.sinks.buffer import BatchBuffer, Pending

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, str] = {
    "compression.type": "lz4",
    # One batch a second: waiting to fill a message set only adds a wake of the broker
    # thread per batch (measured: 4.2 -> 3.1 wakes a second). A backlog still goes out in
    # large message sets, gathered while earlier requests are in flight.
    "linger.ms": "0",
    "acks": "all",
    "enable.idempotence": "true",
    "message.timeout.ms": "10000",
    "reconnect.backoff.max.ms": "2000",
}
"""Producer settings; ``--kafka-option`` values override them (except the bootstrap)."""

HEALTHY_WINDOW = 1000
PROBE_WINDOW = 1


@define
class KafkaSink:
    """Produce encoded batches to ``topic``; see the module docstring for the semantics."""

    bootstrap: str
    topic: str
    capacity: int = 3600
    options: Mapping[str, str] = field(factory=dict)
    _producer: Any = None
    _buffer: BatchBuffer = field(init=False)
    _in_flight: dict[int, Pending] = field(factory=dict)
    _healthy: bool = True
    _fatal: bool = False
    delivered: int = 0
    delivery_errors: int = 0
    producer_restarts: int = 0

    def __attrs_post_init__(self) -> None:
        self._buffer = BatchBuffer(self.capacity)
        self._producer = self._new_producer()

    def _new_producer(self) -> Any:
        from confluent_kafka import Producer

        config: dict[str, Any] = {**PRODUCER_DEFAULTS, **self.options}
        config["bootstrap.servers"] = self.bootstrap
        config["error_cb"] = self._on_error
        config["logger"] = log
        return Producer(config)

    def _replace_fatal_producer(self) -> None:
        """An idempotent producer's fatal error (e.g. the broker forgot our producer id after
        a restart) ends that producer: take back everything it holds and start a new one.
        Batches that were on the wire may then arrive twice; the server drops duplicates."""
        self._fatal = False
        self.producer_restarts += 1
        with contextlib.suppress(Exception):
            self._producer.purge(in_queue=True, in_flight=True, blocking=False)
            self._producer.poll(0)
        self._buffer.give_back(self._in_flight.values())
        self._in_flight.clear()
        self._producer = self._new_producer()

    def send(self, key: str, payload: bytes) -> None:
        if self._in_flight and len(self._buffer) + len(self._in_flight) >= self.capacity:
            self._reclaim_queued()
        self._buffer.append(key, payload, in_flight=len(self._in_flight))

    def pump(self) -> None:
        from confluent_kafka import KafkaException

        self._poll()
        if self._fatal:
            self._replace_fatal_producer()
        window = HEALTHY_WINDOW if self._healthy else PROBE_WINDOW
        while len(self._in_flight) < window and self._buffer.peek() is not None:
            item = self._buffer.pop()
            try:
                self._producer.produce(
                    self.topic,
                    value=item.payload,
                    key=item.key.encode(),
                    on_delivery=lambda err, _msg, item=item: self._on_delivery(item, err),
                )
            except BufferError:
                self._buffer.give_back([item])
                break
            except KafkaException as exc:
                self._buffer.give_back([item])
                self._fatal = self._fatal or bool(exc.args and exc.args[0].fatal())
                self.delivery_errors += 1
                break
            self._in_flight[item.seq] = item
        self._poll()

    def stats(self) -> SinkStats:
        return SinkStats(
            queue_depth=len(self._buffer) + len(self._in_flight),
            backlog=len(self._buffer),
            dropped_batches=self._buffer.dropped,
            delivery_errors=self.delivery_errors,
            delivered_batches=self.delivered,
        )

    def close(self, timeout: float) -> None:
        self.pump()
        self._producer.flush(timeout)

    def _poll(self) -> None:
        """Serve callbacks; a fatal producer error surfaces here too (and is handled)."""
        from confluent_kafka import KafkaException

        try:
            self._producer.poll(0)
        except KafkaException as exc:
            self.delivery_errors += 1
            if exc.args and exc.args[0].fatal():
                self._fatal = True
                self._healthy = False

    def _reclaim_queued(self) -> None:
        """About to overflow: pull batches that never left librdkafka back into the buffer,
        so that the batches dropped next really are the oldest."""
        self._producer.purge(in_queue=True, in_flight=False, blocking=True)
        self._poll()

    def _on_delivery(self, item: Pending, err: Any) -> None:
        if self._in_flight.pop(item.seq, None) is None:
            return  # already taken back from a producer that failed fatally
        if err is None:
            self.delivered += 1
            self._healthy = True
            return
        from confluent_kafka import KafkaError

        if err.code() != KafkaError._PURGE_QUEUE:
            self.delivery_errors += 1
            self._healthy = False
            log.debug("delivery of batch %d failed: %s", item.seq, err)
        self._buffer.give_back([item])
        self._buffer.trim(len(self._in_flight))

    def _on_error(self, err: Any) -> None:
        from confluent_kafka import KafkaError

        if err.fatal():
            self._fatal = True
            self._healthy = False
        elif err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self._healthy = False
        log.debug("kafka: %s", err)
