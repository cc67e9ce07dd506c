"""Ids analysts can keep: a customer's id stays across runs; a merge keeps the surviving id and records the absorbed
one in marts.customer_id_aliases; a split gives the part that leaves a new id, recorded there too."""

import pytest

from ingestion.landing import write_jsonl_atomic

pytestmark = pytest.mark.slow


def identify(message_id, browser, at, user_id=None, email=None):
    return {
        "messageId": message_id,
        "type": "identify",
        "anonymousId": browser,
        "userId": user_id,
        "timestamp": at,
        "traits": {"email": email} if email else {},
    }


def test_customer_ids_stay_across_runs_through_a_merge_and_a_split(workspace):
    workspace.add_world(visitors=120, seed=81)
    workspace.dbt("build", "--exclude-resource-type", "unit_test")
    ids = """
        select customer_id from intermediate.int_identity_components where node = ? """
    buyers = workspace.query("""
        with buyers as (
            select p.customer_id, min(e.node_value) filter (where e.node_type = 'email') as email,
                   count(*) filter (where e.node_type <> 'browser') as others
            from marts.attributed_purchases p join intermediate.int_identity_components e using (customer_id)
            group by p.customer_id having email is not null and others >= 2
        )
        select customer_id, email from buyers order by customer_id limit 2""")
    (a_id, a_email), (b_id, b_email) = buyers
    # C: a buyer with a browser that only its own claims link (no Checkout, no server key): a shared-device
    # signal drops every edge of it
    c_id, c_browser, c_email = workspace.query(
        """
        select c.customer_id, c.node_value,
               (select min(node_value) from intermediate.int_identity_components x
                where x.customer_id = c.customer_id and x.node_type = 'email')
        from intermediate.int_identity_components c
        where c.node_type = 'browser' and c.component_size >= 4
          and c.customer_id in (select customer_id from marts.attributed_purchases)
          and c.customer_id not in (?, ?)
          and not exists (select 1 from intermediate.int_identity_edges e
                          where e.is_used and e.is_verified and c.node in (e.left_node, e.right_node))
          and exists (select 1 from intermediate.int_identity_edges e
                      where e.is_used and c.node in (e.left_node, e.right_node))
        order by c.node limit 1""",
        [a_id, b_id],
    )[0]
    before = dict(workspace.query("select node, customer_id from intermediate.int_identity_components"))

    # one site account signs in with A's and B's emails: A and B are one person; and C's browser reveals a
    # second email (a shared device: its edges are dropped, it leaves C)
    write_jsonl_atomic(
        workspace.landing / "tracking" / "later" / "ids.jsonl",
        [
            identify("m-merge-a", "b-merge-1", "2026-11-30T10:00:00Z", user_id="u-merge", email=a_email),
            identify("m-merge-b", "b-merge-2", "2026-11-30T10:05:00Z", user_id="u-merge", email=b_email),
            identify("m-split", c_browser, "2026-11-30T10:10:00Z", email="second.person@fastmail.com"),
        ],
    )
    workspace.dbt("build", "--exclude-resource-type", "unit_test")
    merged = workspace.scalar(ids, [f"email:{a_email}"])
    assert merged == workspace.scalar(ids, [f"email:{b_email}"]), "A and B are one customer now"
    survivor, absorbed = sorted([a_id, b_id])  # given in the same build: the smaller id is the older one
    assert merged == survivor, "a merge keeps a surviving id, never a new one"
    assert workspace.scalar(ids, [f"browser:{c_browser}"]) not in (c_id, None), "the browser left C: a new id"
    assert workspace.scalar(ids, [f"email:{c_email}"]) == c_id, "C keeps its id"
    aliases = set(workspace.query("select old_customer_id, customer_id, why from marts.customer_id_aliases"))
    assert (absorbed, survivor, "merged") in aliases
    assert (c_id, workspace.scalar(ids, [f"browser:{c_browser}"]), "split") in aliases
    # every other identifier kept its id, and the marts use the kept ids
    after = dict(workspace.query("select node, customer_id from intermediate.int_identity_components"))
    moved = {n for n in before if after.get(n) != before[n]}
    absorbed_nodes = {n for n, c in before.items() if c == absorbed}
    left_c = {n for n, c in before.items() if c == c_id and after[n] != c_id}
    assert f"browser:{c_browser}" in left_c
    assert moved == absorbed_nodes | left_c, "nothing else changed id"
    assert not {after[n] for n in left_c} & set(before.values()), "the parts that left C have new ids"
    assert {(c_id, after[n], "split") for n in left_c} <= aliases
    assert workspace.scalar("select count(*) from marts.attributed_purchases where customer_id = ?", [absorbed]) == 0

    # a full rebuild (a dbt project change) keeps them: the registry is not a model
    workspace.dbt("build", "--full-refresh", "--exclude-resource-type", "unit_test")
    assert dict(workspace.query("select node, customer_id from intermediate.int_identity_components")) == after
    assert set(workspace.query("select old_customer_id, customer_id, why from marts.customer_id_aliases")) == aliases
