"""dbt commands run inside the Dagster process, through dbt's own Python API (dbtRunner), instead of a dbt
subprocess per command: the one module that uses private parts of dagster-dbt, dbt-duckdb and CPython for it
(`PRIVATE_SYMBOLS`, which tests/test_dbt_runner.py checks exist), behind one off switch: `DBT_IN_PROCESS=false`
runs dbt as dagster-dbt runs it, through its public `DbtCliResource.cli` (a subprocess per command). Measured
gains, with the switch as the baseline: docs/decisions.md.

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
"""

import contextlib
import ctypes
import importlib.metadata
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from functools import cached_property
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
from packaging import version

from orchestration import gctuning

_ONE_AT_A_TIME = threading.Lock()
_DONE = None


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
            self._froze = gctuning.freeze()
        # what `dbt --log-format json` prints: the events at info level and above (debug ones go to dbt.log)
        if msg.info.level == "debug" and not self._debug:
            return
        from dbt_common.events.functions import msg_to_dict

        self.stdout.put(orjson.dumps(msg_to_dict(msg)))

    def _error(self, text: str) -> None:
        self.stdout.put(
            orjson.dumps({"info": {"level": "error", "msg": text, "name": "InProcessDbtError"}, "data": {}})
        )

    def _run(self) -> None:
        try:
            with _ONE_AT_A_TIME:
                from dbt.cli.main import dbtRunner

                try:
                    result = dbtRunner(callbacks=[self._emit]).invoke(self.args[1:])
                finally:
                    _close_duckdb()
                    if self._froze:
                        # What dbt loaded is garbage now. Unfrozen, it can be collected: a process that runs many
                        # commands (the tests) would otherwise keep some 14,000 objects of each for good. This
                        # unfreezes the code location too, until the next freeze (the TikTok delivery's, or `make
                        # run`'s before exit).
                        gctuning.unfreeze()
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
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(self._thread.ident), ctypes.py_object(KeyboardInterrupt)
        )
        # dbt's thread sees the KeyboardInterrupt when it next runs Python code: when the running nodes end
        from dbt.adapters.factory import FACTORY

        for adapter in list(FACTORY.adapters.values()):
            with contextlib.suppress(Exception):
                adapter.cancel_open_connections()


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


def invoke(
    resource: DbtCliResource,
    args: Sequence[str],
    *,
    raise_on_error: bool = True,
    manifest=None,
    dagster_dbt_translator: DagsterDbtTranslator | None = None,
    context=None,
    target_path: Path | None = None,
    cli_version,
) -> DbtCliInvocation:
    """What `DbtCliResource.cli` does (the context's selection, the target folder, partial parsing), with dbt run by
    InProcessDbt. The settings dagster-dbt passes to its subprocess as environment variables are flags here, so this
    process's environment is left as it is."""
    translator = validate_opt_translator(dagster_dbt_translator) or DagsterDbtTranslator()
    cleaned_args, runtime_selects, runtime_excludes = extract_runtime_selection_from_args(args)
    params = get_updated_cli_invocation_params_for_context(
        context=context,
        manifest=validate_manifest(manifest) if manifest else {},
        dagster_dbt_translator=translator,
        runtime_selects=runtime_selects,
        runtime_excludes=runtime_excludes,
    )
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
    flags = [
        "--project-dir",
        str(project_dir),
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path),
        "--log-level",
        "none",
        "--no-send-anonymous-usage-stats",
        "--no-use-colors",
    ]
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
        process=InProcessDbt(command),
        manifest=params.manifest,
        dagster_dbt_translator=params.dagster_dbt_translator,
        project_dir=project_dir,
        target_path=target_path,
        raise_on_error=raise_on_error,
        context=context,
        adapter=None,
        cli_version=cli_version,
        project=params.dbt_project,
    )


# What this module needs of other packages' private parts; tests/test_dbt_runner.py checks that each exists, so an
# upgrade that renames one fails there, not in a production build.
PRIVATE_SYMBOLS = [
    ("dagster_dbt.core.dbt_cli_invocation", "_get_dbt_target_path"),
    ("dagster_dbt.core.resource", "DbtCliResource._get_unique_target_path"),
    ("dagster_dbt.core.resource", "DbtCliResource._initialize_dbt_core_adapter"),
    ("dagster_dbt.core.resource", "DbtCliResource._cli_version"),
    ("dbt.adapters.duckdb.connections", "DuckDBConnectionManager._ENV"),
    ("ctypes", "pythonapi.PyThreadState_SetAsyncExc"),
]


def in_process() -> bool:
    """The off switch: DBT_IN_PROCESS (default true)."""
    return (os.environ.get("DBT_IN_PROCESS") or "true").strip().lower() not in ("false", "0", "no", "off")


class DbtCli(DbtCliResource):
    """dagster-dbt's dbt CLI resource, with dbt run in this process (`InProcessDbt`) when dbt is the one beside this
    interpreter and the switch is on, and without two things dagster-dbt does before every dbt command that cost
    seconds: it sets up a dbt adapter inside the Dagster process (2.7 s of CPU per build) only to fetch row counts
    and column metadata this project does not ask for (`dbt_models` counts rows itself), and it runs `dbt --version`
    (3-5 s) to learn a version the package metadata holds. With the switch off it is dagster-dbt's resource."""

    def _own_dbt(self) -> bool:
        return in_process() and Path(self.dbt_executable) == Path(sys.executable).parent / "dbt"

    def _initialize_dbt_core_adapter(self, args: Sequence[str]):
        if self._own_dbt():
            return None
        return super()._initialize_dbt_core_adapter(args)

    def cli(self, args: Sequence[str], **kwargs) -> DbtCliInvocation:
        if self._own_dbt():
            return invoke(self, args, cli_version=self._cli_version, **kwargs)
        return super().cli(args, **kwargs)

    @cached_property
    def _cli_version(self) -> version.Version:
        if self._own_dbt():
            return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version
