"""Database URL from the ``DATABASE_*`` environment names the original system used."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from srvmon_server.storage.errors import StorageError

ENV_NAMES = (
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_NAME",
    "DATABASE_USERNAME",
    "DATABASE_PASSWORD",
)
DEFAULT_PORT = 3306


def url_from_env(environ: Mapping[str, str]) -> str | None:
    """``mysql+pymysql://USER:PASS@HOST:PORT/NAME`` from DATABASE_*; None when HOST is unset.

    USERNAME defaults to ``root``, PORT to 3306, PASSWORD to none. Raises StorageError when
    HOST is set but NAME is not, or PORT is not a number.
    """
    host = environ.get("DATABASE_HOST", "").strip()
    if not host:
        return None
    name = environ.get("DATABASE_NAME", "").strip()
    if not name:
        raise StorageError("DATABASE_HOST is set but DATABASE_NAME is not")
    port_text = environ.get("DATABASE_PORT", "").strip() or str(DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise StorageError(f"DATABASE_PORT must be a port number, got {port_text!r}")
    user = quote(environ.get("DATABASE_USERNAME", "").strip() or "root", safe="")
    password = environ.get("DATABASE_PASSWORD", "")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    host_part = f"[{host}]" if ":" in host else host
    return f"mysql+pymysql://{auth}@{host_part}:{int(port_text)}/{quote(name, safe='')}"
