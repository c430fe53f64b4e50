"""``srvmon consumer``: the click command. Option parsing and error translation only."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import tzinfo
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from srvmon_agents.kafka_options import kafka_option, parse_kafka_options
from srvmon_core.errors import SrvmonError

if TYPE_CHECKING:
    from srvmon_agents.consumer.brokers import BrokerWatch

DEFAULT_TOPIC = "srvmon.metrics"
DEFAULT_GROUP = "srvmon-consumer"
DEFAULT_SERVER_URL = "http://127.0.0.1:8004"


def _timezone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise click.BadParameter(
            f"unknown time zone {name!r}", param_hint="--legacy-timezone"
        ) from exc


def relay_consumer_config(
    bootstrap: str, group: str, extra: dict[str, str], broker: BrokerWatch
) -> dict[str, Any]:
    """The relay's Kafka consumer settings (docs/consumer.md, "Kafka settings that the
    consumer fixes itself"); ``extra`` (``--kafka-option``) overrides the tunable ones.
    Shared with server replicas (``srvmon_cli.replica``)."""
    from srvmon_agents.consumer.brokers import STATISTICS_INTERVAL_MS, rate_limited_kafka_logger

    return {
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        # Bounds how long a fetch may wait on a quiet topic (alerts must be fast).
        "fetch.wait.max.ms": 50,
        "auto.offset.reset": "earliest",
        # librdkafka's own lines go through Python logging, rate-limited (brokers.py).
        "bootstrap.servers": bootstrap,
        "logger": rate_limited_kafka_logger(),
        **extra,
        # Not overridable: offsets are committed only after the server acknowledged.
        "group.id": group,
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "statistics.interval.ms": STATISTICS_INTERVAL_MS,
        "stats_cb": broker.on_stats,
        "error_cb": broker.on_error,
    }


def dead_letter_producer_config(
    bootstrap: str, extra: dict[str, str], timeout_seconds: float
) -> dict[str, Any]:
    """The dead-letter producer's settings: acks from all replicas, idempotent."""
    from srvmon_agents.consumer.brokers import log_kafka_error, rate_limited_kafka_logger

    return {
        "acks": "all",
        "enable.idempotence": True,
        "message.timeout.ms": int(timeout_seconds * 1000),
        "bootstrap.servers": bootstrap,
        "logger": rate_limited_kafka_logger(),
        **extra,
        "error_cb": log_kafka_error,
    }


@click.command(context_settings={"show_default": True})
@click.option(
    "--bootstrap-server",
    envvar="BOOTSTRAP_SERVER",
    required=True,
    show_envvar=True,
    help="Kafka bootstrap servers, host:port[,host:port].",
)
@click.option(
    "--topic",
    envvar="KAFKA_TOPIC_NAME",
    default=DEFAULT_TOPIC,
    show_envvar=True,
    help="Topic the collectors produce to.",
)
@click.option(
    "--group",
    envvar="KAFKA_CONSUMER_GROUP_ID",
    default=DEFAULT_GROUP,
    show_envvar=True,
    help="Consumer group; consumers in one group split the topic's partitions.",
)
@click.option(
    "--server-url",
    envvar="API_BASE_URL",
    default=DEFAULT_SERVER_URL,
    show_envvar=True,
    help="Base URL of the srvmon server (ingest at /api/v1/ingest).",
)
@click.option(
    "--token",
    envvar="SRVMON_INGEST_TOKEN",
    default=None,
    show_envvar=True,
    help="Bearer token with write access to the server.",
)
@click.option(
    "--dead-letter-topic",
    envvar="SRVMON_DEAD_LETTER_TOPIC",
    default=None,
    show_envvar=True,
    help="Where poison messages go. [default: <topic>.dead]",
)
@click.option(
    "--batch-size",
    envvar="SRVMON_CONSUMER_BATCH",
    default=500,
    show_envvar=True,
    type=click.IntRange(1, 100_000),
    help="Most messages taken per poll.",
)
@click.option(
    "--parallelism",
    envvar="SRVMON_CONSUMER_PARALLELISM",
    default=8,
    show_envvar=True,
    type=click.IntRange(1, 256),
    help="Concurrent POSTs to the server (one per host at a time).",
)
@click.option(
    "--max-in-flight",
    envvar="SRVMON_CONSUMER_MAX_IN_FLIGHT",
    default=8000,
    show_envvar=True,
    type=click.IntRange(1, 1_000_000),
    help="Most unacknowledged messages held; above it consumption pauses.",
)
@click.option(
    "--max-in-flight-bytes",
    envvar="SRVMON_CONSUMER_MAX_IN_FLIGHT_BYTES",
    default=64 * 1024 * 1024,
    show_envvar=True,
    type=click.IntRange(1, 2**40),
    help="Most bytes of unacknowledged messages held; above it consumption pauses.",
)
@click.option(
    "--max-request-batches",
    envvar="SRVMON_CONSUMER_REQUEST_BATCHES",
    default=500,
    show_envvar=True,
    type=click.IntRange(1, 1000),
    help="Most envelopes posted in one ingest request (1 posts one envelope per request).",
)
@kafka_option()
@click.option(
    "--legacy-timezone",
    envvar="SRVMON_LEGACY_TZ",
    default="UTC",
    show_envvar=True,
    help="Time zone of the old Java collector documents' local timestamps.",
)
@click.option(
    "--legacy-interval-seconds",
    envvar="SRVMON_LEGACY_INTERVAL",
    default=1.0,
    show_envvar=True,
    type=click.FloatRange(min=0.001),
    help="Collection interval of the old Java collectors (turns their deltas into rates).",
)
@click.option(
    "--initial-retry-seconds",
    envvar="SRVMON_CONSUMER_RETRY_INITIAL",
    default=0.05,
    show_envvar=True,
    type=click.FloatRange(min=0.001),
    help="First backoff delay when the server is unavailable.",
)
@click.option(
    "--max-retry-seconds",
    envvar="SRVMON_CONSUMER_RETRY_MAX",
    default=5.0,
    show_envvar=True,
    type=click.FloatRange(min=0.001),
    help="Longest backoff delay between retries (retries never give up).",
)
@click.option(
    "--request-timeout",
    envvar="SRVMON_CONSUMER_REQUEST_TIMEOUT",
    default=10.0,
    show_envvar=True,
    type=click.FloatRange(min=0.1),
    help="Seconds to wait for one ingest answer before retrying.",
)
@click.option(
    "--shutdown-timeout",
    envvar="SRVMON_CONSUMER_SHUTDOWN_TIMEOUT",
    default=30.0,
    show_envvar=True,
    type=click.FloatRange(min=0),
    help="On SIGTERM/SIGINT, seconds to finish in-flight work before abandoning it.",
)
@click.option(
    "--commit-interval",
    envvar="SRVMON_CONSUMER_COMMIT_INTERVAL",
    default=0.2,
    show_envvar=True,
    type=click.FloatRange(min=0.01),
    help="Seconds between offset commits (a crash re-delivers at most this much acknowledged "
    "work; the server absorbs it as duplicates).",
)
@click.option(
    "--dead-letter-timeout",
    envvar="SRVMON_DEAD_LETTER_TIMEOUT",
    default=30.0,
    show_envvar=True,
    type=click.FloatRange(min=1.0),
    help="Seconds to retry a dead-letter copy the broker refuses; then a truncated copy, "
    "then the message is logged, counted and skipped.",
)
@click.option(
    "--stats-interval",
    envvar="SRVMON_CONSUMER_STATS_INTERVAL",
    default=10.0,
    show_envvar=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between log lines with the consumer's own figures.",
)
@click.option(
    "--metrics-port",
    envvar="SRVMON_CONSUMER_METRICS_PORT",
    default=None,
    show_envvar=True,
    type=click.IntRange(0, 65535),
    help="Serve the consumer's own figures for Prometheus at GET /metrics on this port "
    "(off when unset; 0 picks a free port).",
)
@click.option(
    "--metrics-host",
    envvar="SRVMON_CONSUMER_METRICS_HOST",
    default="127.0.0.1",
    show_default=True,
    show_envvar=True,
    help="Address for --metrics-port (0.0.0.0 to be scraped from other hosts or containers).",
)
@click.option(
    "--log-level",
    envvar="SRVMON_LOG_LEVEL",
    default="INFO",
    show_envvar=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Least severe log messages written to stderr.",
)
def consumer(  # noqa: PLR0917 - click passes every option by keyword
    bootstrap_server: str,
    topic: str,
    group: str,
    server_url: str,
    token: str | None,
    dead_letter_topic: str | None,
    batch_size: int,
    parallelism: int,
    max_in_flight: int,
    max_in_flight_bytes: int,
    max_request_batches: int,
    kafka_options: tuple[str, ...],
    legacy_timezone: str,
    legacy_interval_seconds: float,
    initial_retry_seconds: float,
    max_retry_seconds: float,
    request_timeout: float,
    shutdown_timeout: float,
    commit_interval: float,
    dead_letter_timeout: float,
    stats_interval: float,
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
) -> None:
    """Relay batches from Kafka to the server's ingest, committing only what it stored."""
    from confluent_kafka import Consumer, KafkaException, Producer

    from srvmon_agents.consumer.backoff import Backoff
    from srvmon_agents.consumer.brokers import BrokerWatch
    from srvmon_agents.consumer.deadletter import DeadLetterSink
    from srvmon_agents.consumer.delivery import IngestClient
    from srvmon_agents.consumer.relay import Relay, RelaySettings
    from srvmon_core.codec import decode_for_forwarding

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    extra = parse_kafka_options(kafka_options)
    tz = _timezone(legacy_timezone)
    try:
        ingest = IngestClient(server_url, token, timeout_seconds=request_timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--server-url") from exc
    broker = BrokerWatch(bootstrap_server)
    try:
        kafka_consumer = Consumer(relay_consumer_config(bootstrap_server, group, extra, broker))
        producer = Producer(
            dead_letter_producer_config(bootstrap_server, extra, dead_letter_timeout)
        )
    except KafkaException as exc:
        raise click.ClickException(f"bad Kafka configuration: {exc}") from exc
    settings = RelaySettings(
        topic=topic,
        batch_size=batch_size,
        parallelism=parallelism,
        max_in_flight=max_in_flight,
        max_in_flight_bytes=max_in_flight_bytes,
        max_request_batches=max_request_batches,
        backoff=Backoff(initial_seconds=initial_retry_seconds, max_seconds=max_retry_seconds),
        shutdown_grace_seconds=shutdown_timeout,
        commit_interval_seconds=commit_interval,
        stats_interval_seconds=stats_interval,
    )
    decode = partial(
        decode_for_forwarding, legacy_tz=tz, legacy_interval_seconds=legacy_interval_seconds
    )
    relay = Relay(
        kafka_consumer,
        ingest=ingest,
        dead_letter=DeadLetterSink(
            producer, dead_letter_topic or f"{topic}.dead", retry_seconds=dead_letter_timeout
        ),
        decode=decode,
        settings=settings,
        broker=broker,
    )
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    endpoint = None
    if metrics_port is not None:
        from srvmon_agents.consumer.exposition import MetricsEndpoint

        try:
            endpoint = MetricsEndpoint(metrics_host, metrics_port, relay.snapshot)
        except OSError as exc:
            raise click.ClickException(
                f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc}"
            ) from exc
        logging.getLogger("srvmon.consumer").info(
            "metrics at http://%s:%d/metrics", metrics_host, endpoint.port
        )
    try:
        relay.run(stop)
    except (SrvmonError, KafkaException) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if endpoint is not None:
            endpoint.close()
        producer.flush(5)
