"""Who holds the warehouse file, when DuckDB says it cannot lock it.

DuckDB lets one process write the file, or several read it, never both; its error names the process holding the
lock ("Conflicting lock is held in <program> (PID n)"). The pipeline's own processes (a step's connection, dbt,
the landing sensor) record themselves while they hold a connection: a file per process in `<warehouse>.users/`,
saying what they are. So a step that finds the file locked can tell a neighbour in the pipeline (worth waiting
for: it lets go when its step ends, and the message says which step) from anyone else (an analyst's notebook, a
BI tool, a DuckDB shell: waiting is pointless, since they hold it for as long as they like; analysts open the
published copy, ANALYTICS_PATH, instead). No Dagster here.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

_PID = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")
_uses: dict[Path, int] = {}
_uses_lock = threading.Lock()
# what a step running dbt records (orchestration/defs/dbt.py), so its dbt subprocess counts as the pipeline's
DBT_BUILD = "dbt build"


def users_dir(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".users")


@contextmanager
def pipeline_use(warehouse: Path, what: str) -> Iterator[None]:
    """Record this process as a pipeline user of ``warehouse`` while the block runs (nested and concurrent uses in
    one process share the record; the outermost names it)."""
    record = users_dir(warehouse) / str(os.getpid())
    with _uses_lock:
        first = _uses.get(record, 0) == 0
        _uses[record] = _uses.get(record, 0) + 1
        if first:
            record.parent.mkdir(mode=0o700, exist_ok=True)
            record.write_text(json.dumps({"what": what, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    try:
        yield
    finally:
        with _uses_lock:
            _uses[record] -= 1
            if _uses[record] == 0:
                del _uses[record]
                record.unlink(missing_ok=True)


@contextmanager
def read_only(warehouse: Path, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read of the warehouse by a pipeline process outside a step (a sensor), recorded as the pipeline's.
    Raises duckdb.IOException while a run writes it: a sensor skips that tick."""
    with pipeline_use(warehouse, what), duckdb.connect(str(warehouse), read_only=True) as con:
        yield con


@dataclass(frozen=True)
class LockHolder:
    pid: int | None
    program: str
    pipeline: str | None  # what the pipeline process said it is doing; None: not the pipeline

    def describe(self) -> str:
        who = f"{self.program} (PID {self.pid})" if self.pid else "another process"
        if self.pipeline is not None:
            return f"the pipeline's {self.pipeline}, {who}"
        return f"{who}, which is not the pipeline"


def lock_holder(error: Exception, warehouse: Path) -> LockHolder | None:
    """Who holds the lock DuckDB could not take; None when ``error`` is not a lock conflict."""
    text = str(error)
    if "Could not set lock" not in text:
        return None
    match = _PID.search(text)
    if match is None:
        return LockHolder(None, "another process", None)
    pid = int(match["pid"])
    pipeline = _recorded(warehouse, pid)
    if pipeline is None:
        # dbt run as a subprocess of a step holds the file itself: its parent recorded the build
        parent = _parent(pid)
        recorded = _recorded(warehouse, parent) if parent else None
        if recorded is not None and recorded.startswith(DBT_BUILD):
            pipeline = recorded
    return LockHolder(pid, match["program"], pipeline)


def _recorded(warehouse: Path, pid: int) -> str | None:
    try:
        return json.loads((users_dir(warehouse) / str(pid)).read_text()).get("what") or "step"
    except (OSError, ValueError):
        return None


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # gone, or not Linux
    return int(stat.rsplit(")", 1)[1].split()[1])
