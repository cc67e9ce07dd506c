import gc
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from orchestration import gctuning
from orchestration.defs.ingestion import WAREHOUSE_POOL
from orchestration.defs.report import REPORT_KEY


def test_definitions_load_and_validate(workspace):
    defs = workspace.defs()
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "raw/stripe_events",
        "raw/tracking_events",
        "staging/stg_stripe__invoices",
        "intermediate/int_identity_components",
        "marts/attributed_purchases",
        "marts/customer_journeys",
        "marts/tiktok_conversions",
        "reverse_etl/tiktok_deliveries",
    } <= keys
    assert defs.resolve_job_def("pipeline")
    assert defs.resolve_sensor_def("landing_zone_sensor")
    assert defs.resolve_job_def("stripe_backfill") and defs.resolve_schedule_def("stripe_pull_every_15_minutes")
    assert "landing/stripe_events_pull" in keys


def test_dbt_sources_are_the_loader_assets_and_nothing_dangles(workspace):
    graph = workspace.defs().resolve_asset_graph()
    materializable = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    for key in graph.get_all_asset_keys():
        for parent in graph.get(key).parent_keys:
            assert parent in materializable, f"{key.to_user_string()} depends on unmaterializable {parent}"


def test_every_warehouse_writer_runs_in_the_warehouse_pool(workspace):
    defs = workspace.defs()
    for assets_def in defs.resolve_asset_graph().assets_defs:
        # what opens the warehouse (directly or through dbt) is queued in the pool; the Stripe pull only
        # writes landing files and runs beside it; the marketing report takes only the paths of the warehouse
        # resource and reads the analysts' copy, which no run holds
        if assets_def.keys == {REPORT_KEY}:
            continue
        if assets_def.is_executable and {"warehouse", "dbt"} & assets_def.required_resource_keys:
            pools = {op.pool for op in assets_def.node_def.iterate_op_defs()}
            assert pools == {WAREHOUSE_POOL}, assets_def.keys


def test_the_code_location_loads_with_dagsters_own_validator(tmp_path):
    env = {
        "LANDING_DIR": str(tmp_path / "landing"),
        "WAREHOUSE_PATH": str(tmp_path / "wh.duckdb"),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "PATH": "/usr/bin:/bin",
    }
    (tmp_path / "home").mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "orchestration.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed validation" in (out.stdout + out.stderr)


@pytest.mark.parametrize("tuning", ["true", "false"])
def test_loading_the_code_location_leaves_collection_on_and_what_it_loaded_frozen(tmp_path, tuning):
    # a new interpreter, as a run worker or `make run` loads it (orchestration/gctuning.py); with the off switch,
    # the collector is as CPython leaves it
    env = {
        "LANDING_DIR": str(tmp_path / "landing"),
        "WAREHOUSE_PATH": str(tmp_path / "wh.duckdb"),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "PATH": "/usr/bin:/bin",
        "PYTHON_GC_TUNING": tuning,
    }
    code = (
        "import gc, orchestration.definitions as d; "
        "print(gc.isenabled(), gc.get_freeze_count(), len(d.defs.resolve_asset_graph().get_all_asset_keys()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr
    enabled, frozen, assets = out.stdout.split()
    assert enabled == "True" and int(assets) > 30
    assert int(frozen) > 100_000 if tuning == "true" else int(frozen) == 0


@pytest.mark.skipif(not gctuning.enabled(), reason="PYTHON_GC_TUNING=false")
def test_collection_paused_restores_the_collector_as_it_was():
    from orchestration.gctuning import collection_paused

    try:
        with collection_paused():
            assert not gc.isenabled()
            kept = [[i] for i in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= len(kept)
        gc.disable()
        with pytest.raises(RuntimeError), collection_paused():
            raise RuntimeError("a failing import")
        assert not gc.isenabled()  # the caller had turned it off: it stays off
    finally:
        gc.enable()
        gc.unfreeze()


def test_each_use_of_another_packages_private_parts_stays_in_its_one_module():
    """The rule for private internals (developers' guide): one module per kind, behind its off switch, its symbols
    named by a test. Here: each module's symbols exist, and no other module of the project uses them."""
    import re

    from orchestration import gctuning
    from tests.private_symbols import assert_each_exists

    assert_each_exists(gctuning.PRIVATE_SYMBOLS, "PYTHON_GC_TUNING")
    owners = {
        "orchestration/gctuning.py": re.compile(r"^\s*(import gc|from gc import)|\bgc\.(freeze|unfreeze|disable)\("),
        "orchestration/dbt_runner.py": re.compile(r"\._ENV\b|ctypes\.pythonapi|_initialize_dbt_core_adapter"),
        "orchestration/storage.py": re.compile(r"from dagster\._core\.storage\.event_log"),
    }
    root = Path(__file__).resolve().parents[1]
    strays = []
    for package in ("ingestion", "reverse_etl", "orchestration", "simulator", "bench"):
        for path in (root / package).rglob("*.py"):
            relative = path.relative_to(root).as_posix()
            for owner, pattern in owners.items():
                if relative != owner and any(pattern.search(line) for line in path.read_text().splitlines()):
                    strays.append(f"{relative} uses what only {owner} may")
    assert strays == []
