#!/usr/bin/env bash
# test_dicom_prepare.sh - `sldd dataset prepare --dicom` against the PNG path
# on the same pixels: a synthetic data set is written as DICOM in each
# variant (MONOCHROME1 and 2, 12- and 16-bit, signed with intercept, slope,
# JPEG lossless, JPEG-LS, RLE, Imager Pixel Spacing, two pixel spacings
# resampled to one grid, a multi-frame object) and both paths must give the
# same prepared.json (patch counts per class and split, and the mean and std
# to all 17 digits: the display values are exact for these lossless
# variants, so the tolerance is zero).  Then the refusals: grids mixed
# without --mm-per-pixel, a DICOMDIR, a truncated file, a row without a
# file, a file without a row; files that are not DICOM are skipped; labels
# keyed by SOP Instance UID.
#
# usage: test_dicom_prepare.sh /path/to/sldd /path/to/dicom_gen_tool
set -u
SLDD=${1:?usage: $0 SLDD GEN}
GEN=${2:?usage: $0 SLDD GEN}
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/sldd-dicom-prep-XXXXXX")
trap 'rm -rf "$T"' EXIT
export OPENBLAS_NUM_THREADS=1
. "$(dirname "$0")/../node/cli_lib.sh"
GEOM=(--patch 24 --stride 12)

S=$T/synth
"$SLDD" dataset synth --out "$S" --count 8 --size 96 --seed 5 --split-fractions 0.5,0.25,0.25 >/dev/null 2>&1
IDS=$(tail -n +2 "$S/labels.csv" | cut -d, -f1)

# make NAME GENOPTS... : DICOM folder $T/NAME.dcm and the expected PNG data
# set $T/NAME.png (labels and masks as the synthetic set's)
make() {
  local name=$1; shift
  local D=$T/$name.dcm E=$T/$name.png
  mkdir -p "$D/masks" "$E/images" "$E/masks"
  echo "file,label,split" >"$D/labels.csv"
  cp "$S/labels.csv" "$E/labels.csv"
  local id lab spl
  while IFS=, read -r id lab spl; do
    "$GEN" --png "$S/images/$id.png" --out "$D/$id.dcm" --expect "$E/images/$id.png" "$@" || return 1
    cp "$S/masks/$id.png" "$D/masks/$id.png"
    cp "$S/masks/$id.png" "$E/masks/$id.png"
    echo "$id.dcm,$lab,$spl" >>"$D/labels.csv"
  done < <(tail -n +2 "$S/labels.csv")
}

# same_prepared A B: equal prepared.json apart from the labels hash and grid
same_prepared() {
  "$PY" - "$1/prepared.json" "$2/prepared.json" <<'PYEOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("labels_sha256", "mm_per_pixel"):
    a.pop(k, None); b.pop(k, None)
if a != b:
    print("differ:", a, b); sys.exit(1)
PYEOF
}

for v in "m2 explicit" "m1 explicit" "s16 explicit" "u12 explicit" "m2 jpeg-lossless" \
         "m1 jpeg-ls" "s16 rle" "m2 big" "m2 implicit"; do
  set -- $v
  name=$1-$2
  make "$name" --variant "$1" --xfer "$2" --spacing 0.2 || { echo "FAIL: fixture $name"; fail=$((fail + 1)); continue; }
  expect 0 "8 objects, 8 images (8 with mask); grid 0.2 mm per pixel" -- \
    "$SLDD" dataset prepare --data "$T/$name.out" --dicom "$T/$name.dcm" "${GEOM[@]}"
  expect 0 "wrote" -- "$SLDD" dataset prepare --data "$T/$name.png" "${GEOM[@]}"
  check "$name: same patches and statistics as the PNG path" same_prepared "$T/$name.out" "$T/$name.png"
  check "$name: grid recorded" grep -q '"mm_per_pixel": 0.2' "$T/$name.out/prepared.json"
done

# Imager Pixel Spacing 0.1 mm resampled to 0.2: the 2x2 block means
make imager --variant m2 --spacing 0.1 --imager 1 --down 2
for id in $IDS; do "$GEN" --mask-down "$S/masks/$id.png" "$T/imager.png/masks/$id.png"; done
expect 0 "grid 0.2 mm per pixel (resampled)" -- \
  "$SLDD" dataset prepare --data "$T/imager.out" --dicom "$T/imager.dcm" --mm-per-pixel 0.2 "${GEOM[@]}"
expect 0 "48x48 pixels" -- "$SLDD" dataset prepare --data "$T/imager.png" "${GEOM[@]}"
check "0.1 mm resampled to 0.2 mm: same as the 2x2-reduced PNGs" same_prepared "$T/imager.out" "$T/imager.png"

# two spacings: refused without a grid, one grid with it
MIX=$T/mix.dcm
cp -r "$T/m2-explicit.dcm" "$MIX"
first=$(echo "$IDS" | head -1)
"$GEN" --png "$S/images/$first.png" --out "$MIX/$first.dcm" --spacing 0.1
expect 1 "the images are on different grids; give --mm-per-pixel" -- \
  "$SLDD" dataset prepare --data "$T/mix.out" --dicom "$MIX" "${GEOM[@]}"
check "nothing prepared from mixed grids" test ! -e "$T/mix.out/prepared.json"
expect 0 "grid 0.2 mm per pixel (resampled)" -- \
  "$SLDD" dataset prepare --data "$T/mix.out" --dicom "$MIX" --mm-per-pixel 0.2 "${GEOM[@]}"
expect 0 "48x48 to 96x96 pixels" -- "$SLDD" dataset prepare --data "$T/mix.out" "${GEOM[@]}"
check "grid kept when prepared again" grep -q '"mm_per_pixel": 0.2' "$T/mix.out/prepared.json"
make nosp --variant m2
expect 1 "no Pixel Spacing or Imager Pixel Spacing" -- \
  "$SLDD" dataset prepare --data "$T/nosp.out" --dicom "$T/nosp.dcm" --mm-per-pixel 0.2 "${GEOM[@]}"

# a multi-frame object: one image per frame, same label and split
MF=$T/mf.dcm
cp -r "$T/m2-explicit.dcm" "$MF"
"$GEN" --png "$S/images/$first.png" --out "$MF/$first.dcm" --spacing 0.2 --frames 3
expect 0 "8 objects, 10 images" -- "$SLDD" dataset prepare --data "$T/mf.out" --dicom "$MF" "${GEOM[@]}"
check "frames are images -f0001..-f0003" test "$(grep -c -- '-f000[123],' "$T/mf.out/labels.csv")" = 3

# labels keyed by SOP Instance UID; a README in the folder is skipped
U=$T/uid.dcm
mkdir -p "$U/masks"
echo "sop_instance_uid,label,split" >"$U/labels.csv"
n=0
while IFS=, read -r id lab spl; do
  n=$((n + 1))
  "$GEN" --png "$S/images/$id.png" --out "$U/x$n.dcm" --spacing 0.2 --sop-uid "1.2.826.0.1.3680043.8.498.77$n"
  cp "$S/masks/$id.png" "$U/masks/x$n.png"
  echo "1.2.826.0.1.3680043.8.498.77$n,$lab,$spl" >>"$U/labels.csv"
done < <(tail -n +2 "$S/labels.csv")
echo "notes" >"$U/README.txt"
expect 0 "8 objects, 8 images (8 with mask), 1 file skipped (not DICOM)" -- \
  "$SLDD" dataset prepare --data "$T/uid.out" --dicom "$U" --patch 24 --stride 12
check "no UID in the data set" bash -c "! grep -rq '3680043' '$T/uid.out'"

# a list file
ls "$T/m2-explicit.dcm"/*.dcm | sed "s|$T/m2-explicit.dcm/||" >"$T/m2-explicit.dcm/list.txt"
expect 0 "8 objects, 8 images (8 with mask)" -- \
  "$SLDD" dataset prepare --data "$T/list.out" --dicom "$T/m2-explicit.dcm/list.txt" "${GEOM[@]}"

# refusals
B=$T/bad.dcm
cp -r "$T/m2-explicit.dcm" "$B"
cp "$B/$first.dcm" "$B/DICOMDIR.dcm"
"$PY" - "$B/DICOMDIR.dcm" <<'PYEOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
# relabel the Media Storage SOP Class as the Media Storage Directory (same length padded)
old = b"1.2.840.10008.5.1.4.1.1.1.1\x00"
i = b.find(old)
new = b"1.2.840.10008.1.3.10".ljust(len(old), b"\x00")
b[i:i + len(old)] = new
open(p, "wb").write(b)
PYEOF
echo "DICOMDIR.dcm,0,train" >>"$B/labels.csv"
expect 1 "DICOMDIR.dcm: a DICOMDIR (a media directory), not an image" -- \
  "$SLDD" dataset prepare --data "$T/bad.out" --dicom "$B" "${GEOM[@]}"
rm "$B/DICOMDIR.dcm"
sed -i '$d' "$B/labels.csv"
head -c 3000 "$B/$first.dcm" >"$B/cut.dcm"
mv "$B/cut.dcm" "$B/$first.dcm"
expect 1 "$first.dcm: corrupt or truncated DICOM file" -- \
  "$SLDD" dataset prepare --data "$T/bad.out" --dicom "$B" "${GEOM[@]}"
cp "$T/m2-explicit.dcm/$first.dcm" "$B/$first.dcm"
echo "ghost.dcm,1,test" >>"$B/labels.csv"
expect 1 "no DICOM file for this row" -- "$SLDD" dataset prepare --data "$T/bad.out" --dicom "$B" "${GEOM[@]}"
sed -i '$d' "$B/labels.csv"
cp "$B/$first.dcm" "$B/extra.dcm"
expect 1 "extra.dcm: no row in the labels CSV (keyed by file name)" -- \
  "$SLDD" dataset prepare --data "$T/bad.out" --dicom "$B" "${GEOM[@]}"
expect 1 "already holds a data set that was not made from DICOM" -- \
  "$SLDD" dataset prepare --data "$S" --dicom "$T/m2-explicit.dcm" "${GEOM[@]}"
expect 2 "need --dicom SRC" -- "$SLDD" dataset prepare --data "$S" --mm-per-pixel 0.2

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
