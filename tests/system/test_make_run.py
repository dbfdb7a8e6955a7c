"""`make run`'s script (scripts/run.sh): in the dev environment it makes a development API key
and prints it, and the key works; in any other environment no key is made."""

import os
import pathlib
import re
import signal
import socket
import subprocess
import time

from .ledgerd_harness import child_env, ledgerd_bin, slow_factor

RUN_SH = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "run.sh"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp_path, env):
    port = free_port()
    proc = subprocess.Popen(["bash", str(RUN_SH), ledgerd_bin()], cwd=tmp_path,
                            env=child_env({"LEDGERD_LISTEN": f"127.0.0.1:{port}", **env}),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return proc, port


def read_until(proc, pattern, timeout=20):
    deadline = time.monotonic() + timeout * slow_factor()
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m, seen
    return None, seen


def get(port, path, token=None):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        return c.getresponse().status
    finally:
        c.close()


def test_dev_gets_a_working_key(tmp_path):
    proc, port = start(tmp_path, {})
    try:
        m, seen = read_until(proc, r"export TOKEN=(ldk_\S+)")
        assert m, "".join(seen)
        token = m.group(1)
        listening, seen2 = read_until(proc, r'"body":"listening"')
        assert listening, "".join(seen + seen2)
        assert get(port, "/v1/accounts", token) == 200
        assert get(port, "/v1/accounts") == 401
        key_file = tmp_path / "var" / "apikey-hash.key"
        assert key_file.stat().st_mode & 0o077 == 0  # the hashing key is the owner's alone
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_no_default_key_outside_dev(tmp_path):
    hash_key = tmp_path / "hash.key"
    hash_key.write_text(os.urandom(32).hex())
    proc, port = start(tmp_path, {"LEDGERD_ENV": "staging",
                                  "LEDGERD_APIKEY_HASH_KEY_FILE": str(hash_key)})
    try:
        m, seen = read_until(proc, r'"body":"listening"')
        assert m, "".join(seen)
        text = "".join(seen)
        assert "TOKEN" not in text and "ldk_" not in text
        assert "no key is made" in text
        assert get(port, "/v1/accounts") == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    p = subprocess.run([ledgerd_bin(), "apikey", "list"], cwd=tmp_path, env=child_env(
        {"LEDGERD_ENV": "staging", "LEDGERD_APIKEY_HASH_KEY_FILE": str(hash_key)}),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert p.returncode == 0 and "ldk_" not in p.stdout
    assert len(p.stdout.strip().splitlines()) <= 1, p.stdout  # the header line only
