"""Idempotency-Key: replay, reuse, in-flight, expiry, required mode, invalid keys and which
responses are stored (API contract "Idempotency", conventions "Idempotency")."""

import threading
import time

import pytest

from .ledgerd_harness import (
    assert_problem, balances, create_account, list_all, new_ledger,
    post_transfer, transfer_body, uid,
)


@pytest.fixture
def ledger():
    return new_ledger()


@pytest.fixture
def pair(client, ledger):
    return create_account(client, ledger)["id"], create_account(client, ledger)["id"]


def key():
    return uid("key")


def post(client, path, body, k, rid=None, content_type="application/json"):
    headers = {"Idempotency-Key": k}
    if rid:
        headers["X-Request-Id"] = rid
    return client.post(path, body, headers=headers, content_type=content_type)


def is_replay(r):
    return r.headers.get("idempotent-replayed", "").lower() == "true"


def test_replay_of_created_transfer(client, ledger, pair):
    k = key()
    body = transfer_body(*pair, 25, ledger)  # no id: a second run would make a new transfer
    first = post(client, "/v1/transfers", body, k, rid="first-1")
    assert first.status == 201, first
    assert not is_replay(first)
    again = post(client, "/v1/transfers", body, k, rid="second-2")
    assert again.status == 201, again
    assert is_replay(again), again
    assert again.body == first.body
    assert again.headers.get("location") == first.headers.get("location")
    assert again.headers.get("location") == "/v1/transfers/" + first.json["id"]
    assert again.headers.get("x-request-id") == "second-2"
    assert balances(client, pair[0]) == (0, 25, 0, 0)
    assert len(list_all(client, f"/v1/accounts/{pair[0]}/transfers")) == 1


def test_replay_of_created_account_keeps_generated_id(client, ledger):
    k = key()
    first = post(client, "/v1/accounts", {"ledger": ledger, "code": 1}, k)
    again = post(client, "/v1/accounts", {"ledger": ledger, "code": 1}, k)
    assert first.status == again.status == 201
    assert again.body == first.body and is_replay(again)
    assert len(list_all(client, "/v1/accounts?ledger=" + ledger)) == 1


def test_replay_of_batch(client, ledger, pair):
    k = key()
    body = {"transfers": [transfer_body(*pair, 3, ledger) for _ in range(3)]}
    first = post(client, "/v1/transfers/batch", body, k)
    again = post(client, "/v1/transfers/batch", body, k)
    assert first.status == again.status == 200
    assert again.body == first.body and is_replay(again)
    assert balances(client, pair[0]) == (0, 9, 0, 0)


def test_replay_of_422_keeps_original_request_id_in_body(client, ledger):
    limited = create_account(client, ledger, flags=["debits_must_not_exceed_credits"])["id"]
    other = create_account(client, ledger)["id"]
    k = key()
    body = transfer_body(limited, other, 10, ledger)
    first = post(client, "/v1/transfers", body, k, rid="orig-req")
    assert_problem(first, 422, "exceeds_credits")
    assert first.json["request_id"] == "orig-req"
    # Make the transfer possible: a stored 422 must still be replayed, not re-run.
    post_transfer(client, transfer_body(other, limited, 100, ledger))
    again = post(client, "/v1/transfers", body, k, rid="retry-req")
    assert again.status == 422, again
    assert is_replay(again)
    assert again.body == first.body
    assert again.json["request_id"] == "orig-req"
    assert again.headers.get("x-request-id") == "retry-req"
    assert balances(client, limited)[1] == 0


def test_replay_of_409_exists_with_different_fields(client, ledger, pair):
    tid = uid("tr")
    assert post_transfer(client, transfer_body(*pair, 1, ledger, id=tid)).status == 201
    k = key()
    body = transfer_body(*pair, 2, ledger, id=tid)
    first = post(client, "/v1/transfers", body, k)
    assert_problem(first, 409, "exists_with_different_fields")
    again = post(client, "/v1/transfers", body, k)
    assert again.status == 409 and is_replay(again) and again.body == first.body


def test_same_key_different_body_is_reused(client, ledger, pair):
    k = key()
    assert post(client, "/v1/transfers", transfer_body(*pair, 1, ledger), k).status == 201
    r = post(client, "/v1/transfers", transfer_body(*pair, 2, ledger), k)
    assert_problem(r, 422, "idempotency_key_reused")
    assert balances(client, pair[0]) == (0, 1, 0, 0)


def test_same_key_same_body_other_path_is_reused(client, ledger):
    k = key()
    body = {"ledger": ledger, "code": 1}
    assert post(client, "/v1/accounts", body, k).status == 201
    r = post(client, "/v1/transfers/batch", body, k)
    assert_problem(r, 422, "idempotency_key_reused")


def test_body_bytes_are_the_fingerprint(client, ledger):
    k = key()
    assert post(client, "/v1/accounts", '{"ledger":"%s","code":1}' % ledger, k).status == 201
    r = post(client, "/v1/accounts", '{"ledger": "%s", "code": 1}' % ledger, k)
    assert_problem(r, 422, "idempotency_key_reused")


def test_concurrent_identical_requests_have_one_effect(server, client, ledger, pair):
    threads_n = 20
    for round_ in range(3):
        k = key()
        body = transfer_body(*pair, 7, ledger)
        barrier = threading.Barrier(threads_n)
        results = [None] * threads_n
        clients = [server.client(timeout=30) for _ in range(threads_n)]
        for c in clients:  # connect first so the requests leave together
            assert c.get("/livez").status == 200

        def worker(i):
            barrier.wait(10)
            try:
                results[i] = post(clients[i], "/v1/transfers", body, k)
            except Exception as e:  # reported below
                results[i] = e

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for c in clients:
            c.close()
        assert all(not isinstance(r, Exception) and r is not None for r in results), results
        ok = [r for r in results if 200 <= r.status < 300]
        busy = [r for r in results if r.status == 409]
        assert len(ok) + len(busy) == threads_n, [r for r in results if r.status not in
                                                   (201, 409)]
        print(f"round {round_}: {len(ok)} 2xx, {len(busy)} in flight")
        assert ok, "no request succeeded"
        assert all(r.status == 201 for r in ok), ok
        assert len({r.body for r in ok}) == 1, "2xx bodies differ"
        assert sum(1 for r in ok if not is_replay(r)) == 1, "more than one original response"
        for r in busy:
            assert_problem(r, 409, "idempotency_key_in_flight")
            assert r.headers.get("retry-after") == "1", r
        assert balances(client, pair[0]) == (0, 7 * (round_ + 1), 0, 0)
    assert len(list_all(client, f"/v1/accounts/{pair[0]}/transfers")) == 3


def test_400_is_not_stored(client, ledger, pair):
    k = key()
    bad = transfer_body(*pair, "ten", ledger)
    assert_problem(post(client, "/v1/transfers", bad, k), 400, "amount_invalid")
    good = transfer_body(*pair, 10, ledger)
    r = post(client, "/v1/transfers", good, k)
    assert r.status == 201 and not is_replay(r), r
    assert balances(client, pair[0]) == (0, 10, 0, 0)


def test_415_is_not_stored(client, ledger, pair):
    k = key()
    body = transfer_body(*pair, 10, ledger)
    r = post(client, "/v1/transfers", body, k, content_type="text/plain")
    assert_problem(r, 415, "unsupported_media_type")
    r = post(client, "/v1/transfers", body, k)
    assert r.status == 201 and not is_replay(r), r


def test_413_is_not_stored(make_server):
    srv = make_server(env={"LEDGERD_BODY_BYTES_MAX": "65536"})
    c = srv.client()
    ledger = new_ledger()
    k = key()
    big = {"ledger": ledger, "code": 1, "metadata": {"p": "x" * 70000}}
    assert_problem(post(c, "/v1/accounts", big, k), 413, "body_too_large")
    c.close()
    c = srv.client()
    r = post(c, "/v1/accounts", {"ledger": ledger, "code": 1}, k)
    assert r.status == 201 and not is_replay(r), r
    c.close()


@pytest.mark.parametrize("bad", [
    "k" * 256, "", "ab\x01cd", "ab\x7fcd", "ab\tcd", "caf\xe9",
])
def test_invalid_keys(client, ledger, bad):
    r = client.post("/v1/accounts", {"ledger": ledger, "code": 1},
                    headers={"Idempotency-Key": bad.encode("latin-1")})
    assert_problem(r, 400, "idempotency_key_invalid")
    assert list_all(client, "/v1/accounts?ledger=" + ledger) == []


@pytest.mark.parametrize("good", ["k" * 255, "a", " !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~z"])
def test_valid_key_edges(client, ledger, good):
    k = good if len(good) != 255 else (uid("")[1:] + good)[:255]
    r1 = client.post("/v1/accounts", {"ledger": ledger, "code": 1},
                     headers={"Idempotency-Key": k})
    r2 = client.post("/v1/accounts", {"ledger": ledger, "code": 1},
                     headers={"Idempotency-Key": k})
    assert r1.status == 201, r1
    assert r2.status == 201 and is_replay(r2) and r2.body == r1.body, r2


def test_gets_ignore_keys(client, ledger):
    a = create_account(client, ledger)
    r = client.get("/v1/accounts/" + a["id"], headers={"Idempotency-Key": key()})
    assert r.status == 200 and not is_replay(r)


def test_expired_key_runs_again(make_server):
    srv = make_server(env={"LEDGERD_IDEMPOTENCY_TTL_SECONDS": "1"})
    c = srv.client()
    ledger = new_ledger()
    a = create_account(c, ledger)["id"]
    b = create_account(c, ledger)["id"]
    k = key()
    body = transfer_body(a, b, 5, ledger)
    first = post(c, "/v1/transfers", body, k)
    assert first.status == 201
    quick = post(c, "/v1/transfers", body, k)
    assert quick.status == 201 and is_replay(quick) and quick.body == first.body
    time.sleep(2.5)
    later = post(c, "/v1/transfers", body, k)
    assert later.status == 201, later
    assert not is_replay(later), "an expired key was replayed"
    assert later.json["id"] != first.json["id"]
    assert balances(c, a) == (0, 10, 0, 0)
    c.close()
    srv.assert_clean_stop()


def test_key_required_mode(make_server):
    srv = make_server(env={"LEDGERD_IDEMPOTENCY_REQUIRED": "true"})
    c = srv.client()
    ledger = new_ledger()
    r = c.post("/v1/accounts", {"ledger": ledger, "code": 1})
    assert_problem(r, 400, "idempotency_key_missing")
    a = post(c, "/v1/accounts", {"ledger": ledger, "code": 1}, key())
    b = post(c, "/v1/accounts", {"ledger": ledger, "code": 1}, key())
    assert a.status == b.status == 201
    body = transfer_body(a.json["id"], b.json["id"], 1, ledger)
    assert_problem(c.post("/v1/transfers", body), 400, "idempotency_key_missing")
    assert_problem(c.post("/v1/transfers/batch", {"transfers": [body]}), 400,
                   "idempotency_key_missing")
    assert balances(c, a.json["id"]) == (0, 0, 0, 0)
    assert c.get("/v1/accounts/" + a.json["id"]).status == 200
    assert c.get("/livez").status == 200
    assert post(c, "/v1/transfers", body, key()).status == 201
    c.close()
    srv.assert_clean_stop()


def test_keys_survive_restart(make_server):
    srv = make_server()
    c = srv.client()
    ledger = new_ledger()
    k = key()
    first = post(c, "/v1/accounts", {"ledger": ledger, "code": 1}, k)
    assert first.status == 201
    c.close()
    srv.restart()
    c = srv.client()
    again = post(c, "/v1/accounts", {"ledger": ledger, "code": 1}, k)
    assert again.status == 201 and is_replay(again) and again.body == first.body
    c.close()
