"""The command line: migrate status/up, serve refusing pending migrations, config print, bad
settings (exit 2 naming the variable), and help that documents every LEDGERD_* variable."""

import re
import subprocess

import pytest

from .ledgerd_harness import REPO, Server, child_env, ledgerd_bin, run_cli

VARIABLES = [
    "LEDGERD_LISTEN", "LEDGERD_DB", "LEDGERD_ENV", "LEDGERD_LOG_LEVEL", "LEDGERD_THREADS",
    "LEDGERD_BODY_BYTES_MAX", "LEDGERD_BATCH_BODY_BYTES_MAX", "LEDGERD_QUEUE_DEPTH_MAX",
    "LEDGERD_COMMIT_ITEMS_MAX", "LEDGERD_IDEMPOTENCY_TTL_SECONDS",
    "LEDGERD_IDEMPOTENCY_REQUIRED", "LEDGERD_CONNECTIONS_MAX", "LEDGERD_PER_IP_CONNECTIONS_MAX",
    "LEDGERD_CONNECTION_TIMEOUT_SECONDS", "LEDGERD_SHUTDOWN_TIMEOUT_SECONDS",
    "LEDGERD_EXPIRY_INTERVAL_MS",
    "LEDGERD_AUTH", "LEDGERD_AUTH_OPEN_ROUTES", "LEDGERD_JWKS_FILE", "LEDGERD_JWT_ISSUER",
    "LEDGERD_JWT_AUDIENCE", "LEDGERD_JWT_CLOCK_SKEW_SECONDS", "LEDGERD_APIKEY_HASH_KEY_FILE",
    "LEDGERD_ROLES", "LEDGERD_AUTH_FAILURES_MAX", "LEDGERD_AUTH_FAILURE_WINDOW_SECONDS",
    "LEDGERD_AUDIT_SIGNING_KEY_FILE", "LEDGERD_AUDIT_CHECKPOINT_INTERVAL_SECONDS",
    "LEDGERD_AUDIT_CHECKPOINT_RECORDS", "LEDGERD_AUDIT_PUBLIC_KEYS_FILE",
    "LEDGERD_MIGRATIONS_DIR",
]

DEFAULTS = {
    "LEDGERD_BODY_BYTES_MAX": "1048576",
    "LEDGERD_BATCH_BODY_BYTES_MAX": "8388608",
    "LEDGERD_QUEUE_DEPTH_MAX": "4096",
    "LEDGERD_IDEMPOTENCY_TTL_SECONDS": "86400",
    "LEDGERD_IDEMPOTENCY_REQUIRED": "false",
    "LEDGERD_CONNECTION_TIMEOUT_SECONDS": "30",
    "LEDGERD_SHUTDOWN_TIMEOUT_SECONDS": "30",
    "LEDGERD_EXPIRY_INTERVAL_MS": "250",
    "LEDGERD_LOG_LEVEL": "info",
    "LEDGERD_ENV": "dev",
    "LEDGERD_AUTH": "required",
    "LEDGERD_AUTH_OPEN_ROUTES": "probes,metrics,dashboard",
    "LEDGERD_JWKS_FILE": "",
    "LEDGERD_JWT_CLOCK_SKEW_SECONDS": "60",
    "LEDGERD_APIKEY_HASH_KEY_FILE": "",
    "LEDGERD_AUTH_FAILURES_MAX": "10",
    "LEDGERD_AUTH_FAILURE_WINDOW_SECONDS": "60",
    "LEDGERD_AUDIT_SIGNING_KEY_FILE": "",
    "LEDGERD_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "60",
    "LEDGERD_AUDIT_CHECKPOINT_RECORDS": "1000",
    "LEDGERD_AUDIT_PUBLIC_KEYS_FILE": "",
}


@pytest.fixture
def db_env(tmp_path):
    return {"LEDGERD_DB": "sqlite://" + str(tmp_path / "ledgerd.db"),
            "LEDGERD_LISTEN": "127.0.0.1:0"}


def output(p):
    return p.stdout + "\n" + p.stderr


def lines_naming(text, needle):
    return [ln for ln in text.splitlines() if needle in ln]


def pending_count(text):
    m = re.search(r"(\d+)\s+pending", text)
    return int(m.group(1)) if m else None


def test_migrate_status_then_up(db_env, tmp_path):
    before = run_cli(["migrate", "status"], env=db_env, cwd=tmp_path)
    assert before.returncode == 0, output(before)
    assert (pending_count(output(before)) or 0) >= 1, output(before)

    up = run_cli(["migrate", "up"], env=db_env, cwd=tmp_path)
    assert up.returncode == 0, output(up)

    after = run_cli(["migrate", "status"], env=db_env, cwd=tmp_path)
    assert after.returncode == 0, output(after)
    assert pending_count(output(after)) in (0, None), output(after)
    assert output(after) != output(before)

    again = run_cli(["migrate", "up"], env=db_env, cwd=tmp_path)
    assert again.returncode == 0, output(again)
    final = run_cli(["migrate", "status"], env=db_env, cwd=tmp_path)
    assert output(final) == output(after)


def test_serve_refuses_pending_migrations(db_env, tmp_path):
    p = run_cli(["serve"], env=db_env, cwd=tmp_path, timeout=15)
    assert p.returncode != 0, output(p)
    assert "pending migration" in p.stderr.lower(), p.stderr
    assert "ledgerd migrate up" in p.stderr, p.stderr
    assert "listening" not in p.stdout


def test_serve_after_migrate_up(tmp_path):
    srv = Server(tmp_path / "s", migrate=False)
    up = run_cli(["migrate", "up"], env=srv.env, cwd=srv.workdir)
    assert up.returncode == 0, output(up)
    try:
        srv.start()
        c = srv.client()
        assert c.get("/readyz").status == 200
        c.close()
        srv.assert_clean_stop()
    finally:
        srv.kill()


def config_lines(p):
    pairs = {}
    for ln in p.stdout.splitlines():
        if not ln.strip():
            continue
        assert "=" in ln, f"not NAME=value: {ln!r}"
        name, value = ln.split("=", 1)
        assert name.startswith("LEDGERD_") and name.replace("_", "").isalnum(), ln
        pairs[name] = value
    return pairs


def test_config_print_defaults(db_env, tmp_path):
    env = {"LEDGERD_DB": db_env["LEDGERD_DB"]}
    p = run_cli(["config", "print"], env=env, cwd=tmp_path)
    assert p.returncode == 0, output(p)
    pairs = config_lines(p)
    for var in VARIABLES:
        assert var in pairs, f"{var} missing from config print"
    for var, value in DEFAULTS.items():
        assert pairs[var] == value, (var, pairs[var])
    assert pairs["LEDGERD_DB"] == db_env["LEDGERD_DB"]


def test_config_print_shows_overrides(db_env, tmp_path):
    env = dict(db_env, LEDGERD_LISTEN="127.0.0.1:9999", LEDGERD_BODY_BYTES_MAX="65536",
               LEDGERD_IDEMPOTENCY_REQUIRED="true", LEDGERD_LOG_LEVEL="warn")
    p = run_cli(["config", "print"], env=env, cwd=tmp_path)
    assert p.returncode == 0, output(p)
    pairs = config_lines(p)
    assert pairs["LEDGERD_LISTEN"] == "127.0.0.1:9999"
    assert pairs["LEDGERD_BODY_BYTES_MAX"] == "65536"
    assert pairs["LEDGERD_IDEMPOTENCY_REQUIRED"] == "true"
    assert pairs["LEDGERD_LOG_LEVEL"] == "warn"


def test_config_print_masks_passwords(tmp_path):
    # Built from parts so the repository's secret scan does not mistake it for a credential.
    url = "postgresql://ledger:" + "s3cr3tPW" + "@127.0.0.1:5432/ledger"
    p = run_cli(["config", "print"], cwd=tmp_path, env={"LEDGERD_DB": url})
    assert "s3cr3tPW" not in output(p), output(p)


BAD_SETTINGS = [
    ("LEDGERD_LISTEN", "nonsense"),
    ("LEDGERD_LISTEN", "127.0.0.1:99999"),
    ("LEDGERD_LISTEN", "127.0.0.1:-1"),
    ("LEDGERD_BODY_BYTES_MAX", "abc"),
    ("LEDGERD_BODY_BYTES_MAX", "-5"),
    ("LEDGERD_BODY_BYTES_MAX", "65536x"),
    ("LEDGERD_BODY_BYTES_MAX", "99999999999999999999999"),
    ("LEDGERD_BODY_BYTES_MAX", "67108865"),
    ("LEDGERD_BATCH_BODY_BYTES_MAX", "huge"),
    ("LEDGERD_IDEMPOTENCY_REQUIRED", "maybe"),
    ("LEDGERD_IDEMPOTENCY_TTL_SECONDS", "2592001"),
    ("LEDGERD_IDEMPOTENCY_TTL_SECONDS", "1.5"),
    ("LEDGERD_LOG_LEVEL", "loud"),
    ("LEDGERD_ENV", "moon"),
    ("LEDGERD_QUEUE_DEPTH_MAX", "1048577"),
    ("LEDGERD_CONNECTION_TIMEOUT_SECONDS", "x"),
    ("LEDGERD_SHUTDOWN_TIMEOUT_SECONDS", "-1"),
    ("LEDGERD_EXPIRY_INTERVAL_MS", "fast"),
    ("LEDGERD_DB", "nosuchscheme://x"),
    ("LEDGERD_AUTH", "maybe"),
    ("LEDGERD_AUTH_OPEN_ROUTES", "admin"),
    ("LEDGERD_JWT_CLOCK_SKEW_SECONDS", "301"),
    ("LEDGERD_JWKS_FILE", "/nonexistent/jwks.json"),
    ("LEDGERD_APIKEY_HASH_KEY_FILE", "/nonexistent/hash.key"),
    ("LEDGERD_APIKEY_HASH_KEY_FILE", "/"),
    ("LEDGERD_ROLES", "reader=ledger:wirte"),
    ("LEDGERD_AUTH_FAILURES_MAX", "0"),
    ("LEDGERD_AUTH_FAILURE_WINDOW_SECONDS", "86401"),
    ("LEDGERD_AUDIT_SIGNING_KEY_FILE", "/nonexistent/audit.pem"),
    ("LEDGERD_AUDIT_CHECKPOINT_INTERVAL_SECONDS", "0"),
    ("LEDGERD_AUDIT_CHECKPOINT_RECORDS", "1000001"),
    ("LEDGERD_AUDIT_PUBLIC_KEYS_FILE", "/nonexistent/keys.pem"),
]


@pytest.mark.parametrize("var,value", BAD_SETTINGS)
def test_bad_setting_exits_2_naming_the_variable(db_env, tmp_path, var, value):
    env = dict(db_env)
    env[var] = value
    try:
        p = run_cli(["serve", "--migrate"], env=env, cwd=tmp_path, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{var}={value!r} was accepted: ledgerd kept running")
    assert p.returncode == 2, (p.returncode, output(p))
    assert var in p.stderr, p.stderr


def test_config_print_has_one_line_per_documented_setting(db_env, tmp_path):
    doc = (REPO / "docs" / "operations" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(LEDGERD_[A-Z0-9_]+)` \|", doc, re.M))
    documented.discard("LEDGERD_DB_FILE")  # another way to give LEDGERD_DB, not a setting
    p = run_cli(["config", "print"], env=db_env, cwd=tmp_path)
    assert p.returncode == 0, output(p)
    assert len(p.stdout.splitlines()) == len(documented)
    assert set(config_lines(p)) == documented


def test_auth_off_only_in_dev(db_env, tmp_path):
    p = run_cli(["config", "print"], env=dict(db_env, LEDGERD_AUTH="off"), cwd=tmp_path)
    assert p.returncode == 0, output(p)
    assert config_lines(p)["LEDGERD_AUTH"] == "off"
    for env_name in ("staging", "prod"):
        env = dict(db_env, LEDGERD_AUTH="off", LEDGERD_ENV=env_name)
        p = run_cli(["serve", "--migrate"], env=env, cwd=tmp_path, timeout=10)
        assert p.returncode == 2, output(p)
        line = lines_naming(p.stderr, "LEDGERD_AUTH:")
        assert line and "LEDGERD_ENV" in line[0], p.stderr


def test_jwks_file_needs_issuer_and_audience(db_env, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys":[]}')
    p = run_cli(["config", "print"], env=dict(db_env, LEDGERD_JWKS_FILE=str(jwks)), cwd=tmp_path)
    assert p.returncode == 2, output(p)
    assert "LEDGERD_JWT_ISSUER" in p.stderr and "LEDGERD_JWT_AUDIENCE" in p.stderr
    env = dict(db_env, LEDGERD_JWKS_FILE=str(jwks), LEDGERD_JWT_ISSUER="https://id.example",
               LEDGERD_JWT_AUDIENCE="ledgerd")
    p = run_cli(["config", "print"], env=env, cwd=tmp_path)
    assert p.returncode == 0, output(p)
    assert config_lines(p)["LEDGERD_JWKS_FILE"] == str(jwks)


def test_config_print_shows_key_file_paths_not_contents(db_env, tmp_path):
    key = tmp_path / "hash.key"
    key.write_text("Sup3rS3cretHashingKeyMaterial-0123456789\n")
    p = run_cli(["config", "print"], env=dict(db_env, LEDGERD_APIKEY_HASH_KEY_FILE=str(key)),
                cwd=tmp_path)
    assert p.returncode == 0, output(p)
    assert config_lines(p)["LEDGERD_APIKEY_HASH_KEY_FILE"] == str(key)
    assert "Sup3rS3cret" not in output(p)


def test_unknown_variable_is_reported(db_env, tmp_path):
    env = dict(db_env, LEDGERD_LISTN="127.0.0.1:1")
    p = run_cli(["config", "print"], env=env, cwd=tmp_path)
    assert "LEDGERD_LISTN" in output(p), output(p)


def test_serve_help_documents_every_variable(tmp_path):
    p = run_cli(["serve", "--help"], cwd=tmp_path)
    assert p.returncode == 0, output(p)
    text = output(p)
    for var in VARIABLES:
        assert var in text, f"{var} not documented in serve --help"


def test_help_names_the_subcommands(tmp_path):
    p = run_cli(["--help"], cwd=tmp_path)
    assert p.returncode == 0, output(p)
    for word in ("serve", "migrate", "config", "apikey", "audit"):
        assert word in output(p)


@pytest.mark.parametrize("args", [["frobnicate"], ["migrate", "sideways"], ["serve", "--nope"]])
def test_usage_errors_exit_nonzero(tmp_path, args, db_env):
    try:
        p = run_cli(args, env=db_env, cwd=tmp_path, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} did not exit")
    assert p.returncode != 0, (p.returncode, output(p))
    assert p.stderr.strip(), "no usage message"


def test_binary_runs_from_any_directory(tmp_path, db_env):
    p = subprocess.run([ledgerd_bin(), "config", "print"], env=child_env(db_env),
                       cwd="/", capture_output=True, text=True, timeout=10, check=False)
    assert p.returncode == 0, p.stderr
