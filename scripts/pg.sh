#!/usr/bin/env bash
# scripts/pg.sh start DIR | stop DIR | url DIR: a throwaway PostgreSQL 15 cluster for tests and
# benchmarks, in DIR (created; removed by stop), on a free port of 127.0.0.1 with its unix socket
# in DIR too. Nothing of the machine's own PostgreSQL is touched.
#
#   start  initdb (as the postgres user when run as root: initdb refuses root), start, wait until
#          it answers, create the database "ledgerd"; prints the connection URL on stdout.
#          PG_FSYNC=off makes it faster for functional tests (benchmarks keep the default, on).
#   url    prints the URL of a started cluster.
#   halt   fast shutdown, keeping DIR (an outage: clients lose their connections).
#   resume starts a halted cluster again, on the same port.
#   stop   fast shutdown, then removes DIR.
set -euo pipefail

BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    echo "usage: bash scripts/pg.sh start|stop|url|halt|resume DIR" >&2
    exit 2
fi

# Runs a PostgreSQL program as the cluster's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        local q
        q=$(printf '%q ' "$@")
        su postgres -s /bin/bash -c "$q"
    else
        "$@"
    fi
}

url() { echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/ledgerd"; }

pg_start() {
    as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 -o \
        "-p $(cat "$dir/port") -c listen_addresses=127.0.0.1 -k $dir -c fsync=$(cat "$dir/fsync")" \
        start >/dev/null || {
        cat "$dir/postgres.log" >&2
        exit 1
    }
}

case "$cmd" in
start)
    [ -x "$BIN/initdb" ] || {
        echo "pg.sh: $BIN/initdb not found (scripts/deps.sh test installs postgresql-15)" >&2
        exit 1
    }
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir" # its parents must let postgres through (not a 0700 directory)
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_owner "$BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    echo "$port" >"$dir/port"
    echo "${PG_FSYNC:-on}" >"$dir/fsync"
    pg_start

    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres ledgerd
    url
    ;;
url)
    url
    ;;
halt)
    as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
    ;;
resume)
    pg_start
    ;;
stop)
    if [ -d "$dir/data" ]; then
        as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: bash scripts/pg.sh start|stop|url|halt|resume DIR" >&2
    exit 2
    ;;
esac
