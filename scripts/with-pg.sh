#!/usr/bin/env bash
# scripts/with-pg.sh CMD [ARGS...]: runs CMD with a throwaway PostgreSQL 15 cluster (scripts/pg.sh)
# whose URL is in LEDGERD_TEST_PG_URL, and stops the cluster afterwards, whatever CMD did.
# When LEDGERD_TEST_PG_URL is already set, CMD runs against that cluster instead.
# The cluster runs with fsync off: it serves functional tests, not benchmarks.
set -euo pipefail

if [ -n "${LEDGERD_TEST_PG_URL:-}" ]; then
    exec "$@"
fi
here=$(cd "$(dirname "$0")" && pwd)
top=$(mktemp -d /tmp/ledgerd-pg.XXXXXX)
chmod 755 "$top" # the cluster runs as the postgres user
cleanup() {
    bash "$here/pg.sh" stop "$top/cluster" >/dev/null 2>&1 || true
    rm -rf "$top"
}
trap cleanup EXIT
url=$(PG_FSYNC=off bash "$here/pg.sh" start "$top/cluster")
export LEDGERD_TEST_PG_URL="$url"
"$@"
