"""``srvmon token``: create, list, rotate and revoke API tokens in the server's database.

The same as the ``/api/v1/tokens`` endpoints, for the operator at the server's machine (or
one that reaches its database), with no token needed. A running server picks the change up
within ``tokens_reload_seconds`` (5 s). Errors become ``click.ClickException`` here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from srvmon_server.auth import Scope, new_token, token_digest
from srvmon_server.command import DATA_DIR_OPTION, default_data_dir, default_db_url
from srvmon_server.tokens import NAME_MAX

if TYPE_CHECKING:
    from srvmon_server.storage import Storage

DB_URL = click.option(
    "--db-url",
    envvar="SRVMON_DB_URL",
    default=None,
    help="the server's SQLAlchemy URL; default as for srvmon server",
)


@contextmanager
def _storage(db_url: str | None, data_dir: Path | None) -> Iterator[Storage]:
    from srvmon_server.storage import Storage, StorageError

    folder = data_dir or default_data_dir(os.environ)
    try:
        storage = Storage.open(db_url or default_db_url(os.environ, folder))
    except StorageError as exc:
        raise click.ClickException(f"database: {exc}") from None
    try:
        yield storage
    except StorageError as exc:
        raise click.ClickException(f"database: {exc}") from None
    finally:
        storage.close()


def _now() -> datetime:
    return datetime.now(UTC)


@click.group(name="token")
def token() -> None:
    """Create, list, rotate and revoke API tokens (stored hashed in the database)."""


@token.command(name="create")
@click.option("--name", required=True, help="what the token is for, e.g. consumer-1")
@click.option(
    "--scope",
    "scopes",
    type=click.Choice([s.value for s in Scope]),
    multiple=True,
    required=True,
    help="ingest, read or admin (repeatable)",
)
@DB_URL
@DATA_DIR_OPTION
def create(name: str, scopes: tuple[str, ...], db_url: str | None, data_dir: Path | None) -> None:
    """Create a token; it is printed once (only its digest is kept)."""
    if not name.isprintable() or len(name) > NAME_MAX:
        raise click.ClickException(f"--name must be 1 to {NAME_MAX} printable characters")
    secret = new_token()
    with _storage(db_url, data_dir) as storage:
        record = storage.tokens.create(name, scopes, token_digest(secret), _now())
    click.echo(f"created token {record.id} ({name}: {', '.join(record.scopes)}):")
    click.echo(secret)


@token.command(name="list")
@DB_URL
@DATA_DIR_OPTION
def list_tokens(db_url: str | None, data_dir: Path | None) -> None:
    """The active API tokens (tokens given as server options are not stored)."""
    with _storage(db_url, data_dir) as storage:
        records = storage.tokens.active()
    for record in records:
        rotated = f", rotated {record.rotated_at:%Y-%m-%d %H:%M}" if record.rotated_at else ""
        click.echo(
            f"{record.id}  {record.name}  {','.join(record.scopes)}  "
            f"created {record.created_at:%Y-%m-%d %H:%M}{rotated}"
        )


@token.command(name="rotate")
@click.argument("token_id")
@DB_URL
@DATA_DIR_OPTION
def rotate(token_id: str, db_url: str | None, data_dir: Path | None) -> None:
    """Give a token a new secret (printed once); the old one stops working."""
    secret = new_token()
    with _storage(db_url, data_dir) as storage:
        record = storage.tokens.rotate(token_id, token_digest(secret), _now())
    if record is None:
        raise click.ClickException(f"no active token with id {token_id!r}")
    click.echo(f"rotated token {record.id} ({record.name}):")
    click.echo(secret)


@token.command(name="revoke")
@click.argument("token_id")
@DB_URL
@DATA_DIR_OPTION
def revoke(token_id: str, db_url: str | None, data_dir: Path | None) -> None:
    """Revoke a token: it stops working within seconds on every server."""
    with _storage(db_url, data_dir) as storage:
        if not storage.tokens.revoke(token_id, _now()):
            raise click.ClickException(f"no active token with id {token_id!r}")
    click.echo(f"revoked token {token_id}")
