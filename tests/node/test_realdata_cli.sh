#!/usr/bin/env bash
# test_realdata_cli.sh - what real data sets bring that the synthetic default
# one does not: a validation split of one label (HM undefined), a class with
# no training patch, an image with no labelled patch, and output redirected
# to a pipe for a long run.  Each check names what it guards:
#   baseline: step size chosen by a defined figure, never 0 by default;
#             --width/--depth; one line per step size as it is scored; the
#             empty class named
#   distill:  result.json is strict JSON, undefined figures null
#   prepare:  true warnings, each image without a labelled patch named
#
# usage: test_realdata_cli.sh /path/to/sldd
set -u
SLDD=${1:?usage: $0 /path/to/sldd}
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/sldd-realdata-XXXXXX")
trap 'rm -rf "$T"' EXIT
export OPENBLAS_NUM_THREADS=1
. "$(dirname "$0")/cli_lib.sh"

# strict_json FILE...: every file (every line of a .jsonl) parses with NaN,
# Infinity and -Infinity refused
strict_json() {
  "$PY" - "$@" <<'PYEOF'
import json, sys
def refuse(name):
    raise ValueError("not JSON: " + name)
for path in sys.argv[1:]:
    text = open(path).read()
    docs = text.splitlines() if path.endswith(".jsonl") else [text]
    for d in docs:
        json.loads(d, parse_constant=refuse)
PYEOF
}

D=$T/data
"$SLDD" dataset synth --out "$D" --count 12 --size 96 --seed 5 --split-fractions 0.5,0.25,0.25 >/dev/null 2>&1
GEOM=(--patch 24 --stride 12 --patch-resize 12)

# ---- a validation split of gastritis images only: HM undefined ----
ONE=$T/one
cp -r "$D" "$ONE"
awk -F, 'BEGIN{OFS=","} NR>1 && $3=="val" && $2=="0"{$3="train"} {print}' "$D/labels.csv" >"$ONE/labels.csv"
check "the one-label split has validation images" grep -q ',1,val$' "$ONE/labels.csv"
check "... of one label only" bash -c "! grep -q ',0,val$' '$ONE/labels.csv'"
expect 0 "wrote" -- "$SLDD" dataset prepare --data "$ONE" "${GEOM[@]}"

"$SLDD" baseline --data "$ONE" --arch convnet-bn --width 4 --images-per-step 3 --steps 1 \
  --epochs-inner 1 >"$T/b1.txt" 2>&1
check "baseline with undefined validation HM exits 0" test $? -eq 0
check "baseline says HM is undefined" grep -q "validation HM undefined" "$T/b1.txt"
check "baseline falls back to patch accuracy, and says so" \
  grep -q "chosen by validation patch accuracy" "$T/b1.txt"
check "baseline does not train with step size 0" bash -c "! grep -q 'steps of size 0\$' '$T/b1.txt'"
check "baseline trains with a step size of the grid" \
  grep -Eq "steps of size (0.001|0.003|0.01|0.03|0.1|0.3)$" "$T/b1.txt"
check "baseline prints no nan" bash -c "! grep -qi 'nan' '$T/b1.txt'"
expect 0 "by image-level HM on a gastric data set" -- "$SLDD" baseline --help
check "baseline help no longer says it scores accuracy alone" \
  bash -c "! '$SLDD' baseline --help | grep -q 'by validation\$'"

# --width / --depth: the distilled network's size, checked ranges
expect 0 "baseline convnet-bn(d2,w4)" -- "$SLDD" baseline --data "$ONE" --arch convnet-bn \
  --depth 2 --width 4 --images-per-step 3 --steps 1 --epochs-inner 1
expect 2 "--width '0' is not an integer in 1..4096" -- "$SLDD" baseline --data "$ONE" --width 0
expect 2 "--depth '17' is not an integer in 1..16" -- "$SLDD" baseline --data "$ONE" --depth 17

# neither HM nor patch accuracy on the validation split (no masks there): refused
NOMASK=$T/nomask
cp -r "$ONE" "$NOMASK"
for id in $(awk -F, '$3=="val"{print $1}' "$NOMASK/labels.csv"); do rm "$NOMASK/masks/$id.png"; done
"$SLDD" dataset prepare --data "$NOMASK" "${GEOM[@]}" >/dev/null 2>&1
expect 1 "cannot choose a step size" -- "$SLDD" baseline --data "$NOMASK" --arch convnet-bn \
  --width 4 --images-per-step 3 --steps 1 --epochs-inner 1

# ---- distill on it: result.json and log.jsonl are strict JSON ----
expect 0 "Spe undefined" -- "$SLDD" distill --data "$ONE" --out "$T/dist" --arch convnet-bn \
  --width 4 --images-per-step 3 --iterations 2 --real-batch 16 --eval-every 1 \
  --checkpoint-every 0 --quiet
check "distill result.json is strict JSON" strict_json "$T/dist/result.json"
check "distill log.jsonl is strict JSON" strict_json "$T/dist/log.jsonl"
check "undefined Spe, HM and AUC are null, not 0" "$PY" -c "
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(not (r['spe'] is None and r['hm'] is None and r['auc'] is None and r['sen'] == 0))
" "$T/dist/result.json"
# the OpenBLAS kernel set decides the last bits of a CPU run: recorded, and shown
check "result.json names the OpenBLAS kernel set" "$PY" -c "
import json, sys
b = json.load(open(sys.argv[1])).get('blas')
sys.exit(not (isinstance(b, str) and b and b != 'unknown'))
" "$T/dist/result.json"
expect 0 "OpenBLAS kernels: " -- "$SLDD" --version
expect 0 "direct convolution kernels: " -- "$SLDD" --version
check "result.json names the direct kernels' instruction set" "$PY" -c "
import json, sys
k = json.load(open(sys.argv[1])).get('direct_kernels')
sys.exit(not (isinstance(k, str) and k))
" "$T/dist/result.json"
# the first iteration's time (start-up included) beside the run's mean: both
# positive, and the mean over 2 iterations at least half the first
check "result.json has sec_first_iter and sec_per_iter" "$PY" -c "
import json, sys
r = json.load(open(sys.argv[1]))
f, m = r.get('sec_first_iter'), r.get('sec_per_iter')
sys.exit(not (all(isinstance(v, (int, float)) for v in (f, m)) and f > 0 and m > 0 and 2 * m >= f))
" "$T/dist/result.json"
# the payload marks them undefined (Metrics.undefined, docs/bundle-format.md)
# instead of carrying 0, and a reader says so
expect 0 "hm undefined" -- "$SLDD" bundle inspect "$T/dist/payload.pb" --type payload
expect 0 "sen 0.0000 spe undefined hm undefined auc undefined" -- \
  "$SLDD" bundle inspect "$T/dist/payload.pb" --type payload
if command -v protoc >/dev/null; then
  PROTO_DIR=$(cd "$(dirname "$0")/../../proto" && pwd)
  protoc --proto_path="$PROTO_DIR" --decode=sldd.v1.Bundle sldd.proto <"$T/dist/payload.pb" \
    >"$T/decode.txt" 2>&1
  check "protoc: Spe, HM and AUC marked undefined (4 + 8 + 16)" grep -q "undefined: 28" "$T/decode.txt"
fi
# sldd train and sldd evaluate write the same way
expect 0 "weights:" -- "$SLDD" train --data "$ONE" --arch convnet-bn --width 4 --epochs 1 \
  --batch 8 --split val --out "$T/tr" --quiet
check "train result.json is strict JSON" strict_json "$T/tr/result.json"
expect 0 "HM" -- "$SLDD" evaluate --weights "$T/tr/weights.sldw" --data "$ONE" --split val
"$SLDD" evaluate --weights "$T/tr/weights.sldw" --data "$ONE" --split val --json >"$T/ev.json"
check "evaluate JSON is strict JSON" strict_json "$T/ev.json"

# ---- no gastritis image in training: no P patch ----
NOP=$T/nop
cp -r "$D" "$NOP"
awk -F, 'BEGIN{OFS=","} NR>1 && $3=="train" && $2=="1"{$3="test"} {print}' "$D/labels.csv" >"$NOP/labels.csv"
expect 0 "wrote" -- "$SLDD" dataset prepare --data "$NOP" "${GEOM[@]}"
"$SLDD" dataset prepare --data "$NOP" "${GEOM[@]}" >/dev/null 2>"$T/nop.err"
check "prepare warns of the class with no training patch" \
  grep -q "warning: no training patches of class P: distillation and training still run" "$T/nop.err"
check "prepare no longer claims distillation needs all three" \
  bash -c "! grep -q 'needs all three' '$T/nop.err'"
expect 0 "payload:" -- "$SLDD" distill --data "$NOP" --out "$T/distnop" --arch convnet-bn \
  --width 4 --images-per-step 3 --iterations 1 --real-batch 16 --eval-every 0 \
  --checkpoint-every 0 --quiet
expect 1 "the training split has no sample of class P" -- "$SLDD" baseline --data "$NOP" \
  --arch convnet-bn --width 4 --images-per-step 3 --steps 1 --epochs-inner 1
expect 0 "baseline:" -- "$SLDD" baseline --data "$NOP" --arch convnet-bn --width 4 \
  --images-per-step 2 --steps 1 --epochs-inner 1

# ---- an image whose every window is 1 % to 85 % stomach: named ----
STRIPE=$T/stripe
cp -r "$D" "$STRIPE"
sid=$(awk -F, '$3=="train"{print $1; exit}' "$STRIPE/labels.csv")
write_test_png "$STRIPE/masks/$sid.png" stripes
"$SLDD" dataset prepare --data "$STRIPE" "${GEOM[@]}" >/dev/null 2>"$T/stripe.err"
check "prepare names the image with no labelled patch" \
  grep -q "warning: $STRIPE/images/$sid.png (train): no labelled patch with --patch 24 --stride 12" \
  "$T/stripe.err"
check "... and no other image" test "$(grep -c 'no labelled patch with' "$T/stripe.err")" -eq 1

# ---- baseline into a pipe: each step size's line arrives as it is scored ----
# (block-buffered, all lines would arrive in one write at exit)
check "baseline's lines arrive one by one through a pipe" "$PY" - "$SLDD" "$ONE" <<'PYEOF'
import os, select, subprocess, sys
p = subprocess.Popen([sys.argv[1], "baseline", "--data", sys.argv[2], "--arch", "convnet-bn",
                      "--width", "8", "--images-per-step", "3", "--steps", "2",
                      "--epochs-inner", "2"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
fd, chunks = p.stdout.fileno(), []
while True:
    select.select([fd], [], [])
    b = os.read(fd, 65536)
    if not b:
        break
    chunks.append(b.decode())
p.wait()
first = next(i for i, c in enumerate(chunks) if "step size 0.001" in c)
last = next(i for i, c in enumerate(chunks) if "baseline:" in c)
print("%d reads; first step size in read %d, result in read %d" % (len(chunks), first, last))
sys.exit(not (p.returncode == 0 and first < last))
PYEOF

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
