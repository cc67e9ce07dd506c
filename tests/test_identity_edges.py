"""The identity edges built incrementally: what a newer Stripe state takes away, and what that does to the
refusals of the identifiers at the other end, equal a full rebuild."""

from __future__ import annotations

import json
import time

from simulator import stripe_objects as so

V = so.NEW_API_VERSION
NOW = int(time.time()) - 7200
SHARED = "shared@shopmail.co"


def _customer(cus_id: str, email: str, phone: str | None, at: int = NOW) -> dict:
    return so.customer(
        cus_id=cus_id, created=at, email=email, name="Ana Silva", phone=phone, country="US", api_version=V
    )


SHARING = [f"cus_s{i:02d}" for i in range(21)]


def land_step(workspace, step: int) -> None:
    """Step 0: 21 customers share an email, another has a phone; step 1: one of the 21 changes their email, the
    other removes their phone."""
    events = [
        [("customer.created", _customer(c, SHARED, None), NOW) for c in SHARING]
        + [("customer.created", _customer("cus_a", "ana@shopmail.co", "+14155550100"), NOW)],
        [
            ("customer.updated", _customer("cus_s00", "own@shopmail.co", None, NOW), NOW + 600),
            ("customer.updated", _customer("cus_a", "ana@shopmail.co", None, NOW), NOW + 600),
        ],
    ][step]
    lines = [json.dumps(so.event(f"evt_step{step}_{i}", kind, at, obj, V)) for i, (kind, obj, at) in enumerate(events)]
    folder = workspace.landing / "stripe_events"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"step{step}.jsonl").write_text("\n".join(lines) + "\n")


def test_edges_that_a_newer_stripe_state_takes_away_are_gone_and_their_ends_decided_again(workspace):
    """21 Stripe customers share one email: one more than max_customers_per_email, so none of those edges merges
    anybody. Then one of them changes their email, and another removes their phone. The incremental build drops
    the two edges no state shows any more, and the shared email, now at the cap, merges its 20 customers again:
    edges that no new data names, changed by the degree of their other end. The table equals a full rebuild."""

    def edges() -> dict[tuple[str, str], tuple]:
        return {
            (r[0], r[1]): r[2:]
            for r in workspace.query(
                "select left_node, right_node, is_used, unused_reason, times_seen from intermediate.int_identity_edges"
            )
        }

    def table() -> set[tuple]:
        return set(workspace.query("select * exclude (built_at) from intermediate.int_identity_edges"))

    land_step(workspace, 0)
    workspace.dbt("build", "--select", "+int_identity_edges")
    before = edges()
    assert before[("stripe_customer:cus_s00", f"email:{SHARED}")][:2] == (False, "shared_email: 21 stripe customers")
    assert before[("stripe_customer:cus_a", "phone:+14155550100")][0]

    land_step(workspace, 1)
    out = workspace.dbt("build", "--select", "+int_identity_edges")
    assert "ERROR=0" in out
    after = edges()
    assert ("stripe_customer:cus_s00", f"email:{SHARED}") not in after
    assert after[("stripe_customer:cus_s00", "email:own@shopmail.co")][0]
    assert ("stripe_customer:cus_a", "phone:+14155550100") not in after
    assert {after[(c, f"email:{SHARED}")][:2] for c in (f"stripe_customer:{c}" for c in SHARING[1:])} == {(True, None)}
    # only the customers' own edges and those of the shared email were written again
    incremental = table()
    workspace.dbt("run", "--full-refresh", "--select", "int_identity_edges")
    assert table() == incremental
