#!/usr/bin/python3
"""test_pynacl.py - an independent implementation of docs/bundle-format.md.

With PyNaCl (libsodium's Python binding) and a protobuf wire codec written
here from the document, this test
  1. takes a bundle made, signed, approved and sealed by `sldd`, verifies the
     outer signature, unseals the content key, decrypts the body, and checks
     the node signature and the admin approval (bound to the payload hash);
  2. builds a payload, statement and envelope itself for a node it invents,
     and checks that `sldd bundle open` accepts it and returns the payload
     byte for byte;
  3. checks that sldd refuses Python-made envelopes that are expired, have
     the wrong associated data, or are approved by an unknown admin.
Usage: test_pynacl.py PATH-TO-SLDD.  Exit 77 when PyNaCl is missing.
"""
import hashlib
import os
import struct
import subprocess
import sys
import tempfile

try:
    import nacl.bindings
    import nacl.exceptions
    import nacl.public
    import nacl.signing
    import nacl.utils
except ImportError:
    print("python3-nacl not installed: skipping")
    sys.exit(77)

TYPE_BUNDLE = b"application/vnd.sldd.bundle+protobuf; v=1"
TYPE_APPROVAL = b"application/vnd.sldd.approval+protobuf; v=1"
TYPE_ENVELOPE = b"application/vnd.sldd.envelope+protobuf; v=1"

FAILURES = 0


def check(cond, what):
    global FAILURES
    if cond:
        print("ok   " + what)
    else:
        FAILURES += 1
        print("FAIL " + what)


# ------------------------------------------------------------ wire codec

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def parse(buf):
    """Fields of one message: {number: [value, ...]}; length-delimited values
    are bytes, varints ints, fixed32/fixed64 raw bytes."""
    fields = {}
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        fields.setdefault(num, []).append(v)
    return fields


def f_varint(num, v):
    return varint(num << 3) + varint(v) if v else b""


def f_bytes(num, v):
    return varint(num << 3 | 2) + varint(len(v)) + v


def f_str(num, s):
    return f_bytes(num, s.encode()) if s else b""


def f_msg(num, body):
    return f_bytes(num, body)


def f_floats(num, xs):
    return f_bytes(num, struct.pack("<%df" % len(xs), *xs)) if xs else b""


def f_double(num, x):
    return varint(num << 3 | 1) + struct.pack("<d", x) if x else b""


def f_float(num, x):
    return varint(num << 3 | 5) + struct.pack("<f", x) if x else b""


def floats(b):
    return list(struct.unpack("<%df" % (len(b) // 4), b))


# ------------------------------------------------------------ primitives

def pae(typ, body):
    return b"DSSEv1 %d %s %d " % (len(typ), typ, len(body)) + body


def key_id(pk):
    return hashlib.sha256(pk).digest()


def kv_file(path):
    out = {}
    with open(path) as f:
        for line in f:
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k.strip()] = v.strip()
    return out


def b64(s):
    import base64
    return base64.b64decode(s)


def b64e(b):
    import base64
    return base64.b64encode(b).decode()


def sldd(exe, *args, env=None, check_rc=True):
    r = subprocess.run([exe] + list(args), capture_output=True, text=True, env=env)
    if check_rc and r.returncode != 0:
        print(r.stdout, r.stderr)
        raise SystemExit("sldd %s failed (%d)" % (" ".join(args), r.returncode))
    return r


# ------------------------------------------------------------ part 1

def read_sldd_bundle(exe, tmp, env):
    A, B = os.path.join(tmp, "A"), os.path.join(tmp, "B")
    sldd(exe, "init", "--dir", A, "--id", "node-a")
    sldd(exe, "init", "--dir", B, "--id", "node-b")
    sldd(exe, "admin", "add", "--dir", A, "--name", "alice", "--kdf", "interactive", env=env)
    sldd(exe, "keys", "export", "--dir", A, "--out", os.path.join(tmp, "a.peer"))
    sldd(exe, "keys", "export", "--dir", B, "--out", os.path.join(tmp, "b.peer"))
    sldd(exe, "peer", "add", "--dir", B, "--file", os.path.join(tmp, "a.peer"))
    sldd(exe, "peer", "add", "--dir", A, "--file", os.path.join(tmp, "b.peer"))
    p = lambda n: os.path.join(tmp, n)
    sldd(exe, "bundle", "make-test", "--dir", A, "--to", "node-b", "--small", "--encoding", "uint8",
         "--out", p("p.bin"))
    sldd(exe, "bundle", "sign", "--dir", A, "--in", p("p.bin"), "--out", p("s1.bin"))
    sldd(exe, "bundle", "approve", "--dir", A, "--admin", "alice", "--yes", "--in", p("s1.bin"),
         "--out", p("s2.bin"), env=env)
    sldd(exe, "bundle", "seal", "--dir", A, "--in", p("s2.bin"), "--to", "node-b", "--out", p("e.bin"))

    a_sign = b64(kv_file(os.path.join(A, "keys", "sign.pub"))["public"])
    alice = b64(kv_file(os.path.join(A, "admins", "alice.pub"))["public"])
    b_enc_pub = b64(kv_file(os.path.join(B, "keys", "enc.pub"))["public"])
    b_enc_sec = b64(kv_file(os.path.join(B, "keys", "enc.key"))["secret"])
    env_bytes = open(p("e.bin"), "rb").read()
    payload_file = open(p("p.bin"), "rb").read()

    e = parse(env_bytes)
    header, ct, sig = e[1][0], e[2][0], e[3][0]
    check(sorted(e) == [1, 2, 3], "envelope has exactly fields 1, 2, 3")
    h = parse(header)
    check(h[1] == [1], "header format_version 1")
    check(h[2] == [b"node-a"] and h[3] == [b"node-b"], "header sender node-a, recipient node-b")
    check(h[8] == [key_id(a_sign)], "header sender_key_id = SHA-256 of node-a's signing key")
    check(h[9] == [key_id(b_enc_pub)], "header recipient_key_id = SHA-256 of node-b's X25519 key")
    # outer signature over PAE(envelope type, header || SHA-256(ciphertext))
    vk = nacl.signing.VerifyKey(a_sign)
    try:
        vk.verify(pae(TYPE_ENVELOPE, header + hashlib.sha256(ct).digest()), sig)
        check(True, "outer signature verifies with PyNaCl")
    except nacl.exceptions.BadSignatureError:
        check(False, "outer signature verifies with PyNaCl")
    try:
        vk.verify(pae(TYPE_ENVELOPE, header + hashlib.sha256(ct + b"x").digest()), sig)
        check(False, "outer signature fails for another ciphertext")
    except nacl.exceptions.BadSignatureError:
        check(True, "outer signature fails for another ciphertext")
    # unseal the content key, decrypt the body with the header as AD
    ck = nacl.public.SealedBox(nacl.public.PrivateKey(b_enc_sec)).decrypt(h[10][0])
    check(len(ck) == 32, "content key unsealed (32 bytes)")
    st = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(ct, header, h[11][0], ck)
    check(len(st) == len(ct) - 16, "body decrypted with XChaCha20-Poly1305, header as AD")
    s = parse(st)
    check(s[1] == [TYPE_BUNDLE], "statement payload type")
    payload = s[2][0]
    check(payload == payload_file, "decrypted payload equals the file sldd made")
    sigs = [parse(x) for x in s[3]]
    node = [x for x in sigs if x.get(1) == [1]]
    admin = [x for x in sigs if x.get(1) == [2]]
    check(len(node) == 1 and len(admin) == 1, "one node and one admin signature")
    try:
        vk.verify(pae(TYPE_BUNDLE, payload), node[0][4][0])
        check(node[0][2] == [b"node-a"] and node[0][3] == [key_id(a_sign)],
              "node signature verifies, signer node-a")
    except nacl.exceptions.BadSignatureError:
        check(False, "node signature verifies")
    approval = admin[0][5][0]
    try:
        nacl.signing.VerifyKey(alice).verify(pae(TYPE_APPROVAL, approval), admin[0][4][0])
        check(True, "admin approval signature verifies")
    except nacl.exceptions.BadSignatureError:
        check(False, "admin approval signature verifies")
    ap = parse(approval)
    check(ap[1] == [hashlib.sha256(payload).digest()], "approval bound to SHA-256 of the payload")
    check(ap[2] == [b"alice"] and ap[3] == [b"node-a"] and ap[4] == [1],
          "approval: admin alice, node node-a, decision APPROVE")
    # the payload itself: a few fields by field number
    b = parse(payload)
    check(b[1] == [1] and b[3] == [b"node-a"] and b[4] == [b"node-b"], "payload header fields")
    d = parse(b[9][0])
    img = parse(d[4][0])
    check(img[1] == [3] and len(img[2][0]) == 2 * 3 * 8 * 8, "uint8 images: M*C*H*W bytes")
    check(len(floats(img[3][0])) == 6 and len(floats(img[4][0])) == 6, "6 scales and offsets")
    check(len(floats(d[5][0])) == 2 * 3 * 3 and all(a > 0 for a in floats(d[6][0])),
          "label logits S*n*K, positive step sizes")
    return A, B, b_enc_pub


# ------------------------------------------------------------ part 2

def make_payload(sender, audience, seq, created, expires, bundle_id):
    import random
    rnd = random.Random(5)
    C, H, W, K, S, n, E = 1, 8, 8, 3, 2, 3, 1
    M = S * n
    model = (f_str(1, "convnet") + f_varint(2, 1) + f_varint(3, 1) + f_varint(4, 4) +
             f_varint(5, C) + f_varint(6, H) + f_varint(7, W) + f_varint(8, K) +
             f_str(9, "xavier-normal/philox4x32-10") + f_varint(10, 3) +
             f_bytes(11, hashlib.sha256(b"theta0").digest()) + f_varint(12, 1) +
             f_varint(13, 1) + f_varint(14, 1000))
    # float16 images, written by hand from IEEE binary16 via struct 'e'
    vals = [rnd.gauss(0, 1) for _ in range(M * C * H * W)]
    data = b"".join(struct.pack("<e", v) for v in vals)
    images = f_varint(1, 2) + f_bytes(2, data)
    logits = [1.0 if c == i % K else 0.0 for i in range(M) for c in range(K)]
    distilled = (f_varint(1, S) + f_varint(2, n) + f_varint(3, E) + f_msg(4, images) +
                 f_floats(5, logits) + f_floats(6, [0.01] * (S * E)))
    bn = (f_bytes(1, varint(4)) + f_floats(2, [0.1, -0.1, 0.0, 0.2]) +
          f_floats(3, [1.0, 0.5, 0.25, 2.0]) + f_varint(4, 1000))
    norm = (f_floats(1, [0.45]) + f_floats(2, [0.22]) + f_varint(3, 299) + f_varint(4, 50) +
            f_varint(5, 8))
    prov = (f_msg(1, f_str(1, "train") + f_str(2, "N") + f_varint(3, 10) + f_varint(4, 500)) +
            f_msg(2, f_str(1, "epochs") + f_str(2, "400")) + f_str(3, "pynacl-test") +
            f_str(4, "python") + f_str(5, "synthetic-test"))
    metrics = (f_str(1, "val") + f_double(2, 0.9) + f_double(3, 0.85) + f_double(4, 0.95) +
               f_double(5, 0.897) + f_double(6, 0.93) + f_varint(7, 400) + f_varint(8, 4))
    privacy = (b"".join(f_msg(1, f_varint(1, i) + f_float(2, 0.4) + f_float(3, 0.05) +
                              f_float(4, 0.7)) for i in range(M)) +
               f_floats(2, [0.01, 0.5]) + f_floats(3, [0.2, 0.3]) + f_floats(4, [0.3, 0.1]) +
               f_double(5, 0.5) + f_str(6, "pass"))
    return (f_varint(1, 1) + f_bytes(2, bundle_id) + f_str(3, sender) +
            b"".join(f_str(4, a) for a in audience) + f_varint(5, created) +
            f_varint(6, expires) + f_varint(7, seq) + f_msg(8, model) + f_msg(9, distilled) +
            f_msg(10, bn) + f_msg(11, norm) + f_msg(12, prov) + f_msg(13, metrics) +
            f_msg(14, privacy))


def make_envelope(node_sk, node_id, admin_sk, admin_id, recipient, rcpt_enc_pk, seq, created,
                  expires, bundle_id, ad_tamper=False):
    payload = make_payload(node_id, [recipient], seq, created, expires, bundle_id)
    node_sig = node_sk.sign(pae(TYPE_BUNDLE, payload)).signature
    approval = (f_bytes(1, hashlib.sha256(payload).digest()) + f_str(2, admin_id) +
                f_str(3, node_id) + f_varint(4, 1) + f_varint(5, created))
    admin_sig = admin_sk.sign(pae(TYPE_APPROVAL, approval)).signature
    statement = (f_str(1, TYPE_BUNDLE.decode()) + f_bytes(2, payload) +
                 f_msg(3, f_varint(1, 1) + f_str(2, node_id) +
                       f_bytes(3, key_id(bytes(node_sk.verify_key))) + f_bytes(4, node_sig)) +
                 f_msg(3, f_varint(1, 2) + f_str(2, admin_id) +
                       f_bytes(3, key_id(bytes(admin_sk.verify_key))) + f_bytes(4, admin_sig) +
                       f_bytes(5, approval)))
    ck = nacl.utils.random(32)
    nonce = nacl.utils.random(24)
    sealed = nacl.public.SealedBox(nacl.public.PublicKey(rcpt_enc_pk)).encrypt(ck)
    header = (f_varint(1, 1) + f_str(2, node_id) + f_str(3, recipient) + f_bytes(4, bundle_id) +
              f_varint(5, seq) + f_varint(6, created) + f_varint(7, expires) +
              f_bytes(8, key_id(bytes(node_sk.verify_key))) + f_bytes(9, key_id(rcpt_enc_pk)) +
              f_bytes(10, bytes(sealed)) + f_bytes(11, nonce))
    ad = header + (b"x" if ad_tamper else b"")
    ct = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(statement, ad, nonce, ck)
    sig = node_sk.sign(pae(TYPE_ENVELOPE, header + hashlib.sha256(ct).digest())).signature
    return f_bytes(1, header) + f_bytes(2, ct) + f_bytes(3, sig), payload


def send_to_sldd(exe, tmp, B, b_enc_pub):
    node_sk = nacl.signing.SigningKey.generate()
    node_enc = nacl.public.PrivateKey.generate()
    admin_sk = nacl.signing.SigningKey.generate()
    stranger = nacl.signing.SigningKey.generate()
    sldd(exe, "peer", "add", "--dir", B, "--id", "py-node",
         "--sign-key", b64e(bytes(node_sk.verify_key)),
         "--enc-key", b64e(bytes(node_enc.public_key)),
         "--admin", "py-admin=" + b64e(bytes(admin_sk.verify_key)))
    created = 1767225600
    expires = created + 86400
    now = str(created + 100)
    p = lambda n: os.path.join(tmp, n)

    env1, payload = make_envelope(node_sk, "py-node", admin_sk, "py-admin", "node-b", b_enc_pub,
                                  7, created, expires, bytes(range(16)))
    open(p("py1.env"), "wb").write(env1)
    r = sldd(exe, "bundle", "inspect", p("py1.env"), "--dir", B)
    check("outer signature        valid" in r.stdout, "sldd inspect: outer signature valid")
    r = sldd(exe, "bundle", "open", "--dir", B, "--in", p("py1.env"), "--now", now,
             "--payload-out", p("py1.payload"), "--out", p("py1.stmt"), check_rc=False)
    check(r.returncode == 0 and "accepted bundle from py-node" in r.stdout,
          "sldd opens the envelope PyNaCl made: " + r.stdout.strip().splitlines()[0])
    check(os.path.exists(p("py1.payload")) and open(p("py1.payload"), "rb").read() == payload,
          "sldd returns the Python payload byte for byte")
    r = sldd(exe, "bundle", "inspect", p("py1.stmt"), check_rc=False)
    check("validation: ok" in r.stdout and "payload hash matches" in r.stdout,
          "sldd inspect of the Python statement: valid, approval matches")
    r = sldd(exe, "bundle", "open", "--dir", B, "--in", p("py1.env"), "--now", now, check_rc=False)
    check(r.returncode == 1 and "refused (replayed-bundle-id)" in r.stdout, "replay refused")

    cases = [
        ("expired", dict(seq=8, bid=bytes([1] * 16)), str(expires + 1), "refused (expired)"),
        ("wrong AD", dict(seq=9, bid=bytes([2] * 16), ad_tamper=True), now,
         "refused (decryption-failed)"),
        ("unknown admin", dict(seq=10, bid=bytes([3] * 16), admin=stranger), now,
         "refused (too-few-admin-approvals)"),
    ]
    for name, kw, when, want in cases:
        env, _ = make_envelope(node_sk, "py-node", kw.get("admin", admin_sk), "py-admin", "node-b",
                               b_enc_pub, kw["seq"], created, expires, kw["bid"],
                               ad_tamper=kw.get("ad_tamper", False))
        open(p("case.env"), "wb").write(env)
        r = sldd(exe, "bundle", "open", "--dir", B, "--in", p("case.env"), "--now", when,
                 check_rc=False)
        check(r.returncode == 1 and want in r.stdout, "%s: %s" % (name, r.stdout.strip()))


def main():
    exe = os.path.abspath(sys.argv[1])
    env = dict(os.environ, SLDD_PASSPHRASE="interop passphrase")
    with tempfile.TemporaryDirectory() as tmp:
        A, B, b_enc_pub = read_sldd_bundle(exe, tmp, env)
        send_to_sldd(exe, tmp, B, b_enc_pub)
    print("%d failures" % FAILURES)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
