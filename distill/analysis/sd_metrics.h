/*
 * sd_metrics.h - image-level detection metrics (paper Eqs. 10-12) and the
 * ROC curve over the threshold delta.
 *
 * Inputs are per-image pairs (r, label): r = Num(P)/(Num(N)+Num(P)) from
 * sd_detect (NaN when undetermined) and the true label (0/1).
 *
 * Undetermined images (r NaN) are never counted as correct:
 *  - at a threshold delta, an undetermined gastritis image counts as a false
 *    negative and an undetermined non-gastritis image as a false positive,
 *    so Sen and Spe keep every image in their denominators;
 *  - for the ROC curve and the AUC this is the same as ranking undetermined
 *    gastritis images below every score and undetermined non-gastritis
 *    images above every score (the worst case), so the curve still runs
 *    from (0,0) to (1,1).
 * The counts of undetermined images are reported next to the metrics.
 */
#ifndef SD_METRICS_H
#define SD_METRICS_H

#include "sd_error.h"

typedef struct sd_confusion {
    int tp, fn, tn, fp;   /* undetermined images included as fn / fp */
    int und_pos, und_neg; /* undetermined gastritis / non-gastritis images */
} sd_confusion;

/* Counts at threshold delta: predicted gastritis iff r >= delta. */
void sd_confusion_at(const double *r, const int *label, int n, double delta, sd_confusion *c);

double sd_sensitivity(const sd_confusion *c); /* TP/(TP+FN), Eq. 10; NaN if no positives */
double sd_specificity(const sd_confusion *c); /* TN/(TN+FP), Eq. 11; NaN if no negatives */
/* 2 Sen Spe / (Sen + Spe), Eq. 12; 0 when Sen + Spe = 0, NaN if either is NaN */
double sd_harmonic_mean(double sen, double spe);

typedef struct sd_roc_point {
    double fpr, tpr; /* 1 - Spe, Sen */
    double delta;    /* threshold reaching this point: predicted positive iff r >= delta
                        (+inf for the first point, -inf for the last) */
} sd_roc_point;

typedef struct sd_roc {
    int n;            /* points, from (0,0) to (1,1) in order of decreasing delta */
    sd_roc_point *pt; /* malloc'ed; free with sd_roc_free */
    double auc;       /* trapezoid rule over the points */
    int positives, negatives;
} sd_roc;

/* Needs at least one image of each label.  Tied scores give one point (the
 * trapezoid then counts a tie as half right, like the Mann-Whitney U). */
int sd_roc_compute(const double *r, const int *label, int n, sd_roc *roc, sd_error *err) SD_WUR;
void sd_roc_free(sd_roc *roc);

/* The delta that maximises HM on these images (undetermined images counted
 * as errors, as in sd_confusion_at).  Candidates are the distinct finite r
 * values: delta = r_k predicts gastritis for exactly the images with
 * r >= r_k.  Ties go to the candidate closest to 0.4 (the paper's delta),
 * then to the larger one.  *hm_out (may be NULL) gets the HM reached.
 * Needs at least one finite r. */
int sd_best_delta(const double *r, const int *label, int n, double *delta_out, double *hm_out,
                  sd_error *err) SD_WUR;

#endif
