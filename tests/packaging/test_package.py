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
      by the unit's ExecReload signal, and `sldd stop`.  With
      SLDD_PACKAGE_INSTALL_TEST=1 and root (CI machines only) it is also
      installed with dpkg -i: the sldd user, /var/lib/sldd (0700, sldd) and
      the unit must be there; then it is purged.
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


def run_unit(root, t):
    """The unit's ExecStart, from the unpacked root, as the service user."""
    unit = open(os.path.join(root, "usr/lib/systemd/system/sldd.service")).read()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
    state = os.path.join(root, "var/lib/sldd")
    sldd = os.path.join(root, "usr/bin/sldd")
    argv = [sldd if a == "/usr/bin/sldd" else state if a == "/var/lib/sldd" else a
            for a in exec_start]
    t.check(argv[1:] == ["serve", "--dir", state], "ExecStart: %s" % exec_start)
    user = service_user()
    os.makedirs(state, mode=0o700)
    ca = os.path.join(root, "ca")
    os.makedirs(ca, mode=0o700)
    for d in (root, state, ca):
        os.chown(d, user[0], user[1])
    env = dict(os.environ, SLDD_DIR=state)
    env.pop("NOTIFY_SOCKET", None)
    r = subprocess.run(as_user(user, [sldd, "init", "--id", "node-pkg", "--tls", "--ca-dir", ca,
                                      "--listen", "127.0.0.1:0"]),
                       env=env, capture_output=True, text=True)
    if r.returncode:
        raise fed.Failed("init as %s: %s" % (user[2], r.stderr))
    sock_path = os.path.join(root, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    os.chown(sock_path, user[0], user[1])
    env.update(NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="1000000")
    umask = int(re.search(r"^UMask=(\d+)$", unit, re.M).group(1), 8)
    proc = subprocess.Popen(as_user(user, argv), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=lambda: os.umask(umask))
    try:
        got = fed.recv_until(sock, "READY=1")
        t.check(proc.poll() is None, "the service runs from the unpacked package: %r" % got)
        got = fed.recv_until(sock, "WATCHDOG=1")
        r = subprocess.run(as_user(user, [sldd, "status"]), env=env, capture_output=True,
                           text=True)
        t.check(r.returncode == 0 and "node node-pkg: running" in r.stdout,
                "sldd status as the service user, from SLDD_DIR: %s%s" % (r.stdout, r.stderr))
        status, ctype, text = fed.admin_get(state, "/v1/metrics")
        t.check(status == 200 and "sldd_up 1" in text and 'sldd_jobs{state="queued"} 0' in text,
                "GET /v1/metrics: %d" % status)
        # ExecReload is `kill -HUP $MAINPID`
        reload = re.search(r"^ExecReload=(.*)$", unit, re.M).group(1)
        subprocess.run(reload.replace("$MAINPID", str(proc.pid)).split(), check=True)
        got = fed.recv_until(sock, "READY=1")
        t.check(any("RELOADING=1" in g for g in got), "reload: RELOADING=1, READY=1: %r" % got)
        r = subprocess.run(as_user(user, [sldd, "audit", "show", "--json"]), env=env,
                           capture_output=True, text=True)
        cfg = [e for e in json.loads(r.stdout) if e["action"] == "config"]
        t.check(len(cfg) == 1 and cfg[0]["outcome"] == "ok", "the reload is audited: %s" % cfg)
        r = subprocess.run(as_user(user, [sldd, "stop"]), env=env, capture_output=True,
                           text=True)
        t.check(r.returncode == 0 and "stopped" in r.stdout, "sldd stop: %s" % r.stdout)
        t.check(proc.wait(timeout=30) == 0, "clean exit")
        fed.recv_until(sock, "STOPPING=1")
        st = os.stat(os.path.join(state, "state.db"))
        t.check(st.st_uid == user[0] and (st.st_mode & 0o077) == 0,
                "state owned by the service user, private under the unit's UMask: %o" %
                st.st_mode)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


def real_install(deb, t):
    """CI only: dpkg -i on this machine, then purge."""
    r = subprocess.run(["dpkg", "-i", deb], capture_output=True, text=True)
    try:
        t.check(r.returncode == 0, "dpkg -i: %s%s" % (r.stdout, r.stderr))
        pw = pwd.getpwnam("sldd")
        st = os.stat("/var/lib/sldd")
        t.check(pw.pw_shell.endswith("nologin") and st.st_uid == pw.pw_uid and
                (st.st_mode & 0o777) == 0o700, "user sldd and /var/lib/sldd 0700")
        t.check(os.path.exists("/usr/lib/systemd/system/sldd.service"), "unit installed")
    finally:
        subprocess.run(["dpkg", "--purge", "sldd"], capture_output=True)


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
        run_unit(root, t)
        if os.environ.get("SLDD_PACKAGE_INSTALL_TEST") == "1":
            if os.getuid() == 0:
                real_install(deb, t)
            else:
                print("SLDD_PACKAGE_INSTALL_TEST=1 needs root: dpkg -i not tried")
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
