"""Tracing: ledgerd's spans reach an OTLP/HTTP receiver started by the test, in the OTLP JSON
mapping, with the ids of the W3C traceparent it was given; a receiver that is gone or stuck
costs the requests nothing."""

import http.server
import json
import pathlib
import re
import signal
import socket
import threading
import time

import pytest

from .ledgerd_harness import (
    backend, create_account, new_ledger, run_cli, slow_factor, transfer_body, uid, wait_for,
)

# The request's own "idempotency lookup" span: on PostgreSQL (without a Redis cache) the key is
# looked up in the commit's transaction instead, under the batch's COMMIT span.
LOOKUP_SPAN = set() if backend() == "postgres" else {"idempotency lookup"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
SPAN_KIND_SERVER, SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 2, 1, 3
STATUS_ERROR = 2


class Receiver:
    """An OTLP/HTTP collector in miniature: records every export request; answers each with the
    next status of `script` (then 200), like a collector that is briefly overloaded."""

    def __init__(self, script=()):
        self.requests = []
        self.script = list(script)
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    status = outer.script.pop(0) if outer.script else 200
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "body": body, "status": status})
                reply = b"{}" if status == 200 else b'{"message":"busy"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                if status != 200:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def accepted(self):
        with self.lock:
            return [r for r in self.requests if r["status"] == 200]

    def resource_spans(self):
        out = []
        for r in self.accepted():
            out.extend(json.loads(r["body"])["resourceSpans"])
        return out

    def spans(self):
        return [sp for rs in self.resource_spans() for ss in rs["scopeSpans"]
                for sp in ss["spans"]]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def tracing_env(endpoint, **extra):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    env.update(extra)
    return env


def attrs(span_or_resource):
    """OTLP's KeyValue list as a dict of plain values (intValue is a string in OTLP JSON)."""
    out = {}
    for kv in span_or_resource.get("attributes", []):
        assert set(kv) == {"key", "value"}, kv
        (kind, value), = kv["value"].items()
        assert kind in ("stringValue", "intValue", "boolValue", "doubleValue"), kv
        if kind == "intValue":
            assert isinstance(value, str) and re.fullmatch(r"-?\d+", value), kv
            value = int(value)
        out[kv["key"]] = value
    return out


def check_span_shape(sp):
    assert HEX32.match(sp["traceId"]) and sp["traceId"] != "0" * 32, sp
    assert HEX16.match(sp["spanId"]) and sp["spanId"] != "0" * 16, sp
    if "parentSpanId" in sp and sp["parentSpanId"]:
        assert HEX16.match(sp["parentSpanId"]), sp
    assert isinstance(sp["name"], str) and sp["name"], sp
    assert isinstance(sp["kind"], int), sp
    for key in ("startTimeUnixNano", "endTimeUnixNano"):
        assert isinstance(sp[key], str) and sp[key].isdigit(), sp
    assert int(sp["startTimeUnixNano"]) <= int(sp["endTimeUnixNano"]), sp
    for link in sp.get("links", []):
        assert HEX32.match(link["traceId"]) and HEX16.match(link["spanId"]), link
    attrs(sp)


def by_trace(spans, trace_id):
    return [sp for sp in spans if sp["traceId"] == trace_id]


def traceresponse(r):
    m = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", r.headers["traceresponse"])
    assert m, r
    return m.group(1), m.group(2), m.group(3)


def test_spans_arrive_in_the_otlp_json_mapping(make_server, receiver):
    srv = make_server(tracing_env(
        receiver.endpoint, OTEL_SERVICE_NAME="ledgerd-under-test", LEDGERD_ENV="staging",
        LEDGERD_SERVICE_TIER="tier-1",
        OTEL_RESOURCE_ATTRIBUTES="service.instance.id=replica-7,team=pay%20ments",
        OTEL_EXPORTER_OTLP_HEADERS="x-collector-token=s3cret"))
    threads = {p.read_text().strip() for p in pathlib.Path(f"/proc/{srv.proc.pid}/task").glob(
        "*/comm")}
    assert "ledgerd-otlp" in threads, threads  # the exporter runs on its own, named thread
    c = srv.client()
    ledger = new_ledger()
    a = create_account(c, ledger)["id"]
    b = create_account(c, ledger)["id"]
    r = c.post("/v1/transfers", transfer_body(a, b, 5, ledger),
               headers={"Idempotency-Key": uid("k"), "User-Agent": "tracing-test/1.0"})
    assert r.status == 201, r
    trace_id, span_id, flags = traceresponse(r)
    assert flags == "01"
    log = srv.wait_log(lambda x: x.get("route") == "/v1/transfers" and x.get("status") == 201)
    assert log["trace_id"] == trace_id and log["span_id"] == span_id

    def complete():
        mine = by_trace(receiver.spans(), trace_id)
        names = {sp["name"] for sp in mine}
        batches = [sp for sp in receiver.spans() if sp["name"] == "commit batch" and any(
            ln["spanId"] == span_id for ln in sp.get("links", []))]
        if {"POST /v1/transfers", "commit queue wait"} | LOOKUP_SPAN <= names and batches:
            dbs = [sp for sp in receiver.spans() if sp.get("parentSpanId") == batches[0]["spanId"]]
            return (mine, batches[0], dbs) if dbs else None
        return None

    got = wait_for(complete)
    assert got, f"spans missing: {[sp['name'] for sp in receiver.spans()]}"
    mine, batch, dbs = got

    # The export requests: OTLP/HTTP, JSON, the configured header.
    first = receiver.accepted()[0]
    assert first["path"] == "/v1/traces"
    assert first["headers"]["Content-Type"] == "application/json"
    assert first["headers"]["x-collector-token"] == "s3cret"
    for req in receiver.accepted():
        doc = json.loads(req["body"])
        assert set(doc) == {"resourceSpans"}, doc
        for rs in doc["resourceSpans"]:
            assert set(rs) <= {"resource", "scopeSpans", "schemaUrl"}, rs
            for ss in rs["scopeSpans"]:
                assert ss["scope"]["name"] == "ledgerd", ss["scope"]
                for sp in ss["spans"]:
                    check_span_shape(sp)

    # The resource names this process.
    res = attrs(receiver.resource_spans()[0]["resource"])
    assert res["service.name"] == "ledgerd-under-test"
    assert res["service.instance.id"] == "replica-7"
    assert res["deployment.environment.name"] == "staging"
    assert res["service.tier"] == "tier-1"
    assert res["team"] == "pay ments"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", res["service.version"]), res

    # The server span: the request's ids, HTTP semantic conventions.
    server, = [sp for sp in mine if sp["name"] == "POST /v1/transfers"]
    assert server["spanId"] == span_id
    assert not server.get("parentSpanId")
    assert server["kind"] == SPAN_KIND_SERVER
    sa = attrs(server)
    assert sa["http.request.method"] == "POST"
    assert sa["http.route"] == "/v1/transfers"
    assert sa["url.path"] == "/v1/transfers"
    assert sa["url.scheme"] == "http"
    assert sa["http.response.status_code"] == 201
    assert sa["server.port"] == srv.port
    assert sa["server.address"] == "127.0.0.1"
    assert sa["client.address"] == "127.0.0.1"
    assert sa["network.protocol.version"] == "1.1"
    assert sa["user_agent.original"] == "tracing-test/1.0"
    assert server.get("status", {}).get("code", 0) != STATUS_ERROR

    # Its children sit inside it, in the same trace.
    lo, hi = int(server["startTimeUnixNano"]), int(server["endTimeUnixNano"])
    for name in {"commit queue wait"} | LOOKUP_SPAN:
        child, = [sp for sp in mine if sp["name"] == name]
        assert child["parentSpanId"] == span_id, child
        assert child["kind"] == SPAN_KIND_INTERNAL
        assert lo <= int(child["startTimeUnixNano"]) <= int(child["endTimeUnixNano"]) <= hi
    lookups = [sp for sp in mine if sp["name"] == "idempotency lookup"]
    assert len(lookups) == len(LOOKUP_SPAN), lookups
    for lookup in lookups:
        assert attrs(lookup)["ledgerd.idempotency.hit"] is False

    # The group commit: its own trace, linked to the request, the transaction under it.
    assert batch["traceId"] != trace_id and not batch.get("parentSpanId")
    assert {"traceId": trace_id, "spanId": span_id} in batch["links"]
    ba = attrs(batch)
    assert ba["ledgerd.commit.commands"] >= 1 and ba["ledgerd.commit.items"] >= 1
    db, = dbs
    assert db["traceId"] == batch["traceId"] and db["name"] == "COMMIT"
    assert db["kind"] == SPAN_KIND_CLIENT
    da = attrs(db)
    system = "postgresql" if backend() == "postgres" else "sqlite"
    assert da["db.system.name"] == system and da["db.operation.name"] == "COMMIT"
    assert int(batch["startTimeUnixNano"]) <= int(db["startTimeUnixNano"])
    assert int(db["endTimeUnixNano"]) <= int(batch["endTimeUnixNano"])

    c.close()
    srv.assert_clean_stop()


def test_replay_and_refusals_are_traced(make_server, receiver):
    srv = make_server(tracing_env(receiver.endpoint))
    c = srv.client()
    ledger = new_ledger()
    key = uid("k")
    first = c.post("/v1/accounts", {"ledger": ledger, "code": 1}, headers={"Idempotency-Key": key})
    again = c.post("/v1/accounts", {"ledger": ledger, "code": 1}, headers={"Idempotency-Key": key})
    assert first.status == again.status == 201
    missing = c.get("/v1/no-such-thing")
    assert missing.status == 404
    replay_trace, replay_span, _ = traceresponse(again)
    missing_trace, missing_span, _ = traceresponse(missing)

    def spans_of(trace_id):
        return by_trace(receiver.spans(), trace_id)

    assert wait_for(lambda: len(spans_of(replay_trace)) >= 2 and spans_of(missing_trace))
    replay = spans_of(replay_trace)
    if LOOKUP_SPAN:
        lookup, = [sp for sp in replay if sp["name"] == "idempotency lookup"]
        assert attrs(lookup)["ledgerd.idempotency.hit"] is True
        assert lookup["parentSpanId"] == replay_span
        # A replay is answered from the stored record: it never waits for a commit.
        assert not [sp for sp in replay if sp["name"] == "commit queue wait"]
    else:
        # PostgreSQL: the key is looked up in the commit's transaction, which replays it.
        assert not [sp for sp in replay if sp["name"] == "idempotency lookup"]
        wait, = [sp for sp in replay if sp["name"] == "commit queue wait"]
        assert wait["parentSpanId"] == replay_span

    # No route matched: the span is named by the method alone and has no http.route.
    nf, = spans_of(missing_trace)
    assert nf["name"] == "GET" and nf["spanId"] == missing_span
    na = attrs(nf)
    assert "http.route" not in na and na["http.response.status_code"] == 404
    assert nf.get("status", {}).get("code", 0) != STATUS_ERROR  # a 4xx is the client's error
    c.close()
    srv.assert_clean_stop()


def test_incoming_traceparent_is_continued_and_sampling_follows_it(make_server, receiver):
    # Ratio 0 for new traces: only requests whose caller sampled them are recorded.
    srv = make_server(tracing_env(receiver.endpoint,
                                  OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                                  OTEL_TRACES_SAMPLER_ARG="0"))
    c = srv.client()
    sampled_trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    unsampled_trace = "5bf92f3577b34da6a3ce929d0e0e4737"
    r1 = c.get("/v1/accounts?limit=1", headers={
        "traceparent": f"00-{sampled_trace}-{parent}-01", "tracestate": "vendor=abc"})
    r2 = c.get("/v1/accounts?limit=1", headers={"traceparent": f"00-{unsampled_trace}-{parent}-00"})
    r3 = c.get("/v1/accounts?limit=1")  # a new trace at ratio 0
    t1, s1, f1 = traceresponse(r1)
    t2, _, f2 = traceresponse(r2)
    t3, _, f3 = traceresponse(r3)
    assert (t1, f1) == (sampled_trace, "01")
    assert (t2, f2) == (unsampled_trace, "00")
    assert f3 == "00"

    assert wait_for(lambda: by_trace(receiver.spans(), sampled_trace))
    server, = by_trace(receiver.spans(), sampled_trace)
    assert server["spanId"] == s1 and server["parentSpanId"] == parent
    assert server["name"] == "GET /v1/accounts"
    assert server.get("traceState") == "vendor=abc"
    # Give the exporter a few schedule delays: the unsampled ones must never arrive.
    time.sleep(0.5 * slow_factor())
    assert not by_trace(receiver.spans(), unsampled_trace)
    assert not by_trace(receiver.spans(), t3)
    c.close()
    srv.assert_clean_stop()


def test_overloaded_receiver_gets_the_batch_again(make_server):
    receiver = Receiver(script=[503, 429])
    try:
        srv = make_server(tracing_env(receiver.endpoint))
        c = srv.client()
        r = c.get("/v1/accounts?limit=1")
        trace_id, _, _ = traceresponse(r)
        assert wait_for(lambda: by_trace(receiver.spans(), trace_id), 20)
        statuses = [x["status"] for x in receiver.requests]
        assert statuses[:3] == [503, 429, 200], statuses
        # The same spans, sent again: nothing lost, nothing doubled.
        bodies = [x["body"] for x in receiver.requests[:3]]
        assert bodies[0] == bodies[1] == bodies[2]
        metrics = c.get("/metrics").body.decode()
        assert re.search(r"^ledgerd_spans_dropped_total 0$", metrics, re.M), metrics
        assert wait_for(lambda: re.search(
            r"^ledgerd_spans_exported_total [1-9]", c.get("/metrics").body.decode(), re.M))
        c.close()
        srv.assert_clean_stop()
    finally:
        receiver.close()


class StuckReceiver:
    """Accepts connections and never answers: the worst a collector can do."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.mark.parametrize("receiver_kind", ["stuck", "refused"])
def test_a_dead_receiver_costs_requests_nothing(make_server, receiver_kind):
    stuck = StuckReceiver()
    if receiver_kind == "refused":
        stuck.close()  # the port is free again: connections are refused
    try:
        srv = make_server(tracing_env(
            f"http://127.0.0.1:{stuck.port}", OTEL_BSP_MAX_QUEUE_SIZE="64",
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE="16", OTEL_EXPORTER_OTLP_TIMEOUT="60000"))
        c = srv.client()
        ledger = new_ledger()
        a = create_account(c, ledger)["id"]
        b = create_account(c, ledger)["id"]
        # Far more spans than the queue holds; every request must still be answered.
        for i in range(150):
            r = c.post("/v1/transfers", transfer_body(a, b, 1, ledger),
                       headers={"Idempotency-Key": uid("k")})
            assert r.status == 201, r
            assert c.get(f"/v1/accounts/{a}").status == 200
        assert int(c.get(f"/v1/accounts/{a}").json["debits_posted"]) == 150
        metrics = c.get("/metrics").body.decode()
        dropped = int(re.search(r"^ledgerd_spans_dropped_total (\d+)$", metrics, re.M).group(1))
        assert dropped > 0, metrics
        assert re.search(r"^ledgerd_spans_exported_total 0$", metrics, re.M), metrics
        c.close()
        # The exporter gives up at shutdown instead of holding the process.
        srv.assert_clean_stop(timeout=15)
    finally:
        stuck.close()


def test_tracing_off_sends_nothing(make_server, receiver):
    srv = make_server({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                       "OTEL_SDK_DISABLED": "true"})
    threads = {p.read_text().strip() for p in pathlib.Path(f"/proc/{srv.proc.pid}/task").glob(
        "*/comm")}
    assert "ledgerd-otlp" not in threads, threads
    c = srv.client()
    for _ in range(5):
        assert c.get("/v1/accounts?limit=1").status == 200
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(30) == 0
    assert receiver.requests == []
    c.close()


@pytest.mark.parametrize("settings,reason", [
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ({"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}, "OTEL_EXPORTER_OTLP_COMPRESSION"),
    ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
     "OTEL_TRACES_SAMPLER_ARG"),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "-3"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "team"}, "OTEL_RESOURCE_ATTRIBUTES"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"OTEL_EXPORTER_OTLP_HEADERS": "token"}, "OTEL_EXPORTER_OTLP_HEADERS"),
])
def test_a_bad_tracing_setting_stops_start_up(tmp_path, settings, reason):
    env = {"LEDGERD_DB": f"sqlite://{tmp_path}/l.db", "LEDGERD_LISTEN": "127.0.0.1:0",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    env.update(settings)
    p = run_cli(["serve", "--migrate"], env=env, timeout=20)
    assert p.returncode != 0, p
    assert reason in p.stderr, p.stderr
