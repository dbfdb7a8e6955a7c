#!/usr/bin/env bash
# bench/pg.sh [quick|full]: ledgerd on PostgreSQL against the ledger users build directly in
# PostgreSQL (bench/pgledger.sql: tables and plpgsql functions, driven by pgbench), both on the
# same throwaway cluster (scripts/pg.sh, fsync=on), each in its own database. See bench/README.md
# ("ledgerd on PostgreSQL vs a SQL ledger").
#
#   quick  1 round, 3 s runs (for development); < 1 min
#   full   3 rounds, 10 s runs, then one run per LEDGERD_DB_WRITERS value (2, 4, 8) and one
#          unmeasured run under `perf record`; < 6 min
#
# The database side (ledgerd and PostgreSQL) runs pinned to core 0, the load generators (wrk,
# pgbench) to core 1. Every run starts on a fresh copy (CREATE DATABASE ... TEMPLATE) of a
# pristine database holding 10,000 accounts, after a CHECKPOINT. Pairs run interleaved (ours,
# reference, ours, reference ...); the table reports medians, and ratios are medians of the
# per-round ratios. It is printed and appended to bench/RESULTS.md. All traffic goes to
# 127.0.0.1; every process started here, and the cluster, is stopped on exit.
#
# Environment: BENCH_BUILD_DIR (default ${TMPDIR:-/tmp}/ledgerd-bench-build, shared with run.sh),
# BENCH_ROUNDS and BENCH_DURATION override the mode's, BENCH_KEEP=1 keeps the temporary directory
# (reports, logs, the stopped cluster), BENCH_NO_RESULTS=1 does not append to RESULTS.md,
# BENCH_PERF=0 skips the profile of full (BENCH_PERF=1 adds it to quick), PG_BIN the PostgreSQL
# programs (default /usr/lib/postgresql/15/bin), BENCH_LEDGERD a ledgerd binary to measure instead
# of building one.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
ACCOUNTS=10000
CONNS=64 # single transfers: wrk connections, pgbench clients (as run.sh's scenario 2)
BATCH_SIZE=8190
BATCH_CONNS=4 # batches: as run.sh's scenario 3
BATCH_VARIANTS=4 # reference batch scripts with different account pairs (batch.lua keeps 4 too)
WRITERS_DEFAULT=2
WRITERS_SWEEP=(2 4 8)
PERF_SECONDS=5
WRK_THREADS=1
WRK_TIMEOUT=60s # a batch of 8190 on PostgreSQL takes seconds under load
SERVER_CPU=0
CLIENT_CPU=1
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
BUILD_DIR=${BENCH_BUILD_DIR:-${TMPDIR:-/tmp}/ledgerd-bench-build}
LOG_TAG=pg
WRK_CPU=1 # run_wrk also reports wrk's own CPU (wrk_cpu)
# shellcheck source-path=SCRIPTDIR/.. source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
bench_mode "pg.sh" "${1:-quick}" # sets MODE, ROUNDS, DURATION, WARMUP
PERF=${BENCH_PERF:-$([ "$MODE" = full ] && echo 1 || echo 0)}

# ===== the cluster =====
PG_DIR=""
PG_PORT=""
# The cluster is halted before lib.sh's cleanup removes WORK (and the cluster's directory in it).
stop_cluster() {
    if [ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ]; then
        bash "$REPO/scripts/pg.sh" halt "$PG_DIR" >/dev/null 2>&1 || true
    fi
}
trap 'stop_cluster; cleanup' EXIT

pg_url() { echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"; }

psql_db() { # DB [psql args...]: psql on database DB, stopping at the first error
    local db=$1
    shift
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$db" "$@"
}

# Starts the cluster on core SERVER_CPU: the postmaster inherits the affinity, and every
# backend is forked from it. Sets PG_DIR, PG_PORT, PG_PID.
start_cluster() {
    PG_DIR=$WORK/pg
    say "starting PostgreSQL (fsync=on) on core $SERVER_CPU"
    PG_FSYNC=on PG_BIN=$PG_BIN taskset -c "$SERVER_CPU" bash "$REPO/scripts/pg.sh" start "$PG_DIR" \
        >"$WORK/pg.url" 2>"$WORK/pg.err" || { cat "$WORK/pg.err" >&2; die "the cluster did not start"; }
    PG_PORT=$(cat "$PG_DIR/port")
    PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
    [ "$(taskset -pc "$PG_PID" | sed 's/.*: //')" = "$SERVER_CPU" ] ||
        die "the postmaster is not pinned to core $SERVER_CPU"
}

# fresh_pgdb NAME TEMPLATE: a new database NAME copied from TEMPLATE, then a CHECKPOINT (so no
# run inherits the dirty pages of the one before) and quiesce.
fresh_pgdb() {
    psql_db postgres -c "CREATE DATABASE \"$1\" TEMPLATE \"$2\"" -c CHECKPOINT
    quiesce
}

drop_pgdb() { psql_db postgres -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)"; }

# ===== setup =====
# The pristine ledgerd database: migrations, then the accounts through the API (accounts.lua),
# as run.sh's create_accounts does on SQLite.
setup_ledgerd_db() {
    local db=ledgerd_pristine
    say "ledgerd: migrations and $ACCOUNTS accounts in database $db"
    psql_db postgres -c "CREATE DATABASE $db"
    LEDGERD_DB=$(pg_url "$db") "$LEDGERD" migrate up >"$WORK/migrate.log" 2>&1 ||
        { cat "$WORK/migrate.log" >&2; die "migrate up failed"; }
    start_ledgerd setup-ledgerd none LEDGERD_DB="$(pg_url "$db")"
    local created failed in_db
    wrk_create_accounts
    read -r created failed <"$WORK/accounts.done"
    stop_pid "$SERVER_PID" TERM
    in_db=$(psql_db "$db" -At -c 'SELECT count(*) FROM accounts')
    if [ "$in_db" != "$ACCOUNTS" ] || [ "$failed" != 0 ]; then
        die "account setup: $created created, $failed failed, $in_db in the database"
    fi
    psql_db "$db" -c 'VACUUM ANALYZE'
}

# The pristine reference database: bench/pgledger.sql and the same accounts, in SQL.
setup_reference_db() {
    local db=pgledger_pristine
    say "reference: bench/pgledger.sql and $ACCOUNTS accounts in database $db"
    psql_db postgres -c "CREATE DATABASE $db"
    psql_db "$db" -f "$BENCH_DIR/pgledger.sql"
    psql_db "$db" -c "INSERT INTO accounts (id, ledger)
        SELECT 'acc' || lpad(i::text, 5, '0'), 'USD' FROM generate_series(1, $ACCOUNTS) i" \
        -c 'VACUUM ANALYZE'
}

# The reference's batch scripts: each calls transfer_batch() once with BATCH_SIZE random distinct
# pairs written into the statement (as batch.lua keeps a few bodies' pairs), and ids made fresh
# per call from the client and its counter. pgbench picks one of the variants per transaction.
make_batch_scripts() {
    "$PY" - "$WORK" "$ACCOUNTS" "$BATCH_SIZE" "$BATCH_VARIANTS" <<'EOF'
import random, sys
work, accounts, size, variants = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for v in range(1, variants + 1):
    debits, credits = [], []
    for _ in range(size):
        d = random.randint(1, accounts)
        c = random.randint(1, accounts - 1)
        c += c >= d
        debits.append("acc%05d" % d)
        credits.append("acc%05d" % c)
    with open("%s/batch-%d.pgbench" % (work, v), "w") as f:
        f.write("\\set n :n + 1\n")
        f.write("SELECT transfer_batch("
                "(SELECT array_agg('p' || :r::text || '-' || :client_id::text || '-' || :n::text "
                "|| '-' || i::text) FROM generate_series(1, %d) i), "
                "'{%s}'::text[], '{%s}'::text[], array_fill(1::numeric, ARRAY[%d]));\n"
                % (size, ",".join(debits), ",".join(credits), size))
EOF
}

# ===== pgbench =====
# run_pgbench NAME DB CLIENTS SECONDS [pgbench args...]: pgbench on core CLIENT_CPU (-j 1,
# --no-vacuum, a per-transaction log for the latency percentiles). Leaves a BENCH line in
# $WORK/NAME.bench like run_wrk's: tps (pgbench's, without the initial connection time),
# transactions (all, including those that finished after SECONDS), in_window (those completed
# within SECONDS of the start), failed, p50/p99 in ms, the wall time and each core's busy share.
run_pgbench() {
    local name=$1 db=$2 clients=$3 secs=$4
    shift 4
    local s0 s1 e0 e1 t0 t1
    s0=$(cpu_ticks "cpu$SERVER_CPU")
    s1=$(cpu_ticks "cpu$CLIENT_CPU")
    t0=$(date +%s.%N)
    taskset -c "$CLIENT_CPU" "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -j 1 \
        -c "$clients" -T "$secs" -l --log-prefix="$WORK/$name.log" "$@" "$db" >"$WORK/$name.out" 2>&1 &
    local ppid=$!
    PIDS+=("$ppid")
    wait "$ppid" || { cat "$WORK/$name.out" >&2; die "pgbench failed ($name)"; }
    forget_pid "$ppid"
    t1=$(date +%s.%N)
    e0=$(cpu_ticks "cpu$SERVER_CPU")
    e1=$(cpu_ticks "cpu$CLIENT_CPU")
    local tps xacts failed lat window
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$WORK/$name.out")
    xacts=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/$name.out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/$name.out")
    if [ -z "$tps" ] || [ -z "$xacts" ]; then
        cat "$WORK/$name.out" >&2
        die "no tps in pgbench's report ($name)"
    fi
    # The third column of the log is each transaction's latency in microseconds.
    lat=$(cat "$WORK/$name.log".* | awk '{print $3}' | sort -n | awk '{v[NR] = $1}
        END {if (NR == 0) {print "0 0"; exit}
             p50 = v[int(0.50 * (NR - 1)) + 1]; p99 = v[int(0.99 * (NR - 1)) + 1]
             printf "%.3f %.3f", p50 / 1000, p99 / 1000}')
    # Transactions completed within SECONDS of the start, as wrk counts answers within its
    # duration: a call still running at the end counts on neither side (pgbench lets it finish).
    window=$(cat "$WORK/$name.log".* | awk -v end="$(awk -v a="$t0" -v s="$secs" 'BEGIN {printf "%.6f", a + s}')" \
        '$5 + $6 / 1e6 <= end {n++} END {print n + 0}')
    rm -f "$WORK/$name.log".*
    echo "BENCH tps=$tps transactions=$xacts in_window=$window failed=${failed:-0} p50_ms=${lat% *} p99_ms=${lat#* }" \
        "seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" \
        "core0_busy=$(busy_pct "$s0" "$e0") core1_busy=$(busy_pct "$s1" "$e1")" >"$WORK/$name.bench"
}

# ===== checks =====
# check_lost_pg DB IDS_PREFIX TAG -> "acked in_db missing extra", as lib.sh's check_lost does on
# SQLite: every id wrk saw a 2xx for must be in the database.
check_lost_pg() {
    local db=$1 prefix=$2 tag=$3
    cat "$prefix"-*.ids >"$prefix.acked" 2>/dev/null || : >"$prefix.acked"
    psql_db "$db" -At -F ' ' <<EOF
CREATE TEMP TABLE acked (id TEXT COLLATE "C");
\\copy acked FROM '$prefix.acked'
SELECT (SELECT count(DISTINCT id) FROM acked),
       (SELECT count(*) FROM transfers WHERE id LIKE '$tag-%'),
       (SELECT count(DISTINCT a.id) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = a.id)),
       (SELECT count(*) FROM transfers t WHERE t.id LIKE '$tag-%' AND NOT EXISTS (SELECT 1 FROM acked a WHERE a.id = t.id));
EOF
}

# commit_stats -> "transfers-per-commit mean-commit-ms retries" of the ledgerd at URL since it
# started, from its /metrics (ledgerd_commit_batch_commands, ledgerd_commit_duration_seconds,
# ledgerd_db_transaction_retries_total; every series of each summed).
commit_stats() {
    curl -fsS "$URL/metrics" 2>/dev/null | awk '
        /^ledgerd_commit_batch_commands_sum/ {bs += $NF} /^ledgerd_commit_batch_commands_count/ {bc += $NF}
        /^ledgerd_commit_duration_seconds_sum/ {ds += $NF} /^ledgerd_commit_duration_seconds_count/ {dc += $NF}
        /^ledgerd_db_transaction_retries_total/ {rt += $NF}
        END {printf "%.1f %.2f %d\n", (bc ? bs / bc : 0), (dc ? 1000 * ds / dc : 0), rt}'
}

# cpu_us CORE_BUSY_PCT SECONDS TRANSFERS -> microseconds of that core per transfer
cpu_us() { awk -v b="$1" -v s="$2" -v n="$3" 'BEGIN {printf "%.1f", (n > 0 ? b / 100 * s * 1e6 / n : 0)}'; }

# ===== scenarios =====
# ours_single ROUND NAME WRITERS [record]: ledgerd, POST /v1/transfers, CONNS connections.
ours_single() {
    local r=$1 name=$2 writers=$3 rec=${4:-}
    local db=$name tag
    tag=$(echo "$name" | tr -cd 'a-z0-9')
    fresh_pgdb "$db" ledgerd_pristine
    start_ledgerd "$name" none LEDGERD_DB="$(pg_url "$db")" LEDGERD_DB_WRITERS="$writers"
    run_wrk "$name" "$URL" "$SERVER_PID" "$CONNS" "$DURATION" transfer.lua "$tag" "$ACCOUNTS" "$WORK/$name"
    local commit
    commit=$(commit_stats)
    stop_pid "$SERVER_PID" TERM
    local rps secs
    rps=$(field "$name" rps)
    secs=$(field "$name" seconds)
    if [ "$rec" = record ]; then
        record single ours_rate "$r" "$rps"
        record single ours_p99_ms "$r" "$(field "$name" p99_ms)"
        record single ours_errors "$r" "$(($(field "$name" rejected_503) + $(field "$name" other) + $(field "$name" socket_errors) + $(field "$name" timeouts)))"
        record single ours_per_commit "$r" "${commit%% *}"
        record single ours_commit_ms "$r" "$(echo "$commit" | awk '{print $2}')"
        record single ours_retries "$r" "${commit##* }"
        record single ours_core0_us "$r" "$(cpu_us "$(field "$name" core0_busy)" "$secs" "$(field "$name" requests)")"
        local k
        for k in core0_busy core1_busy server_cpu wrk_cpu; do
            record single "ours_$k" "$r" "$(field "$name" "$k")"
        done
        local acked in_db missing extra
        read -r acked in_db missing extra < <(check_lost_pg "$db" "$WORK/$name" "$tag")
        record lost acked "$r" "$acked"
        record lost in_db "$r" "$in_db"
        record lost missing "$r" "$missing"
        record lost extra "$r" "$extra"
    else
        record writers "w$writers" "$r" "$rps"
    fi
    drop_pgdb "$db"
}

ref_single() { # ROUND
    local r=$1 name="ref-single-$1" db="ref_single_$1"
    fresh_pgdb "$db" pgledger_pristine
    run_pgbench "$name" "$db" "$CONNS" "$DURATION" -M prepared -D accounts="$ACCOUNTS" -D r="$r" \
        -D n=0 -f "$BENCH_DIR/pgledger_transfer.pgbench"
    record single ref_rate "$r" "$(field "$name" tps)"
    record single ref_p99_ms "$r" "$(field "$name" p99_ms)"
    record single ref_errors "$r" "$(field "$name" failed)"
    record single ref_core0_us "$r" "$(cpu_us "$(field "$name" core0_busy)" "$(field "$name" seconds)" "$(field "$name" transactions)")"
    record single ref_core0_busy "$r" "$(field "$name" core0_busy)"
    record single ref_core1_busy "$r" "$(field "$name" core1_busy)"
    local in_db
    in_db=$(psql_db "$db" -At -c 'SELECT count(*) FROM transfers')
    record single ref_in_db "$r" "$in_db"
    drop_pgdb "$db"
}

ours_batch() { # ROUND
    local r=$1 name="ours-batch-$1" db="ours_batch_$1"
    fresh_pgdb "$db" ledgerd_pristine
    start_ledgerd "$name" none LEDGERD_DB="$(pg_url "$db")" LEDGERD_DB_WRITERS="$WRITERS_DEFAULT"
    run_wrk "$name" "$URL" "$SERVER_PID" "$BATCH_CONNS" "$DURATION" batch.lua "b$r" "$ACCOUNTS" "$BATCH_SIZE"
    stop_pid "$SERVER_PID" TERM
    local secs created
    secs=$(field "$name" seconds)
    created=$(field "$name" created)
    record batch ours_rate "$r" "$(awk -v c="$created" -v s="$secs" 'BEGIN {printf "%.0f", c / s}')"
    record batch ours_p99_ms "$r" "$(field "$name" p99_ms)"
    record batch ours_requests "$r" "$(field "$name" requests)"
    record batch ours_errors "$r" "$(($(field "$name" failed) + $(field "$name" socket_errors) + $(field "$name" timeouts)))"
    record batch ours_core0_us "$r" "$(cpu_us "$(field "$name" core0_busy)" "$secs" "$created")"
    local k
    for k in core0_busy core1_busy server_cpu wrk_cpu; do
        record batch "ours_$k" "$r" "$(field "$name" "$k")"
    done
    drop_pgdb "$db"
}

ref_batch() { # ROUND
    local r=$1 name="ref-batch-$1" db="ref_batch_$1" scripts=() v
    for v in $(seq 1 "$BATCH_VARIANTS"); do
        scripts+=(-f "$WORK/batch-$v.pgbench@1")
    done
    fresh_pgdb "$db" pgledger_pristine
    run_pgbench "$name" "$db" "$BATCH_CONNS" "$DURATION" -M simple -D r="$r" -D n=0 "${scripts[@]}"
    local xacts
    xacts=$(field "$name" transactions)
    # Calls completed within DURATION, as for ledgerd's requests (wrk stops at DURATION).
    record batch ref_rate "$r" "$(awk -v x="$(field "$name" in_window)" -v b="$BATCH_SIZE" -v s="$DURATION" 'BEGIN {printf "%.0f", x * b / s}')"
    record batch ref_p99_ms "$r" "$(field "$name" p99_ms)"
    record batch ref_requests "$r" "$xacts"
    record batch ref_errors "$r" "$(field "$name" failed)"
    record batch ref_core0_us "$r" "$(cpu_us "$(field "$name" core0_busy)" "$(field "$name" seconds)" "$((xacts * BATCH_SIZE))")"
    record batch ref_core0_busy "$r" "$(field "$name" core0_busy)"
    record batch ref_core1_busy "$r" "$(field "$name" core1_busy)"
    drop_pgdb "$db"
}

# One more single-transfer run, not measured, with `perf record -g` on core 0 (ledgerd and
# PostgreSQL both) for PERF_SECONDS. Leaves the reports in $WORK/perf-*.txt.
profile_single() {
    local name=perf-single db=perf_single secs=$PERF_SECONDS
    [ "$DURATION" -gt "$secs" ] || secs=$((DURATION > 2 ? DURATION - 1 : 1))
    fresh_pgdb "$db" ledgerd_pristine
    start_ledgerd "$name" none LEDGERD_DB="$(pg_url "$db")" LEDGERD_DB_WRITERS="$WRITERS_DEFAULT"
    (sleep 1 && exec perf record -g -C "$SERVER_CPU" -o "$WORK/perf.data" -- sleep "$secs") \
        >"$WORK/perf.log" 2>&1 &
    local perf_pid=$!
    PIDS+=("$perf_pid")
    run_wrk "$name" "$URL" "$SERVER_PID" "$CONNS" $((secs + 2)) transfer.lua perf "$ACCOUNTS"
    wait "$perf_pid" 2>/dev/null || true
    forget_pid "$perf_pid"
    stop_pid "$SERVER_PID" TERM
    drop_pgdb "$db"
    [ -s "$WORK/perf.data" ] || return 0
    # By thread name, then grouped by process here: perf's own --comm/--pid filters drop
    # the libraries a filtered-out process hit first.
    perf report -i "$WORK/perf.data" --stdio --no-children --sort comm,dso,sym -g none 2>/dev/null |
        "$PY" -c '
import collections, re, sys
by_proc, by_dso, by_sym = collections.Counter(), collections.Counter(), collections.Counter()
for line in sys.stdin:
    m = re.match(r"^ +([0-9.]+)%\s+(\S+)\s+(\S+)\s+(\[.\] \S+)", line)
    if not m:
        continue
    pct, comm, dso, sym = float(m[1]), m[2], m[3], m[4]
    proc = ("ledgerd" if comm.startswith("ledgerd") or comm == "MHD-worker" else
            comm if comm == "postgres" else "idle" if comm == "swapper" else "other")
    by_proc[proc] += pct
    by_dso[proc, dso] += pct
    by_sym[proc, dso, sym] += pct
total = sum(by_proc.values()) / 100 or 1
for c in (by_proc, by_dso, by_sym):
    for k in c:
        c[k] /= total
print("samples of the core by process: " + ", ".join(f"{p} {x:.1f}%" for p, x in by_proc.most_common()))
for proc in ("ledgerd", "postgres"):
    print(f"\n{proc}, by library:")
    for (p, d), x in sorted(by_dso.items(), key=lambda t: -t[1]):
        if p == proc and x >= 0.05:
            print(f"  {x:6.2f}%  {d}")
    print(f"{proc}, top symbols:")
    top = sorted(((x, d, y) for (p, d, y), x in by_sym.items() if p == proc), reverse=True)
    for x, d, y in top[:12]:
        print(f"  {x:6.2f}%  {d:<28} {y}")
' >"$WORK/perf-report.txt" 2>/dev/null || true
    field "$name" rps >"$WORK/perf-rps.txt"
}

# ===== main =====
# shellcheck disable=SC2119 # no tools beyond the common ones
ensure_tools
if [ ! -x "$PG_BIN/pgbench" ] || [ ! -x "$PG_BIN/psql" ]; then
    die "no pgbench/psql in $PG_BIN (scripts/deps.sh test installs postgresql-15)"
fi
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null 2>&1; then
    say "perf not found: no profile"
    PERF=0
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ledgerd-bench-pg.XXXXXX")
chmod 755 "$WORK" # the cluster's directory is in it, and the postgres user must get through
: >"$WORK/results.tsv"
raise_nofile
if [ -n "${BENCH_LEDGERD:-}" ]; then
    LEDGERD=$BENCH_LEDGERD
    say "using $LEDGERD (BENCH_LEDGERD), not building"
else
    build
fi
start_cluster
setup_ledgerd_db
setup_reference_db
make_batch_scripts

for r in $(seq 1 "$ROUNDS"); do
    say "round $r/$ROUNDS: single transfers, ledgerd ($CONNS connections) vs transfer() ($CONNS clients)"
    ours_single "$r" "ours-single-$r" "$WRITERS_DEFAULT" record
    ref_single "$r"
    say "round $r/$ROUNDS: batches of $BATCH_SIZE, ledgerd ($BATCH_CONNS connections) vs transfer_batch() ($BATCH_CONNS clients)"
    ours_batch "$r"
    ref_batch "$r"
done
if [ "$MODE" = full ]; then
    for w in "${WRITERS_SWEEP[@]}"; do
        say "single transfers with LEDGERD_DB_WRITERS=$w"
        ours_single 1 "writers-$w" "$w"
    done
fi
if [ "$PERF" = 1 ]; then
    say "profile: perf record -g on core $SERVER_CPU during single transfers"
    profile_single
fi

# ===== the table =====
TABLE=$(
    BENCH_DIR="$BENCH_DIR" BATCH_SIZE="$BATCH_SIZE" "$PY" - "$WORK/results.tsv" <<'EOF'
import os, statistics, sys
sys.path.insert(0, os.environ["BENCH_DIR"])
from table import met, num, spread, times  # noqa: E402
v = {}
for line in open(sys.argv[1]):
    s, m, r, x = line.rstrip("\n").split("\t")
    if x != "":
        v[(s, m, int(r))] = float(x)
def rounds(s, m):
    return [v[k] for k in sorted(k for k in v if k[0] == s and k[1] == m)]
def med(s, m):
    xs = rounds(s, m)
    return statistics.median(xs) if xs else None
def ratio(s, m1, m2):
    # median of the per-round ratios: each pair ran back to back
    rs = [x / y for x, y in zip(rounds(s, m1), rounds(s, m2)) if y]
    return statistics.median(rs) if rs else None
def cell(s, m, unit=""):
    return spread(rounds(s, m), unit)
rows = []
def row(name, ours, ref, rat, target, ok):
    rows.append(f"| {name} | {ours} | {ref} | {rat} | {target} | {met(ok)} |")
size = int(os.environ["BATCH_SIZE"])
sr = ratio("single", "ours_rate", "ref_rate")
row("1. single transfers/s: `POST /v1/transfers` (64 conns) vs `SELECT transfer(...)` (64 clients)",
    cell("single", "ours_rate"), cell("single", "ref_rate"), times(sr), "ratio ≥ 1.0", None if sr is None else sr >= 1.0)
row("1. single p99 latency", cell("single", "ours_p99_ms", " ms"), cell("single", "ref_p99_ms", " ms"),
    times(ratio("single", "ours_p99_ms", "ref_p99_ms")), "—", None)
row("1. single: core 0 CPU per transfer (ledgerd + PostgreSQL vs PostgreSQL alone)",
    cell("single", "ours_core0_us", " µs"), cell("single", "ref_core0_us", " µs"),
    times(ratio("single", "ours_core0_us", "ref_core0_us")), "—", None)
row("1. single: errors (non-2xx, socket, timeout / failed transactions), all rounds",
    num(sum(rounds("single", "ours_errors"))), num(sum(rounds("single", "ref_errors"))), "—", "0",
    sum(rounds("single", "ours_errors")) + sum(rounds("single", "ref_errors")) == 0)
ack, ind, miss, extra = (sum(rounds("lost", m)) for m in ("acked", "in_db", "missing", "extra"))
row("1. nothing lost (ledgerd): acknowledged (2xx) vs in database, all rounds", f"{ack:,.0f} acked",
    f"{ind:,.0f} in db", f"{miss:,.0f} missing, {extra:,.0f} unacked extra", "0 missing", miss == 0)
row("1. ledgerd's commits: transfers per commit, mean commit time, retried transactions (all rounds)",
    f"{cell('single', 'ours_per_commit')} per commit, {cell('single', 'ours_commit_ms', ' ms')}, {num(sum(rounds('single', 'ours_retries')))} retries",
    "1 per transaction", "—", "—", None)
br = ratio("batch", "ours_rate", "ref_rate")
row(f"2. batch transfers/s: `POST /v1/transfers/batch` ({size:,}/request, 4 conns) vs `SELECT transfer_batch(...)` ({size:,}/call, 4 clients)",
    cell("batch", "ours_rate"), cell("batch", "ref_rate"), times(br), "ratio ≥ 1.0", None if br is None else br >= 1.0)
row("2. batch p99 latency per request / call", cell("batch", "ours_p99_ms", " ms"), cell("batch", "ref_p99_ms", " ms"),
    times(ratio("batch", "ours_p99_ms", "ref_p99_ms")), "—", None)
row("2. batch requests / calls completed per run", cell("batch", "ours_requests"), cell("batch", "ref_requests"), "—", "—", None)
row("2. batch: core 0 CPU per transfer", cell("batch", "ours_core0_us", " µs"), cell("batch", "ref_core0_us", " µs"),
    times(ratio("batch", "ours_core0_us", "ref_core0_us")), "—", None)
row("2. batch: errors (non-2xx, socket, timeout / failed transactions), all rounds",
    num(sum(rounds("batch", "ours_errors"))), num(sum(rounds("batch", "ref_errors"))), "—", "0",
    sum(rounds("batch", "ours_errors")) + sum(rounds("batch", "ref_errors")) == 0)
ws = sorted((int(m[1][1:]), v[m]) for m in v if m[0] == "writers")
if ws:
    best = max(ws, key=lambda t: t[1])[0]
    row("3. single transfers/s by `LEDGERD_DB_WRITERS` (one run each, after the rounds)",
        ", ".join(f"{w}: {num(x)}" for w, x in ws), "—", f"best: {best}", "—", None)
print("| scenario | ours (ledgerd) | reference (SQL functions) | ratio | target | met? |")
print("|---|---|---|---|---|---|")
print("\n".join(rows))
print()
def busy(s, m):
    x = med(s, m)
    return "—" if x is None else f"{x:.0f}%"
print("CPU during the runs, median % of one core: ledgerd's process, wrk's, and each core as a whole")
print("(core 0: ledgerd and PostgreSQL; core 1: wrk or pgbench).")
print()
print("| run | ledgerd | wrk | core 0 busy | core 1 busy |")
print("|---|---|---|---|---|")
for label, s, pre, own in (("single, ledgerd", "single", "ours_", True), ("single, transfer()", "single", "ref_", False),
                           ("batch, ledgerd", "batch", "ours_", True), ("batch, transfer_batch()", "batch", "ref_", False)):
    print(f"| {label} | {busy(s, pre + 'server_cpu') if own else '—'} | {busy(s, pre + 'wrk_cpu') if own else '—'} | "
          f"{busy(s, pre + 'core0_busy')} | {busy(s, pre + 'core1_busy')} |")
EOF
)

PG_VERSION=$(psql_db postgres -At -c 'SHOW server_version' | awk '{print $1}')
PG_SETTINGS=$(psql_db postgres -At -F '=' -c "SELECT name, setting || coalesce(unit, '') FROM pg_settings
    WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers', 'max_wal_size', 'commit_delay')
    ORDER BY name" | tr '\n' ' ')
HEADER=$(
    cat <<EOF
## $(date -u +%Y-%m-%dT%H:%M:%SZ) — PostgreSQL, \`$MODE\` (bench/pg.sh)

$(report_context)
- PostgreSQL $PG_VERSION, a throwaway cluster (scripts/pg.sh), defaults but for fsync: ${PG_SETTINGS% }
- pinning: ledgerd and PostgreSQL (the database side) on core $SERVER_CPU, wrk and pgbench on core $CLIENT_CPU (taskset)
- ledgerd: LEDGERD_DB_WRITERS=$WRITERS_DEFAULT (default), LEDGERD_DB_POOL_SIZE default, LEDGERD_AUTH=off, LEDGERD_ENV=dev, LEDGERD_LOG_LEVEL=warn; wrk: $WRK_THREADS thread, --timeout $WRK_TIMEOUT
- reference: bench/pgledger.sql; pgbench -j 1 --no-vacuum, single: -M prepared -c $CONNS (bench/pgledger_transfer.pgbench), batch: -M simple -c $BATCH_CONNS ($BATCH_VARIANTS generated scripts)
- ${ROUNDS} rounds of ${DURATION} s, ours and reference interleaved, each run on a fresh copy of a pristine database of $ACCOUNTS accounts after a CHECKPOINT; medians (range), ratios are medians of per-round ratios
EOF
)

OUTPUT="$HEADER

$TABLE"
if [ -s "$WORK/perf-report.txt" ]; then
    OUTPUT="$OUTPUT

perf, core $SERVER_CPU during one more single-transfer run, not measured ($PERF_SECONDS s of \`perf record -g -C $SERVER_CPU\`, $(cat "$WORK/perf-rps.txt") transfers/s while recorded); self time in % of all the core's samples:
\`\`\`
$(cat "$WORK/perf-report.txt")
\`\`\`"
fi
publish "$OUTPUT"
say "done in $(($(date +%s) - T0)) s"
