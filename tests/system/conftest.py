"""Fixtures for ledgerd system tests.

- server: one ledgerd per test module (serve --migrate on a fresh SQLite database). At the end of
  the module every ledger must still balance and the process must stop cleanly on SIGTERM, with
  no sanitizer report.
- client: a keep-alive client to that server.
- make_server: a factory for servers with their own settings; each is killed at the end of the
  test whatever happens.

The binary is $LEDGERD_BIN (default <repo>/build/ledgerd).
"""

import os

import pytest

from .ledgerd_harness import Server, assert_ledgers_balanced, ledgerd_bin


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
