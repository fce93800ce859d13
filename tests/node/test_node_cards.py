#!/usr/bin/python3
"""test_node_cards.py - contact cards, peer removal and key rotation, run as
operators would.

  - two fresh nodes (plain `sldd init`, no CA in common) become peers with
    one `peer add --card` each and exchange a bundle over mutual TLS;
  - a card with a flipped byte, an expired card (properly signed, re-signed
    here with PyNaCl), a card signed by another key and the node's own card
    are refused with a clear message and an audit entry naming the OS user;
  - `peer remove`: the removed peer's next connection is refused and
    audited, its bundle file is refused naming who removed it, the
    deliveries queued to a removed peer are canceled and recorded, and
    nothing else is lost;
  - the audit log says who: the OS user (the admin API's peer credential
    for requests to a running node) for job submit and cancel, peer add,
    change and remove, admin add, approve and reject (with its reason, and
    the admin whose key signed); detections carry the image's SHA-256;
  - the receiving site: `evaluate --bundle` on the node's own data, `bundle
    show --grid` drawn from the received payload, `detect` over a folder
    with one CSV / JSON row per image (SHA-256, r, decision, bundle,
    sender), a heat map and an audit entry each, and `detect --json`
    naming the bundle;
  - signing-key rotation: a peer holding the old card refuses the new key,
    takes the new card (vouched for by the old key) and then accepts
    bundles signed by either key during the overlap, and refuses the old
    key after it; TLS rotation publishes both pins, then switches.

usage: test_node_cards.py /path/to/sldd
"""
import base64
import csv
import glob
import io
import json
import hashlib
import os
import pwd
import re
import shutil
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fed  # noqa: E402

try:
    import nacl.signing
except ImportError:
    nacl = None

USER = "user:" + pwd.getpwuid(os.geteuid()).pw_name


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_node(f, name, data=None):
    n = fed.Node(f, name)
    f.nodes[name] = n
    port = free_port()
    args = ["init", "--dir", n.dir, "--id", n.id, "--listen", "127.0.0.1:%d" % port]
    if data:
        args += ["--data", data]
    r = n.sldd(*args)
    n.pin = re.search(r"TLS pin\s+(\S+)", r.stdout).group(1)
    n.port = port
    n.sldd("admin", "add", "--dir", n.dir, "--name", "adm-" + name, "--passphrase-file",
           f.passfile, "--kdf", "interactive")
    with open(os.path.join(n.dir, "node.conf"), "a") as c:
        c.write("retry-base-ms: 100\nretry-max-ms: 400\nmax-bundle-bytes: 1048576\n"
                "distill: %s\n" % fed.DISTILL)
    return n


def card(f, n, name=None):
    path = os.path.join(f.root, (name or n.name) + ".card")
    n.sldd("keys", "export-card", "--dir", n.dir, "--url", "https://127.0.0.1:%d" % n.port,
           "--out", path)
    return path


def pae(body):
    t = b"application/vnd.sldd.card; v=1"
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def resign(src, dst, secret_seed, edit):
    """Rewrite a card's lines with edit(lines) and sign it with the seed."""
    with open(src, "rb") as fh:
        text = fh.read()
    body = text[:text.index(b"signature: ")]
    lines = edit(body.decode().splitlines())
    body = ("\n".join(lines) + "\n").encode()
    sig = nacl.signing.SigningKey(secret_seed).sign(pae(body)).signature
    with open(dst, "wb") as fh:
        fh.write(body + b"signature: " + base64.b64encode(sig) + b"\n")


def node_seed(n):
    with open(os.path.join(n.dir, "keys", "sign.key")) as fh:
        sec = re.search(r"^secret: (\S+)$", fh.read(), re.M).group(1)
    return base64.b64decode(sec)[:32]


def audit_rows(n, action):
    return n.query("SELECT actor, outcome, peer, detail FROM audit WHERE action=? ORDER BY seq",
                   action)


def refused_cards(t, f, a, b):
    ca = card(f, a)
    # a flipped byte (in the URL)
    with open(ca, "rb") as fh:
        text = bytearray(fh.read())
    i = text.index(b"127.0.0.1")
    text[i + 2] ^= 0x01
    bad = os.path.join(f.root, "flipped.card")
    with open(bad, "wb") as fh:
        fh.write(text)
    r = b.sldd("peer", "add", "--dir", b.dir, "--card", bad, check=False)
    t.check(r.returncode == 1 and "does not verify" in r.stderr,
            "flipped byte refused: %d %s" % (r.returncode, r.stderr))
    cases = [("flipped byte", "does not verify")]
    if nacl:
        now = int(time.time())

        def expire(lines):
            return [("not-before: %d" % (now - 2 * 86400)) if x.startswith("not-before:") else
                    ("not-after: %d" % (now - 86400)) if x.startswith("not-after:") else x
                    for x in lines]
        exp = os.path.join(f.root, "expired.card")
        resign(ca, exp, node_seed(a), expire)
        r = b.sldd("peer", "add", "--dir", b.dir, "--card", exp, check=False)
        t.check(r.returncode == 1 and "expired" in r.stderr,
                "expired card refused: %d %s" % (r.returncode, r.stderr))
        wrong = os.path.join(f.root, "wrong-signer.card")
        resign(ca, wrong, b"\x07" * 32, lambda lines: lines)
        r = b.sldd("peer", "add", "--dir", b.dir, "--card", wrong, check=False)
        t.check(r.returncode == 1 and "does not verify" in r.stderr,
                "card signed by another key refused: %d %s" % (r.returncode, r.stderr))
        cases += [("expired", "expired"), ("wrong signer", "does not verify")]
    else:
        print("PyNaCl missing: expired and wrong-signer cards not made here")
    r = b.sldd("peer", "add", "--dir", b.dir, "--card", card(f, b), check=False)
    t.check(r.returncode == 1 and "this node" in r.stderr, "own card refused: %s" % r.stderr)
    r = b.sldd("peer", "show", "--dir", b.dir, "--id", a.id, check=False)
    t.check(r.returncode != 0, "no refused card added the peer")
    rows = audit_rows(b, "peer-add")
    t.check(len(rows) == len(cases) + 1 and all(x[0] == USER and x[1] == "refused"
                                                for x in rows),
            "each refused card audited with the OS user: %s" % rows)
    for (what, word), row in zip(cases, rows):
        t.check(word in row[3], "%s: the audit says why: %s" % (what, row[3]))


def exchange(t, f, a, b):
    for x, y in ((a, b), (b, a)):
        r = y.sldd("peer", "add", "--dir", y.dir, "--card", card(f, x))
        t.check("added peer " + x.id in r.stdout and "CA certificate was added" in r.stdout,
                "peer add --card: %s" % r.stdout)
    rows = audit_rows(b, "peer-add")
    t.check(rows and rows[-1][:3] == (USER, "ok", a.id), "card added, audited: %s" % rows[-1:])
    pins = b.query("SELECT pins, url, source FROM peers WHERE id=?", a.id)
    t.check(pins == [(a.pin, "https://127.0.0.1:%d" % a.port, "card")],
            "pin and URL from the card: %s" % pins)
    a.start()
    b.start()
    x = a.distill([b.id])
    a.approve(x)
    fed.wait_for("the bundle at node-b", lambda: [z for z in b.bundles()
                                                  if z["id"] == x and z["state"] == "available"])
    fed.wait_for("delivered at node-a", lambda: a.bundle(x)["state"] == "delivered")
    t.check(True, "bundle exchanged between two nodes joined by cards")
    return x


def who(t, f, a, b, x):
    """Who did what, in the audit log."""
    jobs = audit_rows(a, "job")
    t.check(any(r[0] == USER and r[1] == "submitted" for r in jobs),
            "job submission audited with the OS user: %s" % jobs)
    appr = a.query("SELECT actor FROM audit WHERE action='approval' AND bundle_id=?", x)
    t.check(appr == [("admin:adm-a by " + USER,)], "approval: admin key and OS user: %s" % appr)
    t.check([r[:2] for r in audit_rows(a, "admin-add")] == [(USER, "ok")], "admin add audited")
    # long enough that the cancel lands before it ends
    r = a.sldd("job", "distill", "--dir", a.dir, "--to", b.id, "--iterations", "100000")
    jid = re.search(r"job (\d+) queued", r.stdout).group(1)
    a.sldd("job", "cancel", jid, "--dir", a.dir)
    fed.wait_for("job %s to end" % jid,
                 lambda: a.api_json("job", "show", jid)["state"] == "canceled")
    canceled = [r for r in audit_rows(a, "job") if r[1] == "canceled"]
    t.check(canceled and canceled[-1][0] == USER and "job %s " % jid in canceled[-1][3] + " ",
            "job cancel audited with the OS user: %s" % canceled)
    z = a.distill([b.id])
    a.sldd("bundle", "reject", z, "--dir", a.dir, "--admin", "adm-a", "--passphrase-file",
           f.passfile, "--yes", "--reason", "HM 0.000: not worth sending")
    rej = a.query("SELECT actor, detail FROM audit WHERE action='rejection' AND bundle_id=?", z)
    t.check(rej and rej[0][0] == "admin:adm-a by " + USER and
            "HM 0.000: not worth sending" in rej[0][1], "rejection with its reason: %s" % rej)
    a.sldd("peer", "address", "--dir", a.dir, "--id", b.id, "--url",
           "https://127.0.0.1:%d" % b.port, "--tls-pin", b.pin)
    ch = audit_rows(a, "peer-change")
    t.check(ch and ch[-1][:3] == (USER, "ok", b.id), "address change audited: %s" % ch[-1:])
    img = sorted(glob.glob(os.path.join(f.root, "data-a", "images", "*.png")))[0]
    with open(img, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    b.sldd("detect", img, "--bundle", x[:12], "--dir", b.dir)
    det = b.query("SELECT actor, detail FROM audit WHERE action='detection'")
    t.check(det and det[-1][0] == USER and digest in det[-1][1],
            "detection audited with the image's SHA-256: %s" % det[-1:])


def receiving(t, f, b, x):
    """What a receiving site does with a received bundle."""
    r = b.sldd("evaluate", "--bundle", x[:12], "--dir", b.dir)
    t.check(("bundle:  " + x) in r.stdout and "HM" in r.stdout,
            "evaluate --bundle on the node's own data: %s" % r.stdout[:300])
    r = b.sldd("evaluate", "--bundle", x[:12], "--dir", b.dir, "--json")
    ev = json.loads(r.stdout)
    t.check(ev.get("bundle") == x and "hm" in ev,
            "evaluate --bundle --json names the bundle: %s" % r.stdout[:300])
    grid = os.path.join(f.root, "received-grid.png")
    r = b.sldd("bundle", "show", x[:12], "--dir", b.dir, "--grid", grid)
    with open(grid, "rb") as fh:
        t.check(fh.read(8) == b"\x89PNG\r\n\x1a\n" and "drawn here from the payload" in r.stdout,
                "bundle show --grid at the receiver")
    images = os.path.join(f.root, "data-a", "images")
    pngs = sorted(glob.glob(os.path.join(images, "*.png")))
    heat = os.path.join(f.root, "heat")
    n0 = len(audit_rows(b, "detection"))
    r = b.sldd("detect", images, "--bundle", x[:12], "--dir", b.dir, "--heatmaps", heat)
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    t.check(len(rows) == len(pngs) and len(pngs) > 1, "one CSV row per image: %d of %d" %
            (len(rows), len(pngs)))
    ok = True
    for row, png in zip(rows, pngs):
        with open(png, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        ok = ok and (row["image"] == png and row["sha256"] == digest and row["bundle"] == x and
                     row["sender"] == "node-a" and row["error"] == "" and
                     row["decision"] in ("gastritis", "non-gastritis", "undetermined") and
                     os.path.exists(row["heatmap"]))
    t.check(ok, "each row: image, SHA-256, decision, bundle, sender, heat map: %s" % rows[:1])
    t.check(len(audit_rows(b, "detection")) == n0 + len(pngs), "one audit entry per image")
    r = b.sldd("detect", images, "--bundle", x[:12], "--dir", b.dir, "--json")
    js = [json.loads(line) for line in r.stdout.splitlines()]
    t.check(len(js) == len(pngs) and all(j["bundle"] == x and j["sender"] == "node-a" and
                                         j["decision"] == row["decision"]
                                         for j, row in zip(js, rows)),
            "JSON rows agree with the CSV")
    one = json.loads(b.sldd("detect", pngs[0], "--bundle", x[:12], "--dir", b.dir,
                            "--json").stdout)
    t.check(one["bundle"] == x and one["sender"] == "node-a" and one["sha256"] == rows[0]["sha256"],
            "detect --json names the bundle: %s" % {k: one.get(k) for k in ("bundle", "sender")})


def receipt_overlap(t, f, a, b):
    """node-b rotates its signing key while it runs (it signs with the old
    one until it restarts); node-a takes b's new card and still accepts
    b's receipts, signed by the previous key, during the overlap."""
    b.sldd("keys", "rotate-sign", "--dir", b.dir, "--overlap-days", "1")
    a.sldd("peer", "add", "--dir", a.dir, "--card", card(f, b, "b-rotated"))
    w = a.distill([b.id])
    a.approve(w)
    fed.wait_for("delivery with a receipt by the previous key",
                 lambda: a.bundle(w)["state"] == "delivered", timeout=60)
    t.check(True, "receipt signed by the previous key accepted during the overlap")


def removal(t, f, a, b, x):
    # b removes a: a's next connection is refused and audited
    seq0 = b.query("SELECT MAX(seq) FROM audit")[0][0]
    r = b.sldd("peer", "remove", a.id, "--dir", b.dir, "--reason", "contract ended")
    t.check("removed peer " + a.id in r.stdout, "peer remove: %s" % r.stdout)
    rows = audit_rows(b, "peer-remove")
    t.check(rows and rows[-1][:3] == (USER, "ok", a.id) and "contract ended" in rows[-1][3],
            "removal audited with who and why: %s" % rows)
    t.check(b.query("SELECT COUNT(*) FROM peers WHERE id=?", a.id)[0][0] == 0, "pins dropped")
    y = a.distill([b.id])
    a.approve(y)

    def refused():
        return b.query("SELECT detail FROM audit WHERE seq>? AND action='refusal' AND "
                       "detail LIKE '%not in the peer list%'", seq0)
    t.check(bool(fed.wait_for("node-b to refuse node-a's connection", refused)),
            "the removed peer's connection refused and audited")
    # a's delivery to b is queued (retrying); a removes b: canceled and recorded
    t.check(a.query("SELECT state FROM deliveries WHERE bundle_id=?", y) == [("queued",)],
            "delivery to the removed peer waits")
    r = a.sldd("peer", "remove", b.id, "--dir", a.dir)
    t.check("1 queued delivery to it canceled" in r.stdout, "canceled: %s" % r.stdout)
    d = a.query("SELECT state, last_error FROM deliveries WHERE bundle_id=?", y)
    t.check(d and d[0][0] == "refused" and d[0][1].startswith("canceled: peer removed by " + USER),
            "pending delivery canceled: %s" % d)
    t.check(a.bundle(y)["state"] == "failed", "its bundle settled as failed")
    sends = a.query("SELECT actor, outcome FROM audit WHERE action='send' AND bundle_id=?", y)
    t.check((USER, "canceled") in sends, "cancellation audited: %s" % sends)
    t.check(a.bundle(x)["state"] == "delivered" and
            a.query("SELECT COUNT(*) FROM deliveries WHERE bundle_id=? AND state='delivered' "
                    "AND receipt IS NOT NULL", x)[0][0] == 1,
            "the earlier delivery and its receipt kept")
    t.check([z["state"] for z in b.bundles() if z["id"] == x] == ["available"],
            "the bundle received before the removal kept")
    # the envelope of y, handed over as a file: refused naming the removal
    obj = a.query("SELECT envelope_obj FROM deliveries WHERE bundle_id=?", y)[0][0]
    r = b.sldd("bundle", "open", "--dir", b.dir, "--in", os.path.join(a.dir, "objects", obj),
               "--no-record", check=False)
    t.check(r.returncode == 1 and "was removed as a peer" in r.stdout and USER in r.stdout and
            "contract ended" in r.stdout, "removed peer's bundle refused: %s" % r.stdout)
    t.check(any("was removed" in z[3] for z in audit_rows(b, "refusal")),
            "that refusal audited")


def envelope(f, n, to, name):
    p, s1, s2, env = (os.path.join(f.root, name + ext) for ext in (".p", ".s1", ".s2", ".env"))
    n.sldd("bundle", "make-test", "--dir", n.dir, "--to", to, "--small", "--out", p)
    n.sldd("bundle", "sign", "--dir", n.dir, "--in", p, "--out", s1)
    n.sldd("bundle", "approve", "--dir", n.dir, "--admin", "adm-" + n.name, "--in", s1, "--out",
           s2, "--yes", "--passphrase-file", f.passfile)
    n.sldd("bundle", "seal", "--dir", n.dir, "--in", s2, "--to", to, "--out", env)
    return env


def rotation(t, f):
    r1, r2 = make_node(f, "r1"), make_node(f, "r2")
    r2.sldd("peer", "add", "--dir", r2.dir, "--card", card(f, r1))
    r1.sldd("peer", "add", "--dir", r1.dir, "--card", card(f, r2))
    e0 = envelope(f, r1, r2.id, "e0")  # signed with the old key
    r = r1.sldd("keys", "rotate-sign", "--dir", r1.dir, "--overlap-days", "2")
    until = int(re.search(r"valid until (\d+)", r.stdout).group(1))
    e1 = envelope(f, r1, r2.id, "e1")  # the new key

    def opens(env, *extra):
        return r2.sldd("bundle", "open", "--dir", r2.dir, "--in", env, "--no-record", *extra,
                       check=False)
    r = opens(e1)
    t.check(r.returncode == 1 and "not on record" in r.stdout,
            "old card: the new key is refused: %s" % r.stdout)
    r = r2.sldd("peer", "add", "--dir", r2.dir, "--card", card(f, r1, "r1-rotated"))
    t.check("updated peer node-r1" in r.stdout, "rotated card taken: %s" % r.stdout)
    t.check(audit_rows(r2, "peer-change")[-1][:3] == (USER, "ok", r1.id), "change audited")
    r = r2.sldd("peer", "add", "--dir", r2.dir, "--card", os.path.join(f.root, "r1.card"),
                check=False)
    t.check(r.returncode == 1 and "before the card on record" in r.stderr,
            "an older card cannot roll the record back: %s" % r.stderr)
    for env, what in ((e1, "new"), (e0, "old")):
        r = opens(env)
        t.check(r.returncode == 0, "during the overlap the %s key is accepted: %s" % (what,
                                                                                     r.stdout))
    r = opens(e0, "--now", str(until + 60))
    t.check(r.returncode == 1 and "overlap ended" in r.stdout,
            "after the overlap the old key is refused: %s" % r.stdout)
    r = opens(e1, "--now", str(until + 60))
    t.check(r.returncode == 0, "after the overlap the new key is accepted: %s" % r.stdout)
    # a card signed by the new key alone, for a peer still holding the old
    # key, is refused (the old key must vouch)
    r3 = make_node(f, "r3")
    r3.sldd("peer", "add", "--dir", r3.dir, "--card", os.path.join(f.root, "r1.card"))
    plain = os.path.join(f.root, "r1-plain.card")
    if nacl:
        resign(os.path.join(f.root, "r1-rotated.card"), plain, node_seed(r1),
               lambda lines: [x for x in lines if not x.startswith("sign-previous:")])
        r = r3.sldd("peer", "add", "--dir", r3.dir, "--card", plain, check=False)
        t.check(r.returncode == 1 and "another key than the one on record" in r.stderr,
                "new key without the old key's word refused: %s" % r.stderr)
    # TLS: the next key is published beside the current one, then switched to
    old_pin = r1.pin
    r = r1.sldd("keys", "rotate-tls", "--dir", r1.dir)
    new_pin = re.search(r"next TLS key staged: (\S+)", r.stdout).group(1)
    r2.sldd("peer", "add", "--dir", r2.dir, "--card", card(f, r1, "r1-tls"))
    t.check(r2.query("SELECT pins FROM peers WHERE id=?", r1.id) ==
            [("%s;%s" % (old_pin, new_pin),)], "both TLS pins pinned during the change")
    shown = json.loads(r1.sldd("keys", "show", "--dir", r1.dir, "--json").stdout)
    t.check(shown["tls_pin"] == old_pin and shown["tls_pin_next"] == new_pin and
            [k["key"] for k in shown["keys"]] == ["sign", "enc", "sign-previous"] and
            [k["key"] for k in shown["admins"]] == ["adm-r1"] and
            shown["sign_previous_until"] == until, "keys show --json: %s" % shown)
    r1.sldd("keys", "rotate-tls", "--dir", r1.dir, "--switch")
    shown = r1.sldd("keys", "show", "--dir", r1.dir).stdout
    t.check("current     " + new_pin in shown, "switched to the new TLS key: %s" % shown)


def tls_later(t, f):
    """A node made before init made TLS gets it with `keys tls-init`."""
    o = fed.Node(f, "old")
    o.sldd("init", "--dir", o.dir, "--id", o.id)
    shutil.rmtree(os.path.join(o.dir, "tls"))
    conf = os.path.join(o.dir, "node.conf")
    with open(conf) as fh:
        lines = [x for x in fh if not x.startswith(("listen:", "tls-"))]
    with open(conf, "w") as fh:
        fh.writelines(lines)
    r = o.sldd("keys", "show", "--dir", o.dir)
    t.check("keys tls-init" in r.stdout, "keys show says how to add TLS: %s" % r.stdout)
    r = o.sldd("keys", "tls-init", "--dir", o.dir, "--listen", "127.0.0.1:%d" % free_port())
    pin = re.search(r"TLS pin\s+(\S+)", r.stdout).group(1)
    t.check(("current     " + pin) in o.sldd("keys", "show", "--dir", o.dir).stdout,
            "keys show prints the new pin")
    r = o.sldd("keys", "tls-init", "--dir", o.dir, check=False)
    t.check(r.returncode == 1 and "already" in r.stderr, "a second tls-init refused: %s" %
            r.stderr)
    o.start()  # it serves now
    fed.wait_for("node-old to serve", lambda: "serving peers on" in o.tail())
    o.stop()
    t.check([x[:2] for x in audit_rows(o, "tls-init")] == [(USER, "ok")], "tls-init audited")


def main(sldd, t):
    f = fed.Federation(sldd, names=())
    with f.session(t):
        d = os.path.join(f.root, "data-a")
        fed.Node(f, "x").sldd("dataset", "synth", "--out", d, "--count", "18", "--size", "128",
                              "--seed", "11", "--threads", "1")
        fed.Node(f, "x").sldd("dataset", "prepare", "--data", d, "--patch", "32", "--stride",
                              "16", "--patch-resize", "16")
        a, b = make_node(f, "a", d), make_node(f, "b", d)
        refused_cards(t, f, a, b)
        x = exchange(t, f, a, b)
        who(t, f, a, b, x)
        receiving(t, f, b, x)
        receipt_overlap(t, f, a, b)
        removal(t, f, a, b, x)
        f.stop()
        rotation(t, f)
        tls_later(t, f)


if __name__ == "__main__":
    fed.run(main)
