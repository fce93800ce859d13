#!/usr/bin/python3
"""test_tty.py - the terminal paths of the CLI, driven through a pseudo-terminal:
the passphrase prompt (no echo, asked twice on creation, mismatch refused)
and the approval confirmation (y approves, anything else writes nothing).
Usage: test_tty.py PATH-TO-SLDD.  Exit 77 where no pty can be opened."""
import os
import pty
import select
import subprocess
import sys
import tempfile

FAILURES = 0


def check(cond, what):
    global FAILURES
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES += 1


def run_tty(argv, script, env):
    """Run argv on a new pty; script: list of (expected text, reply).  Returns
    (exit status, everything the program wrote)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    out = b""
    steps = list(script)
    status = None
    while True:
        # generous hang guard only; nothing here depends on speed
        r, _, _ = select.select([fd], [], [], 60)
        if not r:
            os.kill(pid, 9)
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        while steps and steps[0][0].encode() in out.split(b"\x00")[-1]:
            want, reply = steps.pop(0)
            out += b"\x00"  # marks the position already answered
            os.write(fd, reply.encode())
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.replace(b"\x00", b"").decode(errors="replace")


def main():
    exe = os.path.abspath(sys.argv[1])
    try:
        m, s = pty.openpty()
        os.close(m)
        os.close(s)
    except OSError:
        print("no pty: skipping")
        return 77
    env = {k: v for k, v in os.environ.items() if k != "SLDD_PASSPHRASE"}
    with tempfile.TemporaryDirectory() as tmp:
        A = os.path.join(tmp, "A")
        subprocess.run([exe, "init", "--dir", A, "--id", "node-a"], check=True, capture_output=True)
        pw = "tty passphrase 42"
        rc, out = run_tty([exe, "admin", "add", "--dir", A, "--name", "bob", "--kdf", "interactive"],
                          [("new passphrase for admin bob: ", pw + "\n"), ("again: ", pw + "\n")], env)
        check(rc == 0 and "admin 'bob' of node 'node-a' created" in out, "admin add with a prompted passphrase")
        check(pw not in out, "the passphrase is not echoed")
        rc, out = run_tty([exe, "admin", "add", "--dir", A, "--name", "carol", "--kdf", "interactive"],
                          [("new passphrase for admin carol: ", pw + "\n"), ("again: ", "other\n")], env)
        check(rc == 1 and "differ" in out, "mismatched passphrases refused")
        check(not os.path.exists(os.path.join(A, "admins", "carol.key")), "no key written on mismatch")

        p = lambda n: os.path.join(tmp, n)
        subprocess.run([exe, "bundle", "make-test", "--dir", A, "--small", "--out", p("p.bin")],
                       check=True, capture_output=True)
        q = "APPROVE this payload as admin bob? [y/N] "
        rc, out = run_tty([exe, "bundle", "approve", "--dir", A, "--admin", "bob", "--in", p("p.bin"),
                           "--out", p("s.bin")], [(q, "n\n")], env)
        check(rc == 1 and "not confirmed" in out and not os.path.exists(p("s.bin")),
              "answering n writes nothing")
        check("payload sha256" in out and "privacy verdict" in out, "the summary is shown before asking")
        rc, out = run_tty([exe, "bundle", "approve", "--dir", A, "--admin", "bob", "--in", p("p.bin"),
                           "--out", p("s.bin")],
                          [(q, "y\n"), ("passphrase for admin bob: ", "wrong one\n")], env)
        check(rc == 1 and "wrong passphrase" in out and not os.path.exists(p("s.bin")),
              "a wrong passphrase writes nothing")
        rc, out = run_tty([exe, "bundle", "approve", "--dir", A, "--admin", "bob", "--in", p("p.bin"),
                           "--out", p("s.bin")],
                          [(q, "y\n"), ("passphrase for admin bob: ", pw + "\n")], env)
        check(rc == 0 and "approved by admin bob" in out and os.path.exists(p("s.bin")),
              "y and the right passphrase approve")
        r = subprocess.run([exe, "bundle", "approve", "--dir", A, "--admin", "bob", "--in", p("p.bin"),
                            "--out", p("s2.bin")], capture_output=True, text=True, env=env,
                           stdin=subprocess.DEVNULL, start_new_session=True)
        check(r.returncode == 1 and "--yes" in r.stderr, "without a terminal, approve asks for --yes")
    print("%d failures" % FAILURES)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
