"""The prose documentation against the repository: links resolve, the files and settings it
names exist, and every setting ledgerd reads is documented. Run: python3 -m pytest tests/docs
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "operations" / "configuration.md"
READINESS = ROOT / "docs" / "operations" / "readiness.md"
CONFIG_SOURCES = [ROOT / "src" / "core" / "config.h", ROOT / "src" / "core" / "config.c"]

# Documents whose every statement about the repository is checked here.
CHECKED_DOCS = [
    ROOT / "README.md",
    ROOT / "docs" / "architecture.md",
    CONFIGURATION,
    READINESS,
    ROOT / "docs" / "operations" / "observability.md",
    ROOT / "docs" / "operations" / "scaling.md",
    ROOT / "docs" / "operations" / "migrations.md",
    ROOT / "docs" / "security" / "README.md",
    *sorted((ROOT / "docs" / "runbooks").glob("*.md")),
]
METRICS_SOURCE = ROOT / "src" / "obs" / "metrics.c"
METRIC_NAME = re.compile(r"\bledgerd_[a-z0-9_]*[a-z0-9]\b")
NOT_METRICS = {"ledgerd_json"}  # logging.md: the name of an rsyslog template

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
REPO_PATH = re.compile(
    r"`((?:src|tests|scripts|migrations|docs|cmake|deploy|bench|\.ci)/[^`\s]*|"
    r"Makefile|CMakeLists\.txt|\.clang-format|\.gitignore)`"
)
SETTING = re.compile(r"\bLEDGERD_[A-Z0-9_]*[A-Z0-9]\b")


def slug(heading):
    """GitHub's anchor for a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(md_file):
    return {
        slug(m.group(1))
        for m in re.finditer(r"^#+ (.*)$", md_file.read_text(encoding="utf-8"), re.M)
    }


def all_markdown():
    files = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
    return [f for f in files if f.exists()]


@pytest.mark.parametrize("doc", CHECKED_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_checked_docs_exist(doc):
    assert doc.is_file()


@pytest.mark.parametrize("doc", all_markdown(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # absolute URL
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        assert dest.exists(), f"{doc.relative_to(ROOT)}: broken link {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{doc.relative_to(ROOT)}: no anchor {target}"


def statements_about_today(doc):
    """The lines of doc that describe what exists: not those about later or planned work."""
    skipping = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            skipping = bool(re.search(r"\blater\b|\bplanned\b", line, re.I))
            continue
        if skipping or re.search(r"\*\*Planned\*\*|\*Later\*|\(later\b|Planned:", line):
            continue
        yield line


@pytest.mark.parametrize("doc", CHECKED_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_repository_files_exist(doc):
    missing = set()
    for line in statements_about_today(doc):
        for path in REPO_PATH.findall(line):
            if re.search(r"[<>*…]|NNNN", path):
                continue  # a pattern, not a file
            if not (ROOT / path).exists():
                missing.add(path)
    assert not missing, f"{doc.relative_to(ROOT)} names files that do not exist: {sorted(missing)}"


# "LEDGERD_X: ..." is how configuration errors are shown, not a setting.
PLACEHOLDERS = {"LEDGERD_X"}


def settings_in_code():
    """Settings named in config.h's comments and as string literals in config.c."""
    names = set()
    header, source = CONFIG_SOURCES
    for name in SETTING.findall(header.read_text(encoding="utf-8")):
        if not name.endswith("_H") and name not in PLACEHOLDERS:
            names.add(name)
    if source.exists():
        names |= set(re.findall(r'"(LEDGERD_[A-Z0-9_]*[A-Z0-9])"', source.read_text("utf-8")))
    return names


def settings_in_table():
    text = CONFIGURATION.read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(LEDGERD_[A-Z0-9_]+)` \|", text, re.M))


def test_every_setting_is_documented():
    in_code = settings_in_code()
    assert "LEDGERD_LISTEN" in in_code and "LEDGERD_DB" in in_code
    missing = in_code - settings_in_table()
    assert not missing, f"settings read by ledgerd but not in configuration.md: {sorted(missing)}"


def test_no_documented_setting_is_invented():
    documented = set()
    for doc in CHECKED_DOCS:
        documented |= set(SETTING.findall(doc.read_text(encoding="utf-8")))
    invented = documented - settings_in_code() - PLACEHOLDERS
    assert not invented, f"documented but not read by ledgerd: {sorted(invented)}"


def test_defaults_match_limits_h():
    limits = (ROOT / "src" / "core" / "limits.h").read_text(encoding="utf-8")

    def value(name):
        m = re.search(rf"^#define {name} \(?(\d+)u?(?: \* (\d+)u?)?(?: \* (\d+)u?)?\)?", limits, re.M)
        assert m, name
        n = 1
        for g in m.groups():
            if g:
                n *= int(g)
        return n

    rows = {}
    for m in re.finditer(r"^\| `(LEDGERD_[A-Z0-9_]+)` \| `([^`]*)`", CONFIGURATION.read_text(), re.M):
        rows[m.group(1)] = m.group(2)
    expect = {
        "LEDGERD_BODY_BYTES_MAX": "LIMIT_BODY_BYTES_DEFAULT",
        "LEDGERD_BATCH_BODY_BYTES_MAX": "LIMIT_BATCH_BODY_BYTES_DEFAULT",
        "LEDGERD_QUEUE_DEPTH_MAX": "LIMIT_QUEUE_DEPTH_DEFAULT",
        "LEDGERD_IDEMPOTENCY_TTL_SECONDS": "LIMIT_IDEMPOTENCY_TTL_SECONDS_DEFAULT",
        "LEDGERD_CONNECTIONS_MAX": "LIMIT_CONNECTIONS_DEFAULT",
        "LEDGERD_PER_IP_CONNECTIONS_MAX": "LIMIT_PER_IP_CONNECTIONS_DEFAULT",
        "LEDGERD_CONNECTION_TIMEOUT_SECONDS": "LIMIT_CONNECTION_TIMEOUT_SECONDS_DEFAULT",
        "LEDGERD_SHUTDOWN_TIMEOUT_SECONDS": "LIMIT_SHUTDOWN_TIMEOUT_SECONDS_DEFAULT",
        "LEDGERD_EXPIRY_INTERVAL_MS": "LIMIT_EXPIRY_INTERVAL_MS_DEFAULT",
    }
    for setting, limit in expect.items():
        assert rows.get(setting) == str(value(limit)), setting


CHECKLIST_POINTS = [
    "CI/CD pipelines",
    "Safe rollout/rollback",
    "Schema and migration hygiene",
    "Environment parity",
    "Feature toggles",
    "Dependency/OSS scanning",
    "SLOs & alerting",
    "Metrics dashboards",
    "Logging decks",
    "Tracing + correlation",
    "Incident runbooks",
    "Post-incident hygiene",
    "Secrets management",
    "TLS + certificate lifecycle",
    "Authz/Audit trails",
    "Patch management",
    "Incident response",
]


@pytest.mark.parametrize("point", CHECKLIST_POINTS)
def test_readiness_covers_every_checklist_point(point):
    headings = [line for line in READINESS.read_text(encoding="utf-8").splitlines()
                if line.startswith("### ")]
    assert any(h.startswith(f"### {point} — ") for h in headings), point


def test_every_named_metric_exists():
    """A metric named in any document (a runbook's query, a panel's description) is one that
    ledgerd exposes: a family of the catalogue, or one of its histogram series."""
    families = set(re.findall(r'"(ledgerd_[a-z0-9_]+)"', METRICS_SOURCE.read_text()))
    assert len(families) > 20, "the metric catalogue was not found"
    unknown = set()
    for doc in all_markdown():
        for name in METRIC_NAME.findall(doc.read_text(encoding="utf-8")):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            if name not in families and base not in families and name not in NOT_METRICS:
                unknown.add(f"{doc.relative_to(ROOT)}: {name}")
    assert not unknown, sorted(unknown)
