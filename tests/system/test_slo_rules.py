"""The SLO rules (deploy/prometheus/slo-rules.yml) with the real promtool and Prometheus.

- `promtool check rules` accepts the rules and `promtool test rules` passes their unit tests
  (deploy/prometheus/slo-rules.test.yml).
- Those unit tests can fail: with a page threshold moved (14.4 -> 1000), an alert removed, or
  the probes counted in the SLIs, `promtool test rules` fails in the scenario that covers it.
- Every alert has a severity, an slo (LedgerdDown excepted), a summary, a description (with the
  burn rate for the burn-rate alerts) and a runbook_url naming a file of the repository; the
  recording rules cover both SLIs over every window; the burn-rate alerts use the window pairs
  and burn rates of the Google SRE Workbook's multiwindow, multi-burn-rate alerts.
- deploy/prometheus/prometheus.yml loads the rules, and a real Prometheus scraping this
  module's ledgerd evaluates every rule without error: the recorded ratios of both SLIs have
  values from the real metrics, and an unreachable target makes LedgerdDown pending.

Needs the Debian package prometheus (promtool and prometheus; scripts/deps.sh test installs it).
"""

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from .ledgerd_harness import REPO, create_account, new_ledger, slow_factor

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "slo-rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "slo-rules.test.yml"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"

WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
OBJECTIVES = {"availability": "0.9995", "latency": "0.999"}
# (severity, long window, short window, burn rate): the Google SRE Workbook, "Alerting on SLOs".
BURN_ALERTS = {
    ("page", "1h", "5m", "14.4"),
    ("page", "6h", "30m", "6"),
    ("ticket", "1d", "2h", "3"),
    ("ticket", "3d", "6h", "1"),
}


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} not found: install the Debian package prometheus "
                    f"(scripts/deps.sh test installs it)")
    return path


def promtool(*args, cwd=None, timeout=300):
    """(returncode, combined output) of `promtool ARGS`."""
    r = subprocess.run([tool("promtool")] + [str(a) for a in args], cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout * slow_factor())
    return r.returncode, r.stdout


def load_rules(path=RULES):
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def all_rules(doc):
    for group in doc["groups"]:
        yield from group["rules"]


# -- promtool -------------------------------------------------------------------------------------
def test_promtool_check_rules():
    rc, out = promtool("check", "rules", RULES)
    assert rc == 0, out
    assert "SUCCESS" in out, out
    assert "WARNING" not in out, out


def test_promtool_test_rules():
    rc, out = promtool("test", "rules", RULE_TESTS.name, cwd=PROMETHEUS_DIR)
    assert rc == 0, out
    assert "SUCCESS" in out, out


def replace(old, new):
    """A mutation: every old in the rules becomes new."""
    def mutate(text):
        assert old in text, f"{old!r} is not in {RULES.name}: update this test"
        return text.replace(old, new)
    return mutate


def run_mutated(tmp_path, mutate, keep_tests):
    """Runs the unit tests named keep_tests (the scenarios that cover the mutation; the whole
    file takes a while) against mutate(the rules); (returncode, output)."""
    text = mutate(RULES.read_text(encoding="utf-8"))
    (tmp_path / RULES.name).write_text(text, encoding="utf-8")
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    names = {t.get("name") for t in tests["tests"]}
    assert set(keep_tests) <= names, f"no such test in {RULE_TESTS.name}: {keep_tests}"
    tests["tests"] = [t for t in tests["tests"] if t.get("name") in keep_tests]
    (tmp_path / RULE_TESTS.name).write_text(yaml.safe_dump(tests, sort_keys=False),
                                            encoding="utf-8")
    return promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)


def remove_alert(alert, severity_line, window_line):
    """A mutation: the rule of alert whose labels hold severity_line and window_line is gone."""
    def mutate(text):
        rules = re.split(r"(?m)^(?=      - (?:alert|record): )", text)
        kept = [r for r in rules
                if not (r.startswith(f"      - alert: {alert}\n") and severity_line in r
                        and window_line in r)]
        assert len(kept) == len(rules) - 1, f"no single {alert} rule with {window_line}"
        return "".join(kept)
    return mutate


@pytest.mark.parametrize("case", ["page threshold", "alert removed", "probes counted"])
def test_rule_tests_can_fail(tmp_path, case):
    if case == "page threshold":
        # The page at 14.4x would never fire: the fast-burn scenarios must notice.
        rc, out = run_mutated(tmp_path, replace("> 14.4\n", "> 1000\n"),
                              ["fast burn", "latency burn"])
        expected = ["fast burn", "latency burn", "LedgerdAvailabilityBudgetBurn",
                    "LedgerdLatencyBudgetBurn"]
    elif case == "alert removed":
        # Without the ticket at 3x over a day, the slow burn misses one of its tickets.
        rc, out = run_mutated(tmp_path, remove_alert("LedgerdAvailabilityBudgetBurn",
                                                     "severity: ticket", "long_window: 1d"),
                              ["slow burn"])
        expected = ["slow burn", "LedgerdAvailabilityBudgetBurn", 'long_window="1d"']
    else:
        # /readyz answering 503 and a slow /metrics would count: the healthy service pages.
        rc, out = run_mutated(tmp_path, replace('route=~"/v1/.*"', 'route=~".+"'), ["healthy"])
        expected = ["healthy", "LedgerdAvailabilityBudgetBurn", "LedgerdLatencyBudgetBurn"]
    assert rc != 0, f"promtool test rules passed with the rules broken ({case}):\n{out}"
    for needle in expected:
        assert needle in out, f"{case}: the failure does not name {needle!r}:\n{out}"


# -- the rules' shape -----------------------------------------------------------------------------
def test_every_alert_is_labelled_and_annotated():
    alerts = [r for r in all_rules(load_rules()) if "alert" in r]
    names = {a["alert"] for a in alerts}
    assert names == {"LedgerdAvailabilityBudgetBurn", "LedgerdLatencyBudgetBurn", "LedgerdDown"}
    for a in alerts:
        what = f"{a['alert']} {a.get('labels')}"
        labels, notes = a.get("labels", {}), a.get("annotations", {})
        assert labels.get("severity") in ("page", "ticket"), what
        if a["alert"] != "LedgerdDown":
            assert labels.get("slo") in ("availability", "latency"), what
            assert "$value" in notes.get("description", ""), f"{what}: no burn rate"
        for key in ("summary", "description", "runbook_url"):
            assert str(notes.get(key, "")).strip(), f"{what}: no {key}"
        runbook = notes["runbook_url"].split("#")[0]
        assert (REPO / runbook).is_file(), f"{what}: runbook {runbook} does not exist"


def test_recording_rules_cover_every_window():
    records = {r["record"]: r["expr"] for r in all_rules(load_rules()) if "record" in r}
    for r in records:
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", r), f"{r}: not level:metric:operations"
    for sli in OBJECTIVES:
        for w in WINDOWS:
            name = f"ledgerd:sli_{sli}_errors:ratio_rate{w}"
            assert name in records, f"no recording rule {name}"
            expr = records[name]
            assert f"[{w}]" in expr and not re.search(rf"\[(?!{w}\])", expr), (name, expr)
            assert 'route=~"/v1/.*"' in expr, f"{name}: not restricted to the API routes"
    avail = records["ledgerd:sli_availability_errors:ratio_rate5m"]
    assert 'code=~"5.."' in avail
    assert 'le="0.5"' in records["ledgerd:sli_latency_errors:ratio_rate5m"]


def test_burn_rate_alerts_follow_the_workbook():
    for sli, objective in OBJECTIVES.items():
        found = set()
        for a in all_rules(load_rules()):
            if a.get("labels", {}).get("slo") != sli:
                continue
            lab = a["labels"]
            long_w, short_w = lab["long_window"], lab["short_window"]
            m = re.fullmatch(
                rf"\s*ledgerd:sli_{sli}_errors:ratio_rate{long_w} / \(1 - {objective}\) > "
                rf"([0-9.]+)\s+and\s+ledgerd:sli_{sli}_errors:ratio_rate{short_w} / "
                rf"\(1 - {objective}\) > ([0-9.]+)\s*", a["expr"])
            assert m and m.group(1) == m.group(2), f"{sli} {long_w}: {a['expr']}"
            assert "for" not in a, f"{sli} {long_w}: the short window replaces a 'for'"
            found.add((lab["severity"], long_w, short_w, m.group(1)))
        assert found == BURN_ALERTS, (sli, found)


def test_prometheus_config_loads_the_rules():
    rc, out = promtool("check", "config", PROMETHEUS_YML)
    assert rc == 0, out
    assert "1 rule files found" in out and "slo-rules.yml" in out, out
    rules = sum(1 for _ in all_rules(load_rules()))
    assert f"SUCCESS: {rules} rules found" in out, out


# -- a real Prometheus ----------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(url, path, **params):
    """The data of a Prometheus /api/v1 answer; fails on any error it reports."""
    full = f"{url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(full, timeout=10) as r:
            reply = json.loads(r.read())
    except urllib.error.HTTPError as e:
        reply = json.loads(e.read())
    assert reply.get("status") == "success", f"{path} {params}: {reply}"
    return reply["data"]


def test_prometheus_evaluates_the_rules(server, tmp_path):
    """The shipped configuration and rules, in a real Prometheus scraping this module's ledgerd
    and a port where nothing listens, every second."""
    dead = f"127.0.0.1:{free_port()}"
    cfg = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    cfg["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "ledgerd")
    job.update(scrape_interval="1s", scrape_timeout="1s",
               static_configs=[{"targets": [f"{server.host}:{server.port}", dead]}])
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    shutil.copy(RULES, tmp_path / RULES.name)
    rc, out = promtool("check", "config", tmp_path / "prometheus.yml")
    rules_count = sum(1 for _ in all_rules(load_rules()))
    assert rc == 0 and f"SUCCESS: {rules_count} rules found" in out, out

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "prometheus.log"
    with log.open("wb") as logf:
        proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, cwd=str(tmp_path))
    c = server.client()
    try:
        account = create_account(c, new_ledger())["id"]

        def log_text():
            return log.read_text(encoding="utf-8", errors="replace")[-4000:]

        def query(expr):
            return api(url, "query", query=expr)["result"]

        deadline = time.monotonic() + 60 * slow_factor()
        state = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"prometheus exited:\n{log_text()}"
            # Traffic between scrapes, so that the 5-minute rates are not 0 / 0.
            assert c.get("/v1/accounts/" + account).status == 200
            try:
                groups = api(url, "rules")["groups"]
                ratios = {sli: query(f"ledgerd:sli_{sli}_errors:ratio_rate5m")
                          for sli in OBJECTIVES}
                alerts = api(url, "alerts")["alerts"]
            except (OSError, AssertionError):
                time.sleep(0.5)
                continue
            state = {"groups": groups, "ratios": ratios, "alerts": alerts}
            # A rule never evaluated has the zero time as its last evaluation.
            evaluated = all(not r.get("lastEvaluation", "0001").startswith("0001")
                            for g in groups for r in g["rules"])
            valued = all(rows and rows[0]["value"][1] != "NaN" for rows in ratios.values())
            down = [a for a in alerts if a["labels"].get("alertname") == "LedgerdDown"]
            if evaluated and valued and down:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the rules did not all evaluate in time: {state}\n{log_text()}")

        rules = [r for g in state["groups"] for r in g["rules"]]
        assert len(rules) == rules_count
        for r in rules:
            assert r["health"] == "ok", f"{r['name']}: {r.get('lastError')}"
        # This ledgerd answered every API request fast and without a 5xx.
        for sli, rows in state["ratios"].items():
            assert [row["metric"] for row in rows] == [
                {"__name__": f"ledgerd:sli_{sli}_errors:ratio_rate5m", "job": "ledgerd"}], rows
            assert float(rows[0]["value"][1]) == 0.0, (sli, rows)
        # The dead target is down (pending for the first 2 minutes); the live one is fine.
        down = {a["labels"]["instance"]: a for a in state["alerts"]
                if a["labels"]["alertname"] == "LedgerdDown"}
        assert set(down) == {dead}, down
        assert down[dead]["state"] == "pending" and down[dead]["labels"]["severity"] == "page"
        burning = [a for a in state["alerts"] if a["labels"]["alertname"] != "LedgerdDown"]
        assert not burning, burning
    finally:
        c.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
