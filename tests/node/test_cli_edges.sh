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

# ---- help for a command, and its groups ----
expect 0 "usage: sldd bundle" -- "$SLDD" help bundle
expect 0 "usage: sldd job" -- "$SLDD" help job
expect 2 "unknown command 'bundel' (did you mean 'bundle'?)" -- "$SLDD" help bundel
help=$("$SLDD" bundle --help)
check "bundle help has the workflow group" grep -q "^The approval workflow" <<<"$help"
check "bundle help has the by-hand group" grep -q "^By hand" <<<"$help"
check "bundle help lists approve ID once and approve --in once" \
  test "$(grep -c 'sldd bundle approve ID' <<<"$help")$(grep -c 'sldd bundle approve --in' <<<"$help")" = 11
check "the workflow comes before the by-hand commands" \
  test "$(grep -n 'bundle list' <<<"$help" | cut -d: -f1)" -lt "$(grep -n 'bundle make-test' <<<"$help" | cut -d: -f1)"

# ---- unknown words are named, with the nearest known one ----
expect 2 "unknown command 'bundel' (did you mean 'bundle'?)" -- "$SLDD" bundel
expect 2 "unknown command 'xyzzy' (one of: models," -- "$SLDD" xyzzy
expect 2 "unknown subcommand 'lsit' (did you mean 'list'?)" -- "$SLDD" job lsit
expect 2 "unknown subcommand 'frobnicate' (one of: distill, list" -- "$SLDD" job frobnicate
expect 2 "unknown subcommand 'aprove' (did you mean 'approve'?)" -- "$SLDD" bundle aprove
expect 2 "unknown subcommand 'shwo' (did you mean 'show'?)" -- "$SLDD" keys shwo
expect 2 "unknown subcommand 'lst' (did you mean 'list'?)" -- "$SLDD" peer lst
expect 2 "unknown subcommand 'ad' (did you mean 'add'?)" -- "$SLDD" admin ad
expect 2 "unknown subcommand 'verfy' (did you mean 'verify'?)" -- "$SLDD" audit verfy
expect 2 "unknown subcommand 'synt' (did you mean 'synth'?)" -- "$SLDD" dataset synt
expect 2 "unknown subcommand 'aduit' (did you mean 'audit'?)" -- "$SLDD" privacy aduit

# ---- a --dir that is not a node directory is named as such ----
expect 1 "$T/nonexist is not a node directory (no node.conf); run sldd init" -- \
  "$SLDD" serve --dir "$T/nonexist"
mkdir "$T/emptydir"
expect 1 "$T/emptydir is not a node directory (no node.conf)" -- "$SLDD" serve --dir "$T/emptydir"
write_rgb_png "$T/img.png"
expect 1 "node-zz is not a node directory (no node.conf); run sldd init" -- \
  "$SLDD" detect --bundle abc --dir "$T/node-zz" "$T/img.png"
expect 2 "--dir NODE goes with --bundle ID" -- "$SLDD" detect --dir "$T/node-zz" "$T/img.png"

# ---- a passphrase file open to others is refused, naming it ----
expect 0 "" -- "$SLDD" init --dir "$T/n" --id node-e
printf 'a long passphrase for tests\n' >"$T/pass"
chmod 644 "$T/pass"
expect 1 "passphrase file $T/pass is open to others (mode 644): chmod 600 $T/pass" -- \
  "$SLDD" admin add --dir "$T/n" --name alice --passphrase-file "$T/pass" --kdf interactive
check "no admin key was made from it" test ! -e "$T/n/admins/alice.key"
chmod 640 "$T/pass"
expect 1 "(mode 640): chmod 600" -- \
  "$SLDD" admin add --dir "$T/n" --name alice --passphrase-file "$T/pass" --kdf interactive
chmod 600 "$T/pass"
expect 0 "" -- "$SLDD" admin add --dir "$T/n" --name alice --passphrase-file "$T/pass" --kdf interactive
expect 0 "alice" -- "$SLDD" admin list --dir "$T/n"
"$SLDD" admin list --dir "$T/n" --json >"$T/admins.json"
check "admin list --json" "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert [a["name"] for a in d] == ["alice"] and d[0]["fingerprint"].startswith("SHA256:")' "$T/admins.json"
"$SLDD" models --size 28 --json >"$T/models.json"
check "models --json" "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); m={x["name"]: x for x in d}; assert m["lenet"]["parameters"] == 61111 and len(d) == 16, d' "$T/models.json"

# ---- the demo rejects a bundle whose sender HM is near 0 (docs/admin.md) ----
"$SLDD" demo --quick --dir "$T/demo" >"$T/demo.txt" 2>&1
check "demo --quick ran" test $? -eq 0
# the closing table: every row with sender HM below 0.2 is rejected, no other
rows=$(awk '/HM sender/{t=1; next} t && NF==0{t=0} t' "$T/demo.txt")
low=$(awk '$6 < 0.2' <<<"$rows" | wc -l)
check "the demo's closing table has both bundles" test "$(wc -l <<<"$rows")" -eq 2
check "each low-HM bundle is rejected, not sent" \
  test "$(awk '$6 < 0.2 && /rejected by admin-.*not sent/' <<<"$rows" | wc -l)" -eq "$low"
check "no other bundle is rejected" test "$(grep -c 'rejected by' <<<"$rows")" -eq "$low"
check "the approvals say REJECTED as often" test "$(grep -c 'REJECTED by admin-' "$T/demo.txt")" -eq "$low"
if [ "$low" -gt 0 ]; then
  check "the rejection's reason is in the audit log" \
    grep -q "rejection .*sender HM 0" <<<"$("$SLDD" audit show --dir "$T/demo/hospital-a"
                                          "$SLDD" audit show --dir "$T/demo/hospital-b")"
fi

# ---- --json: a flag, JSON on stdout ----
"$SLDD" peer show --dir "$T/demo/hospital-a" --id hospital-b --json >"$T/peer.json"
check "peer show --json" "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["id"] == "hospital-b" and d["admins"][0]["name"] == "admin-b" and d["sign_fingerprint"].startswith("SHA256:")' "$T/peer.json"
"$SLDD" peer list --dir "$T/demo/hospital-a" --json >"$T/peers.json"
check "peer list --json (no daemon)" "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert sorted(p["id"] for p in d) == ["hospital-b", "hospital-c"], d' "$T/peers.json"
A=$T/demo/hospital-c
expect 0 '"intact":true' -- "$SLDD" audit verify --dir "$A" --json
"$SLDD" audit verify --dir "$A" --json >"$T/v.json"
check "audit verify --json parses" "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["entries"] > 0 and d["problems"] == []' "$T/v.json"
"$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("UPDATE audit SET detail=detail||\"x\" WHERE seq=2"); c.commit()' "$A/state.db"
expect 1 '"intact":false' -- "$SLDD" audit verify --dir "$A" --json
"$SLDD" audit verify --dir "$A" --json >"$T/v.json"
check "a damaged log's JSON names the entry" "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert any("entry 2" in p for p in d["problems"]), d' "$T/v.json"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
