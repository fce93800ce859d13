#!/usr/bin/python3
"""An independent oracle for the privacy accountant (distill/analysis/sd_rdp.c).

The accountant evaluates the Renyi divergence of the Poisson-subsampled
Gaussian mechanism by series (binomial sums, erfc tails).  This script gets
the same quantity by direct numerical integration of its definition, with
nothing shared with the C code:

    A_alpha = integral over z of  phi_sigma(z) * ((1-q) + q*exp((2z-1)/(2 sigma^2)))^alpha
    eps_RDP(alpha) = log(A_alpha) / (alpha - 1)

integrated as A_alpha - 1 (expm1/log1p, so tiny divergences keep their
digits), scaled by the integrand's largest value on a grid (so large ones do
not overflow), with scipy.integrate.quad split at the integrand's kinks.

    /usr/bin/python3 scripts/ref/rdp-oracle.py tests/data/rdp_oracle.tsv

writes one line per (q, sigma, order) point: q, sigma, order, eps_RDP (17
significant digits).  tests/distill/test_rdp.c reads the file and requires
relative agreement 1e-6 at every point; CTest distill.rdp_oracle also runs
this script afresh and compares (skipped where SciPy is missing).
"""
import math
import sys

import numpy as np
from scipy import integrate

# (q, sigma, order): small and large sampling rates, noise from 0.5 to 8,
# integer and fractional orders from 1.1 to 256 - the range DP distillation
# uses (q = K/N of a real batch over a data set; sigma from the solver).
POINTS = [
    (0.01, 1.0, 2.0), (0.01, 1.0, 1.5), (0.01, 1.0, 8.0), (0.01, 1.0, 32.0),
    (0.01, 1.1, 10.5), (0.01, 4.0, 64.0), (0.001, 1.0, 2.0), (0.001, 2.0, 16.0),
    (0.0042666, 1.12, 12.0), (0.0042666, 1.12, 7.25), (0.0042666, 0.6, 4.0),
    (0.0042666, 0.6, 3.5), (0.1, 1.0, 2.0), (0.1, 1.0, 5.5), (0.1, 2.0, 20.0),
    (0.1, 0.8, 3.0), (0.25, 1.5, 6.0), (0.25, 1.5, 1.1), (0.5, 2.0, 4.0),
    (0.5, 3.0, 10.0), (0.05, 0.5, 2.0), (0.05, 0.5, 2.75), (0.02, 8.0, 256.0),
    (0.02, 8.0, 128.0), (0.9, 1.0, 3.0), (0.01, 1.0, 1.2),
]


def log_integrand(z, q, sigma, alpha):
    """(log |f(z)|, sign) of f(z) = phi_sigma(z) * ((1-q) + q e^u)^alpha - phi_sigma(z)."""
    lphi = -z * z / (2 * sigma * sigma) - math.log(sigma * math.sqrt(2 * math.pi))
    u = (2 * z - 1) / (2 * sigma * sigma)
    # g = alpha * log((1-q) + q e^u) = alpha * log1p(q * expm1(u))
    if u > 30:
        g = alpha * (u + math.log(q) + math.log1p((1 - q) * math.exp(-u) / q))
    else:
        g = alpha * math.log1p(q * math.expm1(u))
    if g == 0.0:
        return -math.inf, 0
    if g > 30:
        lm = g + math.log1p(-math.exp(-g))
    else:
        lm = math.log(abs(math.expm1(g)))
    return lphi + lm, (1 if g > 0 else -1)


def rdp(q, sigma, alpha):
    lo, hi = -12 * sigma - 1, alpha + 12 * sigma + 2
    grid = np.linspace(lo, hi, 4001)
    scale = max(log_integrand(z, q, sigma, alpha)[0] for z in grid)

    def f(z):
        lf, s = log_integrand(z, q, sigma, alpha)
        return 0.0 if s == 0 else s * math.exp(lf - scale)

    z0 = sigma * sigma * math.log(1 / q - 1) + 0.5
    cuts = sorted({lo, hi, 0.5, min(max(z0, lo), hi), min(alpha, hi), 0.0})
    total = 0.0
    for a, b in zip(cuts, cuts[1:]):
        if b > a:
            v, _ = integrate.quad(f, a, b, epsabs=0, epsrel=1e-13, limit=1000)
            total += v
    # log A = log1p(A - 1), A - 1 = total * e^scale
    if scale > 700:
        log_a = scale + math.log(total)  # A - 1 >> 1
    else:
        log_a = math.log1p(total * math.exp(scale))
    return log_a / (alpha - 1)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1], "w") as out:
        out.write("# q\tsigma\torder\teps_rdp  (scripts/ref/rdp-oracle.py: numerical integration)\n")
        for q, sigma, alpha in POINTS:
            out.write("%.17g\t%.17g\t%.17g\t%.17g\n" % (q, sigma, alpha, rdp(q, sigma, alpha)))


if __name__ == "__main__":
    main()
