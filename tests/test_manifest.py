"""The dbt manifest that every process of the code location loads at import (dagster-dbt reads it to define the
assets) is parsed again when the project changed, by whichever process imports first: `make test`'s workers, the
daemon and the webserver all do at once after an edit. A reader must never find it half-written."""

import json
import subprocess
import sys
import time

from orchestration.defs.dbt import dbt_project

PARSE = "from orchestration.defs.dbt import prepare_manifest; prepare_manifest(force=True)"


def test_a_manifest_parsed_by_two_processes_at_once_is_never_read_half_written():
    manifest = dbt_project.manifest_path
    parsers = [subprocess.Popen([sys.executable, "-c", PARSE]) for _ in range(2)]
    reads, broken = 0, []
    while any(p.poll() is None for p in parsers):
        try:
            json.loads(manifest.read_bytes())
        except FileNotFoundError:
            broken.append("missing")
        except ValueError as e:
            broken.append(str(e)[:80])
        reads += 1
        time.sleep(0.005)
    assert all(p.returncode == 0 for p in parsers)
    assert reads > 50 and not broken, (reads, broken[:3])
    assert not list(manifest.parent.glob(".parse-*")), "no private parse folder left behind"
