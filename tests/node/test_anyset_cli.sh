#!/usr/bin/env bash
# test_anyset_cli.sh - any labelled image set, not only gastric: a two-class
# and a three-class folder of PNGs with a labels CSV (names, numbers such as
# 1.0, split names in any case, rows without a split) go through dataset
# prepare (--val-fraction: a stratified, seeded split recorded in
# prepared.json; --json prints it), distill, replay, train, baseline (the
# step size chosen by the task's image-level figure) and detect (one image
# and a folder: CSV and JSON rows), and every
# output and picture uses the set's own class names, never the gastric ones.
# The images are made here: textures whose class is learnable, 8-bit gray.
#
# usage: test_anyset_cli.sh /path/to/sldd
set -u
SLDD=${1:?usage: $0 /path/to/sldd}
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/sldd-anyset-XXXXXX")
trap 'rm -rf "$T"' EXIT
export OPENBLAS_NUM_THREADS=1
. "$(dirname "$0")/cli_lib.sh"
PROTO_DIR=$(cd "$(dirname "$0")/../../proto" && pwd)

is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }

# make_set DIR K N: N images per class of 32x32, class k a stripe period of
# 2+2k pixels; labels.csv with names (K=2: numbers, some as 1.0), splits in
# mixed case for the test rows and empty for the rest.
make_set() {
  "$PY" - "$@" <<'EOF'
import os, struct, sys, zlib, random
d, k, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d + "/pics/sub", exist_ok=True)
names = ["cat", "dog", "emu"][:k]
def png(path, rows):
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
    w, h = len(rows[0]), len(rows)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
rnd = random.Random(7)
lines = ["file,label,split,patient_note"]
for c in range(k):
    for i in range(n):
        per = 2 + 2 * c
        rows = [[max(0, min(255, (200 if (x // per) % 2 else 60) + rnd.randint(-20, 20)))
                 for x in range(32)] for y in range(32)]
        f = "sub/%s %d.png" % (names[c], i) if i % 2 else "%s_%d.png" % (names[c], i)
        png(d + "/pics/" + f, rows)
        lab = (str(c) if i % 3 else "%d.0" % c) if k == 2 else names[c].upper() if i % 2 else names[c]
        split = ("TEST" if i % 2 else "Test") if i >= n - 2 else ""
        lines.append('"%s",%s,%s,private' % (f, lab, split))
open(d + "/labels.csv", "w").write("\n".join(lines) + "\n")
EOF
}

run_set() { # run_set NAME K CLASSNAME... : the whole pipeline on one set
  local name=$1 k=$2; shift 2
  local S=$T/$name D=$T/$name/data
  make_set "$S" "$k" 10
  local extra=()
  [ "$k" = 2 ] && extra=(--classes "$1,$2")
  expect 0 "wrote $D/prepared.json" -- "$SLDD" dataset prepare --data "$D" --images "$S/pics" \
    --labels "$S/labels.csv" --val-fraction 0.25 --seed 3 --patch 32 --stride 32 --patch-resize 16 --task "$name" "${extra[@]}"
  "$SLDD" dataset prepare --data "$D" --patch 32 --stride 32 --patch-resize 16 >"$S/prep.txt" 2>&1
  for c in "$@"; do
    check "$name: prepare prints class $c" grep -q " $c " "$S/prep.txt"
  done
  check "$name: prepared.json has the task" grep -q "\"labels\": \[\"$1\", \"$2\"" "$D/prepared.json"
  # stratified: 8 training images per class (2 are test), round(8 * 0.25) = 2 of each to val
  check "$name: split recorded" grep -q '"split": {"val_fraction": 0.25, "test_fraction": 0, "seed": 3' "$D/prepared.json"
  check "$name: 2 val images of $1" grep -q "\"val\": {\"$1\": 2, \"$2\": 2" "$D/prepared.json"
  check "$name: 6 train images of $1" grep -q "\"train\": {\"$1\": 6, \"$2\": 6" "$D/prepared.json"
  check "$name: val count in labels.csv" test "$(grep -c ',val$' "$D/labels.csv")" -eq $((2 * k))
  check "$name: no gastric names" bash -c "! grep -qi 'gastritis\\|stomach' '$D/prepared.json' '$S/prep.txt'"

  expect 0 "payload:" -- "$SLDD" distill --data "$D" --out "$S/dist" --arch convnet-bn --width 4 \
    --images-per-step $k --iterations 2 --real-batch 8 --eval-every 0 --checkpoint-every 0 --quiet
  check "$name: grid.png written" is_png "$S/dist/grid.png"
  check "$name: result.json names the task" grep -q "\"task\":\"$name\"" "$S/dist/result.json"
  "$SLDD" bundle inspect "$S/dist/payload.pb" >"$S/inspect.txt" 2>&1
  check "$name: payload carries the class names" grep -q "$2" "$S/inspect.txt"
  # the task is an optional field of the wire format, readable by protoc
  if command -v protoc >/dev/null; then
    protoc --proto_path="$PROTO_DIR" --decode=sldd.v1.Bundle sldd.proto <"$S/dist/payload.pb" >"$S/decode.txt" 2>&1
    check "$name: protoc decodes the task" grep -q "name: \"$name\"" "$S/decode.txt"
    check "$name: protoc decodes the class names" grep -q "class_names: \"$2\"" "$S/decode.txt"
  fi

  local IMG=$D/images/$(awk -F, '$3=="test"{print $1; exit}' "$D/labels.csv").png
  "$SLDD" replay --model "$S/dist/payload.pb" --data "$D" >"$S/replay.txt" 2>&1
  check "$name: replay ran" test $? -eq 0
  for c in "$@"; do check "$name: replay names $c" grep -q "$c" "$S/replay.txt"; done
  "$SLDD" detect "$IMG" --model "$S/dist/payload.pb" --heatmap "$S/heat.png" >"$S/detect.txt" 2>&1
  check "$name: detect ran" test $? -eq 0
  check "$name: heat map written" is_png "$S/heat.png"
  check "$name: detect names a class" grep -Eq "decision: +($(IFS='|'; echo "$*"))" "$S/detect.txt"
  "$SLDD" detect "$IMG" --model "$S/dist/payload.pb" --json >"$S/detect.json" 2>&1
  check "$name: detect JSON has the class counts" grep -q "\"$1\":" "$S/detect.json"
  # a folder: the rows' columns and decisions are the task's class names
  "$SLDD" detect "$D/images" --model "$S/dist/payload.pb" >"$S/batch.csv" 2>"$S/batch.err"
  check "$name: batch detect ran" test $? -eq 0
  check "$name: batch CSV header has the class names" test "$(head -1 "$S/batch.csv")" = \
    "image,sha256,r,decision,$(IFS=,; echo "$*"),bundle,sender,heatmap,error"
  check "$name: batch CSV decisions are class names" "$PY" - "$S/batch.csv" "$@" <<'EOF2'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
names = sys.argv[2:]
assert len(rows) == 10 * len(names), len(rows)
for r in rows:
    assert r["decision"] in names + ["undetermined"], r["decision"]
    assert sum(int(r[n]) for n in names) == 1, r
EOF2
  "$SLDD" detect "$D/images" --model "$S/dist/payload.pb" --json >"$S/batch.jsonl" 2>"$S/batch.err"
  check "$name: batch JSON rows carry the task" "$PY" - "$S/batch.jsonl" "$name" "$@" <<'EOF2'
import json, sys
def bad(c): raise ValueError("not JSON: " + c)
names = sys.argv[3:]
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 10 * len(names), len(lines)
for l in lines:
    o = json.loads(l, parse_constant=bad)
    assert o["task"] == sys.argv[2] and list(o["classes"]) == names, o
    assert o["decision"] in names + ["undetermined"], o
    assert not {"I", "N", "P"} & set(o), o
EOF2
  # --json: prepared.json's object on stdout, nothing else
  "$SLDD" dataset prepare --data "$D" --patch 32 --stride 32 --patch-resize 16 --json \
    >"$S/prep.json" 2>"$S/prep.err"
  check "$name: prepare --json ran" test $? -eq 0
  check "$name: prepare --json prints prepared.json" cmp -s "$S/prep.json" "$D/prepared.json"
  check "$name: prepare --json is strict JSON with the task" "$PY" - "$S/prep.json" "$name" "$@" <<'EOF2'
import json, sys
def bad(c): raise ValueError("not JSON: " + c)
o = json.loads(open(sys.argv[1]).read(), parse_constant=bad)
names = sys.argv[3:]
assert o["task"]["name"] == sys.argv[2] and o["task"]["labels"] == names, o["task"]
assert o["task"]["split"]["val_fraction"] == 0.25 and o["task"]["split"]["seed"] == 3, o["task"]
assert (o["patch"], o["stride"], o["patch_resize"]) == (32, 32, 16), o
assert o["images"]["val"] == {n: 2 for n in names}, o["images"]
EOF2
  check "$name: prepare --json keeps the messages off stdout" grep -q "wrote $D/prepared.json" "$S/prep.err"
  "$SLDD" evaluate --model "$S/dist/payload.pb" --data "$D" --json >"$S/ev.json" 2>"$S/ev.err"
  check "$name: evaluate ran" test $? -eq 0
  check "$name: evaluate JSON names the task" grep -q "\"task\":\"$name\"" "$S/ev.json"

  expect 0 "weights: $S/tr/weights.sldw" -- "$SLDD" train --data "$D" --arch convnet-bn --width 4 \
    --per-class 4 --epochs 2 --batch 8 --out "$S/tr" --quiet
  check "$name: baseline curves written" is_png "$S/tr/curves.png"
  # the step size is chosen by the task's image-level figure: HM for two
  # classes, image accuracy under the majority rule (HM is undefined there)
  "$SLDD" baseline --data "$D" --arch convnet-bn --width 4 --images-per-step $k --steps 2 \
    --epochs-inner 1 >"$S/baseline.txt" 2>&1
  check "$name: baseline ran" test $? -eq 0
  local fig=HM; [ "$k" -gt 2 ] && fig="image accuracy"
  check "$name: baseline chose by validation $fig" grep -Eq "^chosen step size [0-9.]+ \(validation $fig [0-9.]+\)" "$S/baseline.txt"
  check "$name: baseline scored every step size by $fig" test "$(grep -c "^step size .* validation $fig [0-9.]" "$S/baseline.txt")" -eq 6
  check "$name: baseline did not fall back" bash -c "! grep -q 'undefined at every step size' '$S/baseline.txt'"
  "$SLDD" detect "$IMG" --weights "$S/tr/weights.sldw" --heatmap "$S/heat2.png" --json >"$S/detect2.json" 2>&1
  check "$name: detect --weights keeps the task" grep -q "\"task\":\"$name\"" "$S/detect2.json"
  check "$name: heat map from weights" is_png "$S/heat2.png"
  check "$name: no gastric words anywhere" bash -c "! grep -rqi 'gastritis\\|stomach' '$S'/*.txt '$S'/*.json '$S/dist/result.json' '$S/tr/result.json'"
}

run_set chest 2 normal pneumonia
run_set pets 3 cat dog emu

# ---- bad input ----
make_set "$T/bad" 2 4
expect 2 "--images and --labels go together" -- "$SLDD" dataset prepare --data "$T/b1" --images "$T/bad/pics"
expect 2 "need --images" -- "$SLDD" dataset prepare --data "$T/b1" --val-fraction 0.2
sed 's/^"cat_0.png",0.0,/"cat_0.png",7,/' "$T/bad/labels.csv" >"$T/bad/l2.csv"
expect 1 "label '7' is not one of the classes" -- "$SLDD" dataset prepare --data "$T/b2" \
  --images "$T/bad/pics" --labels "$T/bad/l2.csv" --classes a,b
sed 's/^"cat_0.png",0.0,/"..\/x.png",0,/' "$T/bad/labels.csv" >"$T/bad/l3.csv"
expect 1 "must be a relative path inside the image folder" -- "$SLDD" dataset prepare --data "$T/b3" \
  --images "$T/bad/pics" --labels "$T/bad/l3.csv"
sed 's/,Test,/,later,/' "$T/bad/labels.csv" >"$T/bad/l4.csv"
expect 1 "split 'later' is not train, val or test" -- "$SLDD" dataset prepare --data "$T/b4" \
  --images "$T/bad/pics" --labels "$T/bad/l4.csv"
expect 1 "class name 'A' is given twice" -- "$SLDD" dataset prepare --data "$T/b5" \
  --images "$T/bad/pics" --labels "$T/bad/labels.csv" --classes a,A
expect 1 "a region-outside class needs masks" -- "$SLDD" dataset prepare --data "$T/b6" \
  --images "$T/bad/pics" --labels "$T/bad/labels.csv" --outside background

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
