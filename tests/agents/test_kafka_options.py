"""TLS and SASL to Kafka: `--kafka-option` and `SRVMON_KAFKA_OPTIONS` parse the same way for
the collector and the consumer, real librdkafka accepts the settings docs/operations.md
names, and a collector configured for TLS really speaks TLS to the broker address."""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from srvmon_agents.collector.setup import AgentConfig, build_sink
from srvmon_agents.kafka_options import parse_kafka_options
from srvmon_cli.main import main
from tests.helpers import missing

SASL_SSL = (
    "security.protocol=SASL_SSL",
    "sasl.mechanism=SCRAM-SHA-512",
    "sasl.username=collector",
    "sasl.password=s3cret=with=equals",
    "ssl.ca.location=/etc/ssl/certs/ca-certificates.crt",
)


def parsed(role: str, args: list[str], env: dict[str, str]) -> dict[str, str]:
    """What the real command parses from its arguments and environment (not run)."""
    command = main.get_command(click.Context(main), role)
    assert command is not None
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        ctx = command.make_context(role, list(args))
    return parse_kafka_options(ctx.params["kafka_options"])


@pytest.mark.parametrize("role", ["collector", "consumer"])
def test_both_roles_read_the_options_the_same_way(role: str) -> None:
    """Space-separated pairs from the env var; flags on the command line replace it;
    values keep their '=' and commas."""
    base = ["--bootstrap-server", "k1:9093"]
    expected = dict(p.split("=", 1) for p in SASL_SSL)
    assert parsed(role, base, {"SRVMON_KAFKA_OPTIONS": " ".join(SASL_SSL)}) == expected
    flags = [*base, "--kafka-option", "ssl.cipher.suites=A,B", "--kafka-option", "acks=1"]
    assert parsed(role, flags, {"SRVMON_KAFKA_OPTIONS": " ".join(SASL_SSL)}) == {
        "ssl.cipher.suites": "A,B",
        "acks": "1",
    }


def test_librdkafka_accepts_the_documented_tls_and_sasl_settings() -> None:
    """The producer (collector sink) and a consumer are built by real librdkafka with
    SASL_SSL + SCRAM, and with mutual TLS; a misspelt setting is refused by librdkafka."""
    from confluent_kafka import Consumer, KafkaException

    options = parse_kafka_options(SASL_SSL)
    sink = build_sink(
        AgentConfig(output="kafka", bootstrap="127.0.0.1:1", kafka_options=options),
        None,  # type: ignore[arg-type]
    )
    sink.close(0.1)
    Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "g", **options}).close()
    with pytest.raises(KafkaException, match=r"security\.protcol"):
        Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "g", "security.protcol": "SSL"})


def test_a_bad_setting_is_one_line_from_the_consumer_command() -> None:
    """An unknown librdkafka setting given through the env var ends the consumer with a
    one-line error before it connects anywhere."""
    result = CliRunner().invoke(
        main,
        ["consumer", "--bootstrap-server", "127.0.0.1:1"],
        env={"SRVMON_KAFKA_OPTIONS": "security.protocol=SASL_SSL sasl.mechanism=NOPE"},
    )
    assert result.exit_code == 1
    assert "bad Kafka configuration" in result.output and "Traceback" not in result.output


def self_signed(folder: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("openssl", "the openssl command is not installed")
    cert, key = folder / "broker.pem", folder / "broker.key"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_the_collector_speaks_tls_to_the_broker(tmp_path: Path) -> None:
    """With security.protocol=SSL and ssl.ca.location, the collector's producer completes a
    TLS handshake with a listener whose certificate only that CA vouches for, and sends its
    first Kafka request (ApiVersions, key 18) inside TLS."""
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(15)
    port = listener.getsockname()[1]
    seen: dict[str, object] = {}

    def accept() -> None:
        raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as tls:
            seen["version"] = tls.version()
            _size, api_key = struct.unpack(">ih", tls.recv(6))
            seen["api_key"] = api_key

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    options = parse_kafka_options(("security.protocol=SSL", f"ssl.ca.location={cert}"))
    sink = build_sink(
        AgentConfig(output="kafka", bootstrap=f"127.0.0.1:{port}", kafka_options=options),
        None,  # type: ignore[arg-type]
    )
    try:
        sink.send("h1", b"{}")
        for _ in range(100):
            sink.pump()
            thread.join(0.1)
            if not thread.is_alive():
                break
    finally:
        sink.close(0.1)
        listener.close()
    assert seen.get("version") in ("TLSv1.2", "TLSv1.3"), seen
    assert seen.get("api_key") == 18, seen
