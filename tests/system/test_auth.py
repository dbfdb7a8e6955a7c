"""Authentication and authorization on the running server: API keys made with `ledgerd apikey`,
JWTs signed by keys of a JWKS file, every route of the route table refusing what it must
(RFC 6750 answers), the failed-attempt limit, key rotation, and idempotency keys scoped to the
principal."""

import base64
import json
import os
import pathlib
import re
import signal
import socket
import sqlite3
import subprocess
import time
import uuid

import pytest

from .ledgerd_harness import backend, new_ledger, pg_connect, read_response, run_cli, wait_for

ROUTES_C = pathlib.Path(__file__).resolve().parents[2] / "src" / "http" / "routes.c"
SCOPES = {"ledger:read", "ledger:write", "flags:read", "flags:write", "audit:read", "admin",
          "public"}
ISSUER = "https://id.example.test/"
AUDIENCE = "ledgerd-api"

try:  # mints the JWTs; scripts/deps.sh test installs it
    from cryptography.hazmat.primitives.asymmetric import ed25519
except ImportError:  # pragma: no cover - a missing dependency must fail, never skip
    pytest.fail("python3-cryptography is not installed (scripts/deps.sh test installs it)",
                pytrace=False)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """An identity provider in miniature: Ed25519 keys published as a JWKS file."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.keys = {}

    def add_key(self, kid):
        self.keys[kid] = ed25519.Ed25519PrivateKey.generate()
        self.publish()

    def remove_key(self, kid):
        del self.keys[kid]
        self.publish()

    def publish(self):
        from cryptography.hazmat.primitives import serialization
        jwks = {"keys": []}
        for kid, key in self.keys.items():
            raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
            jwks["keys"].append({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
                                 "use": "sig", "x": b64url(raw)})
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(jwks))
        os.replace(tmp, self.path)  # as a secret volume swaps its files

    def token(self, kid="k1", sub="svc-1", scope="ledger:read ledger:write", roles=None,
              aud=AUDIENCE, iss=ISSUER, exp_in=300, alg="EdDSA", header=None, key=None):
        now = int(time.time())
        claims = {"iss": iss, "aud": aud, "sub": sub, "exp": now + exp_in, "iat": now}
        if scope is not None:
            claims["scope"] = scope
        if roles is not None:
            claims["roles"] = roles
        head = {"alg": alg, "kid": kid, "typ": "JWT"}
        head.update(header or {})
        signing_input = (b64url(json.dumps(head).encode()) + "." +
                         b64url(json.dumps(claims).encode())).encode()
        if alg == "none":
            return signing_input.decode() + "."
        signature = (key or self.keys[kid]).sign(signing_input)
        return signing_input.decode() + "." + b64url(signature)


@pytest.fixture
def authed(make_server, tmp_path):
    """A server with authentication required, an issuer, and a function making API keys."""
    issuer = Issuer(tmp_path / "jwks.json")
    issuer.add_key("k1")
    hash_key = tmp_path / "apikey-hash.key"
    hash_key.write_bytes(os.urandom(32).hex().encode() + b"\n")
    env = {"LEDGERD_AUTH": "required", "LEDGERD_JWKS_FILE": str(issuer.path),
           "LEDGERD_JWT_ISSUER": ISSUER, "LEDGERD_JWT_AUDIENCE": AUDIENCE,
           "LEDGERD_APIKEY_HASH_KEY_FILE": str(hash_key), "LEDGERD_AUTH_FAILURES_MAX": "1000"}

    class Ctx:
        pass

    ctx = Ctx()
    ctx.issuer = issuer
    ctx.env = env
    ctx.make = lambda extra=None: make_server({**env, **(extra or {})})
    ctx.srv = ctx.make()

    def apikey(scopes, srv=None):
        srv = srv or ctx.srv
        p = run_cli(["apikey", "create", "--name", f"test-{uuid.uuid4().hex[:6]}",
                     "--scopes", scopes], env=srv.env)
        assert p.returncode == 0, p.stderr
        key = p.stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"ldk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", key), p.stdout
        return key

    ctx.apikey = apikey
    return ctx


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def route_table():
    """(method, template, scope) of every row of the route table."""
    text = ROUTES_C.read_text()
    rows = re.findall(r'\{\s*HTTP_([A-Z]+),\s*"(/[^"]*)",\s*\w+,\s*"([^"]+)"', text)
    assert rows, "no route rows found in routes.c"
    return rows


def call(srv, method, template, headers=None):
    path = template.replace("{id}", "no-such-id")
    c = srv.client()
    try:
        if method == "POST":
            return c.post(path, {}, headers={**(headers or {}), "Idempotency-Key": uuid.uuid4().hex})
        return c.request(method, path, headers=headers)
    finally:
        c.close()


def assert_refused(r, status, code, www=None):
    assert r.status == status, r
    assert r.json["code"] == code, r
    if www is not None:
        assert re.fullmatch(www, r.headers.get("www-authenticate", "")), r


def test_every_route_declares_a_known_scope():
    rows = route_table()
    for method, template, scope in rows:
        assert scope in SCOPES, (method, template, scope)
    assert {s for _, _, s in rows} >= {"ledger:read", "ledger:write", "public"}


def test_every_route_refuses_bad_credentials(authed):
    srv, issuer = authed.srv, authed.issuer
    reader = authed.apikey("ledger:read")
    auditor = authed.apikey("audit:read")
    expired = issuer.token(exp_in=-3600)
    wrong_aud = issuer.token(aud="another-api")
    cases = [
        (None, 401, "unauthenticated", r'Bearer realm="ledgerd"'),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "invalid_token",
         r'Bearer realm="ledgerd", error="invalid_token", error_description="malformed"'),
        (bearer("ldk_0123456789abcdef_" + "A" * 43), 401, "invalid_token",
         r'.*error="invalid_token", error_description="apikey_unknown"'),
        (bearer(expired), 401, "invalid_token", r'.*error_description="jwt_expired"'),
        (bearer(wrong_aud), 401, "invalid_token", r'.*error_description="jwt_audience"'),
        (bearer(issuer.token(alg="none")), 401, "invalid_token", r'.*error_description="jwt_alg"'),
    ]
    for method, template, scope in route_table():
        if scope == "public":
            continue
        for headers, status, code, www in cases:
            assert_refused(call(srv, method, template, headers), status, code, www)
        # Valid, but not the scope the route needs.
        wrong = auditor if scope == "ledger:read" else reader
        assert_refused(call(srv, method, template, bearer(wrong)), 403, "insufficient_scope",
                       rf'Bearer realm="ledgerd", error="insufficient_scope", scope="{scope}"')
        # The right scope passes authentication and authorization (what follows is the route's).
        right = authed.apikey(scope)
        r = call(srv, method, template, bearer(right))
        assert r.status not in (401, 403, 429), (method, template, r)
        r = call(srv, method, template, bearer(issuer.token(scope=scope)))
        assert r.status not in (401, 403, 429), (method, template, r)
    srv.assert_clean_stop()


def test_public_routes_are_open_by_default_and_closable(authed):
    srv = authed.srv
    for path in ("/livez", "/readyz", "/metrics", "/ops/dashboard"):
        assert call(srv, "GET", path).status == 200, path
    closed = authed.make({"LEDGERD_AUTH_OPEN_ROUTES": ""})
    reader = authed.apikey("ledger:read", closed)
    admin = authed.apikey("admin", closed)
    assert_refused(call(closed, "GET", "/livez"), 401, "unauthenticated")
    assert call(closed, "GET", "/livez", bearer(reader)).status == 200  # any valid credential
    assert_refused(call(closed, "GET", "/metrics", bearer(reader)), 403, "insufficient_scope")
    assert call(closed, "GET", "/metrics", bearer(admin)).status == 200
    assert call(closed, "GET", "/ops/dashboard", bearer(admin)).status == 200


def test_jwt_roles_map_to_scopes_and_unknown_scopes_grant_nothing(authed):
    srv, issuer = authed.srv, authed.issuer
    writer = issuer.token(scope="payments:refund", roles=["writer"])
    r = call(srv, "POST", "/v1/accounts", bearer(writer))
    assert r.status == 400, r  # past authorization: the empty body is refused by validation
    nothing = issuer.token(scope="payments:refund", roles=["nobody"])
    assert_refused(call(srv, "GET", "/v1/accounts", bearer(nothing)), 403, "insufficient_scope")


def test_revocation_takes_effect_at_once(authed):
    srv = authed.srv
    key = authed.apikey("ledger:read")
    assert call(srv, "GET", "/v1/accounts", bearer(key)).status == 200
    key_id = key.split("_")[1]
    p = run_cli(["apikey", "revoke", key_id], env=srv.env)
    assert p.returncode == 0, p.stderr
    assert_refused(call(srv, "GET", "/v1/accounts", bearer(key)), 401, "invalid_token",
                   r'.*error_description="apikey_revoked"')
    wrong_secret = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert_refused(call(srv, "GET", "/v1/accounts", bearer(wrong_secret)), 401, "invalid_token")


def test_failed_attempts_are_rate_limited(authed):
    srv = authed.make({"LEDGERD_AUTH_FAILURES_MAX": "3", "LEDGERD_AUTH_FAILURE_WINDOW_SECONDS": "60"})
    good = authed.apikey("ledger:read", srv)
    bad = bearer("ldk_0123456789abcdef_" + "A" * 43)  # well formed, no such key
    for _ in range(3):
        assert call(srv, "GET", "/v1/accounts", bad).status == 401
    r = call(srv, "GET", "/v1/accounts", bad)
    assert_refused(r, 429, "too_many_requests")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # Blocked means blocked: the address cannot try anything, a valid key included.
    assert_refused(call(srv, "GET", "/v1/accounts", bearer(good)), 429, "too_many_requests")
    # A missing credential is not an attempt: it never counts.
    metrics = call(srv, "GET", "/metrics").body.decode()
    counts = dict(re.findall(r'^ledgerd_auth_failures_total\{reason="([a-z_]+)"\} (\d+)$',
                             metrics, re.M))
    assert counts["apikey_unknown"] == "3" and int(counts["rate_limited"]) == 2, counts


def test_jwks_rotation_keeps_the_old_kid_until_it_is_removed(authed):
    srv, issuer = authed.srv, authed.issuer
    old = issuer.token(kid="k1")
    issuer.add_key("k2")
    new = issuer.token(kid="k2")
    assert wait_for(lambda: call(srv, "GET", "/v1/accounts", bearer(new)).status == 200)
    assert call(srv, "GET", "/v1/accounts", bearer(old)).status == 200
    issuer.remove_key("k1")
    srv.signal(signal.SIGHUP)  # or wait for the file watcher: either reloads
    assert wait_for(lambda: call(srv, "GET", "/v1/accounts", bearer(old)).status == 401)
    assert call(srv, "GET", "/v1/accounts", bearer(new)).status == 200
    assert srv.wait_log(lambda x: x.get("body", "").startswith("auth: keys reloaded"))
    # A JWKS that no longer loads keeps the keys in use.
    issuer.path.write_text("{not json")
    srv.signal(signal.SIGHUP)
    assert srv.wait_log(lambda x: "kept the keys in use" in x.get("body", ""))
    assert call(srv, "GET", "/v1/accounts", bearer(new)).status == 200
    srv.assert_clean_stop()
    # Each reload is an administrative action in the audit trail.
    p = run_cli(["audit", "export"], env=srv.env)
    reloads = [r for r in map(json.loads, p.stdout.splitlines()) if r["action"] == "keys.reload"]
    assert {r["decision"] for r in reloads} == {"success", "failure"}, reloads
    assert all(r["actor"] == "system" for r in reloads)
    levels = [r for r in map(json.loads, p.stdout.splitlines()) if r["action"] == "config.reload"]
    assert len(levels) == 2 and all(r["reason"].startswith("SIGHUP") for r in levels), levels


def test_idempotency_keys_are_scoped_to_the_principal(authed):
    srv = authed.srv
    alice = authed.apikey("ledger:read,ledger:write")
    bob = authed.apikey("ledger:read,ledger:write")
    ledger = new_ledger()
    key = uuid.uuid4().hex
    c = srv.client()
    body = {"ledger": ledger, "code": 1}
    a1 = c.post("/v1/accounts", body, headers={**bearer(alice), "Idempotency-Key": key})
    a2 = c.post("/v1/accounts", body, headers={**bearer(alice), "Idempotency-Key": key})
    b1 = c.post("/v1/accounts", body, headers={**bearer(bob), "Idempotency-Key": key})
    assert a1.status == a2.status == b1.status == 201, (a1, a2, b1)
    assert a2.headers.get("idempotent-replayed") == "true" and a2.json["id"] == a1.json["id"]
    assert "idempotent-replayed" not in b1.headers and b1.json["id"] != a1.json["id"]
    c.close()


def test_auth_off_is_refused_outside_dev(tmp_path):
    p = run_cli(["serve", "--migrate"], env={"LEDGERD_DB": f"sqlite://{tmp_path}/l.db",
                                             "LEDGERD_LISTEN": "127.0.0.1:0",
                                             "LEDGERD_ENV": "prod", "LEDGERD_AUTH": "off"},
                timeout=20)
    assert p.returncode != 0
    assert "LEDGERD_AUTH" in p.stderr and "LEDGERD_ENV" in p.stderr, p.stderr


def test_decisions_are_in_the_audit_trail(authed):
    srv = authed.srv
    writer = authed.apikey("ledger:read,ledger:write")
    reader = authed.apikey("ledger:read")
    c = srv.client()
    created = c.post("/v1/accounts", {"ledger": new_ledger(), "code": 1},
                     headers={**bearer(writer), "X-Request-Id": "audit-allow-1"})
    assert created.status == 201, created
    refused = c.post("/v1/accounts", {"ledger": "USD", "code": 1},
                     headers={**bearer(reader), "X-Request-Id": "audit-deny-1"})
    assert refused.status == 403
    missing = c.get("/v1/accounts", headers={"X-Request-Id": "audit-missing-1"})
    assert missing.status == 401
    c.close()

    def records():
        p = run_cli(["audit", "export"], env=srv.env)
        assert p.returncode == 0, p.stderr
        return {r["request_id"]: r for r in map(json.loads, p.stdout.splitlines())
                if r.get("request_id")}

    got = wait_for(lambda: (lambda r: r if {"audit-allow-1", "audit-deny-1",
                                            "audit-missing-1"} <= set(r) else None)(records()))
    assert got, "the decisions did not reach the audit trail"
    allow, deny, miss = got["audit-allow-1"], got["audit-deny-1"], got["audit-missing-1"]
    key_id = writer.split("_")[1]
    assert (allow["actor"], allow["action"], allow["decision"], allow["reason"]) == (
        f"apikey:{key_id}", "account.create", "allow", "created")
    assert allow["resource"] == "POST /v1/accounts" and allow["source"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{32}", allow["trace_id"])
    assert (deny["action"], deny["decision"], deny["reason"]) == ("authz.deny", "deny",
                                                                 "ledger:write")
    assert deny["actor"] == f"apikey:{reader.split('_')[1]}"
    assert (miss["actor"], miss["action"], miss["reason"]) == ("anonymous", "auth.failed",
                                                               "missing")
    p = run_cli(["audit", "verify"], env=srv.env)
    assert p.returncode == 0, p.stdout + p.stderr
    metrics = srv.client().get("/metrics").body.decode()
    assert int(re.search(r"^ledgerd_audit_records_total (\d+)$", metrics, re.M).group(1)) >= 3
    srv.assert_clean_stop()


def test_the_server_signs_checkpoints(authed, tmp_path):
    key = tmp_path / "audit-signing.pem"
    p = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert p.returncode == 0, p.stdout
    srv = authed.make({"LEDGERD_AUDIT_SIGNING_KEY_FILE": str(key),
                       "LEDGERD_AUDIT_CHECKPOINT_RECORDS": "5",
                       "LEDGERD_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "3600"})
    writer = authed.apikey("ledger:read,ledger:write", srv)
    c = srv.client()
    ledger = new_ledger()
    for i in range(12):
        r = c.post("/v1/accounts", {"ledger": ledger, "code": 1}, headers=bearer(writer))
        assert r.status == 201, r
    c.close()
    # Every five records the commit worker signs the tail and logs the checkpoint.
    line = srv.wait_log(lambda x: x.get("body") == "audit checkpoint")
    assert line and re.fullmatch(r"[0-9a-f]{128}", line["signature"]), line
    assert re.fullmatch(r"[0-9a-f]{16}", line["key_id"]) and line["audit_seq"] >= 5
    srv.assert_clean_stop()  # and at stop it signs whatever is left
    p = run_cli(["audit", "verify"], env=srv.env)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"(\d+) checkpoints verified \(last at seq (\d+)\), (\d+) records after",
                  p.stdout)
    assert m and int(m.group(1)) >= 3 and m.group(3) == "0", p.stdout
    # A trail cut after a signed checkpoint no longer verifies.
    last = "DELETE FROM audit_records WHERE seq = (SELECT max(seq) FROM audit_records)"
    if backend() == "postgres":
        conn = pg_connect(srv.env["LEDGERD_DB"])
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE audit_records DISABLE TRIGGER USER")
            cur.execute(last)
        conn.close()
    else:
        db = pathlib.Path(srv.env["LEDGERD_DB"][len("sqlite://"):])
        with sqlite3.connect(db) as conn:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                        "AND tbl_name = 'audit_records'").fetchall():
                conn.execute(f"DROP TRIGGER {name}")
            conn.execute(last)
    p = run_cli(["audit", "verify"], env=srv.env)
    assert p.returncode == 1 and "FAILED" in p.stdout, p.stdout + p.stderr


def test_no_credential_or_key_material_reaches_the_logs(authed, tmp_path):
    srv, issuer = authed.srv, authed.issuer
    key = authed.apikey("ledger:read")
    token = issuer.token()
    expired = issuer.token(exp_in=-600)
    for headers in (bearer(key), bearer(token), bearer(expired), bearer(key[:-2] + "xx"),
                    {"Authorization": "Basic c2VjcmV0OnBhc3N3b3Jk"}):
        call(srv, "GET", "/v1/accounts", headers)
    srv.signal(signal.SIGHUP)
    assert srv.wait_log(lambda x: x.get("body", "").startswith("auth: keys reloaded"))
    p = run_cli(["config", "print"], env=srv.env)
    srv.assert_clean_stop()
    hash_key = pathlib.Path(authed.env["LEDGERD_APIKEY_HASH_KEY_FILE"]).read_text().strip()
    secret = key.split("_", 2)[2]
    text = srv.stdout_text() + srv.stderr_text() + p.stdout + p.stderr
    for s in (secret, token.split(".")[2], expired.split(".")[2], hash_key,
              "c2VjcmV0OnBhc3N3b3Jk"):
        assert s not in text, f"a secret reached the logs or config print: {s[:8]}..."
    # The principal is logged (the key id is not a secret), the credential is not.
    assert f"apikey:{key.split('_')[1]}" in srv.stdout_text()


def test_a_subject_the_trail_cannot_hold_never_fails_a_batch(authed):
    srv, issuer = authed.srv, authed.issuer
    odd = issuer.token(sub="svc\u0085next")  # a C1 control character: valid JSON, valid JWT
    plain = authed.apikey("ledger:read,ledger:write")
    c = srv.client()
    ledger = new_ledger()
    r1 = c.post("/v1/accounts", {"ledger": ledger, "code": 1},
                headers={**bearer(odd), "X-Request-Id": "odd-subject-1"})
    r2 = c.post("/v1/accounts", {"ledger": ledger, "code": 1},
                headers={**bearer(plain), "X-Request-Id": "plain-subject-1"})
    c.close()
    assert r1.status == 201 and r2.status == 201, (r1, r2)
    p = run_cli(["audit", "export"], env=srv.env)
    recs = {r["request_id"]: r for r in map(json.loads, p.stdout.splitlines())}
    assert re.fullmatch(r"name#[0-9a-f]{64}", recs["odd-subject-1"]["actor"])
    assert recs["plain-subject-1"]["actor"].startswith("apikey:")
    assert run_cli(["audit", "verify"], env=srv.env).returncode == 0


def test_refusals_from_the_headers_skip_the_body_after_100_continue(authed):
    """A client that asks for 100-continue gets a refusal decided from the headers at once: a
    missing or malformed credential, a bad JWT, a missing scope, the wrong media type. This
    holds on every backend — also where the request body runs on the database work pool, as only
    an API key (a row in the database) waits for the body. The body is never sent."""
    srv = authed.srv
    cases = [
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "invalid_token"),
        (bearer(authed.issuer.token(aud="someone-else")), 401, "invalid_token"),
        (bearer(authed.issuer.token(scope="ledger:read")), 403, "insufficient_scope"),
        ({**bearer(authed.issuer.token()), "Content-Type": "text/plain"}, 415,
         "unsupported_media_type"),
    ]
    for headers, status, code in cases:
        head = {"Content-Type": "application/json", "Content-Length": "4000000",
                "Expect": "100-continue", "Idempotency-Key": uuid.uuid4().hex, **headers}
        lines = ["POST /v1/transfers/batch HTTP/1.1", f"Host: {srv.host}:{srv.port}"]
        lines += [f"{k}: {v}" for k, v in head.items()]
        sock = socket.create_connection((srv.host, srv.port), timeout=10)
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            r = read_response(sock, "POST")
        finally:
            sock.close()
        assert r.status == status, (headers, r)
        assert r.json["code"] == code, (headers, r)

