# shellcheck shell=bash
# bench/lib.sh: the helpers shared by bench/run.sh (the benchmark) and bench/soak.sh (the memory
# soak). Sourced, never run: `. "$BENCH_DIR/lib.sh"`. Sourcing it defines the functions below,
# sets T0 (the start time for the log), empties PIDS and WORK, and installs the traps that stop
# every recorded process on exit, on Ctrl-C and on SIGTERM.
#
# The caller sets LOG_TAG before sourcing it, WORK after sourcing it (sourcing empties WORK), and
# the others before calling the functions that read them:
#   LOG_TAG      the log prefix: say prints "[LOG_TAG   Ns] message"     say, die (all)
#   WORK         the temporary directory, removed on exit unless         every function that
#                BENCH_KEEP=1; "" until the caller has created it        writes a file
#   BENCH_DIR    this directory (wrk scripts, RESULTS.md)                run_wrk, create_accounts, publish
#   REPO         the repository root                                     build, report_context
#   BUILD_DIR    the CMake build directory                               build, report_context
#   SERVER_CPU   the core of the server under test (taskset)             start_ledgerd, run_wrk
#   CLIENT_CPU   the core of wrk                                         run_wrk, create_accounts
#   WRK_THREADS  wrk's threads                                           run_wrk
#   WRK_TIMEOUT  wrk's --timeout                                         run_wrk, create_accounts
#   ACCOUNTS     how many accounts to create                             create_accounts
#   WRK_CPU      optional; 1: run_wrk also measures wrk's own CPU        run_wrk
#                (wrk then runs under an sh that reads it); otherwise
#                taskset execs wrk, so the recorded pid is wrk's own
# The functions set PY (ensure_tools), LEDGERD (build), SERVER_PID and URL (start_ledgerd), and
# append every process they start in the background to PIDS, so that the exit trap stops it.
# From the environment they read BENCH_KEEP (cleanup) and BENCH_NO_RESULTS (publish).

T0=$(date +%s)

say() { printf '[%s %3ds] %s\n' "$LOG_TAG" "$(($(date +%s) - T0))" "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# ===== processes: everything started here is recorded and stopped on exit =====
PIDS=()
WORK=""
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            say "kept $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

stop_pid() { # pid [signal]
    local pid=$1 sig=${2:-TERM}
    kill -"$sig" "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

# ===== tools =====
# ensure_tools [COMMAND=DEBIAN_PACKAGE ...]: checks for the tools every script needs and the ones
# given, installs the missing ones when running as root with apt-get, else dies. Sets PY.
ensure_tools() {
    local missing=() cmd extra
    local -A pkg_of=([wrk]=wrk [taskset]=util-linux [sqlite3]=sqlite3 [ss]=iproute2
        [cmake]=cmake [gcc]=gcc [pkg-config]=pkg-config [curl]=curl)
    for extra in "$@"; do
        pkg_of[${extra%%=*}]=${extra#*=}
    done
    for cmd in "${!pkg_of[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_of[$cmd]}")
    done
    pkg-config --exists sqlite3 2>/dev/null || missing+=(libsqlite3-dev)
    [ -x /usr/bin/python3 ] || command -v python3 >/dev/null 2>&1 || missing+=(python3)
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            say "installing: ${missing[*]}"
            apt-get update -qq >/dev/null
            # Debian's policy-rc.d (where present) keeps a packaged service (nginx) from
            # starting; these scripts never use one, only the binaries.
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${missing[@]}" >/dev/null
        else
            die "missing: ${missing[*]} (install these Debian packages, e.g. as root: apt-get install ${missing[*]})"
        fi
    fi
    PY=/usr/bin/python3
    [ -x "$PY" ] || PY=$(command -v python3)
}

# Builds the ledgerd binary (Release) in BUILD_DIR; sets LEDGERD.
build() {
    say "building ledgerd (Release) in $BUILD_DIR"
    cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >"$WORK/cmake.log" 2>&1 ||
        die "cmake configure failed, see $WORK/cmake.log (BENCH_KEEP=1 keeps it)"
    cmake --build "$BUILD_DIR" -j "$(nproc)" --target ledgerd >>"$WORK/cmake.log" 2>&1 ||
        { tail -30 "$WORK/cmake.log" >&2; die "build failed"; }
    LEDGERD="$BUILD_DIR/ledgerd"
}

# Raises the open-file limit for wrk's and the server's connections, as far as allowed.
raise_nofile() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# bench_mode SCRIPT MODE: the two modes of the A/B benchmarks (obs.sh, auth.sh): quick, 1 round
# of 3 s for trying a change; full, 3 rounds of 10 s. Sets MODE, ROUNDS, DURATION (seconds per wrk
# run) and WARMUP; BENCH_ROUNDS and BENCH_DURATION override. Any other mode exits 2.
# shellcheck disable=SC2034 # MODE, ROUNDS, DURATION, WARMUP are the caller's
bench_mode() {
    MODE=$2
    case "$MODE" in
    quick) ROUNDS=1 DURATION=3 WARMUP=1 ;;
    full) ROUNDS=3 DURATION=10 WARMUP=2 ;;
    *)
        echo "usage: bash bench/$1 [quick|full]" >&2
        exit 2
        ;;
    esac
    ROUNDS=${BENCH_ROUNDS:-$ROUNDS}
    DURATION=${BENCH_DURATION:-$DURATION}
}

# ===== ledgerd =====
# start_ledgerd NAME DBFILE [VAR=value ...]: starts `ledgerd serve` on core 0, on a free port
# (read from the listening socket of that pid), and waits for /livez. Sets SERVER_PID, URL.
# Without credentials (LEDGERD_AUTH=off, in the dev environment) unless the VAR=value pairs say
# otherwise: the benchmarks measure the ledger; bench/auth.sh measures authentication.
start_ledgerd() {
    local name=$1 db=$2 port=""
    shift 2
    env LEDGERD_DB="sqlite://$db" LEDGERD_LISTEN=127.0.0.1:0 LEDGERD_LOG_LEVEL=warn \
        LEDGERD_ENV=dev LEDGERD_AUTH=off "$@" \
        taskset -c "$SERVER_CPU" "$LEDGERD" serve >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 1 100); do
        port=$(ss -Htlnp 2>/dev/null | grep "pid=$SERVER_PID," | awk '{print $4}' |
            sed 's/.*://' | head -1 || true)
        [ -n "$port" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "ledgerd exited"; }
        sleep 0.05
    done
    [ -n "$port" ] || die "ledgerd did not listen"
    URL="http://127.0.0.1:$port"
    for _ in $(seq 1 100); do
        curl -fsS "$URL/livez" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "ledgerd at $URL did not answer /livez"
}

rss_kib() { # pid -> VmRSS in KiB
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

rss_mib() { # pid -> VmRSS in MiB, one decimal
    rss_kib "$1" | awk '{printf "%.1f", $1 / 1024}'
}

# ===== shared by the benchmarks' own scenarios =====
# record SCENARIO METRIC ROUND VALUE: one measurement for the table ($WORK/results.tsv).
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$WORK/results.tsv"; }

fresh_db() { # NAME -> path of a fresh copy of the pristine database ($WORK/pristine.db)
    cp "$WORK/pristine.db" "$WORK/$1.db"
    echo "$WORK/$1.db"
}

# Flushes dirty pages of earlier runs (deleted databases and logs included) so they do not land
# on the next measurement's fsyncs.
quiesce() {
    sync
    sleep 0.2
}

# ===== wrk =====
cpu_ticks() { # cpuN -> "busy total"
    awk -v c="$1" '$1 == c {b = $2 + $3 + $4 + $7 + $8 + $9; t = b + $5 + $6; print b, t}' /proc/stat
}

# CPU ticks used so far by a pid and its live children (nginx's worker is the master's child).
proc_ticks() {
    local total=0 p t
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}

# busy_pct "BUSY0 TOTAL0" "BUSY1 TOTAL1" -> percent of the core busy between two cpu_ticks
busy_pct() { echo "$1 $2" | awk '{d = $4 - $2; printf "%.0f", (d > 0 ? 100 * ($3 - $1) / d : 0)}'; }

# share_pct TICKS T0 T1 HZ -> TICKS in percent of one core over the wall time T0..T1 (seconds)
share_pct() { awk -v t="$1" -v a="$2" -v b="$3" -v hz="$4" 'BEGIN {printf "%.0f", 100 * t / hz / (b - a)}'; }

# run_wrk OUTNAME URL SERVER_PID CONNS SECONDS SCRIPT [script args...]: wrk on core 1. Its BENCH
# line is left in $WORK/OUTNAME.bench (wrk's report in OUTNAME.out), extended with the CPU used
# during the run, in percent of one core: by the server process (server_cpu), by anything on
# core 0 / core 1 (core0_busy, core1_busy) and, with WRK_CPU=1, by wrk (wrk_cpu). A core busier
# than its process shows other load on the machine.
run_wrk() {
    local name=$1 url=$2 spid=$3 conns=$4 secs=$5 script=$6
    shift 6
    local s0 s1 e0 e1 sp ep t0 t1 hz
    local wrk=(wrk -t"$WRK_THREADS" -c"$conns" -d"${secs}s" --timeout "$WRK_TIMEOUT"
        --latency -s "$BENCH_DIR/$script" "$url" -- "$@")
    hz=$(getconf CLK_TCK)
    s0=$(cpu_ticks "cpu$SERVER_CPU")
    s1=$(cpu_ticks "cpu$CLIENT_CPU")
    sp=$(proc_ticks "$spid")
    t0=$(date +%s.%N)
    if [ "${WRK_CPU:-0}" = 1 ]; then
        # sh waits for wrk, so its own cutime/cstime (fields 16, 17) are wrk's CPU time.
        # shellcheck disable=SC2016 # expanded by sh, not here
        taskset -c "$CLIENT_CPU" sh -c '"$@"; s=$?; awk "{print \"WRKCPU\", \$16 + \$17}" /proc/$$/stat; exit $s' \
            sh "${wrk[@]}" >"$WORK/$name.out" 2>&1 &
    else
        taskset -c "$CLIENT_CPU" "${wrk[@]}" >"$WORK/$name.out" 2>&1 &
    fi
    local wpid=$!
    PIDS+=("$wpid")
    wait "$wpid" || { cat "$WORK/$name.out" >&2; die "wrk failed ($name)"; }
    forget_pid "$wpid"
    t1=$(date +%s.%N)
    ep=$(proc_ticks "$spid")
    e0=$(cpu_ticks "cpu$SERVER_CPU")
    e1=$(cpu_ticks "cpu$CLIENT_CPU")
    local line wt
    line=$(grep '^BENCH ' "$WORK/$name.out" | tail -1) || { cat "$WORK/$name.out" >&2; die "no BENCH line ($name)"; }
    line="$line core0_busy=$(busy_pct "$s0" "$e0") core1_busy=$(busy_pct "$s1" "$e1") server_cpu=$(share_pct $((ep - sp)) "$t0" "$t1" "$hz")"
    if [ "${WRK_CPU:-0}" = 1 ]; then
        wt=$(awk '/^WRKCPU/ {print $2}' "$WORK/$name.out")
        line="$line wrk_cpu=$(share_pct "${wt:-0}" "$t0" "$t1" "$hz")"
    fi
    echo "$line" >"$WORK/$name.bench"
}

# field NAME KEY -> value of key=value in the BENCH line of run NAME
field() { tr ' ' '\n' <"$WORK/$1.bench" | awk -F= -v k="$2" '$1 == k {print $2}'; }

# ===== setup =====
# Creates $ACCOUNTS accounts through the server at $URL (accounts.lua, 32 connections from the
# client core); its report ("created failed") is left in $WORK/accounts.done. Dies when the
# accounts were not all answered.
wrk_create_accounts() {
    local done_file=$WORK/accounts.done
    taskset -c "$CLIENT_CPU" wrk -t1 -c32 -d120s --timeout "$WRK_TIMEOUT" \
        -s "$BENCH_DIR/accounts.lua" "$URL" -- "$ACCOUNTS" "$done_file" >"$WORK/accounts.out" 2>&1 &
    local wpid=$!
    PIDS+=("$wpid")
    for _ in $(seq 1 1200); do
        [ -s "$done_file" ] && break
        kill -0 "$wpid" 2>/dev/null || break
        sleep 0.1
    done
    stop_pid "$wpid" INT
    [ -s "$done_file" ] || { cat "$WORK/accounts.out" >&2; die "accounts were not all answered"; }
}

create_accounts() { # DB: migrates DB and creates the accounts in it
    local db=$1
    say "creating $ACCOUNTS accounts"
    LEDGERD_DB="sqlite://$db" "$LEDGERD" migrate up >"$WORK/migrate.log" 2>&1 ||
        { cat "$WORK/migrate.log" >&2; die "migrate up failed"; }
    start_ledgerd setup "$db"
    local created failed in_db
    wrk_create_accounts
    read -r created failed <"$WORK/accounts.done"
    stop_pid "$SERVER_PID" TERM
    in_db=$(sqlite3 "$db" 'SELECT count(*) FROM accounts')
    if [ "$in_db" != "$ACCOUNTS" ] || [ "$failed" != 0 ]; then
        die "account setup: $created created, $failed failed, $in_db in the database"
    fi
    sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null
    say "accounts: $created created, $in_db in the database"
}

# ===== checks =====
# check_lost DB IDS_PREFIX TAG -> "acked in_db missing extra": every acknowledged id must be in
# the database; extra = committed but not acknowledged to wrk (answers cut off when wrk stopped).
check_lost() {
    "$PY" - "$1" "$2" "$3" <<'EOF'
import glob, sqlite3, sys
db, prefix, tag = sys.argv[1:4]
acked = set()
for path in glob.glob(prefix + "-*.ids"):
    with open(path) as f:
        acked.update(line.strip() for line in f if line.strip())
con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
stored = {r[0] for r in con.execute("SELECT id FROM transfers WHERE id LIKE ?", (tag + "-%",))}
print(len(acked), len(stored), len(acked - stored), len(stored - acked))
EOF
}

# ===== the report =====
# report_context -> the two lines of a report's header that say what ran where: the commit of
# REPO ("(+ uncommitted changes)" when tracked files differ), the build, the CPU and the kernel.
report_context() {
    local commit cpu
    commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        commit="$commit (+ uncommitted changes)"
    fi
    cpu=$(lscpu | awk -F: '/^Model name/ {gsub(/^ +/, "", $2); print $2; exit}')
    echo "- commit: $commit; build: Release ($(basename "$BUILD_DIR"))"
    echo "- CPU: $cpu; cores: $(nproc); kernel: $(uname -r)"
}

# publish OUTPUT: prints OUTPUT and appends it to bench/RESULTS.md unless BENCH_NO_RESULTS=1.
publish() {
    echo
    echo "$1"
    if [ "${BENCH_NO_RESULTS:-0}" != 1 ]; then
        # shellcheck disable=SC2016 # the backquotes are markdown
        [ -f "$BENCH_DIR/RESULTS.md" ] || printf '# ledgerd benchmark results\n\nAppended by `bash bench/run.sh [quick|full]`; see README.md for how to read them.\n' >"$BENCH_DIR/RESULTS.md"
        printf '\n%s\n' "$1" >>"$BENCH_DIR/RESULTS.md"
    fi
}
