"""The dashboards against a running ledgerd: the Grafana dashboard's every query through a real
Prometheus, and the /ops/dashboard page in a real headless Chromium.

- deploy/prometheus/prometheus.yml passes `promtool check config`.
- deploy/grafana/ledgerd.json has the shape Grafana imports (schema, datasource variable,
  instance templating, every required signal).
- A Prometheus started here scrapes this module's ledgerd every second (a copy of the shipped
  configuration with the interval and target changed) while load runs: creates, transfers,
  idempotent replays, a reused key, 404s. Then every expression of every panel is evaluated
  through /api/v1/query, Grafana's variables substituted, and each must return data.
- Headless Chromium loads GET /ops/dashboard while load runs, for 6 s of virtual time: every
  chart (data-series) must have drawn (data-points >= 1), and a screenshot must be a real PNG.
  This part is skipped while the route is not served.

Needs the Debian packages prometheus and chromium (scripts/deps.sh test installs them).
"""

import html.parser
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib

import pytest
import yaml

from .ledgerd_harness import REPO, create_account, slow_factor

PROMETHEUS_YML = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_JSON = REPO / "deploy" / "grafana" / "ledgerd.json"

# What Grafana would put in place of its variables when the dashboard shows every instance.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "instance": ".*",
    "job": "ledgerd",
}

# The charts /ops/dashboard must draw (data-series names).
OPS_DASHBOARD_SERIES = {
    "request_rate", "latency", "error_rate", "idempotency_hit_ratio", "db_pool_saturation",
    "commit_queue_depth", "cpu", "rss",
}


def need(binary):
    path = shutil.which(binary)
    assert path, f"{binary} is not installed (scripts/deps.sh test installs it)"
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10.0):
    """(status, headers dict with lower-case names, body bytes); HTTP errors are returned."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


# -- the Grafana dashboard ------------------------------------------------------------------------
def load_dashboard():
    with GRAFANA_JSON.open(encoding="utf-8") as f:
        return json.load(f)


def all_panels(dashboard):
    """Every panel, those inside (collapsed) rows included."""
    for p in dashboard["panels"]:
        yield p
        for inner in p.get("panels", []):
            yield inner


def panel_queries(dashboard):
    """(panel title, refId, expr) for every Prometheus query of every panel."""
    out = []
    for p in all_panels(dashboard):
        for t in p.get("targets", []):
            out.append((p["title"], t.get("refId", "?"), t["expr"]))
    return out


def substitute(expr, variables=GRAFANA_VARIABLES):
    """Replaces $var, ${var} and [[var]] as Grafana does; an unknown variable is an error."""
    def value(m):
        name = m.group(1) or m.group(2) or m.group(3)
        assert name in variables, f"unknown Grafana variable {name!r} in {expr}"
        return variables[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def test_prometheus_config_is_valid():
    r = subprocess.run([need("promtool"), "check", "config", str(PROMETHEUS_YML)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    cfg = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert "ledgerd" in jobs
    assert jobs["ledgerd"].get("metrics_path", "/metrics") == "/metrics"
    assert jobs["ledgerd"]["scrape_interval"] == "15s"


def test_grafana_dashboard_shape():
    d = load_dashboard()
    assert d["schemaVersion"] >= 36
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    assert "instance" in variables["instance"]["definition"]
    ids = [p["id"] for p in all_panels(d)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in all_panels(d):
        assert set(p["gridPos"]) == {"x", "y", "w", "h"}, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        assert p.get("description"), f"panel {p['title']!r} has no description"
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
            assert "$instance" in t["expr"], f"{p['title']}: not filtered by instance"
    text = " ".join(e for _, _, e in panel_queries(d))
    for needle in (
        "ledgerd_http_requests_total", "ledgerd_http_request_duration_seconds_bucket",
        "histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,",
        "[30d]", "(1 - 0.999)", "(1 - 0.9995)", 'code=~"4.."', 'code=~"5.."',
        'result="hit"', 'result=~"hit|miss|reused|in_flight"',
        "ledgerd_cache_lookups_total",
        'ledgerd_cache_breaker_state{job=~"$job",instance=~"$instance",state="open"}',
        "ledgerd_db_pool_connections", "ledgerd_db_pool_max_connections",
        "ledgerd_db_pool_acquire_wait_seconds_bucket", "ledgerd_db_pool_acquire_timeouts_total",
        "ledgerd_commit_queue_depth", "ledgerd_commit_queue_capacity",
        "ledgerd_commit_queue_rejections_total", "ledgerd_commit_batch_commands",
        "ledgerd_commit_duration_seconds_bucket", "ledgerd_transfers_total",
        "rate(process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
        "process_max_fds",
    ):
        assert needle in text, f"no panel uses {needle}"
    budgets = [p for p in all_panels(d) if p["title"].startswith("Error budget remaining")]
    assert len(budgets) == 2
    for p in budgets:
        assert "Formula" in p["description"], p["title"]


# -- Prometheus -----------------------------------------------------------------------------------
class Prometheus:
    """A Prometheus scraping one ledgerd every second, in its own directory and port."""

    def __init__(self, workdir, target):
        self.workdir = pathlib.Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
        cfg["global"]["scrape_interval"] = "1s"
        cfg["global"]["scrape_timeout"] = "1s"
        cfg["global"]["evaluation_interval"] = "1s"
        job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "ledgerd")
        job["scrape_interval"] = "1s"
        job["scrape_timeout"] = "1s"
        job["static_configs"] = [{"targets": [target]}]
        self.config = self.workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        for rules in cfg.get("rule_files", []):  # the shipped rules, beside the copy as beside it
            shutil.copy(PROMETHEUS_YML.parent / rules, self.workdir / rules)
        self.log = self.workdir / "prometheus.log"
        self.proc = None

    def start(self):
        r = subprocess.run([need("promtool"), "check", "config", str(self.config)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        assert r.returncode == 0, r.stdout
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [need("prometheus"), f"--config.file={self.config}",
                 f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=str(self.workdir))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited:\n{self.log_text()}"
            try:
                if http_get(self.url + "/-/ready", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready in 30 s:\n{self.log_text()}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_text(self):
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]

    def api(self, path, **params):
        """The data of a /api/v1 answer; fails on any error the API reports."""
        url = self.url + "/api/v1/" + path + "?" + urllib.parse.urlencode(params, doseq=True)
        status, _, body = http_get(url, timeout=30)
        reply = json.loads(body)
        assert status == 200 and reply.get("status") == "success", f"{path} {params}: {reply}"
        return reply["data"]

    def query(self, expr):
        data = self.api("query", query=expr)
        assert data["resultType"] in ("vector", "scalar"), data
        return data["result"] if data["resultType"] == "vector" else [{"value": data["result"]}]

    def wait_scraped(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            up = self.query('up{job="ledgerd"}')
            if up and up[0]["value"][1] == "1" and self.query("ledgerd_up"):
                return
            time.sleep(0.5)
        raise AssertionError(f"prometheus did not scrape ledgerd in {timeout} s: "
                             f"{self.api('targets')}\n{self.log_text()}")


# -- load -----------------------------------------------------------------------------------------
class Load(threading.Thread):
    """Keeps a mix of requests going until stopped: transfers with fresh Idempotency-Keys,
    their replays, a key reused for another body (422), reads, and 404s."""

    def __init__(self, server, ledger):
        super().__init__(daemon=True)
        self.server = server
        self.ledger = ledger
        self.stopping = threading.Event()
        self.counts = {}
        self.error = None

    def count(self, status):
        self.counts[status] = self.counts.get(status, 0) + 1

    def run(self):
        c = self.server.client()
        try:
            a = create_account(c, self.ledger)["id"]
            b = create_account(c, self.ledger)["id"]
            i = 0
            while not self.stopping.is_set():
                i += 1
                key = {"Idempotency-Key": "dash-" + uuid.uuid4().hex}
                body = {"debit_account_id": a, "credit_account_id": b, "amount": str(i),
                        "ledger": self.ledger, "code": 1}
                self.count(c.post("/v1/transfers", body, headers=key).status)
                self.count(c.post("/v1/transfers", body, headers=key).status)  # replay
                if i % 5 == 0:
                    other = dict(body, amount=str(i + 1))
                    self.count(c.post("/v1/transfers", other, headers=key).status)  # 422
                    self.count(c.get("/v1/accounts/" + a).status)
                    self.count(c.get("/v1/no-such-route").status)
                    self.count(c.post("/v1/accounts", {"ledger": self.ledger, "code": 2}).status)
        except Exception as e:  # reported by stop()
            self.error = e
        finally:
            c.close()

    def stop(self):
        self.stopping.set()
        self.join(60)
        assert not self.is_alive(), "load did not stop"
        assert self.error is None, f"load failed: {self.error!r}"
        assert self.counts.get(201, 0) > 0 and self.counts.get(404, 0) > 0, self.counts
        assert not [s for s in self.counts if s >= 500], f"5xx under load: {self.counts}"
        return self.counts


def test_every_grafana_panel_query_returns_data(server, tmp_path):
    status, _, _ = http_get(server.url.rstrip("/") + "/metrics")
    assert status == 200, f"GET /metrics answered {status}: the dashboards need it"
    prom = Prometheus(tmp_path, f"{server.host}:{server.port}")
    load = Load(server, "DASHA")
    try:
        prom.start()
        prom.wait_scraped(30 * slow_factor())
        load.start()
        time.sleep(15)
        load.stop()
        time.sleep(3)  # a last scrape or two after the load
        failures = []
        for title, ref, expr in panel_queries(load_dashboard()):
            q = substitute(expr)
            try:
                result = prom.query(q)
            except AssertionError as e:
                failures.append(f"{title} [{ref}]: invalid: {e}")
                continue
            if not result:
                failures.append(f"{title} [{ref}]: no data for {q}")
        assert not failures, "\n".join(failures)

        # The variables' queries find this ledgerd.
        jobs = prom.api("label/job/values", **{"match[]": "ledgerd_up"})
        assert "ledgerd" in jobs
        instances = prom.api("label/instance/values", **{"match[]": 'ledgerd_up{job=~"ledgerd"}'})
        assert f"{server.host}:{server.port}" in instances

        # And the numbers mean what the panels say.
        def values(expr, by=None):
            rows = prom.query(substitute(expr))
            return {(r["metric"].get(by) if by else None): float(r["value"][1]) for r in rows}

        sel = 'job="ledgerd"'
        by_route = values(f"sum by (route) (rate(ledgerd_http_requests_total{{{sel}}}[1m]))",
                          "route")
        assert by_route.get("/v1/transfers", 0) > 0 and by_route.get("unmatched", 0) > 0, by_route
        hit = values(f'sum(rate(ledgerd_idempotency_lookups_total{{{sel},result="hit"}}[1m])) / '
                     f"sum(rate(ledgerd_idempotency_lookups_total{{{sel}}}[1m]))")[None]
        assert 0.2 < hit < 0.8, hit  # about one replay per fresh key
        budgets = [p for p in all_panels(load_dashboard())
                   if p["title"].startswith("Error budget remaining")]
        for p in budgets:
            (v,) = values(p["targets"][0]["expr"]).values()
            assert 0 <= v <= 1, (p["title"], v)
        avail = next(p for p in budgets if "availability" in p["title"])
        assert values(avail["targets"][0]["expr"])[None] == 1.0  # no 5xx: nothing spent
        created = values(f'sum(increase(ledgerd_transfers_total{{{sel},result="created"}}[1m]))')
        assert created[None] > 0
    finally:
        if load.is_alive():
            load.stopping.set()
            load.join(30)
        prom.stop()


# -- headless Chromium ----------------------------------------------------------------------------
def chromium(args, workdir, timeout=90):
    """Runs headless Chromium with args in its own session (so every helper process it starts
    is ended with it); returns (returncode, stdout text, stderr text)."""
    profile = workdir / f"chromium-profile-{uuid.uuid4().hex[:8]}"
    profile.mkdir()
    cmd = [need("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
           f"--user-data-dir={profile}"] + list(args)
    env = dict(os.environ, HOME=str(workdir))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout * slow_factor())
    except subprocess.TimeoutExpired:
        out, err = b"", b"timed out"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


class ChartFinder(html.parser.HTMLParser):
    """Collects {data-series: data-points or None} and the text of #error."""

    def __init__(self):
        super().__init__()
        self.charts = {}
        self.error_text = ""
        self._in_error = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-series" in a:
            self.charts[a["data-series"]] = a.get("data-points")
        self._in_error = a.get("id") == "error"

    def handle_data(self, data):
        if self._in_error:
            self.error_text += data

    def handle_endtag(self, tag):
        self._in_error = False


def png_summary(data):
    """(width, height, distinct byte values of the filtered image data) of a PNG. A blank
    page filters to almost nothing but zeros; text and lines give a wide spread of values."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        chunk = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + chunk) == crc, f"bad CRC in {kind!r}"
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    assert header is not None and idat, "PNG without IHDR or IDAT"
    raw = zlib.decompress(idat)
    return header[0], header[1], len(set(raw))


def test_ops_dashboard_draws_every_chart(server, tmp_path):
    page = server.url.rstrip("/") + "/ops/dashboard"
    status, headers, body = http_get(page)
    if status == 404:
        pytest.skip("GET /ops/dashboard is not routed yet (src/http/routes.c); the page itself "
                    "is src/ops/dashboard.html, checked by tests/unit/ops/test_dashboard.c")
    assert status == 200, status
    assert headers.get("content-type", "").replace(" ", "").lower() == "text/html;charset=utf-8"
    assert "no-store" in headers.get("cache-control", "")
    csp = headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp, csp
    assert "script-src 'unsafe-inline'" in csp and "style-src 'unsafe-inline'" in csp, csp
    assert not re.search(r"https?:|\*", csp), csp
    assert body.lower().startswith(b"<!doctype html>")

    load = Load(server, "DASHB")
    load.start()
    try:
        time.sleep(1)
        rc, dom, err = chromium(["--virtual-time-budget=6000", "--dump-dom", page], tmp_path)
        assert rc == 0, f"chromium exited {rc}:\n{err[-3000:]}"
        finder = ChartFinder()
        finder.feed(dom)
        missing = OPS_DASHBOARD_SERIES - set(finder.charts)
        assert not missing, f"charts missing from the page: {sorted(missing)}"
        empty = {name: pts for name, pts in finder.charts.items()
                 if pts is None or not pts.isdigit() or int(pts) < 1}
        assert not empty, (f"charts that drew nothing: {empty}; page error: "
                           f"{finder.error_text!r}")
        assert finder.error_text.strip() == "", finder.error_text

        shot = tmp_path / "ops-dashboard.png"
        rc, _, err = chromium(["--virtual-time-budget=6000", "--window-size=1280,1400",
                               f"--screenshot={shot}", page], tmp_path)
        assert rc == 0 and shot.is_file(), f"chromium exited {rc}:\n{err[-3000:]}"
        width, height, spread = png_summary(shot.read_bytes())
        assert (width, height) == (1280, 1400), (width, height)
        assert spread > 64, f"the screenshot looks blank ({spread} distinct byte values)"
    finally:
        load.stop()
