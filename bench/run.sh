#!/usr/bin/env bash
# bench/run.sh [quick|full]: ledgerd's benchmark, every number beside a reference measured in the
# same run on the same machine. See bench/README.md for what each scenario measures.
#
#   quick  1 round, short runs, memory and overload scenarios skipped (idle RSS only); < 1 min
#   full   3 rounds, 10 s runs, every scenario; < 10 min
#
# The server (and nginx) run pinned to core 0, wrk to core 1. Pairs run interleaved (ours,
# reference, ours, reference ...) and the table reports medians. The table is printed and
# appended to bench/RESULTS.md. All traffic goes to 127.0.0.1; every process started here is
# stopped on exit.
#
# Environment: BENCH_BUILD_DIR (default ${TMPDIR:-/tmp}/ledgerd-bench-build, reused between
# runs), BENCH_ROUNDS and BENCH_DURATION (seconds per wrk run) override the mode's, BENCH_KEEP=1 keeps the temporary directory, BENCH_PERF=1 records `perf` on the server
# during the first single-transfer run and prints its top symbols, BENCH_NO_RESULTS=1 does not
# append to RESULTS.md.
set -euo pipefail

MODE=${1:-quick}
case "$MODE" in
quick)
    ROUNDS=1 DURATION=3 FSYNC_SECONDS=2 CEILING_SECONDS=2 WARMUP=1
    ;;
full)
    ROUNDS=3 DURATION=10 FSYNC_SECONDS=3 CEILING_SECONDS=3 WARMUP=2
    ;;
*)
    echo "usage: bash bench/run.sh [quick|full]" >&2
    exit 2
    ;;
esac
ROUNDS=${BENCH_ROUNDS:-$ROUNDS}
DURATION=${BENCH_DURATION:-$DURATION}

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
ACCOUNTS=10000
CONNS=64           # scenario 2 (and 1)
OVERLOAD_CONNS=128 # scenario 6: 2x scenario 2
OVERLOAD_QUEUE=64
BATCH_SIZE=8190
BATCH_CONNS=4
WRK_THREADS=1
WRK_TIMEOUT=10s
SERVER_CPU=0
CLIENT_CPU=1
BUILD_DIR=${BENCH_BUILD_DIR:-${TMPDIR:-/tmp}/ledgerd-bench-build}
LOG_TAG=bench
WRK_CPU=1 # run_wrk also reports wrk's own CPU (wrk_cpu)
# shellcheck source-path=SCRIPTDIR/.. source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

# ===== helpers of the benchmark alone (the shared ones are in lib.sh) =====
# The storage ceiling is linked against SQLite only, never against ledgerd's library.
build_ceiling() {
    # shellcheck disable=SC2046
    gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra "$BENCH_DIR/ceiling.c" -o "$WORK/ceiling" \
        $(pkg-config --cflags --libs sqlite3) || die "ceiling.c does not compile"
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Samples VmRSS of a pid every 0.2 s into a file until stopped; sets SAMPLER_PID.
start_rss_sampler() {
    local pid=$1 out=$2
    (while kill -0 "$pid" 2>/dev/null; do
        awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true
        sleep 0.2
    done) >"$out" &
    SAMPLER_PID=$!
    PIDS+=("$SAMPLER_PID")
}
max_rss_mib() { sort -n "$1" | tail -1 | awk '{printf "%.1f", $1 / 1024}'; }

record_cpu() { # SCENARIO PREFIX ROUND RUNNAME
    local k
    for k in core0_busy core1_busy server_cpu wrk_cpu; do
        record "$1" "$2$k" "$3" "$(field "$4" "$k")"
    done
}

start_nginx() {
    local body port prefix=$WORK/nginx user_line=""
    mkdir -p "$prefix"
    body=$(curl -fsS "$URL/v1/accounts/acc00001")
    port=$(free_port)
    [ "$(id -u)" = 0 ] && user_line="user root;"
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" -e "s|@USER_LINE@|$user_line|" \
        -e "s|@BODY@|$body|" "$BENCH_DIR/nginx.conf.in" >"$prefix/nginx.conf"
    taskset -c "$SERVER_CPU" nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" \
        >"$prefix/stdout.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    NGINX_URL="http://127.0.0.1:$port"
    for _ in $(seq 1 100); do
        curl -fsS "$NGINX_URL/v1/accounts/acc00001" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    cat "$prefix/error.log" >&2 || true
    die "nginx did not start"
}

# ===== scenarios =====
scenario_get() { # round
    local r=$1
    run_wrk "get-ours-$r" "$READ_URL" "$READ_PID" "$CONNS" "$DURATION" get_account.lua "$ACCOUNTS"
    run_wrk "get-nginx-$r" "$NGINX_URL" "$NGINX_PID" "$CONNS" "$DURATION" get_account.lua "$ACCOUNTS"
    local side
    for side in ours nginx; do
        record get "${side}_rps" "$r" "$(field "get-$side-$r" rps)"
        record get "${side}_p99_ms" "$r" "$(field "get-$side-$r" p99_ms)"
        record get "${side}_errors" "$r" "$(($(field "get-$side-$r" status_errors) + $(field "get-$side-$r" socket_errors) + $(field "get-$side-$r" timeouts)))"
        record_cpu get "${side}_" "$r" "get-$side-$r"
    done
}

scenario_transfers() { # round
    local r=$1
    local db tag="s$r" name="xfer-$r"
    db=$(fresh_db "$name")
    start_ledgerd "$name" "$db"
    if [ "$r" = 1 ]; then
        sleep 1
        record memory idle_rss_mib 1 "$(rss_mib "$SERVER_PID")"
    fi
    start_rss_sampler "$SERVER_PID" "$WORK/$name.rss"
    local perf_pid=""
    if [ "${BENCH_PERF:-0}" = 1 ] && [ "$r" = 1 ] && command -v perf >/dev/null; then
        perf record -g -o "$WORK/perf.data" -p "$SERVER_PID" -- sleep $((DURATION > 6 ? 5 : DURATION - 1)) \
            >"$WORK/perf.log" 2>&1 &
        perf_pid=$!
        PIDS+=("$perf_pid")
    fi
    quiesce
    run_wrk "$name" "$URL" "$SERVER_PID" "$CONNS" "$DURATION" transfer.lua "$tag" "$ACCOUNTS" "$WORK/$name"
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" 2>/dev/null || true
        forget_pid "$perf_pid"
    fi
    stop_pid "$SAMPLER_PID"
    stop_pid "$SERVER_PID" TERM
    record transfers rate "$r" "$(field "$name" rps)"
    record transfers p99_ms "$r" "$(field "$name" p99_ms)"
    record transfers acked "$r" "$(field "$name" acked)"
    record transfers non2xx "$r" "$(($(field "$name" rejected_503) + $(field "$name" other) + $(field "$name" socket_errors) + $(field "$name" timeouts)))"
    record_cpu transfers "" "$r" "$name"
    record memory load_rss_mib "$r" "$(max_rss_mib "$WORK/$name.rss")"
    local acked in_db missing extra
    read -r acked in_db missing extra < <(check_lost "$db" "$WORK/$name" "$tag")
    record lost acked "$r" "$acked"
    record lost in_db "$r" "$in_db"
    record lost missing "$r" "$missing"
    record lost extra "$r" "$extra"
    say "round $r: transfers acknowledged $acked, in database $in_db, acknowledged but missing $missing, committed but unacknowledged $extra"
    rm -f "$db" "$db-wal" "$db-shm"

    quiesce
    "$WORK/ceiling" fsync "$WORK/fsync.tmp" "$FSYNC_SECONDS" >"$WORK/fsync-$r.out"
    record transfers fsync_rate "$r" "$(sed 's/.*fsyncs_per_s=\([0-9]*\).*/\1/' "$WORK/fsync-$r.out")"
    local mode
    for mode in A B; do
        quiesce
        "$WORK/ceiling" ledger "$WORK/ceiling.db" "$REPO/migrations/sqlite" "$mode" 64 \
            "$CEILING_SECONDS" >"$WORK/ceiling-$mode-64-$r.out"
        record ceiling "${mode}_64" "$r" "$(sed 's/.*transfers_per_s=\([0-9]*\).*/\1/' "$WORK/ceiling-$mode-64-$r.out")"
    done
    rm -f "$WORK"/ceiling.db*
}

scenario_batch() { # round
    local r=$1
    local db tag="b$r" name="batch-$r"
    db=$(fresh_db "$name")
    start_ledgerd "$name" "$db"
    quiesce
    run_wrk "$name" "$URL" "$SERVER_PID" "$BATCH_CONNS" "$DURATION" batch.lua "$tag" "$ACCOUNTS" "$BATCH_SIZE"
    stop_pid "$SERVER_PID" TERM
    local secs created
    secs=$(field "$name" seconds)
    created=$(field "$name" created)
    record batch rate "$r" "$(awk -v c="$created" -v s="$secs" 'BEGIN {printf "%.0f", c / s}')"
    record batch requests_rate "$r" "$(field "$name" rps)"
    record batch p99_ms "$r" "$(field "$name" p99_ms)"
    record batch non2xx "$r" "$(($(field "$name" failed) + $(field "$name" socket_errors) + $(field "$name" timeouts)))"
    record batch not_created "$r" "$(($(field "$name" ok) * BATCH_SIZE - created))"
    record_cpu batch "" "$r" "$name"
    rm -f "$db" "$db-wal" "$db-shm"
    local mode
    for mode in A B; do
        quiesce
        "$WORK/ceiling" ledger "$WORK/ceiling.db" "$REPO/migrations/sqlite" "$mode" "$BATCH_SIZE" \
            "$CEILING_SECONDS" >"$WORK/ceiling-$mode-$BATCH_SIZE-$r.out"
        record ceiling "${mode}_$BATCH_SIZE" "$r" "$(sed 's/.*transfers_per_s=\([0-9]*\).*/\1/' "$WORK/ceiling-$mode-$BATCH_SIZE-$r.out")"
    done
    rm -f "$WORK"/ceiling.db*
}

scenario_connections() { # RSS with 1,000 idle keep-alive connections on the read server
    local before
    before=$(rss_mib "$READ_PID")
    "$PY" - "$READ_URL" 1000 >"$WORK/conns.out" 2>&1 <<'EOF' &
import socket, sys, time
url, n = sys.argv[1], int(sys.argv[2])
host, port = url.split("//")[1].split(":")
socks, ok = [], 0
for _ in range(n):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /livez HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n")
    socks.append(s)
for s in socks:
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    ok += data.startswith(b"HTTP/1.1 200")
print("open", ok, flush=True)
time.sleep(30)
EOF
    local ppid=$!
    PIDS+=("$ppid")
    for _ in $(seq 1 200); do
        grep -q '^open' "$WORK/conns.out" 2>/dev/null && break
        kill -0 "$ppid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q '^open' "$WORK/conns.out" || { cat "$WORK/conns.out" >&2; die "could not open 1,000 connections"; }
    sleep 0.5
    record memory conns_rss_mib 1 "$(rss_mib "$READ_PID")"
    record memory conns_open 1 "$(awk '/^open/ {print $2}' "$WORK/conns.out")"
    record memory conns_before_mib 1 "$before"
    stop_pid "$ppid" TERM
}

scenario_overload() { # round
    local r=$1
    local db tag="o$r" name="overload-$r"
    db=$(fresh_db "$name")
    start_ledgerd "$name" "$db" LEDGERD_QUEUE_DEPTH_MAX="$OVERLOAD_QUEUE"
    start_rss_sampler "$SERVER_PID" "$WORK/$name.rss"
    quiesce
    run_wrk "$name" "$URL" "$SERVER_PID" "$OVERLOAD_CONNS" "$DURATION" transfer.lua "$tag" "$ACCOUNTS" "$WORK/$name"
    stop_pid "$SAMPLER_PID"
    stop_pid "$SERVER_PID" TERM
    local acked r503 other
    acked=$(field "$name" acked)
    r503=$(field "$name" rejected_503)
    other=$(field "$name" other)
    record overload share_503 "$r" "$(awk -v a="$acked" -v b="$r503" -v o="$other" 'BEGIN {t = a + b + o; printf "%.2f", (t > 0 ? 100 * b / t : 0)}')"
    record overload acked_rate "$r" "$(awk -v a="$acked" -v s="$(field "$name" seconds)" 'BEGIN {printf "%.0f", a / s}')"
    record overload p99_admitted_ms "$r" "$(field "$name" p99_admitted_ub_ms)"
    record overload other "$r" "$((other + $(field "$name" socket_errors) + $(field "$name" timeouts)))"
    record overload rss_mib "$r" "$(max_rss_mib "$WORK/$name.rss")"
    local in_db missing extra
    read -r acked in_db missing extra < <(check_lost "$db" "$WORK/$name" "$tag")
    record overload missing "$r" "$missing"
    rm -f "$db" "$db-wal" "$db-shm"
}

# ===== main =====
ensure_tools nginx=nginx
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ledgerd-bench.XXXXXX")
: >"$WORK/results.tsv"
raise_nofile
build
build_ceiling
create_accounts "$WORK/pristine.db"

READ_DB=$(fresh_db read)
start_ledgerd read "$READ_DB"
READ_PID=$SERVER_PID
READ_URL=$URL
start_nginx
say "warm-up"
run_wrk warm-ours "$READ_URL" "$READ_PID" "$CONNS" "$WARMUP" get_account.lua "$ACCOUNTS"
run_wrk warm-nginx "$NGINX_URL" "$NGINX_PID" "$CONNS" "$WARMUP" get_account.lua "$ACCOUNTS"

for r in $(seq 1 "$ROUNDS"); do
    say "round $r/$ROUNDS: GET ours vs nginx"
    scenario_get "$r"
    say "round $r/$ROUNDS: single transfers, fsync rate, storage ceiling (batch 64)"
    scenario_transfers "$r"
    say "round $r/$ROUNDS: batches of $BATCH_SIZE, storage ceiling (batch $BATCH_SIZE)"
    scenario_batch "$r"
    if [ "$MODE" = full ]; then
        say "round $r/$ROUNDS: overload ($OVERLOAD_CONNS connections, queue $OVERLOAD_QUEUE)"
        scenario_overload "$r"
    fi
done
if [ "$MODE" = full ]; then
    say "1,000 keep-alive connections"
    scenario_connections
fi
stop_pid "$NGINX_PID" QUIT
stop_pid "$READ_PID" TERM

PERF_TOP=""
if [ -s "$WORK/perf.data" ]; then
    PERF_TOP=$(perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -10 || true)
fi

# ===== the table =====
TABLE=$(
    BENCH_DIR="$BENCH_DIR" "$PY" - "$WORK/results.tsv" <<'EOF'
import statistics, sys
import os, sys
sys.path.insert(0, os.environ["BENCH_DIR"])
from table import met, num, spread, times  # noqa: E402
from collections import defaultdict
v = defaultdict(list)
for line in open(sys.argv[1]):
    s, m, r, x = line.rstrip("\n").split("\t")
    if x != "":
        v[(s, m, int(r))] = float(x)
def rounds(s, m):
    return [v[k] for k in sorted(k for k in v if k[0] == s and k[1] == m)]
def med(s, m):
    xs = rounds(s, m)
    return statistics.median(xs) if xs else None
def ratio(s1, m1, s2, m2):
    # median of the per-round ratios: each pair ran back to back
    a, b = rounds(s1, m1), rounds(s2, m2)
    rs = [x / y for x, y in zip(a, b) if y]
    return statistics.median(rs) if rs else None
def cell(s, m, unit=""):
    return spread(rounds(s, m), unit)
def pct(x):
    return "—" if x is None else f"{100 * x:.0f}%"
rows = []
def row(name, ours, ref, rat, target, ok):
    rows.append(f"| {name} | {ours} | {ref} | {rat} | {target} | {met(ok)} |")

g_o, g_n = med("get", "ours_rps"), med("get", "nginx_rps")
g_r = ratio("get", "ours_rps", "get", "nginx_rps")
row("1. GET /v1/accounts/{id}, req/s (ours vs nginx `return 200`)", cell("get", "ours_rps"), cell("get", "nginx_rps"), pct(g_r), "≥ 60% of nginx", None if g_r is None else g_r >= 0.6)
row("1. GET p99 latency", cell("get", "ours_p99_ms", " ms"), cell("get", "nginx_p99_ms", " ms"), times(ratio("get", "ours_p99_ms", "get", "nginx_p99_ms")), "—", None)
# Per second of server CPU: fair when one side was held back by wrk rather than by its core.
def per_cpu(side):
    return [x / (c / 100) for x, c in zip(rounds("get", side + "_rps"), rounds("get", side + "_server_cpu")) if c]
po, pn = per_cpu("ours"), per_cpu("nginx")
pr = [x / y for x, y in zip(po, pn) if y]
row("1. GET req per second of server CPU (corrects for a client-bound side)",
    num(statistics.median(po)) if po else "—", num(statistics.median(pn)) if pn else "—",
    pct(statistics.median(pr) if pr else None), "—", None)
row("1. GET errors (non-2xx, socket, timeout)", cell("get", "ours_errors"), cell("get", "nginx_errors"), "—", "0", med("get", "ours_errors") == 0)
t = med("transfers", "rate")
row("2. POST /v1/transfers, durable transfers/s (64 conns)", cell("transfers", "rate"), "—", "—", "≥ 20,000/s", None if t is None else t >= 20000)
p = med("transfers", "p99_ms")
row("2. POST /v1/transfers p99 latency", cell("transfers", "p99_ms", " ms"), "—", "—", "≤ 20 ms", None if p is None else p <= 20)
fr = ratio("transfers", "rate", "transfers", "fsync_rate")
row("2. transfers/s ÷ single-fsync rate of this disk", cell("transfers", "rate"), cell("transfers", "fsync_rate", " fsync/s"), times(fr), "≥ 3×", None if fr is None else fr >= 3)
row("2. transfers non-2xx answers (incl. socket errors, timeouts)", cell("transfers", "non2xx"), "—", "—", "0", med("transfers", "non2xx") == 0)
ack, ind, miss, extra = (sum(rounds("lost", m)) for m in ("acked", "in_db", "missing", "extra"))
row("2. nothing lost: acknowledged (2xx) vs in database, all rounds", f"{ack:,.0f} acked", f"{ind:,.0f} in db", f"{miss:,.0f} missing, {extra:,.0f} unacked extra", "0 missing", miss == 0)
b = med("batch", "rate")
row(f"3. POST /v1/transfers/batch (8190/request), transfers/s", cell("batch", "rate"), "—", "—", "≥ 200,000/s", None if b is None else b >= 200000)
row("3. batch requests/s, p99 latency", f"{cell('batch', 'requests_rate')} req/s, p99 {cell('batch', 'p99_ms', ' ms')}", "—", "—", "—", None)
bn = med("batch", "non2xx")
row("3. batch non-2xx answers / items not created", f"{num(bn)} / {cell('batch', 'not_created')}", "—", "—", "0", None if bn is None else (bn == 0 and med("batch", "not_created") == 0))
for mode, label in (("A", "A: 2 row updates per transfer"), ("B", "B: 1 update per touched account per batch")):
    row(f"4. single transfers ÷ storage ceiling {label}, batch 64", cell("transfers", "rate"), cell("ceiling", f"{mode}_64", "/s"), times(ratio("transfers", "rate", "ceiling", f"{mode}_64")), "—", None)
for mode, label in (("A", "A"), ("B", "B")):
    row(f"4. batch transfers ÷ storage ceiling {label}, batch 8190", cell("batch", "rate"), cell("ceiling", f"{mode}_8190", "/s"), times(ratio("batch", "rate", "ceiling", f"{mode}_8190")), "—", None)
def rss_row(name, m, s="memory"):
    x = med(s, m)
    row(name, num(x, " MiB"), "—", "—", "≤ 100 MiB", None if x is None else x <= 100)
rss_row("5. RSS idle (10,000 accounts, after start)", "idle_rss_mib")
if med("memory", "conns_rss_mib") is not None:
    rss_row(f"5. RSS with {med('memory', 'conns_open'):.0f} open keep-alive connections", "conns_rss_mib")
rss_row("5. RSS under scenario 2 load (peak of 0.2 s samples)", "load_rss_mib")
if med("overload", "share_503") is not None:
    row("6. overload (128 conns, queue 64): share of 503 queue_full", cell("overload", "share_503", "%"), "—", "—", "—", None)
    row("6. overload: admitted transfers/s, p99 of admitted (upper bound)", f"{cell('overload', 'acked_rate')}/s, p99 ≤ {cell('overload', 'p99_admitted_ms', ' ms')}", "—", "—", "p99 ≤ 20 ms", med("overload", "p99_admitted_ms") <= 20)
    rss_row("6. overload: RSS (peak)", "rss_mib", "overload")
    om = sum(rounds("overload", "missing")) + sum(rounds("overload", "other"))
    row("6. overload: acknowledged but missing + non-503 errors", num(om), "—", "—", "0", om == 0)
print("| scenario | ours | reference | ratio | target | met? |")
print("|---|---|---|---|---|---|")
print("\n".join(rows))
print()
def busy(s, m):
    x = med(s, m)
    return "—" if x is None else f"{x:.0f}%"
print("CPU during the runs, median % of one core: the server process (ledgerd or nginx), wrk, and")
print("each core as a whole; a core busier than its process means other load on the machine.")
print()
print("| run | server process | wrk | core 0 busy | core 1 busy |")
print("|---|---|---|---|---|")
for label, s, pre in (("GET ledgerd", "get", "ours_"), ("GET nginx", "get", "nginx_"),
                      ("single transfers", "transfers", ""), ("batch", "batch", "")):
    print(f"| {label} | {busy(s, pre + 'server_cpu')} | {busy(s, pre + 'wrk_cpu')} | "
          f"{busy(s, pre + 'core0_busy')} | {busy(s, pre + 'core1_busy')} |")
EOF
)

HEADER=$(
    cat <<EOF
## $(date -u +%Y-%m-%dT%H:%M:%SZ) — \`$MODE\`

$(report_context)
- pinning: ledgerd and nginx (1 worker) on core $SERVER_CPU, wrk on core $CLIENT_CPU (taskset)
- wrk: $WRK_THREADS thread, ${DURATION} s per run, --timeout $WRK_TIMEOUT; $CONNS connections (GET, single transfers), $BATCH_CONNS (batch), $OVERLOAD_CONNS (overload)
- rounds: $ROUNDS, each pair interleaved (ours, reference); medians reported, ratios are medians of per-round ratios
- fsync reference: ${FSYNC_SECONDS} s of 4 KiB write + fsync; storage ceiling: ${CEILING_SECONDS} s per mode (bench/ceiling.c, SQLite $(sqlite3 --version | awk '{print $1}'), WAL + synchronous=FULL)
EOF
)

OUTPUT="$HEADER

$TABLE"
if [ -n "$PERF_TOP" ]; then
    OUTPUT="$OUTPUT

perf, server during the first single-transfer run (top 10 symbols by self time; recording slowed that run by a few %):
\`\`\`
$PERF_TOP
\`\`\`"
fi
publish "$OUTPUT"
say "done in $(($(date +%s) - T0)) s"
