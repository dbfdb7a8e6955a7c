#!/usr/bin/env bash
# Static checks beyond the compiler: clang-tidy on every source file (using the build's
# compile_commands.json), cppcheck, banned functions, and a scan for committed secrets.
set -euo pipefail
build=${1:-build}
status=0

echo "lint: banned functions"
mapfile -t code_dirs < <(for d in src tests bench; do [ -d "$d" ] && echo "$d"; done)
if grep -rnE '\b(sprintf|strcpy|strcat|strncpy|strtok|atoi|gets|localtime)\s*\(' "${code_dirs[@]}" \
    --include='*.c' --include='*.h' | grep -v 'snprintf\|vsnprintf'; then
    echo "lint: banned functions found: use snprintf, memcpy with lengths, strtoul with checks, gmtime_r" >&2
    status=1
fi

echo "lint: secrets"
if grep -rnIE '(-----BEGIN [A-Z ]*PRIVATE KEY-----|AKIA[0-9A-Z]{16}|postgres(ql)?://[^:/@ ]+:[^@ ]+@)' \
    --exclude-dir=.git --exclude-dir=build --exclude-dir=build-asan --exclude-dir=build-fuzz \
    --exclude-dir=var . ; then
    echo "lint: something that looks like a secret is committed" >&2
    status=1
fi

echo "lint: clang-tidy"
mapfile -t files < <(find src -name '*.c' | sort)
if ! clang-tidy -p "$build" --quiet "${files[@]}" 2>/dev/null >"$build/clang-tidy.log"; then
    status=1
fi
if grep -E 'warning:|error:' "$build/clang-tidy.log"; then
    status=1
fi

echo "lint: cppcheck"
if ! cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
    --std=c11 -D_GNU_SOURCE --inline-suppr --suppress=missingIncludeSystem \
    -I src src 2>&1; then
    status=1
fi
exit $status
