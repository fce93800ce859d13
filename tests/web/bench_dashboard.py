#!/usr/bin/python3
"""bench_dashboard.py - render time of the dashboard's bundle page for a
3-image 299x299 bundle (docs/benchmarks.md).  Not a CTest test: it measures,
it does not assert on time.

usage: bench_dashboard.py /path/to/sldd NPM_WORKDIR [RUNS]
NPM_WORKDIR holds puppeteer-core (web.dashboard installs it in
BUILD/tests/web/npm).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "node"))
import fed  # noqa: E402
from test_dashboard import free_port, run  # noqa: E402


def main(sldd, t):
    workdir, runs = sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 5
    fa = fed.Federation(sldd, names=("a", "b"))
    with fa.session(t):
        a = fa.nodes["a"]
        data = os.path.join(fa.root, "data-a")
        # 299x299 patches, not resized: the network input is 299x299
        a.sldd("dataset", "synth", "--out", data, "--count", "8", "--size", "1024", "--seed",
               "11", "--threads", "2", "--force")
        a.sldd("dataset", "prepare", "--data", data, "--patch", "299", "--stride", "145")
        with open(os.path.join(a.dir, "node.conf"), "a") as f:
            f.write("max-bundle-bytes: 8388608\n")  # 3 x 299 x 299 float32 is over 1 MiB
        port = free_port()
        a.serve_args = ["--dashboard", "127.0.0.1:%d" % port]
        fa.start()
        bid = a.distill(["node-b"], "--iterations 2 --eval-every 2 --checkpoint-every 2 "
                        "--real-batch 8")
        view = a.bundle(bid)
        spec = {"url": "http://127.0.0.1:%d/" % port, "bundle": bid, "runs": runs,
                "images": view["steps"] * view["images_per_step"],
                "chromium": os.environ.get("CHROMIUM") or shutil.which("chromium"),
                "keyfile": os.path.join(a.dir, "admins", "adm-a.key"), "passphrase": fed.PASS,
                "screenshot": os.environ.get("SLDD_DASH_BENCH_SHOT")}
        script = os.path.join(workdir, "bench_dashboard.mjs")
        shutil.copy(os.path.join(HERE, "bench_dashboard.mjs"), script)
        r = subprocess.run(["node", script], capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, DASH_BENCH=json.dumps(spec)))
        line = [x for x in r.stdout.splitlines() if x.startswith("BENCH ")]
        t.check(r.returncode == 0 and line, "bench ran: %s" % r.stderr[-1500:])
        if line:
            res = json.loads(line[-1][6:])
            print("bundle page, %d images of %s, %d-byte payload: median %.0f ms, "
                  "min %d ms, max %d ms over %d runs" %
                  (spec["images"], res["size"], view["payload_size"],
                   statistics.median(res["times"]), min(res["times"]), max(res["times"]),
                   len(res["times"])))
        fa.stop()


if __name__ == "__main__":
    run(main, __doc__, 2)
