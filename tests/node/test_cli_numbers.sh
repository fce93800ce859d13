#!/bin/sh
# test_cli_numbers.sh - numeric command-line options are parsed whole, as
# the base parsers do: trailing text, a sign where none belongs, overflow and
# empty values are refused with exit status 2 and a message naming the
# option, instead of being read as a number prefix (atoi/strtoll).
# Usage: test_cli_numbers.sh path/to/sldd
SLDD=$1
fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# expect STATUS TEXT-IN-STDERR ARGS...
expect() {
    want=$1 text=$2
    shift 2
    "$SLDD" "$@" >/dev/null 2>"$out"
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: sldd $* exited $got, expected $want"; cat "$out"; fail=1
    elif [ -n "$text" ] && ! grep -qF -- "$text" "$out"; then
        echo "FAIL: sldd $*: stderr lacks '$text'"; cat "$out"; fail=1
    else
        echo "ok: sldd $* -> $got"
    fi
}

expect 0 "" models --in-channels 1 --size 28 --classes 10
expect 2 "--in-channels '3x' is not a non-negative integer" models --in-channels 3x
expect 2 "--size '99999999999' is not" models --size 99999999999
expect 2 "--classes '-1' is not" models --classes -1
expect 2 "--depth '' is not" models --depth ""
expect 2 "--width ' 8' is not" models --width " 8"
expect 0 "" compression --images 3
expect 2 "--images '12abc' is not a positive integer" compression --images 12abc
expect 2 "--images '0' is not a positive integer" compression --images 0
expect 2 "--classes '+3' is not" compression --classes +3
expect 2 "--limit 'ten' is not a non-negative integer" audit show --dir /nonexistent --limit ten
expect 2 "--limit '-5' is not" audit show --dir /nonexistent --limit -5
exit $fail
