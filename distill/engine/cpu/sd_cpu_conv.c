/*
 * sd_cpu_conv.c - convolution on the CPU: im2col + GEMM and its variants.
 * GPU twin: gpu/sg_conv.cu (cuDNN with a plan per shape).
 *
 * Paths (sd_backend_cpu.h): im2col one sample at a time in blocks of output
 * rows, batched im2col (several samples in one wide GEMM), the 1x1 GEMM on x
 * itself, the shift path (one GEMM per kernel tap), and oneDNN's convolutions
 * (sd_cpu_dnnl.c).  The automatic choice per shape (conv_path_auto) comes
 * from tests/bench/bench_conv.c and tests/bench/bench_conv_dnnl.c.  The
 * per-sample path splits samples over the pool (sd_cpu_for), each chunk with
 * its own columns; every sample is computed the same way whichever chunk
 * holds it.  Owns the conv fields of cpu_ctx (forced path, im2col bound).
 */
#include "sd_cpu_internal.h"

#include <string.h>

static int conv_desc_ok(const sd_conv_desc *d)
{
    if (d->n < 0 || d->c < 1 || d->h < 1 || d->w < 1 || d->k < 1 || d->r < 1 || d->s < 1 ||
        d->stride < 1 || d->pad < 0)
        return 0;
    if (d->h + 2 * d->pad < d->r || d->w + 2 * d->pad < d->s)
        return 0;
    return d->oh == (d->h + 2 * d->pad - d->r) / d->stride + 1 &&
           d->ow == (d->w + 2 * d->pad - d->s) / d->stride + 1;
}

int sd_cpu_conv_path_applies(sd_cpu_conv_path path, const sd_conv_desc *d)
{
    switch (path) {
    case SD_CPU_CONV_IM2COL:
    case SD_CPU_CONV_IM2COL_BATCH: return 1;
    case SD_CPU_CONV_GEMM1X1: return d->r == 1 && d->s == 1 && d->stride == 1 && d->pad == 0;
    case SD_CPU_CONV_SHIFT: return d->stride == 1;
    case SD_CPU_CONV_DNNL: return sd_cpu_dnnl_available();
    case SD_CPU_CONV_DIRECT: return sd_cpu_direct_applies(d);
    default: return 0;
    }
}

const char *sd_cpu_conv_path_name(sd_cpu_conv_path path)
{
    switch (path) {
    case SD_CPU_CONV_AUTO: return "auto";
    case SD_CPU_CONV_IM2COL: return "im2col";
    case SD_CPU_CONV_IM2COL_BATCH: return "im2col-batch";
    case SD_CPU_CONV_GEMM1X1: return "gemm1x1";
    case SD_CPU_CONV_SHIFT: return "shift";
    case SD_CPU_CONV_DNNL: return "dnnl";
    case SD_CPU_CONV_DIRECT: return "direct";
    default: return "?";
    }
}

/* Columns one wide GEMM of the batched im2col path aims for: small feature
 * maps (16x16 and below) make per-sample GEMMs too thin for BLAS to reach
 * its speed, so several samples share one product. */
#define CONV_BATCH_COLS 2048

/* Default bound (sd_real elements) for the im2col buffer.  Large maps (a
 * 299x299 patch through VGG's first layers would need 200 MB per sample) are
 * done in blocks of output rows instead; typical shapes here (64x64 and below)
 * fit in one block. */
#define CONV_COL_CAP ((size_t)1 << 23)

static int conv_batch_samples(const sd_conv_desc *d, size_t cap)
{
    size_t hw = (size_t)d->oh * d->ow, per = ((size_t)d->c * d->r * d->s + (size_t)d->k) * hw;
    size_t nb = (CONV_BATCH_COLS + hw - 1) / hw;
    if (nb > (size_t)d->n)
        nb = (size_t)d->n;
    if (nb * per > cap)
        nb = cap / per;
    return nb < 1 ? 1 : (int)nb;
}

/* Output rows per block of the per-sample im2col path. */
static int conv_row_block(const sd_conv_desc *d, size_t cap)
{
    size_t row = (size_t)d->c * d->r * d->s * d->ow;
    size_t rb = cap / (row ? row : 1);
    if (rb > (size_t)d->oh)
        rb = (size_t)d->oh;
    return rb < 1 ? 1 : (int)rb;
}

/* The automatic choice, per pass, from the measurements in docs/benchmarks.md
 * ("CPU convolution paths, per pass"), one thread on one batch shard:
 *  - few input channels (c < 16), kernels of 5x5 or more, stride 1 (LeNet):
 *    the direct path for the filter gradient (1.7-2.3x oneDNN), for the
 *    forward pass with one or two input channels (2.1x oneDNN, which pads
 *    the channels to 16; with 6, conv2, oneDNN is faster), and for
 *    backward-data where the output map is about as large as the input
 *    (LeNet's conv1, 1.8x the shift path: otherwise the full correlation
 *    multiplies mostly padding);
 *  - otherwise oneDNN where it is built in and can run (sd_cpu_dnnl_available):
 *    - 16 or more input channels (one register block of oneDNN's layout):
 *      forward and backward-data on output maps of 4x4 or more, the filter
 *      gradient on 7x7 or more (below, converting each shard's weight
 *      gradient back costs more than the kernel gains: ResNet18 layer3 at
 *      4x4; at 2x2, layer4, every pass is slower);
 *    - fewer input channels with a reduction of 25 or more (c*r*s: LeNet's
 *      conv2 forward, ResNet18's 7x7 stem): the forward and the filter
 *      gradient, 1.5-3x the im2col GEMM, whose product has too few rows
 *      (k <= 16) or too short a reduction to keep the FMA units busy.  Not
 *      backward-data: oneDNN pads the input channels to 16 and does up to
 *      16x the work;
 *  - backward-data of the other few-channel 5x5-or-larger stride-1 layers
 *    (LeNet's conv2): the shift path (one GEMM per tap, each as wide as the
 *    map), 1.7x im2col;
 *  - 1x1, stride 1, no padding: the input already is the GEMM operand;
 *  - tiny output maps (8x8 and below) with a deep reduction (c*r*s >= 256):
 *    a per-sample GEMM is too thin, batch several samples into one;
 *  - otherwise one im2col+GEMM per sample (one-channel 3x3 stems among them:
 *    K = 9 suits neither oneDNN nor the shift path).
 * The rule reads the layer's shape and the pass only (never a shard's n), so
 * every shard and thread count takes the same path and the same bits
 * (docs/cpu-backend.md). */
static sd_cpu_conv_path conv_path_auto(const sd_conv_desc *d, size_t cap, sd_cpu_conv_pass pass)
{
    const long ohw = (long)d->oh * d->ow, crs = (long)d->c * d->r * d->s;
    if (d->c < 16 && (long)d->r * d->s >= 25 && sd_cpu_conv_path_applies(SD_CPU_CONV_DIRECT, d)) {
        if (pass == SD_CPU_CONV_BWD_FILTER || (pass == SD_CPU_CONV_FWD && d->c <= 2))
            return SD_CPU_CONV_DIRECT;
        if (pass == SD_CPU_CONV_BWD_DATA && (long)d->h * d->w * 4 <= ohw * 5)
            return SD_CPU_CONV_DIRECT;
    }
    if (sd_cpu_dnnl_available()) {
        if (d->c >= 16 && ohw >= (pass == SD_CPU_CONV_BWD_FILTER ? 49 : 16))
            return SD_CPU_CONV_DNNL;
        if (d->c < 16 && crs >= 25 && pass != SD_CPU_CONV_BWD_DATA)
            return SD_CPU_CONV_DNNL;
    }
    if (pass == SD_CPU_CONV_BWD_DATA && d->c < 16 && (long)d->r * d->s >= 25 &&
        sd_cpu_conv_path_applies(SD_CPU_CONV_SHIFT, d))
        return SD_CPU_CONV_SHIFT;
    if (sd_cpu_conv_path_applies(SD_CPU_CONV_GEMM1X1, d))
        return SD_CPU_CONV_GEMM1X1;
    if (ohw <= 64 && crs >= 256 && d->n > 1 && conv_batch_samples(d, cap) > 1)
        return SD_CPU_CONV_IM2COL_BATCH;
    return SD_CPU_CONV_IM2COL;
}

static sd_cpu_conv_path conv_path_for(sd_backend *be, const sd_conv_desc *d, sd_cpu_conv_pass pass)
{
    cpu_ctx *ctx = be->ctx;
    sd_cpu_conv_path p = ctx->conv_path;
    if (p == SD_CPU_CONV_AUTO)
        return conv_path_auto(d, ctx->col_cap, pass);
    return sd_cpu_conv_path_applies(p, d) ? p : SD_CPU_CONV_IM2COL;
}

int sd_backend_cpu_has_dnnl(void)
{
    return sd_cpu_dnnl_available();
}

const char *sd_backend_cpu_dnnl_unusable(void)
{
    return sd_cpu_dnnl_unusable_reason();
}

sd_cpu_conv_path sd_backend_cpu_conv_path(sd_backend *be, const sd_conv_desc *d,
                                          sd_cpu_conv_pass pass)
{
    return conv_path_for(be, d, pass);
}

int sd_backend_cpu_set_conv_path(sd_backend *be, sd_cpu_conv_path path)
{
    if (!be || !sd_cpu_is(be) || path < 0 || path >= SD_CPU_CONV_PATH_COUNT)
        return SD_EINVAL;
    ((cpu_ctx *)be->ctx)->conv_path = path;
    return SD_OK;
}

int sd_backend_cpu_set_col_cap(sd_backend *be, size_t elems)
{
    if (!be || !sd_cpu_is(be))
        return SD_EINVAL;
    ((cpu_ctx *)be->ctx)->col_cap = elems ? elems : CONV_COL_CAP;
    return SD_OK;
}

/* Workspace, in sd_real elements, of each path. */
static size_t conv_ws_elems(sd_cpu_conv_path p, const sd_conv_desc *d, size_t cap)
{
    size_t crs = (size_t)d->c * d->r * d->s, ohw = (size_t)d->oh * d->ow;
    switch (p) {
    case SD_CPU_CONV_DIRECT: return sd_cpu_direct_ws_elems(d);
    case SD_CPU_CONV_GEMM1X1: return 0;
    case SD_CPU_CONV_DNNL: return sd_cpu_dnnl_ws_elems(d);
    case SD_CPU_CONV_IM2COL_BATCH: {
        size_t nb = (size_t)conv_batch_samples(d, cap);
        /* columns of nb samples, and the wide GEMM result / gathered gy */
        return (crs + (size_t)d->k) * nb * ohw;
    }
    case SD_CPU_CONV_SHIFT: {
        size_t hp = (size_t)d->h + 2 * (size_t)d->pad, wp = (size_t)d->w + 2 * (size_t)d->pad;
        size_t cs = hp * wp + (size_t)d->s;
        return (size_t)d->c * cs + (size_t)d->k * d->oh * wp + (size_t)d->r * d->s * d->k * d->c;
    }
    case SD_CPU_CONV_IM2COL:
    default: return crs * (size_t)conv_row_block(d, cap) * (size_t)d->ow;
    }
}

/* Chunks of the per-sample im2col path run at once (conv_fwd and
 * conv_bwd_data over samples), each with its own columns: as many as there
 * are threads, within CONV_COL_CAP elements of workspace in all. */
static int conv_chunks(sd_backend *be, const sd_conv_desc *d)
{
    cpu_ctx *c = be->ctx;
    if (!c->pool || (conv_path_for(be, d, SD_CPU_CONV_FWD) != SD_CPU_CONV_IM2COL &&
                     conv_path_for(be, d, SD_CPU_CONV_BWD_DATA) != SD_CPU_CONV_IM2COL))
        return 1;
    size_t one = conv_ws_elems(SD_CPU_CONV_IM2COL, d, c->col_cap);
    size_t fit = one ? CONV_COL_CAP / one : 1;
    return fit < 1 ? 1 : fit < (size_t)c->threads ? (int)fit : c->threads;
}

static size_t cpu_conv_workspace(sd_backend *be, const sd_conv_desc *d)
{
    if (!conv_desc_ok(d))
        return 0;
    /* the largest of the three passes' needs; the per-sample im2col path of
     * the forward and backward-data passes runs conv_chunks chunks at once */
    size_t cap = ((cpu_ctx *)be->ctx)->col_cap, most = 0;
    for (int pass = SD_CPU_CONV_FWD; pass <= SD_CPU_CONV_BWD_FILTER; pass++) {
        sd_cpu_conv_path p = conv_path_for(be, d, (sd_cpu_conv_pass)pass);
        size_t e = conv_ws_elems(p, d, cap);
        if (p == SD_CPU_CONV_IM2COL && pass != SD_CPU_CONV_BWD_FILTER)
            e *= (size_t)conv_chunks(be, d);
        if (e > most)
            most = e;
    }
    return most * sizeof(sd_real);
}

/* conv_fwd / conv_bwd_data of the im2col path over samples [lo, hi), with
 * chunk t's columns */
typedef struct conv_job {
    const sd_conv_desc *d;
    size_t cap, one;
    const sd_real *in, *w;
    sd_real beta, *out, *ws;
    int bwd_data;
} conv_job;

static void conv_fwd_im2col(const sd_conv_desc *d, size_t cap, const sd_real *x, const sd_real *w,
                            sd_real beta, sd_real *y, sd_real *col);
static void conv_bwd_data_im2col(const sd_conv_desc *d, size_t cap, const sd_real *gy,
                                 const sd_real *w, sd_real *gx, sd_real *col);

static void conv_chunk(void *arg, int t, int lo, int hi)
{
    const conv_job *j = arg;
    sd_conv_desc s = *j->d;
    s.n = hi - lo;
    size_t chw = (size_t)s.c * s.h * s.w, kohw = (size_t)s.k * s.oh * s.ow;
    sd_real *col = j->ws + (size_t)t * j->one;
    if (j->bwd_data)
        conv_bwd_data_im2col(&s, j->cap, j->in + (size_t)lo * kohw, j->w, j->out + (size_t)lo * chw,
                             col);
    else
        conv_fwd_im2col(&s, j->cap, j->in + (size_t)lo * chw, j->w, j->beta,
                        j->out + (size_t)lo * kohw, col);
}

static void conv_im2col_par(sd_backend *be, const sd_conv_desc *d, int bwd_data, const sd_real *in,
                            const sd_real *w, sd_real beta, sd_real *out, void *ws)
{
    size_t cap = ((cpu_ctx *)be->ctx)->col_cap;
    conv_job j = {d,  cap,     conv_ws_elems(SD_CPU_CONV_IM2COL, d, cap), in, w, beta, out,
                  ws, bwd_data};
    size_t work = (size_t)d->n * d->k * d->c * d->r * d->s * d->oh * d->ow;
    sd_cpu_for(be, d->n, work, conv_chunks(be, d), conv_chunk, &j);
}

/* Range of output positions o (0 <= o < on) whose input coordinate
 * o*stride - pad + t lies inside [0, in): [*lo, *hi). */
static void conv_valid_range(int on, int in, int stride, int pad, int t, int *lo, int *hi)
{
    int a = pad - t; /* need o*stride >= a */
    int l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int b = in + pad - t; /* need o*stride < b */
    int h = b <= 0 ? 0 : (b - 1) / stride + 1;
    if (h > on)
        h = on;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* col (c*r*s rows, row stride ldcol) = im2col of output rows [oy0, oy1) of
 * one sample x (c,h,w); column (oy - oy0)*ow + ox. */
static void im2col(const sd_conv_desc *d, const sd_real *x, int oy0, int oy1, sd_real *col,
                   size_t ldcol)
{
    const int ow = d->ow, st = d->stride;
    for (int c = 0; c < d->c; c++) {
        const sd_real *xc = x + (size_t)c * d->h * d->w;
        for (int i = 0; i < d->r; i++) {
            int ylo, yhi;
            conv_valid_range(d->oh, d->h, st, d->pad, i, &ylo, &yhi);
            for (int j = 0; j < d->s; j++) {
                int xlo, xhi;
                conv_valid_range(ow, d->w, st, d->pad, j, &xlo, &xhi);
                sd_real *dst = col + ((size_t)(c * d->r + i) * d->s + j) * ldcol;
                for (int oy = oy0; oy < oy1; oy++) {
                    sd_real *drow = dst + (size_t)(oy - oy0) * ow;
                    if (oy < ylo || oy >= yhi) {
                        memset(drow, 0, sizeof(sd_real) * (size_t)ow);
                        continue;
                    }
                    const sd_real *srow = xc + (size_t)(oy * st - d->pad + i) * d->w;
                    for (int ox = 0; ox < xlo; ox++)
                        drow[ox] = 0;
                    if (st == 1) {
                        /* rows of small maps are short: a plain loop (which
                         * the vectoriser handles) beats a memcpy call */
                        const sd_real *sp = srow + xlo - d->pad + j;
                        int len = xhi - xlo;
                        if (len >= 64)
                            memcpy(drow + xlo, sp, sizeof(sd_real) * (size_t)len);
                        else
                            for (int q = 0; q < len; q++)
                                drow[xlo + q] = sp[q];
                    } else {
                        for (int ox = xlo; ox < xhi; ox++)
                            drow[ox] = srow[ox * st - d->pad + j];
                    }
                    for (int ox = xhi; ox < ow; ox++)
                        drow[ox] = 0;
                }
            }
        }
    }
}

/* gx (c,h,w) += col2im(col) for output rows [oy0, oy1): the adjoint of im2col. */
static void col2im_add(const sd_conv_desc *d, const sd_real *col, int oy0, int oy1, size_t ldcol,
                       sd_real *gx)
{
    const int ow = d->ow, st = d->stride;
    for (int c = 0; c < d->c; c++) {
        sd_real *gc = gx + (size_t)c * d->h * d->w;
        for (int i = 0; i < d->r; i++) {
            int ylo, yhi;
            conv_valid_range(d->oh, d->h, st, d->pad, i, &ylo, &yhi);
            if (ylo < oy0)
                ylo = oy0;
            if (yhi > oy1)
                yhi = oy1;
            for (int j = 0; j < d->s; j++) {
                int xlo, xhi;
                conv_valid_range(ow, d->w, st, d->pad, j, &xlo, &xhi);
                const sd_real *src = col + ((size_t)(c * d->r + i) * d->s + j) * ldcol;
                for (int oy = ylo; oy < yhi; oy++) {
                    const sd_real *srow = src + (size_t)(oy - oy0) * ow;
                    sd_real *grow = gc + (size_t)(oy * st - d->pad + i) * d->w - d->pad + j;
                    for (int ox = xlo; ox < xhi; ox++)
                        grow[ox * st] += srow[ox];
                }
            }
        }
    }
}

/* ---- im2col, one sample at a time, in blocks of output rows ---- */

static void conv_fwd_im2col(const sd_conv_desc *d, size_t cap, const sd_real *x, const sd_real *w,
                            sd_real beta, sd_real *y, sd_real *col)
{
    const int crs = d->c * d->r * d->s, ohw = d->oh * d->ow, rb = conv_row_block(d, cap);
    const size_t chw = (size_t)d->c * d->h * d->w, kohw = (size_t)d->k * ohw;
    for (int n = 0; n < d->n; n++)
        for (int oy0 = 0; oy0 < d->oh; oy0 += rb) {
            int oy1 = oy0 + rb < d->oh ? oy0 + rb : d->oh, cols = (oy1 - oy0) * d->ow;
            im2col(d, x + (size_t)n * chw, oy0, oy1, col, (size_t)cols);
            blas_gemm(0, 0, d->k, cols, crs, 1, w, crs, col, cols, beta,
                      y + (size_t)n * kohw + (size_t)oy0 * d->ow, ohw);
        }
}

static void conv_bwd_data_im2col(const sd_conv_desc *d, size_t cap, const sd_real *gy,
                                 const sd_real *w, sd_real *gx, sd_real *col)
{
    const int crs = d->c * d->r * d->s, ohw = d->oh * d->ow, rb = conv_row_block(d, cap);
    const size_t chw = (size_t)d->c * d->h * d->w, kohw = (size_t)d->k * ohw;
    for (int n = 0; n < d->n; n++)
        for (int oy0 = 0; oy0 < d->oh; oy0 += rb) {
            int oy1 = oy0 + rb < d->oh ? oy0 + rb : d->oh, cols = (oy1 - oy0) * d->ow;
            blas_gemm(1, 0, crs, cols, d->k, 1, w, crs, gy + (size_t)n * kohw + (size_t)oy0 * d->ow,
                      ohw, 0, col, cols);
            col2im_add(d, col, oy0, oy1, (size_t)cols, gx + (size_t)n * chw);
        }
}

static void conv_bwd_filter_im2col(const sd_conv_desc *d, size_t cap, const sd_real *x,
                                   const sd_real *gy, sd_real *gw, sd_real *col)
{
    const int crs = d->c * d->r * d->s, ohw = d->oh * d->ow, rb = conv_row_block(d, cap);
    const size_t chw = (size_t)d->c * d->h * d->w, kohw = (size_t)d->k * ohw;
    for (int n = 0; n < d->n; n++)
        for (int oy0 = 0; oy0 < d->oh; oy0 += rb) {
            int oy1 = oy0 + rb < d->oh ? oy0 + rb : d->oh, cols = (oy1 - oy0) * d->ow;
            im2col(d, x + (size_t)n * chw, oy0, oy1, col, (size_t)cols);
            blas_gemm(0, 1, d->k, crs, cols, 1, gy + (size_t)n * kohw + (size_t)oy0 * d->ow, ohw,
                      col, cols, 1, gw, crs);
        }
}

/* ---- batched im2col: nb samples side by side in one wide GEMM ----
 * col (crs, b*ohw) holds the columns of samples n0..n0+b-1; the product
 * (k, b*ohw) is not NCHW, so it goes through tmp (k, b*ohw) and is copied. */

/* tmp (k, b*ohw) = gy of samples n0..n0+b-1 side by side */
static void gather_gy(const sd_conv_desc *d, const sd_real *gy, int n0, int b, sd_real *tmp)
{
    const size_t ohw = (size_t)d->oh * d->ow, ld = (size_t)b * ohw;
    for (int j = 0; j < b; j++)
        for (int k = 0; k < d->k; k++)
            memcpy(tmp + (size_t)k * ld + (size_t)j * ohw, gy + ((size_t)(n0 + j) * d->k + k) * ohw,
                   sizeof(sd_real) * ohw);
}

static void conv_fwd_batch(const sd_conv_desc *d, size_t cap, const sd_real *x, const sd_real *w,
                           sd_real beta, sd_real *y, sd_real *ws)
{
    const int crs = d->c * d->r * d->s, ohw = d->oh * d->ow, nb = conv_batch_samples(d, cap);
    const size_t chw = (size_t)d->c * d->h * d->w, kohw = (size_t)d->k * ohw;
    for (int n0 = 0; n0 < d->n; n0 += nb) {
        int b = d->n - n0 < nb ? d->n - n0 : nb;
        size_t ld = (size_t)b * ohw;
        sd_real *col = ws, *tmp = ws + (size_t)crs * ld;
        for (int j = 0; j < b; j++)
            im2col(d, x + (size_t)(n0 + j) * chw, 0, d->oh, col + (size_t)j * ohw, ld);
        blas_gemm(0, 0, d->k, (int)ld, crs, 1, w, crs, col, (int)ld, 0, tmp, (int)ld);
        for (int j = 0; j < b; j++) {
            sd_real *yn = y + (size_t)(n0 + j) * kohw;
            for (int k = 0; k < d->k; k++) {
                const sd_real *t = tmp + (size_t)k * ld + (size_t)j * ohw;
                sd_real *yk = yn + (size_t)k * ohw;
                if (beta == 0)
                    memcpy(yk, t, sizeof(sd_real) * (size_t)ohw);
                else
                    for (int p = 0; p < ohw; p++)
                        yk[p] = t[p] + beta * yk[p];
            }
        }
    }
}

static void conv_bwd_data_batch(const sd_conv_desc *d, size_t cap, const sd_real *gy,
                                const sd_real *w, sd_real *gx, sd_real *ws)
{
    const int crs = d->c * d->r * d->s, ohw = d->oh * d->ow, nb = conv_batch_samples(d, cap);
    const size_t chw = (size_t)d->c * d->h * d->w;
    for (int n0 = 0; n0 < d->n; n0 += nb) {
        int b = d->n - n0 < nb ? d->n - n0 : nb;
        size_t ld = (size_t)b * ohw;
        sd_real *col = ws, *tmp = ws + (size_t)crs * ld;
        gather_gy(d, gy, n0, b, tmp);
        blas_gemm(1, 0, crs, (int)ld, d->k, 1, w, crs, tmp, (int)ld, 0, col, (int)ld);
        for (int j = 0; j < b; j++)
            col2im_add(d, col + (size_t)j * ohw, 0, d->oh, ld, gx + (size_t)(n0 + j) * chw);
    }
}

static void conv_bwd_filter_batch(const sd_conv_desc *d, size_t cap, const sd_real *x,
                                  const sd_real *gy, sd_real *gw, sd_real *ws)
{
    const int crs = d->c * d->r * d->s, ohw = d->oh * d->ow, nb = conv_batch_samples(d, cap);
    const size_t chw = (size_t)d->c * d->h * d->w;
    for (int n0 = 0; n0 < d->n; n0 += nb) {
        int b = d->n - n0 < nb ? d->n - n0 : nb;
        size_t ld = (size_t)b * ohw;
        sd_real *col = ws, *tmp = ws + (size_t)crs * ld;
        for (int j = 0; j < b; j++)
            im2col(d, x + (size_t)(n0 + j) * chw, 0, d->oh, col + (size_t)j * ohw, ld);
        gather_gy(d, gy, n0, b, tmp);
        blas_gemm(0, 1, d->k, crs, (int)ld, 1, tmp, (int)ld, col, (int)ld, 1, gw, crs);
    }
}

/* ---- 1x1, stride 1, no padding: x (c, hw) is already the GEMM operand ---- */

static void conv_fwd_1x1(const sd_conv_desc *d, const sd_real *x, const sd_real *w, sd_real beta,
                         sd_real *y)
{
    const int hw = d->h * d->w;
    for (int n = 0; n < d->n; n++)
        blas_gemm(0, 0, d->k, hw, d->c, 1, w, d->c, x + (size_t)n * d->c * hw, hw, beta,
                  y + (size_t)n * d->k * hw, hw);
}

static void conv_bwd_data_1x1(const sd_conv_desc *d, const sd_real *gy, const sd_real *w,
                              sd_real *gx)
{
    const int hw = d->h * d->w;
    for (int n = 0; n < d->n; n++)
        blas_gemm(1, 0, d->c, hw, d->k, 1, w, d->c, gy + (size_t)n * d->k * hw, hw, 1,
                  gx + (size_t)n * d->c * hw, hw);
}

static void conv_bwd_filter_1x1(const sd_conv_desc *d, const sd_real *x, const sd_real *gy,
                                sd_real *gw)
{
    const int hw = d->h * d->w;
    for (int n = 0; n < d->n; n++)
        blas_gemm(0, 1, d->k, d->c, hw, 1, gy + (size_t)n * d->k * hw, hw,
                  x + (size_t)n * d->c * hw, hw, 1, gw, d->c);
}

/* ---- shift path (stride 1) ----
 * With the input zero-padded to hp x wp (channel stride cs = hp*wp + s), the
 * output computed on a "wide" oh x wp grid is, for every tap (i,j),
 *   ywide (k, oh*wp) += W_ij (k,c) * xpad[:, i*wp + j ...] (c, oh*wp; ld cs)
 * because a shift by i*wp + j of the flattened padded image is exactly the
 * input seen by tap (i,j); columns ox >= ow of the wide grid read across row
 * ends and are discarded.  The extra s elements per channel keep every read
 * and write of a tap inside its own channel (no two GEMM rows alias). */

typedef struct shift_geom {
    size_t hp, wp, cs, wide; /* padded size, channel stride, oh*wp */
} shift_geom;

static shift_geom shift_geometry(const sd_conv_desc *d)
{
    shift_geom g;
    g.hp = (size_t)d->h + 2 * (size_t)d->pad;
    g.wp = (size_t)d->w + 2 * (size_t)d->pad;
    g.cs = g.hp * g.wp + (size_t)d->s;
    g.wide = (size_t)d->oh * g.wp;
    return g;
}

static void shift_pad(const sd_conv_desc *d, const shift_geom *g, const sd_real *x, sd_real *xp)
{
    memset(xp, 0, sizeof(sd_real) * (size_t)d->c * g->cs);
    for (int c = 0; c < d->c; c++)
        for (int y = 0; y < d->h; y++)
            memcpy(xp + (size_t)c * g->cs + (size_t)(y + d->pad) * g->wp + d->pad,
                   x + ((size_t)c * d->h + y) * d->w, sizeof(sd_real) * (size_t)d->w);
}

/* wperm[(i*s+j)][k][c] = w[k][c][i][j] */
static void shift_permute_w(const sd_conv_desc *d, const sd_real *w, sd_real *wp)
{
    const size_t rs = (size_t)d->r * d->s, kc = (size_t)d->k * d->c;
    for (int k = 0; k < d->k; k++)
        for (int c = 0; c < d->c; c++)
            for (size_t t = 0; t < rs; t++)
                wp[t * kc + (size_t)k * d->c + c] = w[((size_t)k * d->c + c) * rs + t];
}

/* wide (k, oh*wp) = gy of one sample, zero in the discarded columns */
static void shift_widen(const sd_conv_desc *d, const shift_geom *g, const sd_real *gy,
                        sd_real *wide)
{
    for (int k = 0; k < d->k; k++)
        for (int y = 0; y < d->oh; y++) {
            sd_real *dst = wide + (size_t)k * g->wide + (size_t)y * g->wp;
            memcpy(dst, gy + ((size_t)k * d->oh + y) * d->ow, sizeof(sd_real) * (size_t)d->ow);
            for (size_t x = (size_t)d->ow; x < g->wp; x++)
                dst[x] = 0;
        }
}

static void conv_fwd_shift(const sd_conv_desc *d, const sd_real *x, const sd_real *w, sd_real beta,
                           sd_real *y, sd_real *ws)
{
    shift_geom g = shift_geometry(d);
    const size_t kc = (size_t)d->k * d->c, ohw = (size_t)d->oh * d->ow;
    sd_real *xp = ws, *wide = xp + (size_t)d->c * g.cs, *wperm = wide + (size_t)d->k * g.wide;
    shift_permute_w(d, w, wperm);
    for (int n = 0; n < d->n; n++) {
        shift_pad(d, &g, x + (size_t)n * d->c * d->h * d->w, xp);
        for (int i = 0; i < d->r; i++)
            for (int j = 0; j < d->s; j++) {
                size_t t = (size_t)i * d->s + j;
                blas_gemm(0, 0, d->k, (int)g.wide, d->c, 1, wperm + t * kc, d->c,
                          xp + (size_t)i * g.wp + j, (int)g.cs, t == 0 ? 0 : 1, wide, (int)g.wide);
            }
        sd_real *yn = y + (size_t)n * d->k * ohw;
        for (int k = 0; k < d->k; k++)
            for (int oy = 0; oy < d->oh; oy++) {
                const sd_real *src = wide + (size_t)k * g.wide + (size_t)oy * g.wp;
                sd_real *dst = yn + (size_t)k * ohw + (size_t)oy * d->ow;
                for (int ox = 0; ox < d->ow; ox++)
                    dst[ox] = beta == 0 ? src[ox] : src[ox] + beta * dst[ox];
            }
    }
}

static void conv_bwd_data_shift(const sd_conv_desc *d, const sd_real *gy, const sd_real *w,
                                sd_real *gx, sd_real *ws)
{
    shift_geom g = shift_geometry(d);
    const size_t kc = (size_t)d->k * d->c, ohw = (size_t)d->oh * d->ow;
    sd_real *gxp = ws, *wide = gxp + (size_t)d->c * g.cs, *wperm = wide + (size_t)d->k * g.wide;
    shift_permute_w(d, w, wperm);
    for (int n = 0; n < d->n; n++) {
        shift_widen(d, &g, gy + (size_t)n * d->k * ohw, wide);
        memset(gxp, 0, sizeof(sd_real) * (size_t)d->c * g.cs);
        for (int i = 0; i < d->r; i++)
            for (int j = 0; j < d->s; j++) {
                size_t t = (size_t)i * d->s + j;
                blas_gemm(1, 0, d->c, (int)g.wide, d->k, 1, wperm + t * kc, d->c, wide, (int)g.wide,
                          1, gxp + (size_t)i * g.wp + j, (int)g.cs);
            }
        sd_real *gxn = gx + (size_t)n * d->c * d->h * d->w;
        for (int c = 0; c < d->c; c++)
            for (int y = 0; y < d->h; y++) {
                const sd_real *src = gxp + (size_t)c * g.cs + (size_t)(y + d->pad) * g.wp + d->pad;
                sd_real *dst = gxn + ((size_t)c * d->h + y) * d->w;
                for (int x = 0; x < d->w; x++)
                    dst[x] += src[x];
            }
    }
}

static void conv_bwd_filter_shift(const sd_conv_desc *d, const sd_real *x, const sd_real *gy,
                                  sd_real *gw, sd_real *ws)
{
    shift_geom g = shift_geometry(d);
    const size_t kc = (size_t)d->k * d->c, ohw = (size_t)d->oh * d->ow;
    const size_t rs = (size_t)d->r * d->s;
    sd_real *xp = ws, *wide = xp + (size_t)d->c * g.cs, *gacc = wide + (size_t)d->k * g.wide;
    memset(gacc, 0, sizeof(sd_real) * rs * kc);
    for (int n = 0; n < d->n; n++) {
        shift_pad(d, &g, x + (size_t)n * d->c * d->h * d->w, xp);
        shift_widen(d, &g, gy + (size_t)n * d->k * ohw, wide);
        for (int i = 0; i < d->r; i++)
            for (int j = 0; j < d->s; j++) {
                size_t t = (size_t)i * d->s + j;
                blas_gemm(0, 1, d->k, d->c, (int)g.wide, 1, wide, (int)g.wide,
                          xp + (size_t)i * g.wp + j, (int)g.cs, 1, gacc + t * kc, d->c);
            }
    }
    for (int k = 0; k < d->k; k++)
        for (int c = 0; c < d->c; c++)
            for (size_t t = 0; t < rs; t++)
                gw[((size_t)k * d->c + c) * rs + t] += gacc[t * kc + (size_t)k * d->c + c];
}

static int conv_check(sd_backend *be, sd_error *err, const sd_conv_desc *d, const void *ws,
                      sd_cpu_conv_pass pass, const char *op)
{
    if (!conv_desc_ok(d))
        return CPU_FAIL(err, SD_EINVAL,
                        "cpu %s: inconsistent geometry n=%d c=%d h=%d w=%d k=%d r=%d s=%d "
                        "stride=%d pad=%d oh=%d ow=%d",
                        op, d->n, d->c, d->h, d->w, d->k, d->r, d->s, d->stride, d->pad, d->oh,
                        d->ow);
    if (!ws && conv_ws_elems(conv_path_for(be, d, pass), d, ((cpu_ctx *)be->ctx)->col_cap) > 0)
        return CPU_FAIL(err, SD_EINVAL, "cpu %s: workspace missing", op);
    return SD_OK;
}

static int cpu_conv_fwd(sd_backend *be, sd_error *err, const sd_conv_desc *d, const sd_real *x,
                        const sd_real *w, sd_real beta, sd_real *y, void *ws)
{
    int rc = conv_check(be, err, d, ws, SD_CPU_CONV_FWD, "conv_fwd");
    if (rc)
        return rc;
    const size_t cap = ((cpu_ctx *)be->ctx)->col_cap;
    switch (conv_path_for(be, d, SD_CPU_CONV_FWD)) {
    case SD_CPU_CONV_DNNL: return sd_cpu_dnnl_conv(be, err, SD_CPU_DNNL_FWD, d, x, w, beta, y, ws);
    case SD_CPU_CONV_GEMM1X1: conv_fwd_1x1(d, x, w, beta, y); break;
    case SD_CPU_CONV_SHIFT: conv_fwd_shift(d, x, w, beta, y, ws); break;
    case SD_CPU_CONV_DIRECT: sd_cpu_direct_fwd(d, x, w, beta, y, ws); break;
    case SD_CPU_CONV_IM2COL_BATCH: conv_fwd_batch(d, cap, x, w, beta, y, ws); break;
    default: conv_im2col_par(be, d, 0, x, w, beta, y, ws); break;
    }
    return SD_OK;
}

static int cpu_conv_bwd_data(sd_backend *be, sd_error *err, const sd_conv_desc *d,
                             const sd_real *gy, const sd_real *w, sd_real *gx, void *ws)
{
    int rc = conv_check(be, err, d, ws, SD_CPU_CONV_BWD_DATA, "conv_bwd_data");
    if (rc)
        return rc;
    const size_t cap = ((cpu_ctx *)be->ctx)->col_cap;
    switch (conv_path_for(be, d, SD_CPU_CONV_BWD_DATA)) {
    case SD_CPU_CONV_DNNL:
        return sd_cpu_dnnl_conv(be, err, SD_CPU_DNNL_BWD_DATA, d, gy, w, 0, gx, ws);
    case SD_CPU_CONV_GEMM1X1: conv_bwd_data_1x1(d, gy, w, gx); break;
    case SD_CPU_CONV_SHIFT: conv_bwd_data_shift(d, gy, w, gx, ws); break;
    case SD_CPU_CONV_DIRECT: sd_cpu_direct_bwd_data(d, gy, w, gx, ws); break;
    case SD_CPU_CONV_IM2COL_BATCH: conv_bwd_data_batch(d, cap, gy, w, gx, ws); break;
    default: conv_im2col_par(be, d, 1, gy, w, 0, gx, ws); break;
    }
    return SD_OK;
}

static int cpu_conv_bwd_filter(sd_backend *be, sd_error *err, const sd_conv_desc *d,
                               const sd_real *x, const sd_real *gy, sd_real *gw, void *ws)
{
    int rc = conv_check(be, err, d, ws, SD_CPU_CONV_BWD_FILTER, "conv_bwd_filter");
    if (rc)
        return rc;
    const size_t cap = ((cpu_ctx *)be->ctx)->col_cap;
    switch (conv_path_for(be, d, SD_CPU_CONV_BWD_FILTER)) {
    case SD_CPU_CONV_DNNL:
        return sd_cpu_dnnl_conv(be, err, SD_CPU_DNNL_BWD_FILTER, d, x, gy, 0, gw, ws);
    case SD_CPU_CONV_GEMM1X1: conv_bwd_filter_1x1(d, x, gy, gw); break;
    case SD_CPU_CONV_SHIFT: conv_bwd_filter_shift(d, x, gy, gw, ws); break;
    case SD_CPU_CONV_DIRECT: sd_cpu_direct_bwd_filter(d, x, gy, gw, ws); break;
    case SD_CPU_CONV_IM2COL_BATCH: conv_bwd_filter_batch(d, cap, x, gy, gw, ws); break;
    default: conv_bwd_filter_im2col(d, cap, x, gy, gw, ws); break;
    }
    return SD_OK;
}

void sd_cpu_install_conv(sd_backend *be)
{
    cpu_ctx *ctx = be->ctx;
    ctx->conv_path = SD_CPU_CONV_AUTO;
    ctx->col_cap = CONV_COL_CAP;
    be->conv_workspace = cpu_conv_workspace;
    be->conv_fwd = cpu_conv_fwd;
    be->conv_bwd_data = cpu_conv_bwd_data;
    be->conv_bwd_filter = cpu_conv_bwd_filter;
}
