/*
 * sd_patch_cut.c - cutting patches on the host: area-average a psize square
 * of a 16-bit image down to osize and normalise it, for a list of (y, x)
 * corners in one image, for a range of a patch index, or for any images
 * given as the flat pixel buffer and offset tables of sd_dataset_tables
 * (declared in sd_dataset.h).  The result is bit-identical to the backends'
 * patch_gather (distill/engine/cpu/sd_cpu_patch.c, gpu/sg_patch.cu).
 */
#include "sd_dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 1-D area weights in integer units of 1/osize of a source pixel: output
 * cell o covers [o*psize, (o+1)*psize) and source pixel j covers
 * [j*osize, (j+1)*osize); the weight is the length of the overlap.  Every
 * product and sum below is an integer far below 2^53, so the sums are exact
 * in double whatever their order, and
 *     out = (acc / (psize^2 * 65535) - mean) / std
 * is bit-identical to the CPU backend's patch_gather. */
typedef struct area_w {
    int osize, maxn;
    int *first, *count;
    double *wt;
} area_w;

static int area_w_init(area_w *a, int psize, int osize)
{
    a->osize = osize;
    a->maxn = psize / osize + 2;
    a->first = malloc((size_t)osize * sizeof *a->first);
    a->count = malloc((size_t)osize * sizeof *a->count);
    a->wt = malloc((size_t)osize * (size_t)a->maxn * sizeof *a->wt);
    if (!a->first || !a->count || !a->wt)
        return SD_ENOMEM;
    for (int o = 0; o < osize; o++) {
        long lo = (long)o * psize, hi = lo + psize;
        int n = 0;
        a->first[o] = (int)(lo / osize);
        for (long j = lo / osize; j * osize < hi; j++) {
            long c0 = j * osize > lo ? j * osize : lo;
            long c1 = (j + 1) * osize < hi ? (j + 1) * osize : hi;
            a->wt[o * a->maxn + n++] = (double)(c1 - c0);
        }
        a->count[o] = n;
    }
    return 0;
}

static void area_w_free(area_w *a)
{
    free(a->first);
    free(a->count);
    free(a->wt);
}

/* One patch: src points at its top-left pixel in an image of row stride w. */
static void cut_one(const uint16_t *src, int w, int psize, int osize, const area_w *a,
                    double *rowtmp, double mean, double std, sd_real *out)
{
    const double norm = 1.0 / ((double)psize * psize * 65535.0);
    if (osize == psize) {
        /* every weight is psize: acc = psize^2 * v */
        const double pp = (double)psize * psize;
        for (int y = 0; y < psize; y++)
            for (int x = 0; x < psize; x++)
                out[y * psize + x] = (sd_real)((pp * src[(size_t)y * w + x] * norm - mean) / std);
        return;
    }
    /* horizontal pass: rowtmp[y][ox] for every source row of the patch */
    for (int y = 0; y < psize; y++) {
        const uint16_t *r = src + (size_t)y * w;
        for (int o = 0; o < osize; o++) {
            const double *wt = a->wt + o * a->maxn;
            const uint16_t *p = r + a->first[o];
            double acc = 0;
            for (int k = 0; k < a->count[o]; k++)
                acc += wt[k] * p[k];
            rowtmp[(size_t)y * osize + o] = acc;
        }
    }
    /* vertical pass */
    for (int oy = 0; oy < osize; oy++) {
        const double *wt = a->wt + oy * a->maxn;
        int y0 = a->first[oy], n = a->count[oy];
        for (int ox = 0; ox < osize; ox++) {
            double acc = 0;
            for (int k = 0; k < n; k++)
                acc += wt[k] * rowtmp[(size_t)(y0 + k) * osize + ox];
            out[oy * osize + ox] = (sd_real)((acc * norm - mean) / std);
        }
    }
}

static int cut_check(int n, int psize, int osize, double std, sd_error *err)
{
    if (n < 0 || psize < 1 || osize < 1 || osize > psize)
        return sd_error_set(err, SD_EINVAL,
                            "patch cut: need 1 <= osize (%d) <= psize (%d) and n >= 0", osize,
                            psize);
    if (!(std > 0) || !isfinite(std))
        return sd_error_set(err, SD_EINVAL, "patch cut: std %g must be positive", std);
    return 0;
}

/* The scratch of one cutting call: the area weights and one patch reduced
 * along x (psize rows of osize). */
typedef struct cutter {
    area_w a;
    double *tmp;
    size_t osz; /* values per output patch */
} cutter;

static void cutter_free(cutter *c)
{
    free(c->tmp);
    area_w_free(&c->a);
}

static int cutter_init(cutter *c, int psize, int osize, sd_error *err)
{
    memset(c, 0, sizeof *c);
    c->osz = (size_t)osize * (size_t)osize;
    c->tmp = malloc((size_t)psize * (size_t)osize * sizeof *c->tmp);
    if (!c->tmp || area_w_init(&c->a, psize, osize)) {
        cutter_free(c);
        return sd_error_set(err, SD_ENOMEM, "patch cut: out of memory");
    }
    return 0;
}

int sd_patch_cut(const uint16_t *pix, const int64_t *img_off, const int32_t *img_w,
                 const int32_t *idx, int n, int psize, int osize, double mean, double std,
                 sd_real *out, sd_error *err)
{
    cutter c;
    int rc = cut_check(n, psize, osize, std, err);
    if (rc || n == 0 || (rc = cutter_init(&c, psize, osize, err)))
        return rc;
    for (int k = 0; k < n; k++) {
        int im = idx[3 * k], y = idx[3 * k + 1], x = idx[3 * k + 2];
        const uint16_t *src = pix + img_off[im] + (int64_t)y * img_w[im] + x;
        cut_one(src, img_w[im], psize, osize, &c.a, c.tmp, mean, std, out + k * c.osz);
    }
    cutter_free(&c);
    return 0;
}

int sd_patch_cut_index(const sd_dataset *ds, const sd_patch_index *ix, size_t first, int n,
                       int osize, sd_real *out, sd_error *err)
{
    int rc = cut_check(n, ix->psize, osize, ix->std, err);
    if (rc || n == 0)
        return rc;
    if (first + (size_t)n > ix->n)
        return sd_error_set(err, SD_EINVAL, "patch cut: patches %zu..%zu beyond the index (%zu)",
                            first, first + (size_t)n, ix->n);
    int ps = ix->psize;
    cutter c;
    if ((rc = cutter_init(&c, ps, osize, err)))
        return rc;
    for (int k = 0; k < n; k++) {
        const sd_patch *p = &ix->p[first + (size_t)k];
        const sd_dataset_image *im = &ds->img[p->img];
        if (!im->loaded || p->y < 0 || p->x < 0 || p->y + ps > im->h || p->x + ps > im->w) {
            cutter_free(&c);
            return sd_error_set(err, SD_EINVAL, "patch cut: patch %zu does not fit image %s",
                                first + (size_t)k, im->id);
        }
        const uint16_t *src = ds->pix + im->off + (int64_t)p->y * im->w + p->x;
        cut_one(src, im->w, ps, osize, &c.a, c.tmp, ix->mean, ix->std, out + k * c.osz);
    }
    cutter_free(&c);
    return 0;
}

int sd_patch_cut_image(const uint16_t *pix, int w, int h, const int32_t *ys, const int32_t *xs,
                       int n, int psize, int osize, double mean, double std, sd_real *out,
                       sd_error *err)
{
    cutter c;
    int rc = cut_check(n, psize, osize, std, err);
    if (rc || n == 0 || (rc = cutter_init(&c, psize, osize, err)))
        return rc;
    for (int k = 0; k < n; k++) {
        if (ys[k] < 0 || xs[k] < 0 || ys[k] + psize > h || xs[k] + psize > w) {
            cutter_free(&c);
            return sd_error_set(err, SD_EINVAL,
                                "patch cut: window at (%d,%d) of size %d outside a %dx%d image",
                                xs[k], ys[k], psize, w, h);
        }
        cut_one(pix + (size_t)ys[k] * w + xs[k], w, psize, osize, &c.a, c.tmp, mean, std,
                out + k * c.osz);
    }
    cutter_free(&c);
    return 0;
}
