"""The embedded instance's event log (orchestration/storage.py): Dagster's SQLite files, read and written through
kept engines and connections."""

import shutil

import dagster as dg
import pytest

from orchestration.instance import EMBEDDED_CONFIG
from orchestration.storage import SqliteEventLogStorageKeepingEngines


@dg.asset
def numbers() -> int:
    return 1


@pytest.mark.parametrize("keep", ["true", "false"])
def test_events_are_stored_read_back_by_another_instance_and_survive_a_wipe(tmp_path, monkeypatch, keep):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_SQLITE_KEEP_ENGINES", keep)
    shutil.copy(EMBEDDED_CONFIG, tmp_path / "dagster.yaml")
    key = dg.AssetKey("numbers")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.event_log_storage, SqliteEventLogStorageKeepingEngines)
        first = dg.materialize([numbers], instance=instance)
        assert instance.get_latest_materialization_event(key).run_id == first.run_id
        stored = len(instance.all_logs(first.run_id))
        assert stored > 5
        # the run databases are deleted; the kept connections must not write into the deleted files
        instance.wipe()
        assert instance.all_logs(first.run_id) == []
        second = dg.materialize([numbers], instance=instance)
        assert len(instance.all_logs(second.run_id)) == stored
    # another instance on the same home (another process: the UI, the daemon) reads the same files
    with dg.DagsterInstance.from_config(str(tmp_path)) as other:
        assert other.get_latest_materialization_event(key).run_id == second.run_id
        assert len(other.all_logs(second.run_id)) == stored


def test_every_private_symbol_the_event_log_needs_exists():
    from orchestration.storage import PRIVATE_SYMBOLS
    from tests.private_symbols import assert_each_exists

    assert_each_exists(PRIVATE_SYMBOLS, "DAGSTER_SQLITE_KEEP_ENGINES")
