"""A host id that survives collector restarts, container re-creation and reboots.

Order of preference:

1. the host's machine id (``/etc/machine-id``, or ``/host/etc/machine-id`` when the host's
   root is mounted in the collector's container), written once at install time by systemd;
2. a UUID persisted in ``id_file`` (default ``$XDG_DATA_HOME/srvmon/host-id``, i.e.
   ``~/.local/share/srvmon/host-id``), created on first start.

The kernel's boot id is never used: it changes at every boot.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from srvmon_core.errors import ConfigError


def default_id_file() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "srvmon" / "host-id"


def _valid(text: str) -> str | None:
    value = text.strip()
    return value if value and len(value) <= 128 and value.isprintable() else None


def resolve_host_id(machine_id_files: Iterable[Path], id_file: Path) -> str:
    """The first readable machine id, else the persisted id (created if absent)."""
    for candidate in machine_id_files:
        try:
            value = _valid(candidate.read_text())
        except OSError:
            continue
        if value:
            return value
    try:
        value = _valid(id_file.read_text())
        if value:
            return value
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot read host id file {id_file}: {exc}", "host_id_file") from exc
    value = str(uuid.uuid4())
    try:
        id_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = id_file.with_suffix(".tmp")
        temporary.write_text(value + "\n")
        temporary.replace(id_file)
    except OSError as exc:
        raise ConfigError(f"cannot write host id file {id_file}: {exc}", "host_id_file") from exc
    return value
