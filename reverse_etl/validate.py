"""Validation of every payload against the JSON schema kept in the repo, before anything is sent.

Checking an event means parsing its JSON text back into Python objects and running the schema over them; for
100,000 events that is about 1.5 s of one core, as much as building and sending them. ``ValidatorPool`` runs it
in worker processes (``python -m reverse_etl.validate --worker``, which import only orjson and jsonschema-rs),
so a delivery validates one batch while it builds the next and waits on the network for others. The check is
the same one either way: ``batch_problems``.
"""

from __future__ import annotations

import json
import os
import queue
import struct
import subprocess
import sys
import threading
from functools import cache
from pathlib import Path

import jsonschema_rs
import orjson

SCHEMA_PATH = Path(__file__).with_name("schema") / "tiktok_event.schema.json"


@cache
def _validator():
    return jsonschema_rs.validator_for(json.loads(SCHEMA_PATH.read_text()))


def event_error(event: dict) -> str | None:
    """None when the event is valid, else the first problem as 'path: message'."""
    v = _validator()
    if v.is_valid(event):
        return None
    err = next(iter(v.iter_errors(event)))
    path = "/".join(str(p) for p in err.instance_path) or "(event)"
    return f"{path}: {err.message}"


@cache
def _batch_validator():
    return jsonschema_rs.validator_for({"type": "array", "items": json.loads(SCHEMA_PATH.read_text())})


def all_valid(events: list) -> bool:
    """One check for a whole batch (the common case); ``event_error`` then finds which events failed."""
    return _batch_validator().is_valid(events)


def json_array(events: list[str]) -> bytes:
    """Events given as JSON texts, as one JSON array (the request body's ``data`` is the same bytes)."""
    return ("[" + ",".join(events) + "]").encode()


def batch_problems(events: list[str], array: bytes | None = None) -> list[tuple[int, str]]:
    """The events (given as JSON texts) that fail the schema: (position, 'path: message'); empty when all pass.
    ``array``: ``json_array(events)``, when the caller has it already."""
    problems = _array_problems(array if array is not None else json_array(events))
    if problems is not None:
        return problems
    # one of them is not JSON at all (the builders never produce that): find which, one by one
    problems = []
    for i, text in enumerate(events):
        try:
            problem = event_error(orjson.loads(text))
        except orjson.JSONDecodeError as e:
            problem = f"(event): not valid JSON ({e})"
        if problem:
            problems.append((i, problem))
    return problems


def _array_problems(array: bytes) -> list[tuple[int, str]] | None:
    """As ``batch_problems`` for the events as one JSON array; None when the array is not JSON."""
    try:
        events = orjson.loads(array)
    except orjson.JSONDecodeError:
        return None
    if all_valid(events):
        return []
    return [(i, problem) for i, event in enumerate(events) if (problem := event_error(event))]


_HEADER = struct.Struct("<Q")


def _read_exact(stream, n: int) -> bytes | None:
    data = stream.read(n)
    if len(data) < n:
        return None
    return data


def _worker() -> int:
    """Serve ``batch_problems`` over stdin/stdout: length-prefixed JSON arrays in, JSON answers out."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _batch_validator(), _validator()
    while (header := _read_exact(stdin, _HEADER.size)) is not None:
        array = _read_exact(stdin, _HEADER.unpack(header)[0])
        if array is None:
            return 1
        answer = orjson.dumps(_array_problems(array))
        stdout.write(_HEADER.pack(len(answer)) + answer)
        stdout.flush()
    return 0


class ValidatorPool:
    """``processes`` worker processes answering ``problems(events)``, callable from several threads at
    once (each call takes a free worker). A worker that dies fails the call with a clear error: nothing is
    sent unchecked."""

    def __init__(self, processes: int):
        if processes < 1:
            raise ValueError("a validator pool needs at least one process")
        self._procs = [
            subprocess.Popen(
                [sys.executable, "-m", "reverse_etl.validate", "--worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=_worker_env(),
            )
            for _ in range(processes)
        ]
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for p in self._procs:
            self._free.put(p)
        self._closed = threading.Event()

    def problems(self, events: list[str], array: bytes | None = None) -> list[tuple[int, str]]:
        """``batch_problems(events, array)``, answered by a worker."""
        if self._closed.is_set():
            raise RuntimeError("the validator pool is closed")
        if array is None:
            array = json_array(events)
        proc = self._free.get()
        try:
            proc.stdin.write(_HEADER.pack(len(array)) + array)
            proc.stdin.flush()
            header = _read_exact(proc.stdout, _HEADER.size)
            answer = header and _read_exact(proc.stdout, _HEADER.unpack(header)[0])
        except (BrokenPipeError, OSError):
            answer = None
        finally:
            self._free.put(proc)
        if answer is None:
            raise RuntimeError(
                f"the payload validation worker (pid {proc.pid}) exited with code {proc.poll()}; the batch was not sent"
            )
        problems = orjson.loads(answer)
        if problems is None:  # not JSON somewhere: the slow search for which event, here
            return batch_problems(events)
        return [(i, problem) for i, problem in problems]

    def close(self) -> None:
        self._closed.set()
        for p in self._procs:
            try:
                p.stdin.close()
            except OSError:
                pass
        for p in self._procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()

    def __enter__(self) -> ValidatorPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _worker_env() -> dict:
    # the worker must import this package the way the parent did (an editable install, or the source tree)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


if __name__ == "__main__":
    if sys.argv[1:] != ["--worker"]:
        raise SystemExit("usage: python -m reverse_etl.validate --worker (started by the delivery)")
    raise SystemExit(_worker())
