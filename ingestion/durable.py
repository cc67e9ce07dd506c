"""Durable, group-committed appends into the landing zone for the HTTP services (Stripe receiver, collector).

A service answers 2xx only after what it accepted is on disk. Writing one landing file per request would be
durable but leaves the warehouse loader with millions of tiny files, so each service process appends to one
*segment*: a hidden ``.open-*.jsonl`` file in its landing folder, held under an exclusive ``flock``. Every
append is written and fsynced before the requests it carries are acknowledged, and requests that arrive while
an fsync is in flight are grouped into the next one (group commit), so the disk sees one fsync per group,
not per request.

A segment becomes a visible, immutable landing file (``<folder>/<YYYY-MM-DD>/<time>-<host>-<pid>-<id>.jsonl``)
when it is rotated (by age or size), and when the service shuts down. A process killed without warning leaves
its segment behind; the kernel drops its lock, and :func:`recover_orphans` (run by every service at start and
by the warehouse loader before each load) truncates a half-written last line (never acknowledged) and
publishes the rest. So every acknowledged event reaches the warehouse, whatever happens to the process.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingestion.landing import fsync_dir

log = logging.getLogger(__name__)

# A segment is published this long after its first line: what a service acknowledged reaches the warehouse within
# seconds (a purchase's way to TikTok starts here). The many small files this makes are cheap downstream: the sensor
# and the loader read only the folders changed since they last looked (ingestion/landing.py).
PUBLISH_SECONDS = 2.0

OPEN_PREFIX = ".open-"
CREATING_PREFIX = ".creating-"
SEGMENT_SUFFIX = ".jsonl"


def _published_path(directory: Path, opened_at: float, stem: str) -> Path:
    day = datetime.fromtimestamp(opened_at, UTC)
    return directory / day.strftime("%Y-%m-%d") / f"{day.strftime('%Y%m%dT%H%M%SZ')}-{stem}{SEGMENT_SUFFIX}"


def _publish(directory: Path, open_path: Path, opened_at: float, stem: str) -> Path:
    """Make a closed, fsynced segment visible under its final name (never replacing an existing file)."""
    final = _published_path(directory, opened_at, stem)
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.link(open_path, final)
    os.unlink(open_path)
    fsync_dir(final.parent)
    fsync_dir(open_path.parent)
    return final


class Segment:
    """One open segment file, owned (locked) by this process. Not thread-safe: one writer thread uses it."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.stem = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        creating = directory / f"{CREATING_PREFIX}{self.stem}{SEGMENT_SUFFIX}"
        self.path = directory / f"{OPEN_PREFIX}{self.stem}{SEGMENT_SUFFIX}"
        self.fd = os.open(creating, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o600)  # owner only
        # Locked before it gets the name recovery looks for, so a live segment is never taken for an orphan.
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(creating, self.path)
        fsync_dir(directory)
        self.opened_at = time.time()
        self.size = 0
        self.lines = 0

    def append(self, data: bytes, lines: int) -> None:
        """Write and fsync; on any failure the file is cut back to what was committed before, then re-raised."""
        try:
            view = memoryview(data)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
            os.fdatasync(self.fd)
        except BaseException:
            try:
                os.ftruncate(self.fd, self.size)
                os.fsync(self.fd)
            except OSError:  # pragma: no cover - the disk is gone; recovery cuts the partial line later
                log.exception("could not cut segment %s back to %d bytes", self.path, self.size)
            raise
        self.size += len(data)
        self.lines += lines

    def close(self) -> Path | None:
        """Publish the segment (or remove it when empty). Returns the landing file, if any."""
        os.fsync(self.fd)
        try:
            if self.size == 0:
                os.unlink(self.path)
                return None
            return _publish(self.directory, self.path, self.opened_at, self.stem)
        finally:
            os.close(self.fd)  # releases the lock only once the file has its final name


_DAY_FOLDER = re.compile(r"\d{4}-\d{2}-\d{2}")


def _segment_files(root: Path, prefix: str) -> list[Path]:
    """Segments (open or being created) under ``root``. They live in a writer's own folder, never in the day folders
    it publishes into, which are not read: those hold tens of thousands of files a day and the sensor looks for
    orphans on every tick."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not _DAY_FOLDER.fullmatch(d)]
        found += [Path(folder) / f for f in files if f.startswith(prefix) and f.endswith(SEGMENT_SUFFIX)]
    return found


def recover_orphans(root: Path) -> list[Path]:
    """Publish the segments that processes killed without warning left under ``root``.

    A segment whose lock is still held belongs to a live process and is left alone. A trailing partial line
    (the process died mid-write, so it was never acknowledged) is cut off; the complete lines are published.
    """
    root = Path(root)
    if not root.exists():
        return []
    published: list[Path] = []
    for path in sorted(_segment_files(root, OPEN_PREFIX)):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue  # its owner published it meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process owns it
            try:
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    continue
            except FileNotFoundError:
                continue  # published by its owner between our open and our lock
            size = os.fstat(fd).st_size
            keep = size
            if size:
                # find the end of the last complete line
                chunk = 1 << 16
                keep = 0
                pos = size
                while pos > 0:
                    start = max(0, pos - chunk)
                    os.lseek(fd, start, os.SEEK_SET)
                    block = os.read(fd, pos - start)
                    idx = block.rfind(b"\n")
                    if idx >= 0:
                        keep = start + idx + 1
                        break
                    pos = start
            if keep != size:
                log.warning("recovered segment %s: cut %d bytes of a partial last line", path, size - keep)
                os.ftruncate(fd, keep)
            os.fsync(fd)
            if keep == 0:
                os.unlink(path)
                continue
            stem = path.name[len(OPEN_PREFIX) : -len(SEGMENT_SUFFIX)] + "-recovered"
            final = _publish(path.parent, path, os.fstat(fd).st_mtime, stem)
            log.warning("recovered segment of a stopped process as %s", final)
            published.append(final)
        finally:
            os.close(fd)
    # leftovers of a process killed between creating and naming a segment hold nothing acknowledged
    for path in _segment_files(root, CREATING_PREFIX):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink(missing_ok=True)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
    return published


@dataclass
class WriterStats:
    appends: int = 0
    lines: int = 0
    commits: int = 0
    published_files: int = 0


class GroupCommitWriter:
    """Asyncio front of a :class:`Segment`: ``await write(lines)`` returns once the lines are fsynced.

    One commit is in flight at a time (in a dedicated thread, so the event loop keeps serving); everything
    that arrives meanwhile goes into the next commit. Segments rotate after ``rotate_seconds`` or
    ``rotate_bytes``, and on :meth:`close`.
    """

    def __init__(self, directory: Path, *, rotate_seconds: float = PUBLISH_SECONDS, rotate_bytes: int = 128 << 20):
        self.directory = Path(directory)
        self.rotate_seconds = rotate_seconds
        self.rotate_bytes = rotate_bytes
        self.stats = WriterStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landing-writer")
        self._segment: Segment | None = None
        self._pending: list[bytes] = []
        self._pending_lines = 0
        self._waiters: list[asyncio.Future] = []
        self._flusher: asyncio.Task | None = None
        self._ticker: asyncio.Task | None = None
        self._closed = False

    async def start(self) -> list[Path]:
        """Publish orphans of earlier processes, then start the rotation timer."""
        loop = asyncio.get_running_loop()
        recovered = await loop.run_in_executor(self._executor, recover_orphans, self.directory)
        self._ticker = loop.create_task(self._tick())
        return recovered

    @property
    def pending(self) -> int:
        return len(self._waiters)

    async def write(self, data: bytes, lines: int = 1) -> None:
        """Durably append ``data`` (complete JSON lines, each ending in a newline)."""
        if self._closed:
            raise RuntimeError("the landing writer is closed")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append(data)
        self._pending_lines += lines
        self._waiters.append(fut)
        self.stats.appends += 1
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiters:
                data, lines, waiters = b"".join(self._pending), self._pending_lines, self._waiters
                self._pending, self._pending_lines, self._waiters = [], 0, []
                try:
                    await loop.run_in_executor(self._executor, self._commit, data, lines)
                except BaseException as exc:  # the requests see the failure and answer 5xx
                    for w in waiters:
                        if not w.done():
                            w.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                    if not isinstance(exc, Exception):
                        raise
                else:
                    self.stats.commits += 1
                    self.stats.lines += lines
                    for w in waiters:
                        if not w.done():
                            w.set_result(None)
        finally:
            self._flusher = None

    def _commit(self, data: bytes, lines: int) -> None:
        if self._segment is None:
            self._segment = Segment(self.directory)
        self._segment.append(data, lines)
        if self._segment.size >= self.rotate_bytes:
            self._rotate()

    def _rotate(self) -> None:
        if self._segment is not None:
            segment, self._segment = self._segment, None
            if segment.close() is not None:
                self.stats.published_files += 1

    def _rotate_if_old(self) -> None:
        if self._segment is not None and time.time() - self._segment.opened_at >= self.rotate_seconds:
            self._rotate()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.rotate_seconds / 4))
            try:
                await loop.run_in_executor(self._executor, self._rotate_if_old)
            except Exception:
                log.exception("segment rotation failed; will retry")

    async def close(self) -> None:
        """Commit what is pending, publish the segment, stop the thread."""
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
        while self._flusher is not None:
            await asyncio.sleep(0.001)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._rotate)
        self._executor.shutdown(wait=True)
