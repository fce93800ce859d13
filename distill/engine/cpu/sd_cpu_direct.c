/*
 * sd_cpu_direct.c - the `direct` convolution path: register-tiled kernels
 * for few-channel stride-1 layers, where every GEMM of the other paths is
 * thin (LeNet's 5x5 layers: the shift path's per-tap GEMMs have 1 or 6 rows,
 * oneDNN pads one input channel to 16).
 *
 * The forward pass and backward-data of a stride-1 convolution are both a
 * valid correlation of a zero-padded map with a bank of filters:
 *   forward        y[k][y][x]  = sum over c, i, j of w[k][c][i][j] * xpad[c][y+i][x+j]
 *                  (x padded by pad on every side)
 *   backward-data  gx[c][y][x] = sum over k, i, j of w[k][c][r-1-i][s-1-j]
 *                                 * gypad[k][y+i][x+j]
 *                  (gy padded by r-1-pad rows and s-1-pad columns)
 * dk_run (sd_cpu_direct_body.h) computes it in tiles of output channels x
 * rows x vectors of columns whose sums stay in registers, one chain of
 * multiply-adds per output element.  Backward-data this way multiplies the
 * padding too: worth it where the output map is as large as the input
 * (LeNet's conv1), not for a valid convolution (conv2's 10x10 from 14x14
 * pads gy to 18x18: the shift path is faster there).
 *
 * The filter gradient is a reduction over pixels: dk_filter runs it over the
 * flattened padded map (the shift path's layout) with one vector of partial
 * sums per weight, in registers for a block of output channels x taps, kept
 * across the samples and summed across lanes once at the end.
 *
 * The kernels are compiled for AVX-512 (64-byte vectors), AVX2 with FMA
 * (32 bytes) and the baseline (16 bytes); the processor picks one at run
 * time.  AVX2 and AVX-512 fuse each multiply-add, and the filter gradient's
 * lanes depend on the vector width, so the last bits differ between
 * processors, as OpenBLAS's kernels do.  Nothing depends on the batch split or
 * the thread count: the calling thread computes its samples in order.
 */
#include "sd_cpu_internal.h"

#include <string.h>

typedef enum sd_direct_tile {
    SD_DIRECT_TILE_8x1x1, /* channels x rows x vectors */
    SD_DIRECT_TILE_4x2x1,
    SD_DIRECT_TILE_2x4x1,
    SD_DIRECT_TILE_1x8x1,
    SD_DIRECT_TILE_4x1x2,
    SD_DIRECT_TILE_2x2x2,
    SD_DIRECT_TILE_1x4x2,
    SD_DIRECT_TILE_COUNT
} sd_direct_tile;

static const int tile_shape[SD_DIRECT_TILE_COUNT][3] = {{8, 1, 1}, {4, 2, 1}, {2, 4, 1}, {1, 8, 1},
                                                        {4, 1, 2}, {2, 2, 2}, {1, 4, 2}};

/* The correlation out (co x oh x ow) of in (ci x (oh+r-1) x (ow+s-1)), laid
 * out for whole tiles: out is cop x ohp x owp (channels, rows and columns
 * rounded up to the tile), in has ohp + r - 1 rows of irs = owp + s - 1
 * elements per channel (zero beyond the map), wt is cop x ci x r x s (zero
 * for the padding channels). */
typedef struct sd_cpu_direct_geom {
    int ci, co, r, s, oh, ow, lanes;
    int tile, cop, ohp, owp;
    size_t irs, ics;
    size_t in_elems, wt_elems, out_elems;
} sd_cpu_direct_geom;

/* The filter gradient over the flattened padded map (the shift path's
 * "wide" layout, without its GEMMs): xflat holds each input channel padded to
 * hp x wp rows, flattened, with cs elements per channel (zero beyond the map);
 * gyw holds kp output channels (zero beyond k) of pp = np vectors each, gy at
 * y*wp + x for x < ow and zero elsewhere, so that
 *   gw[k][c][i][j] = sum over p of gyw[k][p] * xflat[c][p + i*wp + j];
 * part keeps one vector of partial sums per (k, c, i, j) over the samples
 * (j rounded up to sj, a multiple of DF_JB), summed across lanes at the end. */
#define DF_JB 5
typedef struct sd_cpu_dfilter_geom {
    int k, kp, kb, c, r, s, sj, wp, lanes;
    size_t np, pp, cs;
    size_t x_elems, gy_elems, part_elems;
} sd_cpu_dfilter_geom;

/* The filter gradient with the output channels across the lanes: xpad holds
 * each input channel padded to rows of wp = w + 2*pad (rows up to hp + rp - r,
 * zero beyond the map; cs elements per channel), gyt holds gy transposed to
 * (block of L output channels, pixel y*ow + x, lane) with zero lanes past k,
 * and part one vector (L output channels) per (block, c, i, j), i rounded up
 * to rp (a multiple of the kernel's rows per tile) and j to sj. */
typedef struct sd_cpu_kfilter_geom {
    int k, nkb, c, r, rp, s, sj, oh, ow, wp, lanes;
    size_t cs;
    size_t x_elems, gy_elems, part_elems;
} sd_cpu_kfilter_geom;

static size_t round_up(size_t v, size_t m)
{
    return (v + m - 1) / m * m;
}

/* ---- the kernels, one per instruction set ---- */

#define DK_BYTES  16
#define DK_SUFFIX _base
#define DK_TARGET
#include "sd_cpu_direct_body.h"
#undef DK_BYTES
#undef DK_SUFFIX
#undef DK_TARGET

#if defined(__GNUC__) && defined(__x86_64__)
#define DIRECT_X86 1
#define DK_BYTES   32
#define DK_SUFFIX  _avx2
#define DK_TARGET  __attribute__((target("avx2,fma")))
#include "sd_cpu_direct_body.h"
#undef DK_BYTES
#undef DK_SUFFIX
#undef DK_TARGET

#define DK_BYTES  64
#define DK_SUFFIX _avx512
#define DK_TARGET __attribute__((target("avx512f,avx2,fma")))
#include "sd_cpu_direct_body.h"
#undef DK_BYTES
#undef DK_SUFFIX
#undef DK_TARGET
#endif

typedef void (*direct_kernel)(const sd_cpu_direct_geom *, const sd_real *, const sd_real *,
                              sd_real *);
typedef void (*filter_kernel)(const sd_cpu_dfilter_geom *, const sd_real *, const sd_real *,
                              sd_real *, int);
typedef void (*kfilter_kernel)(const sd_cpu_kfilter_geom *, const sd_real *, const sd_real *,
                               sd_real *, int);

/* One instruction set's kernels: vector width, the correlation, the two
 * filter-gradient layouts and the kernel rows per tile of the second. */
typedef struct direct_isa {
    int bytes;
    const char *name;
    direct_kernel run;
    filter_kernel filter;
    kfilter_kernel kfilter;
    int kti;
} direct_isa;

#ifdef DIRECT_X86
#define BASE_NAME "x86-64 baseline (SSE2)"
#else
#define BASE_NAME "portable (16-byte vectors)"
#endif
static const direct_isa isa_base = {
    16, BASE_NAME, dk_run_base, dk_filter_base, dk_kfilter_base, dk_kti_base};
#ifdef DIRECT_X86
static const direct_isa isa_avx2 = {
    32, "AVX2 + FMA", dk_run_avx2, dk_filter_avx2, dk_kfilter_avx2, dk_kti_avx2};
static const direct_isa isa_avx512 = {
    64, "AVX-512", dk_run_avx512, dk_filter_avx512, dk_kfilter_avx512, dk_kti_avx512};
#endif

/* Widest vector the kernels may use (sd_backend_cpu_limit_direct; 0: no
 * limit).  Set by tests, between calls. */
static int direct_limit;

/* The widest kernels this processor runs, within the limit. */
static const direct_isa *direct_pick(void)
{
#ifdef DIRECT_X86
    if ((!direct_limit || direct_limit >= 64) && __builtin_cpu_supports("avx512f"))
        return &isa_avx512;
    if ((!direct_limit || direct_limit >= 32) && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        return &isa_avx2;
#endif
    return &isa_base;
}

const char *sd_backend_cpu_direct_kernels(void)
{
    return direct_pick()->name;
}

int sd_backend_cpu_limit_direct(int bytes)
{
    direct_limit = bytes > 0 ? bytes : 0;
    return direct_pick()->bytes;
}

/* Relative speed of each tile (multiply-adds per second, padding included),
 * measured on an AVX-512 processor (Zen 5) with each tile forced in turn on
 * LeNet conv2's backward-data shape (16 -> 6 channels, 14x14): the tiles
 * with four or more row loads per step (each unaligned, so split across two
 * cache lines) run at half the speed of those that reuse each loaded row for
 * several output channels (docs/benchmarks.md, "The direct path"). */
static const double tile_speed[SD_DIRECT_TILE_COUNT] = {0.83, 1.00, 0.48, 0.48, 0.96, 0.50, 0.52};

/* Geometry of the correlation, with the tile of least estimated time: the
 * work with channels, rows and columns rounded up to whole tiles, over the
 * tile's speed.  The tile never changes a sum (each output element is one
 * chain in a fixed order), so this choice only decides the speed. */
static sd_cpu_direct_geom direct_geom(int ci, int co, int r, int s, int oh, int ow)
{
    const size_t lanes = (size_t)direct_pick()->bytes / sizeof(sd_real);
    sd_cpu_direct_geom g = {
        .ci = ci, .co = co, .r = r, .s = s, .oh = oh, .ow = ow, .lanes = (int)lanes};
    double best = 0;
    for (int t = 0; t < SD_DIRECT_TILE_COUNT; t++) {
        const size_t cb = (size_t)tile_shape[t][0], rb = (size_t)tile_shape[t][1],
                     u = (size_t)tile_shape[t][2];
        double work = (double)round_up((size_t)co, cb) * (double)round_up((size_t)oh, rb) *
                      (double)round_up((size_t)ow, u * lanes);
        double cost = work / tile_speed[t];
        if (best == 0 || cost < best) {
            best = cost;
            g.tile = t;
        }
    }
    const int u = tile_shape[g.tile][2];
    g.cop = (int)round_up((size_t)co, (size_t)tile_shape[g.tile][0]);
    g.ohp = (int)round_up((size_t)oh, (size_t)tile_shape[g.tile][1]);
    g.owp = (int)round_up((size_t)ow, (size_t)u * lanes);
    g.irs = (size_t)g.owp + (size_t)s - 1;
    g.ics = ((size_t)g.ohp + (size_t)r - 1) * g.irs;
    g.in_elems = (size_t)ci * g.ics;
    g.wt_elems = (size_t)g.cop * ci * r * s;
    g.out_elems = (size_t)g.cop * g.ohp * g.owp;
    return g;
}

static sd_cpu_direct_geom pass_geom(const sd_conv_desc *d, sd_cpu_conv_pass pass)
{
    if (pass == SD_CPU_CONV_BWD_DATA)
        return direct_geom(d->k, d->c, d->r, d->s, d->h, d->w);
    return direct_geom(d->c, d->k, d->r, d->s, d->oh, d->ow);
}

/* The filter layout for d, with the block of output channels whose padding
 * and loads cost least: a block of KB channels loads KB + DF_JB vectors per
 * KB * DF_JB multiply-adds. */
static sd_cpu_dfilter_geom dfilter_geom(const sd_conv_desc *d)
{
    const size_t lanes = (size_t)direct_pick()->bytes / sizeof(sd_real);
    sd_cpu_dfilter_geom f = {.k = d->k, .c = d->c, .r = d->r, .s = d->s, .lanes = (int)lanes};
    double best = 0;
    for (int kb = 1; kb <= 4; kb++) {
        double cost = (double)round_up((size_t)d->k, (size_t)kb) * (double)(kb + DF_JB) /
                      (double)(kb * DF_JB);
        if (best == 0 || cost < best) {
            best = cost;
            f.kb = kb;
        }
    }
    f.kp = (int)round_up((size_t)d->k, (size_t)f.kb);
    f.sj = (int)round_up((size_t)d->s, DF_JB);
    f.wp = d->w + 2 * d->pad;
    f.np = ((size_t)d->oh * f.wp + lanes - 1) / lanes;
    f.pp = f.np * lanes;
    /* reads reach p + (r-1)*wp + sj - 1 for p < pp, pp < oh*wp + lanes */
    f.cs = ((size_t)d->h + 2 * (size_t)d->pad) * f.wp + (size_t)f.sj + lanes;
    f.x_elems = (size_t)d->c * f.cs;
    f.gy_elems = (size_t)f.kp * f.pp;
    f.part_elems = (size_t)f.kp * d->c * d->r * f.sj * lanes;
    return f;
}

static sd_cpu_kfilter_geom kfilter_geom(const sd_conv_desc *d)
{
    const direct_isa *isa = direct_pick();
    const size_t lanes = (size_t)isa->bytes / sizeof(sd_real);
    sd_cpu_kfilter_geom f = {
        .k = d->k, .c = d->c, .r = d->r, .s = d->s, .oh = d->oh, .ow = d->ow, .lanes = (int)lanes};
    f.nkb = (int)(((size_t)d->k + lanes - 1) / lanes);
    f.rp = (int)round_up((size_t)d->r, (size_t)isa->kti);
    f.sj = (int)round_up((size_t)d->s, DF_JB);
    f.wp = d->w + 2 * d->pad;
    /* reads reach row oh-1 + rp-1 and column ow-1 + sj-1 of a channel */
    f.cs = ((size_t)d->oh + (size_t)f.rp) * (size_t)f.wp + (size_t)f.sj;
    f.x_elems = (size_t)d->c * f.cs;
    f.gy_elems = (size_t)f.nkb * d->oh * d->ow * lanes;
    f.part_elems = (size_t)f.nkb * d->c * f.rp * f.sj * lanes;
    return f;
}

/* Output channels across the lanes where that wastes fewer lanes than the
 * flattened map does (the padding columns and the last vector's tail). */
static int filter_by_channels(const sd_conv_desc *d)
{
    const sd_cpu_dfilter_geom f = dfilter_geom(d);
    double by_pixels = (double)d->oh * d->ow / (double)(f.np * (size_t)f.lanes);
    double by_channels = (double)d->k / (double)round_up((size_t)d->k, (size_t)f.lanes);
    return by_channels > by_pixels;
}

int sd_cpu_direct_applies(const sd_conv_desc *d)
{
    return d->stride == 1 && d->pad <= d->r - 1 && d->pad <= d->s - 1;
}

/* The largest of the three passes' needs (one workspace serves them all). */
size_t sd_cpu_direct_ws_elems(const sd_conv_desc *d)
{
    size_t most = 0;
    if (filter_by_channels(d)) {
        sd_cpu_kfilter_geom f = kfilter_geom(d);
        most = f.x_elems + f.gy_elems + f.part_elems;
    } else {
        sd_cpu_dfilter_geom f = dfilter_geom(d);
        most = f.x_elems + f.gy_elems + f.part_elems;
    }
    for (int pass = SD_CPU_CONV_FWD; pass <= SD_CPU_CONV_BWD_DATA; pass++) {
        sd_cpu_direct_geom g = pass_geom(d, (sd_cpu_conv_pass)pass);
        if (g.in_elems + g.wt_elems + g.out_elems > most)
            most = g.in_elems + g.wt_elems + g.out_elems;
    }
    return most;
}

/* Copy maps (ch x h x w) into a padded buffer of cs elements per channel
 * and rs per row, at row top and column left of each channel (the rest is
 * left as it is: zero, set once per call). */
static void copy_map(sd_real *dst, size_t cs, size_t rs, const sd_real *src, int ch, int h, int w,
                     int top, int left)
{
    for (int c = 0; c < ch; c++)
        for (int y = 0; y < h; y++)
            memcpy(dst + (size_t)c * cs + (size_t)(y + top) * rs + left,
                   src + ((size_t)c * h + y) * w, sizeof(sd_real) * (size_t)w);
}

void sd_cpu_direct_fwd(const sd_conv_desc *d, const sd_real *x, const sd_real *w, sd_real beta,
                       sd_real *y, sd_real *ws)
{
    const direct_kernel run = direct_pick()->run;
    sd_cpu_direct_geom g = pass_geom(d, SD_CPU_CONV_FWD);
    sd_real *in = ws, *wt = in + g.in_elems, *out = wt + g.wt_elems;
    const size_t wk = (size_t)d->c * d->r * d->s, ohw = (size_t)d->oh * d->ow;
    memset(in, 0, sizeof(sd_real) * g.in_elems);
    memcpy(wt, w, sizeof(sd_real) * (size_t)d->k * wk);
    memset(wt + (size_t)d->k * wk, 0, sizeof(sd_real) * (g.wt_elems - (size_t)d->k * wk));
    for (int n = 0; n < d->n; n++) {
        copy_map(in, g.ics, g.irs, x + (size_t)n * d->c * d->h * d->w, d->c, d->h, d->w, d->pad,
                 d->pad);
        run(&g, in, wt, out);
        sd_real *yn = y + (size_t)n * d->k * ohw;
        for (int k = 0; k < d->k; k++)
            for (int oy = 0; oy < d->oh; oy++) {
                const sd_real *src = out + ((size_t)k * g.ohp + oy) * g.owp;
                sd_real *dst = yn + (size_t)k * ohw + (size_t)oy * d->ow;
                if (beta == 0)
                    memcpy(dst, src, sizeof(sd_real) * (size_t)d->ow);
                else
                    for (int ox = 0; ox < d->ow; ox++)
                        dst[ox] = src[ox] + beta * dst[ox];
            }
    }
}

void sd_cpu_direct_bwd_data(const sd_conv_desc *d, const sd_real *gy, const sd_real *w, sd_real *gx,
                            sd_real *ws)
{
    const direct_kernel run = direct_pick()->run;
    sd_cpu_direct_geom g = pass_geom(d, SD_CPU_CONV_BWD_DATA);
    sd_real *in = ws, *wt = in + g.in_elems, *out = wt + g.wt_elems;
    const size_t rs = (size_t)d->r * d->s, ohw = (size_t)d->oh * d->ow, hw = (size_t)d->h * d->w;
    memset(in, 0, sizeof(sd_real) * g.in_elems);
    memset(wt, 0, sizeof(sd_real) * g.wt_elems);
    /* wt[c][k][i][j] = w[k][c][r-1-i][s-1-j] */
    for (int k = 0; k < d->k; k++)
        for (int c = 0; c < d->c; c++)
            for (size_t t = 0; t < rs; t++)
                wt[((size_t)c * d->k + k) * rs + (rs - 1 - t)] = w[((size_t)k * d->c + c) * rs + t];
    for (int n = 0; n < d->n; n++) {
        copy_map(in, g.ics, g.irs, gy + (size_t)n * d->k * ohw, d->k, d->oh, d->ow,
                 d->r - 1 - d->pad, d->s - 1 - d->pad);
        run(&g, in, wt, out);
        sd_real *gxn = gx + (size_t)n * d->c * hw;
        for (int c = 0; c < d->c; c++)
            for (int y = 0; y < d->h; y++) {
                const sd_real *src = out + ((size_t)c * g.ohp + y) * g.owp;
                sd_real *dst = gxn + (size_t)c * hw + (size_t)y * d->w;
                for (int x = 0; x < d->w; x++)
                    dst[x] += src[x];
            }
    }
}

/* The filter gradient with the output channels across the lanes. */
static void bwd_filter_channels(const sd_conv_desc *d, const sd_real *x, const sd_real *gy,
                                sd_real *gw, sd_real *ws)
{
    const kfilter_kernel run = direct_pick()->kfilter;
    sd_cpu_kfilter_geom f = kfilter_geom(d);
    sd_real *xpad = ws, *gyt = xpad + f.x_elems, *part = gyt + f.gy_elems;
    const size_t lanes = (size_t)f.lanes;
    const size_t ohw = (size_t)d->oh * d->ow, hw = (size_t)d->h * d->w;
    memset(ws, 0, sizeof(sd_real) * (f.x_elems + f.gy_elems)); /* part: the first sample sets it */
    for (int n = 0; n < d->n; n++) {
        const sd_real *xn = x + (size_t)n * d->c * hw, *gyn = gy + (size_t)n * d->k * ohw;
        copy_map(xpad, f.cs, (size_t)f.wp, xn, d->c, d->h, d->w, d->pad, d->pad);
        for (int k = 0; k < d->k; k++) {
            sd_real *dst = gyt + (size_t)(k / (int)lanes) * ohw * lanes + (size_t)k % lanes;
            const sd_real *src = gyn + (size_t)k * ohw;
            for (size_t p = 0; p < ohw; p++)
                dst[p * lanes] = src[p];
        }
        run(&f, gyt, xpad, part, n == 0);
    }
    for (int k = 0; k < d->k; k++)
        for (int c = 0; c < d->c; c++)
            for (int i = 0; i < d->r; i++)
                for (int j = 0; j < d->s; j++)
                    gw[(((size_t)k * d->c + c) * d->r + i) * d->s + j] +=
                        part[((((size_t)(k / (int)lanes) * d->c + c) * f.rp + i) * f.sj + j) *
                                 lanes +
                             (size_t)k % lanes];
}

void sd_cpu_direct_bwd_filter(const sd_conv_desc *d, const sd_real *x, const sd_real *gy,
                              sd_real *gw, sd_real *ws)
{
    if (d->n < 1)
        return;
    if (filter_by_channels(d)) {
        bwd_filter_channels(d, x, gy, gw, ws);
        return;
    }
    const filter_kernel run = direct_pick()->filter;
    sd_cpu_dfilter_geom f = dfilter_geom(d);
    sd_real *xflat = ws, *gyw = xflat + f.x_elems, *part = gyw + f.gy_elems;
    const size_t lanes = (size_t)f.lanes;
    const size_t ohw = (size_t)d->oh * d->ow, hw = (size_t)d->h * d->w;
    memset(ws, 0, sizeof(sd_real) * (f.x_elems + f.gy_elems)); /* part: the first sample sets it */
    for (int n = 0; n < d->n; n++) {
        const sd_real *xn = x + (size_t)n * d->c * hw, *gyn = gy + (size_t)n * d->k * ohw;
        copy_map(xflat, f.cs, (size_t)f.wp, xn, d->c, d->h, d->w, d->pad, d->pad);
        copy_map(gyw, f.pp, (size_t)f.wp, gyn, d->k, d->oh, d->ow, 0, 0);
        run(&f, gyw, xflat, part, n == 0);
    }
    /* each partial sum's lanes in order, added once to the gradient */
    for (int k = 0; k < d->k; k++)
        for (int c = 0; c < d->c; c++)
            for (int i = 0; i < d->r; i++)
                for (int j = 0; j < d->s; j++) {
                    const sd_real *v =
                        part + ((((size_t)k * d->c + c) * d->r + i) * f.sj + j) * lanes;
                    sd_real sum = 0;
                    for (size_t l = 0; l < lanes; l++)
                        sum += v[l];
                    gw[(((size_t)k * d->c + c) * d->r + i) * d->s + j] += sum;
                }
}
