#!/usr/bin/env bash
# test_dicom_results.sh - `sldd detect IMAGE.dcm --dicom-out DIR`: the heat
# map as a Secondary Capture and the findings as a TID 1500 Comprehensive
# SR, checked with DCMTK's dcmdump and dsrdump and, when installed,
# dciodvfy (dicom3tools) without errors: same study and patient as the
# source, new instance and series UIDs, the source instance referenced, r,
# delta, the decision, the patch counts and the provenance (payload
# SHA-256, sender, model, theta_0 hash) in the report; for a declared task
# (two named classes) the report names its classes and rule instead.
#
# usage: test_dicom_results.sh /path/to/sldd /path/to/dicom_gen_tool
set -u
SLDD=${1:?usage: $0 SLDD GEN}
GEN=${2:?usage: $0 SLDD GEN}
T=$(mktemp -d "${TMPDIR:-/tmp}/sldd-dicom-results-XXXXXX")
trap 'rm -rf "$T"' EXIT
export OPENBLAS_NUM_THREADS=1
. "$(dirname "$0")/../node/cli_lib.sh"
for tool in dcmdump dsrdump; do
  command -v $tool >/dev/null || { echo "skipped: $tool (dcmtk) not installed"; exit 77; }
done

S=$T/synth
"$SLDD" dataset synth --out "$S" --count 8 --size 96 --seed 5 --split-fractions 0.5,0.25,0.25 >/dev/null 2>&1
"$SLDD" dataset prepare --data "$S" --patch 24 --stride 12 --patch-resize 12 >/dev/null 2>&1
"$SLDD" distill --data "$S" --out "$T/dist" --arch convnet-bn --width 4 --images-per-step 3 \
  --iterations 2 --real-batch 16 --eval-every 0 --checkpoint-every 0 --quiet >/dev/null 2>&1
P=$T/dist/payload.pb
STUDY=1.2.826.0.1.3680043.8.498.4242.1
SOP=1.2.826.0.1.3680043.8.498.4242.2
"$GEN" --png "$S/images/synth0003.png" --out "$T/src.dcm" --spacing 0.2 --patient-name "Doe^Jane" \
  --patient-id P-77 --sop-uid $SOP --study-uid $STUDY
mkdir -p "$T/out"
expect 0 "decision:" -- "$SLDD" detect "$T/src.dcm" --model "$P" --dicom-out "$T/out"
SC=$T/out/heatmap-sc.dcm
SR=$T/out/report-sr.dcm
tag() { dcmdump -Un -s +P "$2" "$1" 2>/dev/null | sed -n 's/.*\[\(.*\)\].*/\1/p' | head -1; }
for f in "$SC" "$SR"; do
  b=$(basename "$f")
  check "$b: same study" test "$(tag "$f" 0020,000d)" = $STUDY
  check "$b: patient copied" test "$(tag "$f" 0010,0010)" = "Doe^Jane" -a "$(tag "$f" 0010,0020)" = P-77
  check "$b: a new instance UID" test -n "$(tag "$f" 0008,0018)" -a "$(tag "$f" 0008,0018)" != $SOP
  check "$b: a new series" test -n "$(tag "$f" 0020,000e)" -a "$(tag "$f" 0020,000e)" != "$(tag "$T/src.dcm" 0020,000e)"
  check "$b: references the source instance" bash -c "dcmdump +P 0008,1155 '$f' | grep -q '$SOP'"
done
check "SC is Secondary Capture, RGB" test "$(tag "$SC" 0008,0016)" = 1.2.840.10008.5.1.4.1.1.7 -a "$(tag "$SC" 0028,0004)" = RGB
check "SR is Comprehensive SR" test "$(tag "$SR" 0008,0016)" = 1.2.840.10008.5.1.4.1.1.88.33
check "SR says TID 1500" bash -c "dcmdump +P 0040,db00 '$SR' | grep -q 1500"
dsrdump +Pc +Pl "$SR" >"$T/sr.txt" 2>&1
sha=$(sha256sum "$P" | cut -c1-64)
for want in "Imaging Measurement Report" "Fraction of stomach patches classified P" \
            "Decision threshold delta\")=\"0.4\"" "Detection decision" "Patches classified gastritis (P)" \
            "Bundle SHA-256\")=\"$sha\"" "Sender node\")=\"local\"" "Model\")=\"convnet-bn(d3,w4)\"" \
            "Initial weights hash" "Source of Measurement"; do
  check "SR holds '$want'" grep -qF -- "$want" "$T/sr.txt"
done
if command -v dciodvfy >/dev/null; then
  for f in "$SC" "$SR"; do
    check "dciodvfy finds no error in $(basename "$f")" bash -c "! dciodvfy '$f' 2>&1 | grep -q '^Error'"
  done
else
  echo "note: dciodvfy (dicom3tools) not installed; IOD check skipped"
fi
# a declared task: the report speaks of its classes and rule, never of the
# stomach or gastritis (the same phantoms as whole images of two classes)
awk -F, 'NR==1{print "file,label,split"; next}{print $1".png,"($2==1?"opaque":"clear")","$3}' \
  "$S/labels.csv" >"$T/any.csv"
"$SLDD" dataset prepare --data "$T/any" --images "$S/images" --labels "$T/any.csv" --task films \
  --classes clear,opaque --patch 24 --stride 12 --patch-resize 12 >/dev/null 2>&1
"$SLDD" distill --data "$T/any" --out "$T/dist2" --arch convnet-bn --width 4 --images-per-step 2 \
  --iterations 2 --real-batch 16 --eval-every 0 --checkpoint-every 0 --quiet >/dev/null 2>&1
"$GEN" --png "$S/images/synth0003.png" --out "$T/src2.dcm" --spacing 0.2 --patient-name "Doe^Jane" \
  --patient-id P-77 --sop-uid $SOP.9 --study-uid $STUDY
mkdir -p "$T/out2"
expect 0 "decision:" -- "$SLDD" detect "$T/src2.dcm" --model "$T/dist2/payload.pb" --dicom-out "$T/out2"
dsrdump +Pc +Pl "$T/out2/report-sr.dcm" >"$T/sr2.txt" 2>&1
for want in "sldd films detection" "Fraction of patch votes for opaque" "Image-level rule" \
            "Patches classified clear" "Patches classified opaque" "Detection decision"; do
  check "task SR holds '$want'" grep -qF -- "$want" "$T/sr2.txt"
done
check "task SR decides a class of the task" grep -Eq '"(clear|opaque|Undetermined \(no patch voted for an image class\))"' "$T/sr2.txt"
check "task SR says nothing of the stomach" bash -c "! grep -qi 'stomach\|gastritis\|(I)\|(P)' '$T/sr2.txt'"
if command -v dciodvfy >/dev/null; then
  check "dciodvfy finds no error in the task SR" bash -c "! dciodvfy '$T/out2/report-sr.dcm' 2>&1 | grep -q '^Error'"
fi
expect 1 "--dicom-out: IMAGE is not DICOM" -- "$SLDD" detect "$S/images/synth0003.png" --model "$P" --dicom-out "$T/out"
expect 1 "cannot write the Secondary Capture" -- "$SLDD" detect "$T/src.dcm" --model "$P" --dicom-out "$T/missing"

mkfifo "$T/fifo.dcm"
expect 1 "fifo.dcm: is a FIFO (named pipe), not a regular file" -- timeout 10 "$SLDD" detect "$T/fifo.dcm" --model "$P"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
