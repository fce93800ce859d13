#!/usr/bin/env bash
# test_cli_edges.sh - the command line as a new user meets it: help for a
# command, unknown words named with the nearest one, verdicts in the exit
# status, clear messages for a missing node directory, files that are
# refused, one --json convention.  Fast: no daemon is started.
#
# usage: test_cli_edges.sh /path/to/sldd
set -u
SLDD=${1:?usage: $0 /path/to/sldd}
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/sldd-edges-XXXXXX")
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/cli_lib.sh"

# ---- bundle inspect: a file that would be refused exits 1 ----
: >"$T/empty.bin"
expect 1 "INVALID" -- "$SLDD" bundle inspect "$T/empty.bin"
head -c 64 /dev/zero | tr '\0' 'x' >"$T/junk.bin"
expect 1 "unknown fields" -- "$SLDD" bundle inspect "$T/junk.bin"
expect 0 "test payload" -- "$SLDD" bundle make-test --out "$T/ok.pb" --sender node-a --small
expect 0 "validation: ok" -- "$SLDD" bundle inspect "$T/ok.pb"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
