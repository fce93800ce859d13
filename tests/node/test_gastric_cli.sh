#!/usr/bin/env bash
# test_gastric_cli.sh - the gastric pipeline end to end on a tiny synthetic
# data set: distil -> detect -> evaluate / replay, train -> detect --weights
# -> evaluate --weights, with the pictures they write; and every bad input of
# detect, evaluate, replay and train refused with its message and exit status
# (1 bad input, 2 usage error).  Settings are tiny so it runs in seconds;
# nothing here checks how good a model is.
#
# usage: test_gastric_cli.sh /path/to/sldd
set -u
SLDD=${1:?usage: $0 /path/to/sldd}
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/sldd-gastric-XXXXXX")
trap 'rm -rf "$T"' EXIT
export OPENBLAS_NUM_THREADS=1
. "$(dirname "$0")/cli_lib.sh"

is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }

# ---- a tiny prepared data set ----
D=$T/data
"$SLDD" dataset synth --out "$D" --count 12 --size 96 --seed 5 --split-fractions 0.5,0.25,0.25 >/dev/null 2>&1
expect 0 "wrote $D/prepared.json" -- "$SLDD" dataset prepare --data "$D" --patch 24 --stride 12 --patch-resize 12
IMG=$D/images/$(awk -F, '$3=="test"{print $1; exit}' "$D/labels.csv").png

# ---- distil -> detect -> evaluate ----
expect 0 "payload:" -- "$SLDD" distill --data "$D" --out "$T/dist" --arch convnet-bn --width 4 \
  --images-per-step 3 --iterations 2 --real-batch 16 --eval-every 0 --checkpoint-every 0 --quiet
P=$T/dist/payload.pb
# an --out holding an earlier run is refused, and nothing in it is touched
sum=$(sha256sum "$P")
expect 2 "holds an earlier run (log.jsonl, payload.pb, result.json, grid.png" -- "$SLDD" distill \
  --data "$D" --out "$T/dist" --arch convnet-bn --width 4 --iterations 1 --quiet
check "the refused run left the payload alone" test "$(sha256sum "$P")" = "$sum"
expect 2 "not both" -- "$SLDD" distill --data "$D" --out "$T/dist" --resume --force
# --force starts again; --resume drops the old result before anything else
cp -r "$T/dist" "$T/dist2"
echo "kept" >"$T/dist2/run.txt"
expect 0 "payload:" -- "$SLDD" distill --data "$D" --out "$T/dist2" --arch convnet-bn --width 4 \
  --images-per-step 3 --iterations 1 --real-batch 16 --eval-every 0 --checkpoint-every 1 --quiet \
  --force
check "--force wrote a new run" test "$(wc -l <"$T/dist2/log.jsonl")" -eq 1
check "--force left other files" grep -q kept "$T/dist2/run.txt"
expect 1 "" -- "$SLDD" distill --data "$T/no-such-data" --out "$T/dist2" --resume
check "--resume removed the earlier payload" test ! -e "$T/dist2/payload.pb" -a ! -e "$T/dist2/grid.png"
check "--resume kept the checkpoint and the log" test -s "$T/dist2/checkpoint" -a -s "$T/dist2/log.jsonl"
expect 0 "decision:" -- "$SLDD" detect "$IMG" --model "$P" --heatmap "$T/heat.png"
check "heat map is a PNG" is_png "$T/heat.png"
expect 0 "grid:      7 x 7 = 49 patches of 24x24, stride 12, network input 12x12" -- "$SLDD" detect "$IMG" --model "$P"
expect 0 "SYNTHETIC" -- "$SLDD" detect "$IMG" --model "$P"
expect 0 '"grid":[7,7]' -- "$SLDD" detect "$IMG" --model "$P" --json --delta 0.5
expect 0 "image level at delta 0.400: Sen" -- "$SLDD" evaluate --model "$P" --data "$D" --roc "$T/roc.png"
check "ROC is a PNG" is_png "$T/roc.png"
# --json is a flag as everywhere: one JSON object on stdout and no text
"$SLDD" evaluate --model "$P" --data "$D" --json >"$T/ev.json" 2>"$T/ev.err"
check "evaluate --json exits 0" test $? -eq 0
check "evaluate --json prints one strict JSON object with hm and auc" "$PY" -c '
import json, sys
bad = lambda c: sys.exit("not JSON: " + c)
d = json.load(open(sys.argv[1]), parse_constant=bad)
assert "hm" in d and "auc" in d and "confusion" in d, d' "$T/ev.json"
expect 2 "unexpected argument '$T/x.json'" -- "$SLDD" evaluate --model "$P" --data "$D" --json "$T/x.json"
expect 0 "best delta on the val split" -- "$SLDD" evaluate --model "$P" --data "$D" --split val
expect 0 "confusion (rows: truth, columns: prediction)" -- "$SLDD" replay --model "$P" --data "$D"
expect 0 "split val" -- "$SLDD" replay --model "$P" --data "$D" --split val --delta 0.3

# ---- train -> detect --weights -> evaluate --weights ----
expect 0 "weights: $T/tr/weights.sldw" -- "$SLDD" train --data "$D" --arch convnet-bn --width 4 \
  --per-class 8 --epochs 2 --batch 8 --out "$T/tr" --quiet
W=$T/tr/weights.sldw
check "train result.json" grep -q '"kind":"train".*"samples":24,' "$T/tr/result.json"
check "train curves are a PNG" is_png "$T/tr/curves.png"
expect 0 "model:     weights: convnet-bn(d3,w4)" -- "$SLDD" detect "$IMG" --weights "$W" --heatmap "$T/heat2.png"
check "weights heat map is a PNG" is_png "$T/heat2.png"
expect 0 "image level at delta" -- "$SLDD" evaluate --weights "$W" --data "$D" --split val
expect 0 "training convnet(d3,w4)" -- "$SLDD" train --data "$D" --arch convnet --width 4 --optimizer adam --max-steps 3
# the same seed gives the same weights
"$SLDD" train --data "$D" --arch convnet-bn --width 4 --per-class 8 --epochs 2 --batch 8 --out "$T/tr2" --quiet >/dev/null 2>&1
check "training is deterministic" cmp -s "$W" "$T/tr2/weights.sldw"

# ---- detect: bad input ----
expect 0 "usage: sldd detect" -- "$SLDD" detect --help
expect 2 "IMAGE.png is required" -- "$SLDD" detect --model "$P"
echo "not an image" >"$T/text.png"
expect 2 "exactly one of --model PAYLOAD or --weights FILE" -- "$SLDD" detect "$IMG"
expect 2 "exactly one of --model PAYLOAD or --weights FILE" -- "$SLDD" detect "$IMG" --model "$P" --weights "$W"
expect 2 "--delta '1.5' is not a number in [0,1]" -- "$SLDD" detect "$IMG" --model "$P" --delta 1.5
expect 2 "unknown or incomplete option '--bogus'" -- "$SLDD" detect "$IMG" --bogus
# several images: one CSV row each (bad ones named, exit 1); --heatmap is for one image
expect 0 "image,sha256,r,decision,I,N,P,bundle,sender,heatmap,error" -- "$SLDD" detect "$IMG" "$IMG" --model "$P"
expect 1 ",error,0,0,0,,,,$T/text.png: not a PNG file" -- "$SLDD" detect "$IMG" "$T/text.png" --model "$P"
expect 2 "give --heatmaps DIR (not --heatmap)" -- "$SLDD" detect "$IMG" "$IMG" --model "$P" --heatmap "$T/h.png"
expect 1 "missing.png" -- "$SLDD" detect "$T/missing.png" --model "$P"
expect 1 "text.png: not a PNG file" -- "$SLDD" detect "$T/text.png" --model "$P"
head -c $(( $(stat -c %s "$IMG") / 2 )) "$IMG" >"$T/cut.png"
expect 1 "cut.png: corrupt or unreadable PNG" -- "$SLDD" detect "$T/cut.png" --model "$P"
write_rgb_png "$T/rgb.png"
expect 1 "rgb.png: RGB colour image" -- "$SLDD" detect "$T/rgb.png" --model "$P"
"$SLDD" dataset synth --out "$T/small" --count 1 --size 16 --split-fractions 1,0,0 >/dev/null 2>&1
expect 1 "smaller than one 24x24 patch" -- "$SLDD" detect "$T/small/images/synth0000.png" --model "$P"
expect 1 "cannot open $T/nope.pb" -- "$SLDD" detect "$IMG" --model "$T/nope.pb"
head -c 100 /dev/urandom >"$T/junk.pb"
expect 1 "junk.pb: not a usable payload" -- "$SLDD" detect "$IMG" --model "$T/junk.pb"
head -c $(( $(stat -c %s "$P") - 50 )) "$P" >"$T/short.pb"
expect 1 "short.pb: not a usable payload" -- "$SLDD" detect "$IMG" --model "$T/short.pb"
expect 1 "not a usable payload" -- "$SLDD" detect "$IMG" --model "$W"
expect 1 "not an sldd weights file" -- "$SLDD" detect "$IMG" --weights "$P"
cp "$W" "$T/flip.sldw"
printf '\x55' | dd of="$T/flip.sldw" bs=1 seek=$(( $(stat -c %s "$W") - 100 )) conv=notrunc 2>/dev/null
expect 1 "checksum mismatch" -- "$SLDD" detect "$IMG" --weights "$T/flip.sldw"
expect 1 "is not available" -- "$SLDD" detect "$IMG" --model "$P" --device nosuch

# ---- evaluate / replay: bad input ----
expect 0 "usage: sldd evaluate" -- "$SLDD" evaluate --help
expect 0 "usage: sldd replay --model PAYLOAD" -- "$SLDD" replay --help
expect 2 "--data SOURCE is required" -- "$SLDD" evaluate --model "$P"
expect 2 "exactly one of --model PAYLOAD, --weights FILE or --bundle ID" -- "$SLDD" evaluate --data "$D"
expect 2 "--split is val or test, not 'train'" -- "$SLDD" evaluate --model "$P" --data "$D" --split train
expect 2 "--delta 'x' is not a number in [0,1]" -- "$SLDD" evaluate --model "$P" --data "$D" --delta x
expect 2 "unexpected argument 'extra'" -- "$SLDD" evaluate --model "$P" --data "$D" extra
expect 2 "--roc needs gastric data" -- "$SLDD" evaluate --model "$P" --data fashion-mnist --roc "$T/r.png"
expect 2 "replays payloads only" -- "$SLDD" replay --weights "$W" --data "$D"
expect 2 "--model PAYLOAD is required" -- "$SLDD" replay --data "$D"
expect 1 "nowhere: " -- "$SLDD" evaluate --model "$P" --data "$T/nowhere"
expect 1 "junk.pb: not a usable payload" -- "$SLDD" evaluate --model "$T/junk.pb" --data "$D"
expect 1 "checksum mismatch" -- "$SLDD" evaluate --weights "$T/flip.sldw" --data "$D"
if [ -d /usr/share/datasets/fashion-mnist ]; then
  expect 1 "wrong model for this data" -- "$SLDD" evaluate --model "$P" --data fashion-mnist
fi
rm -rf "$T/bad"; cp -r "$D" "$T/bad"
id=$(awk -F, '$3=="test"{print $1; exit}' "$T/bad/labels.csv")
cp "$T/rgb.png" "$T/bad/images/$id.png"
expect 1 "bad/images/$id.png: RGB colour image" -- "$SLDD" evaluate --model "$P" --data "$T/bad"

# ---- train: bad input ----
expect 0 "usage: sldd train" -- "$SLDD" train --help
expect 2 "--data SOURCE and --arch NAME are required" -- "$SLDD" train --data "$D"
expect 2 "unknown architecture 'convnat'" -- "$SLDD" train --data "$D" --arch convnat
expect 2 "--optimizer is sgd or adam, not 'rmsprop'" -- "$SLDD" train --data "$D" --arch convnet --optimizer rmsprop
expect 2 "--lr '-1' is not a positive number" -- "$SLDD" train --data "$D" --arch convnet --lr -1
expect 2 "--per-class '0' is not an integer" -- "$SLDD" train --data "$D" --arch convnet --per-class 0
expect 2 "--epochs 'many' is not an integer" -- "$SLDD" train --data "$D" --arch convnet --epochs many
expect 2 "--momentum must be below 1" -- "$SLDD" train --data "$D" --arch convnet --momentum 1
expect 2 "--split is val or test" -- "$SLDD" train --data "$D" --arch convnet --split all
rm -f "$T/bad/prepared.json"
expect 1 "is not prepared (run 'sldd dataset prepare" -- "$SLDD" train --data "$T/bad" --arch convnet
expect 1 "training diverged" -- "$SLDD" train --data "$D" --arch convnet --width 4 --lr 1e6 --momentum 0 --epochs 3 --batch 16

# ---- differentially private distillation: the accounting is printed and
# carried, and no statistic of the training data outside the mechanism is in
# the payload (no sender metrics, no class counts, no nearest-neighbour audit)
expect 0 "epsilon after 3 iterations" -- "$SLDD" distill --data "$D" --out "$T/dp" --arch convnet-bn \
  --width 4 --images-per-step 3 --iterations 3 --real-batch 16 --checkpoint-every 0 \
  --dp-epsilon 8 --dp-clip 1
"$SLDD" bundle inspect "$T/dp/payload.pb" >"$T/dp.txt" 2>&1
check "DP payload states its accountant" grep -q "param dp_accountant  rdp-sgm-mtz19-bkmt20 v1" "$T/dp.txt"
check "DP payload states epsilon <= 8" awk '$2=="dp_epsilon"{exit !($3>0 && $3<=8)} END{}' "$T/dp.txt"
check "DP payload states delta" grep -q "param dp_delta       1e-05" "$T/dp.txt"
check "DP payload has no sender metrics" grep -q "metrics (none, 0 patches, 0 images)" "$T/dp.txt"
check "DP payload has no nearest-neighbour audit" grep -q "verdict              not-audited" "$T/dp.txt"
if command -v protoc >/dev/null; then
  protoc --decode=sldd.v1.Bundle -I "$(dirname "$0")/../../proto" sldd.proto <"$T/dp/payload.pb" >"$T/dp.pb.txt"
  check "DP payload has no class counts" bash -c "! grep -q 'counts {' '$T/dp.pb.txt'"
  check "a plain payload has class counts (the check can fail)" bash -c \
    "protoc --decode=sldd.v1.Bundle -I '$(dirname "$0")/../../proto' sldd.proto <'$P' | grep -q 'counts {'"
fi
check "DP payload's theta_bn is from the synthetic images" grep -q "dp_theta_bn    synthetic-images" "$T/dp.txt"
# the normalisation of a DP run is the public constants, not the training patches' statistics
check "DP payload's normalisation is public (mean 0.5, std 0.25)" bash -c \
  "grep -A4 '^normalisation:' '$T/dp.txt' | grep -q 'mean .* min 0.5 max 0.5' && grep -A4 '^normalisation:' '$T/dp.txt' | grep -q 'std .* min 0.25 max 0.25'"
check "DP payload says its normalisation is public" grep -q "dp_normalisation public-constants" "$T/dp.txt"
check "DP payload states its privacy unit" grep -q "dp_unit        patch" "$T/dp.txt"
expect 2 "give --dp-epsilon or --dp-noise, not both" -- "$SLDD" distill --data "$D" --out "$T/dp2" \
  --arch convnet-bn --width 4 --iterations 3 --real-batch 16 --dp-epsilon 8 --dp-noise 1
expect 2 "out of reach" -- "$SLDD" distill --data "$D" --out "$T/dp3" --arch convnet-bn --width 4 \
  --iterations 3 --real-batch 16 --dp-epsilon 0.000001

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
