#!/usr/bin/python3
"""test_node_faults.py - kill -9 at the worst moments, then restart.

Each crash point is reached deterministically: the node is started with
SLDD_TEST_HOLD=<point>, stops there (writing NODE/hold.<point>), and the test
kills it with SIGKILL once the marker exists.  After a normal restart every
approved bundle must be delivered and imported exactly once.

  sender   deliver-before         sealed and queued, nothing sent yet
  sender   deliver-after-receipt  the receiver stored it and answered with a
                                  receipt the sender never recorded
  receiver receive-stored         objects written, nothing committed, no answer
  receiver import                 rebuilt and evaluated, not yet committed
  job      distill                a distillation past its first checkpoint
                                  (killed, and once stopped with SIGTERM)

usage: test_node_faults.py /path/to/sldd
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fed  # noqa: E402


def once(t, a, b, bid, what):
    """bid is delivered from a to b, imported at b, each exactly once."""
    fed.wait_for("%s: %s imported at %s" % (what, bid[:12], b.id),
                 lambda: [e for e in b.bundles() if e["id"] == bid and e["state"] == "available"])
    fed.wait_for("%s: delivery recorded at %s" % (what, a.id),
                 lambda: a.bundle(bid)["state"] == "delivered")
    rows = b.query("SELECT COUNT(*) FROM bundles WHERE id=?", bid)[0][0]
    evals = b.query("SELECT COUNT(*) FROM evaluations WHERE bundle_id=?", bid)[0][0]
    ba = b.audit()
    recv = len([e for e in ba if e["action"] == "receive" and e["bundle"] == bid])
    imp = len([e for e in ba if e["action"] == "import" and e["bundle"] == bid])
    aa = a.audit()
    sends = len([e for e in aa if e["action"] == "send" and e["bundle"] == bid])
    rcpt = len([e for e in aa if e["action"] == "receipt" and e["bundle"] == bid])
    t.check(rows == 1 and evals == 1 and recv == 1 and imp == 1 and sends == 1 and rcpt == 1,
            "%s: exactly once (rows %d, evaluations %d, receive %d, import %d, send %d, "
            "receipt %d)" % (what, rows, evals, recv, imp, sends, rcpt))
    for n in (a, b):
        r = n.sldd("audit", "verify", "--dir", n.dir, check=False)
        t.check(r.returncode == 0, "%s: %s audit intact: %s%s" % (what, n.id, r.stdout,
                                                                   r.stderr))


def main(sldd, t):
    f = fed.Federation(sldd, names=("a", "b"))
    with f.session(t):
        f.start()
        a, b = f.nodes["a"], f.nodes["b"]

        # ---- the sender dies after sealing, before sending
        u = a.distill(["node-b"])
        a.stop()
        a.start(hold="deliver-before")
        a.approve(u)
        a.wait_hold("deliver-before")
        a.kill9()
        t.check(not [e for e in b.bundles() if e["id"] == u], "nothing arrived before the crash")
        a.start()
        once(t, a, b, u, "sender killed before sending")

        # ---- the sender dies after the receiver answered
        v = a.distill(["node-b"])
        a.stop()
        a.start(hold="deliver-after-receipt")
        a.approve(v)
        a.wait_hold("deliver-after-receipt")
        a.kill9()
        t.check([e for e in b.bundles() if e["id"] == v], "the receiver had stored it")
        a.start()
        once(t, a, b, v, "sender killed after the receipt")
        with open(b.log) as lf:
            t.check("bundle %s from node-a delivered again" % v[:12] in lf.read(),
                    "it was sent again after the restart and answered with the same receipt")

        # ---- the receiver dies after writing the objects, before committing
        b.stop()
        b.start(hold="receive-stored")
        w = a.distill(["node-b"])
        a.approve(w)
        b.wait_hold("receive-stored")
        b.kill9()
        b.start()
        once(t, a, b, w, "receiver killed while storing")

        # ---- the receiver dies while importing
        b.stop()
        b.start(hold="import")
        x = a.distill(["node-b"])
        a.approve(x)
        b.wait_hold("import")
        b.kill9()
        t.check(b.query("SELECT state FROM bundles WHERE id=?", x) == [("stored",)],
                "stored, not yet imported, when killed")
        b.start()
        once(t, a, b, x, "receiver killed while importing")

        # ---- a distillation job killed past its first checkpoint resumes
        a.stop()
        a.start(hold="distill")
        r = a.sldd("job", "distill", "--dir", a.dir, "--to", "node-b")
        job = re.search(r"job (\d+) queued", r.stdout).group(1)
        a.wait_hold("distill")
        a.kill9()
        a.start()
        r = a.sldd("job", "wait", job, "--dir", a.dir, "--quiet", check=False)
        t.check(r.returncode == 0, "the job finished after the restart: %s%s" % (r.stdout,
                                                                              r.stderr))
        with open(a.log) as lf:
            log = lf.read()
        t.check("resumes from its last checkpoint" in log and "resuming from its checkpoint" in
                log, "the log says the job resumed from its checkpoint")
        # ---- SIGTERM during a job: checkpoint, then resume at the next start
        a.stop()
        a.start(hold="distill")
        r = a.sldd("job", "distill", "--dir", a.dir, "--to", "node-b")
        job2 = re.search(r"job (\d+) queued", r.stdout).group(1)
        a.wait_hold("distill")
        a.stop()
        st = a.query("SELECT state, note FROM jobs WHERE id=?", int(job2))
        t.check(st and st[0][0] == "queued" and "interrupted" in st[0][1],
                "a job stopped by SIGTERM is queued to resume: %s" % st)
        a.start()
        r = a.sldd("job", "wait", job2, "--dir", a.dir, "--quiet", check=False)
        t.check(r.returncode == 0, "second job finished: %s%s" % (r.stdout, r.stderr))
        jb = a.api_json("job", "show", job2)
        t.check(jb["state"] == "done" and "interrupted" not in jb["note"],
                "a resumed job that finished no longer says interrupted: %s" % jb)
        r = a.sldd("job", "show", job2, "--dir", a.dir)
        t.check("interrupted" not in r.stdout, "job show: %s" % r.stdout)
        y = jb["bundle"]
        a.approve(y)
        once(t, a, b, y, "bundle of a resumed job")
        f.stop()


if __name__ == "__main__":
    fed.run(main)
