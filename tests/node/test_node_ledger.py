#!/usr/bin/python3
"""test_node_ledger.py - the privacy ledger through real daemons.

Node a has a privacy budget (node.conf max-epsilon 2.2, epsilon-delta 1e-5).
A job without differential privacy is refused at submission; a DP job of
epsilon 2 makes a bundle whose view states its epsilon, the accountant and
what is left of the budget, and it is approved (its release is spent).  A
second DP job of epsilon 2 on the same data shares every training record
with the first: composed in RDP (2.52, not 4), the two pass the budget, so the bundle is
recorded as over budget when it is made, `sldd bundle approve` refuses
with the reason and an audit entry, nothing is sealed, and the bundle stays
pending (it can still be rejected).  The DP payloads carry their accounting
and no statistic of the training data outside the mechanism.

usage: test_node_ledger.py /path/to/sldd
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fed  # noqa: E402

DP = "--dp-epsilon 2 --real-batch 16"


def main(sldd, checks):
    f = fed.Federation(sldd, names=("a", "b"),
                       conf="max-epsilon: 2.2\nepsilon-delta: 1e-5\n")
    with f.session(checks):
        f.start()
        a = f.nodes["a"]
        r = a.sldd("job", "distill", "--dir", a.dir, "--to", "node-b", "--quiet", check=False)
        checks.check(r.returncode != 0 and "privacy budget" in r.stderr
                     and "--dp-epsilon" in r.stderr,
                     "a job without DP is refused under a budget: " + r.stderr.strip())
        r = a.sldd("job", "distill", "--dir", a.dir, "--to", "node-b", "--quiet",
                   "--dp-epsilon", "4", check=False)
        checks.check(r.returncode != 0 and "whole privacy budget" in r.stderr,
                     "a job asking for more than the budget is refused: " + r.stderr.strip())

        first = a.distill(["node-b"], DP)
        job = [j for j in a.api_json("job", "list") if j["bundle"] == first]
        checks.check(job and job[0]["note"].startswith("epsilon 2.000 (delta 1e-05) after 12 "),
                     "the job states its epsilon as it runs: %s" % job)
        view = a.sldd("bundle", "show", first, "--dir", a.dir).stdout
        led = a.bundle(first)["ledger"]
        checks.check(led["dp"] == 1 and abs(led["epsilon"] - 2) < 1e-3
                     and led["prior_releases"] == 0 and not led["over_budget"]
                     and abs(led["left_epsilon"] - (2.2 - led["total_epsilon"])) < 1e-9,
                     "first release: epsilon 2, nothing spent before: %s" % led)
        checks.check("epsilon 2.000 at delta 1e-05 per training patch" in view and "rdp-sgm" in view
                     and "budget 2.200" in view and "left" in view,
                     "bundle show states epsilon, accountant and what is left:\n" + view)
        shown = a.sldd("bundle", "inspect", a.bundle(first)["payload_path"], "--type",
                       "payload").stdout
        checks.check("dp_accountant" in shown and "dp_unit" in shown and "rdp-sgm" in shown and "dp_epsilon" in shown,
                     "the payload states its accounting:\n" + shown[-1500:])
        r = a.approve(first)
        checks.check("epsilon 2 at delta 1e-05 per training patch (rdp-sgm" in r.stdout
                     and "sender metrics         none in the payload" in r.stdout,
                     "what the signature covers states epsilon, no sender metrics:\n"
                     + r.stdout[-1200:])
        checks.check(a.query("SELECT state FROM ledger WHERE bundle_id=?", first)
                     == [("spent",)], "an approved release is spent")

        second = a.distill(["node-b"], DP)
        led2 = a.bundle(second)["ledger"]
        checks.check(led2["prior_releases"] == 1 and led2["over_budget"] == 1
                     and led2["total_epsilon"] > 2.2 and led2["spent_epsilon"] > 1.99,
                     "second release: composed with the first, over the budget: %s" % led2)
        audit = a.audit()
        checks.check(any(e["action"] == "budget" and e["outcome"] == "refused"
                         and e["bundle"] == second for e in audit),
                     "the over-budget bundle is recorded as refused when it is made")
        r = a.approve(second, check=False)
        checks.check(r.returncode != 0 and "privacy budget" in (r.stdout + r.stderr)
                     and "OVER BUDGET" in (r.stdout + r.stderr),
                     "approval is refused with the reason: " + (r.stdout + r.stderr)[-400:])
        checks.check(a.bundle(second)["state"] == "pending"
                     and not a.query("SELECT 1 FROM deliveries WHERE bundle_id=?", second),
                     "nothing of the over-budget bundle is sealed or sent")
        n = sum(1 for e in a.audit() if e["action"] == "budget" and e["bundle"] == second)
        checks.check(n >= 2, "the refused approval is in the audit log too (%d entries)" % n)
        a.approve(second, reject=True)
        checks.check(a.query("SELECT state FROM ledger WHERE bundle_id=?", second)
                     == [("void",)], "a rejected release is void")
        f.stop()


if __name__ == "__main__":
    fed.run(main)
