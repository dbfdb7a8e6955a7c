"""The Redis idempotency cache seen from outside: ledgerd serving real requests in front of real
redis-server and redis-sentinel processes started here with scripts/redis.sh.

What a client and an operator can observe: the cache answers exactly the lookups it should
(counted in ledgerd_cache_lookups_total and ledgerd_idempotency_lookups_total), Redis dying or
failing over never costs a request or applies a transfer twice (the database stays the source of
truth), the circuit breaker opens and closes by itself, a value that does not decode is a miss
that the database repairs, and a bad cache configuration stops `ledgerd serve` naming the
variable at fault, without ever printing a password.
"""

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from .ledgerd_harness import (
    REPO, assert_ledgers_balanced, balances, create_account, list_all, new_ledger, run_cli,
    slow_factor, transfer_body, uid, wait_for,
)

pytestmark = pytest.mark.skipif(
    not all(shutil.which(p) for p in ("redis-server", "redis-sentinel", "redis-cli")),
    reason="needs redis-server, redis-sentinel and redis-cli (scripts/deps.sh installs them)")

REDIS_SH = str(REPO / "scripts" / "redis.sh")
PRINCIPAL = "anonymous"  # every request's principal with LEDGERD_AUTH=off
MASTER_NAME = "ledgerd-cache"
DEFAULT_TTL_MS = 86400 * 1000  # LEDGERD_IDEMPOTENCY_TTL_SECONDS' default

# Short breaker timings keep the fault tests fast; a generous command timeout keeps a slow
# (sanitizer) build from counting a busy Redis as a failure in the tests that count exactly.
TIMEOUT_MS = str(int(1000 * slow_factor()))
FAST_BREAKER = {"LEDGERD_REDIS_BREAKER_FAILURES": "3", "LEDGERD_REDIS_BREAKER_OPEN_MS": "300"}


# -- Redis: a minimal RESP2 client and the processes -----------------------------------------------
class RespError(Exception):
    """An error reply."""


def resp_encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def resp_read(f):
    """One reply from f; an error reply is returned as a RespError instance."""
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RespError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(f) for _ in range(n)]
    raise ConnectionError(f"not RESP: {line!r}")


def redis_cmd(port, *args, password=None, timeout=5.0):
    """Runs one command on 127.0.0.1:port (after AUTH when password is set); raises RespError
    for an error reply. Bulk strings come back as bytes."""
    cmds = ([("AUTH", password)] if password else []) + [args]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout * slow_factor()) as s:
        s.sendall(b"".join(resp_encode(c) for c in cmds))
        f = s.makefile("rb")
        replies = [resp_read(f) for _ in cmds]
    for r in replies:
        if isinstance(r, RespError):
            raise r
    return replies[-1]


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def redis_sh(*args):
    p = subprocess.run(["bash", REDIS_SH] + [str(a) for a in args], capture_output=True,
                       text=True, check=False, timeout=60 * slow_factor())
    assert p.returncode == 0, f"redis.sh {args}: {p.stderr}"


class RedisNode:
    """One redis-server or redis-sentinel of scripts/redis.sh, in its own directory."""

    def __init__(self, directory, port, start_args):
        self.dir = directory
        self.port = port
        self.start_args = start_args
        self.password = None

    def start(self):
        redis_sh(*self.start_args)
        return self

    def __call__(self, *args):
        return redis_cmd(self.port, *args, password=self.password)

    def pid(self):
        with open(os.path.join(self.dir, "redis.pid")) as f:
            return int(f.read().strip())

    def kill9(self):
        """SIGKILL (a crash: nothing closes cleanly) and wait until the port refuses."""
        os.kill(self.pid(), signal.SIGKILL)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return False
            except OSError:
                return True

        assert wait_for(refused, timeout=10), "redis-server still answers after SIGKILL"

    def answers(self):
        try:
            return self("PING") == "PONG"
        except (OSError, RespError):
            return False


class RedisFarm:
    """Starts nodes under tmp_path; stops every one at the end of the test."""

    def __init__(self, top):
        self.top = top
        self.nodes = []

    def _node(self, kind, port, *rest):
        port = port or free_ports(1)[0]
        directory = str(self.top / f"{kind}-{port}")
        node = RedisNode(directory, port, (kind, directory, port) + rest)
        self.nodes.append(node)
        return node.start()

    def server(self, port=None):
        return self._node("start", port)

    def replica(self, port, master):
        return self._node("replica", port, master.port)

    def sentinel(self, port, master, name):
        return self._node("sentinel", port, master.port, name)

    def stop_all(self):
        for node in self.nodes:
            subprocess.run(["bash", REDIS_SH, "stop", node.dir], capture_output=True,
                           check=False, timeout=60)


@pytest.fixture
def farm(tmp_path):
    f = RedisFarm(tmp_path)
    try:
        yield f
    finally:
        f.stop_all()


def cache_key(key, principal=PRINCIPAL):
    """The Redis key of (principal, Idempotency-Key): ledgerd:idem: + hex SHA-256 of
    principal NUL key."""
    return b"ledgerd:idem:" + hashlib.sha256(
        principal.encode() + b"\0" + key.encode()).hexdigest().encode()


# -- ledgerd's metrics --------------------------------------------------------------------------
def scrape(server):
    """Every sample of /metrics: {'name{labels}': value}."""
    c = server.client()
    try:
        r = c.get("/metrics")
    finally:
        c.close()
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


CACHE_RESULTS = ("hit", "miss", "error", "bypassed")
IDEM_RESULTS = ("hit", "miss", "reused", "in_flight")
STATES = ("closed", "open", "half_open")


def counts(server):
    """The cache's counters: cache_<result>, idem_<result>, write_<result>, to_<state>
    (breaker transitions), and state (the breaker state whose gauge is 1)."""
    m = scrape(server)
    out = {}
    for r in CACHE_RESULTS:
        out["cache_" + r] = m.get(f'ledgerd_cache_lookups_total{{result="{r}"}}', 0.0)
    for r in IDEM_RESULTS:
        out["idem_" + r] = m.get(f'ledgerd_idempotency_lookups_total{{result="{r}"}}', 0.0)
    for r in ("ok", "failed"):
        out["write_" + r] = m.get(f'ledgerd_cache_writes_total{{result="{r}"}}', 0.0)
    for s in STATES:
        out["to_" + s] = m.get(f'ledgerd_cache_breaker_transitions_total{{state="{s}"}}', 0.0)
    gauge = {s: m.get(f'ledgerd_cache_breaker_state{{state="{s}"}}', 0.0) for s in STATES}
    current = [s for s, v in gauge.items() if v == 1.0]
    assert len(current) == 1 and sum(gauge.values()) == 1.0, gauge
    out["state"] = current[0]
    return out


def delta(after, before):
    return {k: after[k] - before[k] for k in after if k != "state"}


def expect(**nonzero):
    """A delta with every counter 0 but the ones named."""
    out = {f"cache_{r}": 0.0 for r in CACHE_RESULTS}
    out.update({f"idem_{r}": 0.0 for r in IDEM_RESULTS})
    out.update({"write_ok": 0.0, "write_failed": 0.0})
    out.update({f"to_{s}": 0.0 for s in STATES})
    for k, v in nonzero.items():
        assert k in out, k
        out[k] = float(v)
    return out


# -- ledgerd ------------------------------------------------------------------------------------
def cache_env(node=None, **extra):
    env = {"LEDGERD_REDIS_TIMEOUT_MS": TIMEOUT_MS}
    if node is not None:
        env["LEDGERD_REDIS_URL"] = f"redis://127.0.0.1:{node.port}"
    env.update(extra)
    return env


def replayed(r):
    return r.headers.get("idempotent-replayed", "").lower() == "true"


def post_key(c, body, key):
    return c.post("/v1/transfers", body, headers={"Idempotency-Key": key})


def assert_replay_of(r, first):
    """r replays first: the same status, body bytes and Location, marked as a replay."""
    assert r.status == first.status, (r, first)
    assert replayed(r), r
    assert r.body == first.body, (r, first)
    assert r.headers.get("location") == first.headers.get("location"), (r, first)


def setup_pair(srv):
    c = srv.client()
    ledger = new_ledger()
    a = create_account(c, ledger)["id"]
    b = create_account(c, ledger)["id"]
    return c, ledger, a, b


def run_keys(c, ledger, a, b, n, tag, amount=1):
    """n fresh keys, each posted three times (applied, then replayed from the database, then
    from the cache); checks every answer; returns the keys."""
    keys = []
    for _ in range(n):
        key = uid(tag)
        body = transfer_body(a, b, amount, ledger)
        first = post_key(c, body, key)
        assert first.status == 201 and not replayed(first), first
        for _ in range(2):
            assert_replay_of(post_key(c, body, key), first)
        keys.append(key)
    return keys


def finish(srv, c):
    """The end of every server here: ledgers balanced, a clean stop, no sanitizer report."""
    assert_ledgers_balanced(c)
    c.close()
    srv.assert_clean_stop()


def log_bodies(srv, severity=None):
    return [o.get("body", "") for o in srv.log_lines()
            if severity is None or o.get("severity_text") == severity]


# -- 1. the hit rate is what the client did -----------------------------------------------------
def test_hit_rate_matches_what_the_client_did(make_server, farm):
    node = farm.server()
    srv = make_server(env=cache_env(node))
    c, ledger, a, b = setup_pair(srv)
    n = 12
    bodies = {uid("hit"): transfer_body(a, b, i + 1, ledger) for i in range(n)}
    keys = list(bodies)

    before = counts(srv)
    assert before["state"] == "closed", before
    first = {}
    for k in keys:
        r = post_key(c, bodies[k], k)
        assert r.status == 201 and not replayed(r), r
        first[k] = r
    applied = counts(srv)
    # Fresh keys: a miss in the cache and in the database; nothing is written to the cache,
    # since a record goes to the database only, with the commit.
    assert delta(applied, before) == expect(cache_miss=n, idem_miss=n)
    assert node("DBSIZE") == 0

    for k in keys:
        assert_replay_of(post_key(c, bodies[k], k), first[k])
    filled = counts(srv)
    # The first retry: a cache miss, the database's record replayed and copied to the cache.
    assert delta(filled, applied) == expect(cache_miss=n, idem_hit=n, write_ok=n)
    assert sorted(node("KEYS", "ledgerd:idem:*")) == sorted(cache_key(k) for k in keys)
    for k in keys:
        # Redis forgets the record when the database stops replaying it (24 h by default).
        assert 0 < node("PTTL", cache_key(k)) <= DEFAULT_TTL_MS

    for k in keys:
        assert_replay_of(post_key(c, bodies[k], k), first[k])
    hits = counts(srv)
    # The second retry: answered by the cache alone.
    assert delta(hits, filled) == expect(cache_hit=n, idem_hit=n)
    assert node("DBSIZE") == n

    # A cached record still guards its key: another request under it is refused.
    other = dict(bodies[keys[0]], amount="999")
    r = post_key(c, other, keys[0])
    assert r.status == 422 and r.json["code"] == "idempotency_key_reused", r
    assert delta(counts(srv), hits) == expect(cache_hit=1, idem_reused=1)

    # Each transfer applied once, whatever answered the retries.
    total = n * (n + 1) // 2
    assert balances(c, a) == (0, total, 0, 0)
    assert balances(c, b) == (0, 0, 0, total)
    assert len(list_all(c, f"/v1/accounts/{a}/transfers")) == n
    finish(srv, c)


# -- 2. Redis killed under load ---------------------------------------------------------------
def test_redis_killed_under_load_costs_nothing_and_recovers(make_server, farm):
    node = farm.server()
    srv = make_server(env=cache_env(node, **FAST_BREAKER))
    c, ledger, a, b = setup_pair(srv)

    stop = threading.Event()
    lock = threading.Lock()
    book = {}  # key -> (amount, [responses])
    bad = []

    def load(w):
        cl = srv.client(timeout=30)
        i = 0
        try:
            while not stop.is_set():
                i += 1
                key = f"load-{w}-{i}-{uid('k')}"
                amount = i % 7 + 1
                body = transfer_body(a, b, amount, ledger)
                answers = []
                for _ in range(3):  # applied, replayed from the database, from the cache
                    try:
                        answers.append(post_key(cl, body, key))
                    except OSError as e:  # never a dropped or hung connection
                        with lock:
                            bad.append((key, repr(e)))
                        break
                with lock:
                    book[key] = (amount, answers)
        finally:
            cl.close()

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        start = counts(srv)
        assert wait_for(lambda: counts(srv)["cache_hit"] > start["cache_hit"] + 20, timeout=10)

        node.kill9()
        assert wait_for(lambda: counts(srv)["to_open"] >= 1, timeout=10), counts(srv)
        opened = counts(srv)
        assert opened["state"] in ("open", "half_open"), opened
        assert srv.wait_log(lambda o: "circuit breaker open" in o.get("body", ""))
        time.sleep(1.0)
        down = counts(srv)
        d = delta(down, opened)
        # Redis answers nothing: lookups skip it (breaker open) or fail (the half-open probes),
        # and the database answers every one of them.
        assert d["cache_hit"] == 0 and d["cache_miss"] == 0 and d["write_ok"] == 0, d
        assert d["cache_bypassed"] > 0, d
        assert d["idem_miss"] > 0 and d["idem_hit"] > 0, d
        assert d["to_half_open"] >= 1 and d["to_open"] >= 1, d  # probes, refused again

        node.start()  # the same directory and port
        assert wait_for(lambda: counts(srv)["state"] == "closed", timeout=10), counts(srv)
        closed = counts(srv)
        assert closed["to_closed"] > down["to_closed"], closed
        assert srv.wait_log(lambda o: "circuit breaker closed" in o.get("body", ""))
        assert wait_for(lambda: counts(srv)["cache_hit"] > closed["cache_hit"] + 20,
                        timeout=10), counts(srv)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not bad, bad[:5]

    # Every answer is the ledger's: 201 first, then the same 201 replayed, never a 5xx.
    total = 0
    ids = set()
    for key, (amount, answers) in book.items():
        assert len(answers) == 3, (key, answers)
        first = answers[0]
        assert first.status == 201 and not replayed(first), (key, first)
        for r in answers[1:]:
            assert_replay_of(r, first)
        total += amount
        ids.add(first.json["id"])
    assert len(ids) == len(book)
    # No duplicate effects: the transfers stored are exactly the acknowledged ones.
    stored = {t["id"] for t in list_all(c, f"/v1/accounts/{a}/transfers", limit=1000)}
    assert stored == ids
    assert balances(c, a) == (0, total, 0, 0)
    assert balances(c, b) == (0, 0, 0, total)
    print(f"{len(book)} keys, {3 * len(book)} requests")
    finish(srv, c)


# -- 3. Sentinel failover ---------------------------------------------------------------------
def sentinel_master_info(sentinel):
    flat = sentinel("SENTINEL", "MASTER", MASTER_NAME)
    return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}


def test_sentinel_failover_keeps_serving_and_follows_the_new_master(make_server, farm):
    p_master, p_replica, *p_sentinels = free_ports(5)
    master = farm.server(p_master)
    replica = farm.replica(p_replica, master)
    assert wait_for(lambda: b"master_link_status:up" in replica("INFO", "replication"),
                    timeout=10)
    sentinels = [farm.sentinel(p, master, MASTER_NAME) for p in p_sentinels]

    def sentinels_ready():
        for s in sentinels:
            info = sentinel_master_info(s)
            if info["num-slaves"] != "1" or info["num-other-sentinels"] != "2":
                return False
        return True

    assert wait_for(sentinels_ready, timeout=20), [sentinel_master_info(s) for s in sentinels]
    srv = make_server(env=cache_env(
        LEDGERD_REDIS_SENTINELS=",".join(f"127.0.0.1:{p}" for p in p_sentinels),
        LEDGERD_REDIS_MASTER_NAME=MASTER_NAME, **FAST_BREAKER))
    c, ledger, a, b = setup_pair(srv)

    n = 8
    before = counts(srv)
    keys = run_keys(c, ledger, a, b, n, "sent")
    assert delta(counts(srv), before) == expect(cache_hit=n, cache_miss=2 * n, idem_hit=2 * n,
                                                idem_miss=n, write_ok=n)
    assert master("EXISTS", *[cache_key(k) for k in keys]) == n
    assert srv.wait_log(lambda o: o.get("body") == f"redis cache: Sentinel names master "
                                                   f"{MASTER_NAME} at 127.0.0.1:{p_master}")
    assert wait_for(lambda: replica("EXISTS", *[cache_key(k) for k in keys]) == n, timeout=10)

    try:
        master("SHUTDOWN", "NOSAVE")
    except ConnectionError:
        pass  # SHUTDOWN answers by closing the connection

    def promoted():
        return sentinels[0]("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME) == \
            [b"127.0.0.1", str(p_replica).encode()] and replica("ROLE")[0] == b"master"

    # During the failover every request is answered, by the database.
    during = 0
    t0 = time.monotonic()
    while not promoted():
        assert time.monotonic() - t0 < 30 * slow_factor(), "no failover within 30 s"
        run_keys(c, ledger, a, b, 1, "failover")
        during += 1
    print(f"failover took {time.monotonic() - t0:.1f} s, {during} keys meanwhile")
    assert during > 0

    # Afterwards the cache follows the new master by itself: hits again, breaker closed.
    def resumed():
        run_keys(c, ledger, a, b, 1, "resume")
        return counts(srv)["state"] == "closed" and replica("DBSIZE") > n

    assert wait_for(resumed, timeout=20), counts(srv)
    assert srv.wait_log(lambda o: o.get("body") == f"redis cache: Sentinel names master "
                                                   f"{MASTER_NAME} at 127.0.0.1:{p_replica}")
    settled = counts(srv)
    m = 6
    new_keys = run_keys(c, ledger, a, b, m, "after")
    assert delta(counts(srv), settled) == expect(cache_hit=m, cache_miss=2 * m, idem_hit=2 * m,
                                                 idem_miss=m, write_ok=m)
    assert replica("EXISTS", *[cache_key(k) for k in new_keys]) == m
    assert replica("EXISTS", *[cache_key(k) for k in keys]) == n  # replicated before
    finish(srv, c)


# -- 4. a value that does not decode ----------------------------------------------------------
def test_garbage_in_the_cache_is_a_miss_and_is_replaced(make_server, farm):
    node = farm.server()
    srv = make_server(env=cache_env(node))
    c, ledger, a, b = setup_pair(srv)
    key = uid("garbage")
    body = transfer_body(a, b, 5, ledger)
    first = post_key(c, body, key)
    assert first.status == 201, first
    assert_replay_of(post_key(c, body, key), first)  # copied to the cache
    ck = cache_key(key)
    assert node("KEYS", "ledgerd:idem:*") == [ck]
    good = node("GET", ck)
    assert good[0] == 1  # the encoding's version

    # The layout: version, digest (32), status (2), expires_at_ms (8), location length (2),
    # location, body length (4), body.
    loc_len = int.from_bytes(good[43:45], "big")
    body_at = 45 + loc_len
    assert good[body_at + 4:] == first.body
    variants = {
        "text": b"garbage",
        "empty": b"",
        "header only": good[:45],
        "truncated body": good[:-1],
        "trailing byte": good + b"x",
        "unknown version": b"\x02" + good[1:],
        "status 0": good[:33] + b"\0\0" + good[35:],
        "location length too big": good[:43] + b"\xff\xff" + good[45:],
        "body length too big": good[:body_at] + b"\xff\xff\xff\xff" + good[body_at + 4:],
        "expired": good[:35] + (1).to_bytes(8, "big") + good[43:],
        "not a string": None,
    }
    for name, value in variants.items():
        node("DEL", ck)
        if value is None:
            node("RPUSH", ck, "x")  # GET answers WRONGTYPE
        else:
            node("SET", ck, value)
        before = counts(srv)
        assert_replay_of(post_key(c, body, key), first)
        # A miss: the database answers and its record replaces the value.
        assert delta(counts(srv), before) == expect(cache_miss=1, idem_hit=1, write_ok=1), name
        assert node("GET", ck) == good, name
        assert 0 < node("PTTL", ck) <= DEFAULT_TTL_MS, name

    before = counts(srv)
    assert_replay_of(post_key(c, body, key), first)
    after = counts(srv)
    assert delta(after, before) == expect(cache_hit=1, idem_hit=1)
    assert after["state"] == "closed" and after["to_open"] == 0, after
    # Logged once as a warning, then at debug level only.
    warned = [b for b in log_bodies(srv, "WARN") if "does not decode" in b]
    assert len(warned) == 1, warned
    assert balances(c, a) == (0, 5, 0, 0)
    finish(srv, c)


# -- 5. configuration ---------------------------------------------------------------------------
URL_SECRET = "url-secret-Zq8x"

CONFIG_ERRORS = [
    ("sentinels without master name", {"LEDGERD_REDIS_SENTINELS": "127.0.0.1:26379"},
     "LEDGERD_REDIS_SENTINELS"),
    ("url and sentinels", {"LEDGERD_REDIS_URL": "redis://127.0.0.1:6379",
                           "LEDGERD_REDIS_SENTINELS": "127.0.0.1:26379",
                           "LEDGERD_REDIS_MASTER_NAME": "m"}, "LEDGERD_REDIS_URL"),
    ("url and sentinels without master name",
     {"LEDGERD_REDIS_URL": "redis://127.0.0.1:6379",
      "LEDGERD_REDIS_SENTINELS": "127.0.0.1:26379"}, "LEDGERD_REDIS_SENTINELS"),
    ("other scheme", {"LEDGERD_REDIS_URL": "http://127.0.0.1:6379"}, "LEDGERD_REDIS_URL"),
    ("scheme only", {"LEDGERD_REDIS_URL": "redis://"}, "LEDGERD_REDIS_URL"),
    ("port too big", {"LEDGERD_REDIS_URL": "redis://127.0.0.1:65536"}, "LEDGERD_REDIS_URL"),
    ("port 0", {"LEDGERD_REDIS_URL": "redis://127.0.0.1:0"}, "LEDGERD_REDIS_URL"),
    ("port not a number", {"LEDGERD_REDIS_URL": "redis://127.0.0.1:63x9"}, "LEDGERD_REDIS_URL"),
    ("no host", {"LEDGERD_REDIS_URL": "redis://:6379"}, "LEDGERD_REDIS_URL"),
    ("database not a number", {"LEDGERD_REDIS_URL": "redis://127.0.0.1:6379/one"},
     "LEDGERD_REDIS_URL"),
    ("query", {"LEDGERD_REDIS_URL": "redis://127.0.0.1:6379?db=1"}, "LEDGERD_REDIS_URL"),
    ("user without password", {"LEDGERD_REDIS_URL": "redis://user@127.0.0.1:6379"},
     "LEDGERD_REDIS_URL"),
    ("password and a bad port", {"LEDGERD_REDIS_URL": f"redis://:{URL_SECRET}@127.0.0.1:99999"},
     "LEDGERD_REDIS_URL"),
    ("bad escape in the password", {"LEDGERD_REDIS_URL": f"redis://:{URL_SECRET}%zz@127.0.0.1"},
     "LEDGERD_REDIS_URL"),
    ("control character", {"LEDGERD_REDIS_URL": f"redis://:{URL_SECRET}@127.0.0.1\t:1"},
     "LEDGERD_REDIS_URL"),
    ("sentinel without port", {"LEDGERD_REDIS_SENTINELS": "127.0.0.1",
                               "LEDGERD_REDIS_MASTER_NAME": "m"}, "LEDGERD_REDIS_SENTINELS"),
    ("sentinel port 0", {"LEDGERD_REDIS_SENTINELS": "127.0.0.1:0",
                         "LEDGERD_REDIS_MASTER_NAME": "m"}, "LEDGERD_REDIS_SENTINELS"),
    ("sentinel list ends in a comma", {"LEDGERD_REDIS_SENTINELS": "127.0.0.1:1,",
                                       "LEDGERD_REDIS_MASTER_NAME": "m"},
     "LEDGERD_REDIS_SENTINELS"),
    ("sentinel without host", {"LEDGERD_REDIS_SENTINELS": ":26379",
                               "LEDGERD_REDIS_MASTER_NAME": "m"}, "LEDGERD_REDIS_SENTINELS"),
    ("master name with a blank", {"LEDGERD_REDIS_SENTINELS": "127.0.0.1:26379",
                                  "LEDGERD_REDIS_MASTER_NAME": "my master"},
     "LEDGERD_REDIS_MASTER_NAME"),
    ("timeout 0", {"LEDGERD_REDIS_URL": "redis://127.0.0.1:6379",
                   "LEDGERD_REDIS_TIMEOUT_MS": "0"}, "LEDGERD_REDIS_TIMEOUT_MS"),
    ("breaker failures 0", {"LEDGERD_REDIS_URL": "redis://127.0.0.1:6379",
                            "LEDGERD_REDIS_BREAKER_FAILURES": "0"},
     "LEDGERD_REDIS_BREAKER_FAILURES"),
    ("breaker open time too long", {"LEDGERD_REDIS_URL": "redis://127.0.0.1:6379",
                                    "LEDGERD_REDIS_BREAKER_OPEN_MS": "600001"},
     "LEDGERD_REDIS_BREAKER_OPEN_MS"),
    ("password file missing", {"LEDGERD_REDIS_URL": "redis://127.0.0.1:6379",
                               "LEDGERD_REDIS_PASSWORD_FILE": "/nonexistent/redis.pass"},
     "LEDGERD_REDIS_PASSWORD_FILE"),
]


@pytest.mark.parametrize("env,variable", [c[1:] for c in CONFIG_ERRORS],
                         ids=[c[0] for c in CONFIG_ERRORS])
def test_bad_cache_configuration_stops_serve_naming_the_variable(tmp_path, env, variable):
    refused_start(tmp_path, env, variable)


@pytest.mark.parametrize("content", ["", "\n", URL_SECRET * 40], ids=["empty", "newline only",
                                                                      "over 512 bytes"])
def test_unusable_password_file_stops_serve_naming_the_variable(tmp_path, content):
    pw_file = tmp_path / "redis.pass"
    pw_file.write_text(content)
    refused_start(tmp_path, {"LEDGERD_REDIS_URL": "redis://127.0.0.1:6379",
                             "LEDGERD_REDIS_PASSWORD_FILE": str(pw_file)},
                   "LEDGERD_REDIS_PASSWORD_FILE")


def refused_start(tmp_path, env, named):
    """`ledgerd serve` with env exits at once with an error naming `named`, not a crash, and
    without printing a password."""
    env = dict(env, LEDGERD_AUTH="off", LEDGERD_LISTEN="127.0.0.1:0",
               LEDGERD_DB="sqlite://" + str(tmp_path / "ledgerd.db"))
    p = run_cli(["serve", "--migrate"], env=env, cwd=str(tmp_path))
    out = p.stdout + p.stderr
    assert 0 < p.returncode < 128, (p.returncode, out)  # refused, not crashed
    assert named in p.stderr, out
    assert "assertion failed" not in out, out
    assert '"listening"' not in p.stdout, out
    assert URL_SECRET not in out, out


def test_password_file_is_used_and_never_shown(make_server, farm, tmp_path):
    secret = "pw-" + uid("redis")[-20:]
    node = farm.server()
    node("CONFIG", "SET", "requirepass", secret)
    node.password = secret
    with pytest.raises(RespError):
        redis_cmd(node.port, "PING")  # the password is needed now
    pw_file = tmp_path / "redis.pass"
    pw_file.write_text(secret + "\n")
    wrong_file = tmp_path / "wrong.pass"
    wrong_file.write_text("not-" + secret + "\n")

    # With the file: the cache works, exactly as without a password.
    srv = make_server(env=cache_env(node, LEDGERD_REDIS_PASSWORD_FILE=str(pw_file),
                                    LEDGERD_LOG_LEVEL="debug"))
    c, ledger, a, b = setup_pair(srv)
    before = counts(srv)
    keys = run_keys(c, ledger, a, b, 3, "auth")
    assert delta(counts(srv), before) == expect(cache_hit=3, cache_miss=6, idem_hit=6,
                                                idem_miss=3, write_ok=3)
    assert node("EXISTS", *[cache_key(k) for k in keys]) == 3
    finish(srv, c)
    assert secret not in srv.stdout_text() + srv.stderr_text()

    # In the URL: masked when shown, and working the same.
    url_env = cache_env(LEDGERD_REDIS_URL=f"redis://:{secret}@127.0.0.1:{node.port}",
                        LEDGERD_LOG_LEVEL="debug", **FAST_BREAKER)
    srv = make_server(env=url_env)
    c, ledger, a, b = setup_pair(srv)
    before = counts(srv)
    run_keys(c, ledger, a, b, 2, "urlauth")
    assert delta(counts(srv), before) == expect(cache_hit=2, cache_miss=4, idem_hit=4,
                                                idem_miss=2, write_ok=2)
    finish(srv, c)
    assert secret not in srv.stdout_text() + srv.stderr_text()

    # A wrong password: Redis refuses every connection, the database answers everything, and
    # the breaker opens; the reason logged names no password either.
    srv = make_server(env=cache_env(node, LEDGERD_REDIS_PASSWORD_FILE=str(wrong_file),
                                    LEDGERD_LOG_LEVEL="debug",
                                    LEDGERD_REDIS_BREAKER_FAILURES="3",
                                    LEDGERD_REDIS_BREAKER_OPEN_MS="600000"))
    c, ledger, a, b = setup_pair(srv)
    before = counts(srv)
    run_keys(c, ledger, a, b, 3, "wrongauth")
    d = delta(counts(srv), before)
    assert d["cache_hit"] == 0 and d["cache_miss"] == 0 and d["write_ok"] == 0, d
    assert d["cache_bypassed"] == 9 and d["to_open"] == 1, d
    assert d["idem_hit"] == 6 and d["idem_miss"] == 3, d
    assert srv.wait_log(lambda o: "circuit breaker open" in o.get("body", ""))
    finish(srv, c)
    text = srv.stdout_text() + srv.stderr_text()
    assert secret not in text and "not-" + secret not in text

    # `ledgerd config print` names the file, never its content; a URL's password is masked.
    for env in ({"LEDGERD_REDIS_URL": f"redis://127.0.0.1:{node.port}",
                 "LEDGERD_REDIS_PASSWORD_FILE": str(pw_file)}, url_env):
        p = run_cli(["config", "print"], env=dict(env, LEDGERD_AUTH="off"))
        assert p.returncode == 0, p.stderr
        assert secret not in p.stdout + p.stderr, p.stdout
        lines = p.stdout.splitlines()
        if "LEDGERD_REDIS_PASSWORD_FILE" in env:
            assert f"LEDGERD_REDIS_PASSWORD_FILE={pw_file}" in lines, p.stdout
        else:
            assert f"LEDGERD_REDIS_URL=redis://:***@127.0.0.1:{node.port}" in lines, p.stdout
