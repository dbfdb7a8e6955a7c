#!/usr/bin/env bash
# bench/obs.sh [quick|full]: the cost of ledgerd's observability, measured against itself in the
# same run: the same Release binary, on fresh copies of the same database, with access logging
# and tracing off, then on. See bench/README.md ("The cost of observability").
#
#   off  LEDGERD_LOG_LEVEL=warn (no access lines), no OTEL_* variables (no tracing)
#   on   LEDGERD_LOG_LEVEL=info (one JSON access line per request) to stdout and a log file, and
#        every request traced (always_on) and exported to a live OTLP/HTTP receiver
# Metrics have no off switch: in both configurations /metrics is scraped once per second during
# every measured run, as Prometheus would.
#
#   quick  1 round, 3 s runs (for development); < 1 min
#   full   3 rounds, 10 s runs; < 5 min
#
# The server runs pinned to core 0; wrk, the OTLP receiver and the scraper to core 1. Each
# workload runs interleaved (off, on, off, on ...) and the table reports medians; ratios are
# medians of per-round ratios. The table is printed and appended to bench/RESULTS.md. All
# traffic goes to 127.0.0.1; every process started here is stopped on exit.
#
# Environment: BENCH_BUILD_DIR (default ${TMPDIR:-/tmp}/ledgerd-bench-build, shared with run.sh
# and reused between runs), BENCH_ROUNDS and BENCH_DURATION (seconds per wrk run) override the
# mode's, BENCH_KEEP=1 keeps the temporary directory, BENCH_NO_RESULTS=1 does not append to
# RESULTS.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
ACCOUNTS=10000
CONNS=64 # both workloads, as scenarios 1 and 2 of run.sh
WRK_THREADS=1
WRK_TIMEOUT=10s
SERVER_CPU=0
CLIENT_CPU=1
SCRAPE_SECONDS=1       # the /metrics scrape interval during the load
DRAIN_POLL_SECONDS=0.3 # after the load, /metrics is polled this often until the exporter
DRAIN_POLLS_MAX=50     # caught up, at most this many times
BSP_DELAY_MS=200       # OTEL_BSP_SCHEDULE_DELAY
BSP_QUEUE_SPANS=16384  # OTEL_BSP_MAX_QUEUE_SIZE (ledgerd's ceiling)
# One export request is in flight at a time, so the exporter sends at most a batch per round
# trip: with the default batch of 512 spans it falls behind GET here and drops spans.
BSP_BATCH_SPANS=2048   # OTEL_BSP_MAX_EXPORT_BATCH_SIZE
BUILD_DIR=${BENCH_BUILD_DIR:-${TMPDIR:-/tmp}/ledgerd-bench-build}
LOG_TAG=obs
WRK_CPU=1 # run_wrk also reports wrk's own CPU (wrk_cpu)
# shellcheck source-path=SCRIPTDIR/.. source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
bench_mode "obs.sh" "${1:-quick}" # sets MODE, ROUNDS, DURATION, WARMUP

# ===== helpers of this benchmark alone (the shared ones are in lib.sh) =====
# The OTLP/HTTP receiver (JSON encoding): answers 200 {} to every POST /v1/traces on keep-alive
# HTTP/1.1 connections and counts export requests, body bytes and spans; GET /stats answers
# "requests bytes spans". Spans are counted without parsing, as occurrences of a key that
# ledgerd's encoder writes exactly once per span (links carry traceId and spanId only). Runs on
# the client core. Sets RECEIVER_PID and RECEIVER_URL.
start_receiver() {
    local ready=$WORK/receiver.port port=""
    taskset -c "$CLIENT_CPU" "$PY" - "$ready" >"$WORK/receiver.log" 2>&1 <<'EOF' &
import http.server, os, sys, threading
ready = sys.argv[1]
SPAN_KEY = b'"startTimeUnixNano"'
lock = threading.Lock()
requests = body_bytes = spans = 0

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the exporter expects

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        global requests, body_bytes, spans
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            self.reply(411, b"{}")
            return
        body = self.rfile.read(int(length))
        if self.path != "/v1/traces":
            self.reply(404, b"{}")
            return
        n = body.count(SPAN_KEY)
        with lock:
            requests += 1
            body_bytes += len(body)
            spans += n
        self.reply(200, b"{}")

    def do_GET(self):
        if self.path != "/stats":
            self.reply(404, b"{}")
            return
        with lock:
            text = "%d %d %d\n" % (requests, body_bytes, spans)
        self.reply(200, text.encode(), "text/plain")

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(ready + ".tmp", "w") as f:
    f.write("%d\n" % server.server_address[1])
os.rename(ready + ".tmp", ready)
server.serve_forever()
EOF
    RECEIVER_PID=$!
    PIDS+=("$RECEIVER_PID")
    for _ in $(seq 1 100); do
        [ -s "$ready" ] && port=$(cat "$ready") && break
        kill -0 "$RECEIVER_PID" 2>/dev/null || { cat "$WORK/receiver.log" >&2; die "the OTLP receiver exited"; }
        sleep 0.05
    done
    [ -n "$port" ] || die "the OTLP receiver did not start"
    RECEIVER_URL="http://127.0.0.1:$port"
    curl -fsS "$RECEIVER_URL/stats" >/dev/null || die "the OTLP receiver does not answer"
}

receiver_stats() { # -> "requests bytes spans" received so far
    curl -fsS --max-time 5 "$RECEIVER_URL/stats" || die "the OTLP receiver does not answer"
}

# start_scraper URL OUT: GET URL/metrics every SCRAPE_SECONDS on the client core, as Prometheus
# would, the first half an interval in (under load); one "seconds bytes http_code" line per
# scrape in OUT. SIGTERM stops it between scrapes, never in the middle of one. Sets SCRAPER_PID.
start_scraper() {
    local url=$1 out=$2
    (
        # shellcheck disable=SC2317 # reached through the trap
        stop() {
            kill "$!" 2>/dev/null || true
            exit 0
        }
        trap stop TERM
        taskset -pc "$CLIENT_CPU" "$BASHPID" >/dev/null 2>&1 || true
        sleep 0.5 &
        wait "$!"
        while :; do
            curl -s -o /dev/null --max-time 5 -w '%{time_total} %{size_download} %{http_code}\n' \
                "$url/metrics" || true
            sleep "$SCRAPE_SECONDS" &
            wait "$!"
        done
    ) >"$out" &
    SCRAPER_PID=$!
    PIDS+=("$SCRAPER_PID")
}

# drain_spans URL OUT -> seconds until the exporter caught up: scrapes /metrics every
# DRAIN_POLL_SECONDS (longer than OTEL_BSP_SCHEDULE_DELAY) until ledgerd_spans_exported_total
# grows by at most 1 (the span of the scrape itself) between two scrapes, for at most
# DRAIN_POLLS_MAX scrapes; leaves the last /metrics body in OUT.
drain_spans() {
    local url=$1 out=$2 prev="" cur t0
    t0=$(date +%s.%N)
    for _ in $(seq 1 "$DRAIN_POLLS_MAX"); do
        curl -fsS --max-time 5 "$url/metrics" -o "$out" || die "GET /metrics failed ($url)"
        cur=$(metric "$out" ledgerd_spans_exported_total)
        [ -n "$prev" ] && [ $((cur - prev)) -le 1 ] && break
        prev=$cur
        sleep "$DRAIN_POLL_SECONDS"
    done
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'
}

metric() { # FILE NAME -> the value of an unlabelled sample in a /metrics body (0 when absent)
    awk -v m="$2" '$1 == m {v = $2} END {print v + 0}' "$1"
}

# measure WORKLOAD CONFIG ROUND: one measured run of a workload on a new server in one
# configuration, with the scraper running; records its numbers.
measure() {
    local wl=$1 cfg=$2 r=$3
    local name="$wl-$cfg-$r" db tag="$cfg$r" logs=$WORK/$wl-$cfg-$r-logs env=()
    db=$(fresh_db "$name")
    if [ "$cfg" = on ]; then
        mkdir -p "$logs"
        # shellcheck disable=SC2054 # the comma is part of the value
        env=(LEDGERD_LOG_LEVEL=info LEDGERD_LOG_SINKS=stdout,file LEDGERD_LOG_FILE="$logs/ledgerd.log"
            OTEL_EXPORTER_OTLP_ENDPOINT="$RECEIVER_URL" OTEL_TRACES_SAMPLER=always_on
            OTEL_BSP_SCHEDULE_DELAY="$BSP_DELAY_MS" OTEL_BSP_MAX_QUEUE_SIZE="$BSP_QUEUE_SPANS"
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE="$BSP_BATCH_SPANS")
    fi
    start_ledgerd "$name" "$db" "${env[@]}"
    local answered=0 rcv0 rcv1 t0 t1
    if [ "$wl" = get ]; then
        run_wrk "$name-warm" "$URL" "$SERVER_PID" "$CONNS" "$WARMUP" get_account.lua "$ACCOUNTS"
        answered=$(field "$name-warm" requests)
    fi
    quiesce
    rcv0=$(proc_ticks "$RECEIVER_PID")
    t0=$(date +%s.%N)
    start_scraper "$URL" "$WORK/$name.scrape"
    if [ "$wl" = get ]; then
        run_wrk "$name" "$URL" "$SERVER_PID" "$CONNS" "$DURATION" get_account.lua "$ACCOUNTS"
    else
        run_wrk "$name" "$URL" "$SERVER_PID" "$CONNS" "$DURATION" transfer.lua "$tag" "$ACCOUNTS" "$WORK/$name"
    fi
    stop_pid "$SCRAPER_PID"
    t1=$(date +%s.%N)
    rcv1=$(proc_ticks "$RECEIVER_PID")
    answered=$((answered + $(field "$name" requests)))
    record "$wl" "${cfg}_drain_s" "$r" "$(drain_spans "$URL" "$WORK/$name.metrics")"
    stop_pid "$SERVER_PID" TERM

    local rps cpu
    rps=$(field "$name" rps)
    cpu=$(field "$name" server_cpu)
    record "$wl" "${cfg}_rps" "$r" "$rps"
    record "$wl" "${cfg}_p99_ms" "$r" "$(field "$name" p99_ms)"
    record "$wl" "${cfg}_cpu_us" "$r" "$(awk -v c="$cpu" -v x="$rps" 'BEGIN {if (x > 0) printf "%.2f", 1e4 * c / x}')"
    local k
    for k in core0_busy core1_busy server_cpu wrk_cpu; do
        record "$wl" "${cfg}_$k" "$r" "$(field "$name" "$k")"
    done
    record "$wl" "${cfg}_receiver_cpu" "$r" "$(share_pct $((rcv1 - rcv0)) "$t0" "$t1" "$(getconf CLK_TCK)")"
    if [ "$wl" = get ]; then
        record "$wl" "${cfg}_errors" "$r" "$(($(field "$name" status_errors) + $(field "$name" socket_errors) + $(field "$name" timeouts)))"
    else
        record "$wl" "${cfg}_errors" "$r" "$(($(field "$name" rejected_503) + $(field "$name" other) + $(field "$name" socket_errors) + $(field "$name" timeouts)))"
        local acked in_db missing extra
        read -r acked in_db missing extra < <(check_lost "$db" "$WORK/$name" "$tag")
        record "$wl" "${cfg}_acked" "$r" "$acked"
        record "$wl" "${cfg}_in_db" "$r" "$in_db"
        record "$wl" "${cfg}_missing" "$r" "$missing"
        record "$wl" "${cfg}_extra" "$r" "$extra"
        say "$name: transfers acknowledged $acked, in database $in_db, acknowledged but missing $missing, committed but unacknowledged $extra"
    fi
    local s
    while read -r s _ _; do
        record "$wl" "${cfg}_scrape_ms" "$r" "$(awk -v s="$s" 'BEGIN {printf "%.3f", 1000 * s}')"
    done < <(awk '$3 == 200' "$WORK/$name.scrape")
    while read -r _ s _; do
        record "$wl" "${cfg}_scrape_bytes" "$r" "$s"
    done < <(awk '$3 == 200' "$WORK/$name.scrape")
    record "$wl" "${cfg}_scrapes" "$r" "$(wc -l <"$WORK/$name.scrape")"
    record "$wl" "${cfg}_scrape_failed" "$r" "$(awk '$3 != 200' "$WORK/$name.scrape" | wc -l)"

    if [ "$cfg" = on ]; then
        local route='"route":"/v1/accounts/{id}"' req0 bytes0 spans0 req1 bytes1 spans1
        [ "$wl" = get ] || route='"route":"/v1/transfers"'
        record "$wl" answered "$r" "$answered"
        record "$wl" lines_file "$r" "$(cat "$logs"/* | grep -F '"body":"request"' | grep -cF "$route" || true)"
        record "$wl" lines_stdout "$r" "$(grep -F '"body":"request"' "$WORK/$name.log" | grep -cF "$route" || true)"
        record "$wl" log_dropped "$r" "$(metric "$WORK/$name.metrics" ledgerd_log_lines_dropped_total)"
        record "$wl" spans_exported "$r" "$(metric "$WORK/$name.metrics" ledgerd_spans_exported_total)"
        record "$wl" spans_dropped "$r" "$(metric "$WORK/$name.metrics" ledgerd_spans_dropped_total)"
        # The receiver is idle between runs: the difference is this server's, shutdown included.
        read -r req0 bytes0 spans0 <<<"$RCV_LAST"
        RCV_LAST=$(receiver_stats)
        read -r req1 bytes1 spans1 <<<"$RCV_LAST"
        record "$wl" export_requests "$r" "$((req1 - req0))"
        record "$wl" export_bytes "$r" "$((bytes1 - bytes0))"
        record "$wl" spans_received "$r" "$((spans1 - spans0))"
    fi
    # The on server's logs take about 200 MiB per 10 s of GET: gone unless BENCH_KEEP=1.
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$logs" "$WORK/$name.log"
    rm -f "$db" "$db-wal" "$db-shm"
}

# ===== main =====
# Nothing from the caller's environment may turn tracing or logging on in "off" (or change "on").
while read -r var; do
    unset "$var"
done < <(compgen -e | grep -E '^(OTEL_|LEDGERD_LOG_)' || true)
# shellcheck disable=SC2119 # only the tools every script needs
ensure_tools
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ledgerd-obs.XXXXXX")
: >"$WORK/results.tsv"
raise_nofile
build
create_accounts "$WORK/pristine.db"
start_receiver
RCV_LAST=$(receiver_stats)

for r in $(seq 1 "$ROUNDS"); do
    for wl in get transfers; do
        for cfg in off on; do
            say "round $r/$ROUNDS: $wl, observability $cfg"
            measure "$wl" "$cfg" "$r"
        done
    done
done
receiver_stats >"$WORK/receiver.stats"
stop_pid "$RECEIVER_PID" TERM

# ===== the table =====
TABLE=$(
    BENCH_DIR="$BENCH_DIR" "$PY" - "$WORK/results.tsv" <<'EOF'
import statistics, sys
import os, sys
sys.path.insert(0, os.environ["BENCH_DIR"])
from table import met, num, spread, times  # noqa: E402
from collections import defaultdict
v = defaultdict(list)  # (workload, metric) -> [(round, value)]
for line in open(sys.argv[1]):
    w, m, r, x = line.rstrip("\n").split("\t")
    if x != "":
        v[(w, m)].append((int(r), float(x)))
def rounds(w, m):
    # one value per round (the last when there are several, e.g. not for scrapes)
    d = dict(v[(w, m)])
    return [d[r] for r in sorted(d)]
def samples(w, m):
    return [x for _, x in v[(w, m)]]
def med(w, m):
    xs = rounds(w, m)
    return statistics.median(xs) if xs else None
def total(w, m):
    return sum(rounds(w, m))
def ratio(w, m):
    # median of the per-round ratios on ÷ off: each pair ran back to back
    d_on, d_off = dict(v[(w, "on_" + m)]), dict(v[(w, "off_" + m)])
    rs = [d_on[r] / d_off[r] for r in sorted(d_on) if r in d_off and d_off[r]]
    return statistics.median(rs) if rs else None
def pctile(xs, p):
    # nearest rank
    if not xs:
        return None
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, -(-len(xs) * p // 100) - 1))]
def cell(w, m, unit=""):
    return spread(rounds(w, m), unit)
def pct(x):
    return "—" if x is None else f"{100 * x:.1f}%"
rows = []
def row(name, off, on, rat, target, ok):
    rows.append(f"| {name} | {off} | {on} | {rat} | {target} | {met(ok)} |")

def count(x):
    return f"{x:,.0f}"
labels = {"get": "1. GET /v1/accounts/{id}", "transfers": "2. POST /v1/transfers"}
for w in ("get", "transfers"):
    L = labels[w]
    rr = ratio(w, "rps")
    row(f"{L}: req/s", cell(w, "off_rps"), cell(w, "on_rps"), pct(rr), "—", None)
    cost = None if rr is None else 1 - rr
    row(f"{L}: **cost of observability**, 1 − on ÷ off req/s", "—", "—", pct(cost), "≤ 10%",
        None if cost is None else cost <= 0.10)
    row(f"{L}: p99 latency", cell(w, "off_p99_ms", " ms"), cell(w, "on_p99_ms", " ms"),
        times(ratio(w, "p99_ms")), "—", None)
    cr = ratio(w, "cpu_us")
    row(f"{L}: server CPU per request (µs)", cell(w, "off_cpu_us"), cell(w, "on_cpu_us"),
        "—" if cr is None else f"{times(cr)} ({100 * (cr - 1):+.0f}%)", "—", None)
    eo, en = total(w, "off_errors"), total(w, "on_errors")
    row(f"{L}: non-2xx answers (incl. socket errors, timeouts), all rounds", count(eo), count(en),
        "—", "0", eo == 0 and en == 0)
    if w == "transfers":
        def lost(c):
            return (f"{count(total(w, c + '_acked'))} acked, {count(total(w, c + '_in_db'))} in db, "
                    f"{count(total(w, c + '_missing'))} missing")
        miss = total(w, "off_missing") + total(w, "on_missing")
        row(f"{L}: nothing lost, acknowledged (2xx) vs in database, all rounds", lost("off"),
            lost("on"), "—", "0 missing", miss == 0)
    ex, rc, dr = total(w, "spans_exported"), total(w, "spans_received"), total(w, "spans_dropped")
    ans = total(w, "answered")
    row(f"{L}: spans exported (`ledgerd_spans_exported_total`, last scrape) / received by the "
        "receiver / dropped (`ledgerd_spans_dropped_total`), all rounds", "—",
        f"{count(ex)} / {count(rc)} / {count(dr)}", f"{rc / ans:.2f} spans per request" if ans else "—",
        "0 dropped, received ≥ exported", dr == 0 and rc >= ex)
    er, eb = total(w, "export_requests"), total(w, "export_bytes")
    row(f"{L}: OTLP export requests, MiB received (all rounds); exporter caught up after the load in",
        "—", f"{count(er)} requests, {eb / 1048576:,.1f} MiB; {cell(w, 'on_drain_s', ' s')}",
        f"{eb / rc:,.0f} bytes per span" if rc else "—", "—", None)
    lf, ls, ld = total(w, "lines_file"), total(w, "lines_stdout"), total(w, "log_dropped")
    row(f"{L}: access lines in the log file / on stdout vs requests answered to wrk (warm-up "
        "included), all rounds; lines dropped (`ledgerd_log_lines_dropped_total`)", "—",
        f"{count(lf)} / {count(ls)} vs {count(ans)}; {count(ld)} dropped",
        f"{lf - ans:+,.0f} / {ls - ans:+,.0f}",
        "≥ answered (+ ≤ 64 per wrk run, answers it stopped reading), 0 dropped",
        lf >= ans and ls >= ans and ld == 0)
    def lat(c):
        xs = samples(w, c + "_scrape_ms")
        if not xs:
            return "—"
        return f"{num(statistics.median(xs), ' ms')} / {num(pctile(xs, 99), ' ms')} ({len(xs)} scrapes)"
    row(f"{L}: `GET /metrics` under load, median / p99 latency", lat("off"), lat("on"), "—", "—", None)
    def size(c):
        xs = samples(w, c + "_scrape_bytes")
        size = "—" if not xs else f"{statistics.median(xs):,.0f} B"
        return f"{size}, {count(total(w, c + '_scrape_failed'))} failed"
    failed = total(w, "off_scrape_failed") + total(w, "on_scrape_failed")
    row(f"{L}: `/metrics` body size (median), failed scrapes", size("off"), size("on"), "—",
        "0 failed", failed == 0)
print("| workload | off | on | on ÷ off (or per span, per request) | target | met? |")
print("|---|---|---|---|---|---|")
print("\n".join(rows))
print()
def busy(w, m):
    x = med(w, m)
    return "—" if x is None else f"{x:.0f}%"
print("CPU during the measured runs, median % of one core: ledgerd, wrk and the OTLP receiver")
print("(both on core 1), and each core as a whole; a core busier than its processes means other")
print("load on the machine.")
print()
print("| run | ledgerd | wrk | receiver | core 0 busy | core 1 busy |")
print("|---|---|---|---|---|---|")
for w in ("get", "transfers"):
    for c in ("off", "on"):
        p = c + "_"
        print(f"| {labels[w]}, {c} | {busy(w, p + 'server_cpu')} | {busy(w, p + 'wrk_cpu')} | "
              f"{busy(w, p + 'receiver_cpu')} | {busy(w, p + 'core0_busy')} | {busy(w, p + 'core1_busy')} |")
EOF
)

HEADER=$(
    cat <<EOF
## $(date -u +%Y-%m-%dT%H:%M:%SZ) — \`obs $MODE\` (the cost of observability)

$(report_context)
- pinning: ledgerd on core $SERVER_CPU; wrk, the OTLP receiver and the /metrics scraper on core $CLIENT_CPU (taskset)
- wrk: $WRK_THREADS thread, ${DURATION} s per run, --timeout $WRK_TIMEOUT, $CONNS connections; every run on a new server with a fresh copy of the same $ACCOUNTS-account database; GET (\`get_account.lua\`) after ${WARMUP} s of warm-up, single transfers (\`transfer.lua\`, Idempotency-Key on, durable) without warm-up
- off: \`LEDGERD_LOG_LEVEL=warn\` (no access lines), no \`OTEL_*\` variables (no tracing)
- on: \`LEDGERD_LOG_LEVEL=info\` (one JSON access line per request), \`LEDGERD_LOG_SINKS=stdout,file\` (both files on this disk); \`OTEL_TRACES_SAMPLER=always_on\`, OTLP/HTTP JSON to a live receiver (Python, answers 200 \`{}\`), \`OTEL_BSP_SCHEDULE_DELAY=$BSP_DELAY_MS\`, \`OTEL_BSP_MAX_QUEUE_SIZE=$BSP_QUEUE_SPANS\`, \`OTEL_BSP_MAX_EXPORT_BATCH_SIZE=$BSP_BATCH_SPANS\`
- metrics are on in both (they have no off switch): \`GET /metrics\` every ${SCRAPE_SECONDS} s during every measured run, in both configurations
- rounds: $ROUNDS, interleaved (off, on) per workload; medians reported, ratios are medians of per-round ratios
EOF
)

publish "$HEADER

$TABLE"
say "done in $(($(date +%s) - T0)) s"
