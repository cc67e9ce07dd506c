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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingestion.postgres_session import copy_to_duckdb
from reverse_etl.ledger import ensure_daily_view

PUBLISHED_SCHEMAS = ("marts", "staging", "reverse_etl")
# relations never copied
LEFT_OUT = {("staging", "stg_stripe__object_states"), ("staging", "stg_stripe__events")}
# columns never copied: (schema, table) -> columns
LEFT_OUT_COLUMNS = {("reverse_etl", "tiktok_deliveries"): {"payload"}}
_ALIAS = "ttattr_published"
# the column of the build's stamp in the keyed incremental models (dbt_project/macros/incremental/build_stamp.sql)
STAMP = "built_at"
# a copy's private folder older than this belongs to a process that died (runs copy one at a time: the pool)
STALE_SECONDS = 3600


@dataclass(frozen=True)
class Published:
    path: Path
    tables: int
    rows: int
    bytes: int
    seconds: float
    written: int = 0  # tables written whole
    appended: int = 0  # append-only tables that took only newer loads
    patched: int = 0  # tables that took only the rows of keys whose rows changed
    from_spare: bool = False  # patched from the copy published before the last, not from a byte copy


def publish(
    con: duckdb.DuckDBPyConnection,
    target: Path,
    schemas: tuple[str, ...] = PUBLISHED_SCHEMAS,
    changed: set[tuple[str, str]] | None = None,
    append_only: frozenset[tuple[str, str]] = frozenset(),
    keys: Mapping[tuple[str, str], str] | None = None,
) -> Published:
    """Copy the relations of ``schemas`` from the warehouse ``con`` holds into a new file, then rename it over
    ``target``. ``con`` must be the pipeline's own (writing) connection: the copy is one consistent state.

    With ``changed`` (the relations rebuilt since the copy at ``target`` was published; ``(schema, "*")``: all of a
    schema), the new file starts as the spare (the copy published before, when nobody holds it open; every table is
    then compared) or else as a byte copy of the published one (the file system copies far faster than DuckDB
    writes), and only the changed tables are written again; of those, tables in ``append_only`` (rows are only ever
    added, each load with its own ``loaded_at``; a view copied as a table may be one too) take just the rows of newer
    loads, or are written again when the counts then disagree (the caller leaves it empty when the rows of earlier
    loads may have changed: after a full rebuild); tables with a column in ``keys`` (a model's unique key) take the
    rows of the keys whose rows differ (see :func:`_patch_changed_keys`). Without ``changed``, or without a
    published copy, every table is written."""
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
    incremental = changed is not None and target.exists()
    from_spare = incremental and _take_spare(con, spare_path(target), staging)
    if incremental and not from_spare:
        shutil.copyfile(target, staging)
    written = appended = patched = 0
    if not from_spare:
        con.execute(f"attach {_literal(str(staging))} as {_ALIAS}")
    try:
        # the spare is older than the published copy: every table is compared, none kept as it is
        everything = {(schema, "*") for schema in schemas}
        kept = _kept_tables(con, relations, everything if from_spare else changed or set()) if incremental else set()
        for schema in sorted({r[0] for r in relations}):
            con.execute(f"create schema if not exists {_ALIAS}.{_ident(schema)}")
        for schema, name, is_view in relations:
            if is_view or (schema, name) in kept:
                continue
            relation = f"{_ident(schema)}.{_ident(name)}"
            left_out = LEFT_OUT_COLUMNS.get((schema, name), set())
            if incremental and (schema, name) in append_only and _append_newer_loads(con, schema, name):
                appended += 1
                continue
            key = (keys or {}).get((schema, name))
            if incremental and key and _patch_changed_keys(con, schema, name, key, left_out):
                patched += 1
                continue
            columns = "*" if not left_out else "* exclude (" + ", ".join(_ident(c) for c in sorted(left_out)) + ")"
            con.execute(f"drop table if exists {_ALIAS}.{relation}")
            con.execute(f"create table {_ALIAS}.{relation} as select {columns} from {relation}")
            written += 1
        # views last, in the copy itself (its own catalog, so the names in their text resolve to the copied tables)
        unbound = []
        held = {
            (s, n)
            for s, n in con.execute(
                "select table_schema, table_name from information_schema.tables where table_catalog = ?", [_ALIAS]
            ).fetchall()
        }
        con.execute(f"use {_ALIAS}")
        try:
            for schema, name, is_view in relations:
                if not is_view:
                    continue
                # a table the copy holds under the view's name (it was a table, or a view copied as one) gives way,
                # in the same transaction, only if the view can be created
                con.execute("begin")
                try:
                    if (schema, name) in held:
                        con.execute(f"drop table {_ALIAS}.{_ident(schema)}.{_ident(name)}")
                    con.execute(view_sql[(schema, name)].replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
                    con.execute("commit")
                except (KeyError, duckdb.CatalogException, duckdb.BinderException):
                    con.execute("rollback")
                    unbound.append((schema, name))  # it reads something the copy does not hold
        finally:
            con.execute(f"use {_ident(warehouse_catalog)}")
        for schema, name in unbound:  # copied as tables instead, when they changed
            if (schema, name) in kept:
                continue
            if incremental and (schema, name) in append_only and _append_newer_loads(con, schema, name):
                appended += 1  # a view over tables rows are only added to: its rows too
                continue
            relation = f"{_ident(schema)}.{_ident(name)}"
            con.execute(f"drop table if exists {_ALIAS}.{relation}")
            con.execute(f"create table {_ALIAS}.{relation} as from {relation}")
            written += 1
        tables, rows = _contents(con)
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
    # the copy being replaced becomes the spare that the next publication patches (once nobody reads it)
    previous = private / "previous"
    try:
        os.link(target, previous)
    except FileNotFoundError:  # erased by `forget`
        pass
    os.replace(staging, target)
    if previous.exists():
        os.replace(previous, spare_path(target))
    shutil.rmtree(private, ignore_errors=True)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return Published(
        target,
        tables,
        rows,
        target.stat().st_size,
        time.perf_counter() - started,
        written,
        appended,
        patched,
        from_spare,
    )


def publish_from_postgres(pg, target: Path, schemas: tuple[str, ...] = PUBLISHED_SCHEMAS) -> Published:
    """The analysts' copy of a PostgreSQL warehouse (``pg``: a psycopg2 connection): what :func:`publish` would copy,
    read in one REPEATABLE READ transaction (one consistent state) into an in-memory DuckDB database, then published
    from there whole. Analysts can query PostgreSQL itself while runs write (MVCC); the copy is the same file the
    embedded default publishes, which the marketing report and the demo's report read, and a notebook can take
    away. Views arrive as tables."""
    started = time.perf_counter()
    pg.rollback()
    pg.set_session(isolation_level="REPEATABLE READ", readonly=True)
    try:
        with pg.cursor() as cur:
            cur.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema = any(%s) order by 1, 2",
                [list(schemas)],
            )
            relations = [r for r in cur.fetchall() if r not in LEFT_OUT]
        with tempfile.TemporaryDirectory(prefix="publish-postgres-") as scratch, duckdb.connect() as mem:
            for schema, name in relations:
                # what the copy leaves out (the ledger's payloads) never leaves PostgreSQL
                left_out = frozenset(LEFT_OUT_COLUMNS.get((schema, name), ()))
                copy_to_duckdb(pg, mem, f"{schema}.{name}", "true", Path(scratch), left_out)
            pg.rollback()
            if {("marts", "tiktok_conversions"), ("reverse_etl", "tiktok_deliveries")} <= set(relations):
                ensure_daily_view(mem)  # a DuckDB view over the delivery's ledger, as the embedded warehouse has
            published = publish(mem, target, schemas)
    finally:
        pg.rollback()
        pg.set_session(isolation_level="DEFAULT", readonly=False)
    return Published(
        published.path,
        published.tables,
        published.rows,
        published.bytes,
        time.perf_counter() - started,
        published.written,
    )


def spare_path(target: Path) -> Path:
    """The copy published before the current one, kept to be patched into the next (`forget` deletes it too)."""
    return target.parent / f".{target.name}.spare"


def _take_spare(con, spare: Path, staging: Path) -> bool:
    """Move the spare into the private folder and attach it for writing; False when there is none, or when a
    reader still has it open (DuckDB's lock: an analyst connected before the last publication), in which case the
    publication starts from a byte copy of the published file instead. Patching the spare writes only what changed
    where copying the published file writes all of it again (1.4 GB at 3M events) before anything is patched."""
    try:
        os.replace(spare, staging)
    except FileNotFoundError:
        return False
    try:
        con.execute(f"attach {_literal(str(staging))} as {_ALIAS}")
    except duckdb.IOException:
        staging.unlink()  # its reader keeps reading what it opened
        return False
    return True


def _kept_tables(con, relations, changed: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The copy's tables that stay as they are: unchanged, of a relation still published. Every other relation
    the copy holds is dropped (views are all created again)."""
    wanted = {(s, n) for s, n, _ in relations}
    held = con.execute(
        "select table_schema, table_name, table_type = 'VIEW' from information_schema.tables where table_catalog = ?",
        [_ALIAS],
    ).fetchall()
    kept = set()
    for schema, name, is_view in held:
        relation = f"{_ALIAS}.{_ident(schema)}.{_ident(name)}"
        if is_view:
            con.execute(f"drop view {relation}")
        elif (schema, name) not in wanted:
            con.execute(f"drop table {relation}")
        elif (schema, name) not in changed and (schema, "*") not in changed:
            kept.add((schema, name))
    return kept


def _append_newer_loads(con, schema: str, name: str) -> bool:
    """Add the warehouse's rows of loads newer than the copy's newest; False (nothing changed) when the table has
    no loaded_at, its columns differ, or the counts disagree afterwards (a rebuild, a late load): write it whole."""
    relation = f"{_ident(schema)}.{_ident(name)}"
    copied = f"{_ALIAS}.{relation}"
    columns = con.execute(f"select * from {relation} limit 0").description
    if [c[0] for c in columns] != _copied_columns(con, copied):
        return False
    if "loaded_at" not in {c[0] for c in columns}:
        return False
    # the copy's newest load as a constant, not a subquery: the scan of the warehouse's side (a view's join over raw
    # rows too) then skips every row group older than it
    newest = con.execute(f"select max(loaded_at) from {copied}").fetchall()[0][0]
    con.execute("begin")
    if newest is None:
        con.execute(f"insert into {copied} select * from {relation}")
    else:
        con.execute(f"insert into {copied} select * from {relation} where loaded_at > ?", [newest])
    counts = con.execute(f"select (select count(*) from {relation}), (select count(*) from {copied})").fetchall()[0]
    if counts[0] != counts[1]:
        con.execute("rollback")
        return False
    con.execute("commit")
    return True


def _patch_changed_keys(con, schema: str, name: str, key: str, left_out: set[str]) -> bool:
    """Replace, in the copy, the rows of every key whose rows differ from the warehouse's, and nothing else. Exact
    whatever the key's uniqueness (all rows of a changed key are replaced) and for null keys. An increment changes
    few keys. False (write it whole) when the columns differ or the row counts disagree afterwards.

    Which keys differ: in a table whose rows carry the build's stamp (``built_at``, macro build_stamp: dbt writes
    every row it builds with its build's start), the keys of rows whose stamp the copy does not hold, and, where a
    stamp now has fewer rows than in the copy (rows a post-hook deleted, keys gone), the keys whose count of rows of
    those stamps differs. Rows are never added under a stamp the copy holds (the copy held all of that build's rows
    when it was published; nothing updates a stamped row in place: a run rewrites it, `forget` drops the table), so
    within such stamps a key's rows differ only if their count does. That reads the stamp column of each side, and
    the keys only of the rows of new or shrunk stamps (DuckDB skips the other row groups by their min/max: a build's
    rows are written together). Stamps are compared as a set, not by order, so a clock set back does not hide a
    build. In any other table, a hash of each whole row, compared as multisets (``except all`` both ways): every
    column of both sides."""
    relation = f"{_ident(schema)}.{_ident(name)}"
    copied = f"{_ALIAS}.{relation}"
    columns = [c[0] for c in con.execute(f"select * from {relation} limit 0").description if c[0] not in left_out]
    if key not in columns or columns != _copied_columns(con, copied):
        return False
    listed = ", ".join(_ident(c) for c in columns)
    k, row = _ident(key), f"hash({listed})"
    if STAMP in columns:
        stamp = _ident(STAMP)
        counts = con.execute(f"""
            select cast(coalesce(w.s, c.s) as varchar), w.n, c.n from
                (select {stamp} as s, count(*) as n from {relation} where {stamp} is not null group by all) as w
                full join (select {stamp} as s, count(*) as n from {copied} where {stamp} is not null group by all) as c
                on w.s = c.s
        """).fetchall()
        # new to the copy (or, were a stamp ever given twice, grown): every key of its rows; shrunk: compare counts
        new = [s for s, here, there in counts if here is not None and (there is None or here > there)]
        shrunk = [s for s, here, there in counts if there is not None and (here is None or here < there)]

        def among(stamps: list[str]) -> str:
            return " or ".join(f"{stamp} = cast({_literal(s)} as timestamp)" for s in stamps) or "false"

        con.execute(f"""
            create or replace temp table _ttattr_changed_keys as
            select distinct {k} as k from {relation} where {among(new)} or {stamp} is null
            union
            select distinct {k} from {copied} where {stamp} is null
            union
            select coalesce(w.k, c.k) from
                (select {k} as k, count(*) as n from {relation} where {among(shrunk)} group by all) as w
                full join (select {k} as k, count(*) as n from {copied} where {among(shrunk)} group by all) as c
                on w.k is not distinct from c.k
            where w.n is distinct from c.n
        """)
    else:
        con.execute(f"""
            create or replace temp table _ttattr_changed_keys as
            select distinct k from (
                (select {k} as k, {row} as h from {relation} except all select {k}, {row} from {copied})
                union all
                (select {k}, {row} from {copied} except all select {k}, {row} from {relation})
            )
        """)
    try:
        con.execute("begin")
        con.execute(
            f"delete from {copied} where exists "
            f"(select 1 from _ttattr_changed_keys c where c.k is not distinct from {copied}.{k})"
        )
        con.execute(
            f"insert into {copied} select {listed} from {relation} r "
            f"where exists (select 1 from _ttattr_changed_keys c where c.k is not distinct from r.{k})"
        )
        counts = con.execute(f"select (select count(*) from {relation}), (select count(*) from {copied})").fetchall()
        if counts[0][0] != counts[0][1]:
            con.execute("rollback")
            return False
        con.execute("commit")
        return True
    finally:
        con.execute("drop table if exists _ttattr_changed_keys")


def _copied_columns(con, copied: str) -> list[str] | None:
    """The columns of a table of the copy; None when the copy does not hold it (new since it was published)."""
    try:
        return [c[0] for c in con.execute(f"select * from {copied} limit 0").description]
    except duckdb.CatalogException:
        return None


def _contents(con) -> tuple[int, int]:
    tables = con.execute(
        "select table_schema, table_name from information_schema.tables where table_catalog = ?", [_ALIAS]
    ).fetchall()
    rows = sum(
        con.execute(f"select count(*) from {_ALIAS}.{_ident(s)}.{_ident(n)}").fetchall()[0][0] for s, n in tables
    )
    return len(tables), rows


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
