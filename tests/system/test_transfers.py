"""Transfers: create, read, idempotent re-create, every ledger result code a single POST can
reach, balance limits at their exact boundary, u128 extremes and overflow (API contract
"Transfers"; pending-transfer codes are in test_pending.py, linked_event_failed in
test_batch.py)."""

import pytest

from .ledgerd_harness import (
    RFC3339_MS, TRANSFER_FIELDS, U128_MAX, U128_MAX_STR, UUIDV7, assert_json, assert_problem,
    balances, create_account, make_transfer, new_ledger, post_transfer, transfer_body, uid,
)


@pytest.fixture
def ledger():
    return new_ledger()


@pytest.fixture
def pair(client, ledger):
    """Two plain accounts on a fresh ledger."""
    return create_account(client, ledger)["id"], create_account(client, ledger)["id"]


def refused(client, body, code, status=422):
    before = {}
    for key in ("debit_account_id", "credit_account_id"):
        aid = body.get(key)
        if aid and client.get("/v1/accounts/" + aid).status == 200:
            before[aid] = balances(client, aid)
    r = post_transfer(client, body)
    assert_problem(r, status, code)
    for aid, bal in before.items():
        assert balances(client, aid) == bal, f"refused transfer moved {aid}"
    if "id" in body and code != "exists_with_different_fields":
        assert_problem(client.get("/v1/transfers/" + body["id"]), 404, "transfer_not_found")
    return r


def test_create_returns_201_with_representation_and_location(client, ledger, pair):
    dr, cr = pair
    tid = uid("tr")
    r = post_transfer(client, transfer_body(dr, cr, 150, ledger, code=12, id=tid,
                                            metadata={"order": "o-1"}))
    t = assert_json(r, 201)
    assert r.headers.get("location") == "/v1/transfers/" + tid
    assert set(t) == TRANSFER_FIELDS
    assert t["id"] == tid
    assert (t["debit_account_id"], t["credit_account_id"]) == (dr, cr)
    assert t["amount"] == "150"
    assert t["ledger"] == ledger
    assert t["code"] == 12
    assert t["flags"] == []
    assert t["pending_id"] is None
    assert t["timeout_seconds"] == 0
    assert t["metadata"] == {"order": "o-1"}
    assert t["pending_status"] is None
    assert RFC3339_MS.match(t["created_at"]), t
    assert balances(client, dr) == (0, 150, 0, 0)
    assert balances(client, cr) == (0, 0, 0, 150)


def test_get_returns_the_stored_transfer(client, ledger, pair):
    t = make_transfer(client, *pair, 5, ledger)
    assert UUIDV7.match(t["id"]), t
    assert assert_json(client.get("/v1/transfers/" + t["id"]), 200) == t


def test_get_unknown_transfer_is_404(client):
    assert_problem(client.get("/v1/transfers/" + uid("none")), 404, "transfer_not_found")


def test_same_id_same_fields_is_200_and_moves_nothing(client, ledger, pair):
    body = transfer_body(*pair, 40, ledger, id=uid("tr"))
    first = assert_json(post_transfer(client, body), 201)
    again = post_transfer(client, body)
    assert assert_json(again, 200) == first
    assert balances(client, pair[0]) == (0, 40, 0, 0)


def test_same_id_with_explicit_defaults_is_200(client, ledger, pair):
    body = transfer_body(*pair, 40, ledger, id=uid("tr"))
    first = assert_json(post_transfer(client, body), 201)
    body.update(flags=[], timeout_seconds=0)
    assert assert_json(post_transfer(client, body), 200) == first


@pytest.mark.parametrize("change", [
    {"amount": "41"}, {"code": 2}, {"metadata": {"a": 1}}, {"swap": True},
])
def test_same_id_different_fields_is_409(client, ledger, pair, change):
    body = transfer_body(*pair, 40, ledger, id=uid("tr"))
    first = assert_json(post_transfer(client, body), 201)
    changed = dict(body)
    if change.get("swap"):
        changed["debit_account_id"], changed["credit_account_id"] = pair[1], pair[0]
    else:
        changed.update(change)
    refused(client, changed, "exists_with_different_fields", status=409)
    assert client.get("/v1/transfers/" + body["id"]).json == first
    assert balances(client, pair[0]) == (0, 40, 0, 0)


def test_amount_zero_is_allowed(client, ledger, pair):
    t = make_transfer(client, *pair, 0, ledger)
    assert t["amount"] == "0"
    assert balances(client, pair[0]) == (0, 0, 0, 0)


# -- ledger result codes (422), one test each ----------------------------------------------------

def test_accounts_must_be_different(client, ledger, pair):
    refused(client, transfer_body(pair[0], pair[0], 1, ledger, id=uid("tr")),
            "accounts_must_be_different")


def test_debit_account_not_found(client, ledger, pair):
    refused(client, transfer_body(uid("none"), pair[1], 1, ledger, id=uid("tr")),
            "debit_account_not_found")


def test_credit_account_not_found(client, ledger, pair):
    refused(client, transfer_body(pair[0], uid("none"), 1, ledger, id=uid("tr")),
            "credit_account_not_found")


def test_ledger_mismatch_between_accounts(client, ledger):
    a = create_account(client, ledger)["id"]
    b = create_account(client, new_ledger())["id"]
    refused(client, transfer_body(a, b, 1, ledger, id=uid("tr")), "ledger_mismatch")


def test_ledger_mismatch_with_transfer_ledger(client, ledger, pair):
    refused(client, transfer_body(*pair, 1, new_ledger(), id=uid("tr")), "ledger_mismatch")


def test_exceeds_credits(client, ledger):
    limited = create_account(client, ledger, flags=["debits_must_not_exceed_credits"])["id"]
    other = create_account(client, ledger)["id"]
    refused(client, transfer_body(limited, other, 1, ledger, id=uid("tr")), "exceeds_credits")


def test_exceeds_debits(client, ledger):
    limited = create_account(client, ledger, flags=["credits_must_not_exceed_debits"])["id"]
    other = create_account(client, ledger)["id"]
    refused(client, transfer_body(other, limited, 1, ledger, id=uid("tr")), "exceeds_debits")


def test_pending_id_must_be_absent(client, ledger, pair):
    p = make_transfer(client, *pair, 5, ledger, flags=["pending"])
    refused(client, transfer_body(*pair, 1, ledger, id=uid("tr"), pending_id=p["id"]),
            "pending_id_must_be_absent")


def test_timeout_reserved_for_pending_transfer(client, ledger, pair):
    refused(client, transfer_body(*pair, 1, ledger, id=uid("tr"), timeout_seconds=5),
            "timeout_reserved_for_pending_transfer")


def test_single_linked_transfer_is_chain_open(client, ledger, pair):
    refused(client, transfer_body(*pair, 1, ledger, id=uid("tr"), flags=["linked"]),
            "linked_event_chain_open")


# -- balance limits at the exact boundary ----------------------------------------------------------

def test_debits_must_not_exceed_credits_boundary(client, ledger):
    limited = create_account(client, ledger, flags=["debits_must_not_exceed_credits"])["id"]
    other = create_account(client, ledger)["id"]
    make_transfer(client, other, limited, 100, ledger)
    refused(client, transfer_body(limited, other, 101, ledger, id=uid("tr")), "exceeds_credits")
    make_transfer(client, limited, other, 100, ledger)
    assert balances(client, limited) == (0, 100, 0, 100)
    refused(client, transfer_body(limited, other, 1, ledger, id=uid("tr")), "exceeds_credits")


def test_debits_limit_counts_pending_debits(client, ledger):
    limited = create_account(client, ledger, flags=["debits_must_not_exceed_credits"])["id"]
    other = create_account(client, ledger)["id"]
    make_transfer(client, other, limited, 100, ledger)
    make_transfer(client, limited, other, 60, ledger, flags=["pending"])
    refused(client, transfer_body(limited, other, 41, ledger, id=uid("tr")), "exceeds_credits")
    refused(client, transfer_body(limited, other, 41, ledger, id=uid("tr"), flags=["pending"]),
            "exceeds_credits")
    make_transfer(client, limited, other, 40, ledger)
    assert balances(client, limited) == (60, 40, 0, 100)


def test_credits_must_not_exceed_debits_boundary(client, ledger):
    limited = create_account(client, ledger, flags=["credits_must_not_exceed_debits"])["id"]
    other = create_account(client, ledger)["id"]
    make_transfer(client, limited, other, 70, ledger)
    refused(client, transfer_body(other, limited, 71, ledger, id=uid("tr")), "exceeds_debits")
    make_transfer(client, other, limited, 70, ledger)
    assert balances(client, limited) == (0, 70, 0, 70)
    refused(client, transfer_body(other, limited, 1, ledger, id=uid("tr")), "exceeds_debits")


def test_credits_limit_counts_pending_credits(client, ledger):
    limited = create_account(client, ledger, flags=["credits_must_not_exceed_debits"])["id"]
    other = create_account(client, ledger)["id"]
    make_transfer(client, limited, other, 10, ledger)
    make_transfer(client, other, limited, 10, ledger, flags=["pending"])
    refused(client, transfer_body(other, limited, 1, ledger, id=uid("tr")), "exceeds_debits")


# -- u128 extremes and overflow --------------------------------------------------------------------

def test_u128_max_amount(client, ledger, pair):
    t = make_transfer(client, *pair, U128_MAX_STR, ledger)
    assert t["amount"] == U128_MAX_STR
    a = client.get("/v1/accounts/" + pair[0]).json
    assert a["debits_posted"] == U128_MAX_STR
    assert client.get("/v1/accounts/" + pair[1]).json["credits_posted"] == U128_MAX_STR
    assert client.get("/v1/transfers/" + t["id"]).json["amount"] == U128_MAX_STR


def test_overflows_debits(client, ledger, pair):
    third = create_account(client, ledger)["id"]
    make_transfer(client, pair[0], pair[1], U128_MAX, ledger)
    refused(client, transfer_body(pair[0], third, 1, ledger, id=uid("tr")), "overflows_debits")
    assert balances(client, pair[0]) == (0, U128_MAX, 0, 0)


def test_overflows_debits_across_pending_and_posted(client, ledger, pair):
    third = create_account(client, ledger)["id"]
    make_transfer(client, pair[0], pair[1], U128_MAX - 5, ledger)
    refused(client, transfer_body(pair[0], third, 6, ledger, id=uid("tr"), flags=["pending"]),
            "overflows_debits")
    make_transfer(client, pair[0], third, 5, ledger, flags=["pending"])
    assert balances(client, pair[0]) == (5, U128_MAX - 5, 0, 0)


def test_overflows_credits(client, ledger, pair):
    third = create_account(client, ledger)["id"]
    make_transfer(client, pair[0], pair[1], U128_MAX, ledger)
    refused(client, transfer_body(third, pair[1], 1, ledger, id=uid("tr")), "overflows_credits")
    assert balances(client, pair[1]) == (0, 0, 0, U128_MAX)


def test_overflows_credits_across_pending_and_posted(client, ledger, pair):
    third = create_account(client, ledger)["id"]
    make_transfer(client, pair[0], pair[1], U128_MAX - 5, ledger)
    refused(client, transfer_body(third, pair[1], 6, ledger, id=uid("tr"), flags=["pending"]),
            "overflows_credits")


def test_sum_to_exactly_u128_max_is_allowed(client, ledger, pair):
    make_transfer(client, *pair, U128_MAX - 1, ledger)
    make_transfer(client, *pair, 1, ledger)
    assert balances(client, pair[0]) == (0, U128_MAX, 0, 0)


# -- validation (400) ------------------------------------------------------------------------------

@pytest.mark.parametrize("amount", [
    "", "-1", "+1", "01", "00", "1e3", "1.0", " 1", "1 ", "0x10", "1_000", "١",
    "340282366920938463463374607431768211456", "9" * 40, "9" * 400,
    100, 0, 1.5, -1, True, ["1"], {"v": "1"},
])
def test_amount_invalid(client, ledger, pair, amount):
    body = transfer_body(*pair, 1, ledger)
    body["amount"] = amount
    assert_problem(post_transfer(client, body), 400, "amount_invalid", field="amount")


@pytest.mark.parametrize("missing", ["debit_account_id", "credit_account_id", "amount",
                                     "ledger", "code"])
def test_required_fields(client, ledger, pair, missing):
    body = transfer_body(*pair, 1, ledger)
    del body[missing]
    assert_problem(post_transfer(client, body), 400, "field_required", field=missing)


@pytest.mark.parametrize("field", ["debit_account_id", "credit_account_id", "id",
                                   "pending_id"])
def test_account_and_transfer_ids_validated(client, ledger, pair, field):
    body = transfer_body(*pair, 1, ledger)
    body[field] = "bad id"
    assert_problem(post_transfer(client, body), 400, "id_invalid", field=field)


@pytest.mark.parametrize("timeout", [-1, 4294967296, 1.5, "5", True])
def test_timeout_invalid(client, ledger, pair, timeout):
    body = transfer_body(*pair, 1, ledger, flags=["pending"], timeout_seconds=timeout)
    assert_problem(post_transfer(client, body), 400, "timeout_invalid",
                   field="timeout_seconds")


def test_null_amount_reads_as_absent(client, ledger, pair):
    body = transfer_body(*pair, 1, ledger)
    body["amount"] = None
    r = post_transfer(client, body)
    assert r.status == 400, r
    assert r.json["code"] in ("field_required", "amount_invalid"), r
    assert_problem(r, 400, r.json["code"], field="amount")


def test_null_timeout_reads_as_absent(client, ledger, pair):
    body = transfer_body(*pair, 1, ledger, flags=["pending"], timeout_seconds=None)
    r = post_transfer(client, body)
    if r.status == 201:
        assert r.json["timeout_seconds"] == 0
    else:
        assert_problem(r, 400, "timeout_invalid", field="timeout_seconds")


def test_timeout_max_accepted(client, ledger, pair):
    t = make_transfer(client, *pair, 1, ledger, flags=["pending"], timeout_seconds=4294967295)
    assert t["timeout_seconds"] == 4294967295
    assert t["pending_status"] == "pending"


@pytest.mark.parametrize("flags", [["bogus"], "pending", [7], ["pending", "pending"],
                                   ["debits_must_not_exceed_credits"]])
def test_transfer_flags_invalid(client, ledger, pair, flags):
    body = transfer_body(*pair, 1, ledger, flags=flags)
    assert_problem(post_transfer(client, body), 400, "flag_invalid", field="flags[]")


@pytest.mark.parametrize("flags", [["pending", "post_pending"], ["pending", "void_pending"],
                                   ["post_pending", "void_pending"]])
def test_transfer_flags_mutually_exclusive(client, ledger, pair, flags):
    body = transfer_body(*pair, 1, ledger, flags=flags, pending_id=uid("p"))
    assert_problem(post_transfer(client, body), 400, "flags_are_mutually_exclusive",
                   field="flags")


def test_transfer_unknown_field(client, ledger, pair):
    body = transfer_body(*pair, 1, ledger, memo="x")
    assert_problem(post_transfer(client, body), 400, "unknown_field", field="memo")


def test_transfer_code_invalid(client, ledger, pair):
    assert_problem(post_transfer(client, transfer_body(*pair, 1, ledger, code=70000)), 400,
                   "code_invalid", field="code")


def test_transfer_ledger_invalid(client, pair):
    assert_problem(post_transfer(client, transfer_body(*pair, 1, "usd")), 400,
                   "ledger_invalid", field="ledger")


def test_transfer_metadata_invalid(client, ledger, pair):
    assert_problem(post_transfer(client, transfer_body(*pair, 1, ledger, metadata=[1])), 400,
                   "metadata_invalid", field="metadata")


def test_validation_failure_moves_nothing(client, ledger, pair):
    tid = uid("tr")
    body = transfer_body(*pair, "x", ledger, id=tid)
    assert post_transfer(client, body).status == 400
    assert balances(client, pair[0]) == (0, 0, 0, 0)
    assert client.get("/v1/transfers/" + tid).status == 404
