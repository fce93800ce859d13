#!/usr/bin/env bash
# test_dicom_deid.sh - nothing identifying leaves (docs/dicom.md): DICOM
# objects carrying distinctive strings in Patient's Name, Patient ID,
# Institution Name, Accession Number, a private tag and the UIDs go through
# prepare -> distill -> the signed and approved statement (the bytes a
# bundle carries; sealing only encrypts them), and detect (text, JSON,
# heat map); then every file the node wrote (the data set folder, the
# distillation output, the node folder, the statement bytes, the heat map,
# every line printed) is searched for them.
# The same search over the source files must find them (the search works).
# Also: detect on DICOM gives the PNG path's answer on the same pixels, on
# the model's grid, and refuses an image without spacing for a model with
# a grid.
#
# usage: test_dicom_deid.sh /path/to/sldd /path/to/dicom_gen_tool
set -u
SLDD=${1:?usage: $0 SLDD GEN}
GEN=${2:?usage: $0 SLDD GEN}
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/sldd-dicom-deid-XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
export OPENBLAS_NUM_THREADS=1
. "$(dirname "$0")/../node/cli_lib.sh"
LOG=$T/out/log.txt
mkdir -p "$T/out"
PLANTED=(ZZPATNAME7Q ZZPID4821X ZZINST5590Y ZZACC9931W ZZPRIV5512V 3680043.8.498.99123)

S=$T/synth
"$SLDD" dataset synth --out "$S" --count 12 --size 96 --seed 5 --split-fractions 0.5,0.25,0.25 >/dev/null 2>&1
SRC=$T/src
mkdir -p "$SRC/masks"
echo "file,label,split" >"$SRC/labels.csv"
n=0
while IFS=, read -r id lab spl; do
  n=$((n + 1))
  "$GEN" --png "$S/images/$id.png" --out "$SRC/img$n.dcm" --variant m1 --xfer jpeg-ls --spacing 0.2 \
    --patient-name "ZZPATNAME7Q^Anna$n" --patient-id "ZZPID4821X$n" --institution "ZZINST5590Y Hospital" \
    --accession "ZZACC9931W$n" --private "ZZPRIV5512V secret $n" \
    --sop-uid "1.2.826.0.1.3680043.8.498.99123.1.$n" --study-uid "1.2.826.0.1.3680043.8.498.99123.2.$n"
  cp "$S/masks/$id.png" "$SRC/masks/img$n.png"
  echo "img$n.dcm,$lab,$spl" >>"$SRC/labels.csv"
  [ "$spl" = test ] && TESTN=$n && TESTID=$id
done < <(tail -n +2 "$S/labels.csv")

run() { "$@" >>"$LOG" 2>&1; }
D=$T/out/data
expect 0 "grid 0.2 mm per pixel" -- "$SLDD" dataset prepare --data "$D" --dicom "$SRC" --patch 24 --stride 12 --patch-resize 12
run "$SLDD" dataset prepare --data "$D" --patch 24 --stride 12 --patch-resize 12
check "distill" run "$SLDD" distill --data "$D" --out "$T/out/dist" --arch convnet-bn --width 4 \
  --images-per-step 3 --iterations 2 --real-batch 16 --eval-every 0 --checkpoint-every 0
P=$T/out/dist/payload.pb
check "the payload records the grid" grep -qa "mm_per_pixel" "$P"
# `sldd distill` signs nothing: its payload's sender is 'local'
check "init A" run "$SLDD" init --dir "$T/out/A" --id local --data "$D"
echo "a passphrase for the test" >"$T/pass"
chmod 600 "$T/pass"
check "admin" run "$SLDD" admin add --dir "$T/out/A" --name alice --passphrase-file "$T/pass" --kdf interactive
check "sign" run "$SLDD" bundle sign --dir "$T/out/A" --in "$P" --out "$T/out/signed.bin"
check "approve" run "$SLDD" bundle approve --dir "$T/out/A" --admin alice --in "$T/out/signed.bin" \
  --out "$T/out/statement.bin" --yes --passphrase-file "$T/pass"
IMG=$SRC/img$TESTN.dcm
expect 0 "resampled from 0.2x0.2 mm pixels (96x96) to the model's 0.2 mm" -- \
  "$SLDD" detect "$IMG" --model "$P" --heatmap "$T/out/heat.png"
run "$SLDD" detect "$IMG" --model "$P" --heatmap "$T/out/heat.png"
run "$SLDD" detect "$IMG" --model "$P" --json

# the same pixels as PNG give the same answer
dcm=$("$SLDD" detect "$IMG" --model "$P" --json | sed 's/.*"I":\([0-9]*\),"N":\([0-9]*\),"P":\([0-9]*\),.*/\1 \2 \3/')
png=$("$SLDD" detect "$S/images/$TESTID.png" --model "$P" --json | sed 's/.*"I":\([0-9]*\),"N":\([0-9]*\),"P":\([0-9]*\),.*/\1 \2 \3/')
check "DICOM and PNG of the same pixels: same patch classes ($dcm / $png)" test -n "$dcm" -a "$dcm" = "$png"
# a folder of images, DICOM and PNG together: one row each, the DICOM one as
# detected alone; its heat map goes with the node's output (searched below)
mkdir -p "$T/folder"
cp "$IMG" "$T/folder/a.dcm"
cp "$S/images/$TESTID.png" "$T/folder/b.png"
"$SLDD" detect "$T/folder" --model "$P" --json --heatmaps "$T/out/heatmaps" >"$T/out/rows.jsonl" 2>/dev/null
check "a folder of DICOM and PNG: two rows" test "$(wc -l <"$T/out/rows.jsonl")" -eq 2
row=$(grep '"a.dcm"\|/a.dcm"' "$T/out/rows.jsonl" | sed 's/.*"I":\([0-9]*\),"N":\([0-9]*\),"P":\([0-9]*\).*/\1 \2 \3/')
check "the folder's DICOM row matches the single detection ($row / $dcm)" test -n "$row" -a "$row" = "$dcm"
check "a heat map per image of the folder" test -f "$T/out/heatmaps/a.heat.png" -a -f "$T/out/heatmaps/b.heat.png"
"$GEN" --png "$S/images/$TESTID.png" --out "$T/nospacing.dcm"
expect 1 "no Pixel Spacing or Imager Pixel Spacing, so it cannot be put on the model's grid of 0.2 mm" -- \
  "$SLDD" detect "$T/nospacing.dcm" --model "$P"
"$SLDD" dataset prepare --data "$S" --patch 24 --stride 12 --patch-resize 12 >/dev/null 2>&1
run "$SLDD" distill --data "$S" --out "$T/pngdist" --arch convnet-bn --width 4 \
  --images-per-step 3 --iterations 2 --real-batch 16 --eval-every 0 --checkpoint-every 0
expect 0 "the model records no grid: the image is used at its stored pixels" -- \
  "$SLDD" detect "$IMG" --model "$T/pngdist/payload.pb"

# the search
for s in "${PLANTED[@]}"; do
  check "the search finds $s in the sources" grep -rqa -- "$s" "$SRC"
  hits=$(grep -rla -- "$s" "$T/out" "$T/pngdist" 2>/dev/null)
  check "no file the node wrote holds $s${hits:+ (found in: $hits)}" test -z "$hits"
done
check "the node wrote files to search" test "$(find "$T/out" -type f | wc -l)" -gt 20

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
