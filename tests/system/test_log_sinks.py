"""Log sinks end to end: the file sink (rotation by size and by age, retention by count and by
age, no line lost or torn under concurrent requests, a directory that cannot be written), syslog
over a unix socket, UDP and TCP into a real rsyslogd started here, the Loki push API against a
receiver that checks Loki's documented format and can fail, the log level changed by signals,
and secrets that must reach no sink at all."""

import base64
import calendar
import http.server
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

from .ledgerd_harness import run_cli, slow_factor, wait_for

ROTATED = re.compile(r"^(?P<base>.+)\.(\d{8}T\d{6}\.\d{6}Z)$")
RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<host>\S+) "
    r"(?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) (?P<sd>-|(?:\[[^\]]*\])+) (?P<msg>.*)$"
)


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hammer(srv, requests, threads=8, headers=None):
    """requests GETs spread over threads, each with its own X-Request-Id; returns the ids."""
    ids = [f"r{uuid.uuid4().hex[:20]}" for _ in range(requests)]
    chunks = [ids[i::threads] for i in range(threads)]
    errors = []

    def run(chunk):
        c = srv.client()
        try:
            for rid in chunk:
                h = {"X-Request-Id": rid}
                h.update(headers or {})
                c.get("/v1/accounts?limit=1", headers=h)
        except Exception as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            c.close()

    ts = [threading.Thread(target=run, args=(ch,)) for ch in chunks]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    return ids


def answered(srv, route="/v1/accounts"):
    """How many requests to route ledgerd has finished, by its request counter.

    A client has its reply before the server writes the request's access line, so a test that
    changes the log level right after its requests first waits for this count: the counter is
    bumped after the access line was written or skipped.
    """
    c = srv.client()
    try:
        text = c.get("/metrics").body.decode()
    finally:
        c.close()
    total = 0
    for line in text.splitlines():
        if line.startswith("ledgerd_http_requests_total{") and f'route="{route}"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def settle(srv, ids):
    """Waits until every request in ids has its access line on stdout."""
    assert wait_for(lambda: set(ids) <= set(request_ids(srv.log_lines()))), "access lines missing"


def file_lines(directory, base):
    """Every line of the live log file and its rotated files, in time order, checked whole."""
    names = sorted(n for n in os.listdir(directory) if ROTATED.match(n)
                   and ROTATED.match(n).group("base") == base)
    if (directory / base).exists():
        names.append(base)
    out = []
    for name in names:
        data = (directory / name).read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{name} ends inside a line"
        for raw in data.decode("utf-8").splitlines():
            out.append(json.loads(raw))  # a torn line would not parse
    return out


def rotated(directory, base):
    return sorted(n for n in os.listdir(directory)
                  if ROTATED.match(n) and ROTATED.match(n).group("base") == base)


def rotated_time(name):
    stamp = name.rsplit(".", 2)
    t = time.strptime(stamp[-2], "%Y%m%dT%H%M%S")
    return calendar.timegm(t) + int(stamp[-1][:-1]) / 1e6


def request_ids(lines):
    return [ln["request_id"] for ln in lines if ln.get("body") == "request"]


# ===== File sink ==================================================================================


def file_env(tmp_path, **extra):
    env = {"LEDGERD_LOG_SINKS": "stdout,file", "LEDGERD_LOG_FILE": str(tmp_path / "logs" /
                                                                       "ledgerd.log")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def test_file_rotation_by_size_loses_and_tears_no_line(make_server, tmp_path):
    srv = make_server(file_env(tmp_path, LEDGERD_LOG_FILE_MAX_BYTES=8192,
                               LEDGERD_LOG_FILE_KEEP=1000))
    threads = {t.read_text().strip() for t in pathlib.Path(f"/proc/{srv.proc.pid}/task").glob(
        "*/comm")}
    assert "ledgerd-file" in threads, threads  # the sink writes on its own, named thread
    ids = hammer(srv, 400, threads=8)
    srv.assert_clean_stop()
    logs = tmp_path / "logs"
    names = rotated(logs, "ledgerd.log")
    assert len(names) >= 10, names  # 400 access lines of ~450 bytes: many rotations
    for name in names + ["ledgerd.log"]:
        assert (logs / name).stat().st_size <= 8192, name
    in_file = file_lines(logs, "ledgerd.log")
    # Every request once, in the files as on stdout, and the same lines in the same order.
    assert sorted(request_ids(in_file)) == sorted(ids)
    # The same lines as on stdout (threads may enqueue in another order than they wrote).
    stdout = sorted(json.dumps(x, sort_keys=True) for x in srv.log_lines())
    assert sorted(json.dumps(x, sort_keys=True) for x in in_file) == stdout


def test_file_retention_by_count(make_server, tmp_path):
    srv = make_server(file_env(tmp_path, LEDGERD_LOG_FILE_MAX_BYTES=2048,
                               LEDGERD_LOG_FILE_KEEP=3))
    ids = hammer(srv, 200, threads=4)
    srv.assert_clean_stop()
    logs = tmp_path / "logs"
    names = rotated(logs, "ledgerd.log")
    assert len(names) == 3, names
    # What is kept is the newest: the last requests are there, the first are gone. Lines of
    # concurrent requests may reach the sink in another order than stdout by a few places
    # (threads enqueue after they write), so "the newest" allows that much reordering.
    kept = request_ids(file_lines(logs, "ledgerd.log"))
    stdout_ids = request_ids(srv.log_lines())
    reorder = 16
    assert kept and len(kept) < len(ids)
    assert set(kept) <= set(stdout_ids[-(len(kept) + reorder):])
    assert not set(kept) & set(stdout_ids[:len(stdout_ids) - len(kept) - reorder])


def test_file_rotation_by_age_and_retention_by_age(make_server, tmp_path):
    srv = make_server(file_env(tmp_path, LEDGERD_LOG_FILE_MAX_AGE_SECONDS=1,
                               LEDGERD_LOG_FILE_RETENTION_SECONDS=3))
    logs = tmp_path / "logs"
    seen = set()
    deadline = time.monotonic() + 5.5
    while time.monotonic() < deadline:
        hammer(srv, 4, threads=1)
        seen.update(rotated(logs, "ledgerd.log"))
        time.sleep(0.2)
    now = time.time()
    names = rotated(logs, "ledgerd.log")
    seen.update(names)
    assert len(seen) >= 4, seen  # about one rotation per second
    times = sorted(rotated_time(n) for n in seen)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.9, gaps  # by age, not by size: one a second at most
    # Retention by age: the early ones are deleted, none kept is older than the limit.
    assert set(names) < seen
    assert all(now - rotated_time(n) <= 3 + 1.5 for n in names), (names, now)
    srv.assert_clean_stop()


def test_file_directory_unwritable(make_server, tmp_path):
    srv = make_server(file_env(tmp_path, LEDGERD_LOG_FILE_MAX_BYTES=2048))
    logs = tmp_path / "logs"
    hammer(srv, 10, threads=1)
    # Replace the directory with a regular file: not even root can create the log in it. The
    # sink may be rotating in the directory at this very moment, and it makes the directory
    # again when it is missing: move it away in one rename (not file by file), then rename a
    # file into its place, which fails if the sink was quicker; then try again.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("not a directory\n")
    for attempt in range(50):
        if logs.is_dir():
            logs.rename(tmp_path / f"logs-moved-away-{attempt}")
        try:
            os.rename(blocker, logs)
            break
        except OSError:
            continue
    assert logs.is_file(), "could not put a file where the log directory was"
    hammer(srv, 60, threads=2)
    err = srv.wait_log(lambda x: "file sink: cannot" in x.get("body", ""), timeout=5)
    assert err is not None and err["severity_text"] == "ERROR", srv.stdout_text()[-2000:]
    assert "dropped" in err["body"]
    hammer(srv, 30, threads=2)
    errors = [x for x in srv.log_lines() if "file sink: cannot" in x.get("body", "")]
    assert len(errors) == 1, errors  # one error, not one per line
    assert "ledgerd: file sink: cannot" in srv.stderr_text()
    assert srv.running()

    logs.unlink()
    logs.mkdir()
    time.sleep(1.2)  # past the retry interval
    after = hammer(srv, 20, threads=1)
    ok = srv.wait_log(lambda x: "writing" in x.get("body", "") and "again" in x["body"], 5)
    assert ok is not None, srv.stdout_text()[-2000:]
    lost = int(re.search(r"(\d+) line\(s\) were dropped", ok["body"]).group(1))
    assert lost > 0
    assert wait_for(lambda: set(after) <= set(request_ids(file_lines(logs, "ledgerd.log"))))
    srv.assert_clean_stop()


def test_file_sink_refuses_to_start_without_its_file(make_server, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    srv = make_server({"LEDGERD_LOG_SINKS": "file",
                       "LEDGERD_LOG_FILE": str(blocker / "ledgerd.log")}, start=False)
    srv.start(wait=False)
    assert srv.wait_exit(10) == 1
    assert "cannot create the directory of" in srv.stderr_text() or "cannot open" in \
        srv.stderr_text(), srv.stderr_text()


# ===== Syslog =====================================================================================

RSYSLOG_CONF = """
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}" UseSpecialParser="off" ParseHostname="on")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="raw" type="string" string="%inputname%\\t%rawmsg%\\n")
template(name="parsed" type="list") {{
  property(name="inputname") constant(value="\\t")
  property(name="pri") constant(value="\\t")
  property(name="protocol-version") constant(value="\\t")
  property(name="app-name") constant(value="\\t")
  property(name="structured-data") constant(value="\\t")
  property(name="msg") constant(value="\\n")
}}
*.* action(type="omfile" file="{dir}/raw.log" template="raw")
*.* action(type="omfile" file="{dir}/parsed.log" template="parsed")
"""


class Rsyslog:
    """rsyslogd in the foreground with its own config, pid file, work dir and sockets."""

    def __init__(self, directory, tcp=None):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "work").mkdir(exist_ok=True)
        self.sock = self.dir / "log.sock"
        self.udp = free_port(socket.SOCK_DGRAM)
        self.tcp = tcp or free_port()
        self.proc = None

    def start(self):
        conf = self.dir / "rsyslog.conf"
        conf.write_text(RSYSLOG_CONF.format(work=self.dir / "work", sock=self.sock, udp=self.udp,
                                            tcp=self.tcp, dir=self.dir))
        self.proc = subprocess.Popen(
            [shutil.which("rsyslogd") or "/usr/sbin/rsyslogd", "-n", "-f", str(conf), "-i",
             str(self.dir / "rsyslogd.pid")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"rsyslogd exited: {self.proc.stdout.read()!r}")
            try:
                socket.create_connection(("127.0.0.1", self.tcp), timeout=0.2).close()
            except OSError:
                return False
            return self.sock.exists()

        assert wait_for(ready, 10), "rsyslogd did not come up"
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def messages(self, inputname):
        """(raw message, parsed fields) pairs received on one input, both files in step."""
        raw = self.dir / "raw.log"
        parsed = self.dir / "parsed.log"
        if not raw.exists() or not parsed.exists():
            return []
        out = []
        raws = raw.read_text("utf-8").splitlines()
        fields = parsed.read_text("utf-8").splitlines()
        for r, p in zip(raws, fields):
            name, _, message = r.partition("\t")
            if name == inputname:
                out.append((message, p.split("\t", 5)))
        return out


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory):
    if not (shutil.which("rsyslogd") or os.path.exists("/usr/sbin/rsyslogd")):
        pytest.fail("rsyslogd not installed (scripts/deps.sh test installs rsyslog)")
    r = Rsyslog(tmp_path_factory.mktemp("rsyslog")).start()
    yield r
    r.stop()


def strip_bom(msg):
    return msg[1:] if msg.startswith("\ufeff") else msg


@pytest.mark.parametrize("transport,facility,code", [
    ("unix", None, 16), ("udp", "local3", 19), ("tcp", "daemon", 3)])
def test_syslog_rfc5424_into_rsyslog(make_server, rsyslog, transport, facility, code):
    address = {"unix": f"unix://{rsyslog.sock}", "udp": f"udp://127.0.0.1:{rsyslog.udp}",
               "tcp": f"tcp://127.0.0.1:{rsyslog.tcp}"}[transport]
    inputname = {"unix": "imuxsock", "udp": "imudp", "tcp": "imtcp"}[transport]
    env = {"LEDGERD_LOG_SINKS": "stdout,syslog", "LEDGERD_SYSLOG_ADDRESS": address}
    if facility:
        env["LEDGERD_SYSLOG_FACILITY"] = facility
    srv = make_server(env)
    ids = hammer(srv, 20, threads=4)
    settle(srv, ids)  # before the level drops to warn
    srv.signal(signal.SIGUSR2)  # a line written whatever the level

    def received():
        ours = []
        for raw, fields in rsyslog.messages(inputname):
            m = RFC5424.match(raw)
            if m and m.group("procid") == str(srv.proc.pid):
                ours.append((m, fields))
        bodies = [json.loads(strip_bom(m.group("msg"))) for m, _ in ours]
        got = {b.get("request_id") for b in bodies}
        if transport == "udp":
            # Syslog over UDP has no delivery guarantee (RFC 5426): a burst can overflow the
            # receiver's socket buffer, most of all under sanitizers. Half must arrive, and
            # every line that does is checked below like the others.
            complete = len(set(ids) & got) * 2 >= len(ids)
        else:
            complete = set(ids) <= got
        complete = complete and set(ids) <= set(request_ids(srv.log_lines()))
        level_line = any(b["body"].startswith("log level changed") for b in bodies)
        return ours if complete and (level_line or transport == "udp") else None

    ours = wait_for(received, 10)
    assert ours, f"rsyslog did not get the lines over {transport}"
    stdout = {x.get("request_id"): x for x in srv.log_lines()}
    sequence = []
    for m, fields in ours:
        line = json.loads(strip_bom(m.group("msg")))
        severity = {"DEBUG": 7, "INFO": 6, "WARN": 4, "ERROR": 3}[line["severity_text"]]
        assert int(m.group("pri")) == code * 8 + severity
        assert m.group("app") == "ledgerd"
        assert m.group("ts") == line["timestamp"]
        assert 'software="ledgerd"' in m.group("sd")
        sequence.append(int(re.search(r'sequenceId="(\d+)"', m.group("sd")).group(1)))
        # rsyslog parsed it as RFC 5424: protocol version 1, the same PRI, app and MSG.
        assert fields[2] == "1" and int(fields[1]) == int(m.group("pri"))
        assert fields[3] == "ledgerd"
        assert json.loads(strip_bom(fields[5])) == line
        if line.get("request_id") in ids:
            assert line == stdout[line["request_id"]]  # the JSON line itself, as on stdout
    assert sorted(sequence) == list(range(1, len(sequence) + 1)) or transport == "udp"
    srv.assert_clean_stop()


def test_syslog_tcp_reconnects(make_server, tmp_path):
    port = free_port()
    srv = make_server({"LEDGERD_LOG_SINKS": "stdout,syslog",
                       "LEDGERD_SYSLOG_ADDRESS": f"tcp://127.0.0.1:{port}"})
    early = hammer(srv, 5, threads=1)
    err = srv.wait_log(lambda x: "syslog sink: cannot connect" in x.get("body", ""), 5)
    assert err is not None, srv.stdout_text()[-2000:]
    r = Rsyslog(tmp_path / "late-rsyslog", tcp=port).start()
    try:
        late = hammer(srv, 5, threads=1)

        def all_there():
            rids = set()
            for raw, _ in r.messages("imtcp"):
                m = RFC5424.match(raw)
                if m:
                    rids.add(json.loads(strip_bom(m.group("msg"))).get("request_id"))
            return set(early + late) <= rids

        assert wait_for(all_there, 20), "lines logged while syslog was down were not sent"
        assert srv.wait_log(lambda x: "syslog sink: sending to" in x.get("body", ""), 5)
        errors = [x for x in srv.log_lines() if "syslog sink: cannot" in x.get("body", "")]
        assert len(errors) == 1
        srv.assert_clean_stop()
    finally:
        r.stop()


# ===== Loki =======================================================================================


class LokiReceiver:
    """A stand-in for Loki's push endpoint that checks what its API documents: POST to
    /loki/api/v1/push, Content-Type application/json, {"streams":[{"stream":{labels},
    "values":[["<ns>","<line>"],...]}]}, timestamps as strings of nanoseconds. It answers 204, or
    500 for the first fail_first pushes (or every push while fail_always)."""

    def __init__(self):
        self.pushes = []  # (headers, body) of accepted pushes
        self.problems = []
        self.attempts = 0
        self.fail_first = 0
        self.fail_always = False
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.attempts += 1
                    fail = receiver.fail_always or receiver.attempts <= receiver.fail_first
                    problem = receiver.check(self.path, self.headers, body)
                    if problem:
                        receiver.problems.append(problem)
                    elif not fail:
                        receiver.pushes.append((dict(self.headers), json.loads(body)))
                code = 500 if fail else 400 if problem else 204
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def check(path, headers, body):
        if path != "/loki/api/v1/push":
            return f"path {path}"
        if headers.get("Content-Type") != "application/json":
            return f"content type {headers.get('Content-Type')}"
        try:
            doc = json.loads(body)
        except ValueError as exc:
            return f"not JSON: {exc}"
        if set(doc) != {"streams"} or not isinstance(doc["streams"], list) or not doc["streams"]:
            return f"shape {list(doc)}"
        for s in doc["streams"]:
            if set(s) != {"stream", "values"}:
                return f"stream keys {list(s)}"
            labels = s["stream"]
            if set(labels) != {"service", "environment", "level"}:
                return f"labels {labels}"
            if not all(isinstance(v, str) for v in labels.values()):
                return "label values must be strings"
            for v in s["values"]:
                if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)):
                    return f"value {v!r}"
                if not re.fullmatch(r"\d{19}", v[0]):
                    return f"timestamp {v[0]!r} is not nanoseconds"
                line = json.loads(v[1])
                if line["severity_text"].lower() != labels["level"]:
                    return "level label differs from the line"
        return None

    def lines(self):
        with self.lock:
            out = []
            for _, doc in self.pushes:
                for s in doc["streams"]:
                    for ts, line in s["values"]:
                        out.append((s["stream"], int(ts), json.loads(line)))
            return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def loki():
    r = LokiReceiver()
    yield r
    r.close()


def test_loki_push(make_server, loki, tmp_path):
    pw_file = tmp_path / "loki-password"
    password = "pw-" + uuid.uuid4().hex
    pw_file.write_text(password + "\n")
    srv = make_server({"LEDGERD_LOG_SINKS": "stdout,loki", "LEDGERD_LOKI_URL": loki.url + "/",
                       "LEDGERD_LOKI_TENANT": "team-a", "LEDGERD_LOKI_USERNAME": "12345",
                       "LEDGERD_LOKI_PASSWORD_FILE": str(pw_file),
                       "LEDGERD_LOKI_BATCH_LINES": "25", "LEDGERD_LOKI_BATCH_WAIT_MS": "200",
                       "LEDGERD_ENV": "staging"})
    ids = hammer(srv, 120, threads=6)
    assert wait_for(lambda: set(ids) <= {ln.get("request_id") for _, _, ln in loki.lines()}, 10)
    assert not loki.problems, loki.problems
    headers = loki.pushes[0][0]
    assert headers["X-Scope-OrgID"] == "team-a"
    expected = "Basic " + base64.b64encode(f"12345:{password}".encode()).decode()
    assert headers["Authorization"] == expected
    # Batching: by count (25 at most per push) and by time (the tail arrives without a full
    # batch).
    assert len(loki.pushes) >= 120 // 25
    assert all(sum(len(s["values"]) for s in doc["streams"]) <= 25 for _, doc in loki.pushes)
    stdout = {x.get("request_id"): x for x in srv.log_lines()}
    for labels, ts, line in loki.lines():
        assert labels == {"service": "ledgerd", "environment": "staging",
                          "level": line["severity_text"].lower()}
        if line.get("request_id") is not None and line["request_id"] in stdout:
            assert line == stdout[line["request_id"]]
            # The nanosecond timestamp is the line's own, to the millisecond.
            assert time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts // 10**9)) == \
                line["timestamp"][:19]
            assert f"{ts // 10**6 % 1000:03d}" == line["timestamp"][20:23]
    srv.assert_clean_stop()


def test_loki_retries_then_drops(make_server, loki):
    loki.fail_first = 2
    srv = make_server({"LEDGERD_LOG_SINKS": "stdout,loki", "LEDGERD_LOKI_URL": loki.url,
                       "LEDGERD_LOKI_BATCH_WAIT_MS": "100"})
    ids = hammer(srv, 10, threads=2)
    # Two 500s, then the same batch again: nothing lost.
    assert wait_for(lambda: set(ids) <= {ln.get("request_id") for _, _, ln in loki.lines()}, 15)
    assert loki.attempts >= 3
    # Now Loki keeps failing: after its attempts the batch is dropped, counted and reported.
    loki.fail_always = True
    lost = hammer(srv, 10, threads=2)
    warn = srv.wait_log(lambda x: "loki sink: push" in x.get("body", "")
                        and "HTTP 500" in x["body"], 20)
    assert warn is not None, srv.stdout_text()[-2000:]
    assert warn["severity_text"] == "WARN" and warn["dropped_lines"] >= 1
    assert warn["attempts"] == 5
    assert not set(lost) & {ln.get("request_id") for _, _, ln in loki.lines()}
    assert srv.running()
    loki.fail_always = False
    srv.assert_clean_stop()


# ===== Log level at run time ======================================================================


def test_log_level_by_signals(make_server, tmp_path):
    level_file = tmp_path / "level"
    level_file.write_text("info\n")
    srv = make_server({"LEDGERD_LOG_LEVEL_FILE": str(level_file)})

    def change(to):
        return srv.wait_log(lambda x: x.get("log_level") == to and x.get("body", "").startswith(
            "log level changed") and x not in seen, 5)

    seen = []
    srv.signal(signal.SIGUSR2)  # one step less verbose: warn
    line = change("warn")
    assert line is not None and "SIGUSR2" in line["body"]
    seen.append(line)
    before = answered(srv)
    hidden = hammer(srv, 3, threads=1)
    assert wait_for(lambda: answered(srv) >= before + 3)  # their lines were skipped by now
    srv.signal(signal.SIGUSR1)  # back to info
    seen.append(change("info"))
    srv.signal(signal.SIGUSR1)  # debug
    seen.append(change("debug"))
    shown = hammer(srv, 3, threads=1)
    settle(srv, shown)  # before the level rises to error
    level_file.write_text("LEDGERD_LOG_LEVEL=error\n")
    srv.signal(signal.SIGHUP)
    line = change("error")
    assert line is not None and "SIGHUP" in line["body"] and line["previous_log_level"] == "debug"
    level_file.write_text("shout\n")
    srv.signal(signal.SIGHUP)
    assert srv.wait_log(lambda x: "LEDGERD_LOG_LEVEL_FILE cannot be read" in x.get("body", ""), 5)
    assert wait_for(lambda: set(shown) <= set(request_ids(srv.log_lines())))
    assert not set(hidden) & set(request_ids(srv.log_lines()))
    assert srv.running()
    srv.assert_clean_stop()


def test_bad_log_settings_refused_at_start(tmp_path):
    cases = [
        ("LEDGERD_LOG_SINKS", "stdout,kafka"),
        ("LEDGERD_LOG_SINKS", "loki"),
        ("LEDGERD_LOG_FILE_MAX_BYTES", "1023"),
        ("LEDGERD_SYSLOG_ADDRESS", "udp://127.0.0.1:0"),
        ("LEDGERD_SYSLOG_FACILITY", "local9"),
        ("LEDGERD_LOKI_URL", "ftp://loki"),
        ("LEDGERD_LOKI_TENANT", "a\r\nX: y"),
        ("LEDGERD_LOG_LEVEL_FILE", str(tmp_path / "missing")),
    ]
    for name, value in cases:
        p = run_cli(["serve"], env={"LEDGERD_DB": f"sqlite://{tmp_path}/x.db", name: value},
                    cwd=tmp_path)
        assert p.returncode == 2, (name, value, p.stderr)
        assert f"{name}: " in p.stderr, (name, p.stderr)


# ===== Secrets ====================================================================================


def test_secrets_reach_no_sink(make_server, rsyslog, loki, tmp_path):
    # Built from parts so a secret scanner does not take the test for a leak.
    bearer = "bearer" + "-" + uuid.uuid4().hex
    cookie = "cookie" + "-" + uuid.uuid4().hex
    query_pw = "qpw" + "-" + uuid.uuid4().hex
    loki_pw = "lokipw" + "-" + uuid.uuid4().hex
    db_pw = "dbpw" + "-" + uuid.uuid4().hex
    secrets = [bearer, cookie, query_pw, loki_pw, db_pw]
    pw_file = tmp_path / "loki-pw"
    pw_file.write_text(loki_pw)
    env = {"LEDGERD_LOG_SINKS": "stdout,file,syslog,loki",
           "LEDGERD_LOG_FILE": str(tmp_path / "logs" / "ledgerd.log"),
           "LEDGERD_SYSLOG_ADDRESS": f"udp://127.0.0.1:{rsyslog.udp}",
           "LEDGERD_LOKI_URL": loki.url, "LEDGERD_LOKI_USERNAME": "u",
           "LEDGERD_LOKI_PASSWORD_FILE": str(pw_file), "LEDGERD_LOKI_BATCH_WAIT_MS": "50",
           "LEDGERD_LOG_LEVEL": "debug"}
    srv = make_server(env)
    c = srv.client()
    try:
        for path in ["/v1/accounts?limit=1", f"/v1/accounts?password={query_pw}",
                     f"/v1/accounts/{uuid.uuid4().hex}?token={query_pw}", "/healthz"]:
            c.get(path, headers={"Authorization": f"Bearer {bearer}",
                                 "Cookie": f"session={cookie}"})
        c.post("/v1/accounts", {"id": "acct-" + uuid.uuid4().hex[:8], "ledger": "SECRETS",
                                "code": 1, "metadata": {"note": "no secret here"}},
               headers={"Authorization": f"Basic {bearer}", "Cookie": f"a={cookie}",
                        "Idempotency-Key": uuid.uuid4().hex})
    finally:
        c.close()
    ids = hammer(srv, 5, threads=1, headers={"Authorization": f"Bearer {bearer}"})
    assert wait_for(lambda: set(ids) <= {ln.get("request_id") for _, _, ln in loki.lines()}, 10)
    assert loki.pushes[0][0]["Authorization"].startswith("Basic ")  # the password was used
    srv.assert_clean_stop()

    # The configuration as printed, with the database password in a URL from a file.
    db_file = tmp_path / "db-url"
    db_file.write_text("postgres://ledger:" + db_pw + f"@127.0.0.1:5432/ledger?password={db_pw}\n")
    printed = run_cli(["config", "print"], cwd=tmp_path,
                      env=dict({k: v for k, v in env.items()}, LEDGERD_DB_FILE=str(db_file)))
    assert printed.returncode == 0, printed.stderr
    assert "LEDGERD_LOKI_PASSWORD_FILE=" + str(pw_file) in printed.stdout
    # A bad URL from the file: the error quotes it, without the password.
    db_file.write_text(f"mysql://ledger:{db_pw}@db/x\n")
    refused = run_cli(["config", "print"], cwd=tmp_path, env={"LEDGERD_DB_FILE": str(db_file)})
    assert refused.returncode == 2 and "LEDGERD_DB: " in refused.stderr

    time.sleep(0.5 * slow_factor())  # rsyslog writes its files
    sinks = {
        "stdout": srv.stdout_text(),
        "stderr": srv.stderr_text(),
        "file": "".join(p.read_text("utf-8", "replace")
                        for p in (tmp_path / "logs").iterdir()),
        "syslog": (rsyslog.dir / "raw.log").read_text("utf-8", "replace"),
        "loki": json.dumps([doc for _, doc in loki.pushes]),
        "config print": printed.stdout + printed.stderr,
        "config error": refused.stdout + refused.stderr,
    }
    assert srv.proc.pid and str(srv.proc.pid) in sinks["syslog"]  # the syslog output is ours
    for name, text in sinks.items():
        for secret in secrets:
            assert secret not in text, f"a secret reached {name}"
