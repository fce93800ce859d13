/*
 * sd_dataview.h - data views over samples held in host memory.
 *
 * The distiller, trainer and evaluator read real data only through an
 * sd_data_view (sd_distill.h).  This module provides the simplest one: N
 * samples of C*H*W values (already normalised; e.g. an sd_imageset) with
 * integer labels, and a view of a subset of another view's samples.
 */
#ifndef SD_DATAVIEW_H
#define SD_DATAVIEW_H

#include <stdint.h>

#include "sd_distill.h"

typedef struct sd_array_data {
    const sd_real *x;      /* count * c*h*w */
    const int32_t *labels; /* count */
    int64_t count;
    int c, h, w, classes;
    sd_real *staging; /* internal: one batch gathered */
    size_t staging_cap;
} sd_array_data;

/* Make view point at arr (which must outlive it). */
void sd_data_view_array(sd_data_view *view, sd_array_data *arr);

typedef struct sd_subset_data {
    const sd_data_view *base;
    const int64_t *index; /* count entries into base */
    int64_t count;
    int64_t *scratch; /* internal */
    int scratch_cap;
} sd_subset_data;

/* A view of base restricted to index[0..count) (the arrays must outlive it). */
void sd_data_view_subset(sd_data_view *view, sd_subset_data *sub);
void sd_subset_data_free(sd_subset_data *sub);
void sd_array_data_free(sd_array_data *arr); /* frees staging only */

#endif
