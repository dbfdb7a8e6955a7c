#!/usr/bin/env bash
# bench/soak.sh: ledgerd's memory soak. Drives the single-transfer load of scenario 2 of
# bench/run.sh (transfer.lua, 64 connections, a unique id and Idempotency-Key per request) for
# BENCH_SOAK_SECONDS (default 300) and samples the server's VmRSS every second. The first 60 s
# (20 % of the run when that is shorter) are warm-up; RSS is "flat" when, over the rest,
# (max - min) / (RSS at the end of warm-up) <= 5 %. See bench/SOAK.md.
#
# The server runs pinned to core 0, wrk to core 1. The table is printed and appended to
# bench/RESULTS.md. All traffic goes to 127.0.0.1; every process started here is stopped on
# exit, also on Ctrl-C. Exits non-zero only when the harness itself fails.
#
# Environment: BENCH_SOAK_SECONDS (length of the load, >= 10), BENCH_BUILD_DIR (default
# ${TMPDIR:-/tmp}/ledgerd-bench-build, shared with run.sh and reused between runs), BENCH_KEEP=1
# keeps the temporary directory, BENCH_NO_RESULTS=1 does not append to RESULTS.md.
set -euo pipefail

SOAK_SECONDS=${BENCH_SOAK_SECONDS:-300}
case "$SOAK_SECONDS" in
'' | *[!0-9]*)
    echo "BENCH_SOAK_SECONDS must be a whole number of seconds, got '$SOAK_SECONDS'" >&2
    exit 2
    ;;
esac
if [ "$SOAK_SECONDS" -lt 10 ]; then
    echo "BENCH_SOAK_SECONDS must be at least 10" >&2
    exit 2
fi
# Warm-up: 60 s, or 20 % of the run when that is shorter.
WARMUP=$((SOAK_SECONDS / 5 < 60 ? SOAK_SECONDS / 5 : 60))
SERIES_STEP=30 # seconds between the points of the printed RSS curve

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
ACCOUNTS=10000
CONNS=64 # scenario 2
WRK_THREADS=1
WRK_TIMEOUT=10s
SERVER_CPU=0
CLIENT_CPU=1
TAG=soak
BUILD_DIR=${BENCH_BUILD_DIR:-${TMPDIR:-/tmp}/ledgerd-bench-build}
LOG_TAG=soak
# shellcheck source-path=SCRIPTDIR/.. source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

# ===== helpers of the soak alone (the shared ones are in lib.sh) =====
now_us() { # wall clock in microseconds, without forking
    local t=${EPOCHREALTIME//[!0-9]/}
    echo "$t"
}

# start_rss_sampler PID START_US OUT IDS_PREFIX: every whole second after START_US (the start
# of the load) writes "t_s vmrss_kib rssanon_kib rssfile_kib" to OUT; every SERIES_STEP
# seconds also "#acked t_s count" with the number of ids wrk has written so far (the ids files
# are buffered by Lua, so a few hundred short). Runs on the client core, forks nothing per
# sample but the line count. Sets SAMPLER_PID.
start_rss_sampler() {
    local pid=$1 start_us=$2 out=$3 ids=$4 tick=$WORK/tick
    mkfifo "$tick"
    (
        exec 3<>"$tick"
        i=0
        while kill -0 "$pid" 2>/dev/null; do
            wait_us=$((start_us + i * 1000000 - $(now_us)))
            if [ "$wait_us" -gt 0 ]; then
                # read -t on a fifo nobody writes to: a sleep without a child process
                read -r -t "$(printf '%d.%06d' $((wait_us / 1000000)) $((wait_us % 1000000)))" -u 3 _ || true
            fi
            vm="" anon="" file=""
            while read -r key value _; do
                case "$key" in
                VmRSS:) vm=$value ;;
                RssAnon:) anon=$value ;;
                RssFile:) file=$value ;;
                esac
            done 2>/dev/null <"/proc/$pid/status" || true
            [ -n "$vm" ] && echo "$i $vm ${anon:-0} ${file:-0}"
            if [ $((i % SERIES_STEP)) = 0 ]; then
                # shellcheck disable=SC2086 # the glob is meant to expand
                echo "#acked $i $(cat "$ids"-*.ids 2>/dev/null | wc -l)"
            fi
            i=$((i + 1))
        done
    ) >"$out" &
    SAMPLER_PID=$!
    PIDS+=("$SAMPLER_PID")
    taskset -pc "$CLIENT_CPU" "$SAMPLER_PID" >/dev/null 2>&1 || true
}

# ===== main =====
# shellcheck disable=SC2119 # only the tools every script needs
ensure_tools
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ledgerd-soak.XXXXXX")
raise_nofile
build
DB=$WORK/soak.db
create_accounts "$DB"

start_ledgerd soak "$DB"
sleep 1
IDLE_KIB=$(rss_kib "$SERVER_PID")
sync
sleep 0.2

say "soak: $SOAK_SECONDS s of single transfers, $CONNS connections (warm-up $WARMUP s)"
LOAD_START_US=$(now_us)
start_rss_sampler "$SERVER_PID" "$LOAD_START_US" "$WORK/rss.samples" "$WORK/soak"
run_wrk soak "$URL" "$SERVER_PID" "$CONNS" "$SOAK_SECONDS" transfer.lua "$TAG" "$ACCOUNTS" "$WORK/soak"
stop_pid "$SAMPLER_PID"
kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$WORK/soak.log" >&2; die "ledgerd exited during the soak"; }
sleep 5
AFTER_KIB=$(rss_kib "$SERVER_PID")
stop_pid "$SERVER_PID" TERM
[ -s "$WORK/rss.samples" ] || die "no RSS samples"

read -r ACKED IN_DB MISSING EXTRA < <(check_lost "$DB" "$WORK/soak" "$TAG") || die "the lost-transfer check failed"
say "transfers acknowledged $ACKED, in database $IN_DB, acknowledged but missing $MISSING, committed but unacknowledged $EXTRA"

# ===== the table =====
TABLE=$(
    "$PY" - "$WORK/rss.samples" "$WARMUP" "$SERIES_STEP" "$IDLE_KIB" "$AFTER_KIB" \
        "$ACKED" "$IN_DB" "$MISSING" "$EXTRA" "$(cat "$WORK/soak.bench")" <<'EOF'
import sys
samples_path, warmup, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
idle, after = (int(x) / 1024 for x in sys.argv[4:6])
acked, in_db, missing, extra = (int(x) for x in sys.argv[6:10])
bench = dict(kv.split("=", 1) for kv in sys.argv[10].split()[1:])
rss, counts = {}, {}  # t_s -> (vmrss, anon, file) MiB; t_s -> ids written so far
for line in open(samples_path):
    f = line.split()
    if f[0] == "#acked":
        counts[int(f[1])] = int(f[2])
    elif len(f) == 4:
        rss[int(f[0])] = tuple(int(x) / 1024 for x in f[1:])
ts = sorted(rss)
# End of warm-up: the first sample at or after it; "flat" is judged on the samples from there on.
t_warm = next((t for t in ts if t >= warmup), ts[-1])
after_warm = [rss[t][0] for t in ts if t >= t_warm]
warm = rss[t_warm][0]
lo, hi, last = min(after_warm), max(after_warm), after_warm[-1]
drift = 100 * (hi - lo) / warm if warm else float("inf")
peak = max(rss[t][0] for t in ts)
secs = float(bench["seconds"])
non2xx = (int(bench["rejected_503"]) + int(bench["other"]) + int(bench["socket_errors"])
          + int(bench["timeouts"]))
def mib(x):
    return f"{x:.1f} MiB"
def met(ok):
    return "yes" if ok else "**no**"
rows = [
    ("RSS idle, after start (10,000 accounts)", mib(idle), "≤ 100 MiB", met(idle <= 100)),
    (f"RSS at the end of warm-up (t = {t_warm} s)", mib(warm), "—", "—"),
    (f"RSS after warm-up: min ({len(after_warm)} samples, 1/s)", mib(lo), "—", "—"),
    ("RSS after warm-up: max", mib(hi), "≤ 100 MiB", met(hi <= 100)),
    (f"RSS after warm-up: last (t = {ts[-1]} s)", mib(last), "—", "—"),
    ("RSS drift after warm-up: (max − min) ÷ RSS at end of warm-up", f"{drift:.1f} %", "≤ 5 % (flat)", met(drift <= 5)),
    ("RSS peak under load, warm-up included", mib(peak), "≤ 100 MiB", met(peak <= 100)),
    ("RSS 5 s after the load stopped", mib(after), "—", "—"),
    ("transfers/s, acknowledged (2xx) over the whole run", f"{acked / secs:,.0f}", "—", "—"),
    ("latency p50 / p99 / max", f"{float(bench['p50_ms']):.1f} / {float(bench['p99_ms']):.1f} / {float(bench['max_ms']):.1f} ms", "—", "—"),
    ("non-2xx answers (incl. socket errors, timeouts)", f"{non2xx:,}", "0", met(non2xx == 0)),
    ("nothing lost: acknowledged vs in database", f"{acked:,} acked, {in_db:,} in db, {missing:,} missing, {extra:,} unacked extra", "0 missing", met(missing == 0)),
    ("CPU, % of one core: ledgerd / core 0 busy / core 1 busy (wrk)", f"{bench['server_cpu']} / {bench['core0_busy']} / {bench['core1_busy']}", "—", "—"),
]
print("| metric | value | target | met? |")
print("|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
print()
print(f"RSS every {step} s of the load (VmRSS = anonymous + file-backed), and acknowledged")
print(f"transfers/s over the {step} s before each point:")
print()
print("| t (s) | VmRSS (MiB) | anon (MiB) | file (MiB) | transfers/s |")
print("|---|---|---|---|---|")
points = [t for t in ts if t % step == 0]
if ts[-1] not in points:
    points.append(ts[-1])
prev_t, prev_n = None, None
for t in points:
    n = counts.get(t)
    if t == ts[-1] and t not in counts:
        n = acked  # the final count comes from wrk's report
    rate = "—"
    if prev_t is not None and n is not None and prev_n is not None and t > prev_t:
        rate = f"{(n - prev_n) / (t - prev_t):,.0f}"
    note = " (end of warm-up)" if t == t_warm else ""
    v, a, fi = rss[t]
    print(f"| {t}{note} | {v:.1f} | {a:.1f} | {fi:.1f} | {rate} |")
    if n is not None:
        prev_t, prev_n = t, n
if t_warm not in points:
    print()
    print(f"End of warm-up at t = {t_warm} s: {warm:.1f} MiB.")
EOF
)

HEADER=$(
    cat <<EOF
## $(date -u +%Y-%m-%dT%H:%M:%SZ) — \`soak\` (memory, ${SOAK_SECONDS} s)

$(report_context)
- pinning: ledgerd on core $SERVER_CPU, wrk on core $CLIENT_CPU (taskset)
- load: scenario 2 (\`transfer.lua\`, one transfer per request, Idempotency-Key on), $CONNS connections, wrk $WRK_THREADS thread, --timeout $WRK_TIMEOUT, ${SOAK_SECONDS} s; fresh database with $ACCOUNTS accounts
- RSS: VmRSS of ledgerd from /proc/PID/status every 1 s; warm-up ${WARMUP} s; flat = (max − min) after warm-up ≤ 5 % of the RSS at the end of warm-up
EOF
)

OUTPUT="$HEADER

$TABLE"
publish "$OUTPUT"
say "done in $(($(date +%s) - T0)) s"
