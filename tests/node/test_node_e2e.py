#!/usr/bin/python3
"""test_node_e2e.py - three nodes on loopback, end to end.

  - an unapproved (or rejected) bundle never reaches a peer, and an admin of
    another node cannot approve it;
  - an approved bundle arrives exactly once at each recipient, is rebuilt
    and evaluated there, and its HM at a receiver that holds the sender's
    validation images equals the sender's own within 0.005;
  - the receiver stores the theta_opt it rebuilt at import: `sldd detect
    --bundle` loads it without replaying, and its decision, patch counts, r
    and heat map are those of a fresh replay of the payload, byte for byte;
  - a peer that is down gets its bundles when it comes back;
  - a bundle released after a later one cannot be approved (receivers
    accept increasing sequence numbers only).

node-c's local data set is node-a's, so that node-c evaluates node-a's
bundles on node-a's own validation images.

usage: test_node_e2e.py /path/to/sldd
"""
import glob
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fed  # noqa: E402


def arrived(node, bid):
    return [b for b in node.bundles() if b["id"] == bid]


def check_detection(t, f, c, z):
    """Detection with imported bundle z at c: theta_opt loaded, not replayed,
    and the same result as replaying the payload."""
    t.check(c.query("SELECT COUNT(*) FROM theta_opt WHERE bundle_id=?", z)[0][0] == 1,
            "theta_opt of %s recorded at import" % z[:12])
    img = sorted(glob.glob(os.path.join(f.root, "data-a", "images", "*.png")))[0]
    ph = c.query("SELECT payload_sha256 FROM bundles WHERE id=?", z)[0][0]
    heat = [os.path.join(f.root, "heat-%s.png" % k) for k in ("bundle", "model")]
    got = json.loads(c.sldd("detect", img, "--bundle", z[:12], "--dir", c.dir, "--json",
                            "--heatmap", heat[0]).stdout)
    ref = json.loads(c.sldd("detect", img, "--model", os.path.join(c.dir, "objects", ph),
                            "--json", "--heatmap", heat[1]).stdout)
    t.check(got["replayed"] is False and ref["replayed"] is True,
            "detect --bundle loads the stored theta_opt (replayed: %s; --model: %s)" %
            (got["replayed"], ref["replayed"]))
    keys = ("grid", "I", "N", "P", "r", "decision", "patch", "stride", "input")
    t.check(all(got[k] == ref[k] for k in keys),
            "stored theta_opt detects as a fresh replay: %s vs %s" %
            ({k: got[k] for k in keys}, {k: ref[k] for k in keys}))
    with open(heat[0], "rb") as h0, open(heat[1], "rb") as h1:
        t.check(h0.read() == h1.read(), "heat maps identical byte for byte")


def main(sldd, t):
    f = fed.Federation(sldd, data_of={"c": "a"})
    with f.session(t):
        f.start()
        a, b, c = f.nodes["a"], f.nodes["b"], f.nodes["c"]

        # ---- the approval gate
        x = a.distill(["node-b", "node-c"])
        bx = a.bundle(x)
        t.check(bx["state"] == "pending", "new bundle pending approval: %s" % bx["state"])
        t.check(bx["deliveries"] == [], "nothing sealed before approval")
        t.check(os.path.exists(bx["grid_path"]), "image grid written")
        t.check(len(bx["soft_labels"]) == 3 and len(bx["step_sizes"]) == 1,
                "show has soft labels and step sizes")
        r = a.sldd("bundle", "show", x[:12], "--dir", a.dir)
        t.check(re.search(r"image  0 \(step 0\):  I \d\.\d{3}  N \d\.\d{3}  P \d\.\d{3}$",
                          r.stdout, re.M) is not None,
                "soft labels named by the task's classes: %s" % r.stdout[-600:])
        t.check(bx["privacy"]["verdict"] in ("pass", "warn", "block"),
                "privacy audit in the payload: %s" % bx["privacy"])
        # the nearest-neighbour figure reads the same in every view: bundle show
        # (text and JSON) and bundle inspect of the payload file
        shown = [float(v) for v in re.findall(r"held-out closer ([0-9.]+)%",
                                                a.sldd("bundle", "show", x, "--dir",
                                                       a.dir).stdout)]
        inspected = [float(v) for v in re.findall(r"held-out closer ([0-9.]+)%",
                                                  a.sldd("bundle", "inspect",
                                                         bx["payload_path"]).stdout)]
        js = [round(im["heldout_closer_percent"], 1) for im in bx["privacy"]["images"]]
        t.check(len(shown) == len(js) > 0 and shown == inspected == js,
                "held-out closer agrees in show, inspect and JSON: %s %s %s"
                % (shown, inspected, js))
        # an admin of another node cannot approve it
        r = a.approve(x, check=False, admin="adm-b")
        t.check(r.returncode != 0, "foreign admin refused")
        # a rejected bundle is never sent either
        y = a.distill(["node-b", "node-c"])
        r = a.approve(y, reject=True)
        t.check("REJECTED" in r.stdout, "rejection recorded")
        t.check(a.bundle(y)["state"] == "rejected", "rejected state")
        r = a.approve(y, check=False)
        t.check(r.returncode != 0 and "rejected" in r.stderr, "a rejected bundle stays rejected")

        # ---- an approved bundle: exactly once, rebuilt, same HM
        z = a.distill(["node-b", "node-c"])
        r = a.approve(z)
        t.check("APPROVED" in r.stdout, "approval accepted")
        for n in (b, c):
            fed.wait_for("%s to import %s" % (n.id, z[:12]),
                         lambda n=n: [e for e in arrived(n, z) if e["state"] == "available"])
        fed.wait_for("deliveries of %s" % z[:12],
                     lambda: a.bundle(z)["state"] == "delivered")
        bz = a.bundle(z)
        t.check(all(d["state"] == "delivered" and d["receipt"] for d in bz["deliveries"]),
                "both deliveries have receipts")
        for n in (b, c):
            rows = n.query("SELECT COUNT(*) FROM bundles WHERE id=?", z)[0][0]
            recv = [e for e in n.audit() if e["action"] == "receive" and e["bundle"] == z]
            imp = [e for e in n.audit() if e["action"] == "import" and e["bundle"] == z]
            t.check(rows == 1 and len(recv) == 1 and len(imp) == 1,
                    "%s holds %s once (%d rows, %d receive, %d import entries)" %
                    (n.id, z[:12], rows, len(recv), len(imp)))
        sender_hm = bz["sender_metrics"]["hm"]
        sender_acc = bz["sender_metrics"]["accuracy"]
        ev = c.bundle(z)["evaluation"]
        t.check(ev["split"] == "val" and abs(ev["hm"] - sender_hm) <= 0.005,
                "HM at the receiver on the sender's validation images %s vs sender %s" %
                (ev["hm"], sender_hm))
        t.check(abs(ev["accuracy"] - sender_acc) <= 1e-9,
                "patch accuracy identical: %s vs %s" % (ev["accuracy"], sender_acc))
        t.check(b.bundle(z)["evaluation"]["images"] > 0, "node-b evaluated on its own data")
        check_detection(t, f, c, z)

        # the unapproved and the rejected bundle never reached anyone
        for n in (b, c):
            t.check(not arrived(n, x) and not arrived(n, y),
                    "%s never got the unapproved or rejected bundle" % n.id)
        t.check(a.query("SELECT COUNT(*) FROM deliveries WHERE bundle_id IN (?,?)", x, y)[0][0]
                == 0, "no envelope was ever made for them")
        # x (sequence 1) would be refused as a replay after z (sequence 3)
        r = a.approve(x, check=False)
        t.check(r.returncode != 0 and "later bundle" in r.stderr,
                "approving an older bundle after a newer one was sent is refused")
        t.check(a.bundle(x)["state"] == "pending", "still pending")

        # ---- a peer down for a while
        c.stop()
        w = a.distill(["node-b", "node-c"])
        a.approve(w)
        fed.wait_for("node-b to import " + w[:12],
                     lambda: [e for e in arrived(b, w) if e["state"] == "available"])

        def retried():
            d = [d for d in a.bundle(w)["deliveries"] if d["peer"] == "node-c"]
            return d and d[0]["attempts"] >= 2 and d[0]["state"] == "queued"
        fed.wait_for("node-a to retry node-c", retried)
        c.start()
        fed.wait_for("node-c to import %s after coming back" % w[:12],
                     lambda: [e for e in arrived(c, w) if e["state"] == "available"])
        fed.wait_for("delivered", lambda: a.bundle(w)["state"] == "delivered")
        t.check(c.query("SELECT COUNT(*) FROM bundles WHERE id=?", w)[0][0] == 1,
                "node-c holds it once")

        # ---- a recipient whose keys were removed after the job: not sealed for it
        v = a.distill(["node-b", "node-c"])
        pc = os.path.join(a.dir, "peers", "node-c.peer")
        os.rename(pc, pc + ".away")
        a.approve(v)
        fed.wait_for("the bundle to settle", lambda: a.bundle(v)["state"] == "failed")
        os.rename(pc + ".away", pc)
        dv = {d["peer"]: d for d in a.bundle(v)["deliveries"]}
        t.check(dv["node-b"]["state"] == "delivered" and dv["node-c"]["state"] == "refused" and
                "not a known peer" in dv["node-c"]["last_error"],
                "delivered to node-b, refused for node-c: %s" % dv)
        t.check([e for e in a.audit() if e["action"] == "send" and e["bundle"] == v and
                 e["outcome"] == "refused"], "the refusal to seal is audited")

        # ---- cancelling a running and a queued job
        r = b.sldd("job", "distill", "--dir", b.dir, "--to", "node-a", "--iterations", "1000000")
        long_job = r.stdout.split()[1]
        r = b.sldd("job", "distill", "--dir", b.dir, "--to", "node-a")
        queued_job = r.stdout.split()[1]

        def running():
            j = b.api_json("job", "show", long_job)
            return j["state"] == "running" and j["iter"] > 0 and j
        j = fed.wait_for("the long job to run", running)
        t.check(j["total"] == 1000000 and j["percent"] < 100 and j["loss"] is not None,
                "progress is visible: %s" % j)
        # job wait on a queued job says so, not "iteration 0/0 loss nan"
        t.check(b.api_json("job", "show", queued_job).get("ahead") == 1,
                "a queued job counts the jobs ahead of it")
        try:
            subprocess.run([b.fed.sldd, "job", "wait", queued_job, "--dir", b.dir],
                           capture_output=True, text=True, timeout=1.5)
            out = "(job wait returned)"
        except subprocess.TimeoutExpired as ex:
            out = ex.stdout.decode() if isinstance(ex.stdout, bytes) else (ex.stdout or "")
        t.check(("job %s queued (1 job ahead)" % queued_job) in out and "nan" not in out,
                "job wait on a queued job: %r" % out)
        b.sldd("job", "cancel", queued_job, "--dir", b.dir)
        t.check(b.api_json("job", "show", queued_job)["state"] == "canceled",
                "a queued job is canceled at once")
        b.sldd("job", "cancel", long_job, "--dir", b.dir)
        fed.wait_for("the running job to stop",
                     lambda: b.api_json("job", "show", long_job)["state"] == "canceled")
        t.check(b.sldd("job", "wait", long_job, "--dir", b.dir, "--quiet",
                       check=False).returncode == 1, "job wait reports the cancel")
        r = b.sldd("job", "distill", "--dir", b.dir, "--to", "node-a", "--width", "x",
                   check=False)
        t.check(r.returncode == 1 and "--width" in r.stderr, "bad job options refused: %s" %
                r.stderr)
        # an unknown architecture is refused when submitted, with the known ones
        r = b.sldd("job", "distill", "--dir", b.dir, "--to", "node-a", "--arch", "resnet99",
                   check=False)
        t.check(r.returncode == 1 and "unknown architecture 'resnet99'" in r.stderr and
                "resnet18" in r.stderr and "queued" not in r.stdout,
                "--arch resnet99 refused at submission: %s%s" % (r.stdout, r.stderr))
        r = b.sldd("job", "distill", "--dir", b.dir, "--to", "node-a", "--dp-epsilon", "5",
                   "--dp-noise", "1", check=False)
        t.check(r.returncode == 1 and "not both" in r.stderr,
                "--dp-epsilon with --dp-noise refused at submission: %s%s" % (r.stdout,
                                                                               r.stderr))

        # ---- the audit logs are intact, with the expected entries
        for n in (a, b, c):
            r = n.sldd("audit", "verify", "--dir", n.dir, check=False)
            t.check(r.returncode == 0 and "intact" in r.stdout, "%s audit intact: %s%s" %
                    (n.id, r.stdout, r.stderr))
        acts = [e["action"] for e in a.audit()]
        for want in ("created", "approval", "rejection", "send", "receipt"):
            t.check(want in acts, "node-a audit has a %s entry" % want)
        acts = [e["action"] for e in c.audit()]
        for want in ("receive", "import"):
            t.check(want in acts, "node-c audit has a %s entry" % want)
        f.stop()
        # the start-up check passes on what was left
        r = a.sldd("serve", "--dir", a.dir, "--check", check=False)
        t.check(r.returncode == 0, "serve --check: %s%s" % (r.stdout, r.stderr))


if __name__ == "__main__":
    fed.run(main)
