/*
 * sd_mia.h - the loss-threshold membership attack, reported the way an
 * auditor needs it: with a confidence interval, per class, and on the most
 * vulnerable decile, not only as one average.
 *
 * The attack guesses "member" for low loss under the released model.  Its
 * figure is the stratified Mann-Whitney AUC of sd_privacy_loss_auc (pairs
 * of a member and a non-member of the same class), 0.5 meaning no leakage,
 * with a 95 % percentile-bootstrap interval (members and non-members
 * resampled with replacement, each side on its own).
 *
 * "Most vulnerable" is chosen without looking at membership or at the
 * model: a sample's outlyingness is its Euclidean distance to the mean
 * image of its class (the mean over the pooled audit set); the decile is
 * the 10 % most outlying samples of the pool.  Outliers are what attacks
 * on distilled data recover first (docs/privacy.md).
 */
#ifndef SD_MIA_H
#define SD_MIA_H

#include <stddef.h>
#include <stdint.h>

#include "sd_error.h"

typedef struct sd_mia_figure {
    double auc, lo, hi;          /* AUC and its 95 % bootstrap interval (NaN: undefined) */
    int64_t members, nonmembers; /* samples it was computed on */
} sd_mia_figure;

/* The AUC of losses l1 (members, labels y1) against l0 (non-members), with
 * `boot` bootstrap resamples drawn from seed (0: no interval).  Only samples
 * whose keep[] is non-zero count (keep may be NULL: all). */
int sd_mia_auc(const double *l1, const int *y1, const uint8_t *keep1, int64_t n1, const double *l0,
               const int *y0, const uint8_t *keep0, int64_t n0, int boot, uint64_t seed,
               sd_mia_figure *out, sd_error *err) SD_WUR;

/* out[i] = distance of sample i (x: n rows of dim floats, label y[i] in
 * 0..K-1) to the mean of its class over all n samples. */
int sd_mia_outlyingness(const float *x, const int *y, int64_t n, size_t dim, int K, double *out,
                        sd_error *err) SD_WUR;

/* The threshold above which the top `fraction` of the values lie. */
double sd_mia_top_threshold(const double *v, int64_t n, double fraction);

#endif
