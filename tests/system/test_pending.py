"""Two-phase transfers: pending -> post (full or partial) / void / expire, each resolving at most
once, and the result codes of post/void requests (API contract "Transfers" and conventions
"Accounts and transfers")."""

import time

import pytest

from .ledgerd_harness import (
    assert_json, assert_problem, assert_ledgers_balanced, balances, create_account,
    make_transfer, new_ledger, post_transfer, slow_factor, transfer_body, uid,
)


@pytest.fixture
def ledger():
    return new_ledger()


@pytest.fixture
def pair(client, ledger):
    return create_account(client, ledger)["id"], create_account(client, ledger)["id"]


def pending(client, pair, ledger, amount=100, **kw):
    t = make_transfer(client, *pair, amount, ledger, flags=["pending"], **kw)
    assert t["pending_status"] == "pending"
    return t


def resolve(client, pending_id, flag, **kw):
    body = {"id": uid("tr"), "pending_id": pending_id, "flags": [flag]}
    body.update(kw)
    return post_transfer(client, body)


def status_of(client, tid):
    return assert_json(client.get("/v1/transfers/" + tid), 200)["pending_status"]


def test_pending_moves_pending_balances(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    assert p["flags"] == ["pending"]
    assert balances(client, pair[0]) == (100, 0, 0, 0)
    assert balances(client, pair[1]) == (0, 0, 100, 0)
    assert status_of(client, p["id"]) == "pending"


def test_post_full_amount_when_amount_omitted(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    r = resolve(client, p["id"], "post_pending")
    t = assert_json(r, 201)
    assert t["flags"] == ["post_pending"]
    assert t["pending_id"] == p["id"]
    assert t["amount"] == "100"
    assert (t["debit_account_id"], t["credit_account_id"]) == pair
    assert t["ledger"] == ledger
    assert t["code"] == p["code"]
    assert t["pending_status"] is None
    assert balances(client, pair[0]) == (0, 100, 0, 0)
    assert balances(client, pair[1]) == (0, 0, 0, 100)
    assert status_of(client, p["id"]) == "posted"


def test_post_with_all_fields_matching(client, ledger, pair):
    p = pending(client, pair, ledger, 100, code=5)
    r = post_transfer(client, transfer_body(*pair, 100, ledger, code=5, id=uid("tr"),
                                            flags=["post_pending"], pending_id=p["id"]))
    assert_json(r, 201)
    assert balances(client, pair[0]) == (0, 100, 0, 0)


def test_post_partial_amount_releases_the_rest(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    t = assert_json(resolve(client, p["id"], "post_pending", amount="60"), 201)
    assert t["amount"] == "60"
    assert balances(client, pair[0]) == (0, 60, 0, 0)
    assert balances(client, pair[1]) == (0, 0, 0, 60)
    assert status_of(client, p["id"]) == "posted"


def test_post_amount_zero_releases_everything(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    assert_json(resolve(client, p["id"], "post_pending", amount="0"), 201)
    assert balances(client, pair[0]) == (0, 0, 0, 0)


def test_void_releases(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    t = assert_json(resolve(client, p["id"], "void_pending"), 201)
    assert t["flags"] == ["void_pending"]
    assert t["pending_id"] == p["id"]
    assert balances(client, pair[0]) == (0, 0, 0, 0)
    assert balances(client, pair[1]) == (0, 0, 0, 0)
    assert status_of(client, p["id"]) == "voided"


def test_void_with_equal_amount(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    assert_json(resolve(client, p["id"], "void_pending", amount="100"), 201)


def test_void_with_different_amount(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    assert_problem(resolve(client, p["id"], "void_pending", amount="99"), 422,
                   "pending_transfer_has_different_amount")
    assert status_of(client, p["id"]) == "pending"


def test_exceeds_pending_transfer_amount(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    assert_problem(resolve(client, p["id"], "post_pending", amount="101"), 422,
                   "exceeds_pending_transfer_amount")
    assert balances(client, pair[0]) == (100, 0, 0, 0)
    assert status_of(client, p["id"]) == "pending"


def test_double_post_is_already_posted(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    assert_json(resolve(client, p["id"], "post_pending"), 201)
    assert_problem(resolve(client, p["id"], "post_pending"), 422,
                   "pending_transfer_already_posted")
    assert balances(client, pair[0]) == (0, 100, 0, 0)


def test_void_after_post_is_already_posted(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    assert_json(resolve(client, p["id"], "post_pending", amount="30"), 201)
    assert_problem(resolve(client, p["id"], "void_pending"), 422,
                   "pending_transfer_already_posted")
    assert balances(client, pair[0]) == (0, 30, 0, 0)


def test_post_after_void_is_already_voided(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    assert_json(resolve(client, p["id"], "void_pending"), 201)
    assert_problem(resolve(client, p["id"], "post_pending"), 422,
                   "pending_transfer_already_voided")
    assert_problem(resolve(client, p["id"], "void_pending"), 422,
                   "pending_transfer_already_voided")
    assert balances(client, pair[0]) == (0, 0, 0, 0)


def test_pending_transfer_not_found(client):
    assert_problem(resolve(client, uid("none"), "post_pending"), 422,
                   "pending_transfer_not_found")


def test_pending_transfer_not_pending(client, ledger, pair):
    plain = make_transfer(client, *pair, 10, ledger)
    assert_problem(resolve(client, plain["id"], "post_pending"), 422,
                   "pending_transfer_not_pending")
    assert_problem(resolve(client, plain["id"], "void_pending"), 422,
                   "pending_transfer_not_pending")


@pytest.mark.parametrize("flag", ["post_pending", "void_pending"])
def test_pending_id_required(client, ledger, pair, flag):
    body = transfer_body(*pair, 10, ledger, id=uid("tr"), flags=[flag])
    assert_problem(post_transfer(client, body), 422, "pending_id_required")


def test_pending_id_must_be_different(client):
    tid = uid("tr")
    r = post_transfer(client, {"id": tid, "pending_id": tid, "flags": ["post_pending"]})
    assert_problem(r, 422, "pending_id_must_be_different")


def test_pending_transfer_has_different_accounts(client, ledger, pair):
    third = create_account(client, ledger)["id"]
    p = pending(client, pair, ledger, 100)
    assert_problem(resolve(client, p["id"], "post_pending", debit_account_id=third), 422,
                   "pending_transfer_has_different_accounts")
    assert_problem(resolve(client, p["id"], "void_pending", credit_account_id=third), 422,
                   "pending_transfer_has_different_accounts")
    assert status_of(client, p["id"]) == "pending"


def test_pending_transfer_has_different_ledger(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    assert_problem(resolve(client, p["id"], "post_pending", ledger=new_ledger()), 422,
                   "pending_transfer_has_different_ledger")


def test_pending_transfer_has_different_code(client, ledger, pair):
    p = pending(client, pair, ledger, 100, code=4)
    assert_problem(resolve(client, p["id"], "post_pending", code=5), 422,
                   "pending_transfer_has_different_code")


def test_post_of_a_post_is_not_pending(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    post = assert_json(resolve(client, p["id"], "post_pending"), 201)
    assert_problem(resolve(client, post["id"], "post_pending"), 422,
                   "pending_transfer_not_pending")


def test_resolution_is_idempotent_by_id(client, ledger, pair):
    p = pending(client, pair, ledger, 100)
    body = {"id": uid("tr"), "pending_id": p["id"], "flags": ["post_pending"]}
    first = assert_json(post_transfer(client, body), 201)
    assert assert_json(post_transfer(client, body), 200) == first
    full = dict(body, debit_account_id=pair[0], credit_account_id=pair[1], amount="100",
                ledger=ledger, code=p["code"])
    assert assert_json(post_transfer(client, full), 200) == first
    assert balances(client, pair[0]) == (0, 100, 0, 0)


def test_timeout_without_pending_never_expires(client, ledger, pair):
    p = pending(client, pair, ledger, 100, timeout_seconds=0)
    assert p["timeout_seconds"] == 0
    time.sleep(1.2)
    assert status_of(client, p["id"]) == "pending"


# -- expiry --------------------------------------------------------------------------------------

def wait_status(client, tid, want, timeout):
    deadline = time.monotonic() + timeout * slow_factor()
    while time.monotonic() < deadline:
        if status_of(client, tid) == want:
            return True
        time.sleep(0.05)
    return status_of(client, tid) == want


def test_expiry_releases_balances(make_server):
    srv = make_server(env={"LEDGERD_EXPIRY_INTERVAL_MS": "50"})
    c = srv.client()
    ledger = new_ledger()
    pair = create_account(c, ledger)["id"], create_account(c, ledger)["id"]
    keep = pending(c, pair, ledger, 7)
    p = pending(c, pair, ledger, 100, timeout_seconds=1)
    assert p["timeout_seconds"] == 1
    assert balances(c, pair[0]) == (107, 0, 0, 0)
    started = time.monotonic()
    # Due at created_at + 1 s; released "within about a second" after that.
    assert wait_status(c, p["id"], "expired", 3.5), "pending transfer did not expire"
    assert time.monotonic() - started > 0.5, "expired long before its timeout"
    assert balances(c, pair[0]) == (7, 0, 0, 0)
    assert balances(c, pair[1]) == (0, 0, 7, 0)
    assert status_of(c, keep["id"]) == "pending"
    assert_problem(resolve(c, p["id"], "post_pending"), 422, "pending_transfer_expired")
    assert_problem(resolve(c, p["id"], "void_pending"), 422, "pending_transfer_expired")
    assert balances(c, pair[0]) == (7, 0, 0, 0)
    assert_ledgers_balanced(c)
    c.close()
    srv.assert_clean_stop()


def test_post_after_deadline_is_expired_even_before_the_sweep(make_server):
    srv = make_server(env={"LEDGERD_EXPIRY_INTERVAL_MS": "60000"})
    c = srv.client()
    ledger = new_ledger()
    pair = create_account(c, ledger)["id"], create_account(c, ledger)["id"]
    p = pending(c, pair, ledger, 100, timeout_seconds=1)
    time.sleep(1.3)
    assert_problem(resolve(c, p["id"], "post_pending"), 422, "pending_transfer_expired")
    assert balances(c, pair[0])[1] == 0
    c.close()
    srv.assert_clean_stop()


def test_expiry_survives_restart(make_server):
    srv = make_server(env={"LEDGERD_EXPIRY_INTERVAL_MS": "50"})
    c = srv.client()
    ledger = new_ledger()
    pair = create_account(c, ledger)["id"], create_account(c, ledger)["id"]
    p = pending(c, pair, ledger, 100, timeout_seconds=1)
    c.close()
    srv.assert_clean_stop()
    time.sleep(1.2)
    srv.start()
    c = srv.client()
    assert wait_status(c, p["id"], "expired", 3.0)
    assert balances(c, pair[0]) == (0, 0, 0, 0)
    c.close()
