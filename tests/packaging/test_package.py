#!/usr/bin/python3
"""test_package.py - the Debian package and its systemd unit.

  test_package.py unit SLDD.SERVICE SLDD
      systemd-analyze verify accepts the unit (its ExecStart pointed at the
      built sldd), and says nothing; exit 77 without systemd-analyze.

  test_package.py deb BUILD_DIR CPACK VERSION
      cpack -G DEB builds sldd_VERSION_ARCH.deb; dpkg-deb -I and -c show the
      control fields, the Depends found by dpkg-shlibdeps, the maintainer
      scripts and every file; the package is unpacked into a fresh root (no
      chroot tool is used, and nothing is installed on this machine) and the
      unit's own ExecStart line runs from there, as an unprivileged user
      standing in for the service user (nobody when run as root): READY=1 and
      WATCHDOG=1 over NOTIFY_SOCKET, `sldd status`, GET /v1/metrics, a reload
      by the unit's ExecReload signal, and `sldd stop`.

  test_package.py chroot BUILD_DIR CPACK VERSION
      as root with mmdebstrap (exit 77 otherwise): a fresh Debian root of
      this machine's release (essential packages and apt, from the Debian
      archive), `apt-get install -y ./sldd_*.deb` in it, the sldd user and
      /var/lib/sldd checked, the same service checks inside the chroot as
      the package's own sldd user, then `apt-get purge` (the node's records
      stay).  A CUDA build's cuDNN/cuBLAS are NVIDIA's, not Debian's: the
      host's copies are linked into the chroot, and nothing else.
"""
import gzip
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "node"))
import fed  # noqa: E402


def unit_test(unit, sldd, t):
    sa = shutil.which("systemd-analyze")
    if not sa:
        print("systemd-analyze missing: skipped")
        sys.exit(77)
    d = tempfile.mkdtemp(prefix="sldd-unit-")
    try:
        text = open(unit).read()
        for key in ("Type=notify", "WatchdogSec=", "User=sldd", "StateDirectory=sldd",
                    "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                    "ProtectHome=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                    "ExecReload=/bin/kill -HUP $MAINPID"):
            t.check(re.search(r"^" + re.escape(key), text, re.M), "unit has %s" % key)
        path = os.path.join(d, "sldd.service")
        with open(path, "w") as f:
            f.write(text.replace("/usr/bin/sldd", os.path.abspath(sldd)))
        r = subprocess.run([sa, "verify", "--man=no", path], capture_output=True, text=True)
        t.check(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
                "systemd-analyze verify: %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
        # the check can fail: a misspelt value is reported
        with open(path, "w") as f:
            f.write(text.replace("Type=notify", "Type=notfy"))
        r = subprocess.run([sa, "verify", "--man=no", path], capture_output=True, text=True)
        t.check("notfy" in r.stderr, "verify reports a bad unit: %s" % r.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def build_deb(build, cpack, version, out, t):
    r = subprocess.run([cpack, "-G", "DEB", "--config", os.path.join(build, "CPackConfig.cmake"),
                        "-B", out], capture_output=True, text=True, timeout=150)
    if r.returncode:
        raise fed.Failed("cpack: %s%s" % (r.stdout, r.stderr))
    debs = [f for f in os.listdir(out) if re.match(r"sldd_%s_\w+\.deb$" % re.escape(version), f)]
    if len(debs) != 1:
        raise fed.Failed("cpack made %s" % os.listdir(out))
    return os.path.join(out, debs[0])


def inspect(deb, version, t):
    info = subprocess.run(["dpkg-deb", "-I", deb], capture_output=True, text=True).stdout
    fields = dict(re.findall(r"^ (\w[\w-]*): (.*)$", info, re.M))
    t.check(fields.get("Package") == "sldd" and fields.get("Version") == version,
            "control: %s" % fields)
    deps = [d.strip().split()[0] for d in fields.get("Depends", "").split(",")]
    for lib in ("adduser", "libc6", "libssl3", "libsqlite3-0", "libsodium23", "libcurl4",
                "libprotobuf-c1", "libpng16-16"):
        t.check(lib in deps, "Depends names %s (dpkg-shlibdeps): %s" % (lib, deps))
    for script in ("postinst", "prerm", "postrm"):
        t.check(re.search(r"^\s+\d+ bytes,\s+\d+ lines\s+\*\s+%s" % script, info, re.M),
                "maintainer script %s (executable)" % script)
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
    files = {ln.split()[-1]: ln.split()[0] for ln in listing.splitlines()}
    for f, mode in (("./usr/bin/sldd", "-rwxr-xr-x"),
                    ("./usr/lib/systemd/system/sldd.service", "-rw-r--r--"),
                    ("./usr/lib/tmpfiles.d/sldd.conf", "-rw-r--r--"),
                    ("./usr/share/man/man1/sldd.1.gz", "-rw-r--r--"),
                    ("./usr/share/man/man1/sldd-serve.1.gz", "-rw-r--r--"),
                    ("./usr/share/man/man1/sldd-status.1.gz", "-rw-r--r--"),
                    ("./usr/share/doc/sldd/operations.md", "-rw-r--r--")):
        t.check(files.get(f) == mode, "%s %s in the package (%s)" % (mode, f, files.get(f)))
    t.check(all(ln.split()[1] == "root/root" for ln in listing.splitlines()),
            "every file owned by root")


def service_user():
    """(uid, gid, name) that stands for the sldd user."""
    if os.getuid() != 0:
        return os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid, "nobody"


def as_user(user, argv):
    if os.getuid() != 0:
        return argv
    return ["setpriv", "--reuid=%d" % user[0], "--regid=%d" % user[1], "--clear-groups"] + argv


class Unpacked:
    """The package unpacked into a fresh root on this machine: its binary
    run from there as a user standing in for the service user."""

    def __init__(self, root):
        self.root = root
        self.user = service_user()
        self.sldd = os.path.join(root, "usr/bin/sldd")
        self.state = os.path.join(root, "var/lib/sldd")  # as the node sees it
        self.state_host = self.state
        self.ca = os.path.join(root, "ca")
        self.notify = self.notify_host = os.path.join(root, "notify")

    def prepare(self):
        os.makedirs(self.state, mode=0o700)
        os.makedirs(self.ca, mode=0o700)
        for d in (self.root, self.state, self.ca):
            os.chown(d, self.user[0], self.user[1])

    def argv(self, argv):
        return as_user(self.user, argv)

    def path(self, p):
        return {"/usr/bin/sldd": self.sldd, "/var/lib/sldd": self.state}.get(p, p)


class Chroot(Unpacked):
    """The package installed by apt in a Debian root made by mmdebstrap:
    every command runs inside it (chroot) as the package's own sldd user."""

    def __init__(self, root):
        self.root = root
        pw = {ln.split(":")[0]: ln.split(":") for ln in open(os.path.join(root, "etc/passwd"))}
        self.user = (int(pw["sldd"][2]), int(pw["sldd"][3]), "sldd")
        self.sldd, self.state, self.ca = "/usr/bin/sldd", "/var/lib/sldd", "/var/lib/sldd-ca"
        self.state_host = os.path.join(root, "var/lib/sldd")
        self.notify = "/run/sldd-notify"
        self.notify_host = os.path.join(root, "run/sldd-notify")

    def prepare(self):
        ca = os.path.join(self.root, self.ca.lstrip("/"))
        os.makedirs(ca, mode=0o700)
        os.chown(ca, self.user[0], self.user[1])
        os.makedirs(os.path.dirname(self.notify_host), exist_ok=True)

    def argv(self, argv):
        return ["chroot", "--userspec=%d:%d" % self.user[:2], self.root] + argv

    def path(self, p):
        return p


def run_unit(place, t):
    """The unit's ExecStart as the service user: readiness, status, metrics,
    reload, stop."""
    unit = open(os.path.join(place.root, "usr/lib/systemd/system/sldd.service")).read()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
    argv = [place.path(a) for a in exec_start]
    t.check(exec_start[1:] == ["serve", "--dir", "/var/lib/sldd"], "ExecStart: %s" % exec_start)
    user = place.user
    place.prepare()
    env = dict(os.environ, SLDD_DIR=place.state)
    env.pop("NOTIFY_SOCKET", None)
    r = subprocess.run(place.argv([place.sldd, "init", "--id", "node-pkg", "--tls", "--ca-dir",
                                   place.ca, "--listen", "127.0.0.1:0"]),
                       env=env, capture_output=True, text=True)
    if r.returncode:
        raise fed.Failed("init as %s: %s" % (user[2], r.stderr))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(place.notify_host)
    os.chown(place.notify_host, user[0], user[1])
    env.update(NOTIFY_SOCKET=place.notify, WATCHDOG_USEC="1000000")
    umask = int(re.search(r"^UMask=(\d+)$", unit, re.M).group(1), 8)
    proc = subprocess.Popen(place.argv(argv), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=lambda: os.umask(umask))
    try:
        got = fed.recv_until(sock, "READY=1")
        t.check(proc.poll() is None, "the service runs from the package: %r" % got)
        got = fed.recv_until(sock, "WATCHDOG=1")
        r = subprocess.run(place.argv([place.sldd, "status"]), env=env, capture_output=True,
                           text=True)
        t.check(r.returncode == 0 and "node node-pkg: running" in r.stdout,
                "sldd status as the service user, from SLDD_DIR: %s%s" % (r.stdout, r.stderr))
        status, ctype, text = fed.admin_get(place.state_host, "/v1/metrics")
        t.check(status == 200 and "sldd_up 1" in text and 'sldd_jobs{state="queued"} 0' in text,
                "GET /v1/metrics: %d" % status)
        # ExecReload is `kill -HUP $MAINPID` (chroot and setpriv exec the command)
        reload = re.search(r"^ExecReload=(.*)$", unit, re.M).group(1)
        subprocess.run(reload.replace("$MAINPID", str(proc.pid)).split(), check=True)
        got = fed.recv_until(sock, "READY=1")
        t.check(any("RELOADING=1" in g for g in got), "reload: RELOADING=1, READY=1: %r" % got)
        r = subprocess.run(place.argv([place.sldd, "audit", "show", "--json"]), env=env,
                           capture_output=True, text=True)
        cfg = [e for e in json.loads(r.stdout) if e["action"] == "config"]
        t.check(len(cfg) == 1 and cfg[0]["outcome"] == "ok", "the reload is audited: %s" % cfg)
        r = subprocess.run(place.argv([place.sldd, "stop"]), env=env, capture_output=True,
                           text=True)
        t.check(r.returncode == 0 and "stopped" in r.stdout, "sldd stop: %s" % r.stdout)
        t.check(proc.wait(timeout=30) == 0, "clean exit")
        fed.recv_until(sock, "STOPPING=1")
        st = os.stat(os.path.join(place.state_host, "state.db"))
        t.check(st.st_uid == user[0] and (st.st_mode & 0o077) == 0,
                "state owned by the service user, private under the unit's UMask: %o" %
                st.st_mode)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


def chroot_missing(root):
    """Libraries /usr/bin/sldd needs that the chroot does not have."""
    r = subprocess.run(["chroot", root, "ldd", "/usr/bin/sldd"], capture_output=True, text=True)
    return re.findall(r"^\s*(\S+) => not found", r.stdout, re.M)


def provide_nvidia(root, binary, t):
    """A CUDA build links cuDNN and cuBLAS, which are NVIDIA's packages, not
    Debian's (so not in Depends): a GPU site installs them from NVIDIA.  Here
    the host's copies are hard-linked (copied across file systems) into the
    chroot's /opt/nvidia/lib and named in ld.so.conf.d, as NVIDIA's packages
    would; nothing else is given to the chroot."""
    host = dict(re.findall(r"^\s*(\S+) => (/\S+)", subprocess.run(
        ["ldd", binary], capture_output=True, text=True).stdout, re.M))
    lib = os.path.join(root, "opt/nvidia/lib")
    for _ in range(8):
        missing = chroot_missing(root)
        if not missing:
            return
        for name in missing:
            src = host.get(name)
            if not src:  # a dependency of a provided library
                for d in set(os.path.dirname(p) for p in host.values()):
                    if os.path.exists(os.path.join(d, name)):
                        src = os.path.join(d, name)
            t.check(src and re.match(r"lib(cudnn|cublas|cudart|nvrtc)", name),
                    "only NVIDIA libraries are missing from the chroot: %s (%s)" % (name, src))
            if not src:
                raise fed.Failed("cannot provide %s" % name)
            os.makedirs(lib, exist_ok=True)
            dst = os.path.join(lib, name)
            try:
                os.link(os.path.realpath(src), dst)
            except OSError:
                shutil.copy2(src, dst)
        with open(os.path.join(root, "etc/ld.so.conf.d/nvidia.conf"), "w") as f:
            f.write("/opt/nvidia/lib\n")
        subprocess.run(["chroot", root, "ldconfig"], check=True)
    raise fed.Failed("libraries still missing in the chroot: %s" % chroot_missing(root))


def chroot_test(build, cpack, version, t):
    """apt install ./sldd_*.deb in a fresh Debian root, then the unit's
    command as the package's sldd user inside it."""
    mm = shutil.which("mmdebstrap")
    if os.getuid() != 0 or not mm:
        print("needs root and mmdebstrap (CI has both): skipped")
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="sldd-chroot-", dir="/tmp")
    os.chmod(work, 0o755)
    try:
        deb = build_deb(build, cpack, version, os.path.join(work, "out"), t)
        name = os.path.basename(deb)
        suite = re.search(r"^VERSION_CODENAME=(\w+)$", open("/etc/os-release").read(),
                          re.M).group(1)
        root = os.path.join(work, "root")
        t0 = time.monotonic()
        # a minimal Debian (essential packages and apt), then apt installs
        # the package with its Depends from the Debian archive
        # (no fsync per file, no documentation or translations: faster, and
        # nothing the checks look at)
        fast = ["--dpkgopt=force-unsafe-io", "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--aptopt=Acquire::Languages \"none\""]
        r = subprocess.run([mm, "--variant=apt"] + fast +
                           ["--customize-hook=copy-in %s /tmp" % deb,
                            "--customize-hook=chroot \"$1\" apt-get install -y /tmp/" + name,
                            suite, root], capture_output=True, text=True, timeout=900)
        t.check(r.returncode == 0, "apt-get install ./%s in a fresh %s root (mmdebstrap): %s" %
                (name, suite, r.stderr[-3000:]))
        print("mmdebstrap and apt-get install: %.0f s" % (time.monotonic() - t0), flush=True)
        if r.returncode:
            return
        st = subprocess.run(["chroot", root, "dpkg-query", "-W", "-f=${Status}", "sldd"],
                            capture_output=True, text=True).stdout
        t.check(st == "install ok installed", "dpkg says sldd is installed: %s" % st)
        pw = [ln.split(":") for ln in open(os.path.join(root, "etc/passwd"))]
        sl = [p for p in pw if p[0] == "sldd"]
        t.check(sl and sl[0][6].strip() == "/usr/sbin/nologin" and sl[0][5] == "/var/lib/sldd",
                "postinst made the system user sldd: %s" % sl)
        state = os.stat(os.path.join(root, "var/lib/sldd"))
        t.check(sl and state.st_uid == int(sl[0][2]) and (state.st_mode & 0o777) == 0o700,
                "/var/lib/sldd is the sldd user's, 0700: %o" % state.st_mode)
        provide_nvidia(root, os.path.join(root, "usr/bin/sldd"), t)
        r = subprocess.run(["chroot", root, "sldd", "--version"], capture_output=True, text=True)
        t.check(r.returncode == 0 and r.stdout.startswith("sldd " + version),
                "sldd --version in the chroot: %s%s" % (r.stdout, r.stderr))
        run_unit(Chroot(root), t)
        r = subprocess.run(["chroot", root, "apt-get", "purge", "-y", "sldd"],
                           capture_output=True, text=True)
        t.check(r.returncode == 0 and not os.path.exists(os.path.join(root, "usr/bin/sldd")) and
                os.path.exists(os.path.join(root, "var/lib/sldd/state.db")),
                "apt-get purge removes the program and keeps the node's records: %s" %
                r.stderr[-500:])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def deb_test(build, cpack, version, t):
    for tool in ("dpkg-deb", "dpkg-shlibdeps"):
        if not shutil.which(tool):
            print("%s missing: skipped" % tool)
            sys.exit(77)
    work = tempfile.mkdtemp(prefix="sldd-pkg-", dir="/tmp")
    os.chmod(work, 0o755)
    ok = False
    try:
        deb = build_deb(build, cpack, version, os.path.join(work, "out"), t)
        inspect(deb, version, t)
        root = os.path.join(work, "root")
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        r = subprocess.run([os.path.join(root, "usr/bin/sldd"), "--version"],
                           capture_output=True, text=True)
        t.check(r.stdout.startswith("sldd %s" % version), "the packaged sldd: %s" % r.stdout)
        man = gzip.open(os.path.join(root, "usr/share/man/man1/sldd-serve.1.gz")).read().decode()
        t.check(".TH SLDD-SERVE" in man and "log\\-format" in man and "run the node" in man,
                "man page sldd-serve(1) made from --help")
        run_unit(Unpacked(root), t)
        ok = t.failed == 0
    finally:
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept " + work)


def main(argv, t):
    if argv[1] == "unit" and len(argv) == 4:
        unit_test(argv[2], argv[3], t)
    elif argv[1] == "deb" and len(argv) == 5:
        deb_test(argv[2], argv[3], argv[4], t)
    elif argv[1] == "chroot" and len(argv) == 5:
        chroot_test(argv[2], argv[3], argv[4], t)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    checks = fed.Checks()
    try:
        main(sys.argv, checks)
    except fed.Failed as e:
        checks.check(False, str(e))
    sys.exit(checks.finish())
