"""Load the landing zone into a PostgreSQL warehouse (WAREHOUSE_URL), with the DuckDB loader's contracts.

Each batch of files is read, validated, deduplicated within itself and quarantined line by line by the same code
that loads the DuckDB file (``ingestion.loader.load_files``), into an in-memory DuckDB database; what it kept is
then copied into PostgreSQL with COPY, in one transaction per batch: the rows (an id PostgreSQL has already is a
duplicate, ``on conflict do nothing``), the quarantined lines and the record that the files are loaded. So a file
is loaded once and an event once, and a crash leaves a batch wholly loaded or not at all, as on DuckDB.

A batch is first COPYed straight into its raw table, which parses the payloads once on the way in. If that fails
(an id PostgreSQL has already, a line ``jsonb`` refuses), it is rolled back to a savepoint and the batch is COPYed
as text into a temporary table and inserted from there with ``on conflict do nothing``. After one such batch, the
rest of that load takes the second path directly: Stripe's pull lands again what the webhooks landed, so there
the first path would keep failing.

PostgreSQL stores the payloads as ``jsonb``, which refuses a few lines DuckDB's JSON reader accepts: text holding
a NUL character (escaped or raw; an escaped backslash before "u0000" is refused too, a rare false alarm) and
numbers beyond its numeric type (1e200000). Those lines are quarantined, one by one.

The two sides overlap: while PostgreSQL inserts one batch (its backend busy on one core, converting the payloads to
``jsonb``), the next is read and validated in DuckDB. At most one batch waits, as CSV files in the scratch folder;
the batches still commit in order, each with its files' record.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg2
import psycopg2.errors

from ingestion.durable import recover_orphans
from ingestion.landing import SOURCES, landing_files_since
from ingestion.loader import (
    BATCH_BYTES,
    ID_COLUMN,
    LISTING_SLACK_SECONDS,
    RAW_SCHEMA,
    SourceLoad,
    _batches,
    _table,
    ensure_schema,
    load_files,
)
from reverse_etl.ledger import DDL as LEDGER_DDL

COLUMNS = {
    "stripe_events": [
        "event_id", "event_type", "api_version", "created_at", "object_id", "object_type", "livemode", "payload",
        "_file", "_line", "_loaded_at",
    ],
    "tracking_events": [
        "message_id", "type", "event_name", "anonymous_id", "user_id", "event_timestamp", "payload", "_file",
        "_line", "_loaded_at",
    ],
}  # fmt: skip

DDL = f"""
create schema if not exists {RAW_SCHEMA};
create table if not exists {RAW_SCHEMA}.loaded_files (
    source text not null, file text not null, size_bytes bigint, lines bigint, loaded_rows bigint,
    duplicate_rows bigint, quarantined_rows bigint, loaded_at timestamp not null
);
create index if not exists loaded_files_by_file on {RAW_SCHEMA}.loaded_files (source, file);
create table if not exists {RAW_SCHEMA}.landing_listings (source text primary key, listed_at double precision not null);
create table if not exists {RAW_SCHEMA}.stripe_events (
    event_id text primary key, event_type text not null, api_version text, created_at timestamp not null,
    object_id text, object_type text, livemode boolean, payload jsonb not null,
    _file text not null, _line bigint not null, _loaded_at timestamp not null
);
create index if not exists stripe_events_by_load on {RAW_SCHEMA}.stripe_events (_loaded_at);
create table if not exists {RAW_SCHEMA}.tracking_events (
    message_id text primary key, type text not null, event_name text, anonymous_id text,
    user_id text, event_timestamp timestamp not null, payload jsonb not null,
    _file text not null, _line bigint not null, _loaded_at timestamp not null
);
create index if not exists tracking_events_by_load on {RAW_SCHEMA}.tracking_events (_loaded_at);
create table if not exists {RAW_SCHEMA}.quarantine (
    source text not null, file text not null, line_number bigint not null, reason text not null,
    line_text text, quarantined_at timestamp not null
);
create table if not exists {RAW_SCHEMA}.tiktok_ad_stats (
    advertiser_id text not null, stat_day date not null, ad_id text, payload jsonb not null,
    _loaded_at timestamp not null
);
-- only asked of the lines of a batch that PostgreSQL refused as a whole
create or replace function {RAW_SCHEMA}.parses_as_jsonb(t text) returns boolean
language plpgsql immutable as $fn$
begin
    perform t::jsonb;
    return true;
exception when others then
    return false;
end
$fn$;
{LEDGER_DDL}
"""


def ensure_postgres_schema(pg) -> None:
    with pg.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('ttattr.raw.ddl'))")  # concurrent DDL races otherwise
        cur.execute(DDL)
    pg.commit()


def pending_files(pg, landing_dir: Path, source: str) -> tuple[list[Path], float]:
    """As ``ingestion.loader.pending_files``, over PostgreSQL's record of loaded files."""
    listed_at = time.time()
    with pg.cursor() as cur:
        cur.execute(f"select listed_at from {RAW_SCHEMA}.landing_listings where source = %s", [source])
        previous = cur.fetchall()
        since = previous[0][0] - LISTING_SLACK_SECONDS if previous else None
        found = sorted(landing_files_since(landing_dir, source, since))
        names = [p.relative_to(landing_dir).as_posix() for p in found]
        cur.execute(
            f"""select file from {RAW_SCHEMA}.loaded_files where source = %s
                and loaded_at >= to_timestamp(%s) at time zone 'UTC' and file = any(%s)""",
            [source, since or 0, names],
        )
        loaded = {r[0] for r in cur.fetchall()}
    pg.commit()
    return [p for p, name in zip(found, names, strict=True) if name not in loaded], listed_at


def load_source(pg, landing_dir: Path, source: str, batch_bytes: int = BATCH_BYTES) -> SourceLoad:
    """Load every new landing file of one source into PostgreSQL (``pg``: a psycopg2 connection), in batches of
    files of at most ``batch_bytes`` together."""
    if source not in SOURCES:
        raise ValueError(f"unknown landing source {source!r}; expected one of {SOURCES}")
    landing_dir = Path(landing_dir).resolve()
    ensure_postgres_schema(pg)
    result = SourceLoad(source=source)
    recover_orphans(landing_dir / source)
    files, listed_at = pending_files(pg, landing_dir, source)

    def add(inserted: Future) -> bool:
        """Count a batch PostgreSQL took (a failure there stops the load, before another batch goes in); whether
        it went straight in."""
        part, went_straight_in = inserted.result()
        for name in ("files", "lines", "loaded_rows", "duplicate_rows", "quarantined_rows"):
            setattr(result, name, getattr(result, name) + getattr(part, name))
        result.file_names += part.file_names
        return went_straight_in

    with (
        tempfile.TemporaryDirectory(prefix="landing-postgres-") as scratch,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-copy") as postgres_side,
    ):
        inserting: Future | None = None
        # batches are tried straight in until one cannot be (it holds an id PostgreSQL has: Stripe's pull lands
        # again what the webhooks landed): from then on, this load's batches take the insert that skips those
        straight_in = True
        for k, batch in enumerate(_batches(files, limit=batch_bytes)):
            folder = Path(scratch) / str(k)
            folder.mkdir()
            with duckdb.connect(config=_duckdb_settings()) as mem:
                ensure_schema(mem)
                part = SourceLoad(source=source)
                work = folder / "read"
                work.mkdir()
                load_files(mem, landing_dir, source, batch, work, part)
                exported = _export_batch(mem, source, part, folder)
            if inserting is not None:
                straight_in = add(inserting) and straight_in
            inserting = postgres_side.submit(_insert_batch, pg, source, part, exported, straight_in)
        if inserting is not None:
            add(inserting)
    with pg.cursor() as cur:
        cur.execute(
            f"""insert into {RAW_SCHEMA}.landing_listings values (%s, %s)
                on conflict (source) do update set listed_at = excluded.listed_at""",
            [source, listed_at],
        )
    pg.commit()
    return result


def load_all(pg, landing_dir: Path) -> dict[str, SourceLoad]:
    return {source: load_source(pg, landing_dir, source) for source in SOURCES}


def _duckdb_settings() -> dict[str, str]:
    return {"memory_limit": "1GB"}


@dataclass(frozen=True)
class _Exported:
    """A batch as DuckDB kept it, in CSV files for COPY (NULL unquoted and empty, '' quoted)."""

    rows: Path
    files: Path
    quarantine: Path
    refused: int  # lines quarantined here for PostgreSQL's sake, already counted in the files' record


def _export_batch(mem, source: str, part: SourceLoad, folder: Path) -> _Exported:
    table = _table(source)
    # NUL, as a character or an escape, is text PostgreSQL cannot store: quarantined before the copy
    mem.execute(f"""
        create temp table _unstorable as
        select _file, _line, payload from {RAW_SCHEMA}.{table}
        where contains(payload, chr(0)) or contains(payload, '\\u0000')
    """).fetchall()
    refused = _quarantine_in_duckdb(
        mem, source, table, "_unstorable", "holds a NUL character, which PostgreSQL cannot store"
    )
    exported = _Exported(folder / "rows.csv", folder / "files.csv", folder / "quarantine.csv", refused)
    for query, path in (
        (f"select {', '.join(COLUMNS[table])} from {RAW_SCHEMA}.{table}", exported.rows),
        (f"select * from {RAW_SCHEMA}.loaded_files", exported.files),
        (f"select * from {RAW_SCHEMA}.quarantine", exported.quarantine),
    ):
        mem.execute(f"copy ({query}) to '{path}' (format csv, header false)").fetchall()
    return exported


def _copy(cur, path: Path, table: str) -> int:
    """COPY a CSV file into ``table`` (a name, with its columns if not all); how many rows it took."""
    with open(path, encoding="utf-8") as f:
        cur.copy_expert(f"copy {table} from stdin with (format csv)", f, size=1 << 20)
    return cur.rowcount


def _copy_straight_in(cur, table: str, exported: _Exported) -> int | None:
    """The batch COPYed straight into its raw table, payloads parsed to ``jsonb`` on the way: one pass instead of a
    text copy and an insert that converts it. How many rows went in; None, and nothing written, if an id was there
    already (or went in meanwhile, from another load) or jsonb refused a line: the batch then takes the insert
    that sorts those out."""
    cur.execute("savepoint straight_in")
    try:
        n = _copy(cur, exported.rows, f"{RAW_SCHEMA}.{table} ({', '.join(COLUMNS[table])})")
    except (psycopg2.errors.UniqueViolation, psycopg2.DataError):
        cur.execute("rollback to savepoint straight_in")
        return None
    cur.execute("release savepoint straight_in")
    _copy(cur, exported.files, f"{RAW_SCHEMA}.loaded_files")
    _copy(cur, exported.quarantine, f"{RAW_SCHEMA}.quarantine")
    return n


def _insert_batch(pg, source: str, part: SourceLoad, exported: _Exported, straight_in: bool) -> tuple[SourceLoad, bool]:
    """The exported batch into PostgreSQL, in one transaction; ``part`` (the batch's counts) corrected for what
    PostgreSQL had already or refused, and whether the batch went straight in. ``straight_in``: try that first."""
    table = _table(source)
    id_column = ID_COLUMN[table]
    columns = COLUMNS[table]
    refused = exported.refused
    try:
        with pg.cursor() as cur:
            went_in = _copy_straight_in(cur, table, exported) if straight_in else None
        if went_in is not None:
            pg.commit()
            return _corrected(part, refused, went_in), True
        with pg.cursor() as cur:
            cur.execute(f"create temp table _new (like {RAW_SCHEMA}.{table}) on commit drop")
            cur.execute("alter table _new alter column payload type text")
            cur.execute(
                f"create temp table _files (like {RAW_SCHEMA}.loaded_files) on commit drop; "
                f"create temp table _quarantined (like {RAW_SCHEMA}.quarantine) on commit drop"
            )
            _copy(cur, exported.rows, "_new")
            _copy(cur, exported.files, "_files")
            _copy(cur, exported.quarantine, "_quarantined")
            insert = f"""
                with inserted as (
                    insert into {RAW_SCHEMA}.{table} ({", ".join(columns)})
                    select {", ".join("payload::jsonb" if c == "payload" else c for c in columns)} from _new
                    on conflict ({id_column}) do nothing
                    returning _file
                )
                select _file, count(*) from inserted group by _file
            """
            cur.execute("savepoint rows")
            try:
                cur.execute(insert)
            except Exception:  # a line jsonb refuses (a number past numeric's range): find them, one by one
                cur.execute("rollback to savepoint rows")
                cur.execute(
                    f"""
                    with bad as (
                        delete from _new where not {RAW_SCHEMA}.parses_as_jsonb(payload) returning _file, _line, payload
                    )
                    insert into _quarantined
                    select %s, _file, _line, 'JSON that PostgreSQL cannot store (jsonb)', left(payload, 10000),
                           now() at time zone 'UTC'
                    from bad
                """,
                    [source],
                )
                refused += cur.rowcount
                cur.execute(
                    """update _files f
                       set loaded_rows = f.loaded_rows - b.n, quarantined_rows = f.quarantined_rows + b.n
                       from (select file, count(*) as n from _quarantined
                             where reason = 'JSON that PostgreSQL cannot store (jsonb)' group by file) b
                       where b.file = f.file"""
                )
                cur.execute(insert)
            inserted = dict(cur.fetchall())
            # an id PostgreSQL had already (loaded by an earlier batch) is a duplicate of that file's
            cur.execute("create temp table _inserted (file text, n bigint) on commit drop")
            if inserted:
                cur.executemany("insert into _inserted values (%s, %s)", list(inserted.items()))
            cur.execute("""
                update _files f
                set duplicate_rows = f.duplicate_rows + f.loaded_rows - coalesce(i.n, 0), loaded_rows = coalesce(i.n, 0)
                from (select f2.file, i2.n from _files f2 left join _inserted i2 on i2.file = f2.file) i
                where i.file = f.file
            """)
            cur.execute(f"insert into {RAW_SCHEMA}.quarantine select * from _quarantined")
            cur.execute(f"insert into {RAW_SCHEMA}.loaded_files select * from _files")
        pg.commit()
    except BaseException:
        pg.rollback()
        raise
    finally:
        for path in (exported.rows, exported.files, exported.quarantine):
            path.unlink(missing_ok=True)
    return _corrected(part, refused, sum(inserted.values())), False


def _corrected(part: SourceLoad, refused: int, inserted: int) -> SourceLoad:
    """The batch's counts as DuckDB made them, less what PostgreSQL refused or had already."""
    duplicates = part.loaded_rows - refused - inserted
    part.loaded_rows -= refused + duplicates
    part.quarantined_rows += refused
    part.duplicate_rows += duplicates
    return part


def _quarantine_in_duckdb(mem, source: str, table: str, rows: str, reason: str) -> int:
    """Move the raw rows listed in ``rows`` (_file, _line, payload) to the batch's quarantine, and count them there
    in its record of the files. Returns how many."""
    n = mem.execute(f"select count(*) from {rows}").fetchall()[0][0]
    if not n:
        return 0
    mem.execute(
        f"""
        insert into {RAW_SCHEMA}.quarantine
        select ?, _file, _line, ?, left(payload, 10000), now() at time zone 'UTC' from {rows}
    """,
        [source, reason],
    ).fetchall()
    mem.execute(f"""
        update {RAW_SCHEMA}.loaded_files f
        set loaded_rows = f.loaded_rows - b.n, quarantined_rows = f.quarantined_rows + b.n
        from (select _file, count(*) as n from {rows} group by _file) b where b._file = f.file
    """).fetchall()
    mem.execute(
        f"delete from {RAW_SCHEMA}.{table} where (_file, _line) in (select _file, _line from {rows})"
    ).fetchall()
    return n
