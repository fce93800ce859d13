/*
 * test_gpu_backend.c - the CUDA backend against the CPU reference, op by op,
 * layer by layer and for whole-model Hessian-vector products.
 *
 * Every op of sd_backend.h runs on both backends with the same random
 * inputs (several shapes each: strides, padding, odd sizes, ceil_mode
 * windows, ties in max pooling, NULL optional arguments, accumulation into
 * non-zero outputs); the outputs must agree within these float32 tolerances,
 * each measured as max |gpu - cpu| / max |cpu| over the output tensor:
 *   TOL_DENSE 1e-4   convolution and GEMM (cuDNN/cuBLAS sum in another order
 *                    and may use Winograd or FFT; TF32 is off, which the TF32
 *                    probe checks exactly);
 *   TOL_ELEM  1e-5   every other op (most agree to the last bit: same double
 *                    arithmetic, only the order of per-channel sums differs);
 *   TOL_LAYER 1e-4   layer entry points (a layer chains several ops);
 *   TOL_MODEL 2e-3   a whole network's loss gradient and HVP (differences of
 *                    1e-6 compound through ~20 layers and second order);
 *   host scalars (dot, loss, dloss): relative 1e-10 (double sums, only
 *                    their order differs).
 * Also: bit-identical results from two runs of the same op in deterministic
 * mode, the conv plan path for batch sizes smaller than the planned one, the
 * timed non-deterministic and the heuristic deterministic algorithm choices
 * (the main backend uses the default: deterministic algorithms, timed), and
 * argument errors.
 *
 * Without a usable GPU the test exits 77 (skipped), unless
 * SLDD_REQUIRE_GPU=1 is set (scripts/device-check sets it), in which case it
 * fails.  SLDD_GPU_TEST_QUICK=1 uses only small shapes (for
 * compute-sanitizer, which runs kernels ~100x slower).
 * SLDD_GPU_TEST_SELFCHECK=1 puts a second CPU backend in the GPU's place: it
 * checks this harness itself (shapes, buffers, call sequences) on machines
 * without a GPU, where every comparison must come out exact.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_backend.h"
#include "sd_init.h"
#include "sd_layer.h"
#include "sd_model.h"
#include "sg_backend.h"
#include "../sd_test.h"

#define TOL_DENSE  1e-4
#define TOL_ELEM   1e-5
#define TOL_LAYER  1e-4
#define TOL_MODEL  2e-3
#define TOL_SCALAR 1e-10

/* messages of backend calls made outside any test's own sd_error */
static sd_error be_err;

static sd_backend *CPU, *GPU;
static int quick;

/* ------------------------------------------------------------ utilities */

static uint64_t rng_state = 0x6a09e667f3bcc908ULL;

static double urand(void) /* [0,1), SplitMix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static void fatal(const char *what, sd_backend *be)
{
    fprintf(stderr, "fatal: %s: %s\n", what, be ? be_err.msg : "");
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = calloc(n ? n : 1, 1);
    if (!p)
        fatal("out of host memory", NULL);
    return p;
}

/* A tensor held on both backends. */
typedef struct buf {
    size_t n;
    float *c, *g;
} buf;

static void *dalloc(sd_backend *be, size_t bytes)
{
    void *p = NULL;
    if (be->alloc(be, &be_err, bytes ? bytes : 4, &p) || !p)
        fatal("alloc", be);
    if (be->zero(be, &be_err, p, bytes ? bytes : 4))
        fatal("zero", be);
    return p;
}

static buf bnew(size_t n)
{
    buf b = {n, dalloc(CPU, n * sizeof(float)), dalloc(GPU, n * sizeof(float))};
    return b;
}

static void bfree(buf *b)
{
    if (b->c)
        CPU->free(CPU, b->c);
    if (b->g)
        GPU->free(GPU, b->g);
    memset(b, 0, sizeof *b);
}

static void bset(buf *b, const float *h)
{
    if (CPU->upload(CPU, &be_err, b->c, h, b->n * sizeof(float)))
        fatal("upload", CPU);
    if (GPU->upload(GPU, &be_err, b->g, h, b->n * sizeof(float)))
        fatal("upload", GPU);
}

static float *bget(sd_backend *be, const float *p, size_t n)
{
    float *h = xmalloc(n * sizeof(float));
    if (be->download(be, &be_err, h, p, n * sizeof(float)))
        fatal("download", be);
    return h;
}

static void brand(buf *b, double lo, double hi)
{
    float *h = xmalloc(b->n * sizeof(float));
    for (size_t i = 0; i < b->n; i++)
        h[i] = (float)(lo + (hi - lo) * urand());
    bset(b, h);
    free(h);
}

static buf brandn(size_t n, double lo, double hi)
{
    buf b = bnew(n);
    brand(&b, lo, hi);
    return b;
}

/* Give the GPU copy the CPU's values (to feed both the same inputs). */
static void bsync(buf *b)
{
    float *h = bget(CPU, b->c, b->n);
    if (GPU->upload(GPU, &be_err, b->g, h, b->n * sizeof(float)))
        fatal("upload", GPU);
    free(h);
}

/* max |gpu - cpu| / max |cpu|; 0 when both are all zero; inf on a NaN
 * that the other side does not have. */
static double bdiff(const buf *b)
{
    float *hc = bget(CPU, b->c, b->n), *hg = bget(GPU, b->g, b->n);
    double md = 0, ma = 0;
    for (size_t i = 0; i < b->n; i++) {
        double c = hc[i], g = hg[i];
        if (isnan(c) || isnan(g)) {
            if (!(isnan(c) && isnan(g)))
                md = INFINITY;
            continue;
        }
        if (fabs(c) > ma)
            ma = fabs(c);
        if (fabs(c - g) > md)
            md = fabs(c - g);
    }
    free(hc);
    free(hg);
    if (md == 0)
        return 0;
    return ma > 0 ? md / ma : INFINITY;
}

/* Largest error seen per category, printed at the end. */
typedef struct stat {
    char cat[48];
    double worst, tol;
    int count;
} stat;
static stat stats[96];
static int n_stats;

static void note(const char *cat, double err, double tol)
{
    for (int i = 0; i < n_stats; i++)
        if (!strncmp(stats[i].cat, cat, sizeof stats[i].cat - 1)) {
            if (err > stats[i].worst || isnan(err))
                stats[i].worst = err;
            stats[i].count++;
            return;
        }
    if (n_stats < (int)(sizeof stats / sizeof stats[0])) {
        stat *s = &stats[n_stats++];
        snprintf(s->cat, sizeof s->cat, "%s", cat);
        s->worst = err;
        s->tol = tol;
        s->count = 1;
    }
}

static void expect(const char *cat, const char *what, const buf *b, double tol)
{
    double e = bdiff(b);
    note(cat, e, tol);
    CHECKF(e <= tol, "%s %s: relative error %.3g > %.3g", cat, what, e, tol);
}

static void expect_scalar(const char *cat, const char *what, double c, double g, double scale,
                          double tol)
{
    double e = fabs(c - g) / (scale > 0 ? scale : 1);
    note(cat, e, tol);
    CHECKF(e <= tol, "%s %s: cpu %.17g gpu %.17g (relative %.3g > %.3g)", cat, what, c, g, e, tol);
}

/* Run EXPR once per backend; inside it, B is the backend and P(b) the
 * matching pointer of buf b (PN for an optional buf *). */
#define ON_BOTH(label, EXPR)                                                \
    do {                                                                    \
        for (int side_ = 0; side_ < 2; side_++) {                           \
            sd_backend *B = side_ ? GPU : CPU;                              \
            int rc_ = (EXPR);                                               \
            CHECKF(rc_ == 0, "%s on %s: %s", (label), B->name, be_err.msg); \
        }                                                                   \
    } while (0)
#define P(b)   (side_ ? (b).g : (b).c)
#define PN(bp) ((bp) ? (side_ ? (bp)->g : (bp)->c) : NULL)

/* ------------------------------------------------------- memory, vectors */

static void test_memory(void)
{
    const size_t n = 1000;
    buf a = brandn(n, -1, 1), b = bnew(n);
    ON_BOTH("copy", B->copy(B, &be_err, P(b), P(a), n * sizeof(float)));
    float *hc = bget(CPU, b.c, n), *hg = bget(GPU, b.g, n);
    CHECK(memcmp(hc, hg, n * sizeof(float)) == 0);
    free(hc);
    free(hg);
    ON_BOTH("zero", B->zero(B, &be_err, P(b), 10 * sizeof(float)));
    hg = bget(GPU, b.g, n);
    CHECK(hg[0] == 0 && hg[9] == 0 && hg[10] != 0);
    free(hg);
    void *z = NULL;
    CHECK(GPU->alloc(GPU, &be_err, 0, &z) == 0 && z != NULL);
    GPU->free(GPU, z);
    GPU->free(GPU, NULL);
    CHECK(GPU->gemm(GPU, &be_err, 0, 0, 4, 4, 4, 1, a.g, 3, a.g, 4, 0, b.g, 4) == SD_EINVAL);
    CHECK(GPU->sync(GPU, &be_err) == 0);
    bfree(&a);
    bfree(&b);
}

static void test_vector(void)
{
    const size_t sizes[] = {1, 1000, quick ? 10007 : 1000003};
    for (int si = 0; si < 3; si++) {
        size_t n = sizes[si];
        buf x = brandn(n, -1, 1), y = brandn(n, -1, 1);
        ON_BOTH("axpy", B->axpy(B, &be_err, n, 0.37f, P(x), P(y)));
        expect("axpy", "", &y, TOL_ELEM);
        ON_BOTH("scal", B->scal(B, &be_err, n, -1.7f, P(y)));
        expect("scal", "", &y, TOL_ELEM);
        double dc = 0, dg = 0, mag = 0;
        CHECK(CPU->dot(CPU, &be_err, n, x.c, y.c, &dc) == 0);
        CHECK(GPU->dot(GPU, &be_err, n, x.g, y.g, &dg) == 0);
        float *hx = bget(CPU, x.c, n), *hy = bget(CPU, y.c, n);
        for (size_t i = 0; i < n; i++)
            mag += fabs((double)hx[i] * hy[i]);
        free(hx);
        free(hy);
        expect_scalar("dot", "", dc, dg, mag, TOL_SCALAR);
        ON_BOTH("fill", B->fill(B, &be_err, n, 2.5f, P(y)));
        expect("fill", "", &y, 0);

        /* Adam at t = 1 and t = 7 with the design's hyper-parameters */
        buf p = brandn(n, -1, 1), g = brandn(n, -1, 1), m = brandn(n, -0.1, 0.1),
            v = brandn(n, 0, 0.1);
        for (int t = 1; t <= 7; t += 6) {
            ON_BOTH("adam",
                    B->adam(B, &be_err, n, P(p), P(g), P(m), P(v), 0.01, 0.5, 0.999, 1e-8, t));
            expect("adam", "p", &p, TOL_ELEM);
            expect("adam", "m", &m, TOL_ELEM);
            expect("adam", "v", &v, TOL_ELEM);
        }
        CHECK(GPU->adam(GPU, &be_err, n, p.g, g.g, m.g, v.g, 0.01, 1.5, 0.999, 1e-8, 1) ==
              SD_EINVAL);
        bfree(&p);
        bfree(&g);
        bfree(&m);
        bfree(&v);
        bfree(&x);
        bfree(&y);
    }
}

/* ------------------------------------------------------------------ GEMM */

static void test_gemm(void)
{
    const int shapes[][3] = {{7, 5, 3}, {33, 17, 65}, {1, 9, 4}, {128, 96, 200}};
    const int ns = quick ? 3 : 4;
    for (int si = 0; si < ns; si++) {
        int m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
                size_t ar = ta ? k : m, br = tb ? n : k;
                buf a = brandn(ar * lda, -1, 1), b = brandn(br * ldb, -1, 1),
                    c = brandn((size_t)m * ldc, -1, 1);
                char what[64];
                snprintf(what, sizeof what, "m%d n%d k%d ta%d tb%d", m, n, k, ta, tb);
                ON_BOTH("gemm", B->gemm(B, &be_err, ta, tb, m, n, k, 0.75f, P(a), lda, P(b), ldb,
                                        0.5f, P(c), ldc));
                expect("gemm", what, &c, TOL_DENSE);
                ON_BOTH("gemm", B->gemm(B, &be_err, ta, tb, m, n, k, 1.0f, P(a), lda, P(b), ldb,
                                        0.0f, P(c), ldc));
                expect("gemm", what, &c, TOL_DENSE);
                bfree(&a);
                bfree(&b);
                bfree(&c);
            }
    }
}

/* TF32 keeps 10 mantissa bits: 1 + 2^-12 becomes 1.  In FP32 the sums below
 * are exact, so any TF32 use shows as an error of 2^-12 relative. */
static void test_tf32_probe(void)
{
    const float v = 1.0f + 1.0f / 4096.0f;
    const int k = 256, m = 4, n = 4;
    buf a = bnew((size_t)m * k), b = bnew((size_t)k * n), c = bnew((size_t)m * n);
    float *h = xmalloc(sizeof(float) * (size_t)m * k);
    for (int i = 0; i < m * k; i++)
        h[i] = v;
    bset(&a, h);
    for (int i = 0; i < k * n; i++)
        h[i] = 1.0f;
    bset(&b, h);
    free(h);
    CHECK(GPU->gemm(GPU, &be_err, 0, 0, m, n, k, 1, a.g, k, b.g, n, 0, c.g, n) == 0);
    float *r = bget(GPU, c.g, (size_t)m * n);
    CHECKF(r[0] == 256.0625f && r[m * n - 1] == 256.0625f, "gemm TF32 probe: %.7g (want 256.0625)",
           r[0]);
    free(r);
    bfree(&a);
    bfree(&b);
    bfree(&c);

    /* the same through a 1x1 convolution over 64 channels */
    sd_conv_desc d = {2, 64, 6, 6, 8, 1, 1, 1, 0, 6, 6};
    size_t xs = 2 * 64 * 36, ws = 64 * 8, ys = 2 * 8 * 36;
    buf x = bnew(xs), w = bnew(ws), y = bnew(ys);
    h = xmalloc(sizeof(float) * xs);
    for (size_t i = 0; i < xs; i++)
        h[i] = v;
    bset(&x, h);
    for (size_t i = 0; i < ws; i++)
        h[i] = 1.0f;
    bset(&w, h);
    free(h);
    size_t wsz = GPU->conv_workspace(GPU, &d);
    void *wk = wsz ? dalloc(GPU, wsz) : NULL;
    CHECKF(GPU->conv_fwd(GPU, &be_err, &d, x.g, w.g, 0, y.g, wk) == 0, "%s", be_err.msg);
    r = bget(GPU, y.g, ys);
    CHECKF(r[0] == 64.015625f && r[ys - 1] == 64.015625f, "conv TF32 probe: %.7g (want 64.015625)",
           r[0]);
    free(r);
    GPU->free(GPU, wk);
    bfree(&x);
    bfree(&w);
    bfree(&y);
}

/* ----------------------------------------------------------- convolution */

static sd_conv_desc conv_desc(int n, int c, int h, int w, int k, int r, int s, int stride, int pad)
{
    sd_conv_desc d = {n,
                      c,
                      h,
                      w,
                      k,
                      r,
                      s,
                      stride,
                      pad,
                      (h + 2 * pad - r) / stride + 1,
                      (w + 2 * pad - s) / stride + 1};
    return d;
}

static void conv_case(sd_backend *gpu, const char *cat, const sd_conv_desc *d, int sub_n)
{
    sd_backend *saved = GPU;
    GPU = gpu;
    char what[128];
    snprintf(what, sizeof what, "n%d c%d %dx%d k%d %dx%d s%d p%d", d->n, d->c, d->h, d->w, d->k,
             d->r, d->s, d->stride, d->pad);
    size_t xs = (size_t)d->n * d->c * d->h * d->w, wsz = (size_t)d->k * d->c * d->r * d->s,
           ys = (size_t)d->n * d->k * d->oh * d->ow;
    /* conv_workspace reports nothing; a failed plan fails the calls below */
    size_t wsc = CPU->conv_workspace(CPU, d), wsg = GPU->conv_workspace(GPU, d);
    void *wkc = wsc ? dalloc(CPU, wsc) : NULL, *wkg = wsg ? dalloc(GPU, wsg) : NULL;
    buf x = brandn(xs, -1, 1), w = brandn(wsz, -0.5, 0.5), y = brandn(ys, -1, 1),
        gy = brandn(ys, -1, 1), gx = brandn(xs, -1, 1), gw = brandn(wsz, -1, 1);
#define WK (side_ ? wkg : wkc)
    ON_BOTH("conv_fwd", B->conv_fwd(B, &be_err, d, P(x), P(w), 0, P(y), WK));
    expect(cat, what, &y, TOL_DENSE);
    ON_BOTH("conv_fwd beta=1", B->conv_fwd(B, &be_err, d, P(x), P(w), 1, P(y), WK));
    expect(cat, what, &y, TOL_DENSE);
    ON_BOTH("conv_bwd_data", B->conv_bwd_data(B, &be_err, d, P(gy), P(w), P(gx), WK));
    expect(cat, what, &gx, TOL_DENSE);
    ON_BOTH("conv_bwd_filter", B->conv_bwd_filter(B, &be_err, d, P(x), P(gy), P(gw), WK));
    expect(cat, what, &gw, TOL_DENSE);
    if (sub_n > 0 && sub_n < d->n) {
        /* a smaller batch than planned: must fit in the planned workspace */
        sd_conv_desc e = *d;
        e.n = sub_n;
        bsync(&gx);
        bsync(&gw);
        ON_BOTH("conv_fwd (smaller batch)", B->conv_fwd(B, &be_err, &e, P(x), P(w), 0, P(y), WK));
        expect(cat, "smaller batch", &y, TOL_DENSE);
        ON_BOTH("conv_bwd_data (smaller batch)",
                B->conv_bwd_data(B, &be_err, &e, P(gy), P(w), P(gx), WK));
        expect(cat, "smaller batch", &gx, TOL_DENSE);
        ON_BOTH("conv_bwd_filter (smaller batch)",
                B->conv_bwd_filter(B, &be_err, &e, P(x), P(gy), P(gw), WK));
        expect(cat, "smaller batch", &gw, TOL_DENSE);
    }
#undef WK
    bfree(&x);
    bfree(&w);
    bfree(&y);
    bfree(&gy);
    bfree(&gx);
    bfree(&gw);
    CPU->free(CPU, wkc);
    GPU->free(GPU, wkg);
    GPU = saved;
}

static void test_conv(sd_backend *gpu, const char *cat)
{
    sd_conv_desc ds[] = {
        conv_desc(2, 3, 9, 9, 4, 3, 3, 1, 1),     conv_desc(3, 5, 11, 7, 6, 3, 3, 2, 1),
        conv_desc(1, 4, 8, 8, 8, 1, 1, 1, 0),     conv_desc(2, 1, 23, 23, 8, 7, 7, 2, 3),
        conv_desc(4, 16, 5, 5, 16, 3, 3, 1, 0),   conv_desc(2, 8, 10, 10, 4, 1, 1, 2, 0),
        conv_desc(3, 6, 12, 9, 5, 3, 1, 1, 1),    conv_desc(5, 2, 4, 4, 3, 4, 4, 1, 2),
        conv_desc(8, 64, 28, 28, 64, 3, 3, 1, 1), conv_desc(16, 3, 64, 64, 32, 3, 3, 1, 1),
    };
    int nd = quick ? 4 : (int)(sizeof ds / sizeof ds[0]);
    for (int i = 0; i < nd; i++)
        conv_case(gpu, cat, &ds[i], ds[i].n > 1 ? ds[i].n - 1 : 0);
    /* shapes that cannot be planned: argument errors, not crashes */
    sd_conv_desc bad = conv_desc(2, 3, 9, 9, 4, 3, 3, 1, 1);
    bad.oh = 5;
    CHECK(gpu->conv_fwd(gpu, &be_err, &bad, NULL, NULL, 0, NULL, NULL) == SD_EINVAL);
    bad.oh = 9;
    bad.k = 0;
    CHECK(gpu->conv_fwd(gpu, &be_err, &bad, NULL, NULL, 0, NULL, NULL) == SD_EINVAL);
}

/* --------------------------------------------------------- bias and ReLU */

static void test_bias_relu(void)
{
    const int shapes[][3] = {{3, 5, 7}, {2, 64, 1}, {4, 16, 1000}, {2, 3, 70001}};
    int ns = quick ? 3 : 4;
    for (int si = 0; si < ns; si++) {
        int n = shapes[si][0], c = shapes[si][1], hw = shapes[si][2];
        size_t sz = (size_t)n * c * hw;
        buf y = brandn(sz, -1, 1), b = brandn((size_t)c, -1, 1), gb = brandn((size_t)c, -1, 1);
        ON_BOTH("bias_fwd", B->bias_fwd(B, &be_err, n, c, hw, P(b), P(y)));
        expect("bias", "fwd", &y, TOL_ELEM);
        ON_BOTH("bias_bwd", B->bias_bwd(B, &be_err, n, c, hw, P(y), P(gb)));
        expect("bias", "bwd", &gb, TOL_ELEM);
        bfree(&y);
        bfree(&b);
        bfree(&gb);
    }
    size_t n = quick ? 5000 : 300001;
    buf x = bnew(n), y = brandn(n, -1, 1), d = brandn(n, -1, 1), o = brandn(n, -1, 1);
    float *h = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        h[i] = i % 7 == 0 ? 0.0f : i % 5 == 0 ? -0.0f : (float)(urand() * 2 - 1);
    bset(&x, h);
    free(h);
    ON_BOTH("relu_fwd", B->relu_fwd(B, &be_err, n, P(x), P(y)));
    expect("relu", "fwd", &y, 0);
    ON_BOTH("relu_mask", B->relu_mask(B, &be_err, n, P(x), P(d), P(o)));
    expect("relu", "mask", &o, 0);
    bfree(&x);
    bfree(&y);
    bfree(&d);
    bfree(&o);
}

/* --------------------------------------------------------------- pooling */

static int pool_out(int in, int k, int s, int p, int ceil_mode)
{
    int num = in + 2 * p - k + (ceil_mode ? s - 1 : 0);
    int o = num / s + 1;
    if (ceil_mode && (o - 1) * s >= in + p)
        o--;
    return o;
}

enum { VAL_RANDOM, VAL_TIES, VAL_NEGATIVE };

static void fill_vals(buf *b, int mode)
{
    float *h = xmalloc(b->n * sizeof(float));
    for (size_t i = 0; i < b->n; i++) {
        double u = urand();
        h[i] = mode == VAL_TIES       ? (float)floor(u * 3)
               : mode == VAL_NEGATIVE ? (float)(-1 - u)
                                      : (float)(2 * u - 1);
    }
    bset(b, h);
    free(h);
}

static void pool_case(int max, int adaptive, int n, int c, int h, int w, int kh, int kw, int sh,
                      int sw, int ph, int pw, int ceil_mode, int cip, int oh, int ow, int vals)
{
    sd_pool_desc d;
    memset(&d, 0, sizeof d);
    d.n = n;
    d.c = c;
    d.h = h;
    d.w = w;
    d.adaptive = adaptive;
    if (adaptive) {
        d.oh = oh;
        d.ow = ow;
    } else {
        d.kh = kh;
        d.kw = kw;
        d.sh = sh;
        d.sw = sw;
        d.ph = ph;
        d.pw = pw;
        d.count_include_pad = cip;
        d.oh = pool_out(h, kh, sh, ph, ceil_mode);
        d.ow = pool_out(w, kw, sw, pw, ceil_mode);
    }
    char what[128];
    snprintf(what, sizeof what, "%s n%d c%d %dx%d k%dx%d s%dx%d p%dx%d ceil%d cip%d -> %dx%d v%d",
             adaptive ? "adaptive"
             : max    ? "max"
                      : "avg",
             n, c, h, w, kh, kw, sh, sw, ph, pw, ceil_mode, cip, d.oh, d.ow, vals);
    size_t xs = (size_t)n * c * h * w, ys = (size_t)n * c * d.oh * d.ow;
    buf x = bnew(xs), y = brandn(ys, -1, 1), gy = brandn(ys, -1, 1), gx = brandn(xs, -1, 1),
        dx = brandn(xs, -1, 1), dy = brandn(ys, -1, 1);
    fill_vals(&x, vals);
    if (max) {
        ON_BOTH("maxpool_fwd", B->maxpool_fwd(B, &be_err, &d, P(x), P(y), NULL));
        expect("maxpool", what, &y, 0);
        ON_BOTH("maxpool_bwd", B->maxpool_bwd(B, &be_err, &d, P(x), NULL, P(gy), P(gx)));
        expect("maxpool", what, &gx, 0);
        ON_BOTH("maxpool_gather", B->maxpool_gather(B, &be_err, &d, P(x), NULL, P(dx), P(dy)));
        expect("maxpool", what, &dy, 0);
    } else {
        ON_BOTH("avgpool_fwd", B->avgpool_fwd(B, &be_err, &d, P(x), P(y)));
        expect("avgpool", what, &y, TOL_ELEM);
        ON_BOTH("avgpool_bwd", B->avgpool_bwd(B, &be_err, &d, P(gy), P(gx)));
        expect("avgpool", what, &gx, TOL_ELEM);
    }
    bfree(&x);
    bfree(&y);
    bfree(&gy);
    bfree(&gx);
    bfree(&dx);
    bfree(&dy);
}

static void test_pool(void)
{
    for (int v = VAL_RANDOM; v <= VAL_NEGATIVE; v++) {
        /* max: overlapping 3x3/2 pad 1 (ResNet), 2x2/2, ceil_mode, stride 1, odd */
        pool_case(1, 0, 2, 3, 11, 11, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, v);
        pool_case(1, 0, 2, 3, 8, 8, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, v);
        pool_case(1, 0, 3, 2, 9, 7, 3, 3, 2, 2, 0, 0, 1, 0, 0, 0, v);
        pool_case(1, 0, 3, 2, 9, 7, 2, 2, 2, 2, 1, 1, 1, 0, 0, 0, v);
        pool_case(1, 0, 1, 4, 7, 5, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0, v);
        pool_case(1, 0, 2, 2, 13, 10, 3, 2, 2, 3, 1, 1, 1, 0, 0, 0, v);
        /* wide planes: the CUDA backward gathers in bands of input rows
         * (several bands per plane here, ceil_mode and stride 1 among them),
         * and planes too wide for one band use the untiled kernel */
        pool_case(1, 0, 1, 2, 40, 2100, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, v);
        pool_case(1, 0, 1, 1, 33, 4001, 3, 3, 2, 2, 0, 0, 1, 0, 0, 0, v);
        pool_case(1, 0, 1, 1, 20, 1000, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, v);
        pool_case(1, 0, 1, 1, 5, 9000, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, v);
        /* average: padding with and without count_include_pad, ceil_mode */
        pool_case(0, 0, 2, 3, 10, 9, 3, 3, 2, 2, 1, 1, 1, 0, 0, 0, v);
        pool_case(0, 0, 2, 3, 10, 9, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, v);
        pool_case(0, 0, 2, 3, 8, 8, 2, 2, 2, 2, 0, 0, 0, 1, 0, 0, v);
        pool_case(0, 0, 1, 2, 7, 6, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, v);
        /* adaptive: global, uneven, upsampling */
        pool_case(0, 1, 2, 8, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, v);
        pool_case(0, 1, 2, 4, 7, 5, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2, v);
        pool_case(0, 1, 1, 3, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 3, 5, v);
        pool_case(0, 1, 2, 2, 13, 13, 0, 0, 0, 0, 0, 0, 0, 0, 6, 6, v);
    }
    if (!quick) {
        pool_case(1, 0, 8, 64, 150, 150, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, VAL_RANDOM);
        pool_case(0, 1, 16, 512, 10, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, VAL_RANDOM);
    }
}

/* ------------------------------------------------------------ batch norm */

static void bn_case(int n, int c, int hw)
{
    sd_bn_desc d = {n, c, hw, 1e-5};
    char what[64];
    snprintf(what, sizeof what, "n%d c%d hw%d", n, c, hw);
    size_t sz = (size_t)n * c * hw, cs = (size_t)c;
    buf x = brandn(sz, -1.5, 2.5), dx = brandn(sz, -1, 1), gy = brandn(sz, -1, 1),
        dgy = brandn(sz, -1, 1), y = brandn(sz, -1, 1), gx = brandn(sz, -1, 1);
    buf gamma = brandn(cs, 0.5, 1.5), beta = brandn(cs, -1, 1), dgamma = brandn(cs, -1, 1),
        dbeta = brandn(cs, -1, 1), mean = bnew(cs), invstd = bnew(cs), gg = brandn(cs, -1, 1),
        gb = brandn(cs, -1, 1), rmean = brandn(cs, -0.5, 0.5), rvar = brandn(cs, 0.2, 2);

    /* batch statistics */
    ON_BOTH("bn_fwd_train",
            B->bn_fwd_train(B, &be_err, &d, P(x), P(gamma), P(beta), P(y), P(mean), P(invstd)));
    expect("bn_fwd_train", what, &y, TOL_ELEM);
    expect("bn_fwd_train", "mean", &mean, TOL_ELEM);
    expect("bn_fwd_train", "invstd", &invstd, TOL_ELEM);
    bsync(&mean);
    bsync(&invstd);
    ON_BOTH("bn_bwd_train", B->bn_bwd_train(B, &be_err, &d, P(x), P(gamma), P(mean), P(invstd),
                                            P(gy), P(gx), P(gg), P(gb)));
    expect("bn_bwd_train", what, &gx, TOL_ELEM);
    expect("bn_bwd_train", "ggamma", &gg, TOL_ELEM);
    expect("bn_bwd_train", "gbeta", &gb, TOL_ELEM);
    ON_BOTH("bn_bwd_train (no gx)", B->bn_bwd_train(B, &be_err, &d, P(x), P(gamma), P(mean),
                                                    P(invstd), P(gy), NULL, P(gg), P(gb)));
    expect("bn_bwd_train", "ggamma (no gx)", &gg, TOL_ELEM);
    for (int v = 0; v < 2; v++) {
        const buf *pdx = v ? NULL : &dx, *pdg = v ? NULL : &dgamma, *pdb = v ? NULL : &dbeta;
        ON_BOTH("bn_fwd_tangent_train",
                B->bn_fwd_tangent_train(B, &be_err, &d, P(x), PN(pdx), P(gamma), PN(pdg), PN(pdb),
                                        P(mean), P(invstd), P(y)));
        expect("bn_fwd_tangent_train", v ? "NULL tangents" : what, &y, TOL_ELEM);
    }
    for (int v = 0; v < 3; v++) {
        /* v=1: dgy NULL; v=2: dx and dgamma NULL */
        const buf *pdx = v == 2 ? NULL : &dx, *pdg = v == 2 ? NULL : &dgamma,
                  *pdgy = v == 1 ? NULL : &dgy;
        ON_BOTH("bn_bwd_tangent_train",
                B->bn_bwd_tangent_train(B, &be_err, &d, P(x), PN(pdx), P(gamma), PN(pdg), P(mean),
                                        P(invstd), P(gy), PN(pdgy), P(gx), P(gg), P(gb)));
        expect("bn_bwd_tangent_train", what, &gx, TOL_ELEM);
        expect("bn_bwd_tangent_train", "dggamma", &gg, TOL_ELEM);
        expect("bn_bwd_tangent_train", "dgbeta", &gb, TOL_ELEM);
    }

    /* frozen statistics */
    ON_BOTH("bn_fwd_frozen",
            B->bn_fwd_frozen(B, &be_err, &d, P(x), P(gamma), P(beta), P(rmean), P(rvar), P(y)));
    expect("bn_fwd_frozen", what, &y, TOL_ELEM);
    ON_BOTH("bn_bwd_frozen", B->bn_bwd_frozen(B, &be_err, &d, P(x), P(gamma), P(rmean), P(rvar),
                                              P(gy), P(gx), P(gg), P(gb)));
    expect("bn_bwd_frozen", what, &gx, TOL_ELEM);
    expect("bn_bwd_frozen", "ggamma", &gg, TOL_ELEM);
    expect("bn_bwd_frozen", "gbeta", &gb, TOL_ELEM);
    for (int v = 0; v < 2; v++) {
        const buf *pdx = v ? NULL : &dx, *pdg = v ? NULL : &dgamma, *pdb = v ? NULL : &dbeta;
        ON_BOTH("bn_fwd_tangent_frozen",
                B->bn_fwd_tangent_frozen(B, &be_err, &d, P(x), PN(pdx), P(gamma), PN(pdg), PN(pdb),
                                         P(rmean), P(rvar), P(y)));
        expect("bn_fwd_tangent_frozen", what, &y, TOL_ELEM);
    }
    for (int v = 0; v < 3; v++) {
        const buf *pdx = v == 2 ? NULL : &dx, *pdg = v == 2 ? NULL : &dgamma,
                  *pdgy = v == 1 ? NULL : &dgy;
        ON_BOTH("bn_bwd_tangent_frozen",
                B->bn_bwd_tangent_frozen(B, &be_err, &d, P(x), PN(pdx), P(gamma), PN(pdg), P(rmean),
                                         P(rvar), P(gy), PN(pdgy), P(gx), P(gg), P(gb)));
        expect("bn_bwd_tangent_frozen", what, &gx, TOL_ELEM);
        expect("bn_bwd_tangent_frozen", "dggamma", &gg, TOL_ELEM);
        expect("bn_bwd_tangent_frozen", "dgbeta", &gb, TOL_ELEM);
    }
    buf *all[] = {&x,      &dx,    &gy,   &dgy,    &y,  &gx, &gamma, &beta,
                  &dgamma, &dbeta, &mean, &invstd, &gg, &gb, &rmean, &rvar};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        bfree(all[i]);
}

static void test_bn(void)
{
    bn_case(4, 3, 25);
    bn_case(1, 2, 7);
    bn_case(8, 16, 1);
    bn_case(16, 32, 100);
    bn_case(3, 8, 2000);
    if (!quick) {
        bn_case(3, 64, 22500); /* an inner step at 150x150: several chunks per channel */
        bn_case(64, 128, 256);
    }
}

/* ------------------------------------------------- cross-entropy, softmax */

static void sce_case(int n, int k, int underflow)
{
    char what[64];
    snprintf(what, sizeof what, "n%d k%d%s", n, k, underflow ? " underflow" : "");
    size_t sz = (size_t)n * k;
    buf z = brandn(sz, -4, 4), q = brandn(sz, 0, 1), p = bnew(sz), gz = brandn(sz, -1, 1),
        gq = brandn(sz, -1, 1), dz = brandn(sz, -1, 1), dq = brandn(sz, -1, 1);
    if (underflow) {
        float *h = bget(CPU, z.c, sz);
        for (int i = 0; i < n; i += 2)
            h[(size_t)i * k] = 150.0f; /* the other classes' p underflow to 0 */
        bset(&z, h);
        free(h);
    }
    double lc = 0, lg = 0;
    CHECK(CPU->sce_fwd(CPU, &be_err, n, k, z.c, q.c, p.c, &lc) == 0);
    CHECKF(GPU->sce_fwd(GPU, &be_err, n, k, z.g, q.g, p.g, &lg) == 0, "%s", be_err.msg);
    expect_scalar("sce_fwd", what, lc, lg, fabs(lc) > 1 ? fabs(lc) : 1, TOL_SCALAR);
    expect("sce_fwd", what, &p, TOL_ELEM);
    bsync(&p);
    ON_BOTH("sce_bwd", B->sce_bwd(B, &be_err, n, k, P(p), P(q), 1.3, P(gz), P(gq)));
    expect("sce_bwd", "gz", &gz, TOL_ELEM);
    expect("sce_bwd", "gq", &gq, TOL_ELEM);
    ON_BOTH("sce_bwd (gz only)", B->sce_bwd(B, &be_err, n, k, P(p), P(q), -0.7, P(gz), NULL));
    expect("sce_bwd", "gz only", &gz, TOL_ELEM);
    for (int v = 0; v < 2; v++) {
        const buf *pdq = v ? NULL : &dq;
        double dc = 0, dg = 0;
        CHECK(CPU->sce_fwd_tangent(CPU, &be_err, n, k, p.c, q.c, dz.c, pdq ? dq.c : NULL, &dc) ==
              0);
        CHECKF(GPU->sce_fwd_tangent(GPU, &be_err, n, k, p.g, q.g, dz.g, pdq ? dq.g : NULL, &dg) ==
                   0,
               "%s", be_err.msg);
        expect_scalar("sce_fwd_tangent", what, dc, dg, fabs(dc) > 1 ? fabs(dc) : 1, TOL_SCALAR);
    }
    for (int v = 0; v < 3; v++) {
        const buf *pdq = v == 1 ? NULL : &dq, *pdz = v == 2 ? NULL : &dz;
        ON_BOTH("sce_bwd_tangent", B->sce_bwd_tangent(B, &be_err, n, k, P(p), P(q), PN(pdz),
                                                      PN(pdq), 1.3, -0.4, P(gz), P(gq)));
        expect("sce_bwd_tangent", "dgz", &gz, TOL_ELEM);
        expect("sce_bwd_tangent", "dgq", &gq, TOL_ELEM);
    }

    /* row softmax of the label parameterisation */
    ON_BOTH("softmax_fwd", B->softmax_fwd(B, &be_err, n, k, P(z), P(q)));
    expect("softmax", "fwd", &q, TOL_ELEM);
    bsync(&q);
    ON_BOTH("softmax_bwd", B->softmax_bwd(B, &be_err, n, k, P(q), P(gq), P(gz)));
    expect("softmax", "bwd", &gz, TOL_ELEM);
    for (int v = 0; v < 3; v++) {
        const buf *pdy = v == 1 ? NULL : &dz, *pdg = v == 2 ? NULL : &dq;
        ON_BOTH("softmax_bwd_tangent",
                B->softmax_bwd_tangent(B, &be_err, n, k, P(q), PN(pdy), P(gq), PN(pdg), P(gz)));
        expect("softmax", "bwd_tangent", &gz, TOL_ELEM);
    }
    buf *all[] = {&z, &q, &p, &gz, &gq, &dz, &dq};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        bfree(all[i]);
}

static void test_sce(void)
{
    sce_case(5, 3, 0);
    sce_case(37, 10, 0);
    sce_case(256, 3, 0);
    sce_case(9, 3, 1);
    CHECK(GPU->sce_bwd(GPU, &be_err, 0, 3, NULL, NULL, 1, NULL, NULL) == SD_EINVAL);
}

/* ------------------------------------------------------------ patch cuts */

static void test_patch(void)
{
    const int W[3] = {40, 57, 33}, H[3] = {41, 30, 35};
    int64_t off[3];
    int64_t total = 0;
    for (int i = 0; i < 3; i++) {
        off[i] = total;
        total += (int64_t)W[i] * H[i];
    }
    uint16_t *pix = xmalloc(sizeof(uint16_t) * (size_t)total);
    for (int64_t i = 0; i < total; i++)
        pix[i] = (uint16_t)(urand() * 65536);
    void *pc = dalloc(CPU, sizeof(uint16_t) * (size_t)total),
         *pg = dalloc(GPU, sizeof(uint16_t) * (size_t)total);
    void *oc = dalloc(CPU, sizeof off), *og = dalloc(GPU, sizeof off);
    void *wc = dalloc(CPU, sizeof W), *wg = dalloc(GPU, sizeof W);
    CHECK(CPU->upload(CPU, &be_err, pc, pix, sizeof(uint16_t) * (size_t)total) == 0);
    CHECK(GPU->upload(GPU, &be_err, pg, pix, sizeof(uint16_t) * (size_t)total) == 0);
    CHECK(CPU->upload(CPU, &be_err, oc, off, sizeof off) == 0 &&
          GPU->upload(GPU, &be_err, og, off, sizeof off) == 0);
    CHECK(CPU->upload(CPU, &be_err, wc, W, sizeof W) == 0 &&
          GPU->upload(GPU, &be_err, wg, W, sizeof W) == 0);
    free(pix);

    const int sizes[][2] = {{13, 5}, {8, 8}, {16, 4}, {29, 7}, {1, 1}, {30, 29}};
    const int n = 17;
    int32_t idx[3 * 17];
    void *ic = dalloc(CPU, sizeof idx), *ig = dalloc(GPU, sizeof idx);
    for (int si = 0; si < 6; si++) {
        int ps = sizes[si][0], os = sizes[si][1];
        for (int i = 0; i < n; i++) {
            int im = (int)(urand() * 3);
            idx[3 * i] = im;
            idx[3 * i + 1] = (int)(urand() * (H[im] - ps + 1));
            idx[3 * i + 2] = (int)(urand() * (W[im] - ps + 1));
        }
        CHECK(CPU->upload(CPU, &be_err, ic, idx, sizeof idx) == 0 &&
              GPU->upload(GPU, &be_err, ig, idx, sizeof idx) == 0);
        buf out = bnew((size_t)n * os * os);
        ON_BOTH("patch_gather",
                B->patch_gather(B, &be_err, side_ ? pg : pc, side_ ? og : oc, side_ ? wg : wc,
                                side_ ? ig : ic, n, ps, os, 0.45, 0.21, P(out)));
        char what[32];
        snprintf(what, sizeof what, "%d->%d", ps, os);
        expect("patch_gather", what, &out, 1e-6);
        bfree(&out);
    }
    /* a window past the right edge is refused on both */
    idx[3 * 4 + 0] = 2;
    idx[3 * 4 + 2] = W[2] - 3;
    CHECK(CPU->upload(CPU, &be_err, ic, idx, sizeof idx) == 0 &&
          GPU->upload(GPU, &be_err, ig, idx, sizeof idx) == 0);
    buf out = bnew((size_t)n * 25);
    CHECK(CPU->patch_gather(CPU, &be_err, pc, oc, wc, ic, n, 5, 5, 0, 1, out.c) == SD_EINVAL);
    CHECK(GPU->patch_gather(GPU, &be_err, pg, og, wg, ig, n, 5, 5, 0, 1, out.g) == SD_EINVAL);
    CHECK(strstr(be_err.msg, "patch 4") != NULL);
    bfree(&out);
    CPU->free(CPU, pc);
    GPU->free(GPU, pg);
    CPU->free(CPU, oc);
    GPU->free(GPU, og);
    CPU->free(CPU, wc);
    GPU->free(GPU, wg);
    CPU->free(CPU, ic);
    GPU->free(GPU, ig);
}

/* ---------------------------------------------------------- determinism */

static int gpu_same_twice(float *a, size_t n, int (*run)(void *), void *ctx)
{
    float *h1, *h2;
    if (GPU->zero(GPU, &be_err, a, n * sizeof(float)) || run(ctx))
        return 0;
    h1 = bget(GPU, a, n);
    if (GPU->zero(GPU, &be_err, a, n * sizeof(float)) || run(ctx)) {
        free(h1);
        return 0;
    }
    h2 = bget(GPU, a, n);
    int same = memcmp(h1, h2, n * sizeof(float)) == 0;
    free(h1);
    free(h2);
    return same;
}

typedef struct det_conv {
    sd_conv_desc d;
    buf x, gy, gw;
    void *ws;
} det_conv;

static int det_conv_run(void *p)
{
    det_conv *c = p;
    return GPU->conv_bwd_filter(GPU, &be_err, &c->d, c->x.g, c->gy.g, c->gw.g, c->ws);
}

typedef struct det_bn {
    sd_bn_desc d;
    buf x, dx, gamma, dgamma, mean, invstd, gy, dgy, dgx, dgg, dgb;
} det_bn;

static int det_bn_run(void *p)
{
    det_bn *b = p;
    return GPU->zero(GPU, &be_err, b->dgg.g, b->dgg.n * 4) ||
           GPU->bn_bwd_tangent_train(GPU, &be_err, &b->d, b->x.g, b->dx.g, b->gamma.g, b->dgamma.g,
                                     b->mean.g, b->invstd.g, b->gy.g, b->dgy.g, b->dgx.g, b->dgg.g,
                                     b->dgb.g);
}

static void test_determinism(void)
{
    det_conv c;
    c.d = conv_desc(quick ? 4 : 32, 32, 20, 20, 64, 3, 3, 1, 1);
    size_t xs = (size_t)c.d.n * c.d.c * c.d.h * c.d.w, ys = (size_t)c.d.n * c.d.k * c.d.oh * c.d.ow;
    c.x = brandn(xs, -1, 1);
    c.gy = brandn(ys, -1, 1);
    c.gw = bnew((size_t)c.d.k * c.d.c * 9);
    size_t wsz = GPU->conv_workspace(GPU, &c.d);
    c.ws = wsz ? dalloc(GPU, wsz) : NULL;
    CHECKF(gpu_same_twice(c.gw.g, c.gw.n, det_conv_run, &c), "conv_bwd_filter not reproducible");
    GPU->free(GPU, c.ws);
    bfree(&c.x);
    bfree(&c.gy);
    bfree(&c.gw);

    det_bn b;
    b.d = (sd_bn_desc){quick ? 4 : 16, 16, 4096, 1e-5};
    size_t sz = (size_t)b.d.n * b.d.c * b.d.hw;
    b.x = brandn(sz, -1, 2);
    b.dx = brandn(sz, -1, 1);
    b.gy = brandn(sz, -1, 1);
    b.dgy = brandn(sz, -1, 1);
    b.dgx = bnew(sz);
    b.gamma = brandn(16, 0.5, 1.5);
    b.dgamma = brandn(16, -1, 1);
    b.mean = brandn(16, 0, 1);
    b.invstd = brandn(16, 0.5, 1);
    b.dgg = bnew(16);
    b.dgb = bnew(16);
    CHECKF(gpu_same_twice(b.dgx.g, sz, det_bn_run, &b), "bn_bwd_tangent_train not reproducible");
    buf *all[] = {&b.x,      &b.dx,   &b.gy,     &b.dgy, &b.dgx, &b.gamma,
                  &b.dgamma, &b.mean, &b.invstd, &b.dgg, &b.dgb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        bfree(all[i]);

    buf x = brandn(quick ? 10000 : 3000000, -1, 1);
    double d1 = 0, d2 = 0;
    CHECK(GPU->dot(GPU, &be_err, x.n, x.g, x.g, &d1) == 0 &&
          GPU->dot(GPU, &be_err, x.n, x.g, x.g, &d2) == 0);
    CHECK(d1 == d2);
    bfree(&x);
}

/* ---------------------------------------------------------------- layers */

static void layer_case(const char *name, sd_layer l, int n, sd_bn_mode mode, int dtrain, double tol)
{
    sd_error err = {0};
    if (sd_layer_finish(&l, &err)) {
        CHECKF(0, "layer %s: %s", name, err.msg);
        return;
    }
    buf x[SD_LAYER_MAX_IN], dx[SD_LAYER_MAX_IN], gx[SD_LAYER_MAX_IN], dgx[SD_LAYER_MAX_IN];
    for (int i = 0; i < l.n_in; i++) {
        size_t s = (size_t)n * sd_layer_in_size(&l, i);
        x[i] = brandn(s, -1, 1);
        dx[i] = brandn(s, -1, 1);
        gx[i] = brandn(s, -1, 1);
        dgx[i] = brandn(s, -1, 1);
    }
    size_t ys = (size_t)n * sd_layer_out_size(&l), tl = l.theta_len;
    buf y = bnew(ys), dy = bnew(ys), gy = brandn(ys, -1, 1), dgy = brandn(ys, -1, 1);
    buf th = brandn(tl ? tl : 1, -0.5, 0.5), dth = brandn(tl ? tl : 1, -0.5, 0.5),
        gth = brandn(tl ? tl : 1, -1, 1), dgth = brandn(tl ? tl : 1, -1, 1);
    int c = l.in[0].c;
    buf bns = bnew(2 * (size_t)c);
    if (l.kind == SD_LAYER_BN) {
        float *h = bget(CPU, th.c, tl);
        for (int i = 0; i < c; i++)
            h[i] = (float)(0.5 + urand()); /* gamma */
        bset(&th, h);
        free(h);
        h = xmalloc(sizeof(float) * 2 * (size_t)c);
        for (int i = 0; i < c; i++) {
            h[i] = (float)(urand() - 0.5);
            h[c + i] = (float)(0.3 + urand());
        }
        bset(&bns, h);
        free(h);
    }
    size_t sv = sd_layer_saved_size(&l, n);
    buf saved = bnew(sv ? sv : 1);
    size_t wsc = sd_layer_ws_size(&l, n, CPU), wsg = sd_layer_ws_size(&l, n, GPU);
    void *wkc = wsc ? dalloc(CPU, wsc) : NULL, *wkg = wsg ? dalloc(GPU, wsg) : NULL;

    sd_layer_io io[2];
    for (int side_ = 0; side_ < 2; side_++) {
        sd_layer_io *o = &io[side_];
        memset(o, 0, sizeof *o);
        o->n = n;
        o->bn_mode = mode;
        o->dropout_train = dtrain;
        o->dropout_seed = 12345;
        for (int i = 0; i < l.n_in; i++) {
            o->x[i] = P(x[i]);
            o->dx[i] = P(dx[i]);
            o->gx[i] = P(gx[i]);
            o->dgx[i] = P(dgx[i]);
        }
        o->y = P(y);
        o->dy = P(dy);
        o->gy = P(gy);
        o->dgy = P(dgy);
        if (tl) {
            o->theta = P(th);
            o->dtheta = P(dth);
            o->gtheta = P(gth);
            o->dgtheta = P(dgth);
        }
        o->theta_bn = P(bns);
        o->saved = sv ? P(saved) : NULL;
        o->ws = side_ ? wkg : wkc;
    }
    char cat[64];
    snprintf(cat, sizeof cat, "layer %s", name);
    ON_BOTH("forward", sd_layer_forward(B, &l, &io[side_]));
    expect(cat, "forward y", &y, tol);
    ON_BOTH("backward", sd_layer_backward(B, &l, &io[side_]));
    for (int i = 0; i < l.n_in; i++)
        expect(cat, "backward gx", &gx[i], tol);
    if (tl)
        expect(cat, "backward gtheta", &gth, tol);
    ON_BOTH("forward_tangent", sd_layer_forward_tangent(B, &l, &io[side_]));
    expect(cat, "forward_tangent dy", &dy, tol);
    ON_BOTH("backward_tangent", sd_layer_backward_tangent(B, &l, &io[side_]));
    for (int i = 0; i < l.n_in; i++)
        expect(cat, "backward_tangent dgx", &dgx[i], tol);
    if (tl)
        expect(cat, "backward_tangent dgtheta", &dgth, tol);

    for (int i = 0; i < l.n_in; i++) {
        bfree(&x[i]);
        bfree(&dx[i]);
        bfree(&gx[i]);
        bfree(&dgx[i]);
    }
    buf *all[] = {&y, &dy, &gy, &dgy, &th, &dth, &gth, &dgth, &bns, &saved};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        bfree(all[i]);
    CPU->free(CPU, wkc);
    GPU->free(GPU, wkg);
}

static sd_layer L(sd_layer_kind kind, int c, int h, int w)
{
    sd_layer l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    l.n_in = 1;
    l.in[0] = (sd_shape){c, h, w};
    return l;
}

static void test_layers(void)
{
    sd_layer l;
    l = L(SD_LAYER_CONV, 3, 11, 9);
    l.k = 8, l.r = l.s = 3, l.stride = 1, l.pad = 1, l.bias = 1;
    layer_case("conv 3x3", l, 4, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_CONV, 4, 15, 15);
    l.k = 6, l.r = l.s = 5, l.stride = 2, l.pad = 2, l.bias = 0;
    layer_case("conv 5x5/2", l, 3, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_LINEAR, 5, 3, 3);
    l.out_features = 7, l.bias = 1;
    layer_case("linear", l, 6, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_BN, 6, 5, 5);
    layer_case("bn batch", l, 4, SD_BN_BATCH, 0, TOL_LAYER);
    layer_case("bn frozen", l, 4, SD_BN_FROZEN, 0, TOL_LAYER);
    l = L(SD_LAYER_BN, 10, 1, 1);
    layer_case("bn 1d", l, 8, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_RELU, 4, 6, 6);
    layer_case("relu", l, 3, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_MAXPOOL, 3, 11, 11);
    l.kh = 3, l.sh = 2, l.ph = l.pw = 1;
    layer_case("maxpool 3/2", l, 2, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_MAXPOOL, 2, 9, 7);
    l.kh = 2, l.ceil_mode = 1;
    layer_case("maxpool ceil", l, 3, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_AVGPOOL, 3, 10, 9);
    l.kh = 3, l.sh = 2, l.ph = l.pw = 1, l.ceil_mode = 1;
    layer_case("avgpool", l, 2, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_ADAPTIVE_AVGPOOL, 8, 5, 5);
    l.kh = l.kw = 1;
    layer_case("adaptive 1x1", l, 3, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_ADAPTIVE_AVGPOOL, 4, 7, 5);
    l.kh = 3, l.kw = 2;
    layer_case("adaptive 3x2", l, 2, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_ADD, 4, 5, 5);
    l.n_in = 2, l.in[1] = l.in[0];
    layer_case("add", l, 3, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_CONCAT, 3, 4, 4);
    l.n_in = 2, l.in[1] = (sd_shape){5, 4, 4};
    layer_case("concat", l, 2, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_FLATTEN, 3, 4, 4);
    layer_case("flatten", l, 2, SD_BN_BATCH, 0, TOL_LAYER);
    l = L(SD_LAYER_DROPOUT, 4, 6, 6);
    l.p_drop = 0.3;
    layer_case("dropout train", l, 3, SD_BN_BATCH, 1, TOL_LAYER);
    layer_case("dropout eval", l, 3, SD_BN_BATCH, 0, TOL_LAYER);
}

/* ----------------------------------------------------------------- models */

static void model_case(const char *arch, int size, int n, sd_bn_mode mode)
{
    sd_error err = {0};
    sd_model_spec spec;
    memset(&spec, 0, sizeof spec);
    if (sd_model_spec_parse_arch(&spec, arch, &err)) {
        CHECKF(0, "%s: %s", arch, err.msg);
        return;
    }
    spec.in_c = 1;
    spec.in_h = spec.in_w = size;
    spec.classes = 3;
    if (!strncmp(arch, "convnet", 7)) {
        spec.depth = 3;
        spec.width = 16;
    }
    sd_model *m = NULL;
    if (sd_model_spec_normalize(&spec, &err) || sd_model_create(&m, &spec, &err)) {
        CHECKF(0, "%s: %s", arch, err.msg);
        return;
    }
    sd_exec *ec = NULL, *eg = NULL;
    if (sd_exec_create(&ec, m, CPU, n, SD_EXEC_TANGENT, &err) ||
        sd_exec_create(&eg, m, GPU, n, SD_EXEC_TANGENT, &err)) {
        CHECKF(0, "%s exec: %s", arch, err.msg);
        sd_exec_destroy(ec);
        sd_model_destroy(m);
        return;
    }
    float *h = xmalloc(sizeof(float) * m->n_theta);
    if (sd_init_theta(m, 7, h, &err))
        fatal(err.msg, NULL);
    buf th = bnew(m->n_theta);
    bset(&th, h);
    free(h);
    size_t xs = (size_t)n * size * size, ys = (size_t)n * 3;
    buf x = brandn(xs, -1, 1), y = brandn(ys, -1, 1), v = brandn(m->n_theta, -0.01, 0.01),
        bns = bnew(m->n_bn ? m->n_bn : 1), gth = bnew(m->n_theta), hv = bnew(m->n_theta),
        dgx = bnew(xs), dgy = bnew(ys);
    if (m->n_bn) {
        h = xmalloc(sizeof(float) * m->n_bn);
        sd_init_theta_bn(m, h);
        bset(&bns, h);
        free(h);
    }
    double loss[2] = {0, 0};
    for (int side_ = 0; side_ < 2; side_++) {
        sd_exec_args a;
        memset(&a, 0, sizeof a);
        a.theta = P(th);
        a.theta_bn = P(bns);
        a.bn_mode = mode;
        a.label_mode = SD_LABEL_SOFTMAX;
        a.x = P(x);
        a.y = P(y);
        a.n = n;
        sd_exec *ex = side_ ? eg : ec;
        int rc = sd_exec_hvp(ex, &a, P(v), &loss[side_], P(gth), P(hv), P(dgx), P(dgy), &err);
        CHECKF(rc == 0, "%s hvp on %s: %s", arch, side_ ? "cuda" : "cpu", err.msg);
    }
    char cat[64], lcat[72];
    snprintf(cat, sizeof cat, "model %s%s", arch, mode == SD_BN_FROZEN ? " frozen" : "");
    snprintf(lcat, sizeof lcat, "%s loss", cat);
    expect_scalar(lcat, "", loss[0], loss[1], fabs(loss[0]) > 1 ? fabs(loss[0]) : 1, 1e-5);
    expect(cat, "gtheta", &gth, TOL_MODEL);
    expect(cat, "hv", &hv, TOL_MODEL);
    expect(cat, "dgx", &dgx, TOL_MODEL);
    expect(cat, "dgy", &dgy, TOL_MODEL);
    buf *all[] = {&th, &x, &y, &v, &bns, &gth, &hv, &dgx, &dgy};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        bfree(all[i]);
    sd_exec_destroy(ec);
    sd_exec_destroy(eg);
    sd_model_destroy(m);
}

static void test_models(void)
{
    model_case("convnet-bn", 32, 4, SD_BN_BATCH);
    if (quick)
        return;
    model_case("convnet-bn", 32, 4, SD_BN_FROZEN);
    model_case("convnet", 28, 3, SD_BN_BATCH);
    model_case("resnet18-bn", 64, 4, SD_BN_BATCH);
    model_case("lenet", 28, 5, SD_BN_BATCH);
}

/* ------------------------------------------------------------------ main */

int main(void)
{
    sd_error err = {0};
    const char *req = getenv("SLDD_REQUIRE_GPU");
    const char *q = getenv("SLDD_GPU_TEST_QUICK");
    quick = q && *q && strcmp(q, "0") != 0;
    if (sd_backend_cpu_create(&CPU, 0, &err)) {
        fprintf(stderr, "cpu backend: %s\n", err.msg);
        return 1;
    }
    const char *sc = getenv("SLDD_GPU_TEST_SELFCHECK");
    int selfcheck = sc && !strcmp(sc, "1");
    int rc = selfcheck ? sd_backend_cpu_create(&GPU, 0, &err)
                       : sg_backend_cuda_create(&GPU, 0, SG_MODE_DETERMINISTIC, &err);
    if (rc) {
        sd_backend_destroy(CPU);
        if (rc == SD_EUNSUPPORTED && !(req && !strcmp(req, "1"))) {
            printf("skipped: %s\n", err.msg);
            return SD_TEST_SKIP;
        }
        fprintf(stderr, "cuda backend: %s\n", err.msg);
        return 1;
    }
    char desc[512];
    sg_backend_describe(GPU, desc, sizeof desc);
    printf("cuda backend: %s (built with %s)%s%s\n", desc, sg_build_info(),
           quick ? ", quick shapes" : "",
           selfcheck ? "; SELF-CHECK: a second CPU backend stands in for the GPU" : "");

    test_memory();
    test_vector();
    test_gemm();
    test_tf32_probe();
    test_conv(GPU, "conv");
    test_bias_relu();
    test_pool();
    test_bn();
    test_sce();
    test_patch();
    test_determinism();
    test_layers();
    test_models();

    /* the timed (cudnnFind) algorithm choice of the non-deterministic mode
     * (not in quick mode: timing every algorithm under a sanitizer is slow) */
    sd_backend *fast = NULL;
    if (quick || selfcheck) {
    } else if (sg_backend_cuda_create(&fast, 0, SG_MODE_FAST, &err) == 0) {
        test_conv(fast, "conv (timed algorithms)");
        sd_backend_destroy(fast);
    } else {
        CHECKF(0, "second cuda backend: %s", err.msg);
    }
    /* the deterministic algorithms chosen by heuristics, without timing
     * (SLDD_CUDA_DETERMINISTIC=2); the main backend times them */
    sd_backend *heur = NULL;
    if (quick || selfcheck) {
    } else if (sg_backend_cuda_create(&heur, 0, SG_MODE_DETERMINISTIC_HEURISTIC, &err) == 0) {
        test_conv(heur, "conv (heuristic algorithms)");
        sd_backend_destroy(heur);
    } else {
        CHECKF(0, "third cuda backend: %s", err.msg);
    }

    printf("%-36s %6s %10s %10s\n", "check", "count", "worst", "tolerance");
    for (int i = 0; i < n_stats; i++)
        printf("%-36s %6d %10.2e %10.0e\n", stats[i].cat, stats[i].count, stats[i].worst,
               stats[i].tol);
    sd_backend_destroy(GPU);
    sd_backend_destroy(CPU);
    return sd_test_finish();
}
