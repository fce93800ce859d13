/*
 * test_onerun.c - one-run audit statistics (distill/analysis/sd_onerun.c):
 *  - AUC and TPR at FPR 1 % against brute force (all pairs, all thresholds),
 *    with ties;
 *  - the p-value at delta = 0 against an independent binomial tail;
 *  - validity and power on a mechanism whose epsilon is known exactly:
 *    randomised response on each canary's membership bit is eps-DP, so the
 *    audit's lower bound must stay below eps (it may exceed it with
 *    probability at most beta = 5 %) and should come near it with many
 *    canaries.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sd_onerun.h"
#include "sd_test.h"

static uint64_t rng = 12345;
static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static double brute_auc(const int *mb, const double *s, int m)
{
    double num = 0;
    long pairs = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            if (mb[i] && !mb[j]) {
                pairs++;
                num += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
            }
    return num / (double)pairs;
}

static double brute_tpr(const int *mb, const double *s, int m, double fpr)
{
    int np = 0, nn = 0;
    for (int i = 0; i < m; i++)
        mb[i] ? np++ : nn++;
    double best = 0;
    for (int t = 0; t <= m; t++) { /* threshold: score >= s[t] (t = m: nothing) */
        int tp = 0, fp = 0;
        for (int i = 0; i < m && t < m; i++)
            if (s[i] >= s[t])
                mb[i] ? tp++ : fp++;
        if (fp <= fpr * nn && (double)tp / np > best)
            best = (double)tp / np;
    }
    return best;
}

static void check_roc(void)
{
    enum { M = 300 };
    int mb[M];
    double s[M];
    for (int i = 0; i < M; i++) {
        mb[i] = uniform() < 0.5;
        s[i] = floor((uniform() + 0.3 * mb[i]) * 20) / 20; /* coarse: many ties */
    }
    double a = sd_onerun_auc(mb, s, M), b = brute_auc(mb, s, M);
    CHECKF(fabs(a - b) < 1e-12, "auc %.15g brute %.15g", a, b);
    for (double f = 0.0; f <= 0.2; f += 0.01) {
        double t = sd_onerun_tpr_at(mb, s, M, f), u = brute_tpr(mb, s, M, f);
        CHECKF(fabs(t - u) < 1e-12, "fpr %g: tpr %g brute %g", f, t, u);
    }
}

static void check_pvalue(void)
{
    /* P[Bin(r, q) >= v] by the pmf recurrence, independent of lgamma */
    int r = 60;
    for (double eps = 0.0; eps <= 3.0; eps += 0.5) {
        double q = exp(eps) / (1 + exp(eps));
        double pmf = pow(1 - q, r), tail[61];
        double cdf = 0;
        double pm[61];
        for (int k = 0; k <= r; k++) {
            pm[k] = pmf;
            pmf = pmf * (r - k) / (k + 1) * q / (1 - q);
        }
        for (int v = r; v >= 0; v--) {
            cdf += pm[v];
            tail[v] = cdf;
        }
        for (int v = 1; v <= r; v += 7) {
            double p = sd_onerun_pvalue(1000, r, v, eps, 0.0);
            CHECKF(sd_test_relerr(p, tail[v] < 1 ? tail[v] : 1, 1e-300) < 1e-9,
                   "eps %g v %d: %.12g vs %.12g", eps, v, p, tail[v]);
        }
    }
    /* a delta adds to the p-value, so it can only lower the bound */
    CHECK(sd_onerun_pvalue(1000, 100, 70, 1.0, 1e-5) >= sd_onerun_pvalue(1000, 100, 70, 1.0, 0));
    CHECK(sd_onerun_eps_lower(1000, 100, 90, 1e-5, 0.05) <=
          sd_onerun_eps_lower(1000, 100, 90, 0.0, 0.05));
    /* chance-level guessing proves nothing */
    CHECK(sd_onerun_eps_lower(1000, 100, 50, 0.0, 0.05) == 0.0);
}

/* Randomised response: canary i's score tells its membership bit truly with
 * probability e^eps / (1 + e^eps); the release is eps-DP in each bit. */
static void rr_scores(int *mb, double *s, int m, double eps)
{
    double p = exp(eps) / (1 + exp(eps));
    for (int i = 0; i < m; i++) {
        mb[i] = uniform() < 0.5;
        int said = uniform() < p ? mb[i] : !mb[i];
        s[i] = said + 0.001 * uniform(); /* break ties at random */
    }
}

static void check_validity_power(void)
{
    enum { M = 2000, RUNS = 20 };
    static int mb[M];
    static double s[M];
    sd_error e;
    for (double eps = 0.5; eps <= 4.0; eps *= 2) {
        int above = 0;
        double sum = 0;
        for (int run = 0; run < RUNS; run++) {
            sd_onerun_result r;
            rr_scores(mb, s, M, eps);
            CHECK(sd_onerun_audit(mb, s, M, 0.0, 0.05, 0, 0, &r, &e) == 0);
            above += r.eps_lower > eps;
            sum += r.eps_lower;
        }
        printf("randomised response eps %.1f: mean lower bound %.3f over %d runs, %d above eps\n",
               eps, sum / RUNS, RUNS, above);
        /* beta = 5 %: more than 3 of 20 above would be a broken bound (p < 2 %) */
        CHECKF(above <= 3, "eps %g: %d of %d lower bounds above the true epsilon", eps, above,
               RUNS);
        /* power: with 2,000 canaries the bound reaches at least 40 % of eps */
        CHECKF(sum / RUNS >= 0.4 * eps, "eps %g: mean lower bound only %g", eps, sum / RUNS);
    }
    /* intervals bracket the point estimates */
    sd_onerun_result r;
    rr_scores(mb, s, M, 1.0);
    CHECK(sd_onerun_audit(mb, s, M, 1e-5, 0.05, 200, 7, &r, &e) == 0);
    CHECK(r.auc_lo <= r.auc && r.auc <= r.auc_hi && r.auc_hi - r.auc_lo < 0.1);
    CHECK(r.tpr1_lo <= r.tpr1 && r.tpr1 <= r.tpr1_hi);
    /* refusals */
    int none[4] = {0, 0, 0, 0};
    double sc[4] = {1, 2, 3, 4};
    CHECK(sd_onerun_audit(none, sc, 4, 0, 0.05, 0, 0, &r, &e) == SD_EINVAL);
}

int main(void)
{
    check_roc();
    check_pvalue();
    check_validity_power();
    return sd_test_finish();
}
