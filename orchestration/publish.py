"""The analysts' copy of the warehouse (`ANALYTICS_PATH`): a DuckDB file that runs only ever replace whole.

DuckDB lets one process write a database file, and while it writes nobody else may open it; a reader holding it
open (a notebook, a BI tool) in turn keeps every writer out. So analysts never open the warehouse: after each
successful build, the relations they query are copied into a new file beside the published one, which is then
renamed over it. A connection already open keeps reading the file it opened (on POSIX a rename does not touch an
open file), so it never blocks a run and a run never blocks it; the next connection opens the new file.

What is copied: the schemas analysts query (marts, staging, the delivery ledger and its reports). Tables are
copied; views are created again in the copy from their own text (over the copied tables, so they cost nothing to
publish); a view that reads something the copy does not hold is copied as a table. Left out: the raw tables, the
intermediate models, bookkeeping, the Stripe event payloads (`stg_stripe__object_states`, `stg_stripe__events`:
what the other Stripe staging models read; the whole JSON of every event, the costliest part to copy), and the
ledger's `payload` column (hashed match keys and, for a few days, IP and user agent: what was sent stays in the
warehouse). No Dagster here (orchestration/defs/publishing.py runs it as an asset).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

PUBLISHED_SCHEMAS = ("marts", "staging", "reverse_etl")
# relations never copied
LEFT_OUT = {("staging", "stg_stripe__object_states"), ("staging", "stg_stripe__events")}
# columns never copied: (schema, table) -> columns
LEFT_OUT_COLUMNS = {("reverse_etl", "tiktok_deliveries"): {"payload"}}
_ALIAS = "ttattr_published"
# a copy's private folder older than this belongs to a process that died (runs copy one at a time: the pool)
STALE_SECONDS = 3600


@dataclass(frozen=True)
class Published:
    path: Path
    tables: int
    rows: int
    bytes: int
    seconds: float


def publish(con: duckdb.DuckDBPyConnection, target: Path, schemas: tuple[str, ...] = PUBLISHED_SCHEMAS) -> Published:
    """Copy the relations of ``schemas`` from the warehouse ``con`` holds into a new file, then rename it over
    ``target``. ``con`` must be the pipeline's own (writing) connection: the copy is one consistent state."""
    started = time.perf_counter()
    warehouse_catalog = con.execute("select current_database()").fetchall()[0][0]
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # written in a directory only the owner can enter (the copy holds personal data as the warehouse does), on the
    # same file system as the target so that the rename is atomic
    for stale in target.parent.glob(f".{target.name}.*"):  # left by a process that died while copying
        if stale.is_dir() and stale.stat().st_mtime < time.time() - STALE_SECONDS:
            shutil.rmtree(stale, ignore_errors=True)
    private = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging = private / target.name
    relations = con.execute(
        "select table_schema, table_name, table_type = 'VIEW' from information_schema.tables "
        f"where table_catalog = current_database() and table_schema in ({', '.join('?' for _ in schemas)}) "
        "order by 1, 2",
        list(schemas),
    ).fetchall()
    relations = [r for r in relations if (r[0], r[1]) not in LEFT_OUT]
    view_sql = dict(
        ((schema, name), sql)
        for schema, name, sql in con.execute(
            "select schema_name, view_name, sql from duckdb_views() where database_name = current_database()"
        ).fetchall()
    )
    tables = rows = 0
    con.execute(f"attach {_literal(str(staging))} as {_ALIAS}")
    try:
        for schema in sorted({r[0] for r in relations}):
            con.execute(f"create schema {_ALIAS}.{_ident(schema)}")
        for schema, name, is_view in relations:
            if is_view:
                continue
            left_out = LEFT_OUT_COLUMNS.get((schema, name), set())
            columns = "*" if not left_out else "* exclude (" + ", ".join(_ident(c) for c in sorted(left_out)) + ")"
            con.execute(
                f"create table {_ALIAS}.{_ident(schema)}.{_ident(name)} as "
                f"select {columns} from {_ident(schema)}.{_ident(name)}"
            )
            rows += con.execute(f"select count(*) from {_ALIAS}.{_ident(schema)}.{_ident(name)}").fetchall()[0][0]
            tables += 1
        # views last, in the copy itself (its own catalog, so the names in their text resolve to the copied tables)
        unbound = []
        con.execute(f"use {_ALIAS}")
        try:
            for schema, name, is_view in relations:
                if not is_view:
                    continue
                try:
                    con.execute(view_sql[(schema, name)])
                    tables += 1
                except (KeyError, duckdb.CatalogException):
                    unbound.append((schema, name))  # it reads something the copy does not hold
        finally:
            con.execute(f"use {_ident(warehouse_catalog)}")
        for schema, name in unbound:  # copied as tables instead
            con.execute(
                f"create table {_ALIAS}.{_ident(schema)}.{_ident(name)} as from {_ident(schema)}.{_ident(name)}"
            )
            tables += 1
        con.execute(f"detach {_ALIAS}")
    except BaseException:
        try:
            con.execute(f"detach {_ALIAS}")
        except duckdb.Error:
            pass
        shutil.rmtree(private, ignore_errors=True)
        raise
    os.chmod(staging, 0o600)
    with open(staging, "rb") as f:
        os.fsync(f.fileno())
    os.replace(staging, target)
    shutil.rmtree(private, ignore_errors=True)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return Published(target, tables, rows, target.stat().st_size, time.perf_counter() - started)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
