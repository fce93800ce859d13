/* sd_metrics.c - Sen, Spe, HM, ROC and AUC (see sd_metrics.h). */
#include "sd_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void sd_confusion_at(const double *r, const int *label, int n, double delta, sd_confusion *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < n; i++) {
        int pos = label[i] != 0;
        if (isnan(r[i])) {
            if (pos) {
                c->fn++;
                c->und_pos++;
            } else {
                c->fp++;
                c->und_neg++;
            }
            continue;
        }
        int pred = r[i] >= delta;
        if (pos && pred)
            c->tp++;
        else if (pos)
            c->fn++;
        else if (pred)
            c->fp++;
        else
            c->tn++;
    }
}

double sd_sensitivity(const sd_confusion *c)
{
    return c->tp + c->fn ? (double)c->tp / (c->tp + c->fn) : NAN;
}

double sd_specificity(const sd_confusion *c)
{
    return c->tn + c->fp ? (double)c->tn / (c->tn + c->fp) : NAN;
}

double sd_harmonic_mean(double sen, double spe)
{
    if (isnan(sen) || isnan(spe))
        return NAN;
    return sen + spe > 0 ? 2 * sen * spe / (sen + spe) : 0;
}

typedef struct scored {
    double s;
    int pos;
} scored;

static int by_score_desc(const void *a, const void *b)
{
    double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x < y) - (x > y);
}

int sd_roc_compute(const double *r, const int *label, int n, sd_roc *roc, sd_error *err)
{
    memset(roc, 0, sizeof *roc);
    int P = 0, N = 0;
    for (int i = 0; i < n; i++) {
        if (label[i])
            P++;
        else
            N++;
    }
    if (P == 0 || N == 0)
        return sd_error_set(err, SD_EINVAL,
                            "ROC: need images of both labels (%d gastritis, %d non-gastritis)", P,
                            N);
    scored *v = malloc((size_t)n * sizeof *v);
    roc->pt = malloc((size_t)(n + 2) * sizeof *roc->pt);
    if (!v || !roc->pt) {
        free(v);
        sd_roc_free(roc);
        return sd_error_set(err, SD_ENOMEM, "ROC: out of memory");
    }
    /* Undetermined images get the worst possible rank for their label. */
    for (int i = 0; i < n; i++) {
        v[i].pos = label[i] != 0;
        v[i].s = !isnan(r[i]) ? r[i] : v[i].pos ? -INFINITY : INFINITY;
    }
    qsort(v, (size_t)n, sizeof *v, by_score_desc);
    int tp = 0, fp = 0, k = 0;
    roc->pt[k++] = (sd_roc_point){0, 0, INFINITY};
    for (int i = 0; i < n;) {
        double s = v[i].s;
        /* a group of tied scores moves the curve in one step */
        for (; i < n && v[i].s == s; i++) {
            if (v[i].pos)
                tp++;
            else
                fp++;
        }
        roc->pt[k++] = (sd_roc_point){(double)fp / N, (double)tp / P, s};
    }
    double auc = 0;
    for (int j = 1; j < k; j++)
        auc += (roc->pt[j].fpr - roc->pt[j - 1].fpr) * (roc->pt[j].tpr + roc->pt[j - 1].tpr) / 2;
    roc->n = k;
    roc->auc = auc;
    roc->positives = P;
    roc->negatives = N;
    free(v);
    return 0;
}

void sd_roc_free(sd_roc *roc)
{
    if (!roc)
        return;
    free(roc->pt);
    roc->pt = NULL;
    roc->n = 0;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int sd_best_delta(const double *r, const int *label, int n, double *delta_out, double *hm_out,
                  sd_error *err)
{
    double *c = malloc((size_t)(n > 0 ? n : 1) * sizeof *c);
    if (!c)
        return sd_error_set(err, SD_ENOMEM, "best delta: out of memory");
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(r[i]))
            c[m++] = r[i];
    if (m == 0) {
        free(c);
        return sd_error_set(err, SD_EINVAL, "best delta: no image with a determined r");
    }
    qsort(c, (size_t)m, sizeof *c, by_value);
    double best_d = NAN, best_hm = -1;
    for (int k = 0; k < m; k++) {
        if (k > 0 && c[k] == c[k - 1])
            continue;
        sd_confusion cf;
        sd_confusion_at(r, label, n, c[k], &cf);
        double hm = sd_harmonic_mean(sd_sensitivity(&cf), sd_specificity(&cf));
        if (isnan(hm))
            hm = 0;
        int better = hm > best_hm;
        if (!better && hm == best_hm) {
            double dn = fabs(c[k] - 0.4), db = fabs(best_d - 0.4);
            better = dn < db || (dn == db && c[k] > best_d);
        }
        if (better) {
            best_hm = hm;
            best_d = c[k];
        }
    }
    free(c);
    *delta_out = best_d;
    if (hm_out)
        *hm_out = best_hm;
    return 0;
}
