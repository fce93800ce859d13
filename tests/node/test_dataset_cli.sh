#!/usr/bin/env bash
# test_dataset_cli.sh - `sldd dataset synth` and `sldd dataset prepare` end to
# end: help, usage errors (exit 2), and every bad data set refused with its
# message and exit status 1.
#
# usage: test_dataset_cli.sh /path/to/sldd
set -u
SLDD=${1:?usage: $0 /path/to/sldd}
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/sldd-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/cli_lib.sh"

# ---- help and usage errors ----
expect 0 "synth" -- "$SLDD" dataset --help
expect 0 "--gastritis-fraction" -- "$SLDD" dataset synth --help
expect 0 "--patch-resize" -- "$SLDD" dataset prepare --help
expect 2 "usage: sldd dataset" -- "$SLDD" dataset
expect 2 "unknown subcommand 'bogus' (one of: synth, prepare)" -- "$SLDD" dataset bogus
expect 2 "--out DIR is required" -- "$SLDD" dataset synth --count 3
expect 2 "--count 'abc' is not an integer" -- "$SLDD" dataset synth --out "$T/x" --count abc
expect 2 "--count 0 is out of range" -- "$SLDD" dataset synth --out "$T/x" --count 0
expect 2 "--size 8 is out of range" -- "$SLDD" dataset synth --out "$T/x" --size 8
expect 2 "--seed '-1' is not an integer" -- "$SLDD" dataset synth --out "$T/x" --seed -1
expect 2 "--gastritis-fraction 2 is out of range" -- "$SLDD" dataset synth --out "$T/x" --gastritis-fraction 2
expect 2 "must be three non-negative numbers" -- "$SLDD" dataset synth --out "$T/x" --split-fractions 1,2
expect 2 "must be three non-negative numbers" -- "$SLDD" dataset synth --out "$T/x" --split-fractions 1,2,x
expect 2 "must not all be zero" -- "$SLDD" dataset synth --out "$T/x" --split-fractions 0,0,0
expect 2 "unknown or incomplete option '--bogus'" -- "$SLDD" dataset synth --bogus
expect 2 "unexpected argument 'extra'" -- "$SLDD" dataset synth --out "$T/x" extra
expect 2 "--data DIR is required" -- "$SLDD" dataset prepare
expect 2 "is larger than --patch 50" -- "$SLDD" dataset prepare --data "$T/x" --patch 50 --patch-resize 100
expect 2 "--stride 'ten' is not an integer" -- "$SLDD" dataset prepare --data "$T/x" --stride ten
check "no output directory made by usage errors" test ! -e "$T/x"

# ---- a good synthetic data set ----
D=$T/good
expect 0 "wrote 12 SYNTHETIC images of 96x96 pixels" -- "$SLDD" dataset synth --out "$D" --count 12 --size 96 --seed 5 --split-fractions 0.5,0.25,0.25
check "labels.csv has a header and 12 rows" test "$(wc -l <"$D/labels.csv")" -eq 13
check "labels.csv header" test "$(head -1 "$D/labels.csv")" = "id,label,split"
check "README says synthetic" test "$(head -c 9 "$D/README.txt")" = "SYNTHETIC"
check "12 images" test "$(ls "$D/images" | wc -l)" -eq 12
check "12 masks" test "$(ls "$D/masks" | wc -l)" -eq 12
check "no temp files left" test -z "$(find "$D" -name '*.tmp')"
expect 1 "already exists; choose an empty directory or pass --force" -- "$SLDD" dataset synth --out "$D" --count 12 --size 96
expect 0 "wrote 12" -- "$SLDD" dataset synth --out "$D" --count 12 --size 96 --seed 5 --split-fractions 0.5,0.25,0.25 --force
expect 0 "wrote $D/prepared.json" -- "$SLDD" dataset prepare --data "$D" --patch 24 --stride 8 --patch-resize 12
check "prepared.json format" grep -q '"format": "sldd-prepared"' "$D/prepared.json"
check "prepared.json patch" grep -q '"patch": 24,' "$D/prepared.json"
check "prepared.json resize" grep -q '"patch_resize": 12,' "$D/prepared.json"
check "prepared.json synthetic" grep -q '"synthetic": true' "$D/prepared.json"
expect 0 "(SYNTHETIC)" -- "$SLDD" dataset prepare --data "$D" --patch 24 --stride 8
expect 1 "no training patches with --patch 200" -- "$SLDD" dataset prepare --data "$D" --patch 200

# ---- bad data sets: each refused with a message naming the file ----
fresh() { rm -rf "$T/bad"; cp -r "$D" "$T/bad"; rm -f "$T/bad/prepared.json"; }
first_train() { awk -F, '$3=="train"{print $1; exit}' "$T/bad/labels.csv"; }
first_val() { awk -F, '$3=="val"{print $1; exit}' "$T/bad/labels.csv"; }

fresh; rm "$T/bad/labels.csv"
expect 1 "bad/labels.csv: cannot open" -- "$SLDD" dataset prepare --data "$T/bad"

fresh; sed -i '3s/,[01],/,2,/' "$T/bad/labels.csv"
expect 1 "labels.csv line 3: label '2'" -- "$SLDD" dataset prepare --data "$T/bad"

fresh; sed -i '2s/,train$/,training/; 2s/,val$/,training/; 2s/,test$/,training/' "$T/bad/labels.csv"
expect 1 "labels.csv line 2: split 'training'" -- "$SLDD" dataset prepare --data "$T/bad"

fresh; sed -n 2p "$T/bad/labels.csv" >>"$T/bad/labels.csv"
expect 1 "line 14: duplicate id" -- "$SLDD" dataset prepare --data "$T/bad"

fresh; sed -i '/,test$/d' "$T/bad/labels.csv"
expect 1 "no images in split 'test'" -- "$SLDD" dataset prepare --data "$T/bad"

fresh; sed -i '1s/.*/id,label/' "$T/bad/labels.csv"
expect 1 "header has no 'split' column" -- "$SLDD" dataset prepare --data "$T/bad"

fresh; id=$(first_train); rm "$T/bad/images/$id.png"
expect 1 "bad/images/$id.png: missing" -- "$SLDD" dataset prepare --data "$T/bad"

fresh; id=$(first_train); rm "$T/bad/masks/$id.png"
expect 1 "bad/masks/$id.png: missing; train images need a stomach mask" -- "$SLDD" dataset prepare --data "$T/bad"

fresh; id=$(first_val); rm "$T/bad/masks/$id.png"
expect 0 "wrote" -- "$SLDD" dataset prepare --data "$T/bad" --patch 24 --stride 8

fresh; id=$(first_train)
"$SLDD" dataset synth --out "$T/small" --count 1 --size 32 --split-fractions 1,0,0 >/dev/null 2>&1
cp "$T/small/masks/synth0000.png" "$T/bad/masks/$id.png"
expect 1 "bad/masks/$id.png: mask is 32x32 but the image" -- "$SLDD" dataset prepare --data "$T/bad"

fresh; id=$(first_val)
write_rgb_png "$T/bad/images/$id.png"
expect 1 "bad/images/$id.png: RGB colour image" -- "$SLDD" dataset prepare --data "$T/bad"

fresh; id=$(first_train); f="$T/bad/images/$id.png"
head -c $(( $(stat -c %s "$f") / 2 )) "$f" >"$f.cut" && mv "$f.cut" "$f"
expect 1 "file is truncated" -- "$SLDD" dataset prepare --data "$T/bad"

fresh; id=$(awk -F, '$3=="test"{print $1; exit}' "$T/bad/labels.csv"); f="$T/bad/images/$id.png"
head -c $(( $(stat -c %s "$f") - 40 )) "$f" >"$f.cut" && mv "$f.cut" "$f"
expect 1 "bad/images/$id.png: corrupt or unreadable PNG" -- "$SLDD" dataset prepare --data "$T/bad"

fresh; id=$(first_train); echo "not an image" >"$T/bad/images/$id.png"
expect 1 "bad/images/$id.png: not a PNG file" -- "$SLDD" dataset prepare --data "$T/bad"

expect 1 "no such dataset directory" -- "$SLDD" dataset prepare --data "$T/does-not-exist"

# ---- files that are not what their names say: refused at once, never read ----
# (every run under `timeout`: a FIFO used to block the reader for ever)
fresh; id=$(first_train); rm "$T/bad/images/$id.png"; mkfifo "$T/bad/images/$id.png"
expect 1 "bad/images/$id.png: is a FIFO (named pipe), not a regular file" -- timeout 60 "$SLDD" dataset prepare --data "$T/bad"

fresh; id=$(first_train); rm "$T/bad/masks/$id.png"; mkfifo "$T/bad/masks/$id.png"
expect 1 "bad/masks/$id.png: is a FIFO" -- timeout 60 "$SLDD" dataset prepare --data "$T/bad"

fresh; rm "$T/bad/labels.csv"; mkfifo "$T/bad/labels.csv"
expect 1 "bad/labels.csv: is a FIFO" -- timeout 60 "$SLDD" dataset prepare --data "$T/bad"

fresh; id=$(first_val); rm "$T/bad/images/$id.png"; mkdir "$T/bad/images/$id.png"
expect 1 "bad/images/$id.png: is a directory, not a regular file" -- timeout 60 "$SLDD" dataset prepare --data "$T/bad"

# a symbolic link out of the data folder is refused; one inside it is followed
fresh; id=$(first_train); mv "$T/bad/images/$id.png" "$T/outside.png"
ln -s "$T/outside.png" "$T/bad/images/$id.png"
expect 1 "outside the data folder" -- timeout 60 "$SLDD" dataset prepare --data "$T/bad"
fresh; id=$(first_train); mv "$T/bad/images/$id.png" "$T/bad/kept.png"
ln -s ../kept.png "$T/bad/images/$id.png"
expect 0 "wrote" -- timeout 60 "$SLDD" dataset prepare --data "$T/bad" --patch 24 --stride 8

# ---- the pixel budget, from the PNG headers before any pixel is decoded ----
# a valid 1 MB PNG of 32768x32768 zeros (2 GiB decoded as 16-bit)
write_huge_png() {
  "$PY" - "$1" <<'EOF'
import struct, sys, zlib
w = h = 32768
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
z = zlib.compressobj(9)
row = b"\x00" * (w + 1)
idat = b"".join([z.compress(row) for _ in range(h)] + [z.flush()])
open(sys.argv[1], "wb").write(
    b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
EOF
}
# peak_rss_kib CMD...: run CMD (its output to $T/out); print its exit status
# and its peak RSS in KiB
peak_rss_kib() {
  "$PY" -c 'import resource, subprocess, sys
with open(sys.argv[1], "w") as out:
    rc = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$T/out" "$@"
}
# (a val image: it needs no mask, which would otherwise differ in size)
fresh; id=$(first_val); write_huge_png "$T/bad/images/$id.png"; rm "$T/bad/masks/$id.png"
check "the huge PNG is about 1 MB" test "$(stat -c %s "$T/bad/images/$id.png")" -lt 2000000
read -r rc rss < <(peak_rss_kib timeout 120 "$SLDD" dataset prepare --data "$T/bad" --patch 24 --stride 8)
check "the huge PNG is refused (exit $rc)" test "$rc" -eq 1
check "the refusal names the image and the limit" grep -q "images/$id.png: declares 32768x32768 = 1073741824 pixels.*--max-image-pixels" "$T/out"
# the binary's own footprint (a CUDA build maps its static libraries: ~230 MB)
read -r _ base < <(peak_rss_kib "$SLDD" --version)
echo "refusal of a 32768x32768 PNG: exit $rc, peak RSS $rss KiB ($base KiB for 'sldd --version')"
# decoding it would take 2 GiB; the refusal stays within 64 MiB of the binary's footprint
check "the refusal decodes nothing (peak RSS $rss KiB < $base KiB + 64 MiB)" test "$rss" -lt $((base + 65536))
expect 1 "more than the data set may hold (10000; --max-pixels)" -- "$SLDD" dataset prepare --data "$D" --patch 24 --stride 8 --max-pixels 10000
expect 1 "more than one image may hold (9000; --max-image-pixels)" -- "$SLDD" dataset prepare --data "$D" --patch 24 --stride 8 --max-image-pixels 9000
expect 0 "wrote" -- "$SLDD" dataset prepare --data "$D" --patch 24 --stride 8 --max-pixels 110592 --max-image-pixels 9216
expect 2 "--max-pixels 0 is out of range" -- "$SLDD" dataset prepare --data "$D" --max-pixels 0

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
