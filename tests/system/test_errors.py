"""Errors as RFC 9457 problems: 404, 405 with Allow, 413 (by Content-Length and while reading a
chunked body), 415, malformed JSON with its byte offset, unknown fields (API contract
"Conventions", conventions "Requests" and "Errors")."""

import re
import select

import pytest

from .ledgerd_harness import (
    assert_problem, create_account, new_ledger, read_response, raw_exchange,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A server with a 64 KiB body limit."""
    from .ledgerd_harness import Server
    srv = Server(tmp_path_factory.mktemp("ledgerd-small"),
                 env={"LEDGERD_BODY_BYTES_MAX": "65536"})
    try:
        srv.start()
        yield srv
        srv.assert_clean_stop()
    finally:
        srv.kill()


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"), ("GET", "/"), ("GET", "/v1"), ("GET", "/v2/accounts"),
    ("GET", "/v1/accounts/a/b/c"), ("POST", "/v1/nothing"), ("GET", "/v1/transfers/a/b"),
    ("GET", "/V1/ACCOUNTS"),
])
def test_unknown_route_is_404(client, method, path):
    r = client.request(method, path, b"{}" if method == "POST" else None)
    assert_problem(r, 404, "not_found")


@pytest.mark.parametrize("method,path,allowed", [
    ("DELETE", "/v1/accounts", {"GET", "POST"}),
    ("PUT", "/v1/accounts", {"GET", "POST"}),
    ("POST", "/v1/accounts/abc", {"GET"}),
    ("DELETE", "/v1/accounts/abc", {"GET"}),
    ("GET", "/v1/transfers", {"POST"}),
    ("PATCH", "/v1/transfers/abc", {"GET"}),
    ("GET", "/v1/transfers/batch", None),
    ("POST", "/v1/accounts/abc/transfers", {"GET"}),
    ("POST", "/livez", {"GET"}),
    ("DELETE", "/readyz", {"GET"}),
])
def test_wrong_method_is_405_with_allow(client, method, path, allowed):
    r = client.request(method, path, b"{}" if method in ("POST", "PUT", "PATCH") else None)
    if allowed is None:
        # GET /v1/transfers/batch may read as a transfer named "batch"; either answer is a
        # clean problem, never a 5xx.
        if r.status == 404:
            assert_problem(r, 404, "transfer_not_found")
            return
        allowed = {"POST"}
    assert_problem(r, 405, "method_not_allowed")
    allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
    assert allowed <= allow, r
    assert method not in allow, r


def test_body_exactly_at_limit_is_read(small):
    c = small.client()
    body = '{"ledger":"%s","code":1' % new_ledger()
    body += " " * (65536 - len(body) - 1) + "}"
    assert len(body) == 65536
    r = c.post("/v1/accounts", body)
    assert r.status == 201, r
    c.close()


def test_content_length_over_limit_is_413_before_reading(small):
    head = (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 65537\r\n\r\n")
    r = raw_exchange(small, head, timeout=5, method="POST")  # the body is never sent
    assert_problem(r, 413, "body_too_large")


def test_default_limit_is_1_mib(server):
    head = (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1048577\r\n\r\n")
    assert_problem(raw_exchange(server, head, timeout=5, method="POST"), 413, "body_too_large")


def test_batch_limit_is_8_mib(server):
    head = (b"POST /v1/transfers/batch HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 8388609\r\n\r\n")
    assert_problem(raw_exchange(server, head, timeout=5, method="POST"), 413, "body_too_large")


def test_batch_body_of_2_mib_is_not_413(server):
    head = (b"POST /v1/transfers/batch HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n")
    body = b'{"transfers":[]' + b" " * (2097152 - 16) + b"}"
    r = raw_exchange(server, head + body, timeout=30, method="POST")
    assert_problem(r, 400, "batch_size_invalid")


def send_chunked_until_answer(srv, path, total, chunk=8192):
    """Streams a chunked body of about total bytes (stopping early if the server answers before
    the end; it may also answer once the body is complete) and returns the response."""
    s = srv.connect(timeout=10)
    try:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n".encode())
        payload = b'{"ledger":"X","code":1,"metadata":{"p":"' + b"x" * total
        sent = 0
        while sent < len(payload):
            piece = payload[sent:sent + chunk]
            try:
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
            readable, _, _ = select.select([s], [], [], 0.01)
            if readable:
                break
        else:
            try:
                s.sendall(b'3\r\n"}}\r\n0\r\n\r\n')
            except (BrokenPipeError, ConnectionResetError):
                pass
        return read_response(s, "POST")
    finally:
        s.close()


def test_chunked_body_over_limit_is_413(small):
    r = send_chunked_until_answer(small, "/v1/accounts", 200000)
    assert_problem(r, 413, "body_too_large")
    c = small.client()
    assert c.get("/livez").status == 200
    c.close()


def test_chunked_body_under_limit_is_read(small):
    s = small.connect()
    body = ('{"ledger":"%s","code":1}' % new_ledger()).encode()
    s.sendall(b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    for i in range(0, len(body), 5):
        piece = body[i:i + 5]
        s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    s.sendall(b"0\r\n\r\n")
    r = read_response(s, "POST")
    s.close()
    assert r.status == 201, r


@pytest.mark.parametrize("ctype", [
    None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/jsonx", "application/json-patch+json", "application/xml", "json", "",
])
def test_unsupported_media_type(client, ctype):
    headers = {} if ctype is None else {"Content-Type": ctype}
    r = client.request("POST", "/v1/accounts", '{"ledger":"%s","code":1}' % new_ledger(),
                       headers=headers, content_type=None)
    assert_problem(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8",
                                   "application/json;charset=UTF-8"])
def test_json_with_parameters_accepted(client, ctype):
    r = client.request("POST", "/v1/accounts", '{"ledger":"%s","code":1}' % new_ledger(),
                       content_type=ctype)
    assert r.status == 201, r


def byte_offset(problem):
    m = re.search(r"at byte (\d+)", problem["detail"])
    assert m, f"detail names no byte offset: {problem['detail']!r}"
    return int(m.group(1))


@pytest.mark.parametrize("body,lo,hi", [
    ('{"ledger":"USD",' + " " * 1000 + "@}", 1016, 1019),
    ('{"ledger":"USD","code":1,}', 24, 27),
    ('{"ledger" "USD"}', 8, 16),
    ('{"ledger":"USD","code":1} x', 25, 28),
    ('{"ledger":"US', 10, 14),
])
def test_malformed_json_names_byte_offset(client, body, lo, hi):
    p = assert_problem(client.post("/v1/accounts", body), 400, "malformed_json")
    off = byte_offset(p)
    assert lo <= off <= hi, f"offset {off} not in [{lo}, {hi}] for {body[-40:]!r}: {p}"


@pytest.mark.parametrize("body", [b"", b" ", b"{", b"}", b'{"ledger":"USD","code":01}',
                                  b"{'ledger':'USD'}", b'{"ledger":"USD","code":1',
                                  b'{"ledger":"USD","ledger":"EUR","code":1}',
                                  b'{"ledger":"USD","code":1}{}'])
def test_malformed_bodies(client, body):
    r = client.post("/v1/accounts", body)
    assert_problem(r, 400, "malformed_json")


@pytest.mark.parametrize("body", [b"null", b"[]", b'"text"', b"42", b"true"])
def test_body_that_is_not_an_object_is_400(client, body):
    r = client.post("/v1/accounts", body)
    assert r.status == 400, r
    assert_problem(r, 400, r.json["code"])
    assert r.json["code"] in ("malformed_json", "field_invalid"), r


def test_post_without_body_is_malformed_json(client):
    r = client.request("POST", "/v1/transfers", None,
                       headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "malformed_json")


def test_unknown_field_problem(client):
    r = client.post("/v1/accounts", {"ledger": new_ledger(), "code": 1, "nickname": "x"})
    p = assert_problem(r, 400, "unknown_field", field="nickname")
    assert "errors" in p


def test_problem_for_every_error_class(client):
    """The same shape for a 400, 404, 405, 409, 415 and 422."""
    ledger = new_ledger()
    a = create_account(client, ledger, id="p-" + ledger.lower())
    cases = [
        (client.post("/v1/accounts", b"{"), 400, "malformed_json"),
        (client.get("/nowhere"), 404, "not_found"),
        (client.request("DELETE", "/v1/accounts"), 405, "method_not_allowed"),
        (client.post("/v1/accounts", {"id": a["id"], "ledger": ledger, "code": 2}), 409,
         "exists_with_different_fields"),
        (client.post("/v1/accounts", b"{}", content_type="text/plain"), 415,
         "unsupported_media_type"),
        (client.post("/v1/transfers", {"debit_account_id": a["id"],
                                       "credit_account_id": a["id"], "amount": "1",
                                       "ledger": ledger, "code": 1}), 422,
         "accounts_must_be_different"),
    ]
    for r, status, code in cases:
        p = assert_problem(r, status, code)
        assert "stack" not in r.body.decode(errors="replace").lower()
        assert set(p) <= {"type", "title", "status", "detail", "code", "request_id", "errors",
                          "checks"}, p


def test_errors_do_not_close_keep_alive(server):
    c = server.client()
    c.get("/nowhere")
    sock = c.conn.sock if c.conn is not None else None
    assert sock is not None, "a 404 closed the connection"
    r = c.get("/livez")
    assert r.status == 200
    assert c.conn is not None and c.conn.sock is sock, "keep-alive connection was not reused"
    c.close()
