"""POST /v1/transfers/batch: size limits, per-item results in order, linked chains, whole-batch
validation (API contract "Transfers" and conventions "Batches")."""

import pytest

from .ledgerd_harness import (
    assert_json, assert_problem, balances, create_account, make_transfer, new_ledger,
    transfer_body, uid,
)

BATCH_MAX = 8190


@pytest.fixture
def ledger():
    return new_ledger()


@pytest.fixture
def accts(client, ledger):
    return [create_account(client, ledger)["id"] for _ in range(3)]


def batch(client, items, headers=None, timeout=None):
    return client.post("/v1/transfers/batch", {"transfers": items}, headers=headers,
                       timeout=timeout)


def results_of(r, n):
    body = assert_json(r, 200)
    assert set(body) == {"results"}, r
    res = body["results"]
    assert len(res) == n, r
    for i, item in enumerate(res):
        assert set(item) == {"index", "id", "result"}, item
        assert item["index"] == i, item
    return res


def test_full_batch_of_8190_all_created_in_order(client, ledger, accts):
    a, b, _ = accts
    ids = [f"b{i}-{uid('x')[2:14]}" for i in range(BATCH_MAX)]
    items = [transfer_body(a, b, 1, ledger, id=ids[i]) for i in range(BATCH_MAX)]
    r = batch(client, items, timeout=120)
    res = results_of(r, BATCH_MAX)
    assert [x["id"] for x in res] == ids
    failed = [x for x in res if x["result"] != "created"]
    assert not failed, failed[:5]
    assert balances(client, a) == (0, BATCH_MAX, 0, 0)
    assert balances(client, b) == (0, 0, 0, BATCH_MAX)
    for i in (0, 4095, BATCH_MAX - 1):
        assert client.get("/v1/transfers/" + ids[i]).status == 200


def test_generated_ids_reported_per_item(client, ledger, accts):
    a, b, _ = accts
    res = results_of(batch(client, [transfer_body(a, b, 2, ledger) for _ in range(5)]), 5)
    assert len({x["id"] for x in res}) == 5
    for x in res:
        assert x["result"] == "created"
        t = assert_json(client.get("/v1/transfers/" + x["id"]), 200)
        assert t["amount"] == "2"


def test_mixed_results_and_200_even_if_all_fail(client, ledger, accts):
    a, b, _ = accts
    existing = make_transfer(client, a, b, 5, ledger, id=uid("tr"))
    items = [
        transfer_body(a, b, 5, ledger, id=existing["id"]),                 # exists
        transfer_body(a, b, 6, ledger, id=existing["id"]),                 # different fields
        transfer_body(a, a, 1, ledger, id=uid("tr")),                      # same accounts
        transfer_body(uid("none"), b, 1, ledger, id=uid("tr")),            # no debit account
        transfer_body(a, b, 3, ledger, id=uid("tr")),                      # created
    ]
    res = results_of(batch(client, items), 5)
    assert [x["result"] for x in res] == [
        "exists", "exists_with_different_fields", "accounts_must_be_different",
        "debit_account_not_found", "created"]
    assert balances(client, a) == (0, 8, 0, 0)
    res = results_of(batch(client, items[1:4]), 3)
    assert all(x["result"] != "created" for x in res)


def test_items_apply_in_order_within_a_batch(client, ledger, accts):
    a, b, _ = accts
    pid = uid("p")
    items = [
        transfer_body(a, b, 50, ledger, id=pid, flags=["pending"]),
        {"id": uid("tr"), "pending_id": pid, "flags": ["post_pending"], "amount": "20"},
        {"id": uid("tr"), "pending_id": pid, "flags": ["void_pending"]},
    ]
    res = results_of(batch(client, items), 3)
    assert [x["result"] for x in res] == ["created", "created",
                                          "pending_transfer_already_posted"]
    assert balances(client, a) == (0, 20, 0, 0)


def test_duplicate_id_within_batch_is_exists(client, ledger, accts):
    a, b, _ = accts
    tid = uid("tr")
    items = [transfer_body(a, b, 4, ledger, id=tid), transfer_body(a, b, 4, ledger, id=tid)]
    res = results_of(batch(client, items), 2)
    assert [x["result"] for x in res] == ["created", "exists"]
    assert balances(client, a) == (0, 4, 0, 0)


def test_linked_chain_failing_in_the_middle(client, ledger, accts):
    a, b, c = accts
    ids = [uid("tr") for _ in range(6)]
    items = [
        transfer_body(a, b, 1, ledger, id=ids[0]),
        transfer_body(a, b, 10, ledger, id=ids[1], flags=["linked"]),
        transfer_body(b, c, 10, ledger, id=ids[2], flags=["linked"]),
        transfer_body(uid("none"), c, 10, ledger, id=ids[3], flags=["linked"]),
        transfer_body(c, a, 10, ledger, id=ids[4]),
        transfer_body(a, c, 2, ledger, id=ids[5]),
    ]
    res = results_of(batch(client, items), 6)
    assert [x["result"] for x in res] == [
        "created", "linked_event_failed", "linked_event_failed", "debit_account_not_found",
        "linked_event_failed", "created"]
    assert [x["id"] for x in res] == ids
    assert balances(client, a) == (0, 3, 0, 0)
    assert balances(client, b) == (0, 0, 0, 1)
    assert balances(client, c) == (0, 0, 0, 2)
    for i in (1, 2, 3, 4):
        assert_problem(client.get("/v1/transfers/" + ids[i]), 404, "transfer_not_found")


def test_linked_chain_failing_on_balance_limit_rolls_back_earlier_items(client, ledger):
    limited = create_account(client, ledger, flags=["debits_must_not_exceed_credits"])["id"]
    other = create_account(client, ledger)["id"]
    items = [
        transfer_body(other, limited, 10, ledger, id=uid("tr"), flags=["linked"]),
        transfer_body(limited, other, 10, ledger, id=uid("tr"), flags=["linked"]),
        transfer_body(limited, other, 1, ledger, id=uid("tr")),
    ]
    res = results_of(batch(client, items), 3)
    assert [x["result"] for x in res] == ["linked_event_failed", "linked_event_failed",
                                          "exceeds_credits"]
    assert balances(client, limited) == (0, 0, 0, 0)


def test_linked_chain_succeeds_whole(client, ledger, accts):
    a, b, c = accts
    items = [
        transfer_body(a, b, 5, ledger, id=uid("tr"), flags=["linked"]),
        transfer_body(b, c, 5, ledger, id=uid("tr"), flags=["linked", "pending"]),
        transfer_body(c, a, 5, ledger, id=uid("tr")),
    ]
    res = results_of(batch(client, items), 3)
    assert [x["result"] for x in res] == ["created"] * 3
    assert balances(client, b) == (5, 0, 0, 5)
    t = client.get("/v1/transfers/" + items[1]["id"]).json
    assert t["flags"] == ["linked", "pending"]


def test_flags_rendered_in_canonical_order(client, ledger, accts):
    a, b, _ = accts
    items = [transfer_body(a, b, 1, ledger, id=uid("tr"), flags=["pending", "linked"]),
             transfer_body(a, b, 1, ledger, id=uid("tr"))]
    assert [x["result"] for x in results_of(batch(client, items), 2)] == ["created"] * 2
    assert client.get("/v1/transfers/" + items[0]["id"]).json["flags"] == ["linked", "pending"]


def test_chain_open_at_end(client, ledger, accts):
    a, b, _ = accts
    items = [
        transfer_body(a, b, 1, ledger, id=uid("tr")),
        transfer_body(a, b, 2, ledger, id=uid("tr"), flags=["linked"]),
        transfer_body(a, b, 3, ledger, id=uid("tr"), flags=["linked"]),
    ]
    res = results_of(batch(client, items), 3)
    assert [x["result"] for x in res] == ["created", "linked_event_chain_open",
                                          "linked_event_chain_open"]
    assert balances(client, a) == (0, 1, 0, 0)
    assert client.get("/v1/transfers/" + items[1]["id"]).status == 404


def test_single_linked_item_is_chain_open(client, ledger, accts):
    a, b, _ = accts
    res = results_of(batch(client, [transfer_body(a, b, 1, ledger, flags=["linked"])]), 1)
    assert res[0]["result"] == "linked_event_chain_open"
    assert balances(client, a) == (0, 0, 0, 0)


@pytest.mark.parametrize("count", [0, BATCH_MAX + 1])
def test_batch_size_invalid(client, ledger, accts, count):
    a, b, _ = accts
    r = batch(client, [transfer_body(a, b, 1, ledger) for _ in range(count)], timeout=60)
    assert_problem(r, 400, "batch_size_invalid", field="transfers")
    assert balances(client, a) == (0, 0, 0, 0)


def test_transfers_member_required(client):
    assert_problem(client.post("/v1/transfers/batch", {}), 400, "field_required",
                   field="transfers")


def test_transfers_must_be_an_array(client):
    assert_problem(client.post("/v1/transfers/batch", {"transfers": {}}), 400,
                   "field_invalid", field="transfers")


def test_batch_unknown_top_level_field(client, ledger, accts):
    a, b, _ = accts
    r = client.post("/v1/transfers/batch",
                    {"transfers": [transfer_body(a, b, 1, ledger)], "mode": "x"})
    assert_problem(r, 400, "unknown_field", field="mode")


@pytest.mark.parametrize("position", [0, 500, 999])
def test_validation_error_anywhere_rejects_whole_batch(client, ledger, accts, position):
    a, b, _ = accts
    items = [transfer_body(a, b, 1, ledger, id=uid("tr")) for _ in range(1000)]
    items[position]["amount"] = "12x"
    r = batch(client, items)
    p = assert_problem(r, 400, "amount_invalid", field=f"transfers[{position}].amount")
    assert p["errors"][0]["field"] == f"transfers[{position}].amount"
    assert balances(client, a) == (0, 0, 0, 0)
    for i in (0, position, 999):
        assert client.get("/v1/transfers/" + items[i]["id"]).status == 404


def test_every_invalid_item_listed_with_its_path(client, ledger, accts):
    a, b, _ = accts
    items = [transfer_body(a, b, 1, ledger) for _ in range(4)]
    items[1]["ledger"] = "bad"
    items[3]["surprise"] = 1
    del items[2]["code"]
    p = assert_problem(batch(client, items), 400, "ledger_invalid",
                       field="transfers[1].ledger")
    fields = {(e["field"], e["code"]) for e in p["errors"]}
    assert ("transfers[2].code", "field_required") in fields, p
    assert ("transfers[3].surprise", "unknown_field") in fields, p
    assert balances(client, a) == (0, 0, 0, 0)


def test_batch_accepts_bodies_over_the_single_request_limit(client, ledger, accts):
    a, b, _ = accts
    meta = {"pad": "m" * 3000}
    items = [transfer_body(a, b, 1, ledger, metadata=meta) for _ in range(400)]
    res = results_of(batch(client, items, timeout=60), 400)
    assert all(x["result"] == "created" for x in res)
