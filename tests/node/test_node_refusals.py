#!/usr/bin/python3
"""test_node_refusals.py - what a node refuses, and the audit log's tamper
evidence, checked from the outside.

Against a running node-b, with the openssl and curl tools as independent
clients: a TLS 1.2 client, clients without a certificate, a certificate from
the federation's CA that is not pinned, one from another CA; then, with
node-a's real certificate, a bundle addressed to node-c, a replayed sequence
number, an oversized body and bytes that are not a bundle.  Each is refused
with a clear reason in the log and an audit entry, and nothing is stored.  A
retransmitted bundle gets the same receipt again; other bytes under its
bundle id get 409 and an audit entry, and the stored bundle stays as it was.  Finally `sldd audit
verify` must find a changed, a removed, a reordered and a truncated entry
in copies of node-b's log.

usage: test_node_refusals.py /path/to/sldd
"""
import os
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fed  # noqa: E402

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")


def refusals(node):
    return [e for e in node.audit() if e["action"] == "refusal"]


def s_client(port, cert=None, key=None, tls="-tls1_3", ca=None):
    cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", ca, tls,
           "-ign_eof", "-brief"]
    if cert:
        cmd += ["-cert", cert, "-key", key]
    r = subprocess.run(cmd, input="GET /v1/health HTTP/1.1\r\nHost: localhost\r\n"
                       "Connection: close\r\n\r\n", capture_output=True, text=True, timeout=60)
    return r.stdout + r.stderr


def curl(port, path, ca, cert=None, key=None, data=None):
    cmd = [CURL, "--noproxy", "*", "-sS", "--tlsv1.3", "--max-time", "60", "--cacert", ca,
           "-o", "-", "-w", "\nHTTP %{http_code}\n"]
    if cert:
        cmd += ["--cert", cert, "--key", key]
    if data is not None:
        cmd += ["-H", "Content-Type: application/vnd.sldd.bundle", "--data-binary", "@" + data]
    cmd.append("https://127.0.0.1:%d%s" % (port, path))
    r = subprocess.run(cmd, capture_output=True, timeout=90)
    return r.returncode, r.stdout.decode("latin-1"), r.stderr.decode("latin-1")


def envelope(f, a, to, out, sequence=None):
    """A sealed test bundle from node-a to `to`, made with the file commands."""
    p = os.path.join(f.root, out + ".payload")
    s1 = os.path.join(f.root, out + ".s1")
    s2 = os.path.join(f.root, out + ".s2")
    env = os.path.join(f.root, out)
    args = ["bundle", "make-test", "--dir", a.dir, "--to", to, "--small", "--out", p]
    if sequence:
        args += ["--sequence", sequence]
    a.sldd(*args)
    a.sldd("bundle", "sign", "--dir", a.dir, "--in", p, "--out", s1)
    a.sldd("bundle", "approve", "--dir", a.dir, "--admin", "adm-a", "--in", s1, "--out", s2,
           "--yes", "--passphrase-file", f.passfile)
    a.sldd("bundle", "seal", "--dir", a.dir, "--in", s2, "--to", to, "--out", env)
    return env


def tamper(t, f, b, name, sql, want):
    d = os.path.join(f.root, "copy-" + name)
    os.mkdir(d, 0o700)
    for x in ("node.conf", "state.db", "audit.head"):
        shutil.copy(os.path.join(b.dir, x), d)
    for x in ("keys", "admins", "peers"):
        shutil.copytree(os.path.join(b.dir, x), os.path.join(d, x))
    con = sqlite3.connect(os.path.join(d, "state.db"))
    con.executescript(sql)
    con.commit()
    con.close()
    r = b.sldd("audit", "verify", "--dir", d, check=False)
    t.check(r.returncode == 1 and want in r.stdout,
            "audit verify finds %s (%d): %s%s" % (name, r.returncode, r.stdout, r.stderr))


def main(sldd, t):
    if not OPENSSL or not CURL:
        print("openssl or curl missing: skipped")
        sys.exit(77)
    f = fed.Federation(sldd)
    with f.session(t):
        a, b, c = f.nodes["a"], f.nodes["b"], f.nodes["c"]
        # an outsider: same CA, never pinned; and a node of another federation
        out = fed.Node(f, "x")
        out.sldd("init", "--dir", out.dir, "--id", "node-x", "--tls", "--ca-dir", f.ca)
        alien = fed.Node(f, "y")
        alien.sldd("init", "--dir", alien.dir, "--id", "node-y", "--tls", "--ca-dir",
                   os.path.join(f.root, "other-ca"))
        f.start()
        c.stop()  # node-c is only a name to address bundles to
        ca = os.path.join(b.dir, "tls", "ca.pem")
        acert, akey = os.path.join(a.dir, "tls", "node.pem"), os.path.join(a.dir, "tls", "node.key")
        xcert, xkey = os.path.join(out.dir, "tls", "node.pem"), os.path.join(out.dir, "tls",
                                                                            "node.key")
        ycert, ykey = (os.path.join(alien.dir, "tls", "node.pem"),
                       os.path.join(alien.dir, "tls", "node.key"))
        port = b.port

        # a real bundle first, so that node-b has accepted a sequence number
        z = a.distill(["node-b"])
        a.approve(z)
        fed.wait_for("node-b to import", lambda: [e for e in b.bundles()
                                                  if e["id"] == z and e["state"] == "available"])
        n_bundles = len(b.bundles())

        # the positive control: node-a's certificate is welcome
        rc, body, err = curl(port, "/v1/health", ca, acert, akey)
        t.check(rc == 0 and "HTTP 200" in body and '"peer":"node-a"' in body,
                "health with node-a's certificate: %s %s" % (body, err))
        base = len(refusals(b))

        # ---- TLS refusals
        o = s_client(port, acert, akey, "-tls1_2", ca)
        t.check("HTTP/1.1 200" not in o, "TLS 1.2 refused: %s" % o[-300:])
        o = s_client(port, None, None, "-tls1_3", ca)
        t.check("HTTP/1.1 200" not in o, "s_client without a certificate refused: %s" % o[-300:])
        rc, body, err = curl(port, "/v1/health", ca)
        t.check(rc != 0 and "HTTP 200" not in body, "curl without a certificate refused: %s" % err)
        rc, body, err = curl(port, "/v1/health", ca, xcert, xkey)
        t.check(rc != 0 and "HTTP 200" not in body, "unpinned certificate refused: %s" % err)
        rc, body, err = curl(port, "/v1/health", ca, ycert, ykey)
        t.check(rc != 0 and "HTTP 200" not in body, "another CA's certificate refused: %s" % err)
        fed.wait_for("TLS refusals in the audit log", lambda: len(refusals(b)) >= base + 5)
        tls = [e["detail"] for e in refusals(b)[base:]]
        t.check(any("not in the peer list" in d or "not a known" in d for d in tls),
                "the unpinned key is named as such: %s" % tls)
        t.check(any("certificate" in d for d in tls), "missing certificate named: %s" % tls)
        t.check(any("protocol" in d or "version" in d for d in tls), "TLS 1.2 named: %s" % tls)

        # ---- bundle refusals with node-a's own certificate
        def post(path, want_status, want_reason, what):
            before = len(refusals(b))
            rc, body, err = curl(port, "/v1/bundles", ca, acert, akey, data=path)
            t.check("HTTP %d" % want_status in body and want_reason in body,
                    "%s: answered %s %s" % (what, body.strip()[-200:], err))
            fed.wait_for("audit entry for " + what, lambda: len(refusals(b)) > before)
            last = refusals(b)[-1]
            t.check(want_reason in last["detail"] and last["peer"] == "node-a",
                    "%s: audit entry says why: %s" % (what, last))
            t.check(len(b.bundles()) == n_bundles, "%s: nothing stored" % what)
            with open(b.log) as lf:
                t.check(want_reason in lf.read(), "%s: the log says why" % what)

        post(envelope(f, a, "node-c", "to-c.env"), 403, "wrong-recipient", "wrong recipient")
        post(envelope(f, a, "node-b", "old.env", sequence=1), 409, "replayed-sequence",
             "replayed sequence")
        big = os.path.join(f.root, "big.bin")
        with open(big, "wb") as fb:
            fb.write(os.urandom(2 << 20))
        post(big, 413, "exceeds", "oversized body")
        junk = os.path.join(f.root, "junk.bin")
        with open(junk, "wb") as fj:
            fj.write(b"\x0a\xff\xff\xff\x0f" + os.urandom(1000))
        post(junk, 400, "bad-envelope", "malformed protobuf")

        # ---- a retransmission is answered with the same receipt
        good = envelope(f, a, "node-b", "good.env")
        rc1, r1, _ = curl(port, "/v1/bundles", ca, acert, akey, data=good)
        rc2, r2, _ = curl(port, "/v1/bundles", ca, acert, akey, data=good)
        t.check("HTTP 200" in r1 and r1 == r2 and "sldd-receipt: v1" in r1,
                "same receipt twice: %r / %r" % (r1[-80:], r2[-80:]))
        t.check(len([e for e in b.bundles()]) == n_bundles + 1, "stored once")

        # ---- other bytes under a known bundle id: a conflict, not a receipt.
        # The header (sender, bundle id) is intact; the signature is not.
        with open(good, "rb") as fg:
            forged_bytes = bytearray(fg.read())
        forged_bytes[-1] ^= 0x01
        forged = os.path.join(f.root, "forged.env")
        with open(forged, "wb") as ff:
            ff.write(bytes(forged_bytes))
        row = ("SELECT id,payload_sha256,envelope_sha256,receipt,statement_obj FROM bundles "
               "WHERE direction='in' ORDER BY id")
        held = b.query(row)
        before = len(refusals(b))
        rc3, r3, _ = curl(port, "/v1/bundles", ca, acert, akey, data=forged)
        t.check("HTTP 409" in r3 and "replayed-bundle-id" in r3 and "sldd-receipt" not in r3,
                "forged body under a known id: 409, no receipt: %r" % r3[-200:])
        fed.wait_for("audit entry for the forged body", lambda: len(refusals(b)) > before)
        last = refusals(b)[-1]
        t.check("other content" in last["detail"] and last["peer"] == "node-a",
                "the conflict is audited: %s" % last)
        t.check(b.query(row) == held and len(b.bundles()) == n_bundles + 1,
                "the stored bundle is untouched")
        rc4, r4, _ = curl(port, "/v1/bundles", ca, acert, akey, data=good)
        t.check(r4 == r1, "the first bytes still get their receipt: %r" % r4[-80:])

        f.stop()
        # ---- tampering with node-b's audit log
        rows = b.query("SELECT COUNT(*) FROM audit")[0][0]
        t.check(rows >= 8, "enough audit entries to tamper with (%d)" % rows)
        r = b.sldd("audit", "verify", "--dir", b.dir, check=False)
        t.check(r.returncode == 0, "the untouched log verifies: %s" % r.stdout)
        tamper(t, f, b, "changed", "UPDATE audit SET outcome='tampered' WHERE seq=3;",
               "content changed")
        tamper(t, f, b, "removed", "DELETE FROM audit WHERE seq=4;", "missing")
        tamper(t, f, b, "reordered", "UPDATE audit SET seq=-1 WHERE seq=2;"
               "UPDATE audit SET seq=2 WHERE seq=5; UPDATE audit SET seq=5 WHERE seq=-1;",
               "content changed")
        tamper(t, f, b, "truncated", "DELETE FROM audit WHERE seq=(SELECT MAX(seq) FROM audit);",
               "removed from the end")


if __name__ == "__main__":
    fed.run(main)
