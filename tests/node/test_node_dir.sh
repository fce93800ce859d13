#!/usr/bin/env bash
# test_node_dir.sh - the default node directory: every command that works on
# a node takes --dir NODE, else $SLDD_DIR, else /var/lib/sldd.
# usage: test_node_dir.sh /path/to/sldd
set -u
SLDD=$1
. "$(dirname "$0")/cli_lib.sh"
T=$(mktemp -d /tmp/sldd-dir-XXXXXX)
trap 'rm -rf "$T"' EXIT
N=$T/node

# init and the file-based commands from $SLDD_DIR alone
expect 0 "node-x" -- env SLDD_DIR="$N" "$SLDD" init --id node-x
check "init made the node in \$SLDD_DIR" test -f "$N/node.conf"
expect 0 "node-x" -- env SLDD_DIR="$N" "$SLDD" keys show
printf 'a long passphrase for tests\n' >"$T/pass"
chmod 600 "$T/pass"
expect 0 "" -- env SLDD_DIR="$N" "$SLDD" admin add --name alice --passphrase-file "$T/pass" \
  --kdf interactive
expect 0 "alice" -- env SLDD_DIR="$N" "$SLDD" admin list
expect 0 "" -- env SLDD_DIR="$N" "$SLDD" keys export --out "$T/x.peer"
expect 0 "" -- env SLDD_DIR="$N" "$SLDD" peer list
# commands name the directory they looked in when it is no node
expect 1 "$N-missing is not a node directory" -- env SLDD_DIR="$N-missing" "$SLDD" bundle list
expect 0 "sound" -- env SLDD_DIR="$N" "$SLDD" serve --check
expect 0 "" -- env SLDD_DIR="$N" "$SLDD" bundle list
expect 0 "(no jobs)" -- env SLDD_DIR="$N" "$SLDD" job list
expect 0 "audit log intact" -- env SLDD_DIR="$N" "$SLDD" audit verify

# --dir wins over $SLDD_DIR
expect 0 "node-x" -- env SLDD_DIR="$T/elsewhere" "$SLDD" keys show --dir "$N"
expect 1 "$T/elsewhere" -- env SLDD_DIR="$T/elsewhere" "$SLDD" keys show
# a second init into the same default refuses
expect 1 "already holds a node" -- env SLDD_DIR="$N" "$SLDD" init --id node-y

# without either: /var/lib/sldd (an empty $SLDD_DIR counts as unset); only
# checked where no node lives there, so that this never touches a real one
if [ ! -e /var/lib/sldd/node.conf ]; then
  expect 1 "/var/lib/sldd" -- env -u SLDD_DIR "$SLDD" keys show
  expect 1 "/var/lib/sldd" -- env SLDD_DIR= "$SLDD" audit show
  expect 1 "/var/lib/sldd" -- env -u SLDD_DIR "$SLDD" job list
fi
expect 0 "SLDD_DIR" -- "$SLDD" --help

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
