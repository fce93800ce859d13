/*
 * sd_privacy_compare.c - how the privacy audit compares two images
 * (sd_privacy.h, docs/privacy.md): each image area-averaged to at most
 * SD_PRIVACY_MAX_SIDE per side, then either standardised (the normalised RMS
 * distance) or rescaled to [0,1] by its own range and cut into windows (SSIM).
 * The GEMM search of sd_privacy.c works on the prepared form made here; the
 * figures it reports are recomputed here in double on the chosen pairs.
 */
#include "sd_privacy_compare.h"

#include <math.h>
#include <stdlib.h>

void sd_privacy_geom_init(sd_privacy_geom *g, int c, int h, int w, int reduce)
{
    g->c = c;
    g->h = h;
    g->w = w;
    int side = h > w ? h : w;
    g->f = reduce && side > SD_PRIVACY_MAX_SIDE
               ? (side + SD_PRIVACY_MAX_SIDE - 1) / SD_PRIVACY_MAX_SIDE
               : 1;
    g->ch = h / g->f;
    g->cw = w / g->f;
    g->d = (size_t)c * (size_t)g->ch * (size_t)g->cw;
    g->wh = g->ch < SD_SSIM_WINDOW ? g->ch : SD_SSIM_WINDOW;
    g->ww = g->cw < SD_SSIM_WINDOW ? g->cw : SD_SSIM_WINDOW;
    g->nwy = (g->ch + SD_SSIM_WINDOW - 1) / SD_SSIM_WINDOW;
    g->nwx = (g->cw + SD_SSIM_WINDOW - 1) / SD_SSIM_WINDOW;
    g->nwin = (size_t)c * (size_t)g->nwy * (size_t)g->nwx;
    g->wa = (size_t)g->wh * (size_t)g->ww;
    g->dw = g->nwin * g->wa;
}

/* First row/column of window i of k along an axis of len values. */
static int win_start(int i, int k, int len, int win)
{
    return k > 1 ? (int)lround((double)i * (double)(len - win) / (double)(k - 1)) : 0;
}

/* Area-average one c x h x w image by g->f into dst (g->d doubles). */
void sd_privacy_reduce(const sd_privacy_geom *g, const float *src, double *dst)
{
    int f = g->f;
    double inv = 1.0 / ((double)f * (double)f);
    for (int c = 0; c < g->c; c++)
        for (int y = 0; y < g->ch; y++)
            for (int x = 0; x < g->cw; x++) {
                double s = 0;
                for (int dy = 0; dy < f; dy++) {
                    const float *row = src + ((size_t)c * g->h + (size_t)(y * f + dy)) * g->w;
                    for (int dx = 0; dx < f; dx++)
                        s += row[x * f + dx];
                }
                dst[((size_t)c * g->ch + (size_t)y) * g->cw + (size_t)x] = s * inv;
            }
}

/* mean and population standard deviation; sd is 0 for a (numerically)
 * constant image, which then standardises to all zeros */
static void moments(const double *v, size_t n, double *mean, double *sd)
{
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++)
        m += v[i];
    m /= (double)n;
    for (size_t i = 0; i < n; i++)
        s += (v[i] - m) * (v[i] - m);
    s = sqrt(s / (double)n);
    *mean = m;
    *sd = s > 1e-7 * (1 + fabs(m)) ? s : 0;
}

/* [0,1] rescale by the image's own range (0.5 for a constant image) */
static void range_of(const double *v, size_t n, double *lo, double *scale)
{
    double a = INFINITY, b = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        a = v[i] < a ? v[i] : a;
        b = v[i] > b ? v[i] : b;
    }
    *lo = a;
    *scale = b - a > 1e-12 * (1 + fabs(b)) ? 1.0 / (b - a) : 0;
}

static double rescaled(double v, double lo, double scale)
{
    return scale > 0 ? (v - lo) * scale : 0.5;
}

/* Everything the search needs of one image: z (d, standardised) and its
 * squared norm; s (dw, window-major, each window rescaled then centred) and
 * the windows' means and variances, at mu[b*stride], var[b*stride]. */
void sd_privacy_prep(const sd_privacy_geom *g, const double *v, sd_real *z, float *zn2, sd_real *s,
                     float *mu, float *var, size_t stride)
{
    double mean, sd, lo, scale, n2 = 0;
    moments(v, g->d, &mean, &sd);
    for (size_t i = 0; i < g->d; i++) {
        z[i] = sd > 0 ? (sd_real)((v[i] - mean) / sd) : 0;
        n2 += (double)z[i] * (double)z[i];
    }
    *zn2 = (float)n2;
    range_of(v, g->d, &lo, &scale);
    size_t b = 0;
    for (int c = 0; c < g->c; c++)
        for (int iy = 0; iy < g->nwy; iy++)
            for (int ix = 0; ix < g->nwx; ix++, b++) {
                int y0 = win_start(iy, g->nwy, g->ch, g->wh),
                    x0 = win_start(ix, g->nwx, g->cw, g->ww);
                sd_real *o = s + b * g->wa;
                double m = 0, q = 0;
                size_t k = 0;
                for (int y = 0; y < g->wh; y++)
                    for (int x = 0; x < g->ww; x++) {
                        double t = rescaled(
                            v[((size_t)c * g->ch + (size_t)(y0 + y)) * g->cw + (size_t)(x0 + x)],
                            lo, scale);
                        o[k++] = (sd_real)t;
                        m += t;
                    }
                m /= (double)g->wa;
                for (k = 0; k < g->wa; k++) {
                    double t = o[k] - m;
                    o[k] = (sd_real)t;
                    q += t * t;
                }
                mu[b * stride] = (float)m;
                var[b * stride] = (float)(q / (double)g->wa);
            }
}

/* Normalised RMS distance of two compared images (d doubles each). */
double sd_privacy_dist_pair(const double *a, const double *b, size_t d)
{
    double ma, sa, mb, sb, s = 0;
    moments(a, d, &ma, &sa);
    moments(b, d, &mb, &sb);
    for (size_t i = 0; i < d; i++) {
        double za = sa > 0 ? (a[i] - ma) / sa : 0, zb = sb > 0 ? (b[i] - mb) / sb : 0;
        s += (za - zb) * (za - zb);
    }
    return sqrt(s / (double)d);
}

/* SSIM of two compared images, in double (the reference for the search). */
double sd_privacy_ssim_pair(const sd_privacy_geom *g, const double *a, const double *b)
{
    double la, ka, lb, kb, total = 0, n = (double)g->wa;
    range_of(a, g->d, &la, &ka);
    range_of(b, g->d, &lb, &kb);
    for (int c = 0; c < g->c; c++)
        for (int iy = 0; iy < g->nwy; iy++)
            for (int ix = 0; ix < g->nwx; ix++) {
                int y0 = win_start(iy, g->nwy, g->ch, g->wh),
                    x0 = win_start(ix, g->nwx, g->cw, g->ww);
                size_t base = ((size_t)c * g->ch + (size_t)y0) * g->cw + (size_t)x0;
                double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
                for (int y = 0; y < g->wh; y++)
                    for (int x = 0; x < g->ww; x++) {
                        size_t i = base + (size_t)y * g->cw + (size_t)x;
                        mx += rescaled(a[i], la, ka);
                        my += rescaled(b[i], lb, kb);
                    }
                mx /= n;
                my /= n;
                for (int y = 0; y < g->wh; y++)
                    for (int x = 0; x < g->ww; x++) {
                        size_t i = base + (size_t)y * g->cw + (size_t)x;
                        double u = rescaled(a[i], la, ka) - mx, v = rescaled(b[i], lb, kb) - my;
                        sxx += u * u;
                        syy += v * v;
                        sxy += u * v;
                    }
                sxx /= n;
                syy /= n;
                sxy /= n;
                total += ((2 * mx * my + SSIM_C1) * (2 * sxy + SSIM_C2)) /
                         ((mx * mx + my * my + SSIM_C1) * (sxx + syy + SSIM_C2));
            }
    return total / (double)g->nwin;
}

static double *to_double(const float *x, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    if (d)
        for (size_t i = 0; i < n; i++)
            d[i] = x[i];
    return d;
}

double sd_privacy_distance(const float *a, const float *b, size_t n)
{
    double *da = to_double(a, n), *db = to_double(b, n), r = NAN;
    if (da && db && n)
        r = sd_privacy_dist_pair(da, db, n);
    free(da);
    free(db);
    return r;
}

double sd_ssim(const float *a, const float *b, int c, int h, int w)
{
    if (c < 1 || h < 1 || w < 1)
        return NAN;
    sd_privacy_geom g;
    sd_privacy_geom_init(&g, c, h, w, 0);
    double *da = to_double(a, g.d), *db = to_double(b, g.d), r = NAN;
    if (da && db)
        r = sd_privacy_ssim_pair(&g, da, db);
    free(da);
    free(db);
    return r;
}
