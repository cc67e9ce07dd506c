"""The landing zone: append-only JSONL files that are immutable once visible.

Writers write to a hidden temporary name in the target folder, fsync, then rename, so a reader never sees a
half-written file and a crash leaves at most an ignored ``.tmp-*`` file behind.
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

STRIPE_DIR = "stripe_events"
TRACKING_DIR = "tracking"
SOURCES = (STRIPE_DIR, TRACKING_DIR)
LANDING_SUFFIXES = (".jsonl", ".jsonl.gz")


def is_landing_file(path: Path) -> bool:
    return path.name.endswith(LANDING_SUFFIXES) and not path.name.startswith(".")


def list_landing_files(landing_dir: Path, source: str) -> list[Path]:
    """Every visible landing file of one source, sorted for a deterministic load order."""
    root = Path(landing_dir) / source
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and is_landing_file(p))


def fsync_dir(path: Path) -> None:
    """Make a rename or link in ``path`` durable (shared with ingestion/durable.py)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_jsonl_atomic(path: Path, records: Iterable[dict | str], *, compress: bool | None = None) -> int:
    """Write records (dicts, or already serialised JSON lines) to ``path`` atomically and durably.

    Returns the number of lines written. Refuses to replace an existing file: landing files are immutable.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"landing file already exists and is immutable: {path}")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if compress is None:
        compress = path.name.endswith(".gz")
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    count = 0
    raw = os.fdopen(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb")  # personal data: owner only
    try:
        stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if compress else raw
        lines = []
        for record in records:
            line = record if isinstance(record, str) else json.dumps(record, separators=(",", ":"))
            lines.append(line)
            count += 1
        stream.write(("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))
        if compress:
            stream.close()
        raw.flush()
        os.fsync(raw.fileno())
    except BaseException:
        raw.close()
        tmp.unlink(missing_ok=True)
        raise
    raw.close()
    try:
        # link + unlink rather than rename: never silently replaces a file another writer made visible.
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return count
