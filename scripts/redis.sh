#!/usr/bin/env bash
# scripts/redis.sh: throwaway Redis servers and Sentinels on 127.0.0.1 for tests, each in its own
# DIR (created when needed) holding its pid file, log file and, for a Sentinel, its config file.
# Nothing is persisted (no RDB, no AOF).
#
#   start    DIR PORT                    one redis-server; returns once it answers PING.
#   replica  DIR PORT MASTER_PORT        the same, replicating 127.0.0.1:MASTER_PORT.
#   sentinel DIR PORT MASTER_PORT NAME   one redis-sentinel monitoring 127.0.0.1:MASTER_PORT as
#                                        NAME (quorum 2, down after 1 s, failover timeout 5 s);
#                                        its config file is written afresh every time, since
#                                        Sentinel rewrites it while it runs.
#   stop     DIR                         stops the process DIR's pid file names and waits until it
#                                        is gone; DIR and its log stay.
set -euo pipefail

cmd=${1:-}
dir=${2:-}

usage() {
    echo "usage: bash scripts/redis.sh start DIR PORT | replica DIR PORT MASTER_PORT |" \
        "sentinel DIR PORT MASTER_PORT NAME | stop DIR" >&2
    exit 2
}

# Checks that a port argument is a TCP port number.
check_port() {
    case "$1" in
    '' | *[!0-9]*) usage ;;
    esac
    if [ "$1" -lt 1 ] || [ "$1" -gt 65535 ]; then
        usage
    fi
}

# Prints the end of DIR's log on stderr after a failure.
log_tail() {
    local log=$1
    if [ -f "$log" ]; then
        echo "--- last lines of $log:" >&2
        tail -n 20 "$log" >&2
    fi
}

# Waits (at most 10 s) until the process of $dir's pid file answers on port $1: PING, and INFO
# naming that very process (not another server that already held the port). On failure prints
# the log tail.
wait_ready() {
    local port=$1 log=$2 pid info
    for _ in $(seq 1 200); do
        pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && ! alive "$pid"; then
            echo "redis.sh: the process on port $port exited" >&2
            log_tail "$log"
            exit 1
        fi
        if [ -n "$pid" ] &&
            [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" = PONG ]; then
            info=$(redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null || true)
            if printf '%s\n' "$info" | grep -q "^process_id:$pid"; then
                return 0
            fi
        fi
        sleep 0.05
    done
    echo "redis.sh: this DIR's process does not answer on 127.0.0.1:$port after 10 s" >&2
    log_tail "$log"
    exit 1
}

# Starts redis-server in $dir on port $1 with the extra arguments that follow.
start_server() {
    local port=$1
    shift
    command -v redis-server >/dev/null || {
        echo "redis.sh: redis-server not found (apt-get install redis-server)" >&2
        exit 1
    }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    rm -f "$dir/redis.pid"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" "$@" || {
        echo "redis.sh: redis-server failed to start on port $port" >&2
        log_tail "$dir/redis.log"
        exit 1
    }
    wait_ready "$port" "$dir/redis.log"
}

# True while process $1 runs. A daemon's parent is init, which may be slow to reap it: a
# zombie has exited.
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1 || true)
    [ "$state" != Z ]
}

case "$cmd" in
start)
    [ $# -eq 3 ] || usage
    check_port "$3"
    start_server "$3"
    ;;
replica)
    [ $# -eq 4 ] || usage
    check_port "$3"
    check_port "$4"
    start_server "$3" --replicaof 127.0.0.1 "$4" --repl-diskless-sync-delay 0
    ;;
sentinel)
    [ $# -eq 5 ] || usage
    check_port "$3"
    check_port "$4"
    command -v redis-sentinel >/dev/null || {
        echo "redis.sh: redis-sentinel not found (apt-get install redis-sentinel)" >&2
        exit 1
    }
    port=$3
    master_port=$4
    name=$5
    case "$name" in
    '' | *[!A-Za-z0-9._-]*)
        echo "redis.sh: master name must be [A-Za-z0-9._-]+" >&2
        exit 2
        ;;
    esac
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    rm -f "$dir/redis.pid"
    cat >"$dir/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
sentinel monitor $name 127.0.0.1 $master_port 2
sentinel down-after-milliseconds $name 1000
sentinel failover-timeout $name 5000
sentinel parallel-syncs $name 1
CONF
    redis-sentinel "$dir/sentinel.conf" || {
        echo "redis.sh: redis-sentinel failed to start on port $port" >&2
        log_tail "$dir/redis.log"
        exit 1
    }
    wait_ready "$port" "$dir/redis.log"
    ;;
stop)
    [ $# -eq 2 ] || usage
    pidfile="$dir/redis.pid"
    if [ ! -f "$pidfile" ]; then
        exit 0
    fi
    pid=$(cat "$pidfile")
    case "$pid" in
    '' | *[!0-9]*)
        echo "redis.sh: $pidfile does not hold a pid" >&2
        exit 1
        ;;
    esac
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
        if ! alive "$pid"; then
            rm -f "$pidfile"
            exit 0
        fi
        sleep 0.05
    done
    echo "redis.sh: pid $pid still running 10 s after SIGTERM; sending SIGKILL" >&2
    kill -9 "$pid" 2>/dev/null || true
    log_tail "$dir/redis.log"
    rm -f "$pidfile"
    ;;
*)
    usage
    ;;
esac
