"""The dbt project as Dagster assets: staging, identity, attribution and activation models, keyed [schema, model]."""

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import phonenumbers
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from ingestion import config
from orchestration.dbt_runner import DbtCli
from orchestration.defs.ingestion import WAREHOUSE_POOL
from orchestration.resources import TikTokResource, WarehouseResource, busy_build
from orchestration.warehouse_lock import DBT_BUILD, pipeline_use
from reverse_etl.settings import DeliverySettings

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)

# dbt lives beside this interpreter (the project's .venv), which need not be on PATH.
_venv_dbt = Path(sys.executable).parent / "dbt"
DBT_EXECUTABLE = str(_venv_dbt) if _venv_dbt.exists() else "dbt"


# marts read daily by analysts: warn after 6 hours without a build, fail after a day (the pipeline runs whenever
# files land, and the Stripe pull every 15 minutes, so a day means the automation is stuck)
MARTS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=6))


def _manifest_is_stale() -> bool:
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return True
    try:
        json.loads(manifest.read_bytes())
    except ValueError:  # left broken (by a dbt of an older version of this module, or a crash while writing)
        return True
    built = manifest.stat().st_mtime
    sources = [
        DBT_PROJECT_DIR / "dbt_project.yml",
        *(p for d in ("models", "macros", "seeds", "tests") for p in (DBT_PROJECT_DIR / d).rglob("*") if p.is_file()),
    ]
    return any(p.stat().st_mtime > built for p in sources)


def prepare_manifest(force: bool = False) -> Path:
    """Parse the dbt project when the manifest is missing or older than any project file, or always with ``force``.

    Each new target folder starts from this parse (partial parsing), but dbt reuses a parse only for the profile it
    was made with, the warehouse path included: with another path, the first build in the folder parses the whole
    project again (5-7 s). The image build parses with the path its runs use (deploy/Dockerfile); so does the
    benchmark, with ``force``.

    Every process of the code location imports this module (the test suite's workers, the daemon, the webserver),
    so after a change several find the manifest stale at once: one parses at a time (a lock file), into a private
    folder, and the files are renamed into place, so that a reader never opens a manifest half-written. dbt writes
    its own in place: two parses at once used to leave one document followed by the rest of the other."""
    target = DBT_PROJECT_DIR / "target"
    target.mkdir(exist_ok=True)
    with open(target / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force or _manifest_is_stale():
            private = Path(tempfile.mkdtemp(prefix=".parse-", dir=target))
            try:
                DbtCli(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE).cli(
                    ["parse", "--quiet"], target_path=private
                ).wait()
                # the manifest last: it is what says the parse is current
                for name in ("partial_parse.msgpack", "semantic_manifest.json", "manifest.json"):
                    if (private / name).exists():
                        os.replace(private / name, target / name)
            finally:
                shutil.rmtree(private, ignore_errors=True)
    return dbt_project.manifest_path


class Translator(DagsterDbtTranslator):
    """One place for how dbt models look in Dagster: keys [schema, name] (sources: raw.stripe_events ->
    ["raw", "stripe_events"], the loader assets), layer tags, eager automation (a model follows its inputs), and a
    freshness policy on the marts. Groups and owners are dagster-dbt's own reading of `meta.dagster` in
    dbt_project.yml."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])
        schema = dbt_resource_props["config"].get("schema") or "main"
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        schema = dbt_resource_props["config"].get("schema") or "main"
        return {**super().get_tags(dbt_resource_props), "layer": schema}

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        # new raw rows (the landing-zone sensor's runs) flow through staging, identity and attribution
        return dg.AutomationCondition.eager()

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if spec.key.path[0] == "marts" and unique_id.startswith("model."):
            spec = spec.replace_attributes(freshness_policy=MARTS_FRESHNESS)
        return spec


def build_target_path(warehouse_path: Path | str) -> Path:
    """The dbt target folder of the pipeline's builds of one warehouse (relative to the dbt project): kept between
    runs, so dbt re-parses only what changed, and holding that warehouse's run_results.json."""
    return Path("target") / f"dbt_models-{hashlib.sha256(str(warehouse_path).encode()).hexdigest()[:12]}"


FORCE_TAG = "ttattr/force_dbt"
BUILD_STATE = """
create schema if not exists monitoring;
create table if not exists monitoring.dbt_build_state (
    selection varchar primary key, fingerprint varchar not null, built_at timestamp not null
);
-- the dbt project the selection was last built from (incremental models are rebuilt in full when it changes)
alter table monitoring.dbt_build_state add column if not exists project varchar;
-- the newest load the selection was built with: the next build's tests on loads check only the loads after it
alter table monitoring.dbt_build_state add column if not exists loaded_through timestamp;
-- when the selection's last successful build had finished (UTC): rows of keyed incremental models stamped later
-- (built_at) are the ones the next build's tests on built rows check
alter table monitoring.dbt_build_state add column if not exists built_through timestamp;
"""
# Read by the project's get_where_subquery for the tests on loads (`where: "loaded_at > __loads_after__"`) and on
# built rows (`where: "built_at > __built_after__"`) while a pipeline build runs; absent otherwise, so dbt by hand and
# `make test` check every row.
TESTS_SCOPE = "monitoring.dbt_tests_scope"
RAW_TABLES = ("stripe_events", "tracking_events", "tiktok_ad_stats")


def dbt_vars(tiktok: DeliverySettings) -> dict[str, str]:
    """The dbt vars that come from a setting written elsewhere: the calling code of the default phone region, so the
    warehouse reads national phone numbers as the TikTok payload builder does (TIKTOK_DEFAULT_PHONE_REGION)."""
    return {
        "default_phone_country_code": str(phonenumbers.country_code_for_region(tiktok.payload.default_phone_region))
    }


def _project_fingerprint(manifest: Mapping[str, Any], variables: Mapping[str, str]) -> str:
    """The dbt project as it shapes results: every model, seed and test (the manifest's file checksums), every
    macro (dbt's and adapters' too, so an upgrade counts), dbt_project.yml and the vars passed. Not the manifest's
    bytes, which change with every parse."""
    digest = hashlib.sha256((Path(dbt_project.project_dir) / "dbt_project.yml").read_bytes())
    digest.update(json.dumps(variables, sort_keys=True).encode())
    for key in sorted(manifest["nodes"]):
        digest.update(f"{key}={manifest['nodes'][key].get('checksum', {}).get('checksum')}".encode())
    for key in sorted(manifest["macros"]):
        digest.update(f"{key}={manifest['macros'][key].get('macro_sql', '')}".encode())
    return digest.hexdigest()


def _fingerprint(con, relations: list[tuple[str, str]], project: str) -> str | None:
    """What a build's result depends on: the raw tables' contents (rows and newest load) and the dbt project.
    None when a selected relation is missing."""
    existing = {
        (s, n) for s, n in con.execute("select table_schema, table_name from information_schema.tables").fetchall()
    }
    if not set(relations) <= existing:
        return None
    parts = [project]
    for table in RAW_TABLES:
        if ("raw", table) in existing:
            parts.append(str(con.execute(f"select count(*), max(_loaded_at) from raw.{table}").fetchall()[0]))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _loaded_through(con):
    """The newest load of the raw tables (the loaders' clock, as staging's loaded_at)."""
    tables = con.execute("select table_name from information_schema.tables where table_schema = 'raw'").fetchall()
    existing = {name for (name,) in tables}
    newest = [
        con.execute(f"select max(_loaded_at) from raw.{table}").fetchall()[0][0]
        for table in RAW_TABLES
        if table in existing
    ]
    return max((t for t in newest if t is not None), default=None)


@dbt_assets(manifest=prepare_manifest(), dagster_dbt_translator=Translator(), pool=WAREHOUSE_POOL, project=dbt_project)
def dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource, tiktok: TikTokResource
):
    # dbt reads the warehouse from the environment (profiles.yml: WAREHOUSE_PATH, or the `postgres` target and its
    # TTATTR_PG_* variables); the resource decides it.
    os.environ["WAREHOUSE_PATH"] = str(warehouse.resolved_path)
    postgres = warehouse.postgres
    if postgres is not None:
        os.environ.update(postgres.dbt_env())
    else:
        os.environ.pop("DBT_TARGET", None)
    # DUCKDB_COMPRESS_TEXT is read once, by ingestion/config.py; profiles.yml takes what it means
    os.environ["TTATTR_DISABLED_COMPRESSION_METHODS"] = config.disabled_compression_methods()
    keys = sorted(context.selected_asset_keys, key=lambda k: k.path)
    relations = [(k.path[0], k.path[-1]) for k in keys if k.path[0] != "reference"]
    selection = hashlib.sha256(json.dumps([k.path for k in keys]).encode()).hexdigest()
    manifest = json.loads(dbt_project.manifest_path.read_bytes())
    variables = dbt_vars(tiktok.settings())
    project = _project_fingerprint(manifest, variables)
    # views get no row count: counting one runs its query (the tracking views classify every page: 0.2-0.5 s of
    # every build on the 1M-event world, after dbt has finished)
    views = {
        (node["config"].get("schema") or "main", node["name"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("materialized") == "view"
    }
    with warehouse.connect() as con:
        con.execute(BUILD_STATE)
        before = _fingerprint(con, relations, project)
        built = con.execute(
            "select fingerprint, project, loaded_through, built_through from monitoring.dbt_build_state "
            "where selection = ?",
            [selection],
        ).fetchall()
    if before is not None and built and built[0][0] == before and context.run.tags.get(FORCE_TAG) != "true":
        # The fixed cost of a run with nothing new: no dbt build at all. Nothing is materialized, so the steps
        # downstream (the TikTok delivery) are skipped too; tag a run ttattr/force_dbt=true to build anyway.
        context.log.info(
            "no new raw data and no change to the dbt project since the last build of these models: dbt build skipped"
        )
        return
    # Incremental models take only what is new, as long as the project is the one they were built with; after any
    # change to it (a model, a seed, a macro, a var, a dbt upgrade), or with nothing built yet, all is rebuilt.
    full_refresh = not built or built[0][1] != project
    if full_refresh:
        context.log.info(
            "dbt build --full-refresh: "
            + ("first build of these models" if not built else "the dbt project changed since these models were built")
        )
    # One target folder per warehouse, kept between runs: dbt then re-parses only what changed (partial parsing;
    # a fresh folder per run, dagster-dbt's default, costs a full parse, 10 s here). Runs that build the same
    # warehouse never overlap (the warehouse pool), so they never share the folder at the same time.
    target = build_target_path(warehouse.identity)
    # Unit tests check the models' logic against fixed inputs, which a new load cannot change: they run in
    # `make test` and CI (`dbt build` there), not on every production build (dbt's own advice for unit tests).
    # Seeds are part of the project: loaded again only when it changed (a full refresh), not with each new load.
    skipped = ["unit_test"] if full_refresh else ["unit_test", "seed"]
    # Tests that would scan a whole table of loaded rows check the loads since the last build of these models (the
    # earlier ones were checked then), and tests on rows of keyed incremental models the rows built since it
    # succeeded (those of a build that failed since are checked again); a full refresh checks everything, as
    # `make test` does.
    with warehouse.connect() as con:
        con.execute(f"drop table if exists {TESTS_SCOPE}")
        if not full_refresh and (built[0][2] is not None or built[0][3] is not None):
            con.execute(
                f"create table {TESTS_SCOPE} as "
                "select cast(? as timestamp) as loads_after, cast(? as timestamp) as built_after",
                [built[0][2], built[0][3]],
            )
        loaded_through = _loaded_through(con)
    # dbt holds the DuckDB file for the build: recorded as the pipeline's, so a step that finds it locked waits
    held = (
        pipeline_use(warehouse.resolved_path, f"{DBT_BUILD} of run {context.run_id[:8]}")
        if postgres is None
        else nullcontext()
    )
    try:
        with held:
            events = list(
                dbt.cli(
                    ["build", "--vars", json.dumps(variables), "--exclude-resource-type", *skipped]
                    + (["--full-refresh"] if full_refresh else []),
                    context=context,
                    target_path=target,
                ).stream()
            )
    except BaseException as error:
        with warehouse.connect() as con:
            con.execute(f"drop table if exists {TESTS_SCOPE}")
        # dbt found the file locked, by a neighbour that has let go since (the connection above got it)
        busy = busy_build(error, warehouse.resolved_path) if isinstance(error, Exception) and not postgres else None
        if busy is not None:
            raise busy from None
        raise
    # Row counts for the UI, counted once dbt has let go of the file (dagster-dbt's fetch_row_counts would open
    # the warehouse inside this process with dbt's settings and lock out every later step's connection).
    with warehouse.connect() as con:
        con.execute(f"drop table if exists {TESTS_SCOPE}")
        for event in events:
            if isinstance(event, dg.Output) and event.output_name:
                key = context.asset_key_for_output(event.output_name)
                schema, name = key.path[0], key.path[-1]
                rows = None
                if (schema, name) not in views:
                    try:
                        rows = con.execute(f'select count(*) from "{schema}"."{name}"').fetchall()[0][0]
                    except Exception:  # not a relation (ephemeral, or a snapshot under another name)
                        rows = None
                if rows is not None:
                    event = event.with_metadata({**event.metadata, "dagster/row_count": rows})
            yield event
        # the build succeeded (a failing dbt build raises above): remember what it was built from
        after = _fingerprint(con, relations, project)
        if after is not None:
            con.execute(
                "insert into monitoring.dbt_build_state "
                "(selection, fingerprint, built_at, project, loaded_through, built_through) "
                "values (?, ?, now(), ?, ?, ?) on conflict (selection) do update set "
                "fingerprint = excluded.fingerprint, built_at = excluded.built_at, project = excluded.project, "
                "loaded_through = excluded.loaded_through, built_through = excluded.built_through",
                # dbt stamps rows with its start in UTC (macro build_stamp): the same clock, without a time zone
                [selection, after, project, loaded_through, datetime.now(UTC).replace(tzinfo=None)],
            )


defs = dg.Definitions(
    assets=[dbt_models], resources={"dbt": DbtCli(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)}
)
