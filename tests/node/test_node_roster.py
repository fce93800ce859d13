#!/usr/bin/python3
"""test_node_roster.py - a new admin is known to the peers before their
approvals leave (docs/keys.md, "Roster push").

  - node-a pushes its contact card to node-b as soon as it has b's
    address; node-b records it in its audit log;
  - admin carol is added at node-a while node-b is down: carol's approval
    of a bundle for node-b is refused before sealing, naming carol and
    node-b, with an audit entry; nothing is sealed or queued, the bundle
    stays pending;
  - node-b comes back, takes the new card, and the same `sldd bundle
    approve --admin carol` is accepted; node-b imports the bundle;
  - node-b refuses (and audits) a card POSTed over node-a's own TLS
    identity that is older than the one on record (properly signed with
    PyNaCl) or signed by another key, and keeps what it had.

usage: test_node_roster.py /path/to/sldd
"""
import base64
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fed  # noqa: E402

try:
    import nacl.signing
except ImportError:
    nacl = None

CURL = "/usr/bin/curl"


def pae(body):
    t = b"application/vnd.sldd.card; v=1"
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def node_seed(n):
    with open(os.path.join(n.dir, "keys", "sign.key")) as fh:
        sec = re.search(r"^secret: (\S+)$", fh.read(), re.M).group(1)
    return base64.b64decode(sec)[:32]


def resigned(text, seed, edit):
    """A card's text with its lines rewritten by edit and signed by seed."""
    body = text[:text.index(b"signature: ")]
    lines = edit(body.decode().splitlines())
    body = ("\n".join(lines) + "\n").encode()
    sig = nacl.signing.SigningKey(seed).sign(pae(body)).signature
    return body + b"signature: " + base64.b64encode(sig) + b"\n"


def post_card(src, dst, body):
    """POST body to dst's /v1/card over src's TLS identity (curl)."""
    conf = {}
    with open(os.path.join(src.dir, "node.conf")) as fh:
        for line in fh:
            k, _, v = line.partition(":")
            conf[k.strip()] = v.strip()
    path = lambda k: os.path.join(src.dir, conf[k])  # noqa: E731
    r = subprocess.run([CURL, "-sS", "--tlsv1.3", "--cert", path("tls-cert"), "--key",
                        path("tls-key"), "--cacert", path("tls-ca"), "--pinnedpubkey", dst.pin,
                        "-H", "Content-Type: application/vnd.sldd.card", "--data-binary", "@-",
                        "-w", "\n%{http_code}",
                        "https://127.0.0.1:%d/v1/card" % dst.port],
                       input=body, capture_output=True, timeout=fed.WAIT)
    out = r.stdout.decode(errors="replace")
    text, _, code = out.rpartition("\n")
    return int(code or 0), text + r.stderr.decode(errors="replace")


def roster_of(a, peer):
    rows = a.query("SELECT roster_sha256, admins FROM peer_roster WHERE peer=?", peer)
    return rows[0] if rows else ("", "")


def main(sldd, t):
    f = fed.Federation(sldd, names=("a", "b"))
    a, b = f.nodes["a"], f.nodes["b"]
    with f.session(t):
        f.start()
        # ---- the first push: b knows a's admins as of now
        fed.wait_for("node-a's card to reach node-b", lambda: roster_of(a, b.id)[0])
        t.check("adm-a:" in roster_of(a, b.id)[1], "the acknowledged roster lists adm-a")
        got = b.query("SELECT outcome, detail FROM audit WHERE action='peer-roster' AND "
                      "actor='peer:node-a'")
        t.check(got and got[-1][0] == "ok" and "adm-a" in got[-1][1],
                "node-b audited the card it took: %r" % got)

        # ---- carol is added while node-b is down
        x = a.distill([b.id])
        b.stop()
        a.sldd("admin", "add", "--dir", a.dir, "--name", "carol", "--passphrase-file",
               f.passfile, "--kdf", "interactive")
        r = a.approve(x, admin="carol", check=False)
        t.check(r.returncode != 0 and "admin carol is not yet known to node-b" in r.stderr and
                "approve again" in r.stderr,
                "carol's approval refused before sealing, naming carol and node-b: %d %s" %
                (r.returncode, r.stderr))
        t.check(a.bundle(x)["state"] == "pending",
                "the bundle stays pending: %s" % a.bundle(x)["state"])
        t.check(a.query("SELECT COUNT(*) FROM deliveries WHERE bundle_id=?", x)[0][0] == 0,
                "nothing sealed or queued")
        t.check(a.query("SELECT COUNT(*) FROM approvals WHERE bundle_id=?", x)[0][0] == 0,
                "the refused approval is not recorded")
        refused = a.query("SELECT actor, peer, detail FROM audit WHERE action='approval' AND "
                          "outcome='refused' AND bundle_id=?", x)
        t.check(len(refused) == 1 and refused[0][1] == b.id and "carol" in refused[0][2],
                "the refusal is audited at node-a: %r" % refused)

        # ---- node-b comes back: the roster reaches it, the same approval passes
        b.start()
        fed.wait_for("node-b to acknowledge carol", lambda: "carol:" in roster_of(a, b.id)[1])
        r = a.approve(x, admin="carol")
        t.check("APPROVED" in r.stdout, "the same approval is accepted once node-b knows carol")

        def imported():
            return [e for e in b.bundles() if e.get("id") == x and e["state"] == "available"]
        fed.wait_for("node-b to import " + x[:12], imported)
        fed.wait_for("delivered", lambda: a.bundle(x)["state"] == "delivered")
        with open(os.path.join(b.dir, "peers", a.id + ".peer")) as fh:
            record = fh.read()
        t.check("carol" in record, "node-b's record of node-a names carol")

        # ---- cards node-b must refuse, sent over node-a's own TLS identity
        if not nacl:
            print("PyNaCl missing: the forged-card cases are skipped", flush=True)
        elif not os.path.exists(CURL):
            print("curl missing: the forged-card cases are skipped", flush=True)
        else:
            path = os.path.join(f.root, "a.card")
            a.sldd("keys", "export-card", "--dir", a.dir, "--url",
                   "https://127.0.0.1:%d" % a.port, "--out", path)
            with open(path, "rb") as fh:
                current = fh.read()
            before = len(b.query("SELECT 1 FROM audit WHERE action='refusal' AND "
                                 "detail LIKE '%contact card%'"))

            def older(lines):
                # properly signed, made an hour before the card on record, without carol
                out = []
                for ln in lines:
                    if ln.startswith("not-before: "):
                        ln = "not-before: %d" % (int(ln.split()[1]) - 3600)
                    if not ln.startswith("admin: carol "):
                        out.append(ln)
                return out
            code, text = post_card(a, b, resigned(current, node_seed(a), older))
            t.check(code == 409 and "before the card on record" in text,
                    "a rolled-back card refused: %d %s" % (code, text))
            code, text = post_card(a, b, resigned(current, b"\x07" * 32, lambda ls: ls))
            t.check(code == 422 and "does not verify" in text,
                    "a card signed by another key refused: %d %s" % (code, text))
            code, text = post_card(a, b, current)
            t.check(code == 200, "node-a's current card taken: %d %s" % (code, text))
            after = b.query("SELECT actor, outcome FROM audit WHERE action='refusal' AND "
                            "detail LIKE '%contact card%'")
            t.check(len(after) == before + 2 and all(r == ("peer:node-a", "refused")
                                                     for r in after[before:]),
                    "both refusals audited at node-b: %r" % after)
            with open(os.path.join(b.dir, "peers", a.id + ".peer")) as fh:
                t.check("carol" in fh.read(), "node-b still knows carol")
        f.stop()


if __name__ == "__main__":
    fed.run(main)
