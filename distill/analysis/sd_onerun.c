/*
 * sd_onerun.c - one-run membership audit statistics (see sd_onerun.h).
 */
#include "sd_onerun.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sb_rand.h"

/* log P[Binomial(r, p) = k] */
static double log_binom_pmf(int r, int k, double p)
{
    if (k < 0 || k > r)
        return -INFINITY;
    double lc = lgamma(r + 1.0) - lgamma(k + 1.0) - lgamma(r - k + 1.0);
    double a = k ? k * log(p) : 0.0, b = (r - k) ? (r - k) * log1p(-p) : 0.0;
    return lc + a + b;
}

double sd_onerun_pvalue(int m, int r, int v, double eps, double delta)
{
    if (v <= 0)
        return 1.0;
    if (v > r)
        return 0.0;
    double q = 1.0 / (1.0 + exp(-eps)); /* e^eps / (1 + e^eps) */
    double tail = 0.0;
    for (int k = v; k <= r; k++)
        tail += exp(log_binom_pmf(r, k, q));
    double p = tail;
    if (delta > 0.0) {
        /* the delta term: alpha = max_i (sum_{j=1..i} P[Bin = v - j]) / i */
        double s = 0.0, alpha = 0.0;
        for (int i = 1; i <= v; i++) {
            s += exp(log_binom_pmf(r, v - i, q));
            if (s > i * alpha)
                alpha = s / i;
        }
        p += alpha * delta * 2.0 * m;
    }
    return p < 1.0 ? p : 1.0;
}

double sd_onerun_eps_lower(int m, int r, int v, double delta, double beta)
{
    if (sd_onerun_pvalue(m, r, v, 0.0, delta) > beta)
        return 0.0;
    double lo = 0.0, hi = 50.0;
    if (sd_onerun_pvalue(m, r, v, hi, delta) <= beta)
        return hi;
    while (hi - lo > 1e-4) {
        double mid = 0.5 * (lo + hi);
        if (sd_onerun_pvalue(m, r, v, mid, delta) <= beta)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

typedef struct ranked {
    double s;
    int member;
} ranked;

static int by_score_desc(const void *a, const void *b)
{
    double x = ((const ranked *)a)->s, y = ((const ranked *)b)->s;
    return (x < y) - (x > y);
}

static ranked *rank(const int *member, const double *score, int m)
{
    ranked *r = malloc((size_t)m * sizeof *r);
    if (!r)
        return NULL;
    for (int i = 0; i < m; i++) {
        r[i].s = score[i];
        r[i].member = member[i] != 0;
    }
    qsort(r, (size_t)m, sizeof *r, by_score_desc);
    return r;
}

/* AUC and TPR at fpr on ranked (descending) scores; ties form one step. */
static void roc_stats(const ranked *r, int m, double fpr, double *auc, double *tpr)
{
    int np = 0, nn = 0;
    for (int i = 0; i < m; i++)
        r[i].member ? np++ : nn++;
    double area = 0.0, best = 0.0;
    int tp = 0, fp = 0;
    for (int i = 0; i < m;) {
        int dtp = 0, dfp = 0, j = i;
        while (j < m && r[j].s == r[i].s) {
            r[j].member ? dtp++ : dfp++;
            j++;
        }
        area += (double)dfp * (tp + 0.5 * dtp); /* pairs: a positive above this negative */
        tp += dtp;
        fp += dfp;
        if ((double)fp <= fpr * nn && (double)tp / np > best)
            best = (double)tp / np;
        i = j;
    }
    /* AUC: the share of (positive, negative) pairs ranked right, ties half */
    *auc = (np && nn) ? area / ((double)np * nn) : NAN;
    *tpr = np ? best : NAN;
}

double sd_onerun_auc(const int *member, const double *score, int m)
{
    double auc = NAN, tpr;
    ranked *r = rank(member, score, m);
    if (r)
        roc_stats(r, m, 0.01, &auc, &tpr);
    free(r);
    return auc;
}

double sd_onerun_tpr_at(const int *member, const double *score, int m, double fpr)
{
    double auc, tpr = NAN;
    ranked *r = rank(member, score, m);
    if (r)
        roc_stats(r, m, fpr, &auc, &tpr);
    free(r);
    return tpr;
}

/* Percentile bootstrap over canaries: 95 % intervals of AUC and TPR@1%. */
static int bootstrap(const int *member, const double *score, int m, int boot, uint64_t seed,
                     sd_onerun_result *o)
{
    int *bm = malloc((size_t)m * sizeof *bm);
    double *bs = malloc((size_t)m * sizeof *bs);
    double *auc = malloc((size_t)boot * sizeof *auc), *tpr = malloc((size_t)boot * sizeof *tpr);
    int n = 0, rc = SD_ENOMEM;
    if (!bm || !bs || !auc || !tpr)
        goto out;
    for (int b = 0; b < boot; b++) {
        for (int i = 0; i < m; i++) {
            int k = (int)(sb_splitmix64(&seed) % (uint64_t)m);
            bm[i] = member[k];
            bs[i] = score[k];
        }
        double a = sd_onerun_auc(bm, bs, m), t = sd_onerun_tpr_at(bm, bs, m, 0.01);
        if (isnan(a) || isnan(t))
            continue; /* a resample with one class only */
        auc[n] = a;
        tpr[n] = t;
        n++;
    }
    if (n == 0) {
        rc = SD_EINVAL;
        goto out;
    }
    qsort(auc, (size_t)n, sizeof *auc, sb_cmp_double);
    qsort(tpr, (size_t)n, sizeof *tpr, sb_cmp_double);
    o->auc_lo = auc[(int)floor(0.025 * (n - 1))];
    o->auc_hi = auc[(int)ceil(0.975 * (n - 1))];
    o->tpr1_lo = tpr[(int)floor(0.025 * (n - 1))];
    o->tpr1_hi = tpr[(int)ceil(0.975 * (n - 1))];
    rc = 0;
out:
    free(bm);
    free(bs);
    free(auc);
    free(tpr);
    return rc;
}

int sd_onerun_audit(const int *member, const double *score, int m, double delta, double beta,
                    int boot, uint64_t seed, sd_onerun_result *out, sd_error *e)
{
    static const double frac[] = {0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5};
    const int nf = (int)(sizeof frac / sizeof frac[0]);
    int np = 0;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < m; i++)
        np += member[i] != 0;
    if (m < 2 || np == 0 || np == m)
        return sd_error_set(e, SD_EINVAL,
                            "a one-run audit needs members and non-members among the canaries "
                            "(%d of %d are members)",
                            np, m);
    ranked *r = rank(member, score, m);
    if (!r)
        return sd_error_set(e, SD_ENOMEM, "out of memory");
    /* every (k_pos, k_neg) of the grid is one guess: Bonferroni over them */
    int guesses = 0;
    for (int a = 0; a < nf; a++)
        for (int b = 0; b < nf; b++) {
            int kp = (int)(frac[a] * m), kn = (int)(frac[b] * m);
            if (kp + kn > 0 && kp + kn <= m)
                guesses++;
        }
    out->eps_lower = 0.0;
    for (int a = 0; a < nf; a++)
        for (int b = 0; b < nf; b++) {
            int kp = (int)(frac[a] * m), kn = (int)(frac[b] * m), v = 0;
            if (kp + kn == 0 || kp + kn > m)
                continue;
            for (int i = 0; i < kp; i++)
                v += r[i].member;
            for (int i = m - kn; i < m; i++)
                v += !r[i].member;
            double eps = sd_onerun_eps_lower(m, kp + kn, v, delta, beta / guesses);
            if (eps > out->eps_lower || (out->k_pos == 0 && out->k_neg == 0)) {
                out->eps_lower = eps;
                out->k_pos = kp;
                out->k_neg = kn;
                out->correct = v;
            }
        }
    roc_stats(r, m, 0.01, &out->auc, &out->tpr1);
    free(r);
    out->auc_lo = out->auc_hi = out->auc;
    out->tpr1_lo = out->tpr1_hi = out->tpr1;
    if (boot > 0 && bootstrap(member, score, m, boot, seed, out))
        return sd_error_set(e, SD_ENOMEM, "bootstrap: out of memory");
    return 0;
}
