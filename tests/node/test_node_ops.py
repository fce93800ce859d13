#!/usr/bin/python3
"""test_node_ops.py - watching and stopping a node: `sldd status`, `sldd stop`,
GET /v1/health, GET /v1/metrics and `sldd peer ping`, on two nodes on
loopback.

  - the metrics parse with Prometheus' own parser (prometheus_client from
    Debian's python3-prometheus-client): every family has HELP and TYPE, the
    expected names and types are there, and a label value holding a quote, a
    backslash and a newline comes back exactly;
  - the counters move as a bundle goes from node-a to node-b: jobs, bundles
    and deliveries by state, bytes sent and received, iterations and their
    rate, patches classified, the last contact per peer; a refused TLS
    handshake counts under its reason;
  - `sldd peer ping` reports a matching pin and the peer's health answer, and
    a wrong pin as a mismatch naming the key presented;
  - `sldd stop` stops the daemon cleanly (exit status 0) and returns once it
    has exited; `sldd status` says running / not running (exit 0 / 3).

usage: test_node_ops.py /path/to/sldd
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fed  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("python3-prometheus-client missing: skipped")
    sys.exit(77)


def metrics(node):
    """{(name, frozenset(labels)): value} and {family: type}, parsed by prometheus_client."""
    status, ctype, text = fed.admin_get(node.dir, "/v1/metrics")
    if status != 200 or not ctype.startswith("text/plain; version=0.0.4"):
        raise fed.Failed("metrics: %d %s" % (status, ctype))
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types, text


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def check_format(t, node, samples, types, text):
    want = {"sldd_up": "gauge", "sldd_jobs": "gauge", "sldd_bundles": "gauge",
            "sldd_deliveries": "gauge", "sldd_delivery_last_error_info": "gauge",
            "sldd_bundle_bytes_sent": "counter", "sldd_bundle_bytes_received": "counter",
            "sldd_refusals": "counter", "sldd_peer_last_contact_timestamp_seconds": "gauge",
            "sldd_distill_iterations": "counter", "sldd_distill_iterations_per_second": "gauge",
            "sldd_patches_classified": "counter", "sldd_detection_patches_per_second": "gauge",
            "sldd_config_reloads": "counter", "sldd_build_info": "gauge"}
    bad = {k: (v, types.get(k)) for k, v in want.items() if types.get(k) != v}
    t.check(not bad, "%s: metric families and types: %s" % (node.id, bad))
    helps = [ln.split()[2] for ln in text.splitlines() if ln.startswith("# HELP ")]
    tps = [ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")]
    t.check(helps == tps and len(helps) == len(set(helps)),
            "%s: each family once, with HELP and TYPE" % node.id)
    t.check(val(samples, "sldd_up") == 1 and
            val(samples, "sldd_build_info", node=node.id, version=val_version(text)) == 1,
            "%s: sldd_up and build info" % node.id)


def val_version(text):
    for ln in text.splitlines():
        if ln.startswith("sldd_build_info{"):
            return ln.split('version="', 1)[1].split('"', 1)[0]
    return None


def main(sldd, t):
    f = fed.Federation(sldd, names=("a", "b"))
    with f.session(t):
        f.start()
        a, b = f.nodes["a"], f.nodes["b"]

        # ---- status and health of a running node
        r = a.sldd("status", "--dir", a.dir)
        t.check("node node-a: running (pid %d" % a.proc.pid in r.stdout and
                "127.0.0.1:%d" % a.port in r.stdout and "admin.sock" in r.stdout,
                "status names pid, peer listener and admin socket:\n" + r.stdout)
        st = a.api_json("status")
        t.check(st["running"] and st["pid"] == a.proc.pid and st["jobs"]["done"] == 0,
                "status --json: %s" % st)
        code, ctype, body = fed.admin_get(a.dir, "/v1/health")
        h = json.loads(body)
        t.check(code == 200 and h["status"] == "ok" and h["database"] == "ok" and
                h["node"] == "node-a", "health: %d %s" % (code, body))

        # ---- metrics before anything happened
        before = {n.name: metrics(n) for n in (a, b)}
        for n in (a, b):
            check_format(t, n, *before[n.name])
        s0 = before["a"][0]
        t.check(val(s0, "sldd_jobs", state="done") == 0 and
                val(s0, "sldd_bundle_bytes_sent_total") == 0 and
                val(s0, "sldd_distill_iterations_total") == 0,
                "node-a starts from zero")

        # ---- peer ping: the pin matches; a wrong pin is named as such
        r = a.sldd("peer", "ping", "node-b", "--dir", a.dir)
        t.check("matches the pinned key" in r.stdout and b.pin in r.stdout and
                '"peer":"node-a"' in r.stdout and "reachable" in r.stdout,
                "peer ping node-b:\n" + r.stdout)
        a.sldd("peer", "address", "--dir", a.dir, "--id", "node-b", "--url",
               "https://127.0.0.1:%d" % b.port, "--tls-pin", a.pin)
        r = a.sldd("peer", "ping", "node-b", "--dir", a.dir, check=False)
        t.check(r.returncode == 1 and "DOES NOT MATCH" in r.stdout and b.pin in r.stdout,
                "peer ping with a wrong pin: %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
        a.sldd("peer", "address", "--dir", a.dir, "--id", "node-b", "--url",
               "https://127.0.0.1:%d" % b.port, "--tls-pin", b.pin)
        r = a.sldd("peer", "ping", "node-zz", "--dir", a.dir, check=False)
        t.check(r.returncode == 1 and "no address for peer 'node-zz'" in r.stderr,
                "peer ping of an unknown peer: %s" % r.stderr)

        # ---- a bundle from a to b moves the counters
        x = a.distill(["node-b"])
        a.approve(x)
        fed.wait_for("node-b to import " + x[:12],
                     lambda: [e for e in b.bundles() if e["id"] == x and
                              e["state"] == "available"])
        fed.wait_for("delivery of " + x[:12], lambda: a.bundle(x)["state"] == "delivered")
        refused0 = val(metrics(b)[0], "sldd_refusals_total", reason="tls-handshake") or 0
        fed.tls_without_certificate(b.port)
        sa, _, _ = metrics(a)
        sb, _, _ = metrics(b)
        t.check(val(sa, "sldd_jobs", state="done") == 1 and
                val(sa, "sldd_bundles", direction="out", state="delivered") == 1 and
                val(sa, "sldd_deliveries", state="delivered") == 1,
                "node-a: a job done, a bundle and a delivery delivered")
        env = a.query("SELECT envelope_size FROM deliveries WHERE bundle_id=?", x)[0][0]
        t.check(val(sa, "sldd_bundle_bytes_sent_total") == env and
                val(sb, "sldd_bundle_bytes_received_total") == env,
                "bytes: sent %s, received %s, envelope %d" %
                (val(sa, "sldd_bundle_bytes_sent_total"),
                 val(sb, "sldd_bundle_bytes_received_total"), env))
        iters = int(fed.DISTILL.split("--iterations ")[1].split()[0])
        t.check(val(sa, "sldd_distill_iterations_total") == iters and
                val(sa, "sldd_distill_iterations_per_second") > 0,
                "node-a: %s iterations at %s/s" % (val(sa, "sldd_distill_iterations_total"),
                                                  val(sa, "sldd_distill_iterations_per_second")))
        t.check(val(sb, "sldd_bundles", direction="in", state="available") == 1 and
                val(sb, "sldd_patches_classified_total") > 0 and
                val(sb, "sldd_detection_patches_per_second") > 0,
                "node-b: bundle available, patches classified at import")
        t.check((val(sa, "sldd_peer_last_contact_timestamp_seconds", peer="node-b") or 0) >=
                st["started_unix"] and
                (val(sb, "sldd_peer_last_contact_timestamp_seconds", peer="node-a") or 0) >=
                st["started_unix"], "last contact recorded on both sides")
        t.check(val(sb, "sldd_refusals_total", reason="tls-handshake") == refused0 + 1,
                "node-b: the handshake without a certificate counted as a refusal (%s -> %s)" %
                (refused0, val(sb, "sldd_refusals_total", reason="tls-handshake")))

        # ---- label escaping: a delivery error with a quote, a backslash and a newline
        a.stop()
        tricky = 'peer said "no" \\ twice\nsecond line'
        con = __import__("sqlite3").connect(os.path.join(a.dir, "state.db"))
        con.execute("UPDATE deliveries SET last_error=? WHERE bundle_id=?", (tricky, x))
        con.commit()
        con.close()
        a.start()
        sa, _, text = metrics(a)
        t.check(val(sa, "sldd_delivery_last_error_info", peer="node-b", bundle=x,
                    state="delivered", error=tricky) == 1,
                "an escaped label value parses back exactly:\n%s" %
                [ln for ln in text.splitlines() if ln.startswith("sldd_delivery_last")])

        # ---- stop: clean, waits, idempotent; status follows
        pid = b.proc.pid
        r = b.sldd("stop", "--dir", b.dir)
        t.check("stopped" in r.stdout and "node node-b stopped" in b.tail() and
                not os.path.exists(os.path.join(b.dir, "serve.json")),
                "stop returned once the node had finished: %s" % r.stdout)
        t.check("stop requested over the admin API" in b.tail(), "its log says why")
        t.check(b.proc.wait(timeout=30) == 0, "the daemon exited with status 0")
        b.proc = None
        r = b.sldd("status", "--dir", b.dir, check=False)
        t.check(r.returncode == 3 and "not running" in r.stdout,
                "status of a stopped node: %d %s" % (r.returncode, r.stdout))
        r = b.sldd("stop", "--dir", b.dir)
        t.check("not running" in r.stdout, "stop of a stopped node is a no-op")
        t.check(not os.path.exists("/proc/%d" % pid) or
                open("/proc/%d/stat" % pid).read().split()[2] == "Z", "pid %d is gone" % pid)


if __name__ == "__main__":
    fed.run(main)
