#!/usr/bin/python3
"""test_privacy_audit.py - `sldd privacy audit` end to end on Fashion-MNIST.

A tiny non-private run and a tiny DP run (epsilon 1): the command prints
and writes the one-run audit (lower bound, AUC and TPR at FPR 1 % with
intervals) and the loss-threshold attack (overall, per class, most outlying
decile); audit.json agrees with the printed figures, holds one score per
canary with about half of them members, and on the DP run the lower bound
stays below the accountant's epsilon.  Bad arguments are refused with
status 2.  Skips (77) without Debian's dataset-fashion-mnist.

usage: test_privacy_audit.py /path/to/sldd
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

FMNIST = "/usr/share/datasets/fashion-mnist"
TINY = ["--arch", "lenet", "--images-per-step", "2", "--steps", "2", "--epochs-inner", "1",
        "--iterations", "15", "--real-batch", "64", "--train-limit", "2000",
        "--canaries", "100", "--attack-samples", "500", "--quiet"]
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("CHECK failed: " + what, flush=True)


def main(sldd):
    if not os.path.isdir(FMNIST):
        print("skipped: no " + FMNIST)
        return 77
    tmp = tempfile.mkdtemp(prefix="sldd-audit-")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    try:
        for name, extra in (("plain", []), ("dp", ["--dp-epsilon", "1"])):
            out = os.path.join(tmp, name)
            r = subprocess.run([sldd, "privacy", "audit", "--data", "fashion-mnist", "--out", out]
                               + TINY + extra, capture_output=True, text=True, env=env)
            check(r.returncode == 0, "%s run exits 0: %s" % (name, r.stderr[-800:]))
            if r.returncode:
                continue
            def refuse(const):  # NaN and Infinity are not JSON
                raise ValueError("audit.json holds %s" % const)
            a = json.load(open(os.path.join(out, "audit.json")), parse_constant=refuse)
            check((a["accountant_epsilon"] is None) == (name == "plain"),
                  "%s: the accountant's epsilon is null exactly without DP" % name)
            check(len(a["canary"]) == 100, "one score per canary")
            members = sum(c["member"] for c in a["canary"])
            check(25 <= members <= 75, "about half the canaries are members (%d)" % members)
            check("%d trained on" % members in r.stdout, "the printed member count agrees")
            check(all(c["label"] != c["true_label"] for c in a["canary"]),
                  "every canary carries a wrong label")
            check(0 <= a["auc_lo"] <= a["auc"] <= a["auc_hi"] <= 1
                  and 0 <= a["tpr1_lo"] <= a["tpr1"] <= a["tpr1_hi"] <= 1,
                  "%s: canary AUC and TPR lie in their intervals" % name)
            la = a["loss_attack"]
            check(la["all"]["members"] == 500 and la["all"]["nonmembers"] == 500
                  and len(la["per_class"]) == 10
                  and 80 <= la["most_outlying_decile"]["members"]
                  + la["most_outlying_decile"]["nonmembers"] <= 120,
                  "%s: loss attack overall, per class, on the outlying tenth: %s" % (name, la))
            check(re.search(r"most outlying 10 %\s+AUC [0-9.]+ \[[0-9.]+, [0-9.]+\]", r.stdout)
                  and "class Sneaker" in r.stdout, "the attack is printed with intervals")
            m = re.search(r"lower bound ([0-9.]+)", r.stdout)
            check(m and abs(float(m.group(1)) - a["eps_lower"]) < 1e-3,
                  "the printed lower bound is the written one")
            if name == "dp":
                check(a["dp"] == 1 and abs(a["accountant_epsilon"] - 1) < 1e-3
                      and a["eps_lower"] <= a["accountant_epsilon"],
                      "DP run: lower bound %.3f below the accountant's %.3f"
                      % (a["eps_lower"], a["accountant_epsilon"]))
                check("accountant: epsilon 1.0000" in r.stdout, "the accountant is printed")
        for bad, why in ((["--canaries", "1"], "canaries"), (["--canaries", "x"], "canaries"),
                         (["--no-such-option", "1"], "unknown option")):
            r = subprocess.run([sldd, "privacy", "audit", "--data", "fashion-mnist", "--out",
                                os.path.join(tmp, "bad")] + bad, capture_output=True, text=True)
            check(r.returncode == 2 and why in r.stderr, "refused: %s -> %s" % (bad, r.stderr))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
