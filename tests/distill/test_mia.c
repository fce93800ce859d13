/*
 * test_mia.c - the loss-threshold attack's reporting (sd_mia.c):
 *  - the stratified AUC of a subset (keep masks) against brute force over
 *    same-class pairs, with ties;
 *  - the bootstrap interval holds the point estimate, narrows with more
 *    samples, and its coverage of the true AUC is near 95 % on data whose
 *    AUC is known (two normal distributions, AUC = Phi(d / sqrt 2));
 *  - outlyingness is the distance to the class mean; the top-decile
 *    threshold keeps the 10 % largest values.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sd_mia.h"
#include "sd_test.h"

static uint64_t rng = 99;
static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}
static double normal(void)
{
    return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
}

/* P(member loss < non-member loss) + ties/2 over same-class kept pairs */
static double brute(const double *l1, const int *y1, const uint8_t *k1, int n1, const double *l0,
                    const int *y0, const uint8_t *k0, int n0)
{
    double u = 0, p = 0;
    for (int i = 0; i < n1; i++)
        for (int j = 0; j < n0; j++) {
            if (!k1[i] || !k0[j] || y1[i] != y0[j])
                continue;
            p++;
            u += l1[i] < l0[j] ? 1 : l1[i] == l0[j] ? 0.5 : 0;
        }
    return u / p;
}

static void test_subset_auc(void)
{
    enum { N1 = 60, N0 = 50 };
    double l1[N1], l0[N0];
    int y1[N1], y0[N0];
    uint8_t k1[N1], k0[N0];
    for (int i = 0; i < N1; i++) {
        l1[i] = floor(uniform() * 8); /* ties on purpose */
        y1[i] = i % 3;
        k1[i] = uniform() < 0.7;
    }
    for (int i = 0; i < N0; i++) {
        l0[i] = floor(uniform() * 8) + 1;
        y0[i] = i % 3;
        k0[i] = uniform() < 0.7;
    }
    sd_mia_figure f;
    sd_error e = {0, ""};
    CHECK(sd_mia_auc(l1, y1, k1, N1, l0, y0, k0, N0, 0, 1, &f, &e) == 0);
    double b = brute(l1, y1, k1, N1, l0, y0, k0, N0);
    CHECKF(fabs(f.auc - b) < 1e-12, "auc %.15f brute %.15f", f.auc, b);
    CHECK(isnan(f.lo) && isnan(f.hi)); /* no bootstrap asked */
}

static void test_coverage(void)
{
    /* members' losses N(0,1), non-members' N(d,1): AUC = Phi(d/sqrt(2)) */
    const double d = 0.5, truth = 0.5 * erfc(-d / sqrt(2.0) / sqrt(2.0));
    enum { N = 300, RUNS = 60 };
    static double l1[N], l0[N];
    static int y[N];
    int covered = 0;
    double width_small = 0, width_large = 0;
    sd_error e = {0, ""};
    for (int r = 0; r < RUNS; r++) {
        for (int i = 0; i < N; i++) {
            l1[i] = normal();
            l0[i] = d + normal();
            y[i] = 0;
        }
        sd_mia_figure f;
        CHECK(sd_mia_auc(l1, y, NULL, N, l0, y, NULL, N, 300, (uint64_t)r + 1, &f, &e) == 0);
        CHECK(f.lo <= f.auc && f.auc <= f.hi);
        covered += f.lo <= truth && truth <= f.hi;
        width_large += f.hi - f.lo;
        CHECK(sd_mia_auc(l1, y, NULL, N / 4, l0, y, NULL, N / 4, 300, (uint64_t)r + 1, &f, &e) ==
              0);
        width_small += f.hi - f.lo;
    }
    /* 95 % nominal: with 60 runs, fewer than 51 covered would be very unlikely */
    CHECKF(covered >= 51, "the interval covered the true AUC %.4f in %d of %d runs", truth, covered,
           RUNS);
    CHECKF(width_small > 1.6 * width_large, "widths %.4f (n/4) and %.4f (n)", width_small / RUNS,
           width_large / RUNS);
}

static void test_outlyingness(void)
{
    /* class 0: (0,0), (2,0) -> mean (1,0); class 1: (0,3) alone */
    const float x[] = {0, 0, 2, 0, 0, 3};
    const int y[] = {0, 0, 1};
    double o[3];
    sd_error e = {0, ""};
    CHECK(sd_mia_outlyingness(x, y, 3, 2, 2, o, &e) == 0);
    CHECK(fabs(o[0] - 1) < 1e-12 && fabs(o[1] - 1) < 1e-12 && o[2] == 0);
    const int bad[] = {0, 0, 5};
    CHECK(sd_mia_outlyingness(x, bad, 3, 2, 2, o, &e) == SD_EINVAL);
    double v[100];
    for (int i = 0; i < 100; i++)
        v[i] = (double)((i * 37) % 100);
    double t = sd_mia_top_threshold(v, 100, 0.10);
    int above = 0;
    for (int i = 0; i < 100; i++)
        above += v[i] >= t;
    CHECKF(above == 10, "%d values at or above the top-decile threshold %g", above, t);
}

int main(void)
{
    test_subset_auc();
    test_coverage();
    test_outlyingness();
    return sd_test_finish();
}
