"""A snapshot of the asset graph: every asset's key, group, owners, kinds, dependencies and checks, and every job
and sensor. A change to the graph is then a visible diff in review, not a surprise in the UI.

After an intended change: `UPDATE_SNAPSHOTS=1 make test PYTEST_ARGS=tests/test_asset_graph.py`, and commit the file.
"""

import json
import os
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("snapshots") / "asset_graph.json"


def _graph(defs) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.path):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "owners": sorted(node.owners),
            "kinds": sorted(node.kinds),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
            "automation": type(node.automation_condition).__name__ if node.automation_condition else None,
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "sensors": sorted(s.name for s in defs.sensors or []),
        "schedules": sorted(s.name for s in defs.schedules or []),
    }


def test_the_asset_graph_is_as_reviewed(workspace):
    graph = _graph(workspace.defs())
    assert SNAPSHOT.exists() or not os.environ.get("CI"), f"{SNAPSHOT} is not committed"
    if os.environ.get("UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(graph, indent=1, sort_keys=True) + "\n")
    assert graph == json.loads(SNAPSHOT.read_text()), f"the asset graph changed: see {SNAPSHOT} (UPDATE_SNAPSHOTS=1)"
