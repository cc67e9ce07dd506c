"""A PostgreSQL connection with the shape of a DuckDB one, for the statements written once for both warehouses.

The Dagster steps, checks and sensors ask the warehouse small questions (row counts, the ledger's statuses, the
build state) and the TikTok spend pull writes a few rows; their SQL is written so both databases read it (standard
intervals, ``on conflict``, no ``group by all``), with DuckDB's qmark parameters. ``PostgresSession`` runs such a
statement on psycopg2: ``execute(sql, params).fetchall()`` as on DuckDB, each statement its own transaction unless
the caller says ``begin``. What is DuckDB's alone (its readers, its functions) stays out of it, and the loaders and
the delivery talk to psycopg2 directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


def _pyformat(sql: str) -> str:
    """qmark parameters as psycopg2's (``?`` -> ``%s``, literal ``%`` doubled). Only for our own statements, whose
    text holds no ``?`` other than parameters."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Result:
    def __init__(self, cursor):
        self._cursor = cursor

    def fetchall(self) -> list[tuple]:
        try:
            return self._cursor.fetchall() if self._cursor.description is not None else []
        finally:
            self._cursor.close()

    @property
    def description(self):
        return self._cursor.description


class PostgresSession:
    """``pg`` (a psycopg2 connection, put in autocommit) answering ``execute`` / ``executemany`` as DuckDB does."""

    def __init__(self, pg):
        pg.autocommit = True
        self.pg = pg
        # the warehouse's timestamps are naive UTC, as on DuckDB: now() and intervals compare with them in UTC
        with pg.cursor() as cursor:
            cursor.execute("set time zone 'UTC'")

    def execute(self, sql: str, params: Sequence | None = None) -> _Result:
        cursor = self.pg.cursor()
        if params is None:
            cursor.execute(sql)
        else:
            cursor.execute(_pyformat(sql), list(params))
        return _Result(cursor)

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> None:
        with self.pg.cursor() as cursor:
            cursor.executemany(_pyformat(sql), [list(r) for r in rows])

    def close(self) -> None:
        self.pg.close()


DUCKDB_TYPES = {
    "text": "varchar",
    "character varying": "varchar",
    "jsonb": "varchar",
    "boolean": "boolean",
    "bigint": "bigint",
    "integer": "integer",
    "double precision": "double",
    "timestamp without time zone": "timestamp",
    "date": "date",
}


def duckdb_columns(pg, relation: str) -> list[tuple[str, str]]:
    schema, table = relation.split(".")
    with pg.cursor() as cur:
        cur.execute(
            """select column_name, data_type, numeric_precision, numeric_scale from information_schema.columns
               where table_schema = %s and table_name = %s order by ordinal_position""",
            [schema, table],
        )
        rows = cur.fetchall()
    if not rows:
        raise LookupError(f"{relation} is not in the PostgreSQL warehouse: run the dbt build first")
    return [(name, _duckdb_type(kind, precision, scale)) for name, kind, precision, scale in rows]


def _duckdb_type(kind: str, precision: int | None, scale: int | None) -> str:
    """A PostgreSQL column type as DuckDB's; a numeric without precision (what PostgreSQL makes of a sum or a
    quotient the model did not cast) as a double: a decimal of some scale would round its values."""
    if kind == "numeric":
        return f"decimal({precision}, {scale or 0})" if precision else "double"
    return DUCKDB_TYPES.get(kind, "varchar")


def copy_to_duckdb(pg, mem, relation: str, where: str, scratch: Path, left_out: frozenset[str] = frozenset()) -> None:
    """The rows of a PostgreSQL relation (``where``: a condition on them, alias ``t``) into a DuckDB table of the
    same name and column types (one the copy has already, such as the ledger with its key, is filled), through
    CSV; the columns in ``left_out`` are not read (null in the copy)."""
    columns = duckdb_columns(pg, relation)
    schema = relation.split(".")[0]
    mem.execute(f"create schema if not exists {schema}")
    mem.execute(f"create table if not exists {relation} ({', '.join(f'{n} {t}' for n, t in columns)})")
    select = ", ".join("null" if n in left_out else f"t.{n}::text" if t == "boolean" else f"t.{n}" for n, t in columns)
    path = scratch / f"{relation}.csv"
    with open(path, "w", encoding="utf-8") as f, pg.cursor() as cur:
        cur.copy_expert(f"copy (select {select} from {relation} as t where {where}) to stdout with (format csv)", f)
    if path.stat().st_size:  # (DuckDB cannot read the dialect of an empty file)
        mem.execute(
            f"insert into {relation} select * from read_csv(?, header = false, allow_quoted_nulls = false, "
            "delim = ',', quote = '\"', escape = '\"', "
            f"columns = {{{', '.join(repr(n) + ': ' + repr(t) for n, t in columns)}}})",
            [str(path)],
        )
    path.unlink()
