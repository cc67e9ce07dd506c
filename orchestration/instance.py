"""The Dagster instance for headless runs: $DAGSTER_HOME (default ./data/dagster_home), made absolute, and given
the embedded dagster.yaml (pool limits) when it has none of its own."""

import fcntl
import os
import shutil
from pathlib import Path

import dagster as dg

EMBEDDED_CONFIG = Path(__file__).with_name("dagster.yaml")


def prepare_dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or "./data/dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(EMBEDDED_CONFIG, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance() -> dg.DagsterInstance:
    home = prepare_dagster_home()
    # Two runs started at once on a new home would both create the SQLite storage's tables and one would fail
    # ("table runs already exists"): the first to open the instance creates them while the other waits.
    with open(home / ".instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return dg.DagsterInstance.get()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
