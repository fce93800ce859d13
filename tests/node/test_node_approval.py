#!/usr/bin/python3
"""test_node_approval.py - an approval covers only what the admin was shown,
and no node.conf turns approval off.

`sldd bundle approve ID` is run against a fake node daemon: a small HTTP
server on NODE/admin.sock that answers the three admin API routes the
command uses (the text view, /statement, /decision) with whatever this test
chooses.  A daemon that shows bundle X and serves the statement of Y, one
whose view names another hash, another id than the one asked for, or bytes
that are no statement of this node, must get no signature at all; a
consistent one gets an approval over exactly the payload shown, and the
summary printed is read from those bytes.  Then `min-admin-approvals: 0` in
node.conf: every command that reads it, the receive path included, refuses
with the key named.

usage: test_node_approval.py /path/to/sldd
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fed  # noqa: E402


class FakeDaemon:
    """HTTP/1.1 on a unix socket: one request per connection, answered from
    self.view / self.statement; decisions are kept in self.decisions."""

    def __init__(self, path):
        self.view = b""
        self.statement = b""
        self.decisions = []
        self.paths = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(30)
                try:
                    self.handle(conn)
                except OSError:
                    pass

    def handle(self, conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return  # a probe (nd_api_available)
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        method, path = head.split(b" ")[:2]
        m = re.search(rb"Content-Length: (\d+)", head)
        need = int(m.group(1)) if m else 0
        while len(body) < need:
            body += conn.recv(65536)
        path = path.decode()
        self.paths.append((method.decode(), path))
        status, ctype, out = 404, "text/plain", b"no such route\n"
        if method == b"GET" and path.endswith("?format=text"):
            status, out = 200, self.view
        elif method == b"GET" and path.endswith("/statement"):
            status, ctype, out = 200, "application/octet-stream", self.statement
        elif method == b"POST" and path.endswith("/decision"):
            self.decisions.append(body)
            status, out = 200, b"bundle APPROVED (fake)\n"
        conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % (status, ctype.encode(), len(out)) + out)

    def close(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()


def view_of(bid, sha):
    """The first lines of the daemon's text view (nd_view_bundle)."""
    return ("bundle %s\n  direction       outbound: made here\n  state           pending\n"
            "  payload sha256  %s\n                  (an approval signs exactly this hash)\n"
            "  recipients      node-b\n" % (bid, sha)).encode()


def main(sldd, t):
    root = tempfile.mkdtemp(prefix="sldd-ap-", dir="/tmp")
    ok = False
    try:
        run(sldd, t, root)
        ok = t.failed == 0
    finally:
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print("kept " + root, flush=True)


def sl(sldd, *args, timeout=120):
    cmd = [sldd] + [str(a) for a in args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, 124, e.stdout or "", "still running after "
                                           "%d s" % timeout)


def must(sldd, *args):
    r = sl(sldd, *args)
    if r.returncode != 0:
        raise fed.Failed("sldd %s exited %d: %s%s" % (" ".join(map(str, args)), r.returncode,
                                                      r.stdout, r.stderr))
    return r


def statement(sldd, a, root, name):
    """A node-signed statement of a fresh test payload of node a: (bytes, id, sha)."""
    p, s = os.path.join(root, name + ".payload"), os.path.join(root, name + ".st")
    must(sldd, "bundle", "make-test", "--dir", a, "--small", "--to", "node-b", "--out", p)
    must(sldd, "bundle", "sign", "--dir", a, "--in", p, "--out", s)
    out = must(sldd, "bundle", "inspect", s).stdout
    bid = re.search(r"^bundle id\s+([0-9a-f]{32})$", out, re.M).group(1)
    sha = re.search(r"^payload sha256\s+([0-9a-f]{64})$", out, re.M).group(1)
    with open(s, "rb") as f:
        return f.read(), bid, sha


def run(sldd, t, root):
    pf = os.path.join(root, "pass")
    with open(pf, "w") as f:
        f.write(fed.PASS + "\n")
    os.chmod(pf, 0o600)
    a, b = os.path.join(root, "a"), os.path.join(root, "b")
    for d, i in ((a, "node-a"), (b, "node-b")):
        must(sldd, "init", "--dir", d, "--id", i)
        must(sldd, "admin", "add", "--dir", d, "--name", "adm", "--passphrase-file", pf, "--kdf",
             "interactive")
        must(sldd, "keys", "export", "--dir", d, "--out", d + ".peer")
    must(sldd, "peer", "add", "--dir", b, "--file", a + ".peer")
    must(sldd, "peer", "add", "--dir", a, "--file", b + ".peer")

    x, xid, xsha = statement(sldd, a, root, "x")
    y, yid, ysha = statement(sldd, a, root, "y")
    # bytes of another node: a payload of node-b, signed by node-b
    z, zid, zsha = statement(sldd, b, root, "z")
    fake = FakeDaemon(os.path.join(a, "admin.sock"))
    try:
        grid = os.path.join(root, "grid.png")

        def approve(idp, view, st, what):
            fake.view, fake.statement = view, st
            before = len(fake.decisions)
            r = sl(sldd, "bundle", "approve", idp, "--dir", a, "--admin", "adm",
                   "--passphrase-file", pf, "--yes", "--grid", grid)
            return r, len(fake.decisions) - before

        r, n = approve(xid[:8], view_of(xid, xsha), y, "X shown, Y served")
        t.check(r.returncode == 1 and n == 0 and "MISMATCH" in r.stderr and yid in r.stderr and
                "nothing was signed" in r.stderr,
                "shows X, serves Y: refused, nothing signed (%d, %d): %s" % (r.returncode, n,
                                                                          r.stderr))
        t.check(not os.path.exists(grid), "no image grid drawn for a mismatch")
        r, n = approve(xid, view_of(xid, ysha), x, "hash in the view differs")
        t.check(r.returncode == 1 and n == 0 and "MISMATCH" in r.stderr,
                "view names another payload hash: refused (%d, %d): %s" % (r.returncode, n,
                                                                        r.stderr))
        r, n = approve(yid[:10], view_of(xid, xsha), x, "another id than asked")
        t.check(r.returncode == 1 and n == 0 and "MISMATCH" in r.stderr,
                "asked for Y, shown and served X: refused (%d, %d): %s" % (r.returncode, n,
                                                                        r.stderr))
        r, n = approve(zid, view_of(zid, zsha), z, "another node's bundle")
        t.check(r.returncode == 1 and n == 0 and "from 'node-b'" in r.stderr,
                "another node's statement: refused (%d, %d): %s" % (r.returncode, n, r.stderr))
        r, n = approve(xid, view_of(xid, xsha), x[:-7], "truncated statement")
        t.check(r.returncode == 1 and n == 0 and "nothing was signed" in r.stderr,
                "truncated statement: refused (%d, %d): %s" % (r.returncode, n, r.stderr))
        r, n = approve(xid, b"bundle list is empty\n", x, "no identity in the view")
        t.check(r.returncode == 1 and n == 0, "a view without id and hash: refused (%d, %d): %s"
                % (r.returncode, n, r.stderr))

        # consistent: approved, over exactly X's payload; the summary is X's.
        # The view carries a terminal escape that would hide what follows it.
        r, n = approve(xid[:6], view_of(xid, xsha) + b"\x1b[8m\xc2\x9b8m\n", x, "consistent")
        t.check(r.returncode == 0 and n == 1, "consistent daemon: approved (%d, %d): %s%s" %
                (r.returncode, n, r.stdout, r.stderr))
        out = r.stdout
        t.check("what your signature covers" in out and xsha in out and xid in out and
                ysha not in out, "summary from the signed bytes names X: %s" % out)
        t.check("\x1b" not in out and "\x9b" not in out and "?[8m" in out,
                "the daemon's text is printed without its control characters: %r" % out[:600])
        t.check(re.search(r"^images\s+\d+ of .* sha256 [0-9a-f]{64}$", out, re.M) is not None and
                re.search(r"^soft labels\s+\d+ images lean to", out, re.M) is not None and
                re.search(r"^audience\s+node-b$", out, re.M) is not None,
                "summary shows images with their hash, soft labels, recipients: %s" % out)
        with open(grid, "rb") as fg:
            t.check(fg.read(8) == b"\x89PNG\r\n\x1a\n" and "image grid" in out,
                    "the image grid of the signed bytes is drawn before signing")
        t.check(("POST", "/v1/bundles/%s/decision" % xid) in fake.paths,
                "the decision goes to the full id checked: %s" % fake.paths[-3:])
        if n == 1:
            d = os.path.join(root, "decided.st")
            with open(d, "wb") as f:
                f.write(fake.decisions[-1])
            ins = must(sldd, "bundle", "inspect", d).stdout
            t.check(re.search(r"APPROVED by adm for node node-a .* payload hash matches", ins) and
                    xsha in ins, "the signed statement approves X's payload: %s" % ins)
    finally:
        fake.close()

    # ---- min-admin-approvals: 0 is refused by every reader of node.conf
    approved = os.path.join(root, "x.approved")
    must(sldd, "bundle", "approve", "--dir", a, "--admin", "adm", "--in",
         os.path.join(root, "x.st"), "--out", approved, "--yes", "--passphrase-file", pf)
    env = os.path.join(root, "x.env")
    must(sldd, "bundle", "seal", "--dir", a, "--in", approved, "--to", "node-b", "--out", env)
    for d in (a, b):
        with open(os.path.join(d, "node.conf"), "a") as f:
            f.write("min-admin-approvals: 0\n")
    cmds = [
        ("sign", ["bundle", "sign", "--dir", a, "--in", os.path.join(root, "y.payload"),
                  "--out", os.path.join(root, "y2.st")]),
        ("approve --in", ["bundle", "approve", "--dir", a, "--admin", "adm", "--in",
                          os.path.join(root, "y.st"), "--out", os.path.join(root, "y.ap"),
                          "--yes", "--passphrase-file", pf]),
        ("seal", ["bundle", "seal", "--dir", a, "--in", os.path.join(root, "y.st"), "--to",
                  "node-b", "--out", os.path.join(root, "y.env")]),
        ("open (the receive path)", ["bundle", "open", "--dir", b, "--in", env]),
        ("verify", ["bundle", "verify", "--dir", a, "--in", os.path.join(root, "y.st")]),
        ("approve ID", ["bundle", "approve", xid, "--dir", a, "--admin", "adm", "--yes",
                        "--passphrase-file", pf]),
        ("make-test", ["bundle", "make-test", "--dir", a, "--out", os.path.join(root, "m.p")]),
        ("serve (send and receive)", ["serve", "--dir", b]),
    ]
    for what, args in cmds:
        r = sl(sldd, *args, timeout=30)
        t.check(r.returncode != 0 and "min-admin-approvals must be at least 1" in r.stderr,
                "min-admin-approvals: 0 refused by %s (%d): %s%s" % (what, r.returncode,
                                                                    r.stdout[-300:], r.stderr))
    t.check(not os.path.exists(os.path.join(root, "y.env")), "nothing sealed")
    r = sl(sldd, "bundle", "verify", "--dir", b, "--in", approved, "--min-admins", "0")
    t.check(r.returncode == 2 and "--min-admins is 1..32" in r.stderr,
            "verify --min-admins 0 refused (%d): %s%s" % (r.returncode, r.stdout, r.stderr))


if __name__ == "__main__":
    fed.run(main)
