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
    """Step 0: 21 customers share an email, another has a phone, a third is a bystander; step 1: one of the 21
    changes their email, the one with a phone removes it."""
    events = [
        [("customer.created", _customer(c, SHARED, None), NOW) for c in SHARING]
        + [("customer.created", _customer("cus_a", "ana@shopmail.co", "+14155550100"), NOW)]
        + [("customer.created", _customer("cus_z", "zoe@shopmail.co", None), NOW)],  # a bystander
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
    edges that no new data names, changed by the degree of their other end. The table equals a full rebuild, and the
    incremental stitch, which takes the change from the edges' stamps and the pairs they deleted, stitches what a
    full one stitches."""

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
    workspace.dbt("build", "--select", "+int_identity_components")
    before = edges()
    assert before[("stripe_customer:cus_s00", f"email:{SHARED}")][:2] == (False, "shared_email: 21 stripe customers")
    assert before[("stripe_customer:cus_a", "phone:+14155550100")][0]

    land_step(workspace, 1)
    out = workspace.dbt("build", "--select", "+int_identity_components")
    assert "ERROR=0" in out
    after = edges()
    assert ("stripe_customer:cus_s00", f"email:{SHARED}") not in after
    assert after[("stripe_customer:cus_s00", "email:own@shopmail.co")][0]
    assert ("stripe_customer:cus_a", "phone:+14155550100") not in after
    assert {after[(c, f"email:{SHARED}")][:2] for c in (f"stripe_customer:{c}" for c in SHARING[1:])} == {(True, None)}
    # the stitch took the change in from the edges' stamps and the pairs they deleted: the phone is nobody's, the
    # customer who left the shared email is a customer of their own, the other 20 are one
    customers = dict(workspace.query("select node, customer_id from intermediate.int_identity_components"))
    assert "phone:+14155550100" not in customers
    shared = customers[f"email:{SHARED}"]
    assert {customers[f"stripe_customer:{c}"] == shared for c in SHARING[1:]} == {True}
    assert customers["stripe_customer:cus_s00"] != shared
    assert customers["stripe_customer:cus_s00"] == customers["email:own@shopmail.co"]
    assert workspace.query("select count(*) from monitoring.identity_edges_gone") == [(0,)]
    incremental, stitched = table(), _partition(customers)
    workspace.dbt("run", "--full-refresh", "--select", "int_identity_edges int_identity_components")
    assert table() == incremental
    assert _partition(dict(workspace.query("select node, customer_id from intermediate.int_identity_components"))) == (
        stitched
    )


def _partition(customers: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for node, customer_id in customers.items():
        groups.setdefault(customer_id, set()).add(node)
    return {frozenset(g) for g in groups.values()}
