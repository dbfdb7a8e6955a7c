"""`ledgerd apikey create|list|revoke` against the real binary and a real database: the key is
shown once on the last line and stored only as a keyed hash, listings never show a key or its
hash, revocation shows in the list, every change leaves its audit record, and bad input (names,
scopes, the hashing key file, ids) is refused without writing anything."""

import base64
import json
import os
import pwd
import re
import sqlite3

import pytest

from .ledgerd_harness import run_cli

KEY = re.compile(r"^ldk_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$")
CREATED = re.compile(r"^created API key id=([0-9a-f]{16}) scopes=(\S+) name=(.*)$")


def output(p):
    return p.stdout + "\n" + p.stderr


def actor():
    return "cli:" + pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def env(tmp_path):
    hash_key = tmp_path / "apikey-hash.key"
    hash_key.write_text(base64.b64encode(os.urandom(48)).decode() + "\n")
    hash_key.chmod(0o600)
    e = {"LEDGERD_DB": "sqlite://" + str(tmp_path / "ledgerd.db"),
         "LEDGERD_APIKEY_HASH_KEY_FILE": str(hash_key)}
    up = run_cli(["migrate", "up"], env=e, cwd=tmp_path)
    assert up.returncode == 0, output(up)
    return e


def db_path(env):
    return env["LEDGERD_DB"][len("sqlite://"):]


def db_rows(env, sql):
    con = sqlite3.connect(db_path(env))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def create(env, cwd, name, scopes):
    return run_cli(["apikey", "create", "--name", name, "--scopes", scopes], env=env, cwd=cwd)


def listing(env, cwd):
    p = run_cli(["apikey", "list"], env=env, cwd=cwd)
    assert p.returncode == 0, output(p)
    lines = p.stdout.splitlines()
    assert lines[0].split("\t") == ["id", "name", "scopes", "created", "revoked", "created_by"]
    return p.stdout, {row[0]: row for row in (ln.split("\t") for ln in lines[1:])}


def audit_records(env):
    return db_rows(env, "SELECT seq, actor, action, resource, decision, reason FROM audit_records "
                        "ORDER BY seq")


def test_create_list_revoke_round_trip(env, tmp_path):
    p = create(env, tmp_path, "payments service", "ledger:read,ledger:write")
    assert p.returncode == 0, output(p)
    lines = p.stdout.splitlines()
    key = lines[-1]
    m = KEY.match(key)
    assert m, lines
    key_id = m.group(1)
    info = CREATED.match(lines[-2])
    assert info, lines
    assert info.groups() == (key_id, "ledger:read,ledger:write", "payments service")
    assert "shown once" in p.stderr

    # Stored: the id, the scopes and a 32-byte hash; never the key or its secret.
    rows = db_rows(env, "SELECT id, name, scopes, hash, created_by, revoked_at_ms FROM api_keys")
    assert len(rows) == 1
    row_id, name, scopes, digest, created_by, revoked = rows[0]
    assert (row_id, name, scopes, created_by, revoked) == (
        key_id, "payments service", 3, actor(), None)
    assert len(digest) == 32
    secret = key.split("_", 2)[2]
    for f in os.listdir(tmp_path):
        if f.startswith("ledgerd.db"):
            data = (tmp_path / f).read_bytes()
            assert key.encode() not in data and secret.encode() not in data, f

    second = create(env, tmp_path, "auditor", "audit:read")
    assert second.returncode == 0, output(second)
    second_id = KEY.match(second.stdout.splitlines()[-1]).group(1)
    assert second_id != key_id

    text, rows = listing(env, tmp_path)
    assert set(rows) == {key_id, second_id}
    assert rows[key_id][1:3] == ["payments service", "ledger:read,ledger:write"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", rows[key_id][3])
    assert rows[key_id][4] == "-"
    assert rows[key_id][5] == actor()
    assert secret not in text and "ldk_" not in text
    assert digest.hex() not in text.lower()

    r = run_cli(["apikey", "revoke", key_id], env=env, cwd=tmp_path)
    assert r.returncode == 0, output(r)
    assert key_id in r.stdout
    _, rows = listing(env, tmp_path)
    assert re.match(r"^\d{4}-\d\d-\d\dT", rows[key_id][4]), rows[key_id]
    assert rows[second_id][4] == "-"

    # Revoking again changes nothing and writes no audit record.
    before = audit_records(env)
    again = run_cli(["apikey", "revoke", key_id], env=env, cwd=tmp_path)
    assert again.returncode == 0, output(again)
    assert "already revoked" in again.stdout
    assert audit_records(env) == before
    _, rows_again = listing(env, tmp_path)
    assert rows_again[key_id][4] == rows[key_id][4]

    # Every change has its audit record, after the migration's.
    recs = audit_records(env)
    assert [r[2] for r in recs] == ["migration.apply", "apikey.create", "apikey.create",
                                    "apikey.revoke"]
    assert recs[0][1:4] == (actor(), "migration.apply", "migration:0002_auth_audit")
    assert recs[1][1:5] == (actor(), "apikey.create", f"apikey:{key_id}", "success")
    assert "ledger:read,ledger:write" in recs[1][5] and "payments service" in recs[1][5]
    assert recs[3][1:5] == (actor(), "apikey.revoke", f"apikey:{key_id}", "success")
    assert all(secret not in str(r) for r in recs)

    v = run_cli(["audit", "verify"], env=env, cwd=tmp_path)
    assert v.returncode == 0, output(v)


def test_scope_spellings(env, tmp_path):
    p = create(env, tmp_path, "all", "admin ledger:read, audit:read,,flags:write")
    assert p.returncode == 0, output(p)
    assert CREATED.match(p.stdout.splitlines()[-2]).group(2) == \
        "ledger:read,flags:write,audit:read,admin"


def assert_nothing_written(env, before):
    assert db_rows(env, "SELECT count(*) FROM api_keys") == [(0,)]
    assert audit_records(env) == before


@pytest.mark.parametrize("args,needle", [
    (["create", "--scopes", "ledger:read"], "--name"),
    (["create", "--name", "x"], "--scopes"),
    (["create", "--name", "", "--scopes", "ledger:read"], "--name"),
    (["create", "--name", "a\tb", "--scopes", "ledger:read"], "--name"),
    (["create", "--name", "x" * 129, "--scopes", "ledger:read"], "--name"),
    (["create", "--name", "x", "--scopes", ""], "at least one scope"),
    (["create", "--name", "x", "--scopes", " , "], "at least one scope"),
    (["create", "--name", "x", "--scopes", "ledger:read,ledger:wirte"], "ledger:wirte"),
    (["create", "--name", "x", "--scopes", "LEDGER:READ"], "LEDGER:READ"),
    (["create", "--name", "x", "--scopes", "ledger:read", "--bogus"], "unknown option"),
    (["create", "--name", "x", "--name", "y", "--scopes", "admin"], "twice"),
    (["create", "--name"], "usage"),
    (["revoke"], "usage"),
    (["revoke", "LDK_0000"], "not an API key id"),
    (["revoke", "00000000000000AA"], "not an API key id"),
    (["frobnicate"], "usage"),
    ([], "usage"),
])
def test_usage_errors_exit_2(env, tmp_path, args, needle):
    before = audit_records(env)
    p = run_cli(["apikey"] + args, env=env, cwd=tmp_path)
    assert p.returncode == 2, output(p)
    assert needle in p.stderr, p.stderr
    assert "ldk_" not in p.stdout
    assert_nothing_written(env, before)


def test_revoke_unknown_id_exits_1(env, tmp_path):
    before = audit_records(env)
    p = run_cli(["apikey", "revoke", "0123456789abcdef"], env=env, cwd=tmp_path)
    assert p.returncode == 1, output(p)
    assert "no API key with id 0123456789abcdef" in p.stderr
    assert audit_records(env) == before


def test_create_needs_the_hash_key_file(env, tmp_path):
    before = audit_records(env)
    e = dict(env)
    del e["LEDGERD_APIKEY_HASH_KEY_FILE"]
    p = create(e, tmp_path, "x", "ledger:read")
    assert p.returncode == 2, output(p)
    assert "LEDGERD_APIKEY_HASH_KEY_FILE" in p.stderr
    assert_nothing_written(env, before)
    # Listing and revoking need no hashing key.
    assert run_cli(["apikey", "list"], env=e, cwd=tmp_path).returncode == 0


def hash_key_env(env, tmp_path, content, mode=0o600):
    f = tmp_path / "other.key"
    f.write_bytes(content)
    f.chmod(mode)
    return dict(env, LEDGERD_APIKEY_HASH_KEY_FILE=str(f))


@pytest.mark.parametrize("content,needle", [
    (b"x" * 31, "32"),
    (b"x" * 31 + b"\n", "32"),
    (b"", "empty"),
    (b"\n", "empty"),
    (b"x" * 1025, "more than 1024 bytes"),
])
def test_bad_hash_key_file_content(env, tmp_path, content, needle):
    before = audit_records(env)
    e = hash_key_env(env, tmp_path, content)
    p = create(e, tmp_path, "x", "ledger:read")
    assert p.returncode == 2, output(p)
    assert "LEDGERD_APIKEY_HASH_KEY_FILE" in p.stderr and needle in p.stderr, p.stderr
    assert "xxxxxxxx" not in output(p)  # never the content
    assert_nothing_written(env, before)


def test_hash_key_of_32_bytes_is_enough(env, tmp_path):
    e = hash_key_env(env, tmp_path, b"k" * 32 + b"\n")
    p = create(e, tmp_path, "x", "ledger:read")
    assert p.returncode == 0, output(p)


def test_hash_key_file_missing_or_unreadable(env, tmp_path):
    before = audit_records(env)
    for path in (str(tmp_path / "missing.key"), str(tmp_path)):
        p = create(dict(env, LEDGERD_APIKEY_HASH_KEY_FILE=path), tmp_path, "x", "ledger:read")
        assert p.returncode == 2, output(p)
        assert "LEDGERD_APIKEY_HASH_KEY_FILE" in p.stderr, p.stderr
    if os.geteuid() != 0:  # root reads files whatever their mode
        e = hash_key_env(env, tmp_path, b"k" * 48, mode=0)
        p = create(e, tmp_path, "x", "ledger:read")
        assert p.returncode == 2, output(p)
        assert "LEDGERD_APIKEY_HASH_KEY_FILE" in p.stderr and "cannot open" in p.stderr
    assert_nothing_written(env, before)


def test_other_hash_key_gives_another_hash(env, tmp_path):
    a = create(env, tmp_path, "a", "ledger:read")
    assert a.returncode == 0, output(a)
    e = hash_key_env(env, tmp_path, os.urandom(40))
    b = create(e, tmp_path, "b", "ledger:read")
    assert b.returncode == 0, output(b)
    hashes = db_rows(env, "SELECT hash FROM api_keys")
    assert len({h for (h,) in hashes}) == 2


def test_commands_need_a_migrated_database(tmp_path):
    key = tmp_path / "k"
    key.write_bytes(os.urandom(32))
    e = {"LEDGERD_DB": "sqlite://" + str(tmp_path / "fresh.db"),
         "LEDGERD_APIKEY_HASH_KEY_FILE": str(key)}
    for args in (["create", "--name", "x", "--scopes", "admin"], ["list"],
                 ["revoke", "0123456789abcdef"]):
        p = run_cli(["apikey"] + args, env=e, cwd=tmp_path)
        assert p.returncode == 1, output(p)
        assert "ledgerd migrate up" in p.stderr, p.stderr


def test_help(tmp_path):
    p = run_cli(["apikey", "--help"], cwd=tmp_path)
    assert p.returncode == 0
    for word in ("create", "list", "revoke", "--name", "--scopes", "ledger:read"):
        assert word in p.stdout


def test_audit_export_shows_the_key_records(env, tmp_path):
    p = create(env, tmp_path, "exported", "flags:read")
    key_id = KEY.match(p.stdout.splitlines()[-1]).group(1)
    x = run_cli(["audit", "export"], env=env, cwd=tmp_path)
    assert x.returncode == 0, output(x)
    recs = [json.loads(ln) for ln in x.stdout.splitlines()]
    assert recs[-1]["resource"] == f"apikey:{key_id}"
    assert recs[-1]["action"] == "apikey.create"
    assert recs[-1]["actor"] == actor()
