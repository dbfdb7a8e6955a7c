#!/usr/bin/env bash
# bench/auth.sh [quick|full]: the cost of ledgerd's authentication, measured against itself in
# the same run: the same Release binary, on fresh copies of the same database, with
# authentication off and with each kind of credential. See bench/README.md ("The cost of
# authentication").
#
#   off     LEDGERD_AUTH=off: no Authorization header, every request is "anonymous"
#   apikey  LEDGERD_AUTH=required, an API key with ledger:read,ledger:write: looked up in SQLite
#           and its HMAC checked on every request
#   jwt     LEDGERD_AUTH=required, an EdDSA JWT with the same scopes that expires in ten years:
#           verified once per I/O thread, then a SHA-256 of the token and a cache hit
# Both "required" servers are configured alike (hashing key, key set, issuer, audience); only
# the credential wrk presents differs. State-changing requests get an audit record in every
# configuration (actor "anonymous" when off), so the transfers workload compares
# authentication alone.
#
#   quick  1 round, 3 s runs (for development); < 1 min
#   full   3 rounds, 10 s runs; < 5 min
#
# The server runs pinned to core 0, wrk to core 1. Each workload runs its three configurations
# back to back in every round, in an order that rotates from round to round; the table reports
# medians, and ratios are medians of per-round ratios. The table is printed and appended to
# bench/RESULTS.md. All traffic goes to 127.0.0.1; every process started here is stopped on exit.
#
# Environment: BENCH_BUILD_DIR (default ${TMPDIR:-/tmp}/ledgerd-bench-build, shared with run.sh
# and reused between runs), BENCH_ROUNDS and BENCH_DURATION (seconds per wrk run) override the
# mode's, BENCH_KEEP=1 keeps the temporary directory, BENCH_NO_RESULTS=1 does not append to
# RESULTS.md, BENCH_PERF=1 adds one unmeasured GET run per configuration under `perf record`
# after the rounds and prints where the server's CPU went.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
ACCOUNTS=10000
CONNS=64 # both workloads, as scenarios 1 and 2 of run.sh
WRK_THREADS=1
WRK_TIMEOUT=10s
SERVER_CPU=0
CLIENT_CPU=1
CONFIGS=(off apikey jwt)
JWT_ISSUER=https://issuer.bench.invalid/
JWT_AUDIENCE=ledgerd-bench
JWT_LIFETIME_SECONDS=$((10 * 365 * 86400))
SCOPES=ledger:read,ledger:write
PERF_SECONDS=5 # BENCH_PERF=1: seconds recorded per configuration
BUILD_DIR=${BENCH_BUILD_DIR:-${TMPDIR:-/tmp}/ledgerd-bench-build}
LOG_TAG=auth
WRK_CPU=1 # run_wrk also reports wrk's own CPU (wrk_cpu)
# shellcheck source-path=SCRIPTDIR/.. source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
bench_mode "auth.sh" "${1:-quick}" # sets MODE, ROUNDS, DURATION, WARMUP

# ===== helpers of this benchmark alone (the shared ones are in lib.sh) =====
# The JWTs are minted with python3-cryptography (Ed25519), as tests/system/test_auth.py does.
ensure_py_cryptography() {
    "$PY" -c 'import cryptography' 2>/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing: python3-cryptography"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            python3-cryptography >/dev/null
        "$PY" -c 'import cryptography' 2>/dev/null && return 0
    fi
    die "missing: python3-cryptography (install this Debian package, e.g. as root: apt-get install python3-cryptography)"
}

# Makes the credentials in WORK: the API key hashing key, an API key stored in the pristine
# database, and an Ed25519 key set with one token signed by it (the private key is never
# written). Sets APIKEY, JWT and AUTH_ENV (the settings of both "required" servers).
make_credentials() {
    "$PY" -c 'import base64, os; print(base64.b64encode(os.urandom(48)).decode())' \
        >"$WORK/apikey-hash.key"
    APIKEY=$(LEDGERD_DB="sqlite://$WORK/pristine.db" LEDGERD_APIKEY_HASH_KEY_FILE="$WORK/apikey-hash.key" \
        "$LEDGERD" apikey create --name bench-auth --scopes "$SCOPES" 2>"$WORK/apikey.err" | tail -1) ||
        { cat "$WORK/apikey.err" >&2; die "ledgerd apikey create failed"; }
    [[ "$APIKEY" =~ ^ldk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$ ]] ||
        { cat "$WORK/apikey.err" >&2; die "ledgerd apikey create printed no key"; }
    JWT=$(
        "$PY" - "$WORK/jwks.json" "$JWT_ISSUER" "$JWT_AUDIENCE" "$JWT_LIFETIME_SECONDS" "${SCOPES//,/ }" <<'EOF'
import base64, json, sys, time
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
path, iss, aud, lifetime, scope = sys.argv[1:6]
def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
key = ed25519.Ed25519PrivateKey.generate()
raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
with open(path, "w") as f:
    json.dump({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "bench", "alg": "EdDSA",
                         "use": "sig", "x": b64url(raw)}]}, f)
now = int(time.time())
head = {"alg": "EdDSA", "kid": "bench", "typ": "JWT"}
claims = {"iss": iss, "aud": aud, "sub": "bench-client", "iat": now, "exp": now + int(lifetime),
          "scope": scope}
signing_input = b64url(json.dumps(head).encode()) + "." + b64url(json.dumps(claims).encode())
print(signing_input + "." + b64url(key.sign(signing_input.encode())))
EOF
    ) || die "could not mint the JWT"
    AUTH_ENV=(LEDGERD_AUTH=required LEDGERD_APIKEY_HASH_KEY_FILE="$WORK/apikey-hash.key"
        LEDGERD_JWKS_FILE="$WORK/jwks.json" LEDGERD_JWT_ISSUER="$JWT_ISSUER"
        LEDGERD_JWT_AUDIENCE="$JWT_AUDIENCE")
}

# config_env CFG -> sets CFG_ENV (the server's settings) and CFG_AUTHZ (the Authorization value
# wrk sends, "" for none).
config_env() {
    case "$1" in
    off) CFG_ENV=(LEDGERD_AUTH=off) CFG_AUTHZ="" ;;
    apikey) CFG_ENV=("${AUTH_ENV[@]}") CFG_AUTHZ="Bearer $APIKEY" ;;
    jwt) CFG_ENV=("${AUTH_ENV[@]}") CFG_AUTHZ="Bearer $JWT" ;;
    *) die "unknown configuration $1" ;;
    esac
}

http_status() { # URL [curl args...] -> the status code of a GET
    local url=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$url" || true
}

# Before measuring, on a scratch copy: each configuration is what it claims. off answers without
# a credential; apikey and jwt refuse a request without one (401) and accept theirs (200).
check_configs() {
    local cfg db want_bare path=/v1/accounts/acc00001 bare with
    for cfg in "${CONFIGS[@]}"; do
        config_env "$cfg"
        db=$(fresh_db "check-$cfg")
        start_ledgerd "check-$cfg" "$db" "${CFG_ENV[@]}"
        bare=$(http_status "$URL$path")
        want_bare=401
        [ "$cfg" = off ] && want_bare=200
        with=200
        [ -z "$CFG_AUTHZ" ] || with=$(http_status "$URL$path" -H "Authorization: $CFG_AUTHZ")
        stop_pid "$SERVER_PID" TERM
        rm -f "$db" "$db-wal" "$db-shm"
        if [ "$bare" != "$want_bare" ] || [ "$with" != 200 ]; then
            cat "$WORK/check-$cfg.log" >&2
            die "$cfg: GET $path answered $bare without a credential (want $want_bare), $with with it (want 200)"
        fi
        say "checked $cfg: $bare without a credential, $with with it"
    done
}

# audit_of DB -> "records actors": the allow records of transfer.create this run wrote (every
# one, whatever its outcome), and their distinct actors.
audit_of() {
    "$PY" - "$1" <<'EOF'
import sqlite3, sys
con = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
rows = con.execute("SELECT actor, count(*) FROM audit_records WHERE action = 'transfer.create' "
                   "AND decision = 'allow' GROUP BY actor ORDER BY actor").fetchall()
print(sum(n for _, n in rows), ",".join(a for a, _ in rows) or "-")
EOF
}

# measure WORKLOAD CONFIG ROUND: one measured run of a workload on a new server in one
# configuration; records its numbers.
measure() {
    local wl=$1 cfg=$2 r=$3
    local name="$wl-$cfg-$r" db tag="$cfg$r"
    config_env "$cfg"
    db=$(fresh_db "$name")
    start_ledgerd "$name" "$db" "${CFG_ENV[@]}"
    if [ "$wl" = get ]; then
        # Also fills the JWT cache of every I/O thread and SQLite's page cache.
        run_wrk "$name-warm" "$URL" "$SERVER_PID" "$CONNS" "$WARMUP" get_account.lua "$ACCOUNTS" "$CFG_AUTHZ"
    fi
    quiesce
    if [ "$wl" = get ]; then
        run_wrk "$name" "$URL" "$SERVER_PID" "$CONNS" "$DURATION" get_account.lua "$ACCOUNTS" "$CFG_AUTHZ"
    else
        run_wrk "$name" "$URL" "$SERVER_PID" "$CONNS" "$DURATION" transfer.lua "$tag" "$ACCOUNTS" "$WORK/$name" "$CFG_AUTHZ"
    fi
    stop_pid "$SERVER_PID" TERM

    local rps cpu k
    rps=$(field "$name" rps)
    cpu=$(field "$name" server_cpu)
    record "$wl" "${cfg}_rps" "$r" "$rps"
    record "$wl" "${cfg}_p99_ms" "$r" "$(field "$name" p99_ms)"
    record "$wl" "${cfg}_cpu_us" "$r" "$(awk -v c="$cpu" -v x="$rps" 'BEGIN {if (x > 0) printf "%.2f", 1e4 * c / x}')"
    for k in core0_busy core1_busy server_cpu wrk_cpu; do
        record "$wl" "${cfg}_$k" "$r" "$(field "$name" "$k")"
    done
    if [ "$wl" = get ]; then
        record "$wl" "${cfg}_errors" "$r" "$(($(field "$name" status_errors) + $(field "$name" socket_errors) + $(field "$name" timeouts)))"
    else
        record "$wl" "${cfg}_errors" "$r" "$(($(field "$name" rejected_503) + $(field "$name" other) + $(field "$name" socket_errors) + $(field "$name" timeouts)))"
        local acked in_db missing extra audited actors
        read -r acked in_db missing extra < <(check_lost "$db" "$WORK/$name" "$tag")
        read -r audited actors < <(audit_of "$db")
        record "$wl" "${cfg}_acked" "$r" "$acked"
        record "$wl" "${cfg}_in_db" "$r" "$in_db"
        record "$wl" "${cfg}_missing" "$r" "$missing"
        record "$wl" "${cfg}_audited" "$r" "$audited"
        echo "$actors" >"$WORK/$cfg.actors"
        say "$name: transfers acknowledged $acked, in database $in_db, acknowledged but missing $missing, committed but unacknowledged $extra; audit records $audited (actor $actors)"
    fi
    rm -f "$db" "$db-wal" "$db-shm"
}

# BENCH_PERF=1: one more GET run per configuration, not measured, with `perf record` on the
# server for PERF_SECONDS; prints each one's CPU by library (self time) and the share of the
# server's CPU spent in (under) the functions of a GET and of authentication. DWARF call graphs,
# because the Release build keeps no frame pointers.
PERF_FUNCS="http_access store_account_get http_authorize auth_check store_apikey_get apikey_matches auth_check_jwt sha256_digest jwt_verify"
profile_get() {
    command -v perf >/dev/null || { say "BENCH_PERF=1 but no perf: skipped"; return 0; }
    local cfg db name perf_pid
    for cfg in "${CONFIGS[@]}"; do
        name="perf-$cfg"
        config_env "$cfg"
        db=$(fresh_db "$name")
        start_ledgerd "$name" "$db" "${CFG_ENV[@]}"
        run_wrk "$name-warm" "$URL" "$SERVER_PID" "$CONNS" "$WARMUP" get_account.lua "$ACCOUNTS" "$CFG_AUTHZ"
        say "profiling GET, $cfg"
        perf record -F 999 --call-graph dwarf,16384 -o "$WORK/$name.data" -p "$SERVER_PID" -- \
            sleep "$PERF_SECONDS" >"$WORK/$name.perf.log" 2>&1 &
        perf_pid=$!
        PIDS+=("$perf_pid")
        run_wrk "$name" "$URL" "$SERVER_PID" "$CONNS" $((PERF_SECONDS + 1)) get_account.lua "$ACCOUNTS" "$CFG_AUTHZ"
        wait "$perf_pid" 2>/dev/null || true
        forget_pid "$perf_pid"
        stop_pid "$SERVER_PID" TERM
        rm -f "$db" "$db-wal" "$db-shm"
        [ -s "$WORK/$name.data" ] || { say "perf recorded nothing ($cfg): see $WORK/$name.perf.log"; continue; }
        PERF_OUT+=$'\n'"GET, $cfg ($(field "$name" rps) req/s while recorded). Server CPU by library, self time:"$'\n'
        PERF_OUT+=$(perf report -i "$WORK/$name.data" --stdio --no-children --sort dso 2>/dev/null |
            grep -E '^ +[0-9.]+%' | head -6 || true)
        PERF_OUT+=$'\n'"Share of the server's CPU in each function and its callees:"$'\n'
        # The first (largest) row of each function; .constprop.0 and the like are the same one.
        PERF_OUT+=$(perf report -i "$WORK/$name.data" --stdio --children --sort symbol -g none 2>/dev/null |
            awk -v want="$PERF_FUNCS" '
                BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) ok[w[i]] = 1 }
                $1 ~ /%$/ {
                    for (i = 2; i < NF; i++) {
                        if ($i ~ /^\[[.k]\]$/) {
                            s = $(i + 1)
                            sub(/\.(constprop|isra|part|cold)\..*$/, "", s)
                            if ((s in ok) && !(s in seen)) seen[s] = $1
                            break
                        }
                    }
                }
                END { for (i = 1; i <= n; i++) if (w[i] in seen) printf "  %-18s %7s\n", w[i], seen[w[i]] }' ||
            true)
        PERF_OUT+=$'\n'
    done
}

# ===== main =====
# Only this script's settings reach the servers: no LEDGERD_* or OTEL_* variable of the caller
# (an OTEL_* endpoint would turn tracing on; LEDGERD_ENV=prod would refuse LEDGERD_AUTH=off).
while read -r var; do
    unset "$var"
done < <(compgen -e | grep -E '^(OTEL_|LEDGERD_)' || true)
# The account setup (lib.sh) and `ledgerd apikey` run without authentication; the measured
# servers set LEDGERD_AUTH themselves.
export LEDGERD_ENV=dev LEDGERD_AUTH=off
# shellcheck disable=SC2119 # only the tools every script needs
ensure_tools
ensure_py_cryptography
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ledgerd-auth.XXXXXX")
: >"$WORK/results.tsv"
raise_nofile
build
create_accounts "$WORK/pristine.db"
make_credentials
check_configs

for r in $(seq 1 "$ROUNDS"); do
    # The order rotates (off apikey jwt, apikey jwt off, jwt off apikey ...) so that no
    # configuration always runs first, or right after the same one.
    order=()
    for i in 0 1 2; do
        order+=("${CONFIGS[$(((i + r - 1) % 3))]}")
    done
    for wl in get transfers; do
        for cfg in "${order[@]}"; do
            say "round $r/$ROUNDS: $wl, $cfg"
            measure "$wl" "$cfg" "$r"
        done
    done
done

PERF_OUT=""
[ "${BENCH_PERF:-0}" != 1 ] || profile_get

# ===== the table =====
actors() { cat "$WORK/$1.actors" 2>/dev/null || echo "-"; }
TABLE=$(
    BENCH_DIR="$BENCH_DIR" "$PY" - "$WORK/results.tsv" "$(actors off)" "$(actors apikey)" "$(actors jwt)" <<'EOF'
import statistics, sys
import os, sys
sys.path.insert(0, os.environ["BENCH_DIR"])
from table import met, num, spread, times  # noqa: E402
from collections import defaultdict
CFGS = ("off", "apikey", "jwt")
v = defaultdict(dict)  # (workload, metric) -> {round: value}
for line in open(sys.argv[1]):
    w, m, r, x = line.rstrip("\n").split("\t")
    if x != "":
        v[(w, m)][int(r)] = float(x)
# A | inside a cell, even in a code span, would end the cell (GitHub Flavored Markdown).
actors = {c: a.replace("|", "\\|") for c, a in zip(CFGS, sys.argv[2:5])}
def rounds(w, m):
    d = v[(w, m)]
    return [d[r] for r in sorted(d)]
def med(w, m):
    xs = rounds(w, m)
    return statistics.median(xs) if xs else None
def total(w, m):
    return sum(rounds(w, m))
def ratio(w, c, m):
    # median of the per-round ratios c ÷ off: each round ran them back to back
    a, b = v[(w, c + "_" + m)], v[(w, "off_" + m)]
    rs = [a[r] / b[r] for r in sorted(a) if r in b and b[r]]
    return statistics.median(rs) if rs else None
def diff(w, c, m):
    # median of the per-round differences c − off
    a, b = v[(w, c + "_" + m)], v[(w, "off_" + m)]
    ds = [a[r] - b[r] for r in sorted(a) if r in b]
    return statistics.median(ds) if ds else None
def cell(w, m, unit=""):
    return spread(rounds(w, m), unit)
def pct(x):
    return "—" if x is None else f"{100 * x:.1f}%"
def count(x):
    return f"{x:,.0f}"
rows = []
def row(name, cells):
    rows.append(f"| {name} | " + " | ".join(cells) + " |")
labels = {"get": "1. GET /v1/accounts/{id}", "transfers": "2. POST /v1/transfers"}
for w in ("get", "transfers"):
    L = labels[w]
    row(f"{L}: req/s", [cell(w, c + "_rps") for c in CFGS])
    row(f"{L}: req/s ÷ off", ["—"] + [pct(ratio(w, c, "rps")) for c in CFGS[1:]])
    row(f"{L}: **cost of authentication**, 1 − (req/s ÷ off)",
        ["—"] + [pct(None if ratio(w, c, "rps") is None else 1 - ratio(w, c, "rps")) for c in CFGS[1:]])
    def p99(c):
        s = cell(w, c + "_p99_ms", " ms")
        r = ratio(w, c, "p99_ms")
        return s if c == "off" or r is None else f"{s}; {r:.2f}×"
    row(f"{L}: p99 latency", [p99(c) for c in CFGS])
    def cpu(c):
        s = cell(w, c + "_cpu_us")
        r, d = ratio(w, c, "cpu_us"), diff(w, c, "cpu_us")
        return s if c == "off" or r is None else f"{s}; {100 * (r - 1):+.1f}%, {d:+.1f} µs"
    row(f"{L}: server CPU per request (µs; vs off: % and µs)", [cpu(c) for c in CFGS])
    row(f"{L}: non-2xx answers (incl. socket errors, timeouts), all rounds",
        [count(total(w, c + "_errors")) for c in CFGS])
    if w == "transfers":
        def lost(c):
            return (f"{count(total(w, c + '_acked'))} acked, {count(total(w, c + '_in_db'))} in db, "
                    f"{count(total(w, c + '_missing'))} missing")
        row(f"{L}: nothing lost, acknowledged (2xx) vs in database, all rounds", [lost(c) for c in CFGS])
        row(f"{L}: audit records `transfer.create` (allow) vs transfers stored, all rounds; actor",
            [f"{count(total(w, c + '_audited'))} vs {count(total(w, c + '_in_db'))}; `{actors[c]}`" for c in CFGS])
print("| workload | off | apikey | jwt |")
print("|---|---|---|---|")
print("\n".join(rows))
print()
def busy(w, m):
    x = med(w, m)
    return "—" if x is None else f"{x:.0f}%"
print("CPU during the measured runs, median % of one core: ledgerd (core 0), wrk (core 1), and each")
print("core as a whole; a core busier than its process means other load on the machine.")
print()
print("| run | ledgerd | wrk | core 0 busy | core 1 busy |")
print("|---|---|---|---|---|")
for w in ("get", "transfers"):
    for c in CFGS:
        p = c + "_"
        print(f"| {labels[w]}, {c} | {busy(w, p + 'server_cpu')} | {busy(w, p + 'wrk_cpu')} | "
              f"{busy(w, p + 'core0_busy')} | {busy(w, p + 'core1_busy')} |")
EOF
)

HEADER=$(
    cat <<EOF
## $(date -u +%Y-%m-%dT%H:%M:%SZ) — \`auth $MODE\` (the cost of authentication)

$(report_context)
- pinning: ledgerd on core $SERVER_CPU, wrk on core $CLIENT_CPU (taskset)
- wrk: $WRK_THREADS thread, ${DURATION} s per run, --timeout $WRK_TIMEOUT, $CONNS connections; every run on a new server with a fresh copy of the same $ACCOUNTS-account database; GET (\`get_account.lua\`) after ${WARMUP} s of warm-up, single transfers (\`transfer.lua\`, Idempotency-Key on, durable) without warm-up; \`LEDGERD_LOG_LEVEL=warn\` everywhere
- off: \`LEDGERD_AUTH=off\`, no Authorization header (every request is \`anonymous\`)
- apikey: \`LEDGERD_AUTH=required\`, \`Authorization: Bearer ldk_…\` (an API key with \`$SCOPES\`: an SQLite lookup and an HMAC-SHA256 per request)
- jwt: \`LEDGERD_AUTH=required\`, \`Authorization: Bearer <EdDSA JWT>\` (the same scopes, expires in 10 years: verified once per I/O thread, then a SHA-256 of the token and a cache hit)
- both required servers have the same settings (API key hashing key, JWKS file, issuer, audience); only the credential differs
- every state-changing request gets an audit record in its commit in all three configurations (actor \`anonymous\` when off), so the transfers rows compare authentication alone
- rounds: $ROUNDS, each running off, apikey and jwt back to back in an order rotating by round; medians reported, ratios and differences are medians of per-round ones
EOF
)

if [ -n "$PERF_OUT" ]; then
    TABLE="$TABLE

perf, on the server during one more GET run per configuration, not measured (${PERF_SECONDS} s of \`perf record -F 999 --call-graph dwarf\`, which slows the server):

\`\`\`
$PERF_OUT
\`\`\`"
fi

publish "$HEADER

$TABLE"
say "done in $(($(date +%s) - T0)) s"
