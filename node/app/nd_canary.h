/*
 * nd_canary.h - the data side of a one-run membership audit (Steinke, Nasr,
 * Jagielski 2023; statistics in sd_onerun.h): canaries, their random
 * inclusion, and the training view with the included ones appended.
 *
 * Canaries are m samples of the validation split (never trained on
 * otherwise), each given a wrong label drawn uniformly from the other
 * classes: a mislabelled sample is the most vulnerable kind, since only
 * memorising it can lower its loss.  Each canary joins the training data
 * independently with probability 1/2, drawn from the audit seed.  After one
 * distillation and the replay of theta_opt (what a receiver rebuilds), each
 * canary's score is minus its loss on its wrong label.
 */
#ifndef ND_CANARY_H
#define ND_CANARY_H

#include <stdint.h>

#include "sd_backend.h"
#include "sd_dataview.h"
#include "sd_distill.h"
#include "sd_error.h"

typedef struct nd_canaries {
    int m;
    int *member;         /* 1: trained on */
    int32_t *label;      /* the wrong label each canary carries */
    int32_t *true_label; /* its label in the data set */
    int64_t *source;     /* its index in the validation split */
    float *x;            /* m samples, host */
    int32_t *in_label;   /* labels of the included ones */
    float *in_x;         /* the included ones, host */
    sd_array_data all_arr, in_arr;
    sd_data_view all; /* every canary with its wrong label (for scoring) */
    sd_data_view included;
    /* the training view with the included canaries appended */
    const sd_data_view *base;
    sd_data_view train;
    int64_t *tmp;
    int tmp_cap;
} nd_canaries;

/* m canaries from src (the validation split), spread evenly over it; the
 * inclusion and wrong labels drawn from seed; train gets base + included. */
int nd_canaries_make(nd_canaries *c, const sd_data_view *src, const sd_data_view *base, int m,
                     uint64_t seed, sd_backend *be, sd_error *err) SD_WUR;
void nd_canaries_free(nd_canaries *c);

/* Samples idx[0..n) of v on the host (x: n * c*h*w floats, labels: n). */
int nd_view_to_host(const sd_data_view *v, sd_backend *be, const int64_t *idx, int64_t n, float *x,
                    int *labels, sd_error *err) SD_WUR;

#endif
