/*
 * sd_privacy_compare.h - how the privacy audit compares images (private to
 * sd_privacy*.c): the comparison geometry, the area reduction, the prepared
 * form the GEMM search works on, and the double-precision pair figures.
 */
#ifndef SD_PRIVACY_COMPARE_H
#define SD_PRIVACY_COMPARE_H

#include "sd_privacy.h"

#define SSIM_C1 (0.01 * 0.01)
#define SSIM_C2 (0.03 * 0.03)

/* How images of one shape are compared: area-averaged by f, then cut into
 * windows (per channel, nwy x nwx of wh x ww). */
typedef struct sd_privacy_geom {
    int c, h, w;
    int f;
    int ch, cw;
    size_t d; /* c*ch*cw compared values */
    int nwy, nwx, wh, ww;
    size_t nwin; /* c*nwy*nwx */
    size_t wa;   /* wh*ww */
    size_t dw;   /* nwin*wa */
} sd_privacy_geom;

/* Geometry of c x h x w images; reduce: area-average down to at most
 * SD_PRIVACY_MAX_SIDE per side (0: compare at full size, as sd_ssim does). */
void sd_privacy_geom_init(sd_privacy_geom *g, int c, int h, int w, int reduce);

/* Area-average one c x h x w image by g->f into dst (g->d doubles). */
void sd_privacy_reduce(const sd_privacy_geom *g, const float *src, double *dst);

/* The prepared form of one reduced image v (sd_privacy_compare.c). */
void sd_privacy_prep(const sd_privacy_geom *g, const double *v, sd_real *z, float *zn2, sd_real *s,
                     float *mu, float *var, size_t stride);

/* Normalised RMS distance and SSIM of two reduced images (g->d doubles). */
double sd_privacy_dist_pair(const double *a, const double *b, size_t d);
double sd_privacy_ssim_pair(const sd_privacy_geom *g, const double *a, const double *b);

#endif
