"""Hostile clients: truncated and oversized bodies, invalid UTF-8, absurd nesting and numbers,
header floods, slow clients, garbage on the wire. Every answer is a clean 4xx (never a 5xx or a
crash) and after each case the server still answers /livez."""

import http.client
import os
import signal
import socket
import threading
import time

import pytest

from .ledgerd_harness import (
    ResponseReader, Server, assert_problem, create_account, new_ledger, raw_exchange,
    slow_factor, wait_closed,
)


@pytest.fixture(autouse=True)
def still_alive(server):
    yield
    assert server.running(), f"ledgerd died: {server.stderr_text()[-3000:]}"
    c = server.client(timeout=5)
    try:
        assert c.get("/livez").status == 200
    finally:
        c.close()


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """A server that drops connections idle for 2 s."""
    srv = Server(tmp_path_factory.mktemp("ledgerd-slow"),
                 env={"LEDGERD_CONNECTION_TIMEOUT_SECONDS": "2"})
    try:
        srv.start()
        yield srv
        srv.assert_clean_stop()
    finally:
        srv.kill()


def post_raw(client, body, path="/v1/accounts"):
    return client.post(path, body)


def status_or_closed(server, data, timeout=10):
    """The status of the response to raw bytes, or None if the server closed without one."""
    try:
        return raw_exchange(server, data, timeout=timeout).status
    except (OSError, http.client.HTTPException):
        return None


# -- truncated and oversized bodies -------------------------------------------------------------

TRUNCATED = (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             b"Content-Length: 100\r\n\r\n" + b'{"ledger":"USD","code":1,"metadata":{"a"')


def test_truncated_body_then_close(make_server):
    """Clients that vanish mid-body are not requests in flight: SIGTERM does not wait for
    them."""
    srv = make_server()
    for _ in range(20):
        s = srv.connect()
        s.sendall(TRUNCATED)
        s.close()
    c = srv.client()
    assert c.get("/livez").status == 200
    c.close()
    time.sleep(0.2)
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    rc = srv.wait_exit(40)
    took = time.monotonic() - started
    assert rc == 0
    assert took < 10 * slow_factor(), f"SIGTERM took {took:.1f} s: aborted clients held it"


def test_truncated_body_then_half_close(make_server):
    """A client that half-closes mid-body never completes its request; the connection timeout
    (here 3 s) drops it."""
    srv = make_server(env={"LEDGERD_CONNECTION_TIMEOUT_SECONDS": "3"})
    s = srv.connect(timeout=10)
    s.sendall(TRUNCATED)
    s.shutdown(socket.SHUT_WR)
    took = wait_closed(s, 10 * slow_factor())
    s.close()
    assert took is not None, "server kept a request whose client closed its side for 10 s"


def test_huge_content_length_is_413(server):
    r = raw_exchange(server, b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n",
                     timeout=5, method="POST")
    assert_problem(r, 413, "body_too_large")


def test_expect_100_continue_over_limit_is_413(server):
    r = raw_exchange(server, b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n"
                     b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 5000000\r\n\r\n", timeout=5, method="POST")
    assert_problem(r, 413, "body_too_large")


@pytest.mark.parametrize("cl", [b"99999999999999999999999999999", b"-1", b"abc", b"1, 2",
                                b"0x10"])
def test_bad_content_length(server, cl):
    status = status_or_closed(server, b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n"
                              b"Content-Type: application/json\r\nContent-Length: " + cl +
                              b"\r\n\r\n{}")
    assert status is None or 400 <= status < 500, status


def test_conflicting_content_lengths(server):
    status = status_or_closed(server, b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n"
                              b"Content-Type: application/json\r\nContent-Length: 2\r\n"
                              b"Content-Length: 30\r\n\r\n{}")
    assert status is None or 400 <= status < 500, status


def test_content_length_with_chunked(server):
    body = b'{"ledger":"USD","code":1}'
    status = status_or_closed(server, b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n"
                              b"Content-Type: application/json\r\nContent-Length: 4\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n"
                              + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert status is None or status in (201, 400, 411, 413, 415, 501), status


def test_bad_chunk_sizes(server):
    for chunked in (b"zz\r\nab\r\n0\r\n\r\n", b"ffffffffffffffffffff\r\nab\r\n",
                    b"-5\r\nab\r\n0\r\n\r\n"):
        status = status_or_closed(server, b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n"
                                  b"Content-Type: application/json\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n" + chunked, timeout=5)
        assert status is None or 400 <= status < 500, status


# -- invalid UTF-8 and JSON abuse ------------------------------------------------------------------

@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82",
                                 b"\xf8\x88\x80\x80\x80", b"\x80"])
def test_invalid_utf8_in_string(client, bad):
    body = b'{"ledger":"USD","code":1,"metadata":{"k":"a' + bad + b'b"}}'
    assert_problem(post_raw(client, body), 400, "malformed_json")


def test_invalid_utf8_in_key(client):
    body = b'{"ledger":"USD","code":1,"metadata":{"k\xfe":"v"}}'
    assert_problem(post_raw(client, body), 400, "malformed_json")


def test_invalid_utf8_outside_strings(client):
    assert_problem(post_raw(client, b'{"ledger":"USD",\xff"code":1}'), 400, "malformed_json")


@pytest.mark.parametrize("esc", ["\\ud800", "\\udc00x", "\\ud800\\u0041"])
def test_lone_surrogate_escapes(client, esc):
    body = '{"ledger":"USD","code":1,"metadata":{"k":"%s"}}' % esc
    r = post_raw(client, body)
    assert r.status in (201, 400), r
    if r.status == 400:
        assert_problem(r, 400, r.json["code"])


def test_nul_bytes(client):
    assert_problem(post_raw(client, b'{"ledger":"USD","code":1}\x00'), 400, "malformed_json")
    assert_problem(post_raw(client, b'{"ledger":"US\x00D","code":1}'), 400, "malformed_json")
    r = post_raw(client, b'{"ledger":"USD\\u0000","code":1}')
    assert_problem(r, 400, "ledger_invalid", field="ledger")


@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a":', "}")])
def test_json_nested_10000_deep(client, opener, closer):
    body = opener * 10000 + "1" + closer * 10000
    assert_problem(post_raw(client, body), 400, "malformed_json")
    body = '{"ledger":"USD","code":1,"metadata":{"m":' + opener * 10000 + "1" + \
        closer * 10000 + "}}"
    r = post_raw(client, body)
    assert_problem(r, 400, "malformed_json")


def test_json_nested_100_deep_in_metadata_refused(client):
    body = '{"ledger":"USD","code":1,"metadata":{"m":' + "[" * 100 + "]" * 100 + "}}"
    r = post_raw(client, body)
    assert r.status == 400, r
    assert r.json["code"] in ("malformed_json", "metadata_invalid"), r


def test_json_nested_10_deep_in_metadata_accepted(client):
    body = '{"ledger":"%s","code":1,"metadata":{"m":%s}}' % (new_ledger(),
                                                             "[" * 10 + "]" * 10)
    assert post_raw(client, body).status == 201


def test_unclosed_deep_json(client):
    assert_problem(post_raw(client, "[" * 500000), 400, "malformed_json")


@pytest.fixture
def pair(client):
    ledger = new_ledger()
    return ledger, create_account(client, ledger)["id"], create_account(client, ledger)["id"]


def raw_transfer(pair, amount_json, code_json="1", extra=""):
    ledger, a, b = pair
    return ('{"debit_account_id":"%s","credit_account_id":"%s","amount":%s,"ledger":"%s",'
            '"code":%s%s}' % (a, b, amount_json, ledger, code_json, extra))


def test_amount_with_400_digits_as_string(client, pair):
    r = post_raw(client, raw_transfer(pair, '"%s"' % ("9" * 400)), "/v1/transfers")
    assert_problem(r, 400, "amount_invalid", field="amount")


@pytest.mark.parametrize("num", ["9" * 400, "1" + "0" * 399, "1e999999", "-" + "9" * 400,
                                 "0." + "0" * 398 + "1"],
                         ids=["nines", "power_of_ten", "exponent", "negative", "fraction"])
def test_amount_with_400_digits_as_number(client, pair, num):
    r = post_raw(client, raw_transfer(pair, num), "/v1/transfers")
    assert_problem(r, 400, "amount_invalid", field="amount")


@pytest.mark.parametrize("num", ["9" * 400, "1e400", "-" + "9" * 400, "65535.000000001"],
                         ids=["nines", "exponent", "negative", "fraction"])
def test_code_with_400_digits(client, pair, num):
    r = post_raw(client, raw_transfer(pair, '"1"', code_json=num), "/v1/transfers")
    assert_problem(r, 400, "code_invalid", field="code")


def test_timeout_with_400_digits(client, pair):
    r = post_raw(client, raw_transfer(pair, '"1"', extra=',"flags":["pending"],'
                                      '"timeout_seconds":' + "9" * 400), "/v1/transfers")
    assert_problem(r, 400, "timeout_invalid", field="timeout_seconds")


def test_huge_number_in_metadata(client):
    """A number too large for a double is valid JSON: metadata keeps it verbatim."""
    r = post_raw(client, '{"ledger":"USD","code":1,"metadata":{"n":%s}}' % ("9" * 400))
    assert r.status == 201, r
    assert r.body.decode().count("9" * 400) == 1, r
    got = client.get("/v1/accounts/" + r.json["id"])
    assert got.status == 200, got
    assert ('"metadata":{"n":%s}' % ("9" * 400)) in got.body.decode(), got


def test_many_keys_in_metadata(client):
    inner = ",".join('"k%d":%d' % (i, i) for i in range(50000))
    r = post_raw(client, '{"ledger":"USD","code":1,"metadata":{%s}}' % inner)
    assert_problem(r, 400, "metadata_invalid", field="metadata")


def test_batch_of_deep_items(client):
    item = '{"metadata":' + "[" * 5000 + "]" * 5000 + "}"
    r = post_raw(client, '{"transfers":[%s]}' % ",".join([item] * 50), "/v1/transfers/batch")
    assert_problem(r, 400, "malformed_json")


# -- headers and request lines ---------------------------------------------------------------------

def test_1000_headers(server):
    head = b"GET /livez HTTP/1.1\r\nHost: t\r\n" + b"".join(
        b"X-Flood-%04d: %s\r\n" % (i, b"v" * 80) for i in range(1000)) + b"\r\n"
    status = status_or_closed(server, head)
    assert status in (431, 400), status


def test_one_huge_header(server):
    status = status_or_closed(server, b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Big: " +
                              b"a" * 200000 + b"\r\n\r\n")
    assert status in (431, 400, None), status


def test_huge_url(server):
    status = status_or_closed(server, b"GET /v1/accounts/" + b"a" * 200000 +
                              b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status in (414, 431, 400, None), status


def test_long_id_in_path(client):
    r = client.get("/v1/accounts/" + "a" * 5000)
    assert r.status in (400, 404), r
    assert_problem(r, r.status, r.json["code"])


@pytest.mark.parametrize("path", ["/v1/accounts/a%00b", "/v1/accounts/a%2Fb",
                                  "/v1/accounts/..%2F..%2Flivez", "/v1/accounts/%ff%fe",
                                  "/v1/accounts/a%", "/v1//accounts", "/v1/accounts/",
                                  "/v1/accounts?limit=1&limit=2", "/v1/accounts?%zz=1",
                                  "/v1/accounts?ledger", "/v1/accounts?=x"])
def test_odd_paths(client, path):
    r = client.get(path)
    assert 200 <= r.status < 500, r
    if r.status >= 400:
        assert_problem(r, r.status, r.json["code"])


@pytest.mark.parametrize("data", [
    b"HELLO\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /livez HTTP/9.9\r\nHost: t\r\n\r\n",
    b"GET /livez HTTP/1.1\r\nHost: t\r\nBad Header Line\r\n\r\n",
    b"GET /livez HTTP/1.1\r\nHost: t\r\n: novalue\r\n\r\n",
    b"FOO /livez HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /li\x00vez HTTP/1.1\r\nHost: t\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
    b"\r\n\r\n\r\n",
])
def test_garbage_requests(server, data):
    status = status_or_closed(server, data, timeout=5)
    assert status is None or status < 500 or status in (501, 505), status


def test_random_bytes(server):
    for _ in range(5):
        status_or_closed(server, os.urandom(65536), timeout=5)


def test_http10_without_host(server):
    status = status_or_closed(server, b"GET /livez HTTP/1.0\r\n\r\n")
    assert status in (200, 400), status


def test_pipelined_requests_answered_in_order(server):
    s = server.connect()
    s.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Request-Id: one\r\n\r\n"
              b"GET /nowhere HTTP/1.1\r\nHost: t\r\nX-Request-Id: two\r\n\r\n"
              b"GET /readyz HTTP/1.1\r\nHost: t\r\nX-Request-Id: three\r\n\r\n")
    reader = ResponseReader(s)
    got = [reader.next() for _ in range(3)]
    s.close()
    assert [(r.status, r.headers.get("x-request-id")) for r in got] == [
        (200, "one"), (404, "two"), (200, "three")]


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "application/json" + "x" * 5000, "application/json\x01",
                                   "*/*", "application/*"])
def test_wrong_content_types(client, ctype):
    r = client.request("POST", "/v1/accounts", '{"ledger":"USD","code":1}',
                       headers={"Content-Type": ctype.encode()}, content_type=None)
    assert_problem(r, 415, "unsupported_media_type")


def test_many_connections_opened_and_dropped(server):
    socks = [server.connect() for _ in range(200)]
    for i, s in enumerate(socks):
        if i % 2:
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\n")
        s.close()


def test_client_disconnect_during_batch(server, client, pair):
    ledger, a, b = pair
    body = ('{"transfers":[%s]}' % ",".join(
        '{"debit_account_id":"%s","credit_account_id":"%s","amount":"1","ledger":"%s",'
        '"code":1}' % (a, b, ledger) for _ in range(8000))).encode()
    s = server.connect()
    s.sendall(b"POST /v1/transfers/batch HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
              b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    s.close()  # gone before the answer
    time.sleep(1.0 * slow_factor())
    bal = client.get("/v1/accounts/" + a).json
    assert bal["debits_posted"] in ("0", "8000"), bal


# -- slow clients ----------------------------------------------------------------------------------

def stall(server, data):
    s = server.connect(timeout=15)
    if data:
        s.sendall(data)
    return s


SLOW_CASES = {
    "half_body": b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"ledger\":",
    "half_headers": b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Slow: ",
    "half_request_line": b"GET /li",
    "nothing": b"",
}


@pytest.mark.parametrize("case", sorted(SLOW_CASES))
def test_slow_client_is_disconnected_after_timeout(slow, case):
    start = time.monotonic()
    s = stall(slow, SLOW_CASES[case])
    took = wait_closed(s, 10 * slow_factor())
    s.close()
    assert took is not None, f"stalled client ({case}) still connected after 10 s"
    assert time.monotonic() - start >= 1.0, "dropped before the configured 2 s timeout"


def test_slow_clients_do_not_block_others(slow):
    stalled = [stall(slow, SLOW_CASES["half_body" if i % 2 else "half_headers"])
               for i in range(40)]
    try:
        c = slow.client(timeout=5)
        ledger = new_ledger()
        for _ in range(10):
            t0 = time.monotonic()
            r = c.post("/v1/accounts", {"ledger": ledger, "code": 1})
            assert r.status == 201, r
            assert time.monotonic() - t0 < 1.0 * slow_factor()
        c.close()
        closed = [0]
        lock = threading.Lock()

        def watch(s):
            if wait_closed(s, 10 * slow_factor()) is not None:
                with lock:
                    closed[0] += 1

        watchers = [threading.Thread(target=watch, args=(s,)) for s in stalled]
        for w in watchers:
            w.start()
        for w in watchers:
            w.join(15 * slow_factor())
        assert closed[0] == len(stalled), f"only {closed[0]} of {len(stalled)} dropped"
    finally:
        for s in stalled:
            s.close()


def test_keepalive_connection_survives_between_quick_requests(slow):
    c = slow.client()
    assert c.get("/livez").status == 200
    sock = c.conn.sock
    for _ in range(3):
        time.sleep(0.5)
        assert c.get("/livez").status == 200
        assert c.conn is not None and c.conn.sock is sock, "keep-alive connection dropped early"
    c.close()
