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
    return sorted(landing_files_since(landing_dir, source, None))


def landing_files_since(landing_dir: Path, source: str, since: float | None) -> dict[Path, float]:
    """The landing files of one source that became visible after ``since`` (seconds since the epoch; None: all),
    each with that time: its inode's change time (a rename or link, as publishing a segment does, sets it; the
    modification time stays the write's) or its modification time if later.

    The services publish a file every few seconds, so a landing folder gathers tens of thousands of files a day; the
    sensor and the loader look at the new ones only. A folder without subfolders (``st_nlink`` 2) whose modification
    time is before ``since`` had no file added, renamed or linked into it since, so it is not read at all. Where a
    filesystem does not count subfolders in ``st_nlink`` (btrfs says 1) every folder is read, as before."""
    out: dict[Path, float] = {}
    root = Path(landing_dir) / source
    if root.exists():
        _scan(root, since, out)
    return out


def _scan(folder: Path, since: float | None, out: dict[Path, float]) -> None:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if since is not None:
                    st = entry.stat(follow_symlinks=False)
                    if st.st_nlink == 2 and st.st_mtime < since:
                        continue
                _scan(Path(entry.path), since, out)
            elif entry.name.endswith(LANDING_SUFFIXES) and not entry.name.startswith("."):
                try:
                    st = entry.stat()
                except FileNotFoundError:  # erased meanwhile (forget rewrites files)
                    continue
                if not entry.is_file():
                    continue
                visible = max(st.st_ctime, st.st_mtime)
                if since is None or visible > since:
                    out[Path(entry.path)] = visible


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
