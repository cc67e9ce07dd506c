"""dbt commands run inside the Dagster process, through dbt's own Python API (dbtRunner), instead of a dbt
subprocess per command.

A dbt subprocess pays, before its first model, for starting Python, importing dbt's CLI and loading the adapter:
about 4 s of a 6 s no-op build here, and on every build, the small incremental ones included. In this process most
of dbt is already imported (dagster-dbt imports it to read the manifest), so the same no-op build takes 2.5 s.

`InProcessDbt` is shaped like the `subprocess.Popen` that dagster-dbt's `DbtCliInvocation` reads: dbt's structured
events are turned into the JSON lines that `dbt --log-format json` prints (the same `msg_to_dict`), so everything
dagster-dbt does with them (Dagster events, asset checks, errors, artifacts) is unchanged. dbt runs in a thread of
its own, so the events stream while it runs, and a terminated Dagster run stops it the way Ctrl-C stops dbt: a
KeyboardInterrupt in dbt's thread, which cancels the open queries.

dbt's Python API runs one command at a time per process: a lock queues a second one. When dbt has finished, the
DuckDB database dbt-duckdb opened is closed, so the warehouse can be opened again in this process with other
settings.

In incremental builds, nodes run longest remaining path first (`critical_path_scores`). dbt starts, among the
nodes ready to run, the one of least depth in the graph, and among equals the first by name: so a report at the
depth of `tiktok_conversions` takes the thread that the build's longest chain was waiting for. Here a node's
priority is the seconds from its start to the end of the longest chain of nodes after it, as the last build in the
same target folder took them. Forced incremental builds of the 1M-event world, the two orders alternating
(`python -m bench.dbt_order`): this order was faster in 11 of 16 pairs, by 0.6 s on average, of dbt elapsed
times of 10-14 s. Full builds keep dbt's order: there both cores are busy with large queries whatever the order,
and three full builds in this order were not faster (28.8, 28.9 and 29.3 s against 26.9 and 28.3 s).

dbt's events are built faster (`_install_fast_events`). dbt builds a protobuf message for every event, debug ones
included (each SQL statement fires two), with protobuf's `ParseDict`: a pure-Python walk of a dict, about 100 us per
message, twice per event. A build is bound by Python here, not by DuckDB: dbt's two threads and Dagster's handling
of the events take turns holding the GIL nearly all the time, so this cost adds to the build's elapsed time. The
message class's own constructor builds the same message from the same dict in under a tenth of that; whatever it
refuses (a node's result) goes to `ParseDict` as before, and a test builds every message of a build both ways and
compares them. Forced incremental builds of the 1M-event world, alternating, 4 pairs: dbt elapsed 11.4 s against
12.6 s on average. (dbt-core issue 9030 proposes the same.)
"""

import contextlib
import ctypes
import gc
import json
import os
import queue
import shutil
import statistics
import subprocess
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import orjson
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource
from dagster_dbt.asset_utils import (
    DBT_INDIRECT_SELECTION_ENV,
    extract_runtime_selection_from_args,
    get_updated_cli_invocation_params_for_context,
)
from dagster_dbt.core.dbt_cli_invocation import _get_dbt_target_path
from dagster_dbt.dagster_dbt_translator import validate_opt_translator
from dagster_dbt.dbt_manifest import validate_manifest

_ONE_AT_A_TIME = threading.Lock()
_DONE = None
# seconds per node of the last build of each kind, in each target folder
NODE_SECONDS_FILE = "node_seconds.json"
# while InProcessDbt runs a command: the node seconds its scheduling follows (None: dbt's own order)
_node_seconds: dict[str, float] | None = None


class _Lines:
    """The stdout of an InProcessDbt: the JSON lines of dbt's events, as bytes, until dbt has finished."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.closed = False

    def put(self, line: bytes | None) -> None:
        self._queue.put(line)

    def __iter__(self) -> Iterator[bytes]:
        while not self.closed:
            line = self._queue.get()
            if line is _DONE:
                self.closed = True
                return
            yield line

    def __enter__(self) -> "_Lines":
        return self

    def __exit__(self, *exc) -> None:
        self.closed = True


class InProcessDbt:
    """A dbt command running in a thread of this process, read like a `subprocess.Popen` (args, stdout, wait,
    returncode, send_signal). `args` starts with the dbt executable, as a command line would."""

    def __init__(self, args: Sequence[str]):
        self.args = list(args)
        self._debug = "--debug" in self.args or "-d" in self.args
        self.returncode: int | None = None
        self.stdout = _Lines()
        self._froze = False
        self._thread = threading.Thread(target=self._run, name="dbt", daemon=True)
        self._thread.start()

    def _emit(self, msg) -> None:
        if msg.info.name == "ConcurrencyLine":
            # dbt has loaded the project and is about to run the nodes: what it loaded (the manifest, the adapter)
            # lives until the command ends, so the collector's passes during the nodes leave it out, as they leave
            # out the code location (orchestration/gctuning.py). 2.0 s of collection in a +1% run of a small world
            # was 0.9 s without this freeze, 0.6 s with it. Undone when the command ends (`_run`).
            gc.freeze()
            self._froze = True
        # what `dbt --log-format json` prints: the events at info level and above (debug ones go to dbt.log)
        if msg.info.level == "debug" and not self._debug:
            return
        from dbt_common.events.functions import msg_to_dict

        self.stdout.put(orjson.dumps(msg_to_dict(msg)))

    def _error(self, text: str) -> None:
        self.stdout.put(orjson.dumps({"info": {"level": "error", "msg": text, "name": "InProcessDbtError"},
                                      "data": {}}))

    def _run(self) -> None:
        try:
            with _ONE_AT_A_TIME:
                from dbt.cli.main import dbtRunner

                global _node_seconds
                _install_schedule()
                _install_fast_events()
                _node_seconds = None if "--full-refresh" in self.args else self._last_node_seconds()
                try:
                    result = dbtRunner(callbacks=[self._emit]).invoke(self.args[1:])
                finally:
                    _node_seconds = None
                    _close_duckdb()
                    if self._froze:
                        # What dbt loaded is garbage now. Unfrozen, it can be collected: a process that runs many
                        # commands (the tests) would otherwise keep some 14,000 objects of each for good. This
                        # unfreezes the code location too, until the next freeze (the TikTok delivery's, or `make
                        # run`'s before exit).
                        gc.unfreeze()
                self._record_node_seconds(result)
            if result.exception is not None:
                # an error before or outside the nodes (a bad flag, a profile or parse error): dbt exits with 2
                self._error(f"{type(result.exception).__name__}: {result.exception}")
                self.returncode = 2
            else:
                self.returncode = 0 if result.success else 1
        except BaseException as e:  # noqa: BLE001 - reported as dbt's own failure, never lost in the thread
            self._error(f"{type(e).__name__}: {e}")
            self.returncode = 2
        finally:
            self.stdout.put(_DONE)

    def _flag(self, name: str) -> str | None:
        return self.args[self.args.index(name) + 1] if name in self.args[:-1] else None

    def _seconds_file(self) -> tuple[Path | None, str]:
        target = self._flag("--target-path")
        return (Path(target) / NODE_SECONDS_FILE if target else None,
                "full" if "--full-refresh" in self.args else "incremental")

    def _last_node_seconds(self) -> dict[str, float]:
        """The node seconds an incremental build is ordered by: the last incremental build's, else the last full
        build's (the first incremental build after it), else none (every node counts the same)."""
        path, _ = self._seconds_file()
        try:
            recorded = json.loads(path.read_text()) if path else {}
        except (OSError, ValueError):
            recorded = {}  # none yet (a new target folder), or unreadable
        return recorded.get("incremental") or recorded.get("full") or {}

    def _record_node_seconds(self, result) -> None:
        path, kind = self._seconds_file()
        results = getattr(getattr(result, "result", None), "results", None)
        if path is None or not results:
            return
        seconds = {r.node.unique_id: round(r.execution_time, 3) for r in results
                   if getattr(r, "node", None) is not None and r.execution_time}
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads(path.read_text()) if path.exists() else {}
            recorded[kind] = {**recorded.get(kind, {}), **seconds}
            path.write_text(json.dumps(recorded))

    def wait(self, timeout: float | None = None) -> int:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def poll(self) -> int | None:
        return None if self._thread.is_alive() else self.returncode

    def send_signal(self, sig: int) -> None:
        """Any signal stops dbt the way Ctrl-C stops the dbt CLI: the running queries are cancelled, and dbt's thread
        gets a KeyboardInterrupt, on which dbt skips the nodes not started and reports the run as interrupted."""
        if not self._thread.is_alive() or self._thread.ident is None:
            return
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread.ident),
                                                   ctypes.py_object(KeyboardInterrupt))
        # dbt's thread sees the KeyboardInterrupt when it next runs Python code: when the running nodes end
        from dbt.adapters.factory import FACTORY

        for adapter in list(FACTORY.adapters.values()):
            with contextlib.suppress(Exception):
                adapter.cancel_open_connections()


def critical_path_scores(graph, seconds: dict[str, float]) -> dict[str, float]:
    """dbt's priority of each node of ``graph`` (a networkx DiGraph; lower runs first): minus the seconds of the
    longest path from the node's start to the end of the build, by ``seconds`` per node (a node not in it: the
    median of those that are, or 1 s when none is)."""
    import networkx as nx

    default = statistics.median(seconds.values()) if seconds else 1.0
    remaining: dict[str, float] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        after = max((remaining[child] for child in graph.successors(node)), default=0.0)
        remaining[node] = seconds.get(node, default) + after
    return {node: -length for node, length in remaining.items()}


def _install_schedule() -> None:
    """Make dbt's GraphQueue order the ready nodes by `critical_path_scores` while InProcessDbt runs a command
    (`_node_seconds` set); any other use of dbt in this process keeps dbt's own order."""
    from dbt.graph.queue import GraphQueue

    original = GraphQueue._get_scores
    if getattr(original, "critical_path_first", False):
        return

    def _get_scores(self, graph):
        seconds = _node_seconds
        if seconds is None:
            return original(self, graph)
        return critical_path_scores(graph, seconds)

    _get_scores.critical_path_first = True
    GraphQueue._get_scores = _get_scores


def _fast_message(js_dict: dict, message_class):
    """The protobuf message ``message_class(**js_dict)``, as `ParseDict(js_dict, message_class())` would build it, or
    None when the constructor does not take the dict. The one difference between the two that dbt's events meet is
    handled: the time of an event (``info.ts``) is ISO-8601 text, which `ParseDict` reads and the constructor takes
    as a datetime."""
    info = js_dict.get("info")
    if isinstance(info, dict) and isinstance(info.get("ts"), str):
        try:
            js_dict = {**js_dict, "info": {**info, "ts": datetime.fromisoformat(info["ts"])}}
        except ValueError:
            return None
    try:
        return message_class(**js_dict)
    except Exception:  # noqa: BLE001 - whatever the constructor refuses, ParseDict decides
        return None


def _install_fast_events() -> None:
    """Build dbt's event messages with `_fast_message`, falling back to protobuf's `ParseDict` (dbt_common calls it
    for every event it builds: `BaseEvent.__init__` and `msg_from_base_event`)."""
    from dbt_common.events import base_types

    original = getattr(base_types, "ParseDict", None)
    if original is None or getattr(original, "parse_dict", None) is not None:
        return  # installed already, or a dbt-common that builds its messages otherwise

    def parse_dict(js_dict, message, *args, **kwargs):
        if not args and not kwargs and isinstance(js_dict, dict) and not message.ListFields():
            built = _fast_message(js_dict, type(message))
            if built is not None:
                return built
        return original(js_dict, message, *args, **kwargs)

    parse_dict.parse_dict = original
    base_types.ParseDict = parse_dict


def _close_duckdb() -> None:
    """dbt-duckdb keeps its DuckDB database open after a command (for the next one in the same process); close it,
    so that this process can open the warehouse again, with its own settings, once dbt has finished."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    environment = DuckDBConnectionManager._ENV
    DuckDBConnectionManager.close_all_connections()
    if environment is not None:
        with contextlib.suppress(Exception):
            environment.close()


def invoke(resource: DbtCliResource, args: Sequence[str], *, raise_on_error: bool = True, manifest=None,
           dagster_dbt_translator: DagsterDbtTranslator | None = None, context=None,
           target_path: Path | None = None, cli_version) -> DbtCliInvocation:
    """What `DbtCliResource.cli` does (the context's selection, the target folder, partial parsing), with dbt run by
    InProcessDbt. The settings dagster-dbt passes to its subprocess as environment variables are flags here, so this
    process's environment is left as it is."""
    translator = validate_opt_translator(dagster_dbt_translator) or DagsterDbtTranslator()
    cleaned_args, runtime_selects, runtime_excludes = extract_runtime_selection_from_args(args)
    params = get_updated_cli_invocation_params_for_context(
        context=context, manifest=validate_manifest(manifest) if manifest else {}, dagster_dbt_translator=translator,
        runtime_selects=runtime_selects, runtime_excludes=runtime_excludes)
    project_dir = Path(params.dbt_project.project_dir if params.dbt_project else resource.project_dir).resolve()
    target_path = target_path or resource._get_unique_target_path(context=context)
    if not target_path.is_absolute():
        target_path = project_dir / target_path
    # partial parsing: start from the project's last parse, as dagster-dbt does for each new target folder
    parsed = _get_dbt_target_path()
    parsed = (parsed if parsed.is_absolute() else project_dir / parsed) / "partial_parse.msgpack"
    if parsed.exists() and not (target_path / "partial_parse.msgpack").exists():
        target_path.mkdir(parents=True, exist_ok=True)
        shutil.copy(parsed, target_path / "partial_parse.msgpack")
    flags = ["--project-dir", str(project_dir), "--target-path", str(target_path), "--log-path", str(target_path),
             "--log-level", "none", "--no-send-anonymous-usage-stats", "--no-use-colors"]
    if resource.profiles_dir:
        flags += ["--profiles-dir", str(Path(resource.profiles_dir).resolve())]
    if resource.profile:
        flags += ["--profile", resource.profile]
    if resource.target:
        flags += ["--target", resource.target]
    indirect = params.indirect_selection or os.environ.get(DBT_INDIRECT_SELECTION_ENV)
    if indirect:
        flags += ["--indirect-selection", indirect]
    command = [resource.dbt_executable, *resource.global_config_flags, *cleaned_args, *flags, *params.selection_args]
    return DbtCliInvocation(
        process=InProcessDbt(command), manifest=params.manifest, dagster_dbt_translator=params.dagster_dbt_translator,
        project_dir=project_dir, target_path=target_path, raise_on_error=raise_on_error, context=context,
        adapter=None, cli_version=cli_version, project=params.dbt_project)
