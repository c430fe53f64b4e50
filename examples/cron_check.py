r"""A cron check built on srvmon_core: exit non-zero when a rule fires on the current sample.

Feed it one or more srvmon batches as JSON lines, e.g. straight from the collector:

    srvmon collector --once --output stdout \
        | python examples/cron_check.py --rules examples/rules.toml

Exit status: 0 all clear, 1 a warning fires, 2 a critical fires, 3 bad input or rules.
Pending periods (`for_seconds`) are ignored: a cron job sees one instant, so a breach counts now.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import attrs

from srvmon_core import ConfigError, DecodeError
from srvmon_core.codec import decode_batch
from srvmon_core.rules import load_rules
from srvmon_core.series import evaluate_series

EXIT_BY_LEVEL = {"warning": 1, "critical": 2}


def check(rules_text: str, rules_format: str, lines: list[str]) -> tuple[int, list[str]]:
    """The exit status and one report line per firing alert."""
    rules = [attrs.evolve(r, for_seconds=0.0) for r in load_rules(rules_text, rules_format)]  # type: ignore[arg-type]
    batches = [decode_batch(line) for line in lines if line.strip()]
    firing: dict[str, tuple[str, str]] = {}
    for event in evaluate_series(rules, batches):
        if event.to_state == "firing":
            firing[event.fingerprint] = (
                event.level,
                f"{event.level.upper()} {event.rule_name} on "
                f"{event.machine_name}: {event.value} (threshold {event.threshold})",
            )
        elif event.to_state == "resolved":
            firing.pop(event.fingerprint, None)
    status = max((EXIT_BY_LEVEL.get(level, 1) for level, _ in firing.values()), default=0)
    return status, [line for _, line in firing.values()]


def main() -> int:
    parser = argparse.ArgumentParser(description="Exit non-zero when a srvmon rule fires.")
    parser.add_argument("--rules", type=Path, required=True, help="a TOML or JSON rule file")
    args = parser.parse_args()
    rules_format = "json" if args.rules.suffix == ".json" else "toml"
    try:
        status, report = check(args.rules.read_text(), rules_format, sys.stdin.readlines())
    except (ConfigError, DecodeError, OSError) as exc:
        print(f"cron_check: {exc}", file=sys.stderr)
        return 3
    print("\n".join(report) if report else "OK")
    return status


if __name__ == "__main__":
    sys.exit(main())
