#!/usr/bin/env bash
# scripts/run.sh BINARY: `make run` — applies the migrations to ./var/ledgerd.db (or LEDGERD_DB),
# and in the dev environment (LEDGERD_ENV unset or dev) makes what a first try needs: an API-key
# hashing key in ./var/apikey-hash.key (mode 600, kept between runs) and a new API key with every
# scope, printed once. In any other environment nothing is made: no default credential exists
# outside dev. Then it starts `ledgerd serve`.
set -euo pipefail
bin=$1
listen=${LEDGERD_LISTEN:-127.0.0.1:8080}
"$bin" migrate up
token=""
if [ "${LEDGERD_ENV:-dev}" = dev ] && [ "${LEDGERD_AUTH:-required}" = required ]; then
    if [ -z "${LEDGERD_APIKEY_HASH_KEY_FILE:-}" ]; then
        mkdir -p var
        if [ ! -s var/apikey-hash.key ]; then
            (umask 077 && head -c 48 /dev/urandom | base64 -w0 >var/apikey-hash.key)
        fi
        export LEDGERD_APIKEY_HASH_KEY_FILE=$PWD/var/apikey-hash.key
    fi
    token=$("$bin" apikey create --name "make-run-$(date -u +%Y%m%dT%H%M%SZ)" \
        --scopes ledger:read,ledger:write,flags:read,flags:write,audit:read,admin | tail -1)
fi
echo
echo "ledgerd is starting on http://$listen (Ctrl-C stops it)."
if [ -n "$token" ]; then
    echo "A development API key with every scope (shown once; dev only):"
    echo "  export TOKEN=$token"
    echo "Try, from another terminal:"
    echo "  curl -s -X POST http://$listen/v1/accounts -H \"Authorization: Bearer \$TOKEN\" \\"
    echo "       -H 'Content-Type: application/json' -d '{\"ledger\":\"USD\",\"code\":1}'"
else
    echo "Outside the dev environment no key is made: create one with"
    echo "  ledgerd apikey create --name NAME --scopes ledger:read,ledger:write"
fi
echo "The README has a full walkthrough."
echo
exec "$bin" serve
