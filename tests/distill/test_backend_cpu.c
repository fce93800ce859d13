/*
 * test_backend_cpu.c - unit checks of the CPU backend's primitives, built
 * twice: against sldd_distill (float32) and sldd_distill64 (float64).
 *
 *  - every convolution path (im2col, batched im2col, 1x1 GEMM, shift, and
 *    oneDNN's where the float32 build has it; im2col
 *    also in blocks of output rows under a small buffer bound) against
 *    a naive convolution computed here in double: forward (beta 0 and 1),
 *    backward-data and backward-filter (both accumulate), so the float build
 *    checks float-vs-double agreement and both builds check that the paths
 *    agree with each other;
 *  - the dnnl path: built exactly when CMake found oneDNN, and on a sharded
 *    call the same bits with 1 and 2 pool threads and whatever OpenMP thread
 *    count the callers set;
 *  - patch_gather's area averaging on hand-computed examples;
 *  - Adam against a hand computation;
 *  - max-pool tie-breaking (first maximum in row-major order, padding never
 *    wins, clipped ceil_mode windows), average-pool divisors, adaptive windows;
 *  - batch-norm statistics (biased variance, eps inside the square root),
 *    and the batch-mode ops split over two shards against the whole batch;
 *  - a numerically extreme soft cross-entropy, GEMM shape checks, the
 *    backend registry and the dropout mask.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sd_test.h"
#include "sd_backend.h"
#include "sd_backend_cpu.h"
#include "sd_init.h"
#include "sd_layer.h"

#ifdef SD_REAL_DOUBLE
/* sums of at most a few thousand products: double rounding stays ~1e-14 */
#define TOL 1e-12
#else
/* float32: relative rounding 6e-8 per operation, sums of up to ~1000 terms */
#define TOL 2e-5
#endif

static uint64_t rs = 0x1234567ULL;

static double urand(void)
{
    uint64_t z = (rs += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static sd_real *rvec(size_t n, double lo, double hi)
{
    sd_real *p = malloc((n ? n : 1) * sizeof(sd_real));
    for (size_t i = 0; i < n; i++)
        p[i] = (sd_real)(lo + (hi - lo) * urand());
    return p;
}

/* max |a - ref| / max |ref| */
static double relerr(const sd_real *a, const double *ref, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - ref[i]));
        m = fmax(m, fabs(ref[i]));
    }
    return d / (m > 0 ? m : 1);
}

/* ---------------------------------------------------------------- convolution */

static void naive_conv(const sd_conv_desc *d, const sd_real *x, const sd_real *w, double *y)
{
    for (int n = 0; n < d->n; n++)
        for (int k = 0; k < d->k; k++)
            for (int oy = 0; oy < d->oh; oy++)
                for (int ox = 0; ox < d->ow; ox++) {
                    double s = 0;
                    for (int c = 0; c < d->c; c++)
                        for (int i = 0; i < d->r; i++)
                            for (int j = 0; j < d->s; j++) {
                                int iy = oy * d->stride - d->pad + i;
                                int ix = ox * d->stride - d->pad + j;
                                if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w)
                                    continue;
                                s += (double)x[(((size_t)n * d->c + c) * d->h + iy) * d->w + ix] *
                                     w[(((size_t)k * d->c + c) * d->r + i) * d->s + j];
                            }
                    y[(((size_t)n * d->k + k) * d->oh + oy) * d->ow + ox] = s;
                }
}

/* gx = J' gy and gw = correlation, from the same loops */
static void naive_conv_bwd(const sd_conv_desc *d, const sd_real *x, const sd_real *w,
                           const sd_real *gy, double *gx, double *gw)
{
    size_t nx = (size_t)d->n * d->c * d->h * d->w, nw = (size_t)d->k * d->c * d->r * d->s;
    memset(gx, 0, nx * sizeof *gx);
    memset(gw, 0, nw * sizeof *gw);
    for (int n = 0; n < d->n; n++)
        for (int k = 0; k < d->k; k++)
            for (int oy = 0; oy < d->oh; oy++)
                for (int ox = 0; ox < d->ow; ox++) {
                    double g = gy[(((size_t)n * d->k + k) * d->oh + oy) * d->ow + ox];
                    for (int c = 0; c < d->c; c++)
                        for (int i = 0; i < d->r; i++)
                            for (int j = 0; j < d->s; j++) {
                                int iy = oy * d->stride - d->pad + i;
                                int ix = ox * d->stride - d->pad + j;
                                if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w)
                                    continue;
                                size_t xi = (((size_t)n * d->c + c) * d->h + iy) * d->w + ix;
                                size_t wi = (((size_t)k * d->c + c) * d->r + i) * d->s + j;
                                gx[xi] += g * w[wi];
                                gw[wi] += g * x[xi];
                            }
                }
}

static void conv_paths(sd_backend *be, sd_conv_desc d)
{
    sd_error err = {0};
    d.oh = (d.h + 2 * d.pad - d.r) / d.stride + 1;
    d.ow = (d.w + 2 * d.pad - d.s) / d.stride + 1;
    size_t nx = (size_t)d.n * d.c * d.h * d.w, nw = (size_t)d.k * d.c * d.r * d.s,
           ny = (size_t)d.n * d.k * d.oh * d.ow;
    sd_real *x = rvec(nx, -1, 1), *w = rvec(nw, -1, 1), *gy = rvec(ny, -1, 1);
    sd_real *y0 = rvec(ny, -1, 1); /* prior contents for beta = 1 / accumulation */
    sd_real *gx0 = rvec(nx, -1, 1), *gw0 = rvec(nw, -1, 1);
    double *yr = malloc(ny * sizeof *yr), *gxr = malloc(nx * sizeof *gxr),
           *gwr = malloc(nw * sizeof *gwr),
           *ref = malloc((nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw)) * sizeof *ref);
    naive_conv(&d, x, w, yr);
    naive_conv_bwd(&d, x, w, gy, gxr, gwr);
    sd_real *y = malloc(ny * sizeof *y), *gx = malloc(nx * sizeof *gx),
            *gw = malloc(nw * sizeof *gw);
    sd_real *first_y = malloc(ny * sizeof *first_y);
    int have_first = 0;
    double worst = 0;
    char ran[160] = "";
    /* every path that applies; the direct path once per kernel width (vector
     * bytes) this processor has */
    struct {
        int path, width;
    } runs[SD_CPU_CONV_PATH_COUNT + 2];
    int nrun = 0;
    for (int p = SD_CPU_CONV_IM2COL; p < SD_CPU_CONV_PATH_COUNT; p++) {
        if (!sd_cpu_conv_path_applies((sd_cpu_conv_path)p, &d))
            continue;
        if (p != SD_CPU_CONV_DIRECT) {
            runs[nrun].path = p;
            runs[nrun++].width = 0;
            continue;
        }
        for (int wb = 64; wb >= 16; wb /= 2)
            if (sd_backend_cpu_limit_direct(wb) == wb) {
                runs[nrun].path = p;
                runs[nrun++].width = wb;
            }
    }
    for (int ri = 0; ri < nrun; ri++) {
        const int p = runs[ri].path;
        char pname[32];
        sd_backend_cpu_limit_direct(runs[ri].width);
        snprintf(pname, sizeof pname, runs[ri].width ? "%s/%d" : "%s",
                 sd_cpu_conv_path_name((sd_cpu_conv_path)p), runs[ri].width);
        size_t used = strlen(ran);
        snprintf(ran + used, sizeof ran - used, " %s", pname);
        CHECK(sd_backend_cpu_set_conv_path(be, (sd_cpu_conv_path)p) == 0);
        for (int pass = SD_CPU_CONV_FWD; pass <= SD_CPU_CONV_BWD_FILTER; pass++)
            CHECK(sd_backend_cpu_conv_path(be, &d, (sd_cpu_conv_pass)pass) == (sd_cpu_conv_path)p);
        size_t wsb = be->conv_workspace(be, &d);
        void *ws = wsb ? malloc(wsb) : NULL;
        /* forward, beta = 0 over garbage, then beta = 1 over y0 */
        for (size_t i = 0; i < ny; i++)
            y[i] = (sd_real)NAN;
        CHECK(be->conv_fwd(be, &err, &d, x, w, 0, y, ws) == 0);
        double e1 = relerr(y, yr, ny);
        if (!have_first) {
            memcpy(first_y, y, ny * sizeof *y);
            have_first = 1;
        } else {
            for (size_t i = 0; i < ny; i++)
                ref[i] = first_y[i];
            double e = relerr(y, ref, ny);
            CHECKF(e <= TOL, "conv paths disagree: %s vs first path: %.2e", pname, e);
        }
        memcpy(y, y0, ny * sizeof *y);
        CHECK(be->conv_fwd(be, &err, &d, x, w, 1, y, ws) == 0);
        for (size_t i = 0; i < ny; i++)
            ref[i] = yr[i] + y0[i];
        double e2 = relerr(y, ref, ny);
        memcpy(gx, gx0, nx * sizeof *gx);
        CHECK(be->conv_bwd_data(be, &err, &d, gy, w, gx, ws) == 0);
        for (size_t i = 0; i < nx; i++)
            ref[i] = gxr[i] + gx0[i];
        double e3 = relerr(gx, ref, nx);
        memcpy(gw, gw0, nw * sizeof *gw);
        CHECK(be->conv_bwd_filter(be, &err, &d, x, gy, gw, ws) == 0);
        for (size_t i = 0; i < nw; i++)
            ref[i] = gwr[i] + gw0[i];
        double e4 = relerr(gw, ref, nw);
        double e = fmax(fmax(e1, e2), fmax(e3, e4));
        worst = fmax(worst, e);
        CHECKF(e <= TOL,
               "conv n%d c%d %dx%d k%d %dx%d s%d p%d path %s: fwd %.2e fwd+ %.2e data %.2e "
               "filter %.2e",
               d.n, d.c, d.h, d.w, d.k, d.r, d.s, d.stride, d.pad, pname, e1, e2, e3, e4);
        free(ws);
    }
    sd_backend_cpu_limit_direct(0);
    printf("conv n%d c%d %dx%d k%d %dx%d stride %d pad %d: worst rel err vs double reference "
           "%.1e (%s )\n",
           d.n, d.c, d.h, d.w, d.k, d.r, d.s, d.stride, d.pad, worst, ran);
    CHECK(sd_backend_cpu_set_conv_path(be, SD_CPU_CONV_AUTO) == 0);
    free(x), free(w), free(gy), free(y0), free(gx0), free(gw0), free(yr), free(gxr), free(gwr);
    free(ref), free(y), free(gx), free(gw), free(first_y);
}

static void test_conv(sd_backend *be)
{
    sd_error err = {0};
    /* n c h w k r s stride pad */
    static const sd_conv_desc cases[] = {
        {3, 3, 9, 7, 4, 3, 3, 1, 1, 0, 0},
        {2, 2, 11, 8, 5, 3, 3, 2, 1, 0, 0},
        {4, 6, 5, 6, 3, 1, 1, 1, 0, 0, 0},
        {2, 4, 7, 7, 3, 1, 1, 2, 0, 0, 0},
        {2, 1, 16, 13, 4, 7, 7, 2, 3, 0, 0},
        {3, 2, 6, 9, 2, 2, 3, 1, 2, 0, 0},
        /* LeNet's layers (the direct path: one output channel, and 6 of 16
         * in blocks; conv2's filter gradient with output channels across
         * the lanes), and a map wider than two vectors with padding 1 of 5
         * and a 5x3 kernel (partial row, channel and tap blocks) */
        {3, 1, 28, 28, 6, 5, 5, 1, 2, 0, 0},
        {2, 6, 14, 14, 16, 5, 5, 1, 0, 0, 0},
        {2, 2, 11, 37, 7, 5, 3, 1, 1, 0, 0},
        /* the direct filter gradient with output channels across the
         * lanes, the last block of them partial */
        {3, 3, 7, 7, 30, 3, 3, 1, 1, 0, 0},
        /* large maps: the batched path splits n = 5 into chunks (4 + 1) */
        {5, 2, 24, 24, 3, 3, 3, 1, 1, 0, 0},
        /* channel counts off oneDNN's blocks of 8 and 16 (padded blocked
         * layouts) */
        {3, 20, 9, 11, 24, 3, 3, 2, 1, 0, 0},
        /* 32x32 with 16 channels: every path at a realistic size */
        {2, 16, 32, 32, 16, 3, 3, 1, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        conv_paths(be, cases[i]);

    /* a tiny im2col bound: per-sample im2col runs in blocks of output rows
     * (one row per block here) and the batched path degenerates to single
     * samples; the answers must not change */
    CHECK(sd_backend_cpu_set_col_cap(be, 64) == 0);
    conv_paths(be,
               (sd_conv_desc){
                   .n = 2, .c = 3, .h = 9, .w = 7, .k = 4, .r = 3, .s = 3, .stride = 1, .pad = 1});
    CHECK(sd_backend_cpu_set_col_cap(be, 300) == 0); /* blocks of 4 rows: 6 = 4 + 2 */
    conv_paths(be,
               (sd_conv_desc){
                   .n = 2, .c = 2, .h = 11, .w = 8, .k = 5, .r = 3, .s = 3, .stride = 2, .pad = 1});
    CHECK(sd_backend_cpu_set_col_cap(be, 0) == 0);

    /* a bad geometry is refused with a message */
    sd_conv_desc bad = {.n = 1,
                        .c = 1,
                        .h = 4,
                        .w = 4,
                        .k = 1,
                        .r = 3,
                        .s = 3,
                        .stride = 1,
                        .pad = 0,
                        .oh = 3,
                        .ow = 2};
    sd_real buf[64] = {0};
    CHECK(be->conv_fwd(be, &err, &bad, buf, buf, 0, buf, buf) == SD_EINVAL);
    CHECK(strstr(err.msg, "geometry") != NULL);
}

/* ---------------------------------------------------------------- the dnnl path */

/* Whether the build has the oneDNN path exactly when CMake said it would
 * (SLDD_TEST_HAVE_DNNL), so that a build that lost it does not pass by
 * skipping it; the float64 engine never has it. */
static void test_dnnl_built(void)
{
#if defined(SLDD_TEST_HAVE_DNNL) && !defined(SD_REAL_DOUBLE)
    const int want = 1;
#else
    const int want = 0;
#endif
    sd_conv_desc d = {1, 1, 3, 3, 1, 3, 3, 1, 1, 3, 3};
    CHECKF(sd_backend_cpu_has_dnnl() == want, "dnnl path built: %d, expected %d",
           sd_backend_cpu_has_dnnl(), want);
    CHECK(sd_cpu_conv_path_applies(SD_CPU_CONV_DNNL, &d) == want);
    CHECK(strcmp(sd_cpu_conv_path_name(SD_CPU_CONV_DNNL), "dnnl") == 0);
    if (!want)
        return;
    /* its workspace, sized for the largest batch, serves every smaller one */
    sd_backend *be = NULL;
    sd_error err = {0};
    CHECK(sd_backend_cpu_create(&be, 1, &err) == 0);
    CHECK(be && sd_backend_cpu_set_conv_path(be, SD_CPU_CONV_DNNL) == 0);
    size_t prev = 0;
    for (int n = 1; be && n <= 9; n++) {
        sd_conv_desc s = {n, 3, 11, 9, 20, 3, 3, 2, 1, 6, 5};
        size_t ws = be->conv_workspace(be, &s);
        CHECKF(ws > prev, "dnnl workspace not increasing at n=%d: %zu <= %zu", n, ws, prev);
        prev = ws;
    }
    sd_backend_destroy(be);
}

#if defined(SLDD_TEST_HAVE_DNNL) && !defined(SD_REAL_DOUBLE)
#include <omp.h>

enum { SH_P = 3, SH_N = 7 };

/* The executor's use: a batch of SH_N cut into SH_P shards, each shard's
 * three passes one task of be->parallel (its own workspace and weight
 * gradient). */
typedef struct shard_job {
    sd_backend *be;
    sd_conv_desc d;
    const sd_real *x, *w, *gy;
    sd_real *y, *gx, *gw[SH_P];
    void *ws[SH_P];
    sd_error err[SH_P];
    int omp; /* the OpenMP thread count each task sets before its calls */
} shard_job;

static int shard_task(void *arg, int t)
{
    shard_job *j = arg;
    int lo = t * SH_N / SH_P, hi = (t + 1) * SH_N / SH_P;
    sd_conv_desc d = j->d;
    d.n = hi - lo;
    size_t chw = (size_t)d.c * d.h * d.w, kohw = (size_t)d.k * d.oh * d.ow;
    omp_set_num_threads(j->omp); /* what a caller's OpenMP setting may be */
    int rc = j->be->conv_fwd(j->be, &j->err[t], &d, j->x + lo * chw, j->w, 0, j->y + lo * kohw,
                             j->ws[t]);
    omp_set_num_threads(j->omp);
    if (!rc)
        rc = j->be->conv_bwd_data(j->be, &j->err[t], &d, j->gy + lo * kohw, j->w, j->gx + lo * chw,
                                  j->ws[t]);
    omp_set_num_threads(j->omp);
    if (!rc)
        rc = j->be->conv_bwd_filter(j->be, &j->err[t], &d, j->x + lo * chw, j->gy + lo * kohw,
                                    j->gw[t], j->ws[t]);
    return rc;
}

/* The sharded passes on be with its dnnl path, callers' OpenMP threads omp;
 * the outputs' bytes into out (y, gx, every shard's gw). */
static void dnnl_sharded(sd_backend *be, const sd_conv_desc *d, const sd_real *x, const sd_real *w,
                         const sd_real *gy, int omp, sd_real *out)
{
    size_t ny = (size_t)SH_N * d->k * d->oh * d->ow, nx = (size_t)SH_N * d->c * d->h * d->w,
           nw = (size_t)d->k * d->c * d->r * d->s;
    shard_job j = {.be = be, .d = *d, .x = x, .w = w, .gy = gy, .omp = omp};
    j.y = out, j.gx = out + ny;
    memset(out, 0, (ny + nx + SH_P * nw) * sizeof *out);
    CHECK(sd_backend_cpu_set_conv_path(be, SD_CPU_CONV_DNNL) == 0);
    for (int t = 0; t < SH_P; t++) {
        sd_conv_desc sd = *d;
        sd.n = (t + 1) * SH_N / SH_P - t * SH_N / SH_P;
        j.gw[t] = out + ny + nx + (size_t)t * nw;
        j.ws[t] = malloc(be->conv_workspace(be, &sd));
    }
    CHECK(be->parallel(be, SH_P, shard_task, &j) == 0);
    for (int t = 0; t < SH_P; t++) {
        CHECKF(j.err[t].msg[0] == 0, "shard %d: %s", t, j.err[t].msg);
        free(j.ws[t]);
    }
    CHECK(sd_backend_cpu_set_conv_path(be, SD_CPU_CONV_AUTO) == 0);
}

/* The dnnl path's bits depend neither on the pool's thread count (1 or 2)
 * nor on the OpenMP thread count its callers set (1 or 4): each call runs
 * on its caller's thread alone.  oneDNN's own threading would split the
 * weight gradient's reduction and change its bits. */
static void test_dnnl_threads(void)
{
    sd_conv_desc d = {SH_N, 16, 12, 12, 32, 3, 3, 1, 1, 12, 12};
    size_t nx = (size_t)SH_N * d.c * d.h * d.w, nw = (size_t)d.k * d.c * d.r * d.s,
           ny = (size_t)SH_N * d.k * d.oh * d.ow, nout = ny + nx + SH_P * nw;
    sd_real *x = rvec(nx, -1, 1), *w = rvec(nw, -1, 1), *gy = rvec(ny, -1, 1);
    sd_real *out[3] = {malloc(nout * sizeof(sd_real)), malloc(nout * sizeof(sd_real)),
                       malloc(nout * sizeof(sd_real))};
    /* a backend each: oneDNN fixes a primitive's threads when it is created
     * (on first use, into the backend's cache) */
    sd_backend *be[3] = {NULL, NULL, NULL};
    sd_error err = {0};
    CHECK(sd_backend_cpu_create(&be[0], 1, &err) == 0);
    CHECK(sd_backend_cpu_create(&be[1], 2, &err) == 0);
    CHECK(sd_backend_cpu_create(&be[2], 2, &err) == 0);
    if (be[0] && be[1] && be[2]) {
        dnnl_sharded(be[0], &d, x, w, gy, 1, out[0]);
        dnnl_sharded(be[1], &d, x, w, gy, 1, out[1]);
        dnnl_sharded(be[2], &d, x, w, gy, 4, out[2]);
        CHECKF(memcmp(out[0], out[1], nout * sizeof(sd_real)) == 0,
               "dnnl: bits differ between 1 and 2 pool threads");
        CHECKF(memcmp(out[0], out[2], nout * sizeof(sd_real)) == 0,
               "dnnl: bits depend on the callers' OpenMP thread count");
    }
    for (int i = 0; i < 3; i++)
        sd_backend_destroy(be[i]);
    free(x), free(w), free(gy), free(out[0]), free(out[1]), free(out[2]);
}
#else
static void test_dnnl_threads(void)
{
    printf("dnnl thread checks: no oneDNN path in this build\n");
}
#endif

/* ---------------------------------------------------------------- patch gather */

static void test_patch_gather(sd_backend *be)
{
    sd_error err = {0};
    /* two images: 5 wide x 4 high with v(y,x) = 1000*(5y + x), and 4x4 */
    uint16_t pix[20 + 16];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 5; x++)
            pix[y * 5 + x] = (uint16_t)(1000 * (5 * y + x));
    for (int i = 0; i < 16; i++)
        pix[20 + i] = (uint16_t)(i * 4096);
    int64_t off[2] = {0, 20};
    int32_t wid[2] = {5, 4};
    const double mean = 0.1, sd = 0.2;
#define NORM(v) (((v) / 65535.0 - mean) / sd)

    /* 3x3 window at (y 1, x 1) down to 2x2: each output pixel covers 1.5 input
     * pixels per axis (weights 1, 0.5 | 0.5, 1), divided by 2.25:
     *  (0,0) = (6000 + .5*7000 + .5*11000 + .25*12000)/2.25 = 8000
     *  (0,1) = (.5*7000 + 8000 + .25*12000 + .5*13000)/2.25 = 9333.33..
     *  (1,0) = (.5*11000 + .25*12000 + 16000 + .5*17000)/2.25 = 14666.66..
     *  (1,1) = (.25*12000 + .5*13000 + .5*17000 + 18000)/2.25 = 16000 */
    int32_t idx[3] = {0, 1, 1};
    sd_real out[4];
    CHECK(be->patch_gather(be, &err, pix, off, wid, idx, 1, 3, 2, mean, sd, out) == 0);
    double want[4] = {8000, 21000 / 2.25, 33000 / 2.25, 16000};
    for (int i = 0; i < 4; i++)
        CHECKF(fabs(out[i] - NORM(want[i])) <= 1e-6 * fabs(NORM(want[i])) + 1e-6,
               "patch_gather 3->2 [%d]: %.9g, want %.9g", i, (double)out[i], NORM(want[i]));

    /* 4x4 image 2 down to 2x2: plain 2x2 block means */
    int32_t idx2[3] = {1, 0, 0};
    CHECK(be->patch_gather(be, &err, pix, off, wid, idx2, 1, 4, 2, mean, sd, out) == 0);
    double blk[4] = {(0 + 1 + 4 + 5) * 4096 / 4.0, (2 + 3 + 6 + 7) * 4096 / 4.0,
                     (8 + 9 + 12 + 13) * 4096 / 4.0, (10 + 11 + 14 + 15) * 4096 / 4.0};
    for (int i = 0; i < 4; i++)
        CHECKF(fabs(out[i] - NORM(blk[i])) <= 1e-6 * fabs(NORM(blk[i])) + 1e-6,
               "patch_gather 4->2 [%d]", i);

    /* osize == psize: a plain normalised copy; two patches in one call */
    int32_t idx3[6] = {0, 2, 3, 1, 1, 2};
    sd_real o2[8];
    CHECK(be->patch_gather(be, &err, pix, off, wid, idx3, 2, 2, 2, mean, sd, o2) == 0);
    double cp[8] = {13000, 14000, 18000, 19000, 6 * 4096, 7 * 4096, 10 * 4096, 11 * 4096};
    for (int i = 0; i < 8; i++)
        CHECKF(fabs(o2[i] - NORM(cp[i])) <= 1e-6 * fabs(NORM(cp[i])) + 1e-6,
               "patch_gather copy [%d]", i);

    /* a window sticking out of its image is refused */
    int32_t bad[3] = {0, 0, 3};
    CHECK(be->patch_gather(be, &err, pix, off, wid, bad, 1, 3, 2, mean, sd, out) == SD_EINVAL);
#undef NORM
}

/* ---------------------------------------------------------------- adam */

static void test_adam(sd_backend *be)
{
    sd_error err = {0};
    sd_real p[2] = {1, -2}, g[2] = {0.5f, 2}, m[2] = {0, 0}, v[2] = {0, 0};
    const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    CHECK(be->adam(be, &err, 2, p, g, m, v, lr, b1, b2, eps, 1) == 0);
    /* t = 1: m = 0.05, v = 0.00025, mhat = 0.5, vhat = 0.25,
     * p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.900000002 (to 1e-9) */
    const double ptol = sizeof(sd_real) == sizeof(double) ? 1e-12 : 1e-7;
    CHECKF(fabs(p[0] - 0.900000002) < ptol, "adam t=1: %.12f", (double)p[0]);
    CHECK(fabs(m[0] - 0.05) < 1e-8 && fabs(v[0] - 0.00025) < 1e-10);
    /* element 2: mhat = 2, vhat = 4, p = -2 - 0.1 * 2 / (2 + 1e-8) */
    CHECK(fabs(p[1] - (-2 - 0.2 / (2 + 1e-8))) < ptol * 2);
    /* t = 2 with g = -0.25 on element 1, by the textbook formulas */
    sd_real g2[2] = {-0.25f, 0};
    double pe = p[0], me = 0.9 * 0.05 + 0.1 * -0.25, ve = 0.999 * 0.00025 + 0.001 * 0.0625;
    double mh = me / (1 - 0.81), vh = ve / (1 - 0.999 * 0.999);
    pe -= lr * mh / (sqrt(vh) + eps);
    CHECK(be->adam(be, &err, 2, p, g2, m, v, lr, b1, b2, eps, 2) == 0);
    CHECKF(fabs(p[0] - pe) < 1e-6, "adam t=2: %.9f want %.9f", (double)p[0], pe);
    CHECK(fabs(m[0] - 0.02) < 1e-8);
    CHECK(be->adam(be, &err, 2, p, g2, m, v, lr, b1, b2, eps, 0) == SD_EINVAL);
}

/* ---------------------------------------------------------------- pooling */

static sd_pool_desc pool(int h, int w, int k, int s, int p, int oh, int ow)
{
    sd_pool_desc d;
    memset(&d, 0, sizeof d);
    d.n = 1;
    d.c = 1;
    d.h = h;
    d.w = w;
    d.kh = d.kw = k;
    d.sh = d.sw = s;
    d.ph = d.pw = p;
    d.oh = oh;
    d.ow = ow;
    return d;
}

/* The argmaxes kept by maxpool_fwd give the same backward and gather as the
 * recomputing path, bit for bit: 2x2/2 (the unrolled case), 3x3/2 with
 * padding (overlapping windows), ties and a NaN included. */
static void test_pooling_kept_argmax(sd_backend *be)
{
    sd_error err = {0};
    /* h w k stride pad oh ow: the 2x2/2 fast path four outputs at a time
     * (4x4) and with a scalar tail (6x6), and the general loop (3x3/2) */
    const int shapes[3][7] = {
        {8, 8, 2, 2, 0, 4, 4}, {12, 12, 2, 2, 0, 6, 6}, {7, 7, 3, 2, 1, 4, 4}};
    for (int sh = 0; sh < 3; sh++) {
        const int *g = shapes[sh];
        sd_pool_desc d = pool(g[0], g[1], g[2], g[3], g[4], g[5], g[6]);
        d.n = 2;
        d.c = 3;
        enum { MAXIN = 2 * 3 * 12 * 12, MAXOUT = 2 * 3 * 6 * 6 };
        const int IN = 2 * 3 * g[0] * g[1], OUT = 2 * 3 * g[5] * g[6];
        sd_real x[MAXIN], dx[MAXIN], gy[MAXOUT], y0[MAXOUT], y1[MAXOUT], dy0[MAXOUT], dy1[MAXOUT];
        sd_real gx0[MAXIN] = {0}, gx1[MAXIN] = {0};
        int32_t arg[MAXOUT];
        for (int i = 0; i < IN; i++) {
            x[i] = (sd_real)((i * 7919) % 13) - 6; /* many ties */
            dx[i] = (sd_real)sd_normal(5, 0, (uint64_t)i);
        }
        /* NaNs in every position of a 2x2 window, two in one window, and
         * signed zeros tying */
        x[9] = NAN;
        x[g[1] + 2] = NAN;
        x[4 * g[1] + 5] = NAN;
        x[4 * g[1] + 4 + g[1]] = NAN;
        x[4 * g[1] + 5 + g[1]] = NAN;
        x[2 * g[1] + 6] = 0.0f;
        x[2 * g[1] + 7] = -0.0f;
        x[3 * g[1] + 6] = -6;
        x[3 * g[1] + 7] = -6;
        for (int i = 0; i < OUT; i++)
            gy[i] = (sd_real)sd_normal(6, 0, (uint64_t)i);
        CHECK(be->maxpool_fwd(be, &err, &d, x, y0, NULL) == 0);
        CHECK(be->maxpool_fwd(be, &err, &d, x, y1, arg) == 0);
        CHECK(be->maxpool_bwd(be, &err, &d, x, NULL, gy, gx0) == 0);
        CHECK(be->maxpool_bwd(be, &err, &d, x, arg, gy, gx1) == 0);
        CHECK(be->maxpool_gather(be, &err, &d, x, NULL, dx, dy0) == 0);
        CHECK(be->maxpool_gather(be, &err, &d, x, arg, dx, dy1) == 0);
        CHECK(memcmp(y0, y1, (size_t)OUT * sizeof *y0) == 0);
        CHECK(memcmp(gx0, gx1, (size_t)IN * sizeof *gx0) == 0);
        CHECK(memcmp(dy0, dy1, (size_t)OUT * sizeof *dy0) == 0);
        /* each kept argmax is the recomputed window rule's */
        for (int i = 0; i < OUT && sh < 2; i++) {
            int plane = i / (g[5] * g[6]), o = i % (g[5] * g[6]), oy = o / g[6], ox = o % g[6];
            const sd_real *xc = x + (size_t)plane * g[0] * g[1];
            int best = -1;
            for (int t = 0; t < 4; t++) {
                int a = (2 * oy + t / 2) * g[1] + 2 * ox + t % 2;
                if (best < 0 || (xc[a] > xc[best]) || (xc[a] != xc[a] && xc[best] == xc[best]))
                    best = a;
            }
            CHECKF(arg[i] == best, "2x2 argmax %d: %d, the rule says %d", i, arg[i], best);
        }
    }
}

/* The unrolled 2x2/2 average pool gives the general loop's bits: on a 9x9
 * plane, 4x4 outputs take the unrolled path and 5x5 (last windows clipped)
 * the general one, whose first 4x4 windows are the same. */
/* The bias gradient sums several channels side by side; each channel's sum
 * must still be the plain one: in double, samples then positions, added to
 * gb once (same bits), for every channel count the grouping splits (8, 4,
 * 2, 1 and their mixes). */
static void test_bias_bwd(sd_backend *be)
{
    sd_error err = {0};
    enum { N = 3, HW = 7, CMAX = 23 };
    sd_real gy[N * CMAX * HW], gb[CMAX], ref[CMAX];
    for (size_t i = 0; i < sizeof gy / sizeof *gy; i++)
        gy[i] = (sd_real)sd_normal(8, 0, (uint64_t)i) * (sd_real)(1 + i % 5);
    for (int c = 1; c <= CMAX; c++) {
        for (int ch = 0; ch < c; ch++) {
            double sum = 0;
            for (int i = 0; i < N; i++)
                for (int p = 0; p < HW; p++)
                    sum += gy[((size_t)i * c + ch) * HW + p];
            gb[ch] = ref[ch] = (sd_real)(0.25 * ch);
            ref[ch] += (sd_real)sum;
        }
        CHECK(be->bias_bwd(be, &err, N, c, HW, gy, gb) == 0);
        CHECKF(memcmp(gb, ref, (size_t)c * sizeof *gb) == 0, "bias_bwd, %d channels", c);
    }
}

static void test_avgpool_2x2(sd_backend *be)
{
    sd_error err = {0};
    sd_pool_desc f = pool(9, 9, 2, 2, 0, 4, 4), g = pool(9, 9, 2, 2, 0, 5, 5);
    f.n = g.n = 2;
    f.c = g.c = 3;
    enum { IN = 2 * 3 * 81 };
    sd_real x[IN], yf[2 * 3 * 16], yg[2 * 3 * 25], gyf[2 * 3 * 16], gyg[2 * 3 * 25];
    sd_real gxf[IN] = {0}, gxg[IN] = {0};
    for (int i = 0; i < IN; i++)
        x[i] = (sd_real)sd_normal(7, 0, (uint64_t)i);
    memset(gyg, 0, sizeof gyg);
    for (int p = 0; p < 6; p++)
        for (int o = 0; o < 16; o++) {
            gyf[p * 16 + o] = (sd_real)sd_normal(8, 0, (uint64_t)(p * 16 + o));
            gyg[p * 25 + (o / 4) * 5 + o % 4] = gyf[p * 16 + o];
        }
    CHECK(be->avgpool_fwd(be, &err, &f, x, yf) == 0 && be->avgpool_fwd(be, &err, &g, x, yg) == 0);
    CHECK(be->avgpool_bwd(be, &err, &f, gyf, gxf) == 0 &&
          be->avgpool_bwd(be, &err, &g, gyg, gxg) == 0);
    int same = 1;
    for (int p = 0; p < 6; p++)
        for (int o = 0; o < 16; o++)
            same &= !memcmp(&yf[p * 16 + o], &yg[p * 25 + (o / 4) * 5 + o % 4], sizeof(sd_real));
    CHECK(same);
    CHECK(memcmp(gxf, gxg, sizeof gxf) == 0);
}

static void test_pooling(sd_backend *be)
{
    sd_error err = {0};
    /* all equal: the first cell in row-major order takes the gradient */
    sd_pool_desc d = pool(2, 2, 2, 2, 0, 1, 1);
    sd_real x[4] = {5, 5, 5, 5}, y[1], gy[1] = {1}, gx[4] = {0};
    CHECK(be->maxpool_fwd(be, &err, &d, x, y, NULL) == 0 && y[0] == 5);
    CHECK(be->maxpool_bwd(be, &err, &d, x, NULL, gy, gx) == 0);
    CHECK(gx[0] == 1 && gx[1] == 0 && gx[2] == 0 && gx[3] == 0);
    /* tie between (0,1) and (1,0): (0,1) comes first */
    sd_real x2[4] = {1, 3, 3, 2}, gx2[4] = {0}, dx2[4] = {10, 20, 30, 40}, dy2[1];
    CHECK(be->maxpool_bwd(be, &err, &d, x2, NULL, gy, gx2) == 0);
    CHECK(gx2[1] == 1 && gx2[2] == 0);
    CHECK(be->maxpool_gather(be, &err, &d, x2, NULL, dx2, dy2) == 0 && dy2[0] == 20);

    /* padding never wins: an all-negative input with pad 1 */
    sd_pool_desc dp = pool(2, 2, 3, 1, 1, 2, 2);
    sd_real xn[4] = {-4, -1, -3, -2}, yn[4];
    CHECK(be->maxpool_fwd(be, &err, &dp, xn, yn, NULL) == 0);
    CHECK(yn[0] == -1 && yn[1] == -1 && yn[2] == -1 && yn[3] == -1);

    /* ceil_mode via the layer: 5x5, k2 s2 -> 3x3, last windows clipped */
    sd_layer l;
    memset(&l, 0, sizeof l);
    l.kind = SD_LAYER_MAXPOOL;
    l.n_in = 1;
    l.in[0] = (sd_shape){1, 5, 5};
    l.kh = 2;
    l.sh = 2;
    l.ceil_mode = 1;
    CHECK(sd_layer_finish(&l, &err) == 0 && l.out.h == 3 && l.out.w == 3 && l.kw == 2 && l.sw == 2);
    sd_real x5[25], y5[9];
    for (int i = 0; i < 25; i++)
        x5[i] = (sd_real)(i % 7);
    sd_pool_desc d5 = pool(5, 5, 2, 2, 0, 3, 3);
    CHECK(be->maxpool_fwd(be, &err, &d5, x5, y5, NULL) == 0);
    CHECK(y5[8] == x5[24] && y5[2] == fmax(x5[4], x5[9]));
    /* PyTorch's rule: the last window must start inside the input or the left
     * padding.  6 wide, k3 s2 p1 ceil: 4 windows would start at 5 (inside)... */
    l.in[0] = (sd_shape){1, 6, 6};
    l.kh = l.kw = 3;
    l.sh = l.sw = 2;
    l.ph = l.pw = 1;
    CHECK(sd_layer_finish(&l, &err) == 0 && l.out.h == 4);
    /* ...while 5 wide, k2 s2 p1 ceil: a 4th window would start at 3*2-1 = 5,
     * past the input (right padding only), so there are 3, as in floor mode */
    l.in[0] = (sd_shape){1, 5, 5};
    l.kh = l.kw = 2;
    l.ph = l.pw = 1;
    CHECK(sd_layer_finish(&l, &err) == 0 && l.out.h == 3);
    l.ph = l.pw = 2; /* pad > kernel/2 is refused, as in PyTorch */
    CHECK(sd_layer_finish(&l, &err) == SD_EINVAL);

    /* average pool: 3x3 of 1..9, k3 s2 p1, include / exclude padding */
    sd_real a[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, ya[4];
    sd_pool_desc da = pool(3, 3, 3, 2, 1, 2, 2);
    da.count_include_pad = 1;
    CHECK(be->avgpool_fwd(be, &err, &da, a, ya) == 0);
    CHECK(fabs(ya[0] - 12.0 / 9) < 1e-6 && fabs(ya[3] - 28.0 / 9) < 1e-6);
    da.count_include_pad = 0;
    CHECK(be->avgpool_fwd(be, &err, &da, a, ya) == 0);
    CHECK(fabs(ya[0] - 3) < 1e-6 && fabs(ya[1] - 4) < 1e-6 && fabs(ya[3] - 7) < 1e-6);
    /* ceil_mode overhang past the padding is not counted: 3x3, k2 s2 ceil */
    sd_pool_desc dc = pool(3, 3, 2, 2, 0, 2, 2);
    dc.count_include_pad = 1;
    CHECK(be->avgpool_fwd(be, &err, &dc, a, ya) == 0);
    CHECK(fabs(ya[0] - 3) < 1e-6 && fabs(ya[1] - 4.5) < 1e-6 && fabs(ya[2] - 7.5) < 1e-6 &&
          fabs(ya[3] - 9) < 1e-6);
    /* adaptive 5 -> 3: windows [0,2) [1,4) [3,5) */
    sd_pool_desc dd;
    memset(&dd, 0, sizeof dd);
    dd.n = 1;
    dd.c = 1;
    dd.h = 5;
    dd.w = 1;
    dd.oh = 3;
    dd.ow = 1;
    dd.adaptive = 1;
    sd_real v5[5] = {1, 2, 3, 4, 5}, y3[3], g3[3] = {1, 1, 1}, gv[5] = {0};
    CHECK(be->avgpool_fwd(be, &err, &dd, v5, y3) == 0);
    CHECK(fabs(y3[0] - 1.5) < 1e-6 && fabs(y3[1] - 3) < 1e-6 && fabs(y3[2] - 4.5) < 1e-6);
    CHECK(be->avgpool_bwd(be, &err, &dd, g3, gv) == 0);
    CHECK(fabs(gv[0] - 0.5) < 1e-6 && fabs(gv[1] - (0.5 + 1.0 / 3)) < 1e-6 &&
          fabs(gv[3] - (1.0 / 3 + 0.5)) < 1e-6 && fabs(gv[4] - 0.5) < 1e-6);
}

/* ---------------------------------------------------------------- batch norm */

static void test_bn(sd_backend *be)
{
    sd_error err = {0};
    /* n=2, c=1, hw=2: x = 1,2,3,4 -> mean 2.5, biased var 1.25 */
    sd_bn_desc d = {2, 1, 2, 1e-5};
    sd_real x[4] = {1, 2, 3, 4}, g[1] = {2}, b[1] = {0.5f}, y[4], mean[1], inv[1];
    CHECK(be->bn_fwd_train(be, &err, &d, x, g, b, y, mean, inv) == 0);
    double is = 1 / sqrt(1.25 + 1e-5);
    CHECK(fabs(mean[0] - 2.5) < 1e-6);
    CHECKF(fabs(inv[0] - is) < 1e-6 * is, "invstd %.9g want %.9g", (double)inv[0], is);
    CHECK(fabs(y[0] - (2 * (1 - 2.5) * is + 0.5)) < 1e-5);
    /* frozen mode with rvar = 1.25 gives the same y */
    sd_real rm[1] = {2.5f}, rv[1] = {1.25f}, y2[4];
    CHECK(be->bn_fwd_frozen(be, &err, &d, x, g, b, rm, rv, y2) == 0);
    for (int i = 0; i < 4; i++)
        CHECK(fabs(y2[i] - y[i]) < 1e-5);
    /* NULL outputs are "not wanted" */
    sd_real gy[4] = {1, -1, 0.5f, 2}, gx[4] = {0};
    CHECK(be->bn_bwd_train(be, &err, &d, x, g, mean, inv, gy, gx, NULL, NULL) == 0);
    double s = gx[0] + gx[1] + gx[2] + gx[3]; /* the gradient sums to zero */
    CHECK(fabs(s) < 1e-5);
}

/* The four batch-mode ops split over two shards of 2 and 3 samples
 * (bn_partial, sd_bn_join, bn_apply, as the executor runs them) against the
 * whole-batch ops; the values sit far from zero (mean ~100) so that a join
 * computing the variance as a difference of large sums would show. */
static double maxdiff(const sd_real *a, const sd_real *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

static void test_bn_split(sd_backend *be)
{
    enum { N = 5, C = 3, HW = 4, E = N * C * HW };
    sd_error err = {0};
    sd_bn_desc d = {N, C, HW, 1e-5};
    sd_real x[E], dx[E], gy[E], dgy[E], g[C], bt[C], dg[C], db[C];
    for (int i = 0; i < E; i++) {
        x[i] = (sd_real)(100 + urand() - 0.5);
        dx[i] = (sd_real)(urand() - 0.5);
        gy[i] = (sd_real)(urand() - 0.5);
        dgy[i] = (sd_real)(urand() - 0.5);
    }
    for (int c = 0; c < C; c++) {
        g[c] = (sd_real)(0.5 + urand());
        bt[c] = (sd_real)(urand() - 0.5);
        dg[c] = (sd_real)(urand() - 0.5);
        db[c] = (sd_real)(urand() - 0.5);
    }
    /* whole batch */
    sd_real y[E], mean[C], inv[C], gx[E] = {0}, gg[C] = {0}, gb[C] = {0}, dy[E], dgx[E] = {0},
                                   dgg[C] = {0}, dgb[C] = {0};
    CHECK(be->bn_fwd_train(be, &err, &d, x, g, bt, y, mean, inv) == 0);
    CHECK(be->bn_bwd_train(be, &err, &d, x, g, mean, inv, gy, gx, gg, gb) == 0);
    CHECK(be->bn_fwd_tangent_train(be, &err, &d, x, dx, g, dg, db, mean, inv, dy) == 0);
    CHECK(be->bn_bwd_tangent_train(be, &err, &d, x, dx, g, dg, mean, inv, gy, dgy, dgx, dgg, dgb) ==
          0);
    /* two shards */
    sd_real sy[E], smean[2][C], sinv[2][C], sgx[E] = {0}, sgg[C] = {0}, sgb[C] = {0}, sdy[E],
                                            sdgx[E] = {0}, sdgg[C] = {0}, sdgb[C] = {0};
    const int lo[2] = {0, 2}, cnt[2] = {2, 3};
    double part[2][C * SD_BN_SUMS], sums[C * SD_BN_SUMS], count[2] = {2 * HW, 3 * HW};
    const double *parts[2] = {part[0], part[1]};
    for (int op = SD_BN_OP_FWD; op <= SD_BN_OP_BWD_TANGENT; op++) {
        sd_bn_bufs b[2];
        for (int s = 0; s < 2; s++) {
            size_t o = (size_t)lo[s] * C * HW;
            b[s] = (sd_bn_bufs){.x = x + o,
                                .dx = dx + o,
                                .gamma = g,
                                .beta = bt,
                                .dgamma = dg,
                                .dbeta = db,
                                .gy = gy + o,
                                .dgy = dgy + o,
                                .mean = smean[0],
                                .invstd = sinv[0],
                                .mean_out = smean[s],
                                .invstd_out = sinv[s],
                                .y = sy + o,
                                .dy = sdy + o,
                                .gx = sgx + o,
                                .dgx = sdgx + o,
                                /* parameter gradients from shard 0 only */
                                .ggamma = s ? NULL : sgg,
                                .gbeta = s ? NULL : sgb,
                                .dggamma = s ? NULL : sdgg,
                                .dgbeta = s ? NULL : sdgb};
            sd_bn_desc ds = {cnt[s], C, HW, 1e-5};
            CHECK(be->bn_partial(be, &err, (sd_bn_op)op, &ds, &b[s], part[s]) == 0);
        }
        sd_bn_join((sd_bn_op)op, C, parts, count, 2, sums);
        for (int s = 0; s < 2; s++) {
            sd_bn_desc ds = {cnt[s], C, HW, 1e-5};
            CHECK(be->bn_apply(be, &err, (sd_bn_op)op, &ds, &b[s], sums, N * HW) == 0);
        }
    }
    double e[] = {maxdiff(smean[0], mean, C), maxdiff(smean[1], mean, C), maxdiff(sinv[0], inv, C),
                  maxdiff(sinv[1], inv, C),   maxdiff(sy, y, E),          maxdiff(sgx, gx, E),
                  maxdiff(sgg, gg, C),        maxdiff(sgb, gb, C),        maxdiff(sdy, dy, E),
                  maxdiff(sdgx, dgx, E),      maxdiff(sdgg, dgg, C),      maxdiff(sdgb, dgb, C)};
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++)
        CHECKF(e[i] < TOL, "batch norm split over shards: output %zu differs by %g", i, e[i]);
    /* a join of no values is refused */
    sd_bn_bufs b0 = {.x = x, .gamma = g, .beta = bt, .y = sy, .mean_out = mean, .invstd_out = inv};
    CHECK(be->bn_apply(be, &err, SD_BN_OP_FWD, &d, &b0, sums, 0) == SD_EINVAL);
}

/* ---------------------------------------------------------------- misc */

static void test_sce_extreme(sd_backend *be)
{
    sd_error err = {0};
    sd_real z[3] = {1000, 0, -1000}, q[3] = {0, 1, 0}, p[3], gz[3] = {0}, gq[3] = {0};
    double loss;
    CHECK(be->sce_fwd(be, &err, 1, 3, z, q, p, &loss) == 0);
    CHECKF(fabs(loss - 1000) < 1e-9 * 1000, "loss %.17g", loss);
    CHECK(p[0] == 1 && p[1] == 0 && p[2] == 0);
    CHECK(be->sce_bwd(be, &err, 1, 3, p, q, 1, gz, gq) == 0);
    CHECK(gz[0] == 1 && gz[1] == -1 && gz[2] == 0);
    CHECK(isfinite(gq[1]) && isfinite(gq[2])); /* log of an underflowed p is clamped */
    sd_real y[3] = {800, 799, -5}, qq[3];
    CHECK(be->softmax_fwd(be, &err, 1, 3, y, qq) == 0);
    CHECK(fabs(qq[0] - 1 / (1 + exp(-1.0))) < 1e-6 && isfinite(qq[2]));
}

static void test_gemm(sd_backend *be)
{
    sd_error err = {0};
    /* C (2x2) = A (2x3) * B' with B (2x3) */
    sd_real a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 1, 0, 1, 0}, c[4] = {9, 9, 9, 9};
    CHECK(be->gemm(be, &err, 0, 1, 2, 2, 3, 1, a, 3, b, 3, 0, c, 2) == 0);
    CHECK(c[0] == 4 && c[1] == 2 && c[2] == 10 && c[3] == 5);
    CHECK(be->gemm(be, &err, 0, 1, 2, 2, 3, 1, a, 2, b, 3, 0, c, 2) == SD_EINVAL);
    double dd;
    CHECK(be->dot(be, &err, 6, a, a, &dd) == 0 && dd == 91);
}

static int stub_calls;
static int stub_factory(sd_backend **out, sd_error *err)
{
    stub_calls++;
    return sd_backend_cpu_create(out, 0, err);
}

static void test_registry(void)
{
    sd_backend *be = NULL;
    sd_error err = {0};
    CHECK(sd_backend_create(&be, "cuda-test-none", &err) == SD_EUNSUPPORTED && be == NULL);
    CHECK(strcmp(err.msg, "backend 'cuda-test-none' is not available in this build") == 0);
    CHECK(sd_backend_register("stub", stub_factory) == 0);
    CHECK(sd_backend_register("cpu", stub_factory) == SD_EINVAL);
    CHECK(sd_backend_create(&be, "stub", &err) == 0 && be && stub_calls == 1);
    sd_backend_destroy(be);
    CHECK(sd_backend_create(&be, "cpu", &err) == 0 && be && strcmp(be->name, "cpu") == 0);
    sd_backend_destroy(be);
    sd_backend_destroy(NULL);
}

static void test_dropout(sd_backend *be)
{
    sd_layer l;
    memset(&l, 0, sizeof l);
    l.kind = SD_LAYER_DROPOUT;
    l.n_in = 1;
    l.in[0] = (sd_shape){10, 10, 10};
    l.p_drop = 0.25;
    sd_error err = {0};
    CHECK(sd_layer_finish(&l, &err) == 0);
    const int n = 4;
    size_t ne = (size_t)n * 1000;
    sd_real *x = rvec(ne, 1, 2), *y = malloc(ne * sizeof *y), *y2 = malloc(ne * sizeof *y2);
    sd_real *saved = malloc(sd_layer_saved_size(&l, n) * sizeof *saved);
    void *ws = malloc(sd_layer_ws_size(&l, n, be));
    sd_layer_io io;
    memset(&io, 0, sizeof io);
    io.n = n;
    io.dropout_train = 1;
    io.dropout_seed = 7;
    io.x[0] = x;
    io.y = y;
    io.saved = saved;
    io.ws = ws;
    CHECK(sd_layer_forward(be, &l, &io) == 0);
    size_t kept = 0, bad = 0;
    for (size_t i = 0; i < ne; i++) {
        if (y[i] != 0) {
            kept++;
            bad += fabs(y[i] - x[i] / 0.75) > 1e-6 * fabs(x[i]);
        }
    }
    /* 4000 Bernoulli(0.75) draws: mean 3000, sd 27; 6 sd either way */
    CHECKF(kept > 2840 && kept < 3160 && bad == 0, "dropout kept %zu bad %zu", kept, bad);
    io.y = y2; /* same seed: same mask */
    CHECK(sd_layer_forward(be, &l, &io) == 0);
    CHECK(memcmp(y, y2, ne * sizeof *y) == 0);
    io.dropout_seed = 8;
    CHECK(sd_layer_forward(be, &l, &io) == 0);
    CHECK(memcmp(y, y2, ne * sizeof *y) != 0);
    io.dropout_train = 0; /* evaluation: identity */
    CHECK(sd_layer_forward(be, &l, &io) == 0);
    CHECK(memcmp(x, y2, ne * sizeof *y) == 0);
    free(x), free(y), free(y2), free(saved), free(ws);
}

int main(void)
{
    sd_backend *be = NULL;
    sd_error err = {0};
    if (sd_backend_cpu_create(&be, 0, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("CPU backend checks, %s (tolerance %g)\n", SD_REAL_NAME, TOL);
    test_conv(be);
    test_dnnl_built();
    test_dnnl_threads();
    test_patch_gather(be);
    test_adam(be);
    test_pooling(be);
    test_pooling_kept_argmax(be);
    test_avgpool_2x2(be);
    test_bias_bwd(be);
    test_bn(be);
    test_bn_split(be);
    test_sce_extreme(be);
    test_gemm(be);
    test_dropout(be);
    test_registry();
    sd_backend_destroy(be);
    return sd_test_finish();
}
