"""``--kafka-option KEY=VALUE`` / ``SRVMON_KAFKA_OPTIONS``: librdkafka settings for the
collector's producer and the consumer, parsed one way for both.

From the environment variable, pairs are separated by whitespace, as every repeatable
option's variable is (click's rule); on the command line each pair is one
``--kafka-option``. When both are given, the command line wins (the variable is not read).
Values may contain ``=`` (``sasl.jaas.config=...``) and commas (``ssl.cipher.suites=A,B``);
a value with spaces must come from the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

ENV_VAR = "SRVMON_KAFKA_OPTIONS"
HELP = (
    "librdkafka setting (TLS, SASL, timeouts, ...), e.g. security.protocol=SASL_SSL; "
    "repeatable. In the env var, separate pairs with spaces."
)


F = TypeVar("F", bound=Callable[..., Any])


def kafka_option() -> Callable[[F], F]:
    """The shared ``--kafka-option`` click option."""
    return click.option(
        "--kafka-option",
        "kafka_options",
        envvar=ENV_VAR,
        multiple=True,
        show_envvar=True,
        metavar="KEY=VALUE",
        help=HELP,
    )


def parse_kafka_options(pairs: tuple[str, ...]) -> dict[str, str]:
    """``("security.protocol=SASL_SSL", ...)`` → a librdkafka config dict; a pair without
    ``=`` or without a key is a usage error naming ``--kafka-option``."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(
                f"expected KEY=VALUE, got {pair!r}", param_hint="--kafka-option"
            )
        options[key.strip()] = value.strip()
    return options
