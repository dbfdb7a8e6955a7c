"""`ledgerd audit verify|export|checkpoint` against the real binary: a trail written by command
line actions verifies; tampering with a copy of the database (the immutability triggers dropped,
as someone who can write the file would) is found and named by seq and kind with exit status 1;
checkpoints signed with keys made here by openssl catch a rewritten chain, a cut tail and forged
checkpoints, and keys rotated out still verify; export is JSON Lines that match the table."""

import base64
import hashlib
import json
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
from datetime import datetime, timezone

import pytest

from .ledgerd_harness import run_cli

FIELDS = ("actor", "action", "resource", "decision", "reason", "request_id", "trace_id", "source")
FINDING = re.compile(r"^audit trail: FAILED at seq (\d+): ([a-z_]+): ", re.M)


def output(p):
    return p.stdout + "\n" + p.stderr


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def make_key(tmp_path, name):
    """A fresh Ed25519 key pair made at test time: (private PEM path, public PEM path)."""
    private = tmp_path / f"{name}.pem"
    public = tmp_path / f"{name}.pub.pem"
    openssl("genpkey", "-algorithm", "ed25519", "-out", str(private))
    private.chmod(0o600)
    openssl("pkey", "-in", str(private), "-pubout", "-out", str(public))
    return private, public


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(row):
    """SHA-256 of a record's canonical encoding (docs/security/audit.md); row as a dict."""
    rec = {k: row[k] for k in FIELDS}
    rec.update(format="ledgerd.audit.record.v1", seq=row["seq"], time_unix_ms=row["time_unix_ms"],
               prev_hash=row["prev_hash"].hex())
    return hashlib.sha256(canonical(rec)).digest()


class Trail:
    """A migrated database, an API key hashing key, and the environment to run commands."""

    def __init__(self, tmp_path, **extra):
        self.dir = tmp_path
        key = tmp_path / "apikey-hash.key"
        key.write_bytes(base64.b64encode(os.urandom(48)) + b"\n")
        self.db = tmp_path / "ledgerd.db"
        self.env = {"LEDGERD_DB": f"sqlite://{self.db}",
                    "LEDGERD_APIKEY_HASH_KEY_FILE": str(key), **extra}
        self.run(["migrate", "up"])

    def run(self, args, env=None, expect=0):
        p = run_cli(args, env=dict(self.env, **(env or {})), cwd=self.dir)
        if expect is not None:
            assert p.returncode == expect, (args, output(p))
        return p

    def actions(self, n, env=None):
        """n key creations and a revocation of the first: n + 1 records."""
        ids = []
        for i in range(n):
            p = self.run(["apikey", "create", "--name", f"key {i}", "--scopes", "ledger:read"],
                         env=env)
            ids.append(re.search(r"id=([0-9a-f]{16})", p.stdout).group(1))
        self.run(["apikey", "revoke", ids[0]], env=env)
        return ids

    def copy(self, name="tampered"):
        """A copy of the database with the immutability triggers dropped, and its env."""
        dest = self.dir / f"{name}.db"
        shutil.copyfile(self.db, dest)
        if os.path.exists(f"{self.db}-wal"):
            shutil.copyfile(f"{self.db}-wal", f"{dest}-wal")
        con = sqlite3.connect(dest)
        for t in ("audit_records_no_update", "audit_records_no_delete",
                  "audit_checkpoints_no_update", "audit_checkpoints_no_delete"):
            con.execute(f"DROP TRIGGER {t}")
        con.commit()
        return con, dict(self.env, LEDGERD_DB=f"sqlite://{dest}")

    def rows(self, con=None):
        own = con is None
        con = con or sqlite3.connect(self.db)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute("SELECT * FROM audit_records ORDER BY seq")]
        finally:
            con.row_factory = None
            if own:
                con.close()

    def verify(self, env=None):
        return run_cli(["audit", "verify"], env=dict(self.env, **(env or {})), cwd=self.dir)


def finding(p):
    assert p.returncode == 1, output(p)
    m = FINDING.search(p.stdout)
    assert m, output(p)
    return int(m.group(1)), m.group(2)


# ---- A clean trail -----------------------------------------------------------------------------

def test_verify_clean_after_cli_actions(tmp_path):
    t = Trail(tmp_path)
    t.actions(3)
    p = t.verify()
    assert p.returncode == 0, output(p)
    assert "ok: 5 records (last seq 5)" in p.stdout
    assert "5 records after the last checkpoint" in p.stdout
    rows = t.rows()
    actor = "cli:" + pwd.getpwuid(os.geteuid()).pw_name
    assert [r["action"] for r in rows] == ["migration.apply"] + ["apikey.create"] * 3 + \
        ["apikey.revoke"]
    assert all(r["actor"] == actor for r in rows)
    assert rows[0]["resource"] == "migration:0002_auth_audit"
    # The chain as documented, recomputed here independently of ledgerd.
    prev = bytes(32)
    for r in rows:
        assert r["prev_hash"] == prev
        assert record_hash(r) == r["hash"]
        prev = r["hash"]


def test_verify_empty_database_is_refused_until_migrated(tmp_path):
    p = run_cli(["audit", "verify"], env={"LEDGERD_DB": f"sqlite://{tmp_path}/new.db"},
                cwd=tmp_path)
    assert p.returncode == 1, output(p)
    assert "ledgerd migrate up" in p.stderr


# ---- Export ------------------------------------------------------------------------------------

def test_export_matches_the_table(tmp_path):
    t = Trail(tmp_path)
    t.actions(3)
    p = t.run(["audit", "export"])
    lines = p.stdout.splitlines()
    rows = t.rows()
    assert len(lines) == len(rows) == 5
    for line, row in zip(lines, rows):
        rec = json.loads(line)
        assert set(rec) == {"seq", "time", "time_unix_ms", *FIELDS, "prev_hash", "hash"}
        assert rec["seq"] == row["seq"] and rec["time_unix_ms"] == row["time_unix_ms"]
        for f in FIELDS:
            assert rec[f] == row[f], f
        assert rec["prev_hash"] == row["prev_hash"].hex()
        assert rec["hash"] == row["hash"].hex()
        when = datetime.fromisoformat(rec["time"].replace("Z", "+00:00"))
        assert int(when.timestamp() * 1000) == row["time_unix_ms"]

    after = t.run(["audit", "export", "--after-seq", "3"])
    assert [json.loads(ln)["seq"] for ln in after.stdout.splitlines()] == [4, 5]
    assert t.run(["audit", "export", "--after-seq", "5"]).stdout == ""

    # --since: records at or after the time (the record's own time is included).
    since = json.loads(lines[2])["time"]
    got = t.run(["audit", "export", "--since", since]).stdout.splitlines()
    want = [json.loads(ln)["seq"] for ln in lines
            if json.loads(ln)["time_unix_ms"] >= json.loads(lines[2])["time_unix_ms"]]
    assert [json.loads(ln)["seq"] for ln in got] == want
    assert len(t.run(["audit", "export", "--since", "2000-01-01T00:00:00Z"]).stdout.splitlines()) \
        == 5
    assert len(t.run(["audit", "export", "--since",
                      "2000-01-01T01:00:00+01:00"]).stdout.splitlines()) == 5
    assert t.run(["audit", "export", "--since", "9999-12-31T23:59:59.999Z"]).stdout == ""


@pytest.mark.parametrize("args", [
    ["--since", "yesterday"], ["--since", "2026-02-30T00:00:00Z"], ["--since", "2026-01-01"],
    ["--since", "2026-01-01T00:00:00"], ["--since"], ["--after-seq", "-1"], ["--after-seq", "x"],
    ["--after-seq", "1", "--since", "2026-01-01T00:00:00Z"], ["--json"],
])
def test_export_usage_errors(tmp_path, args):
    t = Trail(tmp_path)
    p = t.run(["audit", "export"] + args, expect=2)
    assert p.stderr.strip() and p.stdout == ""


# ---- Tampering without checkpoints: the chain alone -------------------------------------------

def change_field(con, rows):
    con.execute("UPDATE audit_records SET reason = 'nothing to see' WHERE seq = 3")
    return 3, "hash_mismatch"


def delete_record(con, rows):
    con.execute("DELETE FROM audit_records WHERE seq = 3")
    return 3, "seq_gap"


def swap_seqs(con, rows):
    con.execute("UPDATE audit_records SET seq = -2 WHERE seq = 2")
    con.execute("UPDATE audit_records SET seq = 2 WHERE seq = 3")
    con.execute("UPDATE audit_records SET seq = 3 WHERE seq = -2")
    return 2, None


def change_and_rehash(con, rows):
    row = dict(rows[2], reason="nothing to see")
    con.execute("UPDATE audit_records SET reason = ?, hash = ? WHERE seq = 3",
                (row["reason"], record_hash(row)))
    return 4, "prev_hash_mismatch"


def change_actor_to_control_char(con, rows):
    con.execute("UPDATE audit_records SET actor = 'cli:x' || char(10) WHERE seq = 4")
    return 4, "invalid_record"


@pytest.mark.parametrize("tamper", [change_field, delete_record, swap_seqs, change_and_rehash,
                                    change_actor_to_control_char])
def test_tampering_is_found(tmp_path, tamper):
    t = Trail(tmp_path)
    t.actions(3)
    con, env = t.copy()
    seq, kind = tamper(con, t.rows(con))
    con.commit()
    con.close()
    got_seq, got_kind = finding(t.verify(env))
    assert got_seq == seq
    if kind is not None:
        assert got_kind == kind
    assert t.verify().returncode == 0  # the original is untouched


def test_without_checkpoints_a_cut_tail_goes_unseen(tmp_path):
    # Why checkpoints exist: the chain alone cannot show records cut off its end.
    t = Trail(tmp_path)
    t.actions(3)
    con, env = t.copy()
    con.execute("DELETE FROM audit_records WHERE seq >= 4")
    con.commit()
    con.close()
    p = t.verify(env)
    assert p.returncode == 0, output(p)
    assert "3 records after the last checkpoint" in p.stdout


# ---- Checkpoints -------------------------------------------------------------------------------

@pytest.fixture
def signed(tmp_path):
    """A trail with a checkpoint after every record, signed by a key made here."""
    private, public = make_key(tmp_path, "audit-signing")
    t = Trail(tmp_path, LEDGERD_AUDIT_SIGNING_KEY_FILE=str(private),
              LEDGERD_AUDIT_CHECKPOINT_RECORDS="1")
    t.actions(3)
    t.public = public
    t.private = private
    return t


def checkpoints(con):
    return con.execute("SELECT seq, hash, time_unix_ms, key_id, signature FROM audit_checkpoints "
                       "ORDER BY seq").fetchall()


def test_checkpoints_are_written_and_verified(signed):
    con = sqlite3.connect(signed.db)
    cps = checkpoints(con)
    con.close()
    assert [c[0] for c in cps] == [1, 2, 3, 4, 5]
    p = signed.verify()
    assert p.returncode == 0, output(p)
    assert "5 checkpoints verified (last at seq 5), 0 records after the last checkpoint" in p.stdout
    # With the public key only (as an auditor would have it).
    e = dict(signed.env, LEDGERD_AUDIT_PUBLIC_KEYS_FILE=str(signed.public))
    del e["LEDGERD_AUDIT_SIGNING_KEY_FILE"]
    p = run_cli(["audit", "verify"], env=e, cwd=signed.dir)
    assert p.returncode == 0, output(p)
    # Without any key, every checkpoint is unknown: a finding, not a pass.
    del e["LEDGERD_AUDIT_PUBLIC_KEYS_FILE"]
    p = run_cli(["audit", "verify"], env=e, cwd=signed.dir)
    assert finding(p) == (1, "checkpoint_unknown_key")
    assert "LEDGERD_AUDIT_PUBLIC_KEYS_FILE" in p.stdout


def test_checkpoint_lines_go_to_stderr_and_match_the_table(signed):
    p = signed.run(["apikey", "create", "--name", "n", "--scopes", "admin"])
    m = re.search(r"audit checkpoint seq=(\d+) hash=([0-9a-f]{64}) time_unix_ms=(\d+) "
                  r"key_id=([0-9a-f]{16}) signature=([0-9a-f]{128})", p.stderr)
    assert m, p.stderr
    assert p.stdout.splitlines()[-1].startswith("ldk_")
    con = sqlite3.connect(signed.db)
    row = con.execute("SELECT seq, hash, time_unix_ms, key_id, signature FROM audit_checkpoints "
                      "WHERE seq = ?", (int(m.group(1)),)).fetchone()
    con.close()
    assert (row[0], row[1].hex(), row[2], row[3], row[4].hex()) == \
        (int(m.group(1)), m.group(2), int(m.group(3)), m.group(4), m.group(5))


def public_raw(public_pem):
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(public_pem), "-outform", "DER"],
                         check=True, capture_output=True, timeout=30).stdout
    return der[-32:]


def sign_with(private_pem, message, tmp_path):
    msg = tmp_path / "msg.bin"
    sig = tmp_path / "msg.sig"
    msg.write_bytes(message)
    openssl("pkeyutl", "-sign", "-inkey", str(private_pem), "-rawin", "-in", str(msg),
            "-out", str(sig))
    return sig.read_bytes()


def cut_tail(con, t, tmp_path):
    con.execute("DELETE FROM audit_records WHERE seq >= 4")
    return 4, "checkpoint_beyond_tail"  # the first checkpoint without its record


def flip_signature(con, t, tmp_path):
    seq, h, when, key_id, sig = checkpoints(con)[2]
    con.execute("UPDATE audit_checkpoints SET signature = ? WHERE seq = ?",
                (bytes([sig[0] ^ 1]) + sig[1:], seq))
    return seq, "checkpoint_signature_invalid"


def forge_with_own_key(con, t, tmp_path):
    # A well-formed checkpoint, validly signed, but by a key the verifier does not have.
    private, public = make_key(tmp_path, "attacker")
    raw = public_raw(public)
    key_id = hashlib.sha256(raw).hexdigest()[:16]
    seq, h, when, _, _ = checkpoints(con)[1]
    msg = canonical({"format": "ledgerd.audit.checkpoint.v1", "hash": h.hex(), "key_id": key_id,
                     "seq": seq, "time_unix_ms": when})
    con.execute("UPDATE audit_checkpoints SET key_id = ?, signature = ? WHERE seq = ?",
                (key_id, sign_with(private, msg, tmp_path), seq))
    return seq, "checkpoint_unknown_key"


def forge_beyond_tail(con, t, tmp_path):
    # A checkpoint claiming a record that does not exist, with the real key id: not signed.
    seq, h, when, key_id, sig = checkpoints(con)[-1]
    con.execute("INSERT INTO audit_checkpoints VALUES (?, ?, ?, ?, ?)",
                (seq + 10, h, when, key_id, sig))
    return seq + 10, "checkpoint_signature_invalid"


def rewrite_chain(con, t, tmp_path):
    # Change record 2 and recompute every hash after it: the chain is consistent again, but
    # the signed checkpoint at seq 2 no longer matches.
    rows = t.rows(con)
    rows[1]["reason"] = "rewritten"
    prev = rows[0]["hash"]
    for r in rows[1:]:
        r["prev_hash"] = prev
        r["hash"] = record_hash(r)
        con.execute("UPDATE audit_records SET reason = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                    (r["reason"], r["prev_hash"], r["hash"], r["seq"]))
        prev = r["hash"]
    return 2, "checkpoint_hash_mismatch"


def delete_checkpoint_and_record(con, t, tmp_path):
    # Cutting records and their checkpoints together leaves a shorter trail that verifies:
    # the documented reason to keep checkpoints off the host too.
    con.execute("DELETE FROM audit_records WHERE seq = 5")
    con.execute("DELETE FROM audit_checkpoints WHERE seq = 5")
    return None, None


@pytest.mark.parametrize("tamper", [cut_tail, flip_signature, forge_with_own_key,
                                    forge_beyond_tail, rewrite_chain,
                                    delete_checkpoint_and_record])
def test_checkpoints_catch_tampering(signed, tmp_path, tamper):
    con, env = signed.copy()
    seq, kind = tamper(con, signed, tmp_path)
    con.commit()
    con.close()
    p = signed.verify(env)
    if seq is None:
        assert p.returncode == 0, output(p)
        assert "last seq 4" in p.stdout
    else:
        assert finding(p) == (seq, kind)
    assert signed.verify().returncode == 0


def test_rotated_keys_still_verify(tmp_path):
    old_private, old_public = make_key(tmp_path, "old")
    new_private, new_public = make_key(tmp_path, "new")
    t = Trail(tmp_path, LEDGERD_AUDIT_SIGNING_KEY_FILE=str(old_private),
              LEDGERD_AUDIT_CHECKPOINT_RECORDS="1")
    t.actions(1)  # records 2, 3 signed by the old key (1 by the old key too)
    t.env["LEDGERD_AUDIT_SIGNING_KEY_FILE"] = str(new_private)
    t.actions(1)  # records 4, 5 by the new one
    del t.env["LEDGERD_AUDIT_SIGNING_KEY_FILE"]

    keys = tmp_path / "verify-keys.pem"
    keys.write_text(old_public.read_text() + new_public.read_text())
    p = t.verify({"LEDGERD_AUDIT_PUBLIC_KEYS_FILE": str(keys)})
    assert p.returncode == 0, output(p)
    assert "5 checkpoints verified" in p.stdout

    # The new key with the signing key's setting; the old one missing: found at seq 1.
    p = t.verify({"LEDGERD_AUDIT_SIGNING_KEY_FILE": str(new_private)})
    assert finding(p) == (1, "checkpoint_unknown_key")

    # Raw keys as 64 hex digits, one per line, are accepted too.
    hexes = tmp_path / "verify-keys.hex"
    hexes.write_text(public_raw(old_public).hex() + "\n" + public_raw(new_public).hex() + "\n")
    p = t.verify({"LEDGERD_AUDIT_PUBLIC_KEYS_FILE": str(hexes)})
    assert p.returncode == 0, output(p)


def test_checkpoint_command(tmp_path):
    private, public = make_key(tmp_path, "k")
    t = Trail(tmp_path)
    t.actions(2)
    p = t.run(["audit", "checkpoint"], expect=2)
    assert "LEDGERD_AUDIT_SIGNING_KEY_FILE" in p.stderr
    env = {"LEDGERD_AUDIT_SIGNING_KEY_FILE": str(private)}
    p = t.run(["audit", "checkpoint"], env=env)
    assert re.search(r"^audit checkpoint seq=4 ", p.stdout, re.M), output(p)
    p = t.run(["audit", "checkpoint"], env=env)
    assert "nothing to sign" in p.stdout
    p = t.verify({"LEDGERD_AUDIT_PUBLIC_KEYS_FILE": str(public)})
    assert p.returncode == 0, output(p)
    assert "1 checkpoints verified (last at seq 4), 0 records after" in p.stdout


# ---- Usage and configuration errors ------------------------------------------------------------

@pytest.mark.parametrize("args", [["audit"], ["audit", "verify", "extra"], ["audit", "sideways"],
                                  ["audit", "checkpoint", "now"]])
def test_usage_errors(tmp_path, args):
    t = Trail(tmp_path)
    p = t.run(args, expect=2)
    assert "usage: ledgerd audit" in p.stderr


def test_bad_key_files_are_configuration_errors(tmp_path):
    t = Trail(tmp_path)
    t.actions(1)
    private, public = make_key(tmp_path, "k")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    truncated = tmp_path / "truncated.pem"
    truncated.write_text(public.read_text().splitlines()[0] + "\nMCowBQYDK2Vw\n")
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    for path in (garbage, truncated, empty, private, tmp_path / "missing.pem"):
        p = t.verify({"LEDGERD_AUDIT_PUBLIC_KEYS_FILE": str(path)})
        assert p.returncode == 2, (path, output(p))
        assert "LEDGERD_AUDIT_PUBLIC_KEYS_FILE" in p.stderr, p.stderr
    # The private key's content is never echoed.
    p = t.verify({"LEDGERD_AUDIT_PUBLIC_KEYS_FILE": str(private)})
    body = "".join(private.read_text().splitlines()[1:-1])
    assert body[:20] not in output(p)
    # A signing key file that holds no key.
    p = t.verify({"LEDGERD_AUDIT_SIGNING_KEY_FILE": str(garbage)})
    assert p.returncode == 2, output(p)
    assert "LEDGERD_AUDIT_SIGNING_KEY_FILE" in p.stderr


def test_help(tmp_path):
    p = run_cli(["audit", "--help"], cwd=tmp_path)
    assert p.returncode == 0
    for word in ("verify", "export", "checkpoint", "--since", "--after-seq"):
        assert word in p.stdout
