"""Create the schema, or upgrade an older one step by step, recording ``schema_version``.

Rules of the road:

- ``MIGRATIONS[v]`` turns a version-``v`` database into version ``v + 1``; each step runs in
  its own transaction and the version row is bumped with it.
- A database with tables but no ``schema_version`` table predates versioning and is treated
  as version 1 (the first released layout).
- After the steps, tables new since the stored version are created, and every flat metric of
  ``srvmon_core.metrics`` gets its columns (a metric added to the core needs no hand-written
  migration).
- A database newer than this code is refused, never downgraded.
- The v6 step rebuilds ``machines`` on SQLite in the *current* layout, so a later step
  that adds a column to ``machines`` must check that it is missing first (as
  ``_missing_metric_columns`` does for metric columns).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import sqlalchemy as sa

from srvmon_core.schema import container_key, container_name_for, host_id_for, host_key
from srvmon_server.storage import tables as t
from srvmon_server.storage.errors import StorageError

Step = Callable[[sa.Connection], None]
log = logging.getLogger(__name__)


def _v1_to_v2(conn: sa.Connection) -> None:
    """v2 records whether an alert event happened under a silence."""
    conn.execute(sa.text("ALTER TABLE alert_events ADD COLUMN silenced BOOLEAN NOT NULL DEFAULT 0"))


def _v2_to_v3(conn: sa.Connection) -> None:
    """v3 speaks one state vocabulary: a reporting host is ``running`` (was ``up``)."""
    conn.execute(
        sa.text("UPDATE machines SET state = 'running' WHERE kind = 'host' AND state = 'up'")
    )


def _v3_to_v4(conn: sa.Connection) -> None:
    """v4 keeps the alert state per machine (``alert_machines``), not in one row."""
    from srvmon_server.storage.alert_states import split_whole_state

    t.alert_machines.create(conn, checkfirst=True)
    if "alert_state" not in sa.inspect(conn).get_table_names():
        return
    body = conn.execute(sa.text("SELECT body FROM alert_state WHERE id = 1")).scalar()
    rows = split_whole_state(body, _now_ms()) if body is not None else []
    if rows:
        conn.execute(sa.insert(t.alert_machines), rows)
    conn.execute(sa.text("DROP TABLE alert_state"))


FUTURE_SLACK_MS = 86_400_000
"""v5 repairs inventory rows whose newest sample is more than this ahead of the clock."""


def _v4_to_v5(conn: sa.Connection) -> None:
    """v5 keeps keys unambiguous and inventories unfrozen.

    A machine stored under a host id or container name that srvmon now refuses (a ``:``
    in a host id made ``coll:web`` both a host and host ``coll``'s container ``web``) is
    renamed with ``srvmon_core.schema.host_id_for`` / ``container_name_for``, the ids a
    legacy Java collector's documents now map to, so such a host reports on into its
    history; its saved alert state is dropped (keyed by the old key).

    A machine whose newest sample lies more than a day in the future (a wrong collector
    clock) gets its newest time set back to its newest sample that is not, so correct
    samples refresh its inventory again.
    """
    m = t.machines.c
    rows = conn.execute(sa.select(m.id, m.key, m.kind, m.host_id, m.name)).all()
    taken = {row.key for row in rows}
    for row in rows:
        host_id = host_id_for(row.host_id)
        if row.kind == "host":
            key = host_key(host_id)
            values = {"key": key, "host_id": host_id}
        else:
            name = container_name_for(row.name)
            key = container_key(host_id, name)
            values = {"key": key, "host_id": host_id, "name": name}
        if key == row.key:
            continue
        if key in taken:  # pragma: no cover - needs a sha256 prefix collision
            raise StorageError(f"cannot rename machine {row.key!r}: {key!r} exists")
        log.warning("machine key %r is not valid any more; renamed to %r", row.key, key)
        conn.execute(sa.update(t.machines).where(m.id == row.id).values(**values))
        conn.execute(sa.delete(t.alert_machines).where(t.alert_machines.c.key == row.key))
        taken.add(key)
    horizon = _now_ms() + FUTURE_SLACK_MS
    s = t.samples.c
    newest_sane = (
        sa.select(sa.func.coalesce(sa.func.max(s.ts_ms), 0))
        .where(s.machine_id == m.id, s.ts_ms <= horizon)
        .scalar_subquery()
    )
    frozen = conn.execute(
        sa.update(t.machines)
        .where(m.latest_ts_ms > horizon)
        .values(latest_ts_ms=newest_sane, last_seen_ms=newest_sane)
    ).rowcount
    if frozen:
        log.warning("%d machines had their newest sample in the future; repaired", frozen)


def _v5_to_v6(conn: sa.Connection) -> None:
    """v6 stores an unreported restart count as NULL, not 0 (hosts have none; the legacy
    Java collector does not send one). SQLite cannot drop NOT NULL in place: the table is
    rebuilt in the current layout (``tables.machines``) with the rows of the old one, copying
    the columns both tables have (a column only the new layout has gets its default)."""
    quote = conn.dialect.identifier_preparer.quote
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("ALTER TABLE machines RENAME TO machines_v5")
        inspector = sa.inspect(conn)
        for index in inspector.get_indexes("machines_v5"):
            conn.exec_driver_sql(f"DROP INDEX {quote(str(index['name']))}")
        old = {column["name"] for column in inspector.get_columns("machines_v5")}
        t.machines.create(conn)
        columns = ", ".join(quote(c.name) for c in t.machines.c if c.name in old)
        conn.exec_driver_sql(f"INSERT INTO machines ({columns}) SELECT {columns} FROM machines_v5")
        conn.exec_driver_sql("DROP TABLE machines_v5")
    else:
        conn.exec_driver_sql("ALTER TABLE machines MODIFY restart_count INTEGER NULL")
    conn.execute(sa.text("UPDATE machines SET restart_count = NULL WHERE kind = 'host'"))


MIGRATIONS: dict[int, Step] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
    5: _v5_to_v6,
}


def _now_ms() -> int:
    return int(time.time() * 1000)


def stored_version(conn: sa.Connection) -> int | None:
    """The recorded version; 1 for a pre-versioning database; None for an empty one."""
    names = set(sa.inspect(conn).get_table_names())
    if t.schema_version.name in names:
        row = conn.execute(sa.select(t.schema_version.c.version)).first()
        if row is not None:
            return int(row[0])
    if t.machines.name in names:
        return 1
    return None


def _write_version(conn: sa.Connection, version: int) -> None:
    conn.execute(sa.delete(t.schema_version))
    conn.execute(
        sa.insert(t.schema_version).values(id=1, version=version, upgraded_at_ms=_now_ms())
    )


def _missing_metric_columns(conn: sa.Connection) -> None:
    inspector = sa.inspect(conn)
    preparer = conn.dialect.identifier_preparer
    raw = [(t.raw_column(m), "DOUBLE") for m in t.METRIC_NAMES]
    wanted: list[tuple[sa.Table, list[tuple[str, str]]]] = [
        (t.samples, raw),
        (t.samples_recent, raw),
    ]
    for table, _ in t.ROLLUPS.values():
        columns: list[tuple[str, str]] = []
        for metric in t.METRIC_NAMES:
            n, total, low, high = t.rollup_columns(metric)
            columns += [
                (n, "INTEGER NOT NULL DEFAULT 0"),
                (total, "DOUBLE NOT NULL DEFAULT 0"),
                (low, "DOUBLE"),
                (high, "DOUBLE"),
            ]
        wanted.append((table, columns))
    for table, columns in wanted:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        missing = [(name, ddl) for name, ddl in columns if name not in present]
        if not missing:
            continue
        clauses = [f"ADD COLUMN {preparer.quote(name)} {ddl}" for name, ddl in missing]
        if conn.dialect.name == "sqlite":
            for clause in clauses:
                conn.execute(sa.text(f"ALTER TABLE {preparer.quote(table.name)} {clause}"))
        else:
            conn.execute(sa.text(f"ALTER TABLE {preparer.quote(table.name)} {', '.join(clauses)}"))


def ensure_schema(engine: sa.Engine) -> int:
    """Create or upgrade the schema; return the version found before (0 for a new database)."""
    with engine.begin() as conn:
        version = stored_version(conn)
        if version is None:
            t.metadata.create_all(conn)
            _write_version(conn, t.SCHEMA_VERSION)
            return 0
    if version > t.SCHEMA_VERSION:
        raise StorageError(
            f"database schema is version {version}, newer than this srvmon understands "
            f"({t.SCHEMA_VERSION}); upgrade srvmon instead of pointing an old one at it"
        )
    for step_from in range(version, t.SCHEMA_VERSION):
        step = MIGRATIONS.get(step_from)
        if step is None:
            raise StorageError(f"no migration from schema version {step_from}")
        with engine.begin() as conn:
            step(conn)
            _write_version(conn, step_from + 1)
    with engine.begin() as conn:
        t.metadata.create_all(conn, checkfirst=True)
        _missing_metric_columns(conn)
        _write_version(conn, t.SCHEMA_VERSION)
    return version
