#!/usr/bin/env bash
# Installs the Debian packages ledgerd needs that are missing on this machine.
#   scripts/deps.sh build   what `make` and `make run` need
#   scripts/deps.sh test    everything `make test` needs (the build set included)
# Idempotent: installs nothing when everything is present. Needs root or sudo to install;
# without them it prints the exact command to run and exits 1.
set -euo pipefail

build_pkgs=(gcc make cmake pkg-config git libmicrohttpd-dev libjansson-dev libgnutls28-dev
            libsqlite3-dev libcurl4-gnutls-dev curl libpq-dev libhiredis-dev)
test_pkgs=(libcmocka-dev python3 python3-pytest python3-yaml python3-cryptography openssl clang
           libclang-rt-14-dev clang-format clang-tidy cppcheck procps rsyslog prometheus chromium
           postgresql-15 postgresql-client-15 python3-psycopg2 redis-server redis-sentinel
           python3-redis)

set_name=${1:-build}
case "$set_name" in
build) want=("${build_pkgs[@]}") ;;
test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
*) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "deps: need root to install them. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/ledgerd-deps.log 2>&1; then
    "${sudo[@]}" apt-get update >>/tmp/ledgerd-deps.log 2>&1 || true
    if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/ledgerd-deps.log 2>&1; then
        echo "deps: apt-get failed (log: /tmp/ledgerd-deps.log). Install by hand:" >&2
        echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
        tail -5 /tmp/ledgerd-deps.log >&2
        exit 1
    fi
fi
echo "deps: done"
