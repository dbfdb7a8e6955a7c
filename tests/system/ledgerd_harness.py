"""Black-box harness for ledgerd system tests: start the real binary, speak HTTP to it.

Everything here uses the standard library only. Every socket has a timeout and every process
started here is killed by the fixtures in conftest.py, so no test can hang or leak a server.
"""

import http.client
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import threading
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parents[2]
U128_MAX = 2**128 - 1
U128_MAX_STR = "340282366920938463463374607431768211455"

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUIDV7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
TRACERESPONSE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
    "UndefinedBehaviorSanitizer",
)

ACCOUNT_FIELDS = {
    "id", "ledger", "code", "flags", "metadata", "debits_pending", "debits_posted",
    "credits_pending", "credits_posted", "created_at",
}
TRANSFER_FIELDS = {
    "id", "debit_account_id", "credit_account_id", "amount", "ledger", "code", "flags",
    "pending_id", "timeout_seconds", "metadata", "created_at", "pending_status",
}


def ledgerd_bin():
    """The binary under test: $LEDGERD_BIN, else <repo>/build/ledgerd."""
    return os.path.abspath(os.environ.get("LEDGERD_BIN") or str(REPO / "build" / "ledgerd"))


def slow_factor():
    """Sanitizer builds run slower; LEDGERD_TEST_SLOW=1 stretches waits (never the limits)."""
    return 3.0 if os.environ.get("LEDGERD_TEST_SLOW") else 1.0


def child_env(extra=None):
    """The environment for a ledgerd child: ours minus every LEDGERD_* variable (the test runner's
    own LEDGERD_BIN would otherwise be reported as an unknown setting) and every OTEL_* one (a
    tracing setup of the machine's must not reach the tests), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGERD_", "OTEL_"))}
    env.update(extra or {})
    return env


def run_cli(args, env=None, cwd=None, timeout=30):
    """Runs `ledgerd ARGS` to completion; returns CompletedProcess with text output."""
    return subprocess.run(
        [ledgerd_bin()] + list(args), env=child_env(env), cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout * slow_factor(),
        check=False, text=True, errors="replace",
    )


def wait_for(pred, timeout=10.0, step=0.05):
    """pred's first true value, polling every step for up to timeout (scaled for slow builds);
    pred's last value when it never became true."""
    deadline = time.monotonic() + timeout * slow_factor()
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


def backend():
    """The database the suite runs against: "sqlite" (default) or "postgres"
    ($LEDGERD_TEST_DB). In postgres mode every Server gets a database of its own on the cluster
    at $LEDGERD_TEST_PG_URL (conftest.py starts a throwaway cluster when it is unset)."""
    return os.environ.get("LEDGERD_TEST_DB", "sqlite")


def pg_url_with_db(base_url, dbname):
    """base_url (postgres://user@host:port/anything) pointing at database dbname instead."""
    head, _, tail = base_url.partition("://")
    authority, _, rest = tail.partition("/")
    query = ""
    if "?" in rest:
        query = "?" + rest.split("?", 1)[1]
    return f"{head}://{authority}/{dbname}{query}"


def pg_create_database(base_url=None, prefix="t"):
    """Creates an empty database on the test cluster and returns its URL."""
    import psycopg2  # only postgres mode needs it

    base_url = base_url or os.environ["LEDGERD_TEST_PG_URL"]
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    conn = psycopg2.connect(base_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return pg_url_with_db(base_url, name)


def pg_connect(url):
    """A psycopg2 connection (autocommit) to the database of url, for checks from the tests."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def uid(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex}"


def new_ledger():
    """A fresh ledger name (^[A-Z0-9_]{1,16}$) so tests sharing a server never share totals."""
    return "T" + uuid.uuid4().hex[:15].upper()


class Response:
    """status, lower-cased headers dict, body bytes and parsed JSON (None when not JSON).
    Unpacks as (status, headers, body, json)."""

    __slots__ = ("status", "headers", "body", "_json", "_parsed")

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self._parsed = False
        self._json = None

    @property
    def json(self):
        if not self._parsed:
            self._parsed = True
            try:
                self._json = json.loads(self.body)
            except (ValueError, UnicodeDecodeError):
                self._json = None
        return self._json

    def __iter__(self):
        return iter((self.status, self.headers, self.body, self.json))

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} {self.body[:800]!r}>"


def headers_dict(pairs):
    out = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = value if key not in out else out[key] + ", " + value
    return out


class Client:
    """A keep-alive HTTP/1.1 client over http.client. A request that fails on a reused
    connection before any response (the server closed it while idle) is retried once on a new
    connection when retry is true."""

    def __init__(self, host, port, timeout=10.0, headers=None):
        self.host = host
        self.port = port
        self.timeout = timeout * slow_factor()
        self.conn = None
        self.used = False
        self.default_headers = dict(headers or {})  # sent with every request (credentials)

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.used = False

    def _connection(self, timeout):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            self.used = False
        elif self.conn.sock is not None:
            self.conn.sock.settimeout(timeout)
        return self.conn

    def request(self, method, path, body=None, headers=None, content_type="application/json",
                timeout=None, retry=True):
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        hdrs = dict(self.default_headers)
        if data is not None and content_type is not None:
            hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})
        tmo = self.timeout if timeout is None else timeout * slow_factor()
        for attempt in (0, 1):
            conn = self._connection(tmo)
            reused = self.used
            try:
                try:
                    conn.request(method, path, body=data, headers=hdrs)
                except (BrokenPipeError, ConnectionResetError):
                    # A fresh connection the server stopped reading (an early 413): its
                    # answer may already be waiting.
                    if reused or conn.sock is None:
                        raise  # nothing to read an answer from (the server closed it)
                resp = conn.getresponse()
                payload = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.BadStatusLine):
                self.close()
                if attempt == 0 and reused and retry:
                    continue
                raise
            except Exception:
                self.close()
                raise
            self.used = True
            result = Response(resp.status, headers_dict(resp.getheaders()), payload)
            if resp.will_close:
                self.close()
            return result
        raise AssertionError("unreachable")

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)


class Server:
    """One ledgerd process on a database in workdir. start/stop/kill/restart keep the same
    database; logs (parsed JSON lines of stdout) accumulate over restarts."""

    def __init__(self, workdir, env=None, migrate=True):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.workdir / "ledgerd.db"
        env = dict(env or {})
        if backend() == "postgres" and "LEDGERD_DB" not in env:
            env["LEDGERD_DB"] = pg_create_database()
        # The ledger's own tests run without credentials (LEDGERD_AUTH=off, allowed in the dev
        # environment only); test_auth.py runs with LEDGERD_AUTH=required and checks every
        # route. A test that names another environment gets authentication as production
        # would: an API key with every scope is made at start and its clients send it.
        self.env = {
            "LEDGERD_LISTEN": "127.0.0.1:0",
            "LEDGERD_DB": "sqlite://" + str(self.db_path),
        }
        self.env.update(env)
        self.token = None
        self.provision_key = False
        if "LEDGERD_AUTH" not in self.env:
            if self.env.get("LEDGERD_ENV", "dev") == "dev":
                self.env["LEDGERD_AUTH"] = "off"
            elif "LEDGERD_APIKEY_HASH_KEY_FILE" not in self.env:
                hash_key = self.workdir / "apikey-hash.key"
                hash_key.write_text(uuid.uuid4().hex + uuid.uuid4().hex + "\n")
                self.env["LEDGERD_APIKEY_HASH_KEY_FILE"] = str(hash_key)
                self.provision_key = True
        self.migrate = migrate
        self.proc = None
        self.host = None
        self.port = None
        self.url = None
        self.lines = []
        self.logs = []
        self.stderr_chunks = []
        self.lock = threading.Lock()
        self.readers = []
        self._listening = None
        self.exit_codes = []

    # -- process control ----------------------------------------------------------------------
    def start(self, args=None, wait=True, timeout=10.0):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if args is None:
            args = ["serve", "--migrate"] if self.migrate else ["serve"]
        self.url = None
        self._listening = threading.Event()
        self.proc = subprocess.Popen(
            [ledgerd_bin()] + list(args), env=child_env(self.env), cwd=str(self.workdir),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        out = threading.Thread(target=self._read_stdout, args=(self.proc, self._listening),
                               daemon=True)
        err = threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True)
        out.start()
        err.start()
        self.readers = [out, err]
        if wait:
            self.wait_listening(timeout)
        return self

    def _read_stdout(self, proc, listening):
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            with self.lock:
                self.lines.append(line)
                if isinstance(obj, dict):
                    self.logs.append(obj)
            if isinstance(obj, dict) and obj.get("body") == "listening" and "url" in obj:
                m = re.match(r"^http://([^:/]+):(\d+)/?$", str(obj["url"]))
                if m:
                    self.host, self.port = m.group(1), int(m.group(2))
                    self.url = obj["url"]
                    listening.set()

    def _read_stderr(self, proc):
        for raw in proc.stderr:
            with self.lock:
                self.stderr_chunks.append(raw.decode("utf-8", "replace"))

    def wait_listening(self, timeout=10.0):
        deadline = time.monotonic() + timeout * slow_factor()
        while time.monotonic() < deadline:
            if self._listening.wait(0.05):
                return
            if self.proc.poll() is not None:
                for t in self.readers:
                    t.join(2)
                raise AssertionError(
                    f"ledgerd exited with {self.proc.returncode} before listening\n"
                    f"stdout:\n{self.stdout_text()[-4000:]}\nstderr:\n{self.stderr_text()[-4000:]}")
        self.kill()
        raise AssertionError(
            f"ledgerd did not log 'listening' within {timeout} s\n"
            f"stdout:\n{self.stdout_text()[-4000:]}\nstderr:\n{self.stderr_text()[-4000:]}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            rc = self.proc.wait(timeout * slow_factor())
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"ledgerd did not exit within {timeout} s")
        for t in self.readers:
            t.join(5)
        self.exit_codes.append(rc)
        return rc

    def stop(self, timeout=30.0):
        """SIGTERM and wait; returns the exit code (kills and fails after timeout)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            for t in self.readers:
                t.join(5)
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self):
        """SIGKILL (a crash) and reap."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for t in self.readers:
            t.join(5)

    def restart(self, crash=False):
        if crash:
            self.kill()
        else:
            rc = self.stop()
            assert rc == 0, f"ledgerd exited {rc} on SIGTERM\n{self.stderr_text()[-4000:]}"
        return self.start()

    # -- output ---------------------------------------------------------------------------------
    def stdout_text(self):
        with self.lock:
            return "\n".join(self.lines)

    def stderr_text(self):
        with self.lock:
            return "".join(self.stderr_chunks)

    def log_lines(self):
        with self.lock:
            return list(self.logs)

    def wait_log(self, pred, timeout=3.0):
        """The first log line (parsed) satisfying pred, waiting up to timeout."""
        deadline = time.monotonic() + timeout * slow_factor()
        while True:
            for obj in self.log_lines():
                if pred(obj):
                    return obj
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def sanitizer_reports(self):
        text = self.stderr_text() + "\n" + self.stdout_text()
        return [m for m in SANITIZER_MARKERS if m in text]

    def assert_clean_stop(self, timeout=30.0):
        rc = self.stop(timeout)
        assert rc == 0, f"ledgerd exited {rc} on SIGTERM\nstderr:\n{self.stderr_text()[-4000:]}"
        reports = self.sanitizer_reports()
        assert not reports, f"sanitizer reports {reports}:\n{self.stderr_text()[-8000:]}"

    # -- HTTP -----------------------------------------------------------------------------------
    def client(self, timeout=10.0):
        assert self.port is not None, "server not listening"
        if self.provision_key and self.token is None:
            p = run_cli(["apikey", "create", "--name", "harness", "--scopes",
                         "ledger:read,ledger:write,flags:read,flags:write,audit:read,admin"],
                        env=self.env)
            assert p.returncode == 0, p.stderr
            self.token = p.stdout.strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        return Client(self.host, self.port, timeout, headers)

    def connect(self, timeout=10.0):
        """A raw TCP socket to the server."""
        s = socket.create_connection((self.host, self.port), timeout=timeout * slow_factor())
        s.settimeout(timeout * slow_factor())
        return s


# -- raw HTTP -----------------------------------------------------------------------------------
def read_response(sock, method="GET"):
    """Reads one HTTP response from a connected socket: (status, headers dict, body)."""
    resp = http.client.HTTPResponse(sock, method=method)
    try:
        resp.begin()
        body = resp.read()
    finally:
        resp.close()
    return Response(resp.status, headers_dict(resp.getheaders()), body)


class _SharedFile:
    """One buffered reader over a socket shared by successive HTTPResponse objects (each would
    otherwise buffer, and lose, the bytes of the responses after it)."""

    def __init__(self, sock):
        self._f = sock.makefile("rb")

    def makefile(self, *args, **kwargs):
        return self

    def __getattr__(self, name):
        return getattr(self._f, name)

    def close(self):
        pass


class ResponseReader:
    """Reads successive (pipelined) responses from one socket."""

    def __init__(self, sock):
        self.shared = _SharedFile(sock)

    def next(self, method="GET"):
        resp = http.client.HTTPResponse(self.shared, method=method)
        resp.begin()
        body = resp.read()
        return Response(resp.status, headers_dict(resp.getheaders()), body)


def raw_exchange(server, data, timeout=10.0, method="GET"):
    """Sends raw bytes on a new connection and reads one response."""
    with server.connect(timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(s, method)


def wait_closed(sock, timeout):
    """Seconds until the peer closes the socket (EOF or reset), or None after timeout. Any
    bytes the server sends before closing are ignored."""
    start = time.monotonic()
    sock.settimeout(0.25)
    while time.monotonic() - start < timeout:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        if not chunk:
            return time.monotonic() - start
    return None


# -- assertions and ledger operations --------------------------------------------------------------
def media_type(headers):
    return headers.get("content-type", "").split(";")[0].strip().lower()


def assert_problem(r, status, code, field=None):
    """r is an RFC 9457 problem with this status and code (and, for field, an errors entry
    naming that field with that code; "flags[]" means the field or one of its items);
    returns the parsed problem."""
    assert r.status == status, r
    assert media_type(r.headers) == "application/problem+json", r
    p = r.json
    assert isinstance(p, dict), r
    for key in ("type", "title", "status", "detail", "code", "request_id"):
        assert key in p, f"problem lacks {key!r}: {r!r}"
    assert p["code"] == code, r
    assert p["status"] == status, r
    assert p["type"] == "/problems/" + code, r
    assert isinstance(p["title"], str) and p["title"], r
    assert isinstance(p["detail"], str) and p["detail"], r
    assert p["request_id"] == r.headers.get("x-request-id"), r
    if field is not None:
        errors = p.get("errors")
        assert isinstance(errors, list) and errors, f"no errors list: {r!r}"
        for e in errors:
            assert set(e) >= {"field", "code", "detail"}, r
        def names(e):
            # A field's path, or the path of one of its array items ("flags[1]").
            return e["field"] == field or (field.endswith("[]") and
                                           (e["field"] == field[:-2] or
                                            re.match(re.escape(field[:-2]) + r"\[\d+\]$",
                                                     e["field"])))
        assert any(names(e) and e["code"] == code for e in errors), r
        assert errors[0]["code"] == p["code"], r
    return p


def assert_json(r, status):
    assert r.status == status, r
    assert media_type(r.headers) == "application/json", r
    assert r.json is not None, r
    return r.json


def create_account(c, ledger, code=1, flags=None, id=None, metadata=None, headers=None):
    body = {"ledger": ledger, "code": code}
    if id is not None:
        body["id"] = id
    if flags is not None:
        body["flags"] = flags
    if metadata is not None:
        body["metadata"] = metadata
    r = c.post("/v1/accounts", body, headers=headers)
    assert r.status == 201, r
    return r.json


def transfer_body(dr, cr, amount, ledger, code=1, **kw):
    body = {"debit_account_id": dr, "credit_account_id": cr, "amount": str(amount),
            "ledger": ledger, "code": code}
    body.update(kw)
    return body


def post_transfer(c, body, headers=None):
    return c.post("/v1/transfers", body, headers=headers)


def make_transfer(c, dr, cr, amount, ledger, code=1, **kw):
    r = post_transfer(c, transfer_body(dr, cr, amount, ledger, code, **kw))
    assert r.status == 201, r
    return r.json


def get_account(c, account_id):
    r = c.get("/v1/accounts/" + account_id)
    assert r.status == 200, r
    return r.json


def balances(c, account_id):
    """(debits_pending, debits_posted, credits_pending, credits_posted) as ints."""
    a = get_account(c, account_id)
    return tuple(int(a[k]) for k in
                 ("debits_pending", "debits_posted", "credits_pending", "credits_posted"))


def list_all(c, path, limit=None, page_cap=10000):
    """Every item of a list endpoint, following next_cursor; checks the page shape."""
    items = []
    cursor = None
    sep = "&" if "?" in path else "?"
    for _ in range(page_cap):
        params = []
        if limit is not None:
            params.append(f"limit={limit}")
        if cursor is not None:
            params.append("cursor=" + urlquote(cursor))
        url = path + (sep + "&".join(params) if params else "")
        r = c.get(url)
        page = assert_json(r, 200)
        assert set(page) == {"data", "next_cursor"}, r
        assert isinstance(page["data"], list), r
        items.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert isinstance(cursor, str) and cursor, r
        assert page["data"], f"empty page with a next_cursor: {r!r}"
    raise AssertionError("pagination did not end")


def urlquote(s):
    from urllib.parse import quote
    return quote(s, safe="")


def ledger_totals(c):
    """{ledger: [Σ debits_pending, Σ debits_posted, Σ credits_pending, Σ credits_posted]} over
    every account (GET /v1/accounts pages of 1000)."""
    totals = {}
    for a in list_all(c, "/v1/accounts", limit=1000):
        t = totals.setdefault(a["ledger"], [0, 0, 0, 0])
        for i, k in enumerate(("debits_pending", "debits_posted", "credits_pending",
                               "credits_posted")):
            t[i] += int(a[k])
    return totals


def assert_ledgers_balanced(c):
    for ledger, (dp, dpo, cp, cpo) in ledger_totals(c).items():
        assert dpo == cpo, f"ledger {ledger}: Σ debits_posted {dpo} != Σ credits_posted {cpo}"
        assert dp == cp, f"ledger {ledger}: Σ debits_pending {dp} != Σ credits_pending {cp}"
