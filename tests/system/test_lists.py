"""Cursor pagination of GET /v1/accounts and GET /v1/accounts/{id}/transfers: every item exactly
once in commit order, bounded limits, opaque cursors (API contract "Conventions" and conventions
"Lists")."""

import pytest

from .ledgerd_harness import (
    assert_json, assert_problem, create_account, list_all, new_ledger, transfer_body, uid,
    urlquote,
)

MANY = 1150


@pytest.fixture(scope="module")
def many_transfers(server):
    """One account pair with MANY transfers between them, committed in one batch (so their commit
    order is the batch order), plus transfers of other accounts interleaved."""
    c = server.client(timeout=60)
    ledger = new_ledger()
    a = create_account(c, ledger)["id"]
    b = create_account(c, ledger)["id"]
    x = create_account(c, ledger)["id"]
    y = create_account(c, ledger)["id"]
    items = []
    for i in range(MANY):
        if i % 2:
            items.append(transfer_body(a, b, i, ledger, id=f"lt{i:05d}-{uid('')[1:9]}"))
        else:
            items.append(transfer_body(b, a, i, ledger, id=f"lt{i:05d}-{uid('')[1:9]}"))
        if i % 10 == 0:
            items.append(transfer_body(x, y, 1, ledger))
    r = c.post("/v1/transfers/batch", {"transfers": items})
    res = assert_json(r, 200)["results"]
    assert all(x_["result"] == "created" for x_ in res)
    ids = [t["id"] for t in items if "id" in t]
    c.close()
    return a, ids


@pytest.fixture(scope="module")
def many_accounts(server):
    """MANY accounts on one ledger, created one by one (commit order = creation order)."""
    c = server.client(timeout=30)
    ledger = new_ledger()
    ids = [create_account(c, ledger, code=i % 65536)["id"] for i in range(MANY)]
    c.close()
    return ledger, ids


@pytest.mark.parametrize("limit", [1000, None, 333])
def test_account_transfers_every_item_once_in_commit_order(client, many_transfers, limit):
    account, ids = many_transfers
    got = list_all(client, f"/v1/accounts/{account}/transfers", limit=limit)
    assert [t["id"] for t in got] == ids
    for t in got:
        assert account in (t["debit_account_id"], t["credit_account_id"])


def test_default_page_is_100(client, many_transfers):
    account, ids = many_transfers
    page = assert_json(client.get(f"/v1/accounts/{account}/transfers"), 200)
    assert len(page["data"]) == 100
    assert isinstance(page["next_cursor"], str)
    assert [t["id"] for t in page["data"]] == ids[:100]


def test_limit_1000_pages(client, many_transfers):
    account, ids = many_transfers
    first = assert_json(client.get(f"/v1/accounts/{account}/transfers?limit=1000"), 200)
    assert len(first["data"]) == 1000
    second = assert_json(client.get(f"/v1/accounts/{account}/transfers?limit=1000&cursor="
                                    + urlquote(first["next_cursor"])), 200)
    assert len(second["data"]) == MANY - 1000
    assert second["next_cursor"] is None
    assert [t["id"] for t in first["data"] + second["data"]] == ids


def test_limit_1_walks_the_start(client, many_transfers):
    account, ids = many_transfers
    cursor = None
    seen = []
    for _ in range(5):
        url = f"/v1/accounts/{account}/transfers?limit=1"
        if cursor:
            url += "&cursor=" + urlquote(cursor)
        page = assert_json(client.get(url), 200)
        assert len(page["data"]) == 1
        seen.append(page["data"][0]["id"])
        cursor = page["next_cursor"]
    assert seen == ids[:5]


def test_accounts_every_item_once_in_commit_order(client, many_accounts):
    ledger, ids = many_accounts
    for limit in (1000, None):
        got = list_all(client, "/v1/accounts?ledger=" + ledger, limit=limit)
        assert [a["id"] for a in got] == ids
        assert all(a["ledger"] == ledger for a in got)


def test_exact_multiple_of_limit_ends_with_null_cursor(client):
    ledger = new_ledger()
    ids = [create_account(client, ledger)["id"] for _ in range(4)]
    got = list_all(client, "/v1/accounts?ledger=" + ledger, limit=2)
    assert [a["id"] for a in got] == ids


def test_items_committed_after_a_cursor_appear_later(client):
    ledger = new_ledger()
    ids = [create_account(client, ledger)["id"] for _ in range(3)]
    page = assert_json(client.get(f"/v1/accounts?ledger={ledger}&limit=2"), 200)
    assert [a["id"] for a in page["data"]] == ids[:2]
    ids += [create_account(client, ledger)["id"] for _ in range(2)]
    rest = list_all(client, f"/v1/accounts?ledger={ledger}&cursor="
                    + urlquote(page["next_cursor"]), limit=2)
    assert [a["id"] for a in rest] == ids[2:]


def test_account_transfers_list_empty(client):
    aid = create_account(client, new_ledger())["id"]
    page = assert_json(client.get(f"/v1/accounts/{aid}/transfers"), 200)
    assert page == {"data": [], "next_cursor": None}


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "", "1.5", "10e2", "+5",
                                   "99999999999999999999999"])
@pytest.mark.parametrize("path", ["/v1/accounts", "/v1/accounts/{acct}/transfers"])
def test_limit_invalid(client, path, limit):
    aid = create_account(client, new_ledger())["id"]
    r = client.get(path.replace("{acct}", aid) + "?limit=" + urlquote(limit))
    assert_problem(r, 400, "limit_invalid")


@pytest.mark.parametrize("cursor", ["garbage!", "!!!", "x" * 600, "%ZZ", "\u00e9", "a b"])
@pytest.mark.parametrize("path", ["/v1/accounts", "/v1/accounts/{acct}/transfers"])
def test_cursor_invalid(client, path, cursor):
    aid = create_account(client, new_ledger())["id"]
    r = client.get(path.replace("{acct}", aid) + "?cursor=" + urlquote(cursor))
    assert_problem(r, 400, "cursor_invalid")


def test_empty_cursor_is_invalid(client):
    assert_problem(client.get("/v1/accounts?cursor="), 400, "cursor_invalid")


@pytest.mark.parametrize("query", ["foo=1", "limit=5&foo=1", "LIMIT=5", "ledger=USD&page=2"])
def test_unknown_parameter(client, query):
    assert_problem(client.get("/v1/accounts?" + query), 400, "unknown_parameter")


def test_ledger_is_not_a_parameter_of_account_transfers(client):
    aid = create_account(client, new_ledger())["id"]
    assert_problem(client.get(f"/v1/accounts/{aid}/transfers?ledger=USD"), 400,
                   "unknown_parameter")


def test_list_limit_1000_boundary_accepted(client):
    assert_json(client.get("/v1/accounts?limit=1000"), 200)
    assert_json(client.get("/v1/accounts?limit=1"), 200)
