"""GET /metrics against what the tests did: every counter and histogram moves by exactly the
requests sent (creates, a 404 by route and an unmatched one, a 405, a 422, idempotent replays,
409 in flight, a full commit queue), label values are bounded (no id ever appears), every family
has HELP and TYPE, `promtool check metrics` is clean when installed, and the OpenMetrics format
is negotiated by Accept (garbage gets the Prometheus text format)."""

import json
import re
import shutil
import subprocess
import threading
import time

import pytest

from .ledgerd_harness import (
    assert_problem, backend, create_account, new_ledger, raw_exchange, slow_factor, transfer_body,
    uid,
)

PROM_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OM_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# The metric names of the contract (docs/operations/metrics.md), with their types.
FAMILIES = {
    "ledgerd_http_requests_total": "counter",
    "ledgerd_http_request_duration_seconds": "histogram",
    "ledgerd_http_requests_in_flight": "gauge",
    "ledgerd_http_request_body_bytes": "histogram",
    "ledgerd_idempotency_lookups_total": "counter",
    "ledgerd_db_pool_size": "gauge",
    "ledgerd_db_pool_connections": "gauge",
    "ledgerd_db_pool_acquire_wait_seconds": "histogram",
    "ledgerd_db_pool_acquire_timeouts_total": "counter",
    "ledgerd_commit_queue_depth": "gauge",
    "ledgerd_commit_queue_capacity": "gauge",
    "ledgerd_commit_queue_rejections_total": "counter",
    "ledgerd_commit_queue_wait_seconds": "histogram",
    "ledgerd_commit_batch_commands": "histogram",
    "ledgerd_commit_batch_items": "histogram",
    "ledgerd_commit_duration_seconds": "histogram",
    "ledgerd_commit_failures_total": "counter",
    "ledgerd_transfers_total": "counter",
    "ledgerd_accounts_total": "counter",
    "ledgerd_pending_transfers_expired_total": "counter",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
    "process_threads": "gauge",
    "ledgerd_build_info": "gauge",
    "ledgerd_log_lines_dropped_total": "counter",
    "ledgerd_spans_dropped_total": "counter",
    "ledgerd_spans_exported_total": "counter",
    "ledgerd_up": "gauge",
}

ROUTES = {"/livez", "/readyz", "/metrics", "/v1/accounts", "/v1/accounts/{id}",
          "/v1/accounts/{id}/transfers", "/v1/transfers", "/v1/transfers/batch",
          "/v1/transfers/{id}", "unmatched"}

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse(text):
    """{(name, ((label, value), ...)): float}, HELP names and TYPE names."""
    samples, helps, types = {}, {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in helps, f"two HELP lines for {name}"
            helps[name] = help_text
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name not in types, f"two TYPE lines for {name}"
            types[name] = kind
            continue
        if line == "# EOF" or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"malformed sample line: {line!r}"
        labels = []
        if m.group(2):
            rest = m.group(2)
            pos = 0
            while pos < len(rest):
                lm = LABEL.match(rest, pos)
                assert lm, f"malformed labels in {line!r}"
                value = re.sub(r'\\(.)', lambda e: {"n": "\n"}.get(e.group(1), e.group(1)),
                               lm.group(2))
                labels.append((lm.group(1), value))
                pos = lm.end()
        key = (m.group(1), tuple(labels))
        assert key not in samples, f"duplicate series {key}"
        samples[key] = float(m.group(3))
    return samples, helps, types


class Scrape:
    def __init__(self, client, accept=None):
        headers = {"Accept": accept} if accept is not None else None
        r = client.get("/metrics", headers=headers)
        assert r.status == 200, r
        self.content_type = r.headers.get("content-type")
        self.text = r.body.decode("utf-8")
        self.samples, self.helps, self.types = parse(self.text)

    def value(self, name, **labels):
        """The sample's value; 0 for a series not (yet) exposed."""
        return self.samples.get((name, tuple(labels.items())), 0.0)

    def hist_count(self, name, **labels):
        return self.value(name + "_count", **labels)

    def hist_sum(self, name, **labels):
        return self.value(name + "_sum", **labels)

    def series(self, name):
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


def delta(before, after, name, **labels):
    return after.value(name, **labels) - before.value(name, **labels)


def req_delta(before, after, method, route, code):
    return delta(before, after, "ledgerd_http_requests_total", method=method, route=route,
                 code=str(code))


def dur_delta(before, after, method, route, status_class):
    return delta(before, after, "ledgerd_http_request_duration_seconds_count", method=method,
                 route=route, status_class=status_class)


def body_len(body):
    return len(json.dumps(body).encode())


@pytest.fixture
def srv(make_server):
    """A server of the test's own, so every delta is the test's; it must stop cleanly (no
    sanitizer report, no leak) once the test passed."""
    server = make_server()
    yield server
    server.assert_clean_stop()


# --- the exposition ------------------------------------------------------------------------


def test_every_family_has_help_and_type_and_promtool_is_clean(srv):
    c = srv.client()
    create_account(c, new_ledger())
    c.get("/nope")
    s = Scrape(c)
    assert s.content_type == PROM_TYPE
    for name, kind in FAMILIES.items():
        assert s.types.get(name) == kind, name
        assert s.helps.get(name), name
    for (name, _), _v in s.samples.items():
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        family = family if family in s.types else name
        assert family in s.types and family in s.helps, f"{name} has no HELP/TYPE"
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=s.text, text=True,
                           capture_output=True, timeout=30)
        assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), (
            p.stdout + p.stderr)
    c.close()


def test_build_info_up_in_flight_and_process(srv):
    c = srv.client()
    s = Scrape(c)
    info = s.series("ledgerd_build_info")
    assert len(info) == 1
    (labels, value), = info.items()
    labels = dict(labels)
    assert value == 1 and set(labels) == {"version", "commit"}
    assert re.match(r"^\d+\.\d+\.\d+", labels["version"]), labels
    assert labels["commit"], labels
    assert s.value("ledgerd_up") == 1
    assert c.get("/readyz").status == 200
    # The scrape itself is the one request in flight.
    assert s.value("ledgerd_http_requests_in_flight") == 1
    assert s.value("process_threads") >= 3  # main, commit worker, checkpointer, I/O
    assert s.value("process_resident_memory_bytes") > 1 << 20
    assert s.value("process_virtual_memory_bytes") >= s.value("process_resident_memory_bytes")
    assert 0 < s.value("process_open_fds") <= s.value("process_max_fds")
    now = time.time()
    assert now - 600 < s.value("process_start_time_seconds") <= now + 1
    assert s.value("process_cpu_seconds_total") >= 0
    # The pool: one writer on SQLite; on PostgreSQL up to LEDGERD_DB_WRITERS (2), opened on
    # first use (the migration's connection is not kept). Idle between commits; readers are per
    # I/O thread that read.
    writers = s.value("ledgerd_db_pool_size", role="writer")
    if backend() == "postgres":
        assert 0 <= writers <= 2, writers
    else:
        assert writers == 1
    assert s.value("ledgerd_db_pool_connections", role="writer", state="idle") == writers
    assert s.value("ledgerd_db_pool_connections", role="writer", state="in_use") == 0
    assert s.value("ledgerd_db_pool_size", role="reader") >= 1
    assert s.value("ledgerd_db_pool_acquire_timeouts_total", role="writer") == 0
    assert ("ledgerd_db_pool_acquire_timeouts_total", (("role", "reader"),)) in s.samples
    for name in ("ledgerd_log_lines_dropped_total", "ledgerd_spans_dropped_total",
                 "ledgerd_spans_exported_total", "ledgerd_commit_failures_total"):
        assert s.value(name) == 0, name
    assert s.value("ledgerd_commit_queue_depth") == 0
    assert s.value("ledgerd_commit_queue_capacity") == 4096
    # A second scrape counts the first.
    s2 = Scrape(c)
    assert req_delta(s, s2, "GET", "/metrics", 200) == 1
    c.close()


# --- every metric moves by exactly what was done -------------------------------------------


def test_requests_and_ledger_results_count_exactly(srv):
    c = srv.client()
    ledger = new_ledger()
    before = Scrape(c)
    bodies = []
    ids = []
    for flags in (["debits_must_not_exceed_credits"], None, None):
        body = {"ledger": ledger, "code": 1}
        if flags:
            body["flags"] = flags
        r = c.post("/v1/accounts", body)
        assert r.status == 201, r
        bodies.append(body)
        ids.append(r.json["id"])
    limited, a, b = ids
    # 201: a transfer; 422: the limited account cannot be debited.
    ok = transfer_body(a, b, 5, ledger)
    assert c.post("/v1/transfers", ok).status == 201
    refused = transfer_body(limited, b, 1, ledger)
    assert_problem(c.post("/v1/transfers", refused), 422, "exceeds_credits")
    # 404 on a route, 404 on no route, 405, 400.
    assert c.get("/v1/accounts/" + uid("missing")).status == 404
    assert c.get("/no/such/path").status == 404
    assert c.request("DELETE", "/v1/accounts").status == 405
    bad = {"ledger": ledger}
    assert c.post("/v1/accounts", bad).status == 400
    after = Scrape(c)

    assert req_delta(before, after, "POST", "/v1/accounts", 201) == 3
    assert req_delta(before, after, "POST", "/v1/accounts", 400) == 1
    assert req_delta(before, after, "POST", "/v1/transfers", 201) == 1
    assert req_delta(before, after, "POST", "/v1/transfers", 422) == 1
    assert req_delta(before, after, "GET", "/v1/accounts/{id}", 404) == 1
    assert req_delta(before, after, "GET", "unmatched", 404) == 1
    assert req_delta(before, after, "DELETE", "/v1/accounts", 405) == 1
    assert req_delta(before, after, "GET", "/metrics", 200) == 1  # the first scrape
    total = sum(v for (n, _), v in after.samples.items() if n == "ledgerd_http_requests_total")
    total -= sum(v for (n, _), v in before.samples.items() if n == "ledgerd_http_requests_total")
    assert total == 10
    # Durations: one observation per request, by status class.
    assert dur_delta(before, after, "POST", "/v1/accounts", "2xx") == 3
    assert dur_delta(before, after, "POST", "/v1/accounts", "4xx") == 1
    assert dur_delta(before, after, "POST", "/v1/transfers", "2xx") == 1
    assert dur_delta(before, after, "POST", "/v1/transfers", "4xx") == 1
    assert dur_delta(before, after, "GET", "unmatched", "4xx") == 1
    assert dur_delta(before, after, "DELETE", "/v1/accounts", "4xx") == 1
    assert delta(before, after, "ledgerd_http_request_duration_seconds_sum", method="POST",
                 route="/v1/accounts", status_class="2xx") > 0
    # Bodies: the exact bytes sent, per route.
    name = "ledgerd_http_request_body_bytes"
    assert delta(before, after, name + "_count", route="/v1/accounts") == 4
    assert delta(before, after, name + "_sum", route="/v1/accounts") == (
        sum(body_len(x) for x in bodies) + body_len(bad))
    assert delta(before, after, name + "_count", route="/v1/transfers") == 2
    assert delta(before, after, name + "_sum", route="/v1/transfers") == (
        body_len(ok) + body_len(refused))
    assert delta(before, after, name + "_bucket", route="/v1/transfers", le="256") == 2
    # The ledger: results of committed items.
    assert delta(before, after, "ledgerd_accounts_total", result="created") == 3
    assert delta(before, after, "ledgerd_transfers_total", result="created") == 1
    assert delta(before, after, "ledgerd_transfers_total", result="exceeds_credits") == 1
    assert delta(before, after, "ledgerd_transfers_total", result="exists") == 0
    # One client, one request at a time: five commands, five batches of one item each.
    for h in ("ledgerd_commit_batch_commands", "ledgerd_commit_batch_items",
              "ledgerd_commit_queue_wait_seconds", "ledgerd_commit_duration_seconds"):
        assert delta(before, after, h + "_count") == 5, h
    assert delta(before, after, "ledgerd_commit_batch_commands_sum") == 5
    assert delta(before, after, "ledgerd_commit_batch_items_sum") == 5
    assert delta(before, after, "ledgerd_commit_batch_items_bucket", le="1") == 5
    # The writer was taken once per commit; every read took a reader.
    assert delta(before, after, "ledgerd_db_pool_acquire_wait_seconds_count", role="writer") == 5
    assert delta(before, after, "ledgerd_db_pool_acquire_wait_seconds_count", role="reader") >= 2
    c.close()


def test_batch_counts_items_by_result(srv):
    c = srv.client()
    ledger = new_ledger()
    a = create_account(c, ledger)["id"]
    b = create_account(c, ledger)["id"]
    before = Scrape(c)
    items = [transfer_body(a, b, 1, ledger) for _ in range(6)]
    items.append(transfer_body(a, uid("ghost"), 1, ledger))
    r = c.post("/v1/transfers/batch", {"transfers": items})
    assert r.status == 200, r
    after = Scrape(c)
    assert delta(before, after, "ledgerd_transfers_total", result="created") == 6
    assert delta(before, after, "ledgerd_transfers_total",
                 result="credit_account_not_found") == 1
    assert delta(before, after, "ledgerd_commit_batch_items_sum") == 7
    assert delta(before, after, "ledgerd_commit_batch_items_bucket", le="16") == 1
    assert delta(before, after, "ledgerd_commit_batch_items_bucket", le="4") == 0
    assert req_delta(before, after, "POST", "/v1/transfers/batch", 200) == 1
    c.close()


def test_idempotency_lookups_by_result(srv):
    c = srv.client()
    ledger = new_ledger()
    a = create_account(c, ledger)["id"]
    b = create_account(c, ledger)["id"]
    before = Scrape(c)
    k = uid("key")
    body = transfer_body(a, b, 3, ledger)
    first = c.post("/v1/transfers", body, headers={"Idempotency-Key": k})
    assert first.status == 201
    for _ in range(2):
        again = c.post("/v1/transfers", body, headers={"Idempotency-Key": k})
        assert again.status == 201 and again.headers.get("idempotent-replayed") == "true"
    other = transfer_body(a, b, 4, ledger)
    assert_problem(c.post("/v1/transfers", other, headers={"Idempotency-Key": k}), 422,
                   "idempotency_key_reused")
    # Without a key there is no lookup.
    assert c.post("/v1/transfers", transfer_body(a, b, 1, ledger)).status == 201
    after = Scrape(c)
    name = "ledgerd_idempotency_lookups_total"
    assert delta(before, after, name, result="miss") == 1
    assert delta(before, after, name, result="hit") == 2
    assert delta(before, after, name, result="reused") == 1
    assert delta(before, after, name, result="in_flight") == 0
    assert req_delta(before, after, "POST", "/v1/transfers", 201) == 4  # replays included
    assert req_delta(before, after, "POST", "/v1/transfers", 422) == 1
    # A replay commits nothing.
    assert delta(before, after, "ledgerd_transfers_total", result="created") == 2
    c.close()


def test_in_flight_conflicts_are_counted(srv):
    c = srv.client()
    ledger = new_ledger()
    a = create_account(c, ledger)["id"]
    b = create_account(c, ledger)["id"]
    before = Scrape(c)
    n = 16
    busy = 0
    replays = 0
    for _ in range(3):
        k = uid("key")
        body = transfer_body(a, b, 1, ledger)
        clients = [srv.client(timeout=30) for _ in range(n)]
        for cl in clients:
            assert cl.get("/livez").status == 200
        barrier = threading.Barrier(n)
        results = [None] * n

        def worker(i, k=k, body=body, clients=clients, barrier=barrier, results=results):
            barrier.wait(10)
            results[i] = clients[i].post("/v1/transfers", body, headers={"Idempotency-Key": k})

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for cl in clients:
            cl.close()
        assert all(r is not None and r.status in (201, 409) for r in results), results
        busy += sum(1 for r in results if r.status == 409)
        replays += sum(1 for r in results
                       if r.status == 201 and r.headers.get("idempotent-replayed") == "true")
    after = Scrape(c)
    name = "ledgerd_idempotency_lookups_total"
    assert delta(before, after, name, result="in_flight") == busy
    assert delta(before, after, name, result="miss") == 3
    assert delta(before, after, name, result="hit") == replays
    assert req_delta(before, after, "POST", "/v1/transfers", 409) == busy
    print(f"409 in flight: {busy}, replays: {replays}")
    c.close()


def test_full_queue_rejections_are_counted(make_server):
    srv = make_server(env={"LEDGERD_QUEUE_DEPTH_MAX": "1"})
    c = srv.client()
    ledger = new_ledger()
    a = create_account(c, ledger)["id"]
    b = create_account(c, ledger)["id"]
    before = Scrape(c)
    assert before.value("ledgerd_commit_queue_capacity") == 1
    statuses = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker():
        cl = srv.client(timeout=30)
        cl.get("/livez")
        barrier.wait(10)
        for _ in range(10):
            r = cl.post("/v1/transfers", transfer_body(a, b, 1, ledger))
            with lock:
                statuses.append(r.status)
        cl.close()

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(statuses) == 160 and set(statuses) <= {201, 503}
    full = statuses.count(503)
    after = Scrape(c)
    assert delta(before, after, "ledgerd_commit_queue_rejections_total", reason="full") == full
    assert delta(before, after, "ledgerd_commit_queue_rejections_total",
                 reason="shutting_down") == 0
    assert req_delta(before, after, "POST", "/v1/transfers", 503) == full
    assert delta(before, after, "ledgerd_transfers_total", result="created") == 160 - full
    assert delta(before, after, "ledgerd_commit_queue_wait_seconds_count") == 160 - full
    assert after.value("ledgerd_commit_queue_depth") == 0
    print(f"queue full: {full} of 160")
    c.close()
    srv.assert_clean_stop()


def test_expired_pending_transfers_are_counted(srv):
    c = srv.client()
    ledger = new_ledger()
    a = create_account(c, ledger)["id"]
    b = create_account(c, ledger)["id"]
    before = Scrape(c)
    for _ in range(2):
        r = c.post("/v1/transfers", transfer_body(a, b, 10, ledger, flags=["pending"],
                                                   timeout_seconds=1))
        assert r.status == 201, r
    deadline = time.time() + 10 * slow_factor()
    while True:
        after = Scrape(c)
        if delta(before, after, "ledgerd_pending_transfers_expired_total") >= 2 or (
                time.time() > deadline):
            break
        time.sleep(0.2)
    assert delta(before, after, "ledgerd_pending_transfers_expired_total") == 2
    c.close()


# --- bounded labels ------------------------------------------------------------------------


def test_no_label_value_holds_an_id(srv):
    c = srv.client()
    ledger = new_ledger()
    ids = [create_account(c, ledger, id=uid("acct"))["id"] for _ in range(2)]
    tid = uid("xfer")
    assert c.post("/v1/transfers", transfer_body(*ids, 1, ledger, id=tid)).status == 201
    for path in ("/v1/accounts/" + ids[0], "/v1/transfers/" + tid,
                 f"/v1/accounts/{ids[0]}/transfers", "/v1/accounts/" + uid("nobody"),
                 "/v1/" + uid("junk"), "/" + uid("x") + "/" + uid("y")):
        c.get(path)
    k = uid("idemkey")
    c.post("/v1/transfers", transfer_body(*ids, 1, ledger), headers={"Idempotency-Key": k,
                                                                      "X-Request-Id": uid("rq")})
    s = Scrape(c)
    for needle in ids + [tid, k, ledger, "nobody", "junk", "idemkey", "rq-"]:
        assert needle not in s.text, needle
    for (name, labels), _ in s.samples.items():
        for label, value in labels:
            if label == "route":
                # A template of the route table (lower case, {id} for the variable segment).
                assert value in ROUTES or re.match(r"^/[a-z0-9/_.-]*(\{id\}[a-z0-9/_.-]*)*$",
                                                   value), value
            if label == "code":
                assert re.match(r"^[1-5]\d\d$", value), value
            if label == "method":
                assert value in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
                                 "other"}
    # An unknown method is "other", whatever it is called.
    raw = raw_exchange(srv, b"BREW /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert raw is not None
    s2 = Scrape(c)
    assert "BREW" not in s2.text
    c.close()


# --- negotiation ---------------------------------------------------------------------------


def test_openmetrics_is_negotiated(srv):
    c = srv.client()
    create_account(c, new_ledger())
    prometheus_accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-"
                         "text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    om = Scrape(c, accept=prometheus_accept)
    assert om.content_type == OM_TYPE
    assert om.text.endswith("# EOF\n")
    assert om.text.count("# EOF") == 1
    assert om.types["ledgerd_http_requests"] == "counter"
    assert "ledgerd_http_requests_total" not in om.types
    assert om.helps["ledgerd_http_requests"]
    assert om.types["ledgerd_build"] == "info"
    assert om.types["ledgerd_http_request_duration_seconds"] == "histogram"
    assert any(n == "ledgerd_http_requests_total" for n, _ in om.samples)
    assert 'le="1.0"' in om.text and 'le="1"' not in om.text
    for accept in ("text/plain", "*/*", "application/json", "", "garbage;;;,,,q=7",
                   "application/openmetrics-text;q=0", "application/openmetrics-text;q=banana",
                   "application/openmetrics-text;q=0.2, text/plain;q=0.8", "x" * 4000,
                   "\u00ff\u00fe" * 50):
        s = Scrape(c, accept=accept)
        assert s.content_type == PROM_TYPE, accept
        assert "# EOF" not in s.text
    assert Scrape(c, accept="text/plain;q=0.1, application/openmetrics-text").content_type == (
        OM_TYPE)
    c.close()


def test_metrics_is_open_and_get_only(srv):
    c = srv.client()
    r = c.get("/metrics", headers={"Authorization": "Bearer nonsense"})
    assert r.status == 200
    assert r.headers.get("x-request-id") and r.headers.get("traceresponse")
    r = c.post("/metrics", {"a": 1})
    assert_problem(r, 405, "method_not_allowed")
    assert r.headers.get("allow") == "GET"
    c.close()
