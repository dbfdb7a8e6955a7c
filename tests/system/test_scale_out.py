"""Scale-out on PostgreSQL: several ledgerd replicas on one database, and the faults an
operator meets there (the database restarting under load, an exhausted connection pool).

Every test here runs its servers on PostgreSQL whatever LEDGERD_TEST_DB says (the cluster of
$LEDGERD_TEST_PG_URL, or one of its own when it must be restarted), so the module runs once, in
the SQLite pass of the suite.
"""

import collections
import os
import random
import tempfile
import threading
import time

import pytest

from .ledgerd_harness import (
    REPO, Server, assert_ledgers_balanced, create_account, new_ledger, pg_connect,
    pg_create_database, slow_factor, transfer_body, uid, wait_for,
)

pytestmark = pytest.mark.skipif(not os.environ.get("LEDGERD_TEST_PG_URL"),
                                reason="needs PostgreSQL: run through `make test` "
                                       "(scripts/with-pg.sh sets LEDGERD_TEST_PG_URL)")

HOT_ACCOUNTS = 100
FUNDING = 1000  # credits each hot account starts with
REPLICAS = 3


def scrape(server, name, **labels):
    """The value of one sample of /metrics (0 when absent)."""
    c = server.client()
    try:
        r = c.get("/metrics")
    finally:
        c.close()
    assert r.status == 200, r
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in r.body.decode().splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == name or key == f"{name}{{{want}}}":
            return float(value)
    return 0.0


def start_replicas(tmp_path, url, n, env=None):
    """n ledgerd processes on the database at url, all started with --migrate at once: the
    migration lock lets one apply and the others find nothing pending."""
    servers = []
    for i in range(n):
        e = {"LEDGERD_DB": url, "LEDGERD_DB_WRITERS": "2", "LEDGERD_DB_POOL_SIZE": "4"}
        e.update(env or {})
        servers.append(Server(tmp_path / f"replica{i}", env=e))
    for s in servers:
        s.start(wait=False)
    for s in servers:
        s.wait_listening(timeout=30)
    return servers


def stop_all(servers):
    for s in servers:
        s.assert_clean_stop()


class Ledger:
    """What the clients were told, shared by the client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_key = collections.defaultdict(list)  # key -> [(status, body)]
        self.acked = {}  # transfer id -> (debit, credit, amount)
        self.unexpected = []

    def note(self, key, body, r):
        with self.lock:
            self.by_key[key].append((r.status, r.body))
            if r.status in (200, 201):
                self.acked[body["id"]] = (body["debit_account_id"], body["credit_account_id"],
                                          int(body["amount"]))
            elif r.status not in (409, 422, 503) or (r.status == 503 and "retry-after" not in r.headers):
                self.unexpected.append((key, r.status, r.body[:300]))


def hot_worker(servers, book, rng, accounts, ledger, n, tag):
    clients = [s.client(timeout=30) for s in servers]
    try:
        for i in range(n):
            dr, cr = rng.sample(accounts, 2)
            body = transfer_body(dr, cr, rng.randint(1, 400), ledger, id=uid(tag))
            key = f"{tag}-{i}"
            first = rng.randrange(len(servers))
            r = clients[first].post("/v1/transfers", body, headers={"Idempotency-Key": key})
            book.note(key, body, r)
            # The client retries the same key on another replica: same answer, applied once.
            again = (first + 1 + rng.randrange(len(servers) - 1)) % len(servers)
            r2 = clients[again].post("/v1/transfers", body, headers={"Idempotency-Key": key})
            book.note(key, body, r2)
    finally:
        for c in clients:
            c.close()


def racing_duplicates(servers, book, rng, accounts, ledger, n, tag):
    """The same key sent to two replicas at the same moment: one applies, the other replays."""
    for i in range(n):
        dr, cr = rng.sample(accounts, 2)
        body = transfer_body(dr, cr, rng.randint(1, 50), ledger, id=uid(tag))
        key = f"{tag}-race-{i}"
        a, b = rng.sample(range(len(servers)), 2)
        barrier = threading.Barrier(2)

        def send(idx, barrier=barrier, body=body, key=key):
            c = servers[idx].client(timeout=30)
            try:
                barrier.wait()
                book.note(key, body, c.post("/v1/transfers", body,
                                            headers={"Idempotency-Key": key}))
            finally:
                c.close()

        threads = [threading.Thread(target=send, args=(x,)) for x in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)


def test_three_replicas_on_hot_accounts_keep_every_invariant(tmp_path):
    url = pg_create_database(prefix="replicas")
    servers = start_replicas(tmp_path, url, REPLICAS)
    try:
        ledger = new_ledger()
        c = servers[0].client()
        bank = create_account(c, ledger, id=f"bank-{ledger.lower()}")["id"]
        accounts = [create_account(c, ledger, id=f"hot{i}-{ledger.lower()}",
                                   flags=["debits_must_not_exceed_credits"])["id"]
                    for i in range(HOT_ACCOUNTS)]
        for a in accounts:
            r = c.post("/v1/transfers", transfer_body(bank, a, FUNDING, ledger))
            assert r.status == 201, r
        c.close()

        book = Ledger()
        seed = random.randrange(1 << 30)
        print(f"replicas test seed {seed}")
        rng = random.Random(seed)
        threads = [threading.Thread(target=hot_worker,
                                    args=(servers, book, random.Random(rng.random()), accounts,
                                          ledger, 60, f"w{w}"))
                   for w in range(8)]
        threads.append(threading.Thread(target=racing_duplicates,
                                        args=(servers, book, random.Random(rng.random()),
                                              accounts, ledger, 40, "dup")))
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
            assert not t.is_alive(), "a client hung"
        assert not book.unexpected, book.unexpected[:5]

        # Every retry of a key got the first answer: the same status and the same body.
        for key, answers in book.by_key.items():
            final = [a for a in answers if a[0] != 503]
            assert len({a for a in final}) <= 1, (key, answers)

        conn = pg_connect(url)
        with conn.cursor() as cur:
            # No transfer applied twice, every acknowledged transfer present as acknowledged.
            cur.execute("SELECT id, debit_account_id, credit_account_id, amount FROM transfers "
                        "WHERE ledger = %s AND debit_account_id <> %s", (ledger, bank))
            stored = {row[0]: (row[1], row[2], int(row[3])) for row in cur.fetchall()}
            assert len(stored) == len(set(stored)), "a transfer id stored twice"
            for tid, fields in book.acked.items():
                assert stored.get(tid) == fields, (tid, fields, stored.get(tid))
            assert len(stored) == len(book.acked), "a transfer stored that nobody was told of"
            # Balances are exactly the sum of the stored transfers, and no limit was exceeded.
            cur.execute("SELECT id, debits_posted, credits_posted FROM accounts WHERE ledger = %s",
                        (ledger,))
            balances = {row[0]: (int(row[1]), int(row[2])) for row in cur.fetchall()}
        conn.close()
        debits = collections.Counter()
        credits = collections.Counter()
        for dr, cr, amount in stored.values():
            debits[dr] += amount
            credits[cr] += amount
        for a in accounts:
            d, cr_ = balances[a]
            assert (d, cr_) == (debits[a], credits[a] + FUNDING), a
            assert d <= cr_, f"{a}: debits {d} exceed credits {cr_}"
        assert sum(b[0] for b in balances.values()) == sum(b[1] for b in balances.values())
        # The replicas collided on the hot rows and ran transactions again, never wrongly.
        retried = sum(scrape(s, "ledgerd_db_transaction_retries_total", reason="serialization")
                      for s in servers)
        print(f"acknowledged {len(book.acked)} transfers, {retried:.0f} transactions retried")
        c = servers[2].client()
        assert_ledgers_balanced(c)
        c.close()
        stop_all(servers)
    finally:
        for s in servers:
            s.kill()


@pytest.fixture
def own_cluster():
    """A PostgreSQL cluster of the test's own, which it may stop and start again."""
    top = tempfile.mkdtemp(prefix="ledgerd-pgfault-")
    os.chmod(top, 0o755)
    cluster = os.path.join(top, "cluster")
    import subprocess

    def pg(cmd):
        p = subprocess.run(["bash", str(REPO / "scripts" / "pg.sh"), cmd, cluster],
                           env=dict(os.environ, PG_FSYNC="off"), capture_output=True, text=True,
                           check=False, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    url = pg("start")
    try:
        yield url, pg
    finally:
        subprocess.run(["bash", str(REPO / "scripts" / "pg.sh"), "stop", cluster],
                       capture_output=True, check=False, timeout=120)


def test_postgres_restart_under_load_loses_nothing(tmp_path, own_cluster):
    url, pg = own_cluster
    srv = Server(tmp_path / "srv", env={"LEDGERD_DB": url, "LEDGERD_DB_ACQUIRE_TIMEOUT_MS": "500",
                                        "LEDGERD_DB_STATEMENT_TIMEOUT_MS": "2000"})
    srv.start()
    try:
        ledger = new_ledger()
        c = srv.client()
        a = create_account(c, ledger)["id"]
        b = create_account(c, ledger)["id"]
        c.close()
        stop = threading.Event()
        lock = threading.Lock()
        outcomes = collections.Counter()
        pending = {}  # key -> body, answered 503: to be sent again after the outage
        acked = {}
        bad = []
        slowest = [0.0]

        def load(w):
            cl = srv.client(timeout=30)
            i = 0
            while not stop.is_set():
                i += 1
                key = f"fault-{w}-{i}"
                body = transfer_body(a, b, 1, ledger, id=uid("f"))
                t0 = time.monotonic()
                try:
                    r = cl.post("/v1/transfers", body, headers={"Idempotency-Key": key})
                except OSError as e:  # the connection must never hang or be dropped
                    with lock:
                        bad.append(("connection", repr(e)))
                    continue
                took = time.monotonic() - t0
                with lock:
                    slowest[0] = max(slowest[0], took)
                    outcomes[r.status] += 1
                    if r.status == 201:
                        acked[body["id"]] = key
                    elif r.status == 503 and "retry-after" in r.headers:
                        pending[key] = body
                        time.sleep(0.05)
                    else:
                        bad.append((r.status, r.body[:200]))
            cl.close()

        threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        pg("halt")  # every connection of the pool breaks; new ones are refused
        time.sleep(2.0)
        assert srv.running(), "ledgerd died while PostgreSQL was down"
        pg("resume")
        # The pool reconnects by itself: writes succeed again without touching ledgerd.
        before = outcomes[201]
        assert wait_for(lambda: outcomes[201] > before + 20, timeout=20), outcomes
        stop.set()
        for t in threads:
            t.join(60)
            assert not t.is_alive(), "a client hung"
        assert not bad, bad[:5]
        assert outcomes[503] > 0, outcomes  # the outage was seen, as 503 + Retry-After
        assert slowest[0] < 15 * slow_factor(), slowest  # bounded, never a hang

        # Retrying what got 503 with the same keys applies each exactly once.
        c = srv.client()
        for key, body in pending.items():
            r = c.post("/v1/transfers", body, headers={"Idempotency-Key": key})
            assert r.status in (200, 201), r
            acked[body["id"]] = key
        for tid in acked:
            r = c.get("/v1/transfers/" + tid)
            assert r.status == 200, (tid, r)
        ra = c.get("/v1/accounts/" + a).json
        assert int(ra["debits_posted"]) == len(acked), (ra, len(acked))
        assert_ledgers_balanced(c)
        c.close()
        srv.assert_clean_stop()
    finally:
        srv.kill()


def test_pool_exhaustion_is_bounded_and_visible(tmp_path):
    url = pg_create_database(prefix="pool")
    srv = Server(tmp_path / "srv", env={"LEDGERD_DB": url, "LEDGERD_DB_POOL_SIZE": "2",
                                        "LEDGERD_DB_ACQUIRE_TIMEOUT_MS": "300",
                                        "LEDGERD_DB_STATEMENT_TIMEOUT_MS": "1500",
                                        "LEDGERD_DB_WORK_QUEUE_MAX": "64"})
    srv.start()
    try:
        ledger = new_ledger()
        c = srv.client()
        a = create_account(c, ledger)["id"]
        c.close()
        # Slow statements: a session holds the accounts table locked, so every read of it waits
        # (up to the statement timeout) while holding one of the two pooled connections.
        blocker = pg_connect(url)
        blocker.autocommit = False
        cur = blocker.cursor()
        cur.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        statuses = collections.Counter()
        times = []
        lock = threading.Lock()

        def reader():
            cl = srv.client(timeout=30)
            for _ in range(5):
                t0 = time.monotonic()
                r = cl.get("/v1/accounts/" + a)
                with lock:
                    times.append(time.monotonic() - t0)
                    statuses[r.status] += 1
                    if r.status == 503:
                        assert "retry-after" in r.headers, r
            cl.close()

        threads = [threading.Thread(target=reader) for _ in range(8)]
        for t in threads:
            t.start()
        # While they wait, the pool shows it: both readers in use.
        assert wait_for(lambda: scrape(srv, "ledgerd_db_pool_connections", role="reader",
                                       state="in_use") == 2, timeout=5)
        for t in threads:
            t.join(60)
            assert not t.is_alive(), "a request hung"
        blocker.rollback()
        blocker.close()
        assert set(statuses) <= {200, 503}, statuses
        assert statuses[503] > 0, statuses
        # Bounded: a statement waits at most its timeout, an acquisition at most its own.
        assert max(times) < (1.5 + 0.3 + 2.0) * slow_factor(), max(times)
        assert scrape(srv, "ledgerd_db_pool_acquire_timeouts_total", role="reader") > 0
        assert scrape(srv, "ledgerd_db_pool_max_connections", role="reader") == 2
        # Once the lock is gone, everything answers again.
        c = srv.client()
        assert c.get("/v1/accounts/" + a).status == 200
        c.close()
        srv.assert_clean_stop()
    finally:
        srv.kill()
