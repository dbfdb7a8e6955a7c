"""The throwaway PostgreSQL 15 cluster of the test suite and the benchmarks (scripts/pg.sh): it
starts on its own port of 127.0.0.1 in its own directory, answers, and leaves nothing behind."""

import pathlib
import re
import subprocess
import tempfile

PG_SH = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "pg.sh"


def pg(*args, env=None):
    return subprocess.run(["bash", str(PG_SH), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120, env=env)


def psql(url, sql):
    return subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def test_a_cluster_starts_answers_and_is_gone_after_stop():
    # Under /tmp itself: the postgres user must be able to reach the directory.
    base = pathlib.Path(tempfile.mkdtemp(prefix="ledgerd-pg-test-", dir="/tmp"))
    base.chmod(0o755)
    cluster = base / "cluster"
    try:
        started = pg("start", str(cluster), env={"PG_FSYNC": "off", "PATH": "/usr/bin:/bin"})
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert re.fullmatch(r"postgres://postgres@127\.0\.0\.1:\d+/ledgerd", url), url
        assert pg("url", str(cluster)).stdout.strip() == url
        r = psql(url, "SHOW server_version_num")
        assert r.returncode == 0 and r.stdout.strip().startswith("15"), r.stderr
        r = psql(url, "SHOW listen_addresses")
        assert r.stdout.strip() == "127.0.0.1"
        r = psql(url, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2); SELECT sum(x) FROM t")
        assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "3", r.stderr
    finally:
        stopped = pg("stop", str(cluster))
        assert stopped.returncode == 0, stopped.stderr
    assert not cluster.exists()
    assert psql(url, "SELECT 1").returncode != 0  # the server is gone
    base.rmdir()


def test_usage_errors():
    assert pg().returncode == 2
    assert pg("start").returncode == 2
    assert pg("restart", "/tmp/x").returncode == 2
