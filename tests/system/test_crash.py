"""Crash safety: kill -9 at random moments under concurrent writes, restart on the same database,
and check that every acknowledged transfer is there exactly once, that the ledger balances, and
that retrying any request with its Idempotency-Key never applies it twice (API contract
"Invariants that must hold at every commit")."""

import concurrent.futures
import http.client
import random
import threading
import time

from .ledgerd_harness import (
    Server, assert_json, create_account, list_all, new_ledger, slow_factor,
)

ROUNDS = 20
WORKERS = 4
ACCOUNTS = 4


class Book:
    """What the clients attempted and what the server acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempts = {}   # key -> (path, body)
        self.acked = {}      # key -> Response (2xx)
        self.unexpected = []  # responses that are neither 2xx nor a crash

    def attempt(self, key, path, body):
        with self.lock:
            self.attempts[key] = (path, body)

    def answer(self, key, r):
        with self.lock:
            if 200 <= r.status < 300:
                self.acked[key] = r
            else:
                self.unexpected.append((key, r))


def request_for(rng, key, ledger, accounts):
    def one(extra):
        a, b = rng.sample(accounts, 2)
        body = {"debit_account_id": a, "credit_account_id": b,
                "amount": str(rng.randint(1, 1000)), "ledger": ledger, "code": 1,
                "metadata": {"key": key}}
        body.update(extra)
        return body

    kind = rng.random()
    if kind < 0.45:
        return "/v1/transfers", one({})
    if kind < 0.70:
        return "/v1/transfers", one({"id": "t-" + key})
    if kind < 0.90:
        return "/v1/transfers", one({"flags": ["pending"]})
    items = []
    for i in range(3):
        item = one({})
        item["metadata"] = {"key": key, "i": i}
        items.append(item)
    return "/v1/transfers/batch", {"transfers": items}


def worker(srv, book, rng, tag, ledger, accounts):
    c = srv.client(timeout=10)
    n = 0
    try:
        while True:
            key = f"{tag}-{n}"
            n += 1
            path, body = request_for(rng, key, ledger, accounts)
            book.attempt(key, path, body)
            try:
                r = c.post(path, body, headers={"Idempotency-Key": key}, retry=False)
            except (OSError, http.client.HTTPException):
                return  # the server died: this attempt stays unacknowledged
            book.answer(key, r)
    finally:
        c.close()


def check_balanced(c, ledger):
    accts = list_all(c, "/v1/accounts?ledger=" + ledger, limit=1000)
    sums = [sum(int(a[k]) for a in accts) for k in
            ("debits_pending", "debits_posted", "credits_pending", "credits_posted")]
    assert sums[1] == sums[3], f"posted unbalanced after restart: {sums}"
    assert sums[0] == sums[2], f"pending unbalanced after restart: {sums}"


def parallel(fn, items, threads=4):
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def test_kill_9_loses_no_acknowledged_transfer(tmp_path):
    srv = Server(tmp_path / "crash")
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    print(f"crash test seed {seed}")
    book = Book()
    ledger = new_ledger()
    started = time.monotonic()
    try:
        srv.start()
        c = srv.client()
        accounts = [create_account(c, ledger, id=f"crash-{i}-{ledger.lower()}")["id"]
                    for i in range(ACCOUNTS)]
        c.close()

        for rnd in range(ROUNDS):
            if rnd:
                srv.start()
                c = srv.client()
                check_balanced(c, ledger)
                c.close()
            threads = [threading.Thread(
                target=worker,
                args=(srv, book, random.Random(rng.random()), f"r{rnd}w{w}s{seed}", ledger,
                      accounts)) for w in range(WORKERS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.1, 0.6) * slow_factor())
            srv.kill()
            for t in threads:
                t.join(30)
                assert not t.is_alive(), "a client hung after kill -9"

        assert not book.unexpected, book.unexpected[:5]
        assert book.acked, "no request was acknowledged in any round"

        srv.start()
        c = srv.client(timeout=30)
        check_balanced(c, ledger)

        # Every acknowledged transfer is there, as acknowledged.
        def check_acked(item):
            key, r = item
            cl = srv.client(timeout=30)
            try:
                path, _ = book.attempts[key]
                if path == "/v1/transfers":
                    got = assert_json(cl.get("/v1/transfers/" + r.json["id"]), 200)
                    assert got == r.json, (key, got, r.json)
                else:
                    for res in r.json["results"]:
                        assert res["result"] == "created", (key, res)
                        assert cl.get("/v1/transfers/" + res["id"]).status == 200, (key, res)
            finally:
                cl.close()

        parallel(check_acked, sorted(book.acked.items()))

        # Retrying any request with its key never applies it twice.
        def retry(key):
            path, body = book.attempts[key]
            cl = srv.client(timeout=30)
            try:
                r = cl.post(path, body, headers={"Idempotency-Key": key})
            finally:
                cl.close()
            want = 201 if path == "/v1/transfers" else 200
            assert r.status == want, (key, r)
            replayed = r.headers.get("idempotent-replayed", "").lower() == "true"
            if key in book.acked:
                assert replayed, (key, "acknowledged request ran again", r)
                assert r.body == book.acked[key].body, (key, r, book.acked[key])
            return key, replayed

        outcomes = parallel(retry, sorted(book.attempts))
        unacked = [k for k, _ in outcomes if k not in book.acked]
        committed_unacked = [k for k, replayed in outcomes if replayed and k not in book.acked]
        print(f"attempts {len(book.attempts)}, acknowledged {len(book.acked)}, "
              f"unacknowledged {len(unacked)} of which committed before the kill "
              f"{len(committed_unacked)}")
        assert unacked, "no request was in flight at any kill: the test exercised nothing"

        # Each request has exactly one effect: its transfers appear once, nothing extra.
        seen = {}
        for aid in accounts:
            listed = list_all(c, f"/v1/accounts/{aid}/transfers", limit=1000)
            ids = [t["id"] for t in listed]
            assert len(ids) == len(set(ids)), f"a transfer is listed twice for {aid}"
            for t in listed:
                seen[t["id"]] = t
        per_key = {}
        for t in seen.values():
            meta = t["metadata"]
            per_key.setdefault(meta["key"], []).append(meta.get("i"))
        assert set(per_key) == set(book.attempts), "transfers without a request, or missing"
        for key, idx in per_key.items():
            path, _ = book.attempts[key]
            want = [None] if path == "/v1/transfers" else [0, 1, 2]
            assert sorted(idx, key=lambda v: -1 if v is None else v) == want, \
                f"request {key} applied {len(idx)} times"

        # Balances are exactly the sum of the transfers that exist.
        expect = {aid: [0, 0, 0, 0] for aid in accounts}
        for t in seen.values():
            amount = int(t["amount"])
            pending = "pending" in t["flags"]
            expect[t["debit_account_id"]][0 if pending else 1] += amount
            expect[t["credit_account_id"]][2 if pending else 3] += amount
        for aid in accounts:
            a = assert_json(c.get("/v1/accounts/" + aid), 200)
            got = [int(a[k]) for k in ("debits_pending", "debits_posted", "credits_pending",
                                       "credits_posted")]
            assert got == expect[aid], f"{aid}: balances {got} != transfers {expect[aid]}"
        check_balanced(c, ledger)
        c.close()
        srv.assert_clean_stop()
        assert time.monotonic() - started < 150 * slow_factor(), "crash test too slow"
    finally:
        srv.kill()
