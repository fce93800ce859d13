#!/usr/bin/python3
"""protoc_decode.py - Google's protoc decodes a payload written by sldd.

Writes a test payload with proto_make_test (for each image encoding), decodes
it with `protoc --decode=sldd.v1.Bundle` and checks that every value the C
side reports is what protoc finds: scalars, the audience list, and every
label logit, step size and variance as the same float32.  Also decodes the
image bytes by hand from protoc's escaped string and checks their length.
Exit 77 (skip) when protoc is missing.
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile


def f32(x):
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def unescape(s):
    """Bytes of a protoc text-format string literal (C escapes, octal)."""
    out = bytearray()
    i = 0
    simple = {"n": 10, "r": 13, "t": 9, '"': 34, "'": 39, "\\": 92, "a": 7, "b": 8, "f": 12, "v": 11}
    raw = s.encode("latin-1")
    while i < len(raw):
        c = raw[i]
        if c != 92:
            out.append(c)
            i += 1
            continue
        n = chr(raw[i + 1])
        if n in simple:
            out.append(simple[n])
            i += 2
        elif n in "01234567":
            j = i + 1
            while j < len(raw) and j < i + 4 and chr(raw[j]) in "01234567":
                j += 1
            out.append(int(raw[i + 1:j], 8))
            i = j
        elif n == "x":
            j = i + 2
            while j < len(raw) and chr(raw[j]) in "0123456789abcdefABCDEF":
                j += 1
            out.append(int(raw[i + 2:j], 16))
            i = j
        else:
            raise ValueError("unknown escape \\" + n)
    return bytes(out)


def main():
    make, proto = sys.argv[1], sys.argv[2]
    protoc = shutil.which("protoc")
    if not protoc:
        print("protoc not installed: skipping")
        return 77
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for enc, vsize in (("float32", 4), ("float16", 2), ("uint8", 1)):
            path = os.path.join(tmp, "payload-" + enc)
            exp = subprocess.run([make, path, enc], check=True, capture_output=True, text=True).stdout
            with open(path, "rb") as f:
                text = subprocess.run(
                    [protoc, "--decode=sldd.v1.Bundle", "-I", os.path.dirname(proto), proto],
                    stdin=f, check=True, capture_output=True).stdout.decode("latin-1")
            expected = {}
            for line in exp.splitlines():
                k, v = line.split(" ", 1)
                expected.setdefault(k, []).append(v)
            got = {}
            for m in re.finditer(r'^\s*(\w+): (.*)$', text, re.M):
                got.setdefault(m.group(1), []).append(m.group(2))
            def check(cond, what):
                nonlocal failures
                if not cond:
                    failures += 1
                    print("FAIL [%s] %s" % (enc, what))
            for k in ("format_version", "sequence", "created_unix", "expires_unix", "classes",
                      "in_height", "steps", "images_per_step", "epochs"):
                check(got.get(k) == expected[k], "%s: protoc %s, sldd %s" % (k, got.get(k), expected[k]))
            for k in ("sender", "audience", "arch"):
                check([g.strip('"') for g in got.get(k, [])] == expected[k],
                      "%s: protoc %s, sldd %s" % (k, got.get(k), expected[k]))
            for k in ("label_logits", "step_sizes", "var"):
                a = [f32(x) for x in got.get(k, [])]
                b = [f32(x) for x in expected[k]]
                check(len(a) == len(b) and a == b, "%s: %d values from protoc, %d from sldd%s" % (
                    k, len(a), len(b), "" if len(a) != len(b) else " (values differ)"))
            enc_name = {"float32": "IMAGE_ENCODING_FLOAT32", "float16": "IMAGE_ENCODING_FLOAT16",
                        "uint8": "IMAGE_ENCODING_UINT8_SCALED"}[enc]
            check(got.get("encoding") == [enc_name], "encoding %s" % got.get("encoding"))
            data = got.get("data", [])
            check(len(data) == 1, "one image data field")
            if data:
                raw = unescape(data[0][1:-1])
                check(len(raw) == int(expected["image_bytes"][0]), "image bytes %d" % len(raw))
                check(len(raw) % vsize == 0, "image bytes a multiple of the value size")
                if enc == "float32":
                    vals = struct.unpack("<%df" % (len(raw) // 4), raw)
                    check(all(abs(v) < 10 for v in vals), "float32 images look like N(0,1)")
            if enc == "uint8":
                check(len(got.get("scale", [])) == 15 and len(got.get("offset", [])) == 15,
                      "15 scales and offsets")
            print("[%s] protoc decoded %d fields" % (enc, sum(len(v) for v in got.values())))
    print("%d failures" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
