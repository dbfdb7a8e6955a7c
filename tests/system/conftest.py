"""Fixtures for ledgerd system tests.

- server: one ledgerd per test module (serve --migrate on a fresh SQLite database). At the end of
  the module every ledger must still balance and the process must stop cleanly on SIGTERM, with
  no sanitizer report.
- client: a keep-alive client to that server.
- make_server: a factory for servers with their own settings; each is killed at the end of the
  test whatever happens.

The binary is $LEDGERD_BIN (default <repo>/build/ledgerd).

LEDGERD_TEST_DB=postgres runs the suite against PostgreSQL: every server gets a fresh database
on the cluster at $LEDGERD_TEST_PG_URL, or on a throwaway cluster started here when it is unset.
Tests of what only SQLite has (its file, its WAL, sqlite3 inspection) are marked sqlite_only,
and modules that do not touch the database at all run once, in the SQLite pass.
"""

import os
import pathlib
import subprocess
import tempfile

import pytest

from .ledgerd_harness import REPO, Server, assert_ledgers_balanced, backend, ledgerd_bin

# Modules whose subject is not the database (logging, rules, dashboards, the make targets, the
# cluster script), that work on SQLite files directly, or that choose their databases themselves
# (scale-out on PostgreSQL, the Redis cache): the PostgreSQL pass leaves them out.
SQLITE_PASS_ONLY = {
    "test_apikey_cli.py", "test_audit_cli.py", "test_cli.py", "test_dashboards.py",
    "test_log_sinks.py", "test_make_run.py", "test_postgres_cluster.py", "test_slo_rules.py",
    "test_scale_out.py", "test_redis_cache.py",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: needs the SQLite backend (its file or WAL)")


def pytest_collection_modifyitems(config, items):
    if backend() != "postgres":
        return
    skip_module = pytest.mark.skip(reason="backend-independent: runs in the SQLite pass")
    skip_test = pytest.mark.skip(reason="SQLite only")
    for item in items:
        if pathlib.Path(str(item.fspath)).name in SQLITE_PASS_ONLY:
            item.add_marker(skip_module)
        elif item.get_closest_marker("sqlite_only") is not None:
            item.add_marker(skip_test)


@pytest.fixture(scope="session", autouse=True)
def _postgres_cluster():
    """In postgres mode without $LEDGERD_TEST_PG_URL: a throwaway cluster for the session."""
    if backend() != "postgres" or os.environ.get("LEDGERD_TEST_PG_URL"):
        yield
        return
    top = tempfile.mkdtemp(prefix="ledgerd-pg-")
    os.chmod(top, 0o755)
    cluster = os.path.join(top, "cluster")
    p = subprocess.run(["bash", str(REPO / "scripts" / "pg.sh"), "start", cluster],
                       env=dict(os.environ, PG_FSYNC="off"), capture_output=True, text=True,
                       check=False)
    if p.returncode != 0:
        pytest.exit(f"cannot start PostgreSQL: {p.stderr}", returncode=4)
    os.environ["LEDGERD_TEST_PG_URL"] = p.stdout.strip()
    try:
        yield
    finally:
        subprocess.run(["bash", str(REPO / "scripts" / "pg.sh"), "stop", cluster], check=False,
                       capture_output=True)
        del os.environ["LEDGERD_TEST_PG_URL"]


def pytest_report_header(config):
    return f"ledgerd binary: {ledgerd_bin()}"


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    path = ledgerd_bin()
    if not os.access(path, os.X_OK):
        pytest.exit(f"ledgerd binary not found or not executable: {path} (set LEDGERD_BIN)",
                    returncode=4)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("ledgerd"))
    try:
        srv.start()
        yield srv
        assert srv.running(), (
            f"ledgerd died during the module (exit {srv.proc.returncode})\n"
            f"{srv.stderr_text()[-4000:]}")
        c = srv.client(timeout=60)
        try:
            assert_ledgers_balanced(c)
        finally:
            c.close()
        srv.assert_clean_stop()
    finally:
        srv.kill()


@pytest.fixture
def client(server):
    c = server.client()
    yield c
    c.close()


@pytest.fixture
def make_server(tmp_path_factory):
    started = []

    def factory(env=None, migrate=True, start=True):
        srv = Server(tmp_path_factory.mktemp("ledgerd"), env=env, migrate=migrate)
        started.append(srv)
        if start:
            srv.start()
        return srv

    yield factory
    for srv in started:
        srv.kill()
