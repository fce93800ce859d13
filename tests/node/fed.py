"""fed.py - a federation of sldd nodes on loopback for the node tests.

Each node gets its own directory, keys, admin, TLS certificate from one test
CA, a small synthetic data set and a port on 127.0.0.1.  Nodes run as
`sldd serve` child processes; everything else goes through the sldd CLI, as
an operator would.  Waits poll with a bounded deadline and fail with what was
last seen; nothing asserts on time.
"""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time

PASS = "a long passphrase for tests"
# tiny and quick: 128-pixel images, 32-pixel patches cut to 16, ConvNet-BN
# of width 8, SLDD(3), a few iterations
DISTILL = ("--arch convnet-bn --width 8 --depth 2 --iterations 12 --real-batch 32 "
           "--eval-every 6 --checkpoint-every 4")
WAIT = float(os.environ.get("SLDD_TEST_WAIT", "240"))


class Failed(Exception):
    pass


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("CHECK failed: " + what, flush=True)
        return cond

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 1 if self.failed else 0


def wait_for(what, fn, timeout=WAIT, every=0.1):
    """Poll fn until it returns something true; fail after timeout."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise Failed("timed out waiting for %s (last: %r)" % (what, last))


def admin_get(node_dir, path):
    """GET path on a node's admin socket: (status, content type, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(os.path.join(node_dir, "admin.sock"))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    ctype = [v.split(":", 1)[1].strip() for v in lines if v.lower().startswith("content-type:")]
    return int(lines[0].split()[1]), ctype[0] if ctype else "", body.decode()


def tls_without_certificate(port):
    """A handshake that presents no client certificate: node refuses it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(100)
    except (OSError, ssl.SSLError):
        pass


def recv_until(sock, want, timeout=20):
    """Datagrams (sd_notify messages) until one contains want; returns all."""
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            break
        if want in got[-1]:
            return got
    raise Failed("no %r from the daemon (got %r)" % (want, got))


class Node:
    def __init__(self, fed, name):
        self.fed = fed
        self.name = name
        self.id = "node-" + name
        self.dir = os.path.join(fed.root, name)
        self.proc = None
        self.port = None
        self.pin = None
        self.log = os.path.join(self.dir, "serve.log")
        self.serve_args = []  # more `sldd serve` options (the dashboard tests)

    # ---- CLI
    def sldd(self, *args, check=True, inp=None, env=None):
        cmd = [self.fed.sldd] + [str(a) for a in args]
        r = subprocess.run(cmd, capture_output=True, text=True, input=inp, env=env,
                           timeout=WAIT)
        if check and r.returncode != 0:
            raise Failed("%s exited %d:\n%s%s" % (" ".join(cmd), r.returncode, r.stdout,
                                                 r.stderr))
        return r

    def api_json(self, *args):
        r = self.sldd(*args, "--dir", self.dir, "--json")
        return json.loads(r.stdout)

    def bundles(self):
        return self.api_json("bundle", "list")

    def bundle(self, bid):
        return self.api_json("bundle", "show", bid)

    def audit(self):
        return self.api_json("audit", "show")

    # ---- the daemon
    def start(self, hold=None):
        env = dict(os.environ)
        env.pop("SLDD_TEST_HOLD", None)
        if hold:
            env["SLDD_TEST_HOLD"] = hold
        for f in os.listdir(self.dir):
            if f.startswith("hold."):
                os.unlink(os.path.join(self.dir, f))
        info = os.path.join(self.dir, "serve.json")
        logf = open(self.log, "a")
        self.proc = subprocess.Popen([self.fed.sldd, "serve", "--dir", self.dir] + self.serve_args,
                                     stdout=logf, stderr=subprocess.STDOUT, env=env)
        logf.close()

        def ready():
            if self.proc.poll() is not None:
                raise Failed("%s exited with %d at start:\n%s" % (self.id, self.proc.returncode,
                                                               self.tail()))
            try:
                with open(info) as f:
                    j = json.load(f)
            except (OSError, ValueError):
                return None
            return j if j.get("pid") == self.proc.pid else None
        j = wait_for(self.id + " to start", ready)
        if self.port is None:
            self.port = j["port"]
            # come back on the same port after a restart
            with open(os.path.join(self.dir, "node.conf"), "a") as f:
                f.write("listen: 127.0.0.1:%d\n" % self.port)
        elif j["port"] != self.port:
            raise Failed("%s came back on port %d, not %d" % (self.id, j["port"], self.port))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failed("%s did not stop on SIGTERM" % self.id)
            if self.proc.returncode != 0:
                raise Failed("%s exited %d after SIGTERM:\n%s" % (self.id, self.proc.returncode,
                                                                self.tail()))
        self.proc = None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def wait_hold(self, point):
        path = os.path.join(self.dir, "hold." + point)
        wait_for("%s to reach %s" % (self.id, point),
                 lambda: os.path.exists(path) or (self.proc.poll() is not None and
                                                  self._died(point)))

    def _died(self, point):
        raise Failed("%s exited before %s:\n%s" % (self.id, point, self.tail()))

    def tail(self, n=30):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    # ---- work
    def distill(self, to, extra=""):
        r = self.sldd("job", "distill", "--dir", self.dir, "--to", ",".join(to), "--wait",
                      "--quiet", *extra.split())
        m = re.search(r"job (\d+) queued", r.stdout)
        job = json.loads(self.sldd("job", "show", m.group(1), "--dir", self.dir,
                                   "--json").stdout)
        if job["state"] != "done":
            raise Failed("job %s: %s" % (m.group(1), job))
        return job["bundle"]

    def approve(self, bid, reject=False, check=True, admin=None):
        return self.sldd("bundle", "reject" if reject else "approve", bid, "--dir", self.dir,
                         "--admin", admin or ("adm-" + self.name), "--passphrase-file",
                         self.fed.passfile, "--yes", check=check)

    def db(self):
        return sqlite3.connect("file:%s?mode=ro" % os.path.join(self.dir, "state.db"), uri=True,
                               timeout=30)

    def query(self, sql, *args):
        con = self.db()
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()


class Federation:
    def __init__(self, sldd, names=("a", "b", "c"), data_of=None, conf=""):
        self.sldd = os.path.abspath(sldd)
        # short: unix socket paths are limited to 107 bytes
        self.root = tempfile.mkdtemp(prefix="sldd-", dir="/tmp")
        self.passfile = os.path.join(self.root, "pass")
        with open(self.passfile, "w") as f:
            f.write(PASS + "\n")
        os.chmod(self.passfile, 0o600)
        self.nodes = {}
        self.ca = os.path.join(self.root, "ca")
        data_of = data_of or {}
        seeds = {}
        for i, n in enumerate(names):
            node = Node(self, n)
            self.nodes[n] = node
            src = data_of.get(n, n)
            if src not in seeds:
                seeds[src] = 11 + i
                d = os.path.join(self.root, "data-" + src)
                node.sldd("dataset", "synth", "--out", d, "--count", "18", "--size", "128",
                          "--seed", seeds[src], "--threads", "1")
                node.sldd("dataset", "prepare", "--data", d, "--patch", "32", "--stride", "16",
                          "--patch-resize", "16")
        for n in names:
            node = self.nodes[n]
            src = data_of.get(n, n)
            r = node.sldd("init", "--dir", node.dir, "--id", node.id, "--tls", "--ca-dir",
                          self.ca, "--listen", "127.0.0.1:0", "--data",
                          os.path.join(self.root, "data-" + src))
            node.pin = re.search(r"TLS pin\s+(\S+)", r.stdout).group(1)
            node.sldd("admin", "add", "--dir", node.dir, "--name", "adm-" + n,
                      "--passphrase-file", self.passfile, "--kdf", "interactive")
            node.sldd("keys", "export", "--dir", node.dir, "--out",
                      os.path.join(self.root, n + ".peer"))
            with open(os.path.join(node.dir, "node.conf"), "a") as f:
                f.write("retry-base-ms: 100\nretry-max-ms: 800\nmax-bundle-bytes: 1048576\n"
                        "distill: %s\n%s" % (DISTILL, conf))
        for n in names:
            for m in names:
                if n != m:
                    self.nodes[n].sldd("peer", "add", "--dir", self.nodes[n].dir, "--file",
                                       os.path.join(self.root, m + ".peer"))

    def start(self):
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            for other in self.nodes.values():
                if other is not node:
                    node.sldd("peer", "address", "--dir", node.dir, "--id", other.id, "--url",
                              "https://127.0.0.1:%d" % other.port, "--tls-pin", other.pin)

    def stop(self):
        errors = []
        for node in self.nodes.values():
            try:
                node.stop()
            except Failed as e:
                errors.append(str(e))
        if errors:
            raise Failed("\n".join(errors))

    @contextlib.contextmanager
    def session(self, checks):
        """Run a test's body: on a failure show the nodes' logs; at the end
        stop the nodes and remove their directories when every check
        passed (kept otherwise, or with SLDD_TEST_KEEP)."""
        ok = False
        try:
            yield
            ok = checks.failed == 0
        except Failed:
            self.dump_logs()
            raise
        finally:
            if checks.failed:
                self.dump_logs()
            self.cleanup(ok)

    def cleanup(self, ok):
        for node in self.nodes.values():
            if node.proc and node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait()
        if ok and not os.environ.get("SLDD_TEST_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            print("node directories kept in " + self.root, flush=True)

    def dump_logs(self):
        for node in self.nodes.values():
            print("---- %s log (last lines)\n%s" % (node.id, node.tail()), flush=True)


def run(main):
    """Run main(sldd_path, checks); exit with the harness's status."""
    if len(sys.argv) != 2:
        print("usage: %s /path/to/sldd" % sys.argv[0])
        sys.exit(2)
    checks = Checks()
    try:
        main(sys.argv[1], checks)
    except Failed as e:
        checks.check(False, str(e))
    sys.exit(checks.finish())
