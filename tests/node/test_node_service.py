#!/usr/bin/python3
"""test_node_service.py - `sldd serve` as a systemd service sees it, without
systemd: the notify protocol, the watchdog, SIGHUP and the JSON log.

The test binds its own unix datagram socket and starts the daemon with
NOTIFY_SOCKET pointing at it (and WATCHDOG_USEC), then checks:

  - READY=1 arrives once the node serves (its admin API answers), then
    WATCHDOG=1 every half watchdog period; a WATCHDOG_PID naming another
    process turns the pings off;
  - SIGHUP with a good node.conf: RELOADING=1 then READY=1, the new setting
    in force, a log line and an audit entry (action config, outcome ok)
    naming the OS user and the pid that sent the signal, the reload counter;
  - SIGHUP with a bad node.conf: the running configuration is kept, an
    error in the log and the audit log, the node still serves; a key that
    needs a restart is named as such;
  - --log-format json: every line is one JSON object with ts, level, node,
    msg and fields, whatever bytes (quote, backslash, control character,
    invalid UTF-8) went into a message; a TLS handshake from an unknown
    client is logged at level error with its reason in fields;
  - SIGTERM: STOPPING=1 and exit status 0, also when it comes during the
    start-up, before the node serves.

usage: test_node_service.py /path/to/sldd
"""
import fcntl
import getpass
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fed  # noqa: E402


def lock_held(path):
    try:
        with open(path) as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
        return False
    except OSError:
        return os.path.exists(path)


def log_lines(path):
    with open(path, "rb") as f:
        return [json.loads(ln) for ln in f.read().splitlines() if ln.strip()]


def start(sldd, d, sock_path, log, **env_extra):
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, **env_extra)
    return subprocess.Popen([sldd, "serve", "--dir", d, "--log-format", "json", "--log", log],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main(sldd, t):
    root = fed.tempfile.mkdtemp(prefix="sldd-svc-", dir="/tmp")
    d = os.path.join(root, "n")
    log = os.path.join(root, "serve.log")
    sock_path = os.path.join(root, "notify")
    ok = False
    proc = None
    try:
        subprocess.run([sldd, "init", "--dir", d, "--id", "node-s", "--tls", "--ca-dir",
                        os.path.join(root, "ca"), "--listen", "127.0.0.1:0"], check=True,
                       capture_output=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)

        # ---- readiness and the watchdog (0.4 s: a ping every 0.2 s)
        proc = start(sldd, d, sock_path, log, WATCHDOG_USEC="400000")
        got = fed.recv_until(sock, "READY=1")
        r = subprocess.run([sldd, "status", "--dir", d], capture_output=True, text=True)
        t.check(r.returncode == 0 and "STATUS=serving peers on 127.0.0.1:" in got[-1],
                "READY=1 once the node serves: %r; status %d" % (got, r.returncode))
        pings = fed.recv_until(sock, "WATCHDOG=1")
        pings += fed.recv_until(sock, "WATCHDOG=1")
        t.check(pings.count("WATCHDOG=1") >= 2, "WATCHDOG=1 arrives again and again: %r" % pings)

        # ---- SIGHUP, good config
        with open(os.path.join(d, "node.conf"), "a") as f:
            f.write("retry-base-ms: 150\nprivacy-policy: require\n")
        proc.send_signal(signal.SIGHUP)
        got = fed.recv_until(sock, "READY=1")
        t.check(any("RELOADING=1" in g and "MONOTONIC_USEC=" in g for g in got),
                "RELOADING=1 then READY=1: %r" % got)
        st = json.loads(subprocess.run([sldd, "status", "--dir", d, "--json"],
                                       capture_output=True, text=True).stdout)
        t.check(st["privacy_policy"] == "require", "the reloaded setting is in force: %s" %
                st["privacy_policy"])
        audit = json.loads(subprocess.run([sldd, "audit", "show", "--dir", d, "--json"],
                                          capture_output=True, text=True).stdout)
        cfg = [e for e in audit if e["action"] == "config"]
        who = "os:%s (SIGHUP from pid %d)" % (getpass.getuser(), os.getpid())
        t.check(len(cfg) == 1 and cfg[0]["outcome"] == "ok" and cfg[0]["actor"] == who,
                "reload audited with who sent it (%s): %s" % (who, cfg))

        # ---- SIGHUP, bad config: kept, error, still serving
        with open(os.path.join(d, "node.conf"), "ab") as f:
            f.write(b'listen: a"b\\c\x01\xff\n')
        proc.send_signal(signal.SIGHUP)
        fed.recv_until(sock, "READY=1")
        lines = log_lines(log)
        bad = [ln for ln in lines if "not reloaded" in ln["msg"]]
        t.check(len(bad) == 1 and bad[0]["level"] == "error" and
                'got \'a"b\\c\x01\ufffd\'' in bad[0]["msg"],
                "bad config: one error line, the bytes escaped and parsed back: %s" % bad)
        audit = json.loads(subprocess.run([sldd, "audit", "show", "--dir", d, "--json"],
                                          capture_output=True, text=True).stdout)
        t.check([e["outcome"] for e in audit if e["action"] == "config"] == ["ok", "failed"],
                "the failed reload is in the audit log")
        st = json.loads(subprocess.run([sldd, "status", "--dir", d, "--json"],
                                       capture_output=True, text=True).stdout)
        t.check(st["running"] and st["privacy_policy"] == "require",
                "the node still serves with the configuration it had")
        # a key that needs a restart is named
        with open(os.path.join(d, "node.conf"), "rb") as f:
            conf = f.read().replace(b'listen: a"b\\c\x01\xff\n', b"listen: 127.0.0.1:1\n")
        with open(os.path.join(d, "node.conf"), "wb") as f:
            f.write(conf)
        proc.send_signal(signal.SIGHUP)
        fed.recv_until(sock, "READY=1")
        warn = [ln for ln in log_lines(log) if "need a restart: listen" in ln["msg"]]
        t.check(len(warn) == 1 and warn[0]["level"] == "warn",
                "a changed listen address is named as needing a restart: %s" % warn)
        _, _, text = fed.admin_get(d, "/v1/metrics")
        t.check('sldd_config_reloads_total{result="ok"} 2' in text and
                'sldd_config_reloads_total{result="failed"} 1' in text, "reload counters")

        # ---- an unknown TLS client is an error, with fields
        port = json.load(open(os.path.join(d, "serve.json")))["port"]
        fed.tls_without_certificate(port)
        fed.wait_for("the refusal in the log", lambda: [
            ln for ln in log_lines(log) if ln["fields"].get("reason") == "tls-handshake"],
            timeout=10)
        ref = [ln for ln in log_lines(log) if ln["fields"].get("reason") == "tls-handshake"]
        t.check(ref[0]["level"] == "error" and ref[0]["fields"]["event"] == "refusal" and
                ref[0]["fields"]["addr"].startswith("127.0.0.1:"),
                "TLS refusal of an unknown client: level error, fields: %s" % ref[0])

        # ---- stop
        proc.send_signal(signal.SIGTERM)
        got = fed.recv_until(sock, "STOPPING=1")
        _, err = proc.communicate(timeout=60)
        t.check(proc.returncode == 0, "exit status 0 after SIGTERM (got %d), stderr: %s"
                % (proc.returncode, err.decode(errors="replace")[-4000:]))
        lines = log_lines(log)
        t.check(all(set(ln) == {"ts", "level", "node", "msg", "fields"} and
                    re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", ln["ts"]) and
                    ln["node"] == "node-s" for ln in lines),
                "every log line is a JSON object with ts, level, node, msg, fields")

        # ---- SIGTERM during the start-up (node lock taken, not yet serving): a clean
        # stop, not death by the signal's default action
        lock = os.path.join(d, "serve.lock")
        for attempt in range(3):
            proc = start(sldd, d, sock_path, log)
            fed.wait_for("the node lock", lambda: lock_held(lock) or proc.poll() is not None,
                         timeout=20, every=0.001)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            rc = proc.returncode
            t.check(rc == 0, "SIGTERM right after the lock was taken: exit status %d, stderr: %s"
                    % (rc, err.decode(errors="replace")[-4000:]))
        proc = None
        while True:  # drop what that left on the notify socket
            sock.settimeout(0.2)
            try:
                sock.recv(4096)
            except socket.timeout:
                break
        sock.settimeout(None)

        # ---- WATCHDOG_PID of another process: no pings
        proc = start(sldd, d, sock_path, log, WATCHDOG_USEC="200000",
                     WATCHDOG_PID=str(os.getpid()))
        fed.recv_until(sock, "READY=1")
        time.sleep(0.6)
        sock.setblocking(False)
        extra = []
        try:
            while True:
                extra.append(sock.recv(4096).decode())
        except BlockingIOError:
            pass
        sock.setblocking(True)
        t.check(not any("WATCHDOG=1" in g for g in extra),
                "no pings when WATCHDOG_PID names another process: %r" % extra)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        proc = None
        ok = t.failed == 0
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        if ok:
            fed.shutil.rmtree(root, ignore_errors=True)
        else:
            print("kept " + root)
            try:
                print(open(log).read()[-3000:])
            except OSError:
                pass


if __name__ == "__main__":
    fed.run(main)
