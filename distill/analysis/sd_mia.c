/*
 * sd_mia.c - the loss-threshold membership attack with intervals, per class
 * and on the most vulnerable decile (see sd_mia.h).
 */
#include "sd_mia.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sd_privacy.h"
#include "sb_rand.h"

/* the kept samples of one side, compacted */
static int64_t compact(const double *l, const int *y, const uint8_t *keep, int64_t n, double *lo,
                       int *yo)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (!keep || keep[i]) {
            lo[k] = l[i];
            yo[k++] = y[i];
        }
    return k;
}

int sd_mia_auc(const double *l1, const int *y1, const uint8_t *keep1, int64_t n1, const double *l0,
               const int *y0, const uint8_t *keep0, int64_t n0, int boot, uint64_t seed,
               sd_mia_figure *out, sd_error *err)
{
    out->auc = out->lo = out->hi = NAN;
    size_t cap = (size_t)(n1 > n0 ? n1 : n0) + 1;
    double *a1 = malloc(cap * sizeof *a1), *a0 = malloc(cap * sizeof *a0);
    double *b1 = malloc(cap * sizeof *b1), *b0 = malloc(cap * sizeof *b0);
    double *aucs = malloc(((size_t)boot + 1) * sizeof *aucs);
    int *c1 = malloc(cap * sizeof *c1), *c0 = malloc(cap * sizeof *c0);
    int *d1 = malloc(cap * sizeof *d1), *d0 = malloc(cap * sizeof *d0);
    int rc = 0;
    if (!a1 || !a0 || !b1 || !b0 || !aucs || !c1 || !c0 || !d1 || !d0) {
        rc = sd_error_set(err, SD_ENOMEM, "membership attack: out of memory");
        goto out;
    }
    int64_t m1 = compact(l1, y1, keep1, n1, a1, c1), m0 = compact(l0, y0, keep0, n0, a0, c0);
    out->members = m1;
    out->nonmembers = m0;
    if (!m1 || !m0)
        goto out;
    out->auc = sd_privacy_loss_auc(a1, c1, (size_t)m1, a0, c0, (size_t)m0);
    int got = 0;
    uint64_t s = seed;
    for (int b = 0; b < boot; b++) {
        for (int64_t i = 0; i < m1; i++) {
            int64_t j = (int64_t)(sb_splitmix64(&s) % (uint64_t)m1);
            b1[i] = a1[j];
            d1[i] = c1[j];
        }
        for (int64_t i = 0; i < m0; i++) {
            int64_t j = (int64_t)(sb_splitmix64(&s) % (uint64_t)m0);
            b0[i] = a0[j];
            d0[i] = c0[j];
        }
        double v = sd_privacy_loss_auc(b1, d1, (size_t)m1, b0, d0, (size_t)m0);
        if (isfinite(v))
            aucs[got++] = v;
    }
    if (got >= 20) {
        qsort(aucs, (size_t)got, sizeof *aucs, sb_cmp_double);
        out->lo = aucs[(int)floor(0.025 * (got - 1))];
        out->hi = aucs[(int)ceil(0.975 * (got - 1))];
    }
out:
    free(a1);
    free(a0);
    free(b1);
    free(b0);
    free(aucs);
    free(c1);
    free(c0);
    free(d1);
    free(d0);
    return rc;
}

int sd_mia_outlyingness(const float *x, const int *y, int64_t n, size_t dim, int K, double *out,
                        sd_error *err)
{
    double *mean = calloc((size_t)K * dim, sizeof *mean);
    int64_t *cnt = calloc((size_t)K, sizeof *cnt);
    if (!mean || !cnt) {
        free(mean);
        free(cnt);
        return sd_error_set(err, SD_ENOMEM, "outlyingness: out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= K) {
            free(mean);
            free(cnt);
            return sd_error_set(err, SD_EINVAL, "outlyingness: label %d out of range", y[i]);
        }
        cnt[y[i]]++;
        for (size_t d = 0; d < dim; d++)
            mean[(size_t)y[i] * dim + d] += x[(size_t)i * dim + d];
    }
    for (int k = 0; k < K; k++)
        for (size_t d = 0; d < dim && cnt[k]; d++)
            mean[(size_t)k * dim + d] /= (double)cnt[k];
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t d = 0; d < dim; d++) {
            double v = x[(size_t)i * dim + d] - mean[(size_t)y[i] * dim + d];
            s += v * v;
        }
        out[i] = sqrt(s);
    }
    free(mean);
    free(cnt);
    return 0;
}

double sd_mia_top_threshold(const double *v, int64_t n, double fraction)
{
    if (n < 1)
        return INFINITY;
    double *c = malloc((size_t)n * sizeof *c);
    if (!c)
        return INFINITY;
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, sb_cmp_double);
    int64_t k = (int64_t)floor((double)n * (1.0 - fraction));
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    double t = c[k];
    free(c);
    return t;
}
