/*
 * test_rdp.c - the privacy accountant (distill/analysis/sd_rdp.c):
 *  - against an independent oracle: numerical integration of the Rényi
 *    divergence (scripts/ref/rdp-oracle.py), relative 1e-6 at every point
 *    of the oracle file given as argv[1];
 *  - against published DP-SGD figures (the TensorFlow Privacy MNIST tutorial
 *    table, computed there with the classic conversion and its own order
 *    grid; docs/privacy.md);
 *  - closed forms and identities: q = 1 is the Gaussian mechanism, the
 *    second-order term for q -> 0, composition is linear, the tight
 *    conversion never exceeds the classic one, epsilon falls with sigma,
 *    the sigma solver hits its target.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sd_rdp.h"
#include "sd_test.h"

static int check_oracle(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int n = 0;
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        double q, sigma, alpha, want, got = NAN;
        sd_error e;
        if (line[0] == '#')
            continue;
        if (sscanf(line, "%lf %lf %lf %lf", &q, &sigma, &alpha, &want) != 4) {
            CHECKF(0, "bad oracle line: %s", line);
            continue;
        }
        int rc = sd_rdp_sgm(q, sigma, alpha, &got, &e);
        CHECKF(rc == 0, "q %g sigma %g order %g: %s", q, sigma, alpha, e.msg);
        double rel = fabs(got - want) / fabs(want);
        CHECKF(rel <= 1e-6, "q %g sigma %g order %g: accountant %.12g, oracle %.12g (rel %.2e)", q,
               sigma, alpha, got, want, rel);
        n++;
    }
    fclose(f);
    printf("oracle: %d points from %s\n", n, path);
    CHECKF(n >= 20, "only %d oracle points", n);
    return n;
}

/* The TF Privacy tutorial's order grid: 1.1 .. 10.9 by 0.1, then 12 .. 63. */
static int tf_orders(double *o)
{
    int n = 0;
    for (int x = 1; x < 100; x++)
        o[n++] = 1.0 + x / 10.0;
    for (int a = 12; a < 64; a++)
        o[n++] = a;
    return n;
}

static void check_published(void)
{
    /* MNIST, N = 60000, batch 256 (q = 256/60000), delta = 1e-5, steps =
     * ceil(epochs * N / batch): (sigma, epochs, published epsilon). */
    /* tol: the published figures have two decimals (0.005); the row at sigma
     * 0.6 is 0.13 % below what this mechanism gives at ANY order (the
     * minimum over a 0.001 order grid is 9.751; docs/privacy.md), so it is
     * held to 0.2 % instead. */
    static const struct {
        double sigma, epochs, eps, tol;
    } pub[] = {{1.12, 60, 2.92, 0.005}, {0.6, 30, 9.74, 0.002 * 9.74}, {1.2, 10, 1.20, 0.005}};
    double orders[160], rdp[160];
    int n = tf_orders(orders);
    for (size_t k = 0; k < sizeof pub / sizeof pub[0]; k++) {
        double q = 256.0 / 60000.0;
        long steps = (long)ceil(pub[k].epochs * 60000.0 / 256.0);
        sd_error e;
        int ok = 1;
        for (int i = 0; i < n; i++) {
            ok &= sd_rdp_sgm(q, pub[k].sigma, orders[i], &rdp[i], &e) == 0;
            rdp[i] *= (double)steps;
        }
        CHECK(ok);
        double classic = sd_rdp_to_epsilon_classic(orders, rdp, n, 1e-5, NULL);
        double tight = sd_rdp_to_epsilon(orders, rdp, n, 1e-5, NULL);
        printf("published sigma %.2f, %g epochs: epsilon %.2f; classic conversion %.4f, "
               "tight %.4f\n",
               pub[k].sigma, pub[k].epochs, pub[k].eps, classic, tight);
        /* published to two decimals */
        CHECKF(fabs(classic - pub[k].eps) <= pub[k].tol + 1e-9, "classic %.4f vs published %.2f",
               classic, pub[k].eps);
        CHECK(tight <= classic);
    }
}

static void check_identities(void)
{
    sd_error e;
    double r, r2;
    /* q = 1: Gaussian mechanism alpha / (2 sigma^2) */
    CHECK(sd_rdp_sgm(1.0, 2.0, 5.0, &r, &e) == 0 && fabs(r - 5.0 / 8.0) < 1e-15);
    /* q = 0: nothing is revealed */
    CHECK(sd_rdp_sgm(0.0, 1.0, 5.0, &r, &e) == 0 && r == 0.0);
    /* order 2, exactly: A_2 = 1 + q^2 (e^{1/sigma^2} - 1) */
    CHECK(sd_rdp_sgm(0.03, 1.3, 2.0, &r, &e) == 0);
    CHECK(sd_test_relerr(r, log1p(0.03 * 0.03 * expm1(1.0 / (1.3 * 1.3))), 1e-300) < 1e-13);
    /* integer order through both formulas: the fractional series at 3 +/- tiny
     * brackets the exact sum at 3 */
    double lo, hi;
    CHECK(sd_rdp_sgm(0.02, 1.0, 3.0, &r, &e) == 0);
    CHECK(sd_rdp_sgm(0.02, 1.0, 3.0 - 1e-9, &lo, &e) == 0);
    CHECK(sd_rdp_sgm(0.02, 1.0, 3.0 + 1e-9, &hi, &e) == 0);
    CHECKF(lo <= r * (1 + 1e-7) && r <= hi * (1 + 1e-7), "%.15g %.15g %.15g", lo, r, hi);
    CHECK(sd_test_relerr(lo, r, 1e-300) < 1e-6 && sd_test_relerr(hi, r, 1e-300) < 1e-6);
    /* RDP grows with the order */
    double prev = 0;
    int mono = 1;
    for (int i = 0; i < SD_RDP_NORDERS && sd_rdp_orders[i] <= 256; i++) {
        CHECK(sd_rdp_sgm(0.01, 1.0, sd_rdp_orders[i], &r, &e) == 0);
        mono &= r >= prev * (1 - 1e-12);
        prev = r;
    }
    CHECK(mono);
    /* composition is linear */
    double c1[SD_RDP_NORDERS], c2[SD_RDP_NORDERS];
    CHECK(sd_rdp_curve(0.01, 1.0, 100, c1, &e) == 0);
    CHECK(sd_rdp_curve(0.01, 1.0, 300, c2, &e) == 0);
    int lin = 1;
    for (int i = 0; i < SD_RDP_NORDERS; i++)
        lin &= fabs(c2[i] - 3 * c1[i]) <= 1e-12 * c2[i];
    CHECK(lin);
    /* epsilon falls as sigma grows; the solver lands on its target */
    double eps1, eps2, sigma;
    CHECK(sd_rdp_epsilon(0.01, 1.0, 1000, 1e-5, &eps1, NULL, &e) == 0);
    CHECK(sd_rdp_epsilon(0.01, 1.5, 1000, 1e-5, &eps2, NULL, &e) == 0);
    CHECK(eps2 < eps1);
    for (double target = 0.5; target <= 16; target *= 2) {
        CHECK(sd_rdp_solve_sigma(0.01, 1000, 1e-5, target, &sigma, &e) == 0);
        CHECK(sd_rdp_epsilon(0.01, sigma, 1000, 1e-5, &eps1, NULL, &e) == 0);
        CHECK(sd_rdp_epsilon(0.01, sigma * (1 - 1e-5), 1000, 1e-5, &eps2, NULL, &e) == 0);
        CHECKF(eps1 <= target && eps2 > target * (1 - 1e-3), "target %g: sigma %g gives %g", target,
               sigma, eps1);
    }
    /* refusals */
    CHECK(sd_rdp_sgm(0.01, 0.0, 2.0, &r, &e) == SD_EINVAL);
    CHECK(sd_rdp_sgm(1.5, 1.0, 2.0, &r, &e) == SD_EINVAL);
    CHECK(sd_rdp_sgm(0.01, 1.0, 1.0, &r, &e) == SD_EINVAL);
    CHECK(sd_rdp_sgm(0.01, 1.0, NAN, &r2, &e) == SD_EINVAL);
    CHECK(sd_rdp_epsilon(0.01, 1.0, 10, 0.0, &eps1, NULL, &e) == SD_EINVAL);
    CHECK(sd_rdp_solve_sigma(1.0, 1000000, 1e-5, 1e-6, &sigma, &e) == SD_EINVAL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_rdp ORACLE.tsv\n");
        return 2;
    }
    if (check_oracle(argv[1]) < 0)
        return 1;
    check_published();
    check_identities();
    return sd_test_finish();
}
