"""Operations: /livez, /readyz (also while draining), /metrics, graceful shutdown on SIGTERM with
in-flight requests completing, overload as 503 queue_full, and JSON logs (API contract
"Operations", conventions "Operations")."""

import http.client
import pathlib
import re
import signal
import struct
import threading
import time

import pytest

from .ledgerd_harness import (
    assert_json, assert_problem, balances, create_account, new_ledger,
    read_response, slow_factor, transfer_body, uid,
)

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


def test_livez(client):
    r = client.get("/livez")
    assert assert_json(r, 200) == {"status": "ok"}


def test_readyz(client):
    body = assert_json(client.get("/readyz"), 200)
    assert set(body) == {"status", "checks"}, body
    assert body["status"] == "ready"
    # The documented checks; ledgerd may report more, each "ok" when ready.
    assert {"database", "migrations", "draining"} <= set(body["checks"]), body
    assert all(v == "ok" for v in body["checks"].values()), body


def test_logs_are_json_lines_with_standard_fields(server, client):
    client.get("/livez")
    rid = uid("ops")
    client.get("/readyz", headers={"X-Request-Id": rid})
    assert server.wait_log(lambda o: o.get("request_id") == rid) is not None
    text = server.stdout_text()
    lines = [ln for ln in text.split("\n") if ln.strip()]
    assert lines
    assert len(server.log_lines()) == len(lines), "a stdout line is not a JSON object"
    for obj in server.log_lines():
        assert isinstance(obj.get("body"), str), obj
        assert TIMESTAMP.match(str(obj.get("timestamp"))), obj
        assert isinstance(obj.get("severity_text"), str), obj
    listening = [o for o in server.log_lines() if o.get("body") == "listening"]
    assert len(listening) == 1
    for o in server.log_lines():
        if o.get("body") == "request":
            for k in ("request_id", "trace_id", "span_id", "method", "route", "status",
                      "duration_ms", "bytes"):
                assert k in o, (k, o)


def test_sigterm_when_idle_exits_0_quickly(make_server):
    srv = make_server()
    started = time.monotonic()
    srv.assert_clean_stop(timeout=10)
    assert time.monotonic() - started < 5 * slow_factor()


def test_sigterm_drains_in_flight_request_and_turns_readyz_503(make_server):
    srv = make_server(env={"LEDGERD_SHUTDOWN_TIMEOUT_SECONDS": "20"})
    c = srv.client()
    ledger = new_ledger()
    a = create_account(c, ledger)["id"]
    b = create_account(c, ledger)["id"]
    pool = [srv.client() for _ in range(8)]
    for p in pool:
        assert p.get("/livez").status == 200

    tid = uid("tr")
    body = ('{"id":"%s","debit_account_id":"%s","credit_account_id":"%s","amount":"9",'
            '"ledger":"%s","code":1}' % (tid, a, b, ledger)).encode()
    inflight = srv.connect(timeout=20)
    inflight.sendall(b"POST /v1/transfers HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                     b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:20])
    time.sleep(0.3)
    srv.signal(signal.SIGTERM)

    def probe(method, path, body=None):
        """One request during draining: on a pooled keep-alive connection if one is still
        open, else on a new connection. None when the server takes no request at all."""
        for p in pool:
            if p.conn is None:
                continue
            try:
                return p.request(method, path, body, retry=False)
            except (OSError, http.client.HTTPException):
                p.close()
        fresh = srv.client(timeout=2)
        try:
            return fresh.request(method, path, body, retry=False)
        except (OSError, http.client.HTTPException):
            return None
        finally:
            fresh.close()

    ready = None
    deadline = time.monotonic() + 5 * slow_factor()
    while time.monotonic() < deadline:
        r = probe("GET", "/readyz")
        if r is not None and r.status == 503:
            ready = r
            break
        time.sleep(0.1)
    assert ready is not None, "/readyz never answered 503 after SIGTERM"
    problem = assert_problem(ready, 503, ready.json["code"])
    assert problem["code"] in ("not_ready", "shutting_down"), ready
    if problem["code"] == "not_ready":
        assert problem["checks"]["draining"] != "ok", ready

    r = probe("POST", "/v1/accounts", {"ledger": ledger, "code": 1})
    if r is not None:
        assert_problem(r, 503, "shutting_down")
        assert r.headers.get("connection", "").lower() == "close", r

    assert srv.running(), "ledgerd exited with a request still in flight"
    inflight.sendall(body[20:])
    resp = read_response(inflight, "POST")
    inflight.close()
    assert resp.status == 201, resp
    assert resp.json["id"] == tid

    rc = srv.wait_exit(25)
    assert rc == 0, srv.stderr_text()[-3000:]
    for p in pool:
        p.close()
    c.close()
    srv.start()
    c = srv.client()
    assert c.get("/v1/transfers/" + tid).status == 200
    assert balances(c, a) == (0, 9, 0, 0)
    c.close()
    srv.assert_clean_stop()


def test_sigterm_under_load_loses_no_acknowledged_transfer(make_server):
    srv = make_server(env={"LEDGERD_SHUTDOWN_TIMEOUT_SECONDS": "20"})
    c = srv.client()
    ledger = new_ledger()
    a = create_account(c, ledger)["id"]
    b = create_account(c, ledger)["id"]
    c.close()
    outcomes = []  # (transfer id, status or None)
    lock = threading.Lock()
    stop = threading.Event()

    def worker():
        cl = srv.client()
        while not stop.is_set():
            tid = uid("tr")
            try:
                r = cl.post("/v1/transfers", transfer_body(a, b, 1, ledger, id=tid), retry=False)
                status = r.status
            except (OSError, http.client.HTTPException):
                r, status = None, None
                cl.close()
                time.sleep(0.01)
            with lock:
                outcomes.append((tid, status, r))
            if status is None and not srv.running():
                break
        cl.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    srv.signal(signal.SIGTERM)
    rc = srv.wait_exit(25)
    stop.set()
    for t in threads:
        t.join(30)
    assert rc == 0, srv.stderr_text()[-3000:]
    statuses = {s for _, s, _ in outcomes}
    assert statuses <= {201, 503, None}, [r for _, s, r in outcomes if s not in (201, 503, None)]
    for _, s, r in outcomes:
        if s == 503:
            assert_problem(r, 503, "shutting_down")
    acked = [tid for tid, s, _ in outcomes if s == 201]
    refused = [tid for tid, s, _ in outcomes if s == 503]
    assert acked, "nothing was acknowledged before SIGTERM"
    srv.start()
    c = srv.client()
    for tid in acked:
        assert c.get("/v1/transfers/" + tid).status == 200, f"acknowledged {tid} lost"
    for tid in refused:
        assert c.get("/v1/transfers/" + tid).status == 404, f"503 {tid} was committed"
    assert balances(c, a)[1] >= len(acked)
    c.close()
    srv.assert_clean_stop()


def test_queue_full_is_503_with_retry_after_and_commits_nothing(make_server):
    srv = make_server(env={"LEDGERD_QUEUE_DEPTH_MAX": "1"})
    c = srv.client()
    ledger = new_ledger()
    a = create_account(c, ledger)["id"]
    b = create_account(c, ledger)["id"]
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker(i):
        cl = srv.client(timeout=30)
        cl.get("/livez")
        barrier.wait(10)
        for j in range(10):
            k = f"q-{i}-{j}-{uid('')[1:9]}"
            body = transfer_body(a, b, 1, ledger, id=k)
            r = cl.post("/v1/transfers", body, headers={"Idempotency-Key": k})
            with lock:
                results.append((k, body, r))
        cl.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 160
    assert {r.status for _, _, r in results} <= {201, 503}, [r for _, _, r in results
                                                             if r.status not in (201, 503)]
    full = [(k, body, r) for k, body, r in results if r.status == 503]
    for _, _, r in full:
        assert_problem(r, 503, "queue_full")
        assert r.headers.get("retry-after", "").isdigit(), r
    created = sum(1 for _, _, r in results if r.status == 201)
    print(f"queue full: {len(full)} of {len(results)} requests refused")
    assert balances(c, a) == (0, created, 0, 0)
    for k, body, _ in full:
        for _ in range(50):
            r = c.post("/v1/transfers", body, headers={"Idempotency-Key": k})
            if r.status != 503:
                break
            time.sleep(0.05)
        assert r.status == 201 and r.headers.get("idempotent-replayed") != "true", r
    assert balances(c, a) == (0, 160, 0, 0)
    c.close()
    srv.assert_clean_stop()


def _threads(pid):
    """name -> list of nice values of the process's threads, from /proc."""
    out = {}
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended while we looked
        # Fields after the ")" that closes comm: state is field 3, nice is field 19.
        fields = stat[stat.rindex(")") + 2:].split()
        out.setdefault(name, []).append(int(fields[16]))
    return out


@pytest.mark.sqlite_only
def test_threads_are_named_and_the_checkpointer_yields(server, client):
    # top -H, perf and gdb show what each thread is; the WAL checkpointer is background work
    # that runs at nice 10 so the commit worker and the I/O threads go first on a busy core.
    threads = _threads(server.proc.pid)
    assert threads.get("ledgerd-commit") == [0], threads
    assert threads.get("ledgerd-ckpt") == [10], threads
    assert len(threads.get("MHD-worker", [])) >= 1, threads


def wal_restarts(wal):
    """The WAL header's checkpoint sequence number (SQLite file format, "WAL File Format"): it
    goes up each time SQLite starts the WAL over from its beginning after a complete
    checkpoint."""
    with open(wal, "rb") as f:
        head = f.read(32)
    return struct.unpack(">I", head[12:16])[0] if len(head) == 32 else None


@pytest.mark.sqlite_only
def test_wal_is_checkpointed_under_writes(server, client):
    # The checkpointer copies the WAL into the database file in the background, while the
    # server runs: after ~80 MB of transfers the database file holds them, and once a
    # checkpoint is complete the next write starts the WAL over instead of growing it. Waits
    # are for events (bytes in the file, a restart in the WAL header), never a time budget:
    # the checkpointer runs at a lower priority and may lag on a busy machine.
    ledger = new_ledger()
    a = create_account(client, ledger)["id"]
    b = create_account(client, ledger)["id"]
    db = pathlib.Path(server.db_path)
    wal = pathlib.Path(str(server.db_path) + "-wal")
    before = wal_restarts(wal)
    note = {"note": "x" * 1000}
    for _ in range(20):
        body = {"transfers": [transfer_body(a, b, amount="1", ledger=ledger, metadata=note)
                              for _ in range(4000)]}
        r = client.post("/v1/transfers/batch", body)
        assert r.status == 200, r
    deadline = time.monotonic() + 120 * slow_factor()
    while time.monotonic() < deadline and db.stat().st_size < 60 * 1024 * 1024:
        time.sleep(0.1)
    assert db.stat().st_size >= 60 * 1024 * 1024, (db.stat().st_size, wal.stat().st_size)
    extra = 0
    while time.monotonic() < deadline and wal_restarts(wal) == before:
        r = client.post("/v1/transfers", transfer_body(a, b, amount="1", ledger=ledger))
        assert r.status == 201, r
        extra += 1
        time.sleep(0.1)
    assert wal_restarts(wal) != before, (before, wal.stat().st_size)
    assert balances(client, a)[1] == 80000 + extra
