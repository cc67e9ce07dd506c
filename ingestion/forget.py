"""Erasing a person from what ingestion keeps: the landing files, the raw tables and the quarantine (GDPR art. 17).

What to erase is given as identifiers (browsers, user ids, emails, phones, Stripe object ids, tracking message
ids); orchestration/forget.py finds them for a person through the identity graph and also erases the models and
the delivery ledger. Here:

- Stripe: every raw event whose payload names one of the Stripe ids, or one of the emails, is the person's; the
  objects those events carry are the person's too (an invoice names its customer, the invoice payment names only
  the invoice, a refund only the PaymentIntent), so the ids are followed until no new object turns up.
- Tracking: the raw events of the person's browsers and user ids, those the models matched (an email or phone in
  whatever form the visitor typed it), and any naming one of the emails or phones.
- Landing files: the lines of the rows above (by file and line), and every other line naming an identifier (files
  not loaded yet, quarantined lines), are replaced by empty lines, which the loader skips: the files' other lines
  keep their numbers. A file is rewritten beside itself, fsynced and renamed over the old one, so a reader sees the
  old file or the new one; it keeps its name, so a loaded file is not loaded again.
- Raw rows and quarantined lines are deleted, after the files are rewritten: a crash in between leaves rows that a
  second erasure of the same person finds again.

The same statements run on both warehouses (``con`` a DuckDB connection or an ``ingestion.postgres_session``
session); only the payload search differs: DuckDB's RE2 over the payload's text, PostgreSQL's regular expressions
over the ``jsonb``'s text (which keeps every JSON string as the line had it, escapes aside: both forms are searched).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ingestion.landing import SOURCES, STRIPE_DIR, TRACKING_DIR, fsync_dir, list_landing_files
from ingestion.loader import RAW_SCHEMA, ensure_schema
from ingestion.postgres_session import PostgresSession


@dataclass(frozen=True)
class Identifiers:
    """Normalised identifiers of one person: emails lowercased, phones in E.164."""

    browsers: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()
    stripe_ids: frozenset[str] = frozenset()
    message_ids: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return any((self.browsers, self.users, self.emails, self.phones, self.stripe_ids, self.message_ids))


@dataclass
class IngestionErasure:
    stripe_ids: set[str] = field(default_factory=set)  # the Stripe objects found to be the person's
    raw_rows: dict[str, int] = field(default_factory=dict)  # table -> rows deleted
    quarantined_lines: int = 0
    landing_lines: int = 0
    landing_files: int = 0


def _quoted(values) -> list[str]:
    """How a value appears as a JSON string in a landing line (escaped or not, as different writers do)."""
    return sorted({json.dumps(v) for v in values} | {json.dumps(v, ensure_ascii=False) for v in values})


def _alternatives(values) -> str:
    return "|".join(re.escape(q) for q in _quoted(values))


def _pattern(exact, emails) -> str | None:
    """One regular expression (Python's) matching a JSON text that holds any of the exact values as a string, or any
    of the emails in any letter case."""
    parts = [_alternatives(exact)] if exact else []
    if emails:
        parts.append("(?i:" + _alternatives(emails) + ")")
    return "|".join(parts) or None


def _payload_names(con, exact, emails) -> tuple[list[str], list[str]]:
    """SQL conditions (with their parameters) true of a raw row whose payload holds one of the exact values as a
    JSON string, or one of the emails in any letter case. PostgreSQL's regular expressions take flags only for a
    whole pattern (no ``(?i:...)`` group), so the two are separate conditions on both warehouses."""
    postgres = isinstance(con, PostgresSession)
    terms, params = [], []
    for values, insensitive in ((exact, False), (emails, True)):
        if values:
            if postgres:
                terms.append("payload::text ~* ?" if insensitive else "payload::text ~ ?")
            else:
                terms.append("regexp_matches(payload, ?, 'i')" if insensitive else "regexp_matches(payload, ?)")
            params.append(_alternatives(values))
    return terms, params


def stripe_objects(con: duckdb.DuckDBPyConnection, ids: Identifiers) -> set[str]:
    """The ids of the Stripe objects that belong to the person: those given and every object of a raw event that
    names one of them or one of the emails, followed to a fixed point."""
    found = set(ids.stripe_ids)
    while True:
        terms, params = _payload_names(con, found | ids.phones, ids.emails)
        if not terms:
            return found
        rows = con.execute(
            f"select distinct object_id from {RAW_SCHEMA}.stripe_events "
            f"where object_id is not null and ({' or '.join(terms)})",
            params,
        ).fetchall()
        new = {r[0] for r in rows} - found
        if not new:
            return found
        found |= new


def _rows(con, ids: Identifiers, stripe_ids: set[str]) -> dict[str, list[tuple[str, int]]]:
    """(file, line) of each raw row to erase, by table."""

    def where(columns: dict[str, frozenset[str] | set[str]], exact: set[str], emails) -> tuple[str, list]:
        terms, params = [], []
        for column, values in columns.items():
            if values:
                terms.append(f"{column} = any(?::varchar[])")
                params.append(sorted(values))
        payload_terms, payload_params = _payload_names(con, exact, emails)
        return " or ".join(terms + payload_terms) or "false", params + payload_params

    rows = {}
    for table, columns, exact in (
        ("stripe_events", {"object_id": stripe_ids}, stripe_ids | ids.phones),
        (
            "tracking_events",
            {"anonymous_id": ids.browsers, "user_id": ids.users, "message_id": ids.message_ids},
            set(ids.phones),
        ),
    ):
        condition, params = where(columns, exact, ids.emails)
        rows[table] = con.execute(f"select _file, _line from {RAW_SCHEMA}.{table} where {condition}", params).fetchall()
    return rows


def _line_matcher(ids: Identifiers, stripe_ids: set[str]):
    exact = ids.browsers | ids.users | ids.message_ids | ids.phones | stripe_ids
    pattern = _pattern(exact, ids.emails)
    return re.compile(pattern).search if pattern else (lambda _line: None)


def _rewrite(path: Path, blank: set[int]) -> int:
    """Replace the given lines (1-based) of a landing file by empty lines; returns how many held something."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        lines = f.read().split(b"\n")
    erased = 0
    for n in blank:
        if 0 < n <= len(lines) and lines[n - 1].strip():
            lines[n - 1] = b""
            erased += 1
    if not erased:
        return 0
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    raw = os.fdopen(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb")
    try:
        stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if path.name.endswith(".gz") else raw
        stream.write(b"\n".join(lines))
        if stream is not raw:
            stream.close()
        raw.flush()
        os.fsync(raw.fileno())
    finally:
        raw.close()
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return erased


def erase(con: duckdb.DuckDBPyConnection, landing_dir: Path, ids: Identifiers) -> IngestionErasure:
    """Erase the person's lines from every landing file and their rows from the raw tables and the quarantine."""
    if not isinstance(con, PostgresSession):  # (there, the warehouse resource created it)
        ensure_schema(con)
    landing_dir = Path(landing_dir).resolve()
    result = IngestionErasure()
    if not ids:
        return result
    result.stripe_ids = stripe_objects(con, ids)
    rows = _rows(con, ids, result.stripe_ids)
    blank: dict[str, set[int]] = defaultdict(set)
    for table_rows in rows.values():
        for file, line in table_rows:
            blank[file].add(line)
    matches = _line_matcher(ids, result.stripe_ids)
    quarantined = [
        (source, file, line)
        for source, file, line, text in con.execute(
            f"select source, file, line_number, line_text from {RAW_SCHEMA}.quarantine"
        ).fetchall()
        if text and matches(text)
    ]
    for _source, file, line in quarantined:
        blank[file].add(line)
    # every landing file, loaded or not, for lines naming the person
    for source in SOURCES:
        for path in list_landing_files(landing_dir, source):
            rel = path.relative_to(landing_dir).as_posix()
            opener = gzip.open if path.name.endswith(".gz") else open
            with opener(path, "rb") as f:
                for n, line in enumerate(f, start=1):
                    if matches(line.decode("utf-8", errors="replace")):
                        blank[rel].add(n)
    for rel, lines in sorted(blank.items()):
        path = landing_dir / rel
        if path.exists():
            erased = _rewrite(path, lines)
            result.landing_lines += erased
            result.landing_files += bool(erased)
    con.execute("begin transaction")
    try:
        for table, table_rows in rows.items():
            con.execute("drop table if exists _erase")
            con.execute("create temp table _erase (file varchar, line bigint)")
            if table_rows:
                con.executemany("insert into _erase values (?, ?)", table_rows)
            con.execute(
                f"delete from {RAW_SCHEMA}.{table} as t using _erase "
                "where t._file = _erase.file and t._line = _erase.line"
            )
            result.raw_rows[table] = len(table_rows)
        con.execute("drop table if exists _erase")
        con.execute("create temp table _erase (source varchar, file varchar, line bigint)")
        if quarantined:
            con.executemany("insert into _erase values (?, ?, ?)", quarantined)
        con.execute(
            f"delete from {RAW_SCHEMA}.quarantine as q using _erase where q.source = _erase.source "
            "and q.file = _erase.file and q.line_number = _erase.line"
        )
        result.quarantined_lines = len(quarantined)
        con.execute("drop table _erase")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return result


__all__ = ["Identifiers", "IngestionErasure", "erase", "stripe_objects", "STRIPE_DIR", "TRACKING_DIR"]
