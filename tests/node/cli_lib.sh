# cli_lib.sh - helpers shared by the CLI test scripts (sourced, not run).
# They count into $pass and $fail; the script prints "N passed, N failed"
# and exits non-zero when anything failed.
pass=0
fail=0

# expect CODE SUBSTRING -- command...   (SUBSTRING searched in stdout+stderr)
expect() {
  local want=$1 text=$2
  shift 3
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: '$*' exited $rc, expected $want"; echo "$out" | sed 's/^/    /'
    fail=$((fail + 1)); return
  fi
  if [ -n "$text" ] && ! grep -qF -- "$text" <<<"$out"; then
    echo "FAIL: '$*' output lacks '$text'"; echo "$out" | sed 's/^/    /'
    fail=$((fail + 1)); return
  fi
  pass=$((pass + 1))
}

check() { # check DESCRIPTION CONDITION...
  local d=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $d"; fail=$((fail + 1)); fi
}

# write_rgb_png FILE: a valid 96x96 8-bit RGB PNG (which sldd must refuse)
write_rgb_png() { write_test_png "$1" rgb; }

# write_test_png FILE KIND: a valid 96x96 8-bit PNG; KIND rgb (a colour
# image) or stripes (a grayscale mask of alternate columns, so that every
# window is about half inside it)
write_test_png() {
  "$PY" - "$1" "$2" <<'EOF'
import struct, sys, zlib
w = h = 96
if sys.argv[2] == "rgb":
    colour, row = 2, bytes([10, 200, 30]) * w
else:
    colour, row = 0, bytes(255 * (x % 2) for x in range(w))
raw = b"".join(b"\x00" + row for _ in range(h))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
open(sys.argv[1], "wb").write(png)
EOF
}
