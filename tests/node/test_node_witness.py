#!/usr/bin/python3
"""test_node_witness.py - the audit log's tail, witnessed by a peer.

node-a signs its audit head as it grows (witness-every-entries: 1) and sends
it to node-b, which keeps it.  Then, with node-a stopped, its log is cut back
and re-chained and audit.head rewritten, once to the same length (rewritten
entries) and once shorter (truncated): plain `sldd audit verify` calls both
intact - the chain and the anchor agree - but `sldd audit verify --witnesses`
with node-b's export names each entry a witnessed head contradicts, with the
expected and found hash, the witness and when, and exits 1.  The untouched log
agrees with every witnessed head.  When the rewritten node-a starts again and
sends its new head, node-b refuses it (409, audited) and keeps the old one.
On the way, node-b's POST /v1/audit-head refuses what it must, seen with curl:
an oversized body (413), bytes that are not a head (400), and a head of
node-a sent with node-b's certificate (403: a node vouches only for itself).

usage: test_node_witness.py /path/to/sldd
"""
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fed  # noqa: E402

CURL = shutil.which("curl")


def curl(node, port, path, data):
    """POST the file data to 127.0.0.1:port with node's certificate."""
    tls = os.path.join(node.dir, "tls")
    cmd = [CURL, "--noproxy", "*", "-sS", "--tlsv1.3", "--max-time", "60", "--cacert",
           os.path.join(tls, "ca.pem"), "--cert", os.path.join(tls, "node.pem"), "--key",
           os.path.join(tls, "node.key"), "-o", "-", "-w", "\nHTTP %{http_code}\n",
           "-H", "Content-Type: application/vnd.sldd.audit-head", "--data-binary", "@" + data,
           "https://127.0.0.1:%d%s" % (port, path)]
    r = subprocess.run(cmd, capture_output=True, timeout=90)
    return r.stdout.decode("latin-1")


def field(b, s):
    s = s.encode()
    b += b"%d:" % len(s) + s + b"\n"


def entry_hash(seq, t, actor, action, bid, ph, peer, outcome, detail, prev):
    """The canonical form of docs/node.md, computed without sldd."""
    b = bytearray(b"sldd-audit-v1\n")
    for v in (str(seq), str(t), actor, action, bid, ph, peer, outcome, detail, prev):
        field(b, v)
    return hashlib.sha256(bytes(b)).hexdigest()


def rechain(d, keep, add):
    """Cut the log in d back to entry `keep`, append `add` new entries that
    chain correctly, and rewrite audit.head to match: what someone with write
    access to the node directory can do."""
    con = sqlite3.connect(os.path.join(d, "state.db"))
    con.execute("DELETE FROM audit WHERE seq>?", (keep,))
    prev, t = con.execute("SELECT hash, time_unix FROM audit WHERE seq=?", (keep,)).fetchone()
    for i in range(add):
        seq = keep + 1 + i
        row = (seq, t, "node", "approval", "", "", "", "ok", "nothing happened %d" % i, prev)
        h = entry_hash(*row)
        con.execute("INSERT INTO audit(seq,time_unix,actor,action,bundle_id,payload_sha256,"
                    "peer,outcome,detail,prev_hash,hash) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                    row + (h,))
        prev = h
    con.commit()
    con.close()
    with open(os.path.join(d, "audit.head"), "w") as f:
        f.write("seq: %d\nhash: %s\n" % (keep + add, prev))
    return prev


def copy_node(f, a, name):
    d = os.path.join(f.root, name)
    os.mkdir(d, 0o700)
    for x in ("node.conf", "state.db", "audit.head"):
        shutil.copy(os.path.join(a.dir, x), d)
    for x in ("keys", "admins", "peers"):
        shutil.copytree(os.path.join(a.dir, x), os.path.join(d, x))
    return d


def log_hashes(d):
    con = sqlite3.connect(os.path.join(d, "state.db"))
    try:
        return dict(con.execute("SELECT seq, hash FROM audit").fetchall())
    finally:
        con.close()


def main(sldd, t):
    if not CURL:
        print("curl missing: skipped")
        sys.exit(77)
    f = fed.Federation(sldd, names=("a", "b"), conf="witness-every-entries: 1\n")
    with f.session(t):
        a, b = f.nodes["a"], f.nodes["b"]
        f.start()
        wdir = os.path.join(f.root, "witnesses")
        os.mkdir(wdir)

        # ---- refusals at node-b's endpoint, each one an entry in node-a's
        # log too (node-b's answers are refusals of node-a's requests) -----
        big = os.path.join(f.root, "big.head")
        with open(big, "wb") as fb:
            fb.write(b"x" * 2048)
        o = curl(a, b.port, "/v1/audit-head", big)
        t.check("HTTP 413" in o, "an oversized head is refused before reading: %s" % o)
        junk = os.path.join(f.root, "junk.head")
        with open(junk, "wb") as fj:
            fj.write(b"sldd-audit-head: v1\nnode: node-a\n")
        o = curl(a, b.port, "/v1/audit-head", junk)
        t.check("HTTP 400" in o and "audit head" in o, "a malformed head is refused: %s" % o)
        def witnessed():
            last = a.query("SELECT MAX(seq) FROM audit")[0][0]
            kept = b.query("SELECT MAX(seq) FROM witness_heads WHERE node='node-a'")[0][0]
            return last if last and kept == last else None
        # entries on node-a (requests it refuses: no such endpoint), each
        # head witnessed before the next; the heads of what came before (the
        # operator's peer address changes) first
        fed.wait_for("node-b to witness node-a's head", witnessed)
        before = b.query("SELECT COUNT(*) FROM witness_heads WHERE node='node-a'")[0][0]
        for _ in range(4):
            curl(b, a.port, "/v1/nothing-here", junk)
            fed.wait_for("node-b to witness node-a's head", witnessed)
        heads = b.query("SELECT seq, hash, head FROM witness_heads WHERE node='node-a' "
                        "ORDER BY seq")
        t.check(len(heads) == before + 4, "node-b kept each head of node-a: %s" % heads)
        t.check(all(log_hashes(a.dir)[s] == h for s, h, _ in heads),
                "every kept head names the hash node-a's log has at that entry")

        # a head of node-a, relayed by node-b to node-a: refused, not kept
        relay = os.path.join(f.root, "relay.head")
        with open(relay, "w") as fr:
            fr.write(heads[-1][2])
        o = curl(b, a.port, "/v1/audit-head", relay)
        t.check("HTTP 403" in o and "only its own" in o, "a relayed head is refused: %s" % o)
        t.check(a.query("SELECT COUNT(*) FROM witness_heads WHERE node='node-a'")[0][0] == 0,
                "node-a keeps no head of its own")
        refs = [e["detail"] for e in b.audit() if e["action"] == "refusal"]
        t.check(any("/v1/audit-head" in d and "exceeds" in d for d in refs) and
                any("audit head: empty" in d for d in refs),
                "node-b audited the refusals: %s" % refs)

        a.stop()
        # the final head at the clean stop is the last entry
        last = a.query("SELECT MAX(seq) FROM audit")[0][0]
        fed.wait_for("node-b to keep the final head", lambda: b.query(
            "SELECT 1 FROM witness_heads WHERE node='node-a' AND seq=?", last))
        r = b.sldd("audit", "witnesses", "export", "--dir", b.dir, "--node", "node-a", "--out",
                   os.path.join(wdir, "node-b.wit"))
        t.check("audit head(s) of node-a witnessed by node-b exported" in r.stderr, r.stderr)
        wit = os.path.join(wdir, "node-b.wit")
        witnessed_hash = b.query("SELECT hash FROM witness_heads WHERE node='node-a' AND seq=?",
                                 last)[0][0]

        # ---- the untouched log agrees with every witnessed head
        r = a.sldd("audit", "verify", "--dir", a.dir, "--witnesses", wdir, check=False)
        t.check(r.returncode == 0 and "0 contradict the log" in r.stdout and
                "latest agreeing: entry %d witnessed by node-b" % last in r.stdout,
                "untouched log verifies against the witnesses: %s%s" % (r.stdout, r.stderr))

        # ---- truncated and re-chained, shorter: entry `last` is gone
        keep = last - 3
        d = copy_node(f, a, "copy-truncated")
        rechain(d, keep, 1)
        r = a.sldd("audit", "verify", "--dir", d, check=False)
        t.check(r.returncode == 0 and "audit log intact" in r.stdout,
                "without witnesses the truncated log verifies as intact: %s" % r.stdout)
        r = a.sldd("audit", "verify", "--dir", d, "--witnesses", wit, check=False)
        want = ("witness node-b contradicts the log at entry %d (truncated): expected hash %s "
                "(witnessed at " % (last, witnessed_hash))
        t.check(r.returncode == 1 and want in r.stdout and
                "but the log ends at entry %d" % (keep + 1) in r.stdout and
                "AUDIT LOG DAMAGED" in r.stdout,
                "verify --witnesses names the truncation: %s%s" % (r.stdout, r.stderr))

        # ---- re-chained to the same length, on node-a itself
        new_hash = rechain(a.dir, keep, 3)
        r = a.sldd("audit", "verify", "--dir", a.dir, check=False)
        t.check(r.returncode == 0 and "audit log intact" in r.stdout,
                "without witnesses the rewritten log verifies as intact: %s" % r.stdout)
        r = a.sldd("audit", "verify", "--dir", a.dir, "--witnesses", wdir, check=False)
        want = ("witness node-b contradicts the log at entry %d (rewritten): expected hash %s "
                "(witnessed at " % (last, witnessed_hash))
        t.check(r.returncode == 1 and want in r.stdout and
                "found hash %s" % new_hash in r.stdout,
                "verify --witnesses names the rewritten entry: %s%s" % (r.stdout, r.stderr))
        m = re.search(r"(\d+) contradict the log", r.stdout)
        n_after = len([s for s, _, _ in heads if s > keep]) + 1
        t.check(m and int(m.group(1)) >= 1 and int(m.group(1)) <= n_after,
                "only heads past the rewrite contradict: %s" % r.stdout)

        # ---- the rewritten node-a comes back: node-b refuses its new head
        a.start()
        fed.wait_for("node-b to refuse the rewritten head", lambda: [
            e for e in b.audit() if e["action"] == "refusal" and
            "entry %d of node-a was witnessed" % last in e["detail"] and
            "rewritten" in e["detail"]])
        t.check(b.query("SELECT hash FROM witness_heads WHERE node='node-a' AND seq=?",
                        last)[0][0] == witnessed_hash, "node-b kept the witnessed head")
        fed.wait_for("node-a to log the refusal", lambda: "refused to witness" in open(
            a.log).read())
        f.stop()


if __name__ == "__main__":
    fed.run(main)
