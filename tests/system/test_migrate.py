"""`ledgerd migrate` as a deployment pipeline drives it, on the backend of the pass (SQLite, or
PostgreSQL with LEDGERD_TEST_DB=postgres): the repository's migrations verify (integrity, lint,
a fresh apply equal to the committed schema.sql); plan is a dry run that leaves the database
byte for byte as it was; up applies forward only, one migration at a time with --to, refuses
destructive statements unless annotated and allowed, and records who and how long; the
integrity file refuses an edited, reordered or doubly numbered history; new, hash and snapshot
write what they say; a database at the previous migration, full of data, upgrades with its
balances intact; and hostile migration directories get a clear error, never a hang."""

import hashlib
import os
import pathlib
import re
import shutil
import stat
import struct
import subprocess
import threading

import pytest

from .ledgerd_harness import (REPO, Server, assert_ledgers_balanced, backend, pg_connect,
                              pg_create_database, run_cli, uid)

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
SQLITE_DIR = "sqlite"


def bdir():
    """The migrations directory of the pass's backend."""
    return "postgres" if backend() == "postgres" else SQLITE_DIR


def output(p):
    return p.stdout + "\n" + p.stderr


class Repo:
    """A copy of the repository's migrations in tmp, and a fresh database of the pass."""

    def __init__(self, tmp_path):
        self.root = tmp_path / "migrations"
        shutil.copytree(REPO / "migrations", self.root)
        if backend() == "postgres":
            self.url = pg_create_database(prefix="mig")
        else:
            self.url = "sqlite://" + str(tmp_path / "db" / "ledgerd.db")
        self.tmp = tmp_path
        self.env = {"LEDGERD_DB": self.url, "LEDGERD_MIGRATIONS_DIR": str(self.root)}

    @property
    def dir(self):
        return self.root / bdir()

    def run(self, *args, env=None, timeout=60):
        e = dict(self.env)
        e.update(env or {})
        return run_cli(["migrate"] + list(args), env=e, cwd=self.tmp, timeout=timeout)

    def ok(self, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == 0, output(p)
        return p

    def write(self, name, text, backends=None):
        for b in backends or [bdir()]:
            (self.root / b / name).write_text(text)

    def rows(self):
        """schema_migrations as [(version, name, checksum, duration_ms, applied_by)]; [] before
        the first migration made the table."""
        if backend() == "postgres":
            exists = self.sql("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0]
        else:
            path = pathlib.Path(self.url[len("sqlite://"):])
            exists = path.exists() and self.sql(
                "SELECT count(*) FROM sqlite_master WHERE name = 'schema_migrations'")[0][0] == 1
        if not exists:
            return []
        return self.sql("SELECT version, name, checksum, duration_ms, applied_by"
                        " FROM schema_migrations ORDER BY version")

    def sql(self, sql):
        if backend() == "postgres":
            conn = pg_connect(self.url)
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    return cur.fetchall() if cur.description else None
            finally:
                conn.close()
        import sqlite3
        db = sqlite3.connect(self.url[len("sqlite://"):])
        try:
            rows = db.execute(sql).fetchall()
            db.commit()
            return rows
        finally:
            db.close()

    def image(self):
        """Everything the database holds, byte for byte: the SQLite files, or pg_dump's schema
        and data of the PostgreSQL database."""
        if backend() == "postgres":
            p = subprocess.run([f"{PG_BIN}/pg_dump", "--no-sync", "-d", self.url], check=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            # pg_dump 15.14 on brackets its output with a random \restrict key.
            lines = [ln for ln in p.stdout.split(b"\n")
                     if not ln.startswith((b"\\restrict ", b"\\unrestrict "))]
            return {"dump": b"\n".join(lines)}
        d = pathlib.Path(self.url[len("sqlite://"):]).parent
        return {f.name: f.read_bytes() for f in sorted(d.iterdir())}


@pytest.fixture
def repo(tmp_path):
    return Repo(tmp_path)


# A new table (expand), then a destructive change on it in a later file.
EXPAND = """-- 0003_fees: a table of fee schedules.
CREATE TABLE fees (id TEXT PRIMARY KEY, basis_points INTEGER NOT NULL, note TEXT);
CREATE INDEX fees_by_points ON fees (basis_points);
"""
CONTRACT = """-- 0004_drop_fee_note: nothing reads fees.note any more.
ALTER TABLE fees DROP COLUMN note;
"""
ANNOTATION = ("-- ledgerd:destructive drop-column: fees.note has been unused since 0003 "
              "(contract step)\n")


def lock_timeout():
    return "SET lock_timeout = '5s';\n" if backend() == "postgres" else ""


def add_expand_and_contract(repo, annotated):
    repo.write("0003_fees.sql", EXPAND)
    contract = CONTRACT.replace("-- 0004", (ANNOTATION if annotated else "") + "-- 0004")
    repo.write("0004_drop_fee_note.sql",
               contract.replace("ALTER", lock_timeout() + "ALTER", 1))
    repo.ok("hash")


# ---------------------------------------------------------------------------------------------
# The repository's own migrations.
# ---------------------------------------------------------------------------------------------


def test_repository_migrations_verify_on_a_fresh_database(tmp_path):
    """What CI checks: integrity, lint, applied checksums, and a fresh apply equal to the
    committed snapshot — on the repository's directory itself."""
    env = {"LEDGERD_MIGRATIONS_DIR": str(REPO / "migrations")}
    env["LEDGERD_DB"] = (pg_create_database(prefix="ver") if backend() == "postgres"
                         else "sqlite://" + str(tmp_path / "v.db"))
    up = run_cli(["migrate", "up"], env=env, cwd=tmp_path, timeout=120)
    assert up.returncode == 0, output(up)
    v = run_cli(["migrate", "verify"], env=env, cwd=tmp_path, timeout=120)
    assert v.returncode == 0, output(v)
    for check in ("integrity ok", "lint ok", "database ok", "snapshot ok"):
        assert f"verify: {check}" in v.stdout, output(v)


def test_repository_lint_is_clean():
    p = run_cli(["migrate", "lint"], env={"LEDGERD_MIGRATIONS_DIR": str(REPO / "migrations")})
    assert p.returncode == 0, output(p)
    assert re.search(r"lint: \d+ files, 0 errors", p.stdout), output(p)


def test_builtin_copy_is_used_outside_the_source_tree(tmp_path):
    """Without LEDGERD_MIGRATIONS_DIR and without ./migrations, the binary's own copy."""
    env = {"LEDGERD_DB": "sqlite://" + str(tmp_path / "b.db")}
    p = run_cli(["migrate", "up"], env=env, cwd=tmp_path)
    assert p.returncode == 0, output(p)
    assert "migrations: built-in" in p.stdout, output(p)
    s = run_cli(["migrate", "status"], env=env, cwd=tmp_path)
    assert s.returncode == 0 and " 0 pending" in s.stdout, output(s)


# ---------------------------------------------------------------------------------------------
# plan: the dry run.
# ---------------------------------------------------------------------------------------------


def test_plan_prints_every_statement_and_changes_nothing(repo):
    repo.ok("up")
    add_expand_and_contract(repo, annotated=True)
    before = repo.image()
    p = repo.run("plan")
    assert p.returncode == 1, output(p)  # `up` would refuse without --allow-destructive
    assert "-- 0003_fees.sql (in one transaction" in p.stdout, output(p)
    assert "CREATE TABLE fees (id TEXT PRIMARY KEY" in p.stdout
    assert "CREATE INDEX fees_by_points ON fees (basis_points);" in p.stdout
    assert "ALTER TABLE fees DROP COLUMN note;" in p.stdout
    assert "drop-column (annotated) on fees: not in the database yet" in p.stdout, output(p)
    assert "`up` would refuse" in p.stdout and "--allow-destructive" in p.stdout, output(p)
    allowed = repo.run("plan", "--allow-destructive")
    assert allowed.returncode == 0, output(allowed)
    assert re.search(r"would apply 2 migration\(s\), \d+ statement\(s\), 1 destructive",
                     allowed.stdout), output(allowed)
    assert repo.image() == before, "plan changed the database"
    assert [r[0] for r in repo.rows()] == [1, 2]


def test_plan_shows_how_many_rows_a_finding_touches(repo):
    """A unique index is harmless on an empty table and a long lock (or a failure) on a full
    one: the plan says which it is."""
    repo.ok("up")
    for i in range(3):
        repo.sql("INSERT INTO accounts (id, ledger, code, flags, debits_pending, debits_posted,"
                 " credits_pending, credits_posted, created_at_ms) VALUES"
                 f" ('r{i}', 'USD', 1, 0, {u128_sql(0)}, {u128_sql(0)}, {u128_sql(0)},"
                 f" {u128_sql(0)}, 0)")
    pg = backend() == "postgres"
    repo.write("0003_unique_ledger_id.sql",
               "-- 0003_unique_ledger_id: (ledger, id) is unique.\n"
               "-- ledgerd:destructive unique-on-existing-table: ids are unique already\n" +
               ("-- ledgerd:destructive index-without-concurrently: three rows, reviewed\n"
                "SET lock_timeout = '5s';\n" if pg else "") +
               "CREATE UNIQUE INDEX accounts_ledger_id ON accounts (ledger, id);\n")
    repo.ok("hash")
    before = repo.image()
    p = repo.run("plan", "--allow-destructive")
    assert p.returncode == 0, output(p)
    assert "unique-on-existing-table (annotated) on accounts: 3 rows" in p.stdout, output(p)
    assert repo.image() == before


def u128_sql(v):
    """A u128 column value as SQL text for the pass's backend."""
    return str(v) if backend() == "postgres" else "x'" + v.to_bytes(16, "big").hex() + "'"


def test_plan_on_an_up_to_date_database(repo):
    repo.ok("up")
    before = repo.image()
    p = repo.ok("plan")
    assert "nothing to apply" in p.stdout
    assert repo.image() == before


# ---------------------------------------------------------------------------------------------
# up and status.
# ---------------------------------------------------------------------------------------------


def test_up_to_then_status_then_forward_only(repo):
    add_expand_and_contract(repo, annotated=True)
    p = repo.ok("up", "--to", "3")
    assert "applied 0001_ledger.sql in" in p.stdout and "applied 0003_fees.sql in" in p.stdout
    assert "database is at 0003" in p.stdout
    s = repo.ok("status")
    user = re.escape(os.environ.get("USER") or "")
    assert re.search(r"0003_fees.sql applied \d{4}-\d\d-\d\dT[\d:.]+Z in \d+ ms by cli:", s.stdout)
    assert "0004_drop_fee_note.sql pending" in s.stdout
    assert "4 available, 3 applied, 1 pending" in s.stdout
    rows = repo.rows()
    assert [r[0] for r in rows] == [1, 2, 3]
    assert all(r[3] is not None and r[3] >= 0 for r in rows)
    assert all(r[4].startswith("cli:") for r in rows), rows
    if user:
        assert re.search("by cli:" + user, s.stdout) or "by cli:uid:" in s.stdout
    back = repo.run("up", "--to", "2")
    assert back.returncode == 1 and "only go forward" in back.stderr, output(back)
    repo.ok("up", "--allow-destructive")
    assert [r[0] for r in repo.rows()] == [1, 2, 3, 4]


def test_each_application_is_audited(repo):
    repo.ok("up")
    rows = repo.sql("SELECT actor, action, resource, decision FROM audit_records ORDER BY seq")
    mig = [r for r in rows if r[1] == "migration.apply"]
    assert [r[2] for r in mig] == ["migration:0002_auth_audit"], rows  # 0001 predates the trail
    assert all(r[0].startswith("cli:") and r[3] == "success" for r in mig)
    repo.write("0003_fees.sql", EXPAND)
    repo.ok("hash")
    repo.ok("up")
    rows = repo.sql("SELECT resource FROM audit_records WHERE action = 'migration.apply'"
                    " ORDER BY seq")
    assert [r[0] for r in rows] == ["migration:0002_auth_audit", "migration:0003_fees"]


def test_destructive_change_needs_annotation_and_flag(repo):
    repo.ok("up")
    add_expand_and_contract(repo, annotated=False)
    lint = repo.run("lint")
    assert lint.returncode == 1, output(lint)
    assert re.search(r"0004_drop_fee_note.sql:\d+: error: drop-column on fees", lint.stdout)
    for flags in ([], ["--allow-destructive"]):
        p = repo.run("up", *flags)
        assert p.returncode == 1, output(p)
        assert "0004_drop_fee_note.sql line" in p.stderr and "not annotated" in p.stderr
        # Refused before anything ran: not even the harmless 0003.
        assert [r[0] for r in repo.rows()] == [1, 2]

    add_expand_and_contract(repo, annotated=True)
    repo.ok("lint")
    p = repo.run("up")
    assert p.returncode == 1 and "--allow-destructive" in p.stderr, output(p)
    assert [r[0] for r in repo.rows()] == [1, 2]
    repo.ok("up", "--allow-destructive")
    assert [r[0] for r in repo.rows()] == [1, 2, 3, 4]


def test_failed_migration_is_rolled_back_and_names_the_file(repo):
    repo.ok("up")
    repo.write("0003_fees.sql", EXPAND + "INSERT INTO no_such_table VALUES (1);\n")
    repo.ok("hash")
    p = repo.run("up")
    assert p.returncode == 1, output(p)
    assert "0003_fees.sql" in p.stderr and "no_such_table" in p.stderr, output(p)
    assert [r[0] for r in repo.rows()] == [1, 2]
    # The CREATE TABLE before the failure went with the transaction.
    if backend() == "postgres":
        assert repo.sql("SELECT to_regclass('fees') IS NULL") == [(True,)]
    else:
        assert repo.sql("SELECT count(*) FROM sqlite_master WHERE name = 'fees'") == [(0,)]


def test_concurrent_up_applies_each_migration_once(repo):
    results = [None, None]

    def go(i):
        results[i] = repo.run("up", timeout=120)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in results:
        assert p.returncode == 0, output(p)
    applied = sum(len(re.findall(r"^applied ", p.stdout, re.M)) for p in results)
    assert applied == 2, [output(p) for p in results]
    assert [r[0] for r in repo.rows()] == [1, 2]
    n = repo.sql("SELECT count(*) FROM audit_records WHERE action = 'migration.apply'")
    assert n == [(1,)]


@pytest.mark.skipif(backend() != "postgres", reason="PostgreSQL only")
def test_postgres_index_concurrently_outside_a_transaction(repo):
    repo.ok("up")
    repo.write("0003_accounts_by_code.sql",
               "-- 0003_accounts_by_code: list accounts by code.\n-- ledgerd:no-transaction\n"
               "SET lock_timeout = '5s';\n"
               "CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_by_code ON accounts (code);\n")
    repo.ok("hash")
    repo.ok("lint")
    p = repo.ok("plan")
    assert "(outside a transaction" in p.stdout
    repo.ok("up")
    assert repo.sql("SELECT indisvalid FROM pg_index WHERE indexrelid ="
                    " 'accounts_by_code'::regclass") == [(True,)]


@pytest.mark.skipif(backend() != "postgres", reason="PostgreSQL only")
def test_postgres_failed_concurrent_build_is_never_recorded(repo):
    """CREATE UNIQUE INDEX CONCURRENTLY over duplicates fails and leaves an INVALID index; the
    rerun, which IF NOT EXISTS would let skip it, is refused until the index is dropped."""
    repo.ok("up")
    for i in range(2):
        repo.sql("INSERT INTO accounts (id, ledger, code, flags, debits_pending, debits_posted,"
                 f" credits_pending, credits_posted, created_at_ms) VALUES ('a{i}', 'USD', 1, 0,"
                 " 0, 0, 0, 0, 0)")
    repo.write("0003_unique_ledger.sql",
               "-- 0003_unique_ledger: one account per ledger (fails on duplicates).\n"
               "-- ledgerd:no-transaction\n"
               "-- ledgerd:destructive unique-on-existing-table: checked in staging first\n"
               "SET lock_timeout = '5s';\n"
               "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_one_per_ledger"
               " ON accounts (ledger);\n")
    repo.ok("hash")
    first = repo.run("up", "--allow-destructive")
    assert first.returncode == 1 and "0003_unique_ledger.sql" in first.stderr, output(first)
    again = repo.run("up", "--allow-destructive")
    assert again.returncode == 1, output(again)
    assert "INVALID index accounts_one_per_ledger" in again.stderr, output(again)
    assert [r[0] for r in repo.rows()] == [1, 2]
    repo.sql("DROP INDEX accounts_one_per_ledger")
    repo.sql("DELETE FROM accounts WHERE id = 'a1'")
    repo.ok("up", "--allow-destructive")
    assert [r[0] for r in repo.rows()] == [1, 2, 3]


def test_previous_release_keeps_serving_on_an_expanded_schema(repo, tmp_path):
    """A newer release applied an expand migration this binary does not know: status says so,
    and the server starts and is ready (not drift)."""
    repo.ok("up")
    repo.write("0003_fees.sql", EXPAND)
    repo.ok("hash")
    repo.ok("up")
    srv = Server(tmp_path / "old", env={"LEDGERD_DB": repo.url}, migrate=False)
    srv.start()
    try:
        r = srv.client().get("/readyz")
        assert r.status == 200, r
    finally:
        srv.stop()
    elsewhere = tmp_path / "elsewhere"  # no ./migrations: the binary's own two files
    elsewhere.mkdir()
    old = run_cli(["migrate", "status"], env={"LEDGERD_DB": repo.url}, cwd=elsewhere)
    assert old.returncode == 0, output(old)
    assert "0003_fees.sql (newer than these files)" in old.stdout
    assert "1 applied by a newer release" in old.stdout, output(old)


@pytest.mark.skipif(backend() != "postgres", reason="PostgreSQL only")
def test_postgres_lint_wants_concurrently_and_lock_timeout(repo):
    repo.write("0003_accounts_by_code.sql",
               "-- 0003_accounts_by_code: list accounts by code.\n"
               "CREATE INDEX accounts_by_code ON accounts (code);\n")
    repo.ok("hash")
    p = repo.run("lint")
    assert p.returncode == 1
    assert "index-without-concurrently on accounts" in p.stdout, output(p)
    assert "missing-lock-timeout" in p.stdout, output(p)


# ---------------------------------------------------------------------------------------------
# The integrity file.
# ---------------------------------------------------------------------------------------------


def test_edited_file_is_refused_before_anything_runs(repo):
    f = repo.dir / "0001_ledger.sql"
    f.write_text(f.read_text().replace("CREATE TABLE accounts", "CREATE TABLE  accounts", 1))
    for cmd in (["status"], ["plan"], ["up"], ["verify"], ["lint"]):
        p = repo.run(*cmd)
        assert p.returncode == 1, (cmd, output(p))
        assert "0001_ledger.sql was edited" in p.stderr + p.stdout, (cmd, output(p))
    assert repo.rows() == []


def test_line_endings_never_change_a_hash(repo):
    for f in repo.dir.iterdir():
        if f.suffix in (".sql", ".sum"):
            f.write_bytes(f.read_bytes().replace(b"\n", b"\r\n"))
    p = repo.ok("up")
    assert "applied 0002_auth_audit.sql" in p.stdout
    # The checksums recorded are those of the LF files: the repository's copy agrees.
    lf = (REPO / "migrations" / bdir() / "0001_ledger.sql").read_bytes()
    assert repo.rows()[0][2] == hashlib.sha256(lf).hexdigest()
    clean = dict(repo.env, LEDGERD_MIGRATIONS_DIR=str(REPO / "migrations"))
    s = run_cli(["migrate", "status"], env=clean, cwd=repo.tmp)
    assert s.returncode == 0, output(s)


def test_reordered_and_duplicate_history_is_refused(repo):
    repo.write("0003_fees.sql", EXPAND)
    repo.write("0004_limits.sql", "CREATE TABLE limits (id TEXT PRIMARY KEY);\n")
    repo.ok("hash")
    sum_file = repo.dir / "ledgerd.sum"
    lines = sum_file.read_text().splitlines(keepends=True)
    swapped = lines[:4] + [lines[5], lines[4]]
    sum_file.write_text("".join(swapped))
    p = repo.run("status")
    assert p.returncode == 1 and "ledgerd.sum" in p.stderr, output(p)
    repo.ok("hash")
    # Two branches each added a 0004.
    repo.write("0004_rates.sql", "CREATE TABLE rates (id TEXT PRIMARY KEY);\n")
    p = repo.run("up")
    assert p.returncode == 1, output(p)
    assert "0004_limits.sql and 0004_rates.sql" in p.stderr, output(p)
    assert repo.rows() == []


def test_file_not_in_the_sum_is_refused_until_hashed(repo):
    repo.write("0003_fees.sql", EXPAND)
    p = repo.run("up")
    assert p.returncode == 1, output(p)
    assert "0003_fees.sql is not in ledgerd.sum" in p.stderr, output(p)
    assert "ledgerd migrate hash" in p.stderr
    repo.ok("hash")
    repo.ok("up")


def test_drift_after_an_applied_file_was_edited_and_rehashed(repo):
    repo.ok("up")
    f = repo.dir / "0002_auth_audit.sql"
    f.write_text(f.read_text() + "\n-- an afterthought\n")
    repo.ok("hash")
    s = repo.run("status")
    assert s.returncode == 1, output(s)
    assert "drift" in s.stderr and "0002_auth_audit.sql was edited after it was applied" \
        in s.stderr, output(s)
    v = repo.run("verify")
    assert v.returncode == 1 and "database FAILED" in v.stderr, output(v)


# ---------------------------------------------------------------------------------------------
# new, hash, snapshot, verify.
# ---------------------------------------------------------------------------------------------


def test_new_creates_the_next_file_for_both_backends(repo):
    p = repo.ok("new", "add_fees")
    for b in ("sqlite", "postgres"):
        f = repo.root / b / "0003_add_fees.sql"
        assert str(f) in p.stdout or f.name in p.stdout, output(p)
        text = f.read_text()
        assert text.startswith("-- 0003_add_fees: <what this migration changes and why>")
        assert "Author: " in text and "Kind: expand | contract" in text
        assert "0003_add_fees.sql" in (repo.root / b / "ledgerd.sum").read_text()
    assert "SET lock_timeout" in (repo.root / "postgres" / "0003_add_fees.sql").read_text()
    # Unwritten, it fails the lint and is not applied.
    lint = repo.run("lint")
    assert lint.returncode == 1 and "fill in the header" in lint.stdout + lint.stderr, \
        output(lint)
    up = repo.run("up")
    assert up.returncode == 1 and "0003_add_fees.sql" in up.stderr, output(up)
    # Written and rehashed, it is.
    for b in ("sqlite", "postgres"):
        f = repo.root / b / "0003_add_fees.sql"
        text = f.read_text().replace("<what this migration changes and why>",
                                     "a table of fee schedules")
        f.write_text(text + ("SET lock_timeout = '5s';\n" if b == "postgres" else "") +
                     "CREATE TABLE fees (id TEXT PRIMARY KEY);\n")
    repo.ok("hash")
    repo.ok("lint")
    repo.ok("up")
    assert [r[1] for r in repo.rows()] == ["ledger", "auth_audit", "add_fees"]
    again = repo.ok("new", "add_rates")
    assert "0004_add_rates.sql" in again.stdout


@pytest.mark.parametrize("name", ["", "Bad-Name", "x" * 65, "a b", "../escape", "ünïcode"])
def test_new_refuses_bad_names(repo, name):
    p = repo.run("new", name)
    assert p.returncode in (1, 2), output(p)
    assert not list(repo.dir.glob("0003_*")), "a file was created"


def test_new_refuses_an_unreviewed_directory(repo):
    f = repo.root / "sqlite" / "0002_auth_audit.sql"
    f.write_text(f.read_text() + "-- edit\n")
    p = repo.run("new", "x")
    assert p.returncode == 1 and "0002_auth_audit.sql was edited" in p.stderr, output(p)
    assert not list((repo.root / "sqlite").glob("0003_*"))


def test_snapshot_then_verify_detects_a_stale_snapshot(repo):
    snap = repo.dir / "schema.sql"
    committed = snap.read_bytes()
    p = repo.ok("snapshot")
    assert snap.read_bytes() == committed, "the committed schema.sql is stale"
    repo.ok("up")
    repo.ok("verify")
    repo.write("0003_fees.sql", EXPAND)
    repo.ok("hash")
    v = repo.run("verify")
    assert v.returncode == 1, output(v)
    assert "snapshot FAILED" in v.stderr and "schema.sql" in v.stderr, output(v)
    assert "+ CREATE TABLE fees" in v.stderr or "fees" in v.stderr, output(v)
    p = repo.ok("snapshot")
    assert "fees" in snap.read_text()
    repo.ok("up")
    repo.ok("verify")


# ---------------------------------------------------------------------------------------------
# Upgrading a database full of data.
# ---------------------------------------------------------------------------------------------


def u128_cell(v):
    return v if backend() == "postgres" else struct.pack(">QQ", v >> 64, v & (2**64 - 1))


def test_upgrade_from_the_previous_migration_keeps_data_and_invariants(repo, tmp_path):
    """A database at the previous migration (what the last release left), filled with accounts
    and transfers, migrated up: every balance and transfer is intact, the ledgers balance, and
    the upgraded database takes new transfers."""
    previous = len(list(repo.dir.glob("[0-9][0-9][0-9][0-9]_*.sql"))) - 1
    repo.ok("up", "--to", str(previous))
    import random
    rnd = random.Random(7)
    accounts = [f"acct-{i}" for i in range(40)]
    bal = {a: [0, 0] for a in accounts}  # debits_posted, credits_posted
    transfers = []
    for i in range(500):
        dr, cr = rnd.sample(accounts, 2)
        amount = rnd.choice([1, 99, 10**6, 2**64 + 5, 10**30])
        transfers.append((f"tr-{i}", dr, cr, amount))
        bal[dr][0] += amount
        bal[cr][1] += amount
    fill = []
    ph = "%s" if backend() == "postgres" else "?"
    cols = ("id, ledger, code, flags, metadata, debits_pending, debits_posted, credits_pending,"
            " credits_posted, created_at_ms")
    for a in accounts:
        fill.append((f"INSERT INTO accounts ({cols}) VALUES ({', '.join([ph] * 10)})",
                     (a, "USD", 1, 0, None, u128_cell(0), u128_cell(bal[a][0]), u128_cell(0),
                      u128_cell(bal[a][1]), 1700000000000)))
    tcols = "id, debit_account_id, credit_account_id, amount, ledger, code, flags, created_at_ms"
    for t, dr, cr, amount in transfers:
        fill.append((f"INSERT INTO transfers ({tcols}) VALUES ({', '.join([ph] * 8)})",
                     (t, dr, cr, u128_cell(amount), "USD", 1, 0, 1700000000000)))
    if backend() == "postgres":
        conn = pg_connect(repo.url)
        with conn.cursor() as cur:
            for sql, args in fill:
                cur.execute(sql, args)
        conn.close()
    else:
        import sqlite3
        db = sqlite3.connect(repo.url[len("sqlite://"):])
        for sql, args in fill:
            db.execute(sql, args)
        db.commit()
        db.close()

    repo.ok("up")
    srv = Server(tmp_path / "srv", env={"LEDGERD_DB": repo.url}, migrate=False)
    srv.start()
    try:
        c = srv.client()
        for a in accounts:
            r = c.get(f"/v1/accounts/{a}")
            assert r.status == 200, r
            body = r.json
            assert int(body["debits_posted"]) == bal[a][0], (a, body)
            assert int(body["credits_posted"]) == bal[a][1], (a, body)
        for t, dr, cr, amount in transfers[::25]:
            r = c.get(f"/v1/transfers/{t}")
            assert r.status == 200 and int(r.json["amount"]) == amount, r
        assert_ledgers_balanced(c)
        r = c.post("/v1/transfers", {"id": uid("tr"), "debit_account_id": accounts[0],
                                     "credit_account_id": accounts[1], "amount": "5",
                                     "ledger": "USD", "code": 1},
                   headers={"Idempotency-Key": uid("k")})
        assert r.status == 201, r
        after = c.get(f"/v1/accounts/{accounts[0]}").json
        assert int(after["debits_posted"]) == bal[accounts[0]][0] + 5
        assert_ledgers_balanced(c)
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------
# Bad input: arguments, settings, hostile directories.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["up", "--to"], ["up", "--to", "0"], ["up", "--to", "abc"], ["up", "--to", "99999"],
    ["up", "--to", "-1"], ["up", "--allow"], ["status", "--to", "1"], ["new"],
    ["new", "a", "b"], ["sideways"], ["lint", "extra"], [],
])
def test_bad_arguments_are_usage_errors(repo, args):
    p = repo.run(*args)
    assert p.returncode == 2, (args, output(p))
    assert "usage" in p.stderr or "ledgerd:" in p.stderr, output(p)


def test_to_past_the_last_migration_is_refused(repo):
    p = repo.run("up", "--to", "50")
    assert p.returncode == 1 and "only 2 migrations" in p.stderr, output(p)


def test_migrations_dir_setting(repo, tmp_path):
    bad = repo.run("status", env={"LEDGERD_MIGRATIONS_DIR": "mig\x01rations"})
    assert bad.returncode == 2 and "LEDGERD_MIGRATIONS_DIR" in bad.stderr, output(bad)
    missing = repo.run("status", env={"LEDGERD_MIGRATIONS_DIR": str(tmp_path / "nowhere")})
    assert missing.returncode == 1, output(missing)
    assert "nowhere" in missing.stderr, output(missing)
    nolint = repo.run("lint", env={"LEDGERD_MIGRATIONS_DIR": str(tmp_path / "nowhere")})
    assert nolint.returncode == 1 and "no migrations" in nolint.stderr, output(nolint)


def test_hostile_directories_get_a_clear_error(repo):
    cases = []
    big = repo.dir / "0003_big.sql"
    with open(big, "wb") as f:
        f.write(b"-- x\n" * (1024 * 1024))  # 5 MiB
    cases.append(("0003_big.sql", big))
    fifo = repo.dir / "0003_fifo.sql"
    os.mkfifo(fifo)
    cases.append(("0003_fifo.sql", fifo))
    nul = repo.dir / "0003_nul.sql"
    nul.write_bytes(b"CREATE TABLE t (a INT);\x00\n")
    cases.append(("0003_nul.sql", nul))
    loop = repo.dir / "0003_loop.sql"
    os.symlink(loop, loop)
    cases.append(("0003_loop.sql", loop))
    odd = repo.dir / "3_odd.sql"
    odd.write_text("SELECT 1;\n")
    cases.append(("3_odd.sql", odd))
    quote = repo.dir / "0003_quote.sql"
    quote.write_text("CREATE TABLE t (a TEXT DEFAULT 'unterminated);\n")
    cases.append(("0003_quote.sql", quote))
    for name, path in cases:
        others = [p for n, p in cases if p != path]
        hidden = []
        for o in others:
            h = o.with_name("." + o.name + ".hidden")
            os.rename(o, h)
            hidden.append((h, o))
        try:
            for cmd in (["hash"], ["lint"]):
                p = repo.run(*cmd, timeout=20)
                assert p.returncode == 1, (name, cmd, output(p))
                assert name in p.stderr + p.stdout, (name, cmd, output(p))
        finally:
            for h, o in hidden:
                os.rename(h, o)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
