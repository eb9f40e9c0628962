#!/usr/bin/env bash
# Every system package packaging/first-run.sh installs must also be one
# tests/run.sh installs: the README's first command and the test suite build
# the same way, so their dependency lists must not drift apart. Prints what
# is missing and fails; silent otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

packages() { # the right-hand sides of `[key]=package` lines in an array
    sed -n "/^declare -A $2=(/,/)$/p" "$1" | grep -o '\]=[a-z0-9.+-]*' | cut -c3- | sort -u
}
first=$(packages packaging/first-run.sh FIRST_RUN_DEPS)
tests=$(packages tests/run.sh NEEDS)
[ -n "$first" ] || { echo "check-deps: no FIRST_RUN_DEPS found in packaging/first-run.sh" >&2; exit 1; }
[ -n "$tests" ] || { echo "check-deps: no NEEDS found in tests/run.sh" >&2; exit 1; }
drift=$(comm -23 <(echo "$first") <(echo "$tests"))
if [ -n "$drift" ]; then
    echo "check-deps: packaging/first-run.sh installs what tests/run.sh does not: $drift" >&2
    exit 1
fi
