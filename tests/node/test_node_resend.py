#!/usr/bin/python3
"""test_node_resend.py - a delivery the peer refused is sent again, the same
sealed bytes, once the cause is fixed (docs/admin.md, "A refused delivery").

  - node-b asks for two admin approvals (min-admin-approvals: 2); node-a's
    bundles W and then Z, approved by one admin, are refused by node-b
    (too-few-admin-approvals): deliveries refused, bundles failed;
  - `sldd bundle resend` refuses what it cannot do and changes nothing: an
    unknown peer, and a bundle that was never sent (still pending);
  - node-b takes one approval again; `sldd bundle resend Z` queues the
    envelope sealed at approval: node-b imports Z, and the envelope it
    received is byte for byte the one node-a sealed (same SHA-256, no new
    object, no new approval); the re-send is audited with the OS user;
  - W (sequence below Z's) can no longer be re-sent: node-b has accepted Z
    and would refuse W as a replay; refused, naming that, W stays failed;
  - a bundle with nothing refused cannot be re-sent.

usage: test_node_resend.py /path/to/sldd
"""
import os
import pwd
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fed  # noqa: E402


def set_conf(node, key, value):
    path = os.path.join(node.dir, "node.conf")
    with open(path) as fh:
        lines = [x for x in fh if not x.startswith(key + ":")]
    with open(path, "w") as fh:
        fh.writelines(lines + ["%s: %s\n" % (key, value)])


def delivery(node, bid, peer):
    return node.query("SELECT state, envelope_obj, attempts, last_error FROM deliveries "
                      "WHERE bundle_id=? AND peer=?", bid, peer)[0]


def main(sldd, t):
    f = fed.Federation(sldd, names=("a", "b"))
    a, b = f.nodes["a"], f.nodes["b"]
    with f.session(t):
        set_conf(b, "min-admin-approvals", "2")
        f.start()
        w = a.distill([b.id])
        z = a.distill([b.id])
        pending = a.distill([b.id])
        a.approve(w)
        fed.wait_for("node-b to refuse W", lambda: a.bundle(w)["state"] == "failed")
        a.approve(z)
        fed.wait_for("node-b to refuse Z", lambda: a.bundle(z)["state"] == "failed")
        st, env_z, _, err = delivery(a, z, b.id)
        t.check(st == "refused" and "too-few-admin-approvals" in err,
                "node-b refused Z for too few approvals: %s %s" % (st, err))
        objects_before = len(os.listdir(os.path.join(a.dir, "objects")))

        # ---- what resend refuses, changing nothing
        r = a.sldd("bundle", "resend", z, "--dir", a.dir, "--peer", "node-x", check=False)
        t.check(r.returncode == 1 and "no refused delivery to node-x" in r.stderr,
                "an unknown peer: %d %s" % (r.returncode, r.stderr))
        r = a.sldd("bundle", "resend", pending, "--dir", a.dir, check=False)
        t.check(r.returncode == 1 and "is pending" in r.stderr,
                "a pending bundle was never sent: %d %s" % (r.returncode, r.stderr))
        r = a.sldd("bundle", "resend", z, "--dir", a.dir, "--peer", "a b", check=False)
        t.check(r.returncode == 2, "a peer name with a space is a usage error (%d)" % r.returncode)
        t.check(a.bundle(z)["state"] == "failed" and delivery(a, z, b.id)[0] == "refused",
                "Z unchanged by the refusals")

        # ---- node-b takes one approval again: Z re-sent, the same bytes
        b.stop()
        set_conf(b, "min-admin-approvals", "1")
        b.start()
        r = a.sldd("bundle", "resend", z, "--dir", a.dir, "--peer", b.id)
        t.check("re-sending the envelope sealed at approval to node-b" in r.stdout,
                "resend answered: %s" % r.stdout.strip())

        def imported():
            return [x for x in b.bundles() if x.get("id") == z and x["state"] == "available"]
        fed.wait_for("node-b to import Z", imported)
        fed.wait_for("Z delivered", lambda: a.bundle(z)["state"] == "delivered")
        st, env_after, attempts, _ = delivery(a, z, b.id)
        t.check(st == "delivered" and env_after == env_z, "delivered, same envelope object")
        got = b.query("SELECT envelope_sha256 FROM bundles WHERE id=?", z)[0][0]
        t.check(got == env_z, "node-b received exactly the sealed bytes: %s vs %s" % (got, env_z))
        t.check(len(os.listdir(os.path.join(a.dir, "objects"))) == objects_before,
                "nothing sealed or signed anew")
        t.check(a.query("SELECT COUNT(*) FROM approvals WHERE bundle_id=?", z)[0][0] == 1,
                "no new approval")
        user = pwd.getpwuid(os.getuid()).pw_name
        rows = a.query("SELECT actor, peer, outcome, detail FROM audit WHERE action='resend' "
                       "AND bundle_id=?", z)
        t.check(any(r[1] == b.id and r[2] == "queued" and user in r[0] and env_z[:16] in r[3]
                    for r in rows), "the re-send is audited with the OS user %s: %r" % (user, rows))
        t.check(any("failed -> queued" in r[3] for r in rows), "and the bundle's move: %r" % rows)

        # ---- W: node-b accepted Z (a later sequence) and would refuse W
        n_audit = len(a.audit())
        r = a.sldd("bundle", "resend", w, "--dir", a.dir, check=False)
        t.check(r.returncode == 1 and "has since accepted a later bundle" in r.stderr and
                "replay" in r.stderr, "W refused, naming the replay: %s" % r.stderr.strip())
        t.check(a.bundle(w)["state"] == "failed" and delivery(a, w, b.id)[0] == "refused" and
                len(a.audit()) == n_audit, "W unchanged, nothing audited as done")
        r = a.sldd("bundle", "resend", z, "--dir", a.dir, check=False)
        t.check(r.returncode == 1 and re.search(r"is delivered", r.stderr),
                "a delivered bundle has nothing to re-send: %s" % r.stderr.strip())
        f.stop()


if __name__ == "__main__":
    fed.run(main)
