"""dbt run inside the Dagster process (orchestration/dbt_runner.py), on a small dbt project of its own and a real
DuckDB file: results, failures and cancellation reach dagster-dbt as they do from the dbt CLI, and the warehouse is
free for this process once dbt has finished."""

import gc
import signal
import time
from pathlib import Path

import duckdb
import pytest
from dagster_dbt.errors import DagsterDbtCliRuntimeError

from orchestration import dbt_runner, gctuning
from orchestration.dbt_runner import InProcessDbt
from orchestration.defs.dbt import DBT_EXECUTABLE, DbtCli


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text('name: tiny\nversion: "1.0"\nprofile: tiny\n')
    (root / "profiles.yml").write_text(
        "tiny:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('TINY_WAREHOUSE') }}\"\n      threads: 1\n"
    )
    (root / "models" / "orders.sql").write_text("{{ config(materialized='table') }} select 1 as id, 9.5 as amount")
    (root / "models" / "schema.yml").write_text(
        "models:\n  - name: orders\n    columns:\n      - name: id\n        data_tests: [unique, not_null]\n"
    )
    (root / "models" / "broken.sql").write_text(
        "{{ config(materialized='table') }} select error('the broken model failed on purpose') as x"
    )
    # runs until cancelled: a cross product far too large to finish
    (root / "models" / "endless.sql").write_text(
        "{{ config(materialized='table') }} select count(*) as n from range(100000000000) as t(i) where i % 7 = 3"
    )
    monkeypatch.setenv("TINY_WAREHOUSE", str(tmp_path / "tiny.duckdb"))
    return root


# the tests of the in-process runner itself; with DBT_IN_PROCESS=false dbt runs as dagster-dbt runs it, and the rest
# of the suite checks that path
in_process_only = pytest.mark.skipif(not dbt_runner.in_process(), reason="DBT_IN_PROCESS=false")


def _dbt(project: Path) -> DbtCli:
    return DbtCli(project_dir=str(project), profiles_dir=str(project), dbt_executable=DBT_EXECUTABLE)


@in_process_only
def test_a_dbt_build_runs_in_this_process_and_reports_like_the_cli(project, tmp_path):
    invocation = _dbt(project).cli(["build", "-s", "orders"], target_path=project / "target")
    assert isinstance(invocation.process, InProcessDbt)
    events = list(invocation.stream_raw_events())
    assert invocation.is_successful() and invocation.process.returncode == 0
    finished = {
        e.raw_event["data"]["node_info"]["unique_id"]: e.raw_event["data"]["node_info"]["node_status"]
        for e in events
        if e.is_result_event
    }
    assert finished["model.tiny.orders"] == "success"
    assert sum(1 for k, status in finished.items() if k.startswith("test.") and status == "pass") == 2
    # what dbt --log-format json prints: no debug events
    assert all(e.raw_event["info"]["level"] != "debug" for e in events)
    assert invocation.get_artifact("run_results.json")["results"]
    # dbt let go of the database: this process opens it again, with settings of its own
    with duckdb.connect(str(tmp_path / "tiny.duckdb"), config={"memory_limit": "512MB"}) as con:
        assert con.execute("select id, amount from orders").fetchall() == [(1, 9.5)]


@in_process_only
@pytest.mark.skipif(not gctuning.enabled(), reason="PYTHON_GC_TUNING=false")
def test_what_dbt_loaded_is_frozen_while_its_nodes_run_and_let_go_after(project, monkeypatch):
    frozen_when_a_node_started = []
    emit = InProcessDbt._emit

    def _emit(self, msg):
        if msg.info.name == "NodeStart":
            frozen_when_a_node_started.append(gc.get_freeze_count())
        return emit(self, msg)

    monkeypatch.setattr(InProcessDbt, "_emit", _emit)
    gc.unfreeze()
    invocation = _dbt(project).cli(["build", "-s", "orders"], target_path=project / "target")
    list(invocation.stream_raw_events())
    assert invocation.is_successful()
    # frozen when dbt announced its threads, before the first node (orchestration/gctuning.py) ...
    assert frozen_when_a_node_started and min(frozen_when_a_node_started) > 10_000
    # ... and unfrozen when the command ended, so what it loaded can be collected
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_a_failing_model_fails_the_command_with_dbts_error(project):
    with pytest.raises(DagsterDbtCliRuntimeError, match="the broken model failed on purpose"):
        _dbt(project).cli(["build", "-s", "broken"], target_path=project / "target").wait()
    invocation = _dbt(project).cli(["build", "-s", "broken"], target_path=project / "target", raise_on_error=False)
    invocation.wait()
    assert not invocation.is_successful() and invocation.process.returncode == 1


def test_a_bad_command_is_an_error_not_a_hang(project):
    invocation = _dbt(project).cli(["build", "--no-such-flag"], target_path=project / "target", raise_on_error=False)
    invocation.wait()
    assert invocation.process.returncode == 2
    assert "no-such-flag" in str(invocation.get_error())


@in_process_only
def test_a_terminated_build_cancels_its_running_query_and_frees_the_warehouse(project, tmp_path):
    invocation = _dbt(project).cli(["build", "-s", "endless"], target_path=project / "target", raise_on_error=False)
    for event in invocation.stream_raw_events():
        if event.raw_event["info"]["name"] == "LogStartLine":  # the model's query has started
            break
    time.sleep(0.5)
    started = time.perf_counter()
    # what dagster-dbt does when the Dagster run is terminated
    invocation.process.send_signal(signal.SIGINT)
    assert invocation.process.wait(timeout=60) != 0
    assert time.perf_counter() - started < 30
    with duckdb.connect(str(tmp_path / "tiny.duckdb")) as con:
        assert con.execute(
            "select count(*) from information_schema.tables where table_name = 'endless'"
        ).fetchall() == [(0,)]


def test_every_private_symbol_the_in_process_runner_needs_exists():
    """The in-process runner's private parts of other packages, named: an upgrade that renames one fails here."""
    from orchestration.dbt_runner import PRIVATE_SYMBOLS
    from tests.private_symbols import assert_each_exists

    assert_each_exists(PRIVATE_SYMBOLS, "DBT_IN_PROCESS")


def test_with_the_switch_off_dbt_runs_as_dagster_dbt_runs_it(project, monkeypatch):
    import subprocess

    monkeypatch.setenv("DBT_IN_PROCESS", "false")
    invocation = _dbt(project).cli(["build", "-s", "orders"], target_path=project / "target")
    assert isinstance(invocation.process, subprocess.Popen)
    assert invocation.wait().is_successful()
