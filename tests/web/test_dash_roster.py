#!/usr/bin/python3
"""test_dash_roster.py - admins known to peers, and a refused delivery sent
again, from the dashboard in headless Chromium (docs/dashboard.md).

Two nodes on loopback; node-a serves the dashboard.  node-b starts asking
for two admin approvals, so W, approved by adm-a alone, is refused by
node-b: its delivery is refused, the bundle failed.  Then node-b is down
and node-a adds admin carol.

  1. carol signs in (her key file and passphrase, in the browser) and
     approves X: refused by node-a before sealing, the page shows the
     node's answer naming carol and node-b; X stays pending with nothing
     sealed and no approval recorded, and the refusal is audited.
  2. node-b comes back asking for one approval, takes node-a's new roster.
     carol signs in again: W's page shows the refused delivery with node-b's
     reason and a Re-send button; pressed, the node queues the envelope
     sealed at approval.  Then the same approval of X is accepted.
  3. node-b imports W and X; W arrived byte for byte as sealed at approval;
     the re-send is audited as carol's (dashboard:carol); no request of the
     page went to another host or carried the passphrase.
  4. node-b's dashboard, its Inbound page: over HTTP, an upload for
     detection without a session (401), without the CSRF token or from
     another origin (403), too large (413), not a PNG or a broken one (400,
     audited with the bytes' SHA-256); in Chromium, adm-b picks a whole image
     of node-b's data set and runs detection with X's model: the decision,
     r and the patch counts, the heat map decoded and drawn, the detection
     audited with the image's SHA-256.

usage: test_dash_roster.py /path/to/sldd WORKDIR   (WORKDIR: npm modules cache)
Exits 77 when chromium, node or the npm packages are not available.
"""
import hashlib
import os
import re
import shutil
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_dashboard as td  # noqa: E402  (exits 77 without PyNaCl)

fed = td.fed


def set_conf(node, key, value):
    path = os.path.join(node.dir, "node.conf")
    with open(path) as fh:
        lines = [x for x in fh if not x.startswith(key + ":")]
    with open(path, "w") as fh:
        fh.writelines(lines + ["%s: %s\n" % (key, value)])


def roster_of(a, peer):
    rows = a.query("SELECT admins FROM peer_roster WHERE peer=?", peer)
    return rows[0][0] if rows else ""


def spec(a, port, keyfile, roster, shot=None, shot_resend=None, detect=None):
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    return {"url": "http://127.0.0.1:%d/" % port, "chromium": chromium,
            "origins": ["http://127.0.0.1:%d/" % port], "keyfile": keyfile,
            "passphrase": fed.PASS, "secrets": {"passphrase": fed.PASS},
            "roster": roster, "screenshot": shot, "screenshot_resend": shot_resend,
            "detect": detect}


def common_checks(t, res, what, refused=False, who="carol"):
    t.check("Signed in" in res.get("steps", {}).get("signin", ""),
            "%s: %s signed in: %r" % (what, who, res.get("steps", {}).get("signin")))
    t.check(res.get("foreign") == [], "%s: no request to another host: %r" %
            (what, res.get("foreign")))
    t.check(res.get("leaks") == [], "%s: no request carries the passphrase: %r" %
            (what, res.get("leaks")))
    # the browser logs the node's 403 for the refused approval as an error
    errors = [e for e in res.get("errors", []) if not (refused and "status of 403" in e)]
    t.check(not errors and "errors" in res, "%s: no script errors: %r" % (what, errors))


def local_image(f):
    """A whole image of node-b's data set (PNG), as on an admin's disk."""
    for top, _, files in sorted(os.walk(os.path.join(f.root, "data-b"))):
        for name in sorted(files):
            if name.endswith(".png") and "patch" not in top:
                return os.path.join(top, name)
    raise fed.Failed("no PNG image in node-b's data set")


def announced_only(d, path, length):
    """The status of a POST that announces length bytes and sends none."""
    with socket.create_connection(("127.0.0.1", d.port), timeout=30) as c:
        c.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: sldd_dash=%s\r\n"
                   "X-CSRF-Token: %s\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n" %
                   (path, d.port, d.cookie, d.csrf, length)).encode())
        head = c.recv(200).decode(errors="replace")
    m = re.match(r"HTTP/1\.[01] (\d+)", head)
    return int(m.group(1)) if m else head


def detect_http(t, b, port, x, w):
    """The upload route over plain HTTP: session, CSRF, size, PNG, and which
    bundles; each refused upload that reached the node audited."""
    admin = td.load_admin(os.path.join(b.dir, "admins", "adm-b.key"), fed.PASS)
    d = td.Dash(port)
    path = "/api/v1/inbound/%s/detect" % x
    png = b"\x89PNG\r\n\x1a\n"
    st, _, _ = d.req("POST", path, png + b"x" * 100, {"Content-Type": "image/png"})
    t.check(st == 401, "detection without a session: %d" % st)
    d.login(admin)
    st, _, _ = d.post(path, png + b"x" * 100, csrf=False)
    t.check(st == 403, "detection without the CSRF token: %d" % st)
    st, _, _ = d.post(path, png + b"x" * 100, origin="http://evil.example")
    t.check(st == 403, "detection from another origin: %d" % st)
    st = announced_only(d, path, 2 << 20)
    t.check(st == 413, "a 2 MiB upload is refused before its body is read: %r" % st)
    garbage = b"GIF89a" + os.urandom(64)
    st, _, msg = d.post(path, garbage)
    t.check(st == 400 and b"not a PNG" in msg, "not a PNG: %d %s" % (st, msg))
    ihdr = png + b"\0\0\0\x0dIHDR"
    broken = ihdr + b"\0\0\1\0\0\0\1\0" + os.urandom(200)
    st, _, msg = d.post(path, broken)
    t.check(st == 400 and b"detection refused: upload.png: " in msg and
            b.dir.encode() not in msg, "a broken PNG, named without the node's folders: %d %s" %
            (st, msg))
    huge = ihdr + b"\0\1\0\0\0\1\0\0" + os.urandom(200)  # 65536 x 65536
    st, _, msg = d.post(path, huge)
    t.check(st == 400 and b"above 8192 pixels" in msg, "a 65536 x 65536 PNG header: %d %s" %
            (st, msg))
    st, _, msg = d.post("/api/v1/inbound/%s/detect" % ("f" + "0" * 31), png)
    t.check(st in (400, 404), "no such bundle: %d %s" % (st, msg))
    refused = b.query("SELECT detail FROM audit WHERE action='detection' AND outcome='refused' "
                      "AND actor='dashboard:adm-b'")
    for what, data in (("not a PNG", garbage), ("broken PNG", broken), ("huge PNG", huge)):
        sha = hashlib.sha256(data).hexdigest()
        t.check(any(sha in r[0] for r in refused), "the %s upload audited with its SHA-256: %r" %
                (what, refused))
    tmp = os.path.join(b.dir, "tmp")
    t.check(not os.path.isdir(tmp) or not os.listdir(tmp), "nothing left in NODE/tmp: %r" %
            (os.listdir(tmp) if os.path.isdir(tmp) else None))


def main(sldd, t):
    workdir = sys.argv[2]
    if not (os.environ.get("CHROMIUM") or shutil.which("chromium")) or not shutil.which("node"):
        print("SKIP: chromium or node not installed (scripts/install-deps)")
        sys.exit(td.SKIP)
    if not td.npm_modules(workdir):
        sys.exit(td.SKIP)
    shots = os.environ.get("SLDD_DASH_SCREENSHOTS")
    shot = (lambda k: os.path.join(shots, "dashboard-%s.png" % k)) if shots else (lambda k: None)
    f = fed.Federation(sldd, names=("a", "b"))
    a, b = f.nodes["a"], f.nodes["b"]
    with f.session(t):
        port = td.free_port()
        a.serve_args = ["--dashboard", "127.0.0.1:%d" % port]
        port_b = td.free_port()
        b.serve_args = ["--dashboard", "127.0.0.1:%d" % port_b]
        set_conf(b, "min-admin-approvals", "2")
        f.start()
        fed.wait_for("node-b to acknowledge adm-a", lambda: "adm-a:" in roster_of(a, b.id))
        w = a.distill([b.id])
        x = a.distill([b.id])
        a.approve(w)
        fed.wait_for("node-b to refuse W", lambda: a.bundle(w)["state"] == "failed")
        env_w = a.query("SELECT envelope_obj FROM deliveries WHERE bundle_id=?", w)[0][0]

        # ---- 1. carol, unknown to node-b, approves X in the browser
        b.stop()
        a.sldd("admin", "add", "--dir", a.dir, "--name", "carol", "--passphrase-file",
               f.passfile, "--kdf", "interactive")
        carol = os.path.join(a.dir, "admins", "carol.key")
        res = td.run_browser(t, workdir, spec(a, port, carol, {"approve": x},
                                              shot("roster-refused")))
        common_checks(t, res, "refused run", refused=True)
        s = res.get("steps", {})
        t.check(s.get("approve", "").startswith("Refused") and
                "admin carol is not yet known to node-b" in s.get("approve", "") and
                "approve again" in s.get("approve", "") and s.get("approve_class") == "check-bad",
                "the page shows the refusal naming carol and node-b: %r" % s.get("approve"))
        t.check(a.bundle(x)["state"] == "pending", "X stays pending")
        t.check(a.query("SELECT COUNT(*) FROM deliveries WHERE bundle_id=?", x)[0][0] == 0 and
                a.query("SELECT COUNT(*) FROM approvals WHERE bundle_id=?", x)[0][0] == 0,
                "nothing sealed, no approval recorded")
        refused = a.query("SELECT peer, detail FROM audit WHERE action='approval' AND "
                          "outcome='refused' AND bundle_id=?", x)
        t.check(len(refused) == 1 and refused[0][0] == b.id and "carol" in refused[0][1],
                "the refusal is audited: %r" % refused)

        # ---- 2. node-b back, one approval enough; re-send W, approve X
        set_conf(b, "min-admin-approvals", "1")
        b.start()
        fed.wait_for("node-b to acknowledge carol", lambda: "carol:" in roster_of(a, b.id))
        res = td.run_browser(t, workdir, spec(a, port, carol, {"approve": x, "resend": w,
                                                               "peer": b.id},
                                              None, shot("resend")))
        common_checks(t, res, "accepted run")
        s = res.get("steps", {})
        t.check("refused" in s.get("deliveries_before", "") and
                "too-few-admin-approvals" in s.get("deliveries_before", "") and
                s.get("resend_buttons") == 1,
                "W's page: the refused delivery, its reason, one Re-send button: %r %r" %
                (s.get("deliveries_before"), s.get("resend_buttons")))
        t.check("re-sending the envelope sealed at approval to node-b" in s.get("resend", ""),
                "the page shows the node's answer: %r" % s.get("resend"))
        t.check("refused" not in s.get("deliveries_after", "refused"),
                "W no longer shown refused: %r" % s.get("deliveries_after"))
        t.check("APPROVED" in s.get("approve", ""), "the same approval of X is accepted: %r" %
                s.get("approve"))

        # ---- 3. what node-b received, what node-a recorded
        for bid, name in ((w, "W"), (x, "X")):
            fed.wait_for("node-b to import " + name,
                         lambda bid=bid: [e for e in b.bundles() if e.get("id") == bid and
                                          e["state"] == "available"])
        got = b.query("SELECT envelope_sha256 FROM bundles WHERE id=?", w)[0][0]
        t.check(got == env_w, "W arrived as sealed at approval: %s vs %s" % (got, env_w))
        rows = a.query("SELECT actor, peer FROM audit WHERE action='resend' AND bundle_id=?", w)
        t.check((("dashboard:carol", b.id)) in rows, "the re-send audited as carol's: %r" % rows)

        # ---- 4. node-b's Inbound page: detection on a local image with X's model
        detect_http(t, b, port_b, x, w)
        image = local_image(f)
        res = td.run_browser(t, workdir, spec(b, port_b, os.path.join(b.dir, "admins",
                                                                       "adm-b.key"),
                                              None, shot("detect"), detect={"bundle": x,
                                                                            "image": image}))
        common_checks(t, res, "detection run", who="adm-b")
        s = res.get("steps", {})
        t.check("Choose a PNG" in s.get("detect_empty", ""), "no file chosen: said so, nothing sent")
        m = re.search(r"decision (GASTRITIS|NON-GASTRITIS|UNDETERMINED)", s.get("detect", ""))
        t.check(m and "patches classified I" in s.get("detect", ""),
                "the page shows the decision, r and the patch counts: %r" % s.get("detect"))
        mp = s.get("detect_map") or {}
        t.check(mp.get("w", 0) >= 128 and mp.get("h", 0) >= 128 and mp.get("colours", 0) > 8,
                "the heat map is decoded and drawn, not blank: %r" % mp)
        with open(image, "rb") as fh:
            sha = hashlib.sha256(fh.read()).hexdigest()
        rows = b.query("SELECT actor, bundle_id, outcome, detail FROM audit WHERE "
                       "action='detection' AND detail LIKE ?", "%" + sha + "%")
        name = os.path.basename(image)
        t.check(any(r[0] == "dashboard:adm-b" and r[1] == x and r[2] != "refused" and
                    r[3].startswith(name + " (sha256 ") and
                    m and ("): %s," % m.group(1).lower()) in r[3] for r in rows),
                "the detection audited with the image's SHA-256 and the admin: %r" % rows)
        f.stop()


if __name__ == "__main__":
    td.run(main, "usage: %s /path/to/sldd WORKDIR" % sys.argv[0], 2)
