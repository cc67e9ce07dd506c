"""Load landing-zone files into raw warehouse tables, each file once and each event once.

The lines are read, split, validated and parsed by DuckDB (``read_text`` and its JSON functions); Python
only lists files and, for ``.jsonl.gz`` files, decompresses them to a scratch copy first. Each batch of
files commits in one transaction: its rows, its quarantined lines and the record that the files are loaded
land together or not at all, so a crash can never load a file twice or half.

Two passes over the text, never a copy of it, and one parse of each line: the first parses every line for the
fields its checks and columns read and classifies it into a narrow table (file, line, fields, why refused); the few
valid lines not to keep (an id already loaded, or seen earlier in the batch) are listed; the second reads the files
again (from the page cache), splits them into lines without parsing them, and inserts every other valid line
beside the fields the first pass kept for it. The text is written once, uncompressed (see WRITE_SETTINGS). Writing
the lines to a scratch table first cost more than everything else together.
"""

from __future__ import annotations

import gzip
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ingestion import config, tiktok_reporting
from ingestion.durable import recover_orphans
from ingestion.landing import SOURCES, STRIPE_DIR, TRACKING_DIR, landing_files_since
from reverse_etl.ledger import ensure_ledger

RAW_SCHEMA = "raw"
# Files are loaded in batches of about this many bytes, so memory stays bounded whatever the backlog.
BATCH_BYTES = 256 * 1024 * 1024
QUARANTINED_LINE_CHARS = 10_000
# While a batch is written: the raw text is stored as it is, not FSST-compressed unless DUCKDB_COMPRESS_TEXT says so
# (compressing a gigabyte of JSON cost DuckDB 5 of the 8 seconds its own reader takes to fill a table, for half the
# size on disk; raw rows are written once and read once by staging, faster uncompressed), and rows need not keep the
# files' order (the two cores write in parallel; nothing reads raw tables by position).
WRITE_SETTINGS = {"preserve_insertion_order": "false"}

DDL = f"""
create schema if not exists {RAW_SCHEMA};
create table if not exists {RAW_SCHEMA}.loaded_files (
    source varchar not null, file varchar not null, size_bytes bigint, lines bigint, loaded_rows bigint,
    duplicate_rows bigint, quarantined_rows bigint, loaded_at timestamp not null
);
-- when the last complete load of each source listed its landing folder (time.time()): the next one lists from there
create table if not exists {RAW_SCHEMA}.landing_listings (source varchar primary key, listed_at double not null);
create table if not exists {RAW_SCHEMA}.stripe_events (
    event_id varchar not null, event_type varchar not null, api_version varchar, created_at timestamp not null,
    object_id varchar, object_type varchar, livemode boolean, payload varchar not null,
    _file varchar not null, _line bigint not null, _loaded_at timestamp not null
);
create table if not exists {RAW_SCHEMA}.tracking_events (
    message_id varchar not null, type varchar not null, event_name varchar, anonymous_id varchar,
    user_id varchar, event_timestamp timestamp not null, payload varchar not null,
    _file varchar not null, _line bigint not null, _loaded_at timestamp not null
);
create table if not exists {RAW_SCHEMA}.quarantine (
    source varchar not null, file varchar not null, line_number bigint not null, reason varchar not null,
    line_text varchar, quarantined_at timestamp not null
);
"""

# Each valid line is parsed once for all the fields the checks and the insert read: `f` is the list of their
# values as text (json_extract_string with a list of paths) and `t` the JSON types of `$` and any object paths.
STRIPE_FIELDS = ["id", "type", "created", "api_version", "data.object.id", "data.object.object", "livemode"]
STRIPE_TYPES = ["data.object"]
TRACKING_FIELDS = ["messageId", "type", "event", "anonymousId", "userId", "timestamp"]
TRACKING_TYPES: list[str] = []

# Why a line is refused, in order; the first that applies is recorded.
STRIPE_CHECKS = """
    when f[1] is null or f[1] = '' then 'missing required field: id'
    when f[2] is null then 'missing required field: type'
    when try_cast(f[3] as bigint) is null then 'missing or non-integer field: created'
    when try(make_timestamp(cast(f[3] as bigint) * 1000000)) is null then 'created is out of range: ' || f[3]
    when t[1] is distinct from 'OBJECT' then 'missing required field: data.object'
"""
TRACKING_CHECKS = """
    when f[1] is null or f[1] = '' then 'missing required field: messageId'
    when f[2] is null then 'missing required field: type'
    when f[2] not in ('page', 'identify', 'track') then 'unsupported type: ' || f[2]
    when f[6] is null then 'missing required field: timestamp'
    when try(cast(f[6] as timestamptz) at time zone 'UTC') is null then 'timestamp is not an ISO-8601 date-time'
    when coalesce(f[4], '') = '' and coalesce(f[5], '') = '' then 'missing required field: one of anonymousId or userId'
"""
# What a kept line becomes: ``f`` (its fields) and ``payload`` (the line: JSON text that the first pass parsed, so
# stored as text, not cast to DuckDB's JSON type, which would parse it a third time; JSON functions read both).
STRIPE_INSERT = f"""
insert into {RAW_SCHEMA}.stripe_events
select f[1], f[2], f[4], make_timestamp(cast(f[3] as bigint) * 1000000), f[5], f[6], try_cast(f[7] as boolean),
       payload, file, line_number, $now
from _kept_lines
"""
TRACKING_INSERT = f"""
insert into {RAW_SCHEMA}.tracking_events
select f[1], f[2], f[3], nullif(f[4], ''), nullif(f[5], ''), cast(f[6] as timestamptz) at time zone 'UTC',
       payload, file, line_number, $now
from _kept_lines
"""
ID_COLUMN = {"stripe_events": "event_id", "tracking_events": "message_id"}
SOURCE_SQL = {
    STRIPE_DIR: (STRIPE_FIELDS, STRIPE_TYPES, STRIPE_CHECKS, STRIPE_INSERT),
    TRACKING_DIR: (TRACKING_FIELDS, TRACKING_TYPES, TRACKING_CHECKS, TRACKING_INSERT),
}


def _paths(paths: list[str], root: bool = False) -> str:
    return "[" + ", ".join(["'$'"] * root + [f"'$.{p}'" for p in paths]) + "]"


@dataclass
class SourceLoad:
    source: str
    files: int = 0
    lines: int = 0
    loaded_rows: int = 0
    duplicate_rows: int = 0
    quarantined_rows: int = 0
    file_names: list[str] = field(default_factory=list)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)
    # the spend pull's table and the delivery ledger exist before their first writes, so the models that read them
    # build on any warehouse
    con.execute(tiktok_reporting.DDL)
    ensure_ledger(con)


# A file's visibility time (the file server's clock) and the loader's clock may disagree by this much.
LISTING_SLACK_SECONDS = 300.0


def pending_files(con: duckdb.DuckDBPyConnection, landing_dir: Path, source: str) -> tuple[list[Path], float]:
    """Landing files of one source not loaded yet (by their path relative to the landing dir), and when the listing
    began (:func:`record_listing` stores it once they are loaded).

    Only files visible since the last complete load's listing began (less a slack) are looked at, and only loads
    since then are read: the services publish a file every few seconds, and neither the listing nor this check
    grows with the history."""
    ensure_schema(con)
    landing_dir = Path(landing_dir)
    listed_at = time.time()
    previous = con.execute(f"select listed_at from {RAW_SCHEMA}.landing_listings where source = ?", [source]).fetchall()
    since = previous[0][0] - LISTING_SLACK_SECONDS if previous else None
    found = sorted(landing_files_since(landing_dir, source, since))
    names = [p.relative_to(landing_dir).as_posix() for p in found]
    loaded = {
        r[0]
        for r in con.execute(
            f"""select file from {RAW_SCHEMA}.loaded_files where source = ?
                and loaded_at >= make_timestamp(?::bigint) and file in (select unnest(?::varchar[]))""",
            [source, int((since or 0) * 1e6), names],
        ).fetchall()
    }
    return [p for p, name in zip(found, names, strict=True) if name not in loaded], listed_at


def record_listing(con: duckdb.DuckDBPyConnection, source: str, listed_at: float) -> None:
    """Every file visible before ``listed_at`` is loaded (or quarantined): the next listing starts there."""
    con.execute(f"insert or replace into {RAW_SCHEMA}.landing_listings values (?, ?)", [source, listed_at])


def _batches(items: list, path_of=lambda item: item, limit: int = BATCH_BYTES) -> list[list]:
    """Consecutive runs of items whose files together hold at most ``limit`` bytes (an item larger than that alone)."""
    batches: list[list] = [[]]
    size = 0
    for item in items:
        s = Path(path_of(item)).stat().st_size
        if batches[-1] and size + s > limit:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += s
    return [b for b in batches if b]


def _load_batch(
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    source: str,
    files: list[Path],
    scratch: Path,
    result: SourceLoad,
    utf8_by_line: bool = False,
) -> None:
    """Load a batch of files in one transaction. ``utf8_by_line``: the files hold bytes that are not UTF-8, which
    DuckDB's reader refuses for the whole file; each is copied to the scratch folder with such lines blanked, and
    those lines are quarantined one by one, so one bad byte costs one line.

    DuckDB's reader holds a whole file as one value: a file larger than a fraction of the memory limit (see
    ``piece_bytes``) is copied to the scratch folder in pieces of whole lines, each read with its first line's
    number, and loaded in the same transaction as a file."""
    mapping = []
    bad_lines: list[tuple[str, int, str, str]] = []
    piece = piece_bytes(con)
    for f in files:
        rel = f.relative_to(landing_dir).as_posix()
        size = f.stat().st_size
        if not (f.name.endswith(".gz") or utf8_by_line or size > piece):
            mapping.append((str(f), rel, size, 0))
            continue
        try:
            with gzip.open(f, "rb") if f.name.endswith(".gz") else open(f, "rb") as src:
                for n, (read_path, first_line) in enumerate(
                    _copy_in_pieces(src, scratch / f"{len(mapping)}", piece, bad_lines, rel, utf8_by_line)
                ):
                    mapping.append((str(read_path), rel, size if n == 0 else 0, first_line - 1))
        except (OSError, EOFError) as e:
            raise UnreadableFile(f"not a readable gzip file ({e})") from e
    with _settings(con, {**WRITE_SETTINGS, "disabled_compression_methods": config.disabled_compression_methods()}):
        _write_batch(con, source, mapping, result, bad_lines)


def piece_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """The largest file read whole: an eighth of DuckDB's memory limit (a file's text, its lines and their parsed
    fields are in memory together, on each thread), at most 64 MiB."""
    setting = con.execute("select current_setting('memory_limit')").fetchall()[0][0]
    number, _, unit = str(setting).partition(" ")
    units = {
        "bytes": 1,
        "KiB": 1 << 10,
        "MiB": 1 << 20,
        "GiB": 1 << 30,
        "TiB": 1 << 40,
        "KB": 10**3,
        "MB": 10**6,
        "GB": 10**9,
        "TB": 10**12,
    }
    try:
        limit = float(number) * units[unit]
    except (ValueError, KeyError):
        return 64 << 20
    return max(1 << 20, min(64 << 20, int(limit / 8)))


def _copy_in_pieces(
    src, prefix: Path, piece: int, bad_lines: list, rel: str, blank_non_utf8: bool
) -> Iterator[tuple[Path, int]]:
    """Copy lines, streaming, into files of about ``piece`` bytes each (whole lines); yields each file with the
    number of its first line. With ``blank_non_utf8`` every line that is not UTF-8 is replaced by an empty line (not
    a line to the loader, and line numbers stay those of the file) and added to ``bad_lines`` for the quarantine."""
    number = 0
    out = None
    written = 0
    try:
        for raw in src:
            number += 1
            if out is None or written >= piece:
                if out is not None:
                    out.close()
                path = prefix.with_name(f"{prefix.name}-{number}.jsonl")
                out = open(path, "wb")
                written = 0
                yield path, number
            if blank_non_utf8:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    bad_lines.append(
                        (
                            rel,
                            number,
                            "line is not valid UTF-8",
                            raw.rstrip(b"\r\n").decode("utf-8", errors="replace")[:QUARANTINED_LINE_CHARS],
                        )
                    )
                    raw = b"\n" if raw.endswith(b"\n") else b""
            out.write(raw)
            written += len(raw)
    finally:
        if out is not None:
            out.close()


@contextmanager
def _settings(con: duckdb.DuckDBPyConnection, values: dict[str, str]) -> Iterator[None]:
    """DuckDB settings for the duration of a block, restored afterwards (they are global to the database)."""
    names = list(values)
    previous = dict(
        con.execute(
            "select name, value from duckdb_settings() where list_contains($names, name)", {"names": names}
        ).fetchall()
    )
    for name, value in values.items():
        con.execute(f"set {name} = '{value}'")
    try:
        yield
    finally:
        for name in names:
            con.execute(f"set {name} = '{previous[name]}'" if previous.get(name) else f"reset {name}")


def _write_batch(
    con: duckdb.DuckDBPyConnection,
    source: str,
    mapping: list[tuple[str, str, int, int]],
    result: SourceLoad,
    bad_lines: list[tuple[str, int, str, str]] = (),
) -> None:
    """Load the files of ``mapping`` (read path, file, its size on the first piece, the piece's line offset) in one
    transaction, in groups of pieces that each fit the memory limit (group_bytes)."""
    con.execute("begin transaction")
    try:
        now = con.execute("select cast(now() at time zone 'UTC' as timestamp)").fetchall()[0][0]
        # lines refused before DuckDB reads the files (bytes that are not UTF-8), quarantined with the rest
        con.execute(
            "create or replace temp table _refused (file varchar, line_number bigint, reason varchar, line varchar)"
        )
        if bad_lines:
            con.executemany("insert into _refused values (?, ?, ?, ?)", list(bad_lines))
        con.execute("create or replace temp table _counts (file varchar, lines bigint, valid bigint, skipped bigint)")
        for group in _batches(mapping, lambda m: m[0], group_bytes(con)):
            _write_group(con, source, group, now)
        firsts = [m for m in mapping if m[3] == 0]
        con.execute(
            f"""
            insert into {RAW_SCHEMA}.loaded_files
            select $source, f.file, f.size_bytes, coalesce(c.lines, 0), coalesce(c.valid, 0) - coalesce(c.skipped, 0),
                   coalesce(c.skipped, 0), coalesce(c.lines, 0) - coalesce(c.valid, 0), $now
            from (select unnest($files) as file, unnest($sizes) as size_bytes) f
            left join (select file, sum(lines) as lines, sum(valid) as valid, sum(skipped) as skipped
                       from _counts group by file) c using (file)
        """,
            {"source": source, "now": now, "files": [m[1] for m in firsts], "sizes": [m[2] for m in firsts]},
        )
        stats = con.execute(
            f"""
            select coalesce(sum(lines), 0), coalesce(sum(quarantined_rows), 0), coalesce(sum(loaded_rows), 0)
            from {RAW_SCHEMA}.loaded_files where source = ? and loaded_at = ? and list_contains(?, file)
        """,
            [source, now, [m[1] for m in firsts]],
        ).fetchall()[0]
        con.execute("drop table _refused; drop table _counts")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        con.execute("reset disabled_optimizers")
        raise
    result.files += len(firsts)
    result.lines += stats[0]
    result.quarantined_rows += stats[1]
    result.loaded_rows += stats[2]
    result.duplicate_rows += stats[0] - stats[1] - stats[2]
    result.file_names += [m[1] for m in firsts]


def group_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """How many bytes of lines one pass reads at most: the kept lines' fields are the build side of pass 2's join,
    held in memory. Four pieces (half of DuckDB's memory limit), at most BATCH_BYTES."""
    return min(BATCH_BYTES, 4 * piece_bytes(con))


def _write_group(con: duckdb.DuckDBPyConnection, source: str, group: list[tuple[str, str, int, int]], now) -> None:
    """Both passes over one group of files or pieces, inside the batch's transaction. A line inserted by an earlier
    group is in the raw table by then, so the duplicate check spans the whole batch."""
    fields, types, checks, insert = SOURCE_SQL[source]
    con.execute(
        "create or replace temp table _files (read_path varchar, file varchar, size_bytes bigint, line_offset bigint)"
    )
    con.executemany("insert into _files values (?, ?, ?, ?)", group)
    read_paths = [m[0] for m in group]
    table = _table(source)
    id_column = ID_COLUMN[table]
    params = {"read_paths": read_paths, "now": now}
    # Pass 1: every line classified into a narrow table (file, line, id, why refused; the text only of a
    # refused line, for the quarantine). The texts are the probe side of the join to _files, as written (DuckDB
    # guesses one small row per file and would hold every text in its hash table, past the memory limit).
    con.execute("set disabled_optimizers = 'join_order,build_side_probe_side'")
    try:
        con.execute(
            f"""
            create or replace temp table _classified as
            select file, line_number, f[1] as id, reason,
                   case when reason is null then f end as f,
                   case when reason is not null then left(line, {QUARANTINED_LINE_CHARS}) end as line
            from {_classified(fields, types, checks)}
        """,
            {"read_paths": read_paths},
        )
    finally:
        _reset_optimizers(con)
    # (a file's lines refused before reading go with the group holding its first piece)
    con.execute(
        "insert into _classified select file, line_number, null, reason, null, line from _refused "
        "where file in (select file from _files where line_offset = 0)"
    )
    # What is not kept of the valid lines: an id the table has already, or one seen earlier in the batch (by
    # file and line): a retried delivery, a file copied in twice. Usually few.
    con.execute(f"""
        create or replace temp table _skip as
        select file, line_number from _classified c
        where reason is null
          and exists (select 1 from {RAW_SCHEMA}.{table} r where r.{id_column} = c.id)
        union  -- (a line can be both)
        select file, line_number from (
            select file, line_number, row_number() over (partition by id order by file, line_number) as nth
            from _classified
            where reason is null and id in (select id from _classified where reason is null
                                             group by id having count(*) > 1)
        ) where nth > 1
    """)
    # Pass 2: the files read again (from the page cache, split into lines but not parsed again) and each kept
    # line joined to the fields pass 1 parsed from it. DuckDB cannot know how many lines the files hold (it
    # guesses one per file) and would build its hash table from the lines, a gigabyte of text, instead of from
    # the narrow kept fields: the join is kept as written.
    con.execute("set disabled_optimizers = 'join_order,build_side_probe_side'")
    try:
        con.execute(
            insert.replace(
                "_kept_lines",
                f"""(
            select lines.file, lines.line_number, kept.f,
                   case when ends_with(lines.line, chr(13)) then rtrim(lines.line, chr(13)) else lines.line end
                       as payload
            from {LINES} lines
            join (select file, line_number, f from _classified c
                  where reason is null
                    and not exists (select 1 from _skip s where s.file = c.file and s.line_number = c.line_number)
                 ) kept on kept.file = lines.file and kept.line_number = lines.line_number
            -- (a piece's trailing newline leaves an empty remainder numbered as the next piece's first line)
            where lines.line <> ''
        )""",
            ),
            params,
        )
    finally:
        _reset_optimizers(con)
    con.execute(
        f"""
        insert into {RAW_SCHEMA}.quarantine
        select $source, file, line_number, reason, line, $now
        from _classified where reason is not null
    """,
        {"source": source, "now": now},
    )
    con.execute("""
        insert into _counts
        select c.file, c.lines, c.valid, coalesce(s.skipped, 0)
        from (select file, count(*) as lines, count(*) filter (where reason is null) as valid
              from _classified group by file) c
        left join (select file, count(*) as skipped from _skip group by file) s using (file)
    """)
    con.execute("drop table _classified; drop table _skip; drop table _files")


# Every line of a batch with its 1-based number in its file (a piece's after its offset; generate_subscripts:
# numbering with unnest(range()) beside unnest(parts) is twenty times slower); a trailing newline's empty remainder
# is not a line.
LINES = """(
    select file, line_offset + generate_subscripts(parts, 1) as line_number, unnest(parts) as line
    from (select f.file, f.line_offset, string_split(t.content, chr(10)) as parts
          from read_text($read_paths) t join _files f on f.read_path = t.filename)
)"""
JSON_WHITESPACE = "chr(32) || chr(9) || chr(13)"


def _classified(fields: list[str], types: list[str], checks: str) -> str:
    """Each non-blank line parsed once for every field the checks and the insert read (``f``, their values as
    text; NULL when the line is not JSON at all), and why it is refused (``reason``, NULL when it is kept).
    A line is valid JSON with or without a trailing CR (JSON whitespace); blank and whitespace-only lines are
    not lines. Only an object path's type needs a second look at the text (``t``), and only when no field read
    through it was found (a field found inside ``data.object`` proves it is an object)."""
    type_checks = []
    for path in types:
        inside = [i + 1 for i, p in enumerate(fields) if p.startswith(path + ".")]
        found = " or ".join(f"f[{i}] is not null" for i in inside) or "false"
        type_checks.append(
            f"case when f is null then null when {found} then 'OBJECT' else json_type(line, '$.{path}') end"
        )
    return f"""(
        select file, line_number, line, f, reason
        from (
            select file, line_number, line, f,
                   case when f is null then 'invalid JSON'
                        when left(ltrim(line, {JSON_WHITESPACE}), 1) <> '{{' then 'not a JSON object'
                        {checks}
                        else null end as reason
            from (
                select file, line_number, line, {"[" + ", ".join(type_checks) + "]" if types else "[]"} as t, f
                from (select file, line_number, line, try(json_extract_string(line, {_paths(fields)})) as f
                      from {LINES} where line <> '')
            )
            where f is not null or trim(rtrim(line, chr(13))) <> ''
        )
    )"""


def _reset_optimizers(con: duckdb.DuckDBPyConnection) -> None:
    """Undo ``set disabled_optimizers`` after a statement; when the statement failed, the transaction is aborted and
    refuses even this: _write_batch resets it after its rollback."""
    try:
        con.execute("reset disabled_optimizers")
    except duckdb.TransactionException:
        pass


def _table(source: str) -> str:
    return {STRIPE_DIR: "stripe_events", TRACKING_DIR: "tracking_events"}[source]


class UnreadableFile(Exception):
    """A landing file that cannot be read as UTF-8 JSON lines at all (corrupt gzip, binary content)."""


def _quarantine_file(
    con: duckdb.DuckDBPyConnection, landing_dir: Path, source: str, path: Path, reason: str, result: SourceLoad
) -> None:
    """Record a whole unreadable file in the quarantine (line 0) and as loaded: files are immutable, so
    retrying it would fail forever and hold back every file after it."""
    rel = path.relative_to(landing_dir).as_posix()
    con.execute("begin transaction")
    con.execute(
        f"insert into {RAW_SCHEMA}.quarantine values (?, ?, 0, ?, null, now() at time zone 'UTC')",
        [source, rel, f"unreadable file: {reason}"[:1000]],
    )
    con.execute(
        f"insert into {RAW_SCHEMA}.loaded_files values (?, ?, ?, 0, 0, 0, 1, now() at time zone 'UTC')",
        [source, rel, path.stat().st_size],
    )
    con.execute("commit")
    result.files += 1
    result.quarantined_rows += 1
    result.file_names.append(rel)


def load_source(con: duckdb.DuckDBPyConnection, landing_dir: Path, source: str) -> SourceLoad:
    """Load every new landing file of one source. Returns what was loaded, deduplicated and quarantined."""
    if source not in SOURCES:
        raise ValueError(f"unknown landing source {source!r}; expected one of {SOURCES}")
    landing_dir = Path(landing_dir).resolve()
    result = SourceLoad(source=source)
    # segments of a receiver or collector that was killed hold acknowledged events: publish them first
    recover_orphans(landing_dir / source)
    files, listed_at = pending_files(con, landing_dir, source)
    with tempfile.TemporaryDirectory(prefix="landing-gunzip-") as scratch:
        for batch in _batches(files):
            load_files(con, landing_dir, source, batch, Path(scratch), result)
    record_listing(con, source, listed_at)
    return result


def load_files(
    con: duckdb.DuckDBPyConnection, landing_dir: Path, source: str, batch: list[Path], scratch: Path, result: SourceLoad
) -> None:
    """Load one batch of files (committed together), or, when one of them is bad, each on its own: a file that
    cannot be read is quarantined whole, one with bytes that are not UTF-8 loses those lines only."""
    try:
        try:
            _load_batch(con, landing_dir, source, batch, scratch, result)
        except (UnreadableFile, duckdb.InvalidInputException):
            # one bad file fails the batch; load its files one by one to find and quarantine it
            for path in batch:
                try:
                    _load_batch(con, landing_dir, source, [path], scratch, result)
                except UnreadableFile as e:
                    _quarantine_file(con, landing_dir, source, path, str(e), result)
                except duckdb.InvalidInputException as e:
                    if "read_text" not in str(e):
                        raise  # not the file's fault: fail loudly rather than quarantine good data
                    try:
                        # bytes that are not UTF-8: quarantine those lines, load the rest
                        _load_batch(con, landing_dir, source, [path], scratch, result, utf8_by_line=True)
                    except (UnreadableFile, duckdb.InvalidInputException) as again:
                        _quarantine_file(con, landing_dir, source, path, str(again).split("\n")[0], result)
    finally:
        for p in scratch.iterdir():
            p.unlink()


def load_all(con: duckdb.DuckDBPyConnection, landing_dir: Path) -> dict[str, SourceLoad]:
    return {source: load_source(con, landing_dir, source) for source in SOURCES}
