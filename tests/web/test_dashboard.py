#!/usr/bin/python3
"""test_dashboard.py - the dashboard (docs/dashboard.md) against real nodes.

Two nodes on loopback (tests/node/fed.py); node-a serves the dashboard.
Three bundles: one to approve, one to reject, one the privacy policy blocks.

Over plain HTTP, as an attacker or a careless client would: the security
headers and a page without inline script; 401 without a session; a sign-in
by challenge and signature (made here with PyNaCl from the same key file);
403 for a POST without the CSRF token, with a wrong one, or from another
origin; an approval over a tampered hash refused by the node; the blocked
bundle's approval refused by the node, not only hidden by the page; a
session that sat idle refused.

In headless Chromium (tests/web/dashboard.mjs, puppeteer-core): a wrong
passphrase, the sign-in, the bundle page with decoded non-blank images, the
approval, the rejection with a reason that is markup and shows as text on
the audit page, the blocked bundle; no request to another host and none
carrying the passphrase or the secret key.  Then the node's own record: the
approved statement holds the admin's valid signature over exactly the
payload hash the page showed, and node-b imported the bundle.

usage: test_dashboard.py /path/to/sldd WORKDIR   (WORKDIR: npm modules cache)
Exits 77 when chromium, node or the npm packages are not available.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "node"))
import fed  # noqa: E402

SKIP = 77
LOGIN_TYPE = "application/vnd.sldd.dashboard-login; v=1"
APPROVAL_TYPE = "application/vnd.sldd.approval+protobuf; v=1"
REASON = '"><img src=x onerror="window.__xss=1"><script>window.__xss=1</script> not for node-b'


# Protobuf and PAE by hand: the helpers of tests/crypto/test_pynacl.py (it
# exits 77 at import when python3-nacl is missing, as this test would).
sys.path.insert(0, os.path.join(HERE, "..", "crypto"))
import test_pynacl as pb  # noqa: E402
import nacl.pwhash  # noqa: E402
import nacl.secret  # noqa: E402
import nacl.signing  # noqa: E402


def fields(buf):
    """(number, value) pairs of one message, in order."""
    return [(no, v) for no, vs in pb.parse(buf).items() for v in vs]


def pae(typ, body):
    return pb.pae(typ.encode(), body)


f_varint, f_bytes = pb.f_varint, pb.f_bytes


# ---------------------------------------------------------------- keys

def load_admin(path, passphrase):
    kv = pb.kv_file(path)
    key = nacl.pwhash.argon2id.kdf(32, passphrase.encode(), base64.b64decode(kv["salt"]),
                                   opslimit=int(kv["kdf-opslimit"]),
                                   memlimit=int(kv["kdf-memlimit"]))
    sk = nacl.secret.SecretBox(key).decrypt(base64.b64decode(kv["box"]),
                                            base64.b64decode(kv["nonce"]))
    return {"name": kv["name"], "node": kv["node"], "sk": sk,
            "pk": base64.b64decode(kv["public"])}


def sign(admin, msg):
    return nacl.signing.SigningKey(admin["sk"][:32]).sign(msg).signature


def approve_statement(st, admin, sha, decision=1):
    ap = (f_bytes(1, sha) + f_bytes(2, admin["name"].encode()) +
          f_bytes(3, admin["node"].encode()) + f_varint(4, decision) +
          f_varint(5, int(time.time())))
    sig = sign(admin, pae(APPROVAL_TYPE, ap))
    s = (f_varint(1, 2) + f_bytes(2, admin["name"].encode()) +
         f_bytes(3, pb.key_id(admin["pk"])) + f_bytes(4, sig) + f_bytes(5, ap))
    return st + f_bytes(3, s)


# ---------------------------------------------------------------- HTTP

class Dash:
    def __init__(self, port):
        self.port = port
        self.cookie = None
        self.csrf = None

    def req(self, method, path, body=b"", headers=None, cookie=True):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = dict(headers or {})
        if cookie and self.cookie:
            h["Cookie"] = "sldd_dash=" + self.cookie
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, data

    def login(self, admin):
        st, _, body = self.req("GET", "/api/challenge")
        ch = json.loads(body)
        msg = ("node: %s\nadmin: %s\nchallenge: %s\n" % (ch["node"], admin["name"],
                                                          ch["challenge"])).encode()
        sig = sign(admin, pae(LOGIN_TYPE, msg)).hex()
        body = "admin: %s\nchallenge: %s\nsignature: %s\n" % (admin["name"], ch["challenge"], sig)
        st, h, data = self.req("POST", "/api/login", body.encode(), cookie=False)
        if st != 200:
            raise fed.Failed("sign-in refused: %d %s" % (st, data))
        self.cookie = h["set-cookie"].split(";")[0].split("=", 1)[1]
        self.csrf = json.loads(data)["csrf"]
        return h["set-cookie"]

    def post(self, path, body=b"", csrf=True, origin=None):
        h = {"Content-Type": "application/octet-stream"}
        if csrf:
            h["X-CSRF-Token"] = self.csrf
        if origin:
            h["Origin"] = origin
        return self.req("POST", path, body, h)


# ---------------------------------------------------------------- set-up

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def npm_modules(workdir):
    """puppeteer-core from the committed lock file, cached in workdir."""
    mod = os.path.join(workdir, "node_modules", "puppeteer-core")
    lock = os.path.join(HERE, "package-lock.json")
    stamp = os.path.join(workdir, "package-lock.json")
    if os.path.isdir(mod) and os.path.exists(stamp) and \
            open(stamp, "rb").read() == open(lock, "rb").read():
        return True
    os.makedirs(workdir, exist_ok=True)
    for f in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(HERE, f), workdir)
    r = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                       cwd=workdir, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print("npm ci failed (no network?):\n" + r.stdout + r.stderr)
        return False
    return True


def make_bundles(fa):
    a = fa.nodes["a"]
    approve = a.distill(["node-b"])
    reject = a.distill(["node-b"])
    # a stricter policy: any membership AUC above 0 blocks
    a.stop()
    with open(os.path.join(a.dir, "node.conf"), "a") as f:
        f.write("privacy-thresholds: warn_auc=0,block_auc=0\n")
    a.start()
    blocked = a.distill(["node-b"])
    return approve, reject, blocked


# ---------------------------------------------------------------- checks

def tls_checks(t, fa, port):
    """A dashboard on a non-loopback address speaks TLS only, with the
    node's certificate (issued by the federation's CA)."""
    import ssl
    ctx = ssl.create_default_context(cafile=os.path.join(fa.ca, "ca.pem"))
    ctx.check_hostname = False
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    c.request("GET", "/")
    r = c.getresponse()
    r.read()
    t.check(r.status == 200 and "max-age" in (r.getheader("Strict-Transport-Security") or ""),
            "non-loopback dashboard: HTTPS with the node's certificate and HSTS (%d)" % r.status)
    c.close()
    try:
        st, _, _ = Dash(port).req("GET", "/")
    except (OSError, http.client.HTTPException):
        st = None
    t.check(st != 200, "non-loopback dashboard: no plain HTTP (%r)" % st)


def refused_logins(t, d, admin):
    """A signature by another key, a replayed challenge: 403, audited, and
    a flood of them does not grow the audit log without bound."""
    import nacl.signing as ns
    other = dict(admin, sk=bytes(ns.SigningKey.generate()))
    st, _, body = d.req("GET", "/api/challenge")
    ch = json.loads(body)["challenge"]
    msg = ("node: node-a\nadmin: adm-a\nchallenge: %s\n" % ch).encode()
    forged = "admin: adm-a\nchallenge: %s\nsignature: %s\n" % (
        ch, sign(other, pae(LOGIN_TYPE, msg)).hex())
    st, h, msg = d.req("POST", "/api/login", forged.encode(), cookie=False)
    t.check(st == 403 and "set-cookie" not in h, "sign-in by another key: 403 (%d %s)" %
            (st, msg.strip()))
    good = "admin: adm-a\nchallenge: %s\nsignature: %s\n" % (
        ch, sign(admin, pae(LOGIN_TYPE, ("node: node-a\nadmin: adm-a\nchallenge: %s\n" %
                                         ch).encode())).hex())
    st, _, _ = d.req("POST", "/api/login", good.encode(), cookie=False)
    t.check(st == 403, "a challenge used once cannot sign in again (%d)" % st)
    st, _, _ = d.req("POST", "/api/login", b"admin: adm-a\x1b[2J\nchallenge: %s\nsignature: %s\n" %
                     (ch.encode(), b"00" * 64), cookie=False)
    t.check(st == 400, "an admin name with a terminal escape is refused (%d)" % st)
    for _ in range(25):
        d.req("POST", "/api/login", forged.encode(), cookie=False)
    return st


def count_refused(node):
    return sum(1 for e in node.audit() if e["action"] == "dashboard-login" and
               e["outcome"] == "refused")


def http_checks(t, d, admin, ids):
    st, h, page = d.req("GET", "/")
    t.check(st == 200, "the page is served")
    csp = h.get("content-security-policy", "")
    t.check("default-src 'self'" in csp and "script-src 'self' 'wasm-unsafe-eval'" in csp and
            "unsafe-inline" not in csp, "strict CSP header: %s" % csp)
    t.check(h.get("x-frame-options") == "DENY" and h.get("x-content-type-options") == "nosniff",
            "framing and sniffing off")
    low = page.lower()
    inline = [s for s in low.split(b"<script")[1:] if b"src=" not in s.split(b">")[0]]
    t.check(not inline and b" onload=" not in low and b" onclick=" not in low and
            b"style=" not in low, "no inline script, handler or style in the page")
    t.check(b"http://" not in low and b"https://" not in low, "the page names no other host")
    st, _, _ = d.req("GET", "/", headers={"Host": "rebound.example:%d" % d.port})
    t.check(st == 421, "a Host that is a name (DNS rebinding) is not served: %d" % st)
    st, _, _ = d.req("GET", "/api/v1/bundles")
    t.check(st == 401, "no session: 401 (got %d)" % st)
    st, _, _ = d.req("POST", "/api/v1/bundles/%s/decision" % ids[0], b"x")
    t.check(st == 401, "no session, POST: 401 (got %d)" % st)
    refused_logins(t, d, admin)
    cookie = d.login(admin)
    t.check("HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie,
            "session cookie HttpOnly, SameSite=Strict: %s" % cookie.split(";", 1)[1])
    st, _, body = d.req("GET", "/api/v1/bundles/%s/statement" % ids[0])
    t.check(st == 200 and len(body) > 100, "the statement is served to a session")
    stmt = body
    payload = dict(fields(stmt))[2]
    sha = hashlib.sha256(payload).digest()
    good = approve_statement(stmt, admin, sha)
    path = "/api/v1/bundles/%s/decision" % ids[0]
    st, _, msg = d.post(path, good, csrf=False)
    t.check(st == 403, "POST without the CSRF token: 403 (got %d %s)" % (st, msg))
    d.csrf, real = "0" * 64, d.csrf
    st, _, _ = d.post(path, good)
    d.csrf = real
    t.check(st == 403, "POST with a wrong CSRF token: 403 (got %d)" % st)
    st, _, _ = d.post(path, good, origin="http://evil.example")
    t.check(st == 403, "POST from another origin: 403 (got %d)" % st)
    bad = bytearray(sha)
    bad[0] ^= 1
    st, _, msg = d.post(path, approve_statement(stmt, admin, bytes(bad)))
    t.check(400 <= st < 500, "approval over a tampered hash refused: %d %s" % (st, msg.strip()))
    st, _, body = d.req("GET", "/api/v1/bundles/%s/statement" % ids[2])
    bsha = hashlib.sha256(dict(fields(body))[2]).digest()
    st, _, msg = d.post("/api/v1/bundles/%s/decision" % ids[2], approve_statement(body, admin, bsha))
    t.check(400 <= st < 500 and b"privacy" in msg.lower(),
            "the blocked bundle's valid approval refused by the node: %d %s" % (st, msg.strip()))
    st, _, _ = d.req("POST", "/api/v1/peers", b"id: x\n",
                     {"X-CSRF-Token": d.csrf})
    t.check(st in (404, 405), "operator routes are not on the dashboard (got %d)" % st)


def browser(t, sldd_root, fa, port, port_b, admin, ids, shots, over=None):
    node_a, node_b = fa.nodes["a"], fa.nodes["b"]
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    secret_forms = {"passphrase": fed.PASS, "secret key (base64)":
                    base64.b64encode(admin["sk"]).decode(), "secret key (hex)": admin["sk"].hex(),
                    "seed (base64)": base64.b64encode(admin["sk"][:32]).decode()}
    spec = {"url": "http://127.0.0.1:%d/" % port, "chromium": chromium,
            "inbound_url": "https://127.0.0.1:%d/" % port_b,
            "origins": ["http://127.0.0.1:%d/" % port, "https://127.0.0.1:%d/" % port_b],
            "inbound_keyfile": os.path.join(node_b.dir, "admins", "adm-b.key"),
            "screenshot_inbound": shots.get("inbound"), "screenshot_audit": shots.get("audit"),
            "keyfile": os.path.join(node_a.dir, "admins", "adm-a.key"),
            "passphrase": fed.PASS, "secrets": secret_forms, "approve": ids[0],
            "reject": ids[1], "blocked": ids[2], "reason": REASON,
            "screenshot": shots.get("bundle"), "screenshot_node": shots.get("node"),
            "screenshot_curves": shots.get("curves"),
            "over": over}
    return run_browser(t, sldd_root, spec)


def run_browser(t, workdir, spec):
    """dashboard.mjs with spec (DASH_TEST); its findings (RESULT line)."""
    env = dict(os.environ, DASH_TEST=json.dumps(spec), NODE_PATH=os.path.join(workdir,
                                                                               "node_modules"))
    # next to node_modules, under a name of its own (another test may copy it too)
    script = os.path.join(workdir, "dashboard-%d.mjs" % os.getpid())
    shutil.copy(os.path.join(HERE, "dashboard.mjs"), script)
    try:
        r = subprocess.run(["node", script], capture_output=True, text=True, env=env,
                           timeout=240)
    finally:
        os.unlink(script)
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    res = json.loads(line[-1][7:]) if line else {}
    t.check(r.returncode == 0, "the browser run finished (%d): %s" % (r.returncode,
                                                                     r.stderr[-2000:]))
    return res


def browser_checks(t, res, want_sha):
    s = res.get("steps", {})
    t.check("wrong passphrase" in s.get("wrong_pass", ""),
            "wrong passphrase reported: %r" % s.get("wrong_pass"))
    t.check(s.get("wrong_pass_login_posts") == 0, "a wrong passphrase sends no sign-in")
    t.check("Signed in" in s.get("signin", ""), "signed in: %r" % s.get("signin"))
    t.check(s.get("sha") == want_sha, "page shows the payload SHA-256 it computed: %r" %
            s.get("sha"))
    t.check(s.get("match") == "yes", "page's hash matches the node's record")
    cv = s.get("canvases", [])
    t.check(len(cv) == 3 and all(c["w"] > 0 and c["hi"] > c["lo"] for c in cv),
            "three decoded, non-blank images: %r" % cv)
    t.check(s.get("bars") == 9, "soft-label bars for 3 images x 3 classes (%r)" % s.get("bars"))
    t.check("iterations 12" in s.get("hyper", ""), "hyper-parameters from the payload: %r" %
            s.get("hyper"))
    t.check(s.get("privacy_rows") == 4, "privacy table: header and 3 images (%r rows)" %
            s.get("privacy_rows"))
    t.check("APPROVED" in s.get("approve", ""), "approved: %r" % s.get("approve"))
    t.check("REJECTED" in s.get("reject", ""), "rejected: %r" % s.get("reject"))
    t.check("intact" in s.get("chain", ""), "audit page: chain status %r" % s.get("chain"))
    t.check(s.get("audit_has_reason") is True, "the reason appears on the audit page as text")
    t.check(s.get("audit_imgs") == 0 and s.get("xss") is False, "markup in a reason stays text")
    t.check("BLOCKED" in s.get("blocked_text", "") and s.get("blocked_disabled") is True,
            "blocked bundle shown as blocked, approve disabled")

    t.check(s.get("node_jobs", 0) >= 5, "node page lists the jobs")
    ns = s.get("node_status") or []
    # pending: the blocked bundle; outbound: the three; the long job active
    t.check(len(ns) == 8 and ns[0] == "1" and ns[1] == "3" and ns[5] == "1" and
            all(x.isdigit() for x in ns[:7]), "the node's counts are numbers: %r" % ns)
    t.check(s.get("refreshes", 0) >= 1, "the node page refreshes a running job's progress")
    t.check("canceled" in s.get("cancel", ""), "a job canceled from the node page")
    curves_checks(t, s)
    t.check(res.get("_approve", "") in s.get("inbound_list", "") and
            "node-a" in s.get("inbound_list", ""), "the receiver's inbound page lists it")
    t.check(s.get("inbound_canvases") == 3, "the received images are decoded")
    t.check("here" in s.get("inbound_eval", "") and "sender" in s.get("inbound_eval", ""),
            "local evaluation beside the sender's: %r" % s.get("inbound_eval"))
    t.check("(as stored)" in s.get("inbound_head", ""), "received payload hash as stored")
    t.check(res.get("foreign") == [], "no request to another host: %r" % res.get("foreign"))
    t.check(res.get("leaks") == [], "no request carries the passphrase or key: %r" %
            res.get("leaks"))
    t.check(not res.get("errors"), "no script errors: %r" % res.get("errors"))
    print("browser: sign-in %s ms (Argon2id interactive in wasm), bundle page %s ms, %d requests"
          % (s.get("signin_ms"), s.get("bundle_page_ms"), len(res.get("requests", []))))


def curves_checks(t, s):
    """The Node page draws the latest finished job's loss (12 iterations:
    a point each) and ROC curves, and another job's on request."""
    c, o = s.get("curves") or {}, s.get("curves_other") or {}
    t.check(s.get("curves_buttons", 0) >= 3, "a Curves button per finished job (%r)" %
            s.get("curves_buttons"))
    for what, v in (("latest", c), ("other", o)):
        loss, roc = v.get("loss") or {}, v.get("roc") or {}
        t.check(loss.get("n") == 12 and loss.get("finite") and loss.get("w", 0) > 300 and
                ("job " + str(v.get("job"))) in loss.get("title", ""),
                "%s job's loss curve drawn, a point per iteration: %r" % (what, loss))
        t.check(roc.get("n", 0) >= 2 and roc.get("finite") and "AUC" in roc.get("title", ""),
                "%s job's ROC curve drawn with its AUC: %r" % (what, roc))
    t.check(c.get("job") and o.get("job") and c.get("job") != o.get("job"),
            "another job's curves on request: %r then %r" % (c.get("job"), o.get("job")))


def record_checks(t, fa, admin, bid, want_sha):
    a, b = fa.nodes["a"], fa.nodes["b"]
    row = a.query("SELECT state, approved_obj, payload_sha256 FROM bundles WHERE id=?", bid)[0]
    t.check(row[0] in ("queued", "sent", "delivered", "approved"), "bundle state %s" % row[0])
    t.check(row[2] == want_sha, "the node's payload hash is the one the page signed")
    st = open(os.path.join(a.dir, "objects", row[1]), "rb").read()
    top = fields(st)
    payload = [v for n, v in top if n == 2][0]
    t.check(hashlib.sha256(payload).hexdigest() == want_sha, "approved statement, same payload")
    found = False
    for n, v in top:
        if n != 3:
            continue
        sig = dict(fields(v))
        if sig.get(1) != 2:
            continue
        ap = dict(fields(sig[5]))
        nacl.signing.VerifyKey(admin["pk"]).verify(pae(APPROVAL_TYPE, sig[5]), sig[4])
        found = ap[1].hex() == want_sha and ap[2] == b"adm-a" and ap[4] == 1
    t.check(found, "the approval is adm-a's valid signature bound to the payload hash")
    fed.wait_for("node-b to import the approved bundle",
                 lambda: any(x["id"] == bid for x in b.bundles()))
    audit = json.dumps(a.audit())
    t.check("dashboard-login" in audit and "decision-reason" in audit,
            "sign-ins and the reason are in the audit log")


def expiry_check(t, d, admin, idle):
    """Idle expiry; the page's background refresh does not keep a session
    alive."""
    d.login(admin)
    st, _, _ = d.req("GET", "/api/v1/status")
    t.check(st == 200, "a fresh session reads")
    time.sleep(idle - 2)
    st, _, _ = d.req("GET", "/api/v1/jobs", headers={"X-Background": "1"})
    t.check(st == 200, "a background refresh reads while the session lives (%d)" % st)
    time.sleep(3.2)
    st, _, _ = d.req("GET", "/api/v1/status")
    t.check(st == 401, "an idle session is refused, background refresh or not: %d" % st)
    st, _, _ = d.post("/api/v1/bundles/00/decision", b"x")
    t.check(st == 401, "an expired session cannot decide: %d" % st)


def main(sldd, t):
    workdir = sys.argv[2]
    if not (os.environ.get("CHROMIUM") or shutil.which("chromium")) or not shutil.which("node"):
        print("SKIP: chromium or node not installed (scripts/install-deps)")
        sys.exit(SKIP)
    if not npm_modules(workdir):
        sys.exit(SKIP)
    idle = 5
    fa = fed.Federation(sldd, names=("a", "b"))
    with fa.session(t):
        a = fa.nodes["a"]
        port = free_port()
        a.serve_args = ["--dashboard", "127.0.0.1:%d" % port, "--dashboard-idle", str(idle)]
        port_b = free_port()
        # not loopback: served over TLS with node-b's certificate
        fa.nodes["b"].serve_args = ["--dashboard", "0.0.0.0:%d" % port_b]
        fa.start()
        tls_checks(t, fa, port_b)
        ids = make_bundles(fa)
        t.check(a.bundle(ids[2])["privacy_verdict"] == "block", "third bundle blocked by policy")
        want_sha = a.bundle(ids[0])["payload_sha256"]
        admin = load_admin(os.path.join(a.dir, "admins", "adm-a.key"), fed.PASS)
        d = Dash(port)
        http_checks(t, d, admin, ids)
        n = count_refused(a)
        t.check(1 <= n <= 20, "refused sign-ins audited, at most 10 a minute (%d of 27)" % n)
        shots = {}
        if os.environ.get("SLDD_DASH_SCREENSHOTS"):
            shots = {k: os.path.join(os.environ["SLDD_DASH_SCREENSHOTS"], "dashboard-%s.png" % k)
                     for k in ("bundle", "node", "inbound", "audit", "budget", "curves")}
        # a long job for the node page to show running and to cancel
        r = a.sldd("job", "distill", "--dir", a.dir, "--to", "node-b", "--iterations", "1000000")
        long_job = re.search(r"job (\d+) queued", r.stdout).group(1)
        res = browser(t, workdir, fa, port, port_b, admin, ids, shots)
        job = json.loads(a.sldd("job", "show", long_job, "--dir", a.dir, "--json").stdout)
        t.check(job["state"] == "canceled", "the node recorded the cancel: %s" % job["state"])
        res["_approve"] = ids[0][:12]
        browser_checks(t, res, want_sha)
        record_checks(t, fa, admin, ids[0], want_sha)
        expiry_check(t, d, admin, idle)
        budget_phase(t, workdir, fa, port, port_b, admin, ids, shots)
        fa.stop()


def budget_phase(t, workdir, fa, port, port_b, admin, ids, shots):
    """A privacy budget set by a reload (SIGHUP).  The bundle approved in the
    browser above was made without DP and shares every training image with
    a new DP release of epsilon 2: what was spent has no finite epsilon, so
    the new one is over the budget.  The page states its epsilon, the spend
    and the budget, and will not approve it."""
    a = fa.nodes["a"]
    conf = os.path.join(a.dir, "node.conf")
    with open(conf) as f:
        lines = [x for x in f if not x.startswith("privacy-thresholds:")]
    with open(conf, "w") as f:
        f.writelines(lines + ["max-epsilon: 2.2\n"])
    n0 = sum(1 for e in a.audit() if e["action"] == "config")
    a.proc.send_signal(signal.SIGHUP)
    fed.wait_for("the reload", lambda: sum(1 for e in a.audit() if e["action"] == "config") > n0)
    over = a.distill(["node-b"], "--dp-epsilon 2 --real-batch 16")
    res = browser(t, workdir, fa, port, port_b, admin, ids, {"bundle": shots.get("budget")},
                  over=over)
    s = res.get("steps", {})
    t.check("OVER the privacy budget" in s.get("over_text", "") and
            s.get("over_disabled") is True, "over-budget bundle: approve disabled (%r)" %
            s.get("over_text"))
    dp = s.get("over_dp", "")
    t.check("epsilon 2.000 at delta 1e-5 per training patch" in dp and "OVER BUDGET" in dp and
            "1 approved release" in dp and "unbounded" in dp,
            "the page states epsilon, the spend and the budget: %r" % dp)
    t.check(not res.get("errors"), "no page errors: %r" % res.get("errors"))


def run(main, usage, nargs):
    """Run main(sldd, checks) with at least nargs arguments; exit with the
    checks' status (fed.run, with more arguments than the sldd path)."""
    if len(sys.argv) < nargs + 1:
        print(usage)
        sys.exit(2)
    checks = fed.Checks()
    try:
        main(sys.argv[1], checks)
    except fed.Failed as e:
        checks.check(False, str(e))
    sys.exit(checks.finish())


if __name__ == "__main__":
    run(main, "usage: %s /path/to/sldd WORKDIR" % sys.argv[0], 2)
