#!/usr/bin/python3
"""Test accuracy against epsilon for DP distillation (docs/privacy.md).

    scripts/experiments/dp-plot.py RESULTS.txt OUT.png [--markdown]

RESULTS.txt has "seed epsilon accuracy sec_per_iter" lines (epsilon "none"
for the run without DP), as scripts/experiments/experiments-dp writes them.
Draws every seed's accuracy, the mean per epsilon, the non-private mean and
the random-real baseline of docs/experiments.md; with --markdown also prints
the table.  Needs Debian's python3-matplotlib.
"""
import statistics
import sys
from collections import defaultdict

RANDOM_REAL = 0.5246  # sldd baseline, 100 random real images (docs/experiments.md)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    runs = defaultdict(list)
    secs = defaultdict(list)
    for line in open(sys.argv[1]):
        f = line.split()
        if len(f) < 3 or not f[2]:
            continue
        runs[f[1]].append(float(f[2]))
        if len(f) > 3:
            secs[f[1]].append(float(f[3]))
    eps = sorted((e for e in runs if e != "none"), key=float)
    if "--markdown" in sys.argv:
        print("| ε (δ = 1e-5) | seeds | test accuracy, mean | min | max | s/iteration |")
        print("|---|---|---|---|---|---|")
        for e in eps + (["none"] if "none" in runs else []):
            a = runs[e]
            print("| %s | %d | %.4f | %.4f | %.4f | %.3f |"
                  % ("no DP" if e == "none" else e, len(a), statistics.mean(a), min(a), max(a),
                     statistics.mean(secs[e]) if secs[e] else float("nan")))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    xs = [float(e) for e in eps]
    for e in eps:
        ax.scatter([float(e)] * len(runs[e]), runs[e], color="#1f77b4", alpha=0.5, s=18)
    ax.plot(xs, [statistics.mean(runs[e]) for e in eps], "-o", color="#1f77b4",
            label="DP distillation, mean of seeds")
    if "none" in runs:
        ax.axhline(statistics.mean(runs["none"]), color="#2ca02c", ls="--",
                   label="no DP (mean %.3f)" % statistics.mean(runs["none"]))
    ax.axhline(RANDOM_REAL, color="#d62728", ls=":", label="100 random real images (%.3f)"
               % RANDOM_REAL)
    ax.set_xscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([e for e in eps])
    ax.set_xlabel("ε at δ = 1e-5 (whole run)")
    ax.set_ylabel("test accuracy (10,000 images)")
    ax.set_title("Fashion-MNIST, LeNet, 100 distilled images: accuracy against privacy")
    ax.set_ylim(0.4, 0.85)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
