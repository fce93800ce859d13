/*
 * sd_cpu_pool.c - max and average pooling on the CPU: forward, backward and
 * the max-pool tangent gather.
 * GPU twin: gpu/sg_pool.cu, which follows these window rules line for line.
 *
 * Max pooling takes the FIRST maximum in row-major window order (a NaN wins,
 * as in PyTorch); cells outside the input never win; an empty window gives
 * 0.  Average windows are clipped to the padded input first and
 * count_include_pad divides by that size; adaptive windows are
 * [floor(i*h/oh), ceil((i+1)*h/oh)).  The 2x2/2 windows of the ConvNet and
 * LeNet have their own fast loops with the same results.
 */
#include "sd_cpu_internal.h"

#include <math.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static int pool_check(sd_backend *be, sd_error *err, const sd_pool_desc *d, const char *op)
{
    if (d->n < 0 || d->c < 1 || d->h < 1 || d->w < 1 || d->oh < 1 || d->ow < 1 ||
        (!d->adaptive &&
         (d->kh < 1 || d->kw < 1 || d->sh < 1 || d->sw < 1 || d->ph < 0 || d->pw < 0)))
        return CPU_FAIL(err, SD_EINVAL, "cpu %s: bad pooling geometry", op);
    return SD_OK;
}

/* Index (within one h*w plane) of the first maximum of window (oy,ox) in
 * row-major order; cells outside the input (padding, ceil_mode overhang) are
 * skipped, so they never win.  -1 for a window with no input cell (cannot
 * happen with shapes from sd_layer_finish).  NaN wins, as in PyTorch. */
/* first maximum of four in order, a NaN winning (the rule of maxpool_arg) */
static inline int first_max4(sd_real a, sd_real b, sd_real c, sd_real d)
{
    int k = 0;
    sd_real m = a;
    int t = (b > m) | ((b != b) & (m == m));
    k = t ? 1 : k;
    m = t ? b : m;
    t = (c > m) | ((c != c) & (m == m));
    k = t ? 2 : k;
    m = t ? c : m;
    t = (d > m) | ((d != d) & (m == m));
    return t ? 3 : k;
}

static long maxpool_arg_general(const sd_pool_desc *d, const sd_real *xc, int oy, int ox);

/* The argmax of window (oy, ox): 2x2 windows without padding that lie inside
 * the input (LeNet, VGG and ConvNet pools) are unrolled here, inline in the
 * callers' loops; everything else takes the general scan. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline long
maxpool_arg(const sd_pool_desc *d, const sd_real *xc, int oy, int ox)
{
    if (d->kh == 2 && d->kw == 2 && d->ph == 0 && d->pw == 0) {
        int ya = oy * d->sh, xa = ox * d->sw;
        if (ya + 1 < d->h && xa + 1 < d->w) {
            const sd_real *r0 = xc + (size_t)ya * d->w + xa, *r1 = r0 + d->w;
            int k = first_max4(r0[0], r0[1], r1[0], r1[1]);
            return (long)(ya + (k >> 1)) * d->w + xa + (k & 1);
        }
    }
    return maxpool_arg_general(d, xc, oy, ox);
}

static long maxpool_arg_general(const sd_pool_desc *d, const sd_real *xc, int oy, int ox)
{
    int y0 = oy * d->sh - d->ph, x0 = ox * d->sw - d->pw;
    int y1 = y0 + d->kh, x1 = x0 + d->kw;
    if (y0 < 0)
        y0 = 0;
    if (x0 < 0)
        x0 = 0;
    if (y1 > d->h)
        y1 = d->h;
    if (x1 > d->w)
        x1 = d->w;
    long best = -1;
    sd_real bv = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            sd_real v = xc[(size_t)y * d->w + x];
            if (best < 0 || v > bv || (v != v && bv == bv)) {
                best = (long)y * d->w + x;
                bv = v;
            }
        }
    return best;
}

/* One output row of the 2x2/2 fast path, four outputs at a time with SSE2
 * (part of every x86-64): the same selects as first_max4, lane by lane, so
 * the same values and argmaxes.  Returns how many outputs it did (a multiple
 * of 4; 0 without SSE2); the caller finishes the row. */
static int maxpool2_row_sse2(const sd_real *r0, const sd_real *r1, int ow, int32_t w, int32_t base,
                             sd_real *yr, int32_t *ar)
{
#if defined(__SSE2__) && !defined(SD_REAL_DOUBLE)
    int ox = 0;
    const __m128i step = _mm_set_epi32(6, 4, 2, 0);
    for (; ox + 4 <= ow; ox += 4) {
        __m128 a0 = _mm_loadu_ps(r0 + 2 * ox), a1 = _mm_loadu_ps(r0 + 2 * ox + 4);
        __m128 b0 = _mm_loadu_ps(r1 + 2 * ox), b1 = _mm_loadu_ps(r1 + 2 * ox + 4);
        __m128 c[4] = {_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)),
                       _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1))};
        const __m128i offs[4] = {_mm_setzero_si128(), _mm_set1_epi32(1), _mm_set1_epi32(w),
                                 _mm_set1_epi32(w + 1)};
        __m128 m = c[0];
        __m128i off = offs[0];
        for (int k = 1; k < 4; k++) {
            /* t = v > m, or v is NaN and m is not */
            __m128 v = c[k];
            __m128 t = _mm_or_ps(_mm_cmpgt_ps(v, m),
                                 _mm_and_ps(_mm_cmpunord_ps(v, v), _mm_cmpord_ps(m, m)));
            __m128i ti = _mm_castps_si128(t);
            m = _mm_or_ps(_mm_and_ps(t, v), _mm_andnot_ps(t, m));
            off = _mm_or_si128(_mm_and_si128(ti, offs[k]), _mm_andnot_si128(ti, off));
        }
        _mm_storeu_ps(yr + ox, m);
        __m128i idx = _mm_add_epi32(_mm_set1_epi32(base + 2 * ox), _mm_add_epi32(step, off));
        _mm_storeu_si128((__m128i *)(void *)(ar + ox), idx);
    }
    return ox;
#else
    (void)r0, (void)r1, (void)ow, (void)w, (void)base, (void)yr, (void)ar;
    return 0;
#endif
}

static int cpu_maxpool_fwd(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                           sd_real *y, int32_t *arg)
{
    int rc = pool_check(be, err, d, "maxpool_fwd");
    if (rc)
        return rc;
    if (arg && (size_t)d->h * d->w > 0x7fffffff)
        arg = NULL; /* an index would not fit: recompute in the backward */
    const size_t hw = (size_t)d->h * d->w, ohw = (size_t)d->oh * d->ow;
    if (d->kh == 2 && d->kw == 2 && d->sh == 2 && d->sw == 2 && d->ph == 0 && d->pw == 0 &&
        2 * d->oh <= d->h && 2 * d->ow <= d->w && arg) {
        /* 2x2/2 windows all inside the input (LeNet, VGG, ConvNet): one
         * straight loop per output row, the rule of maxpool_arg */
        for (size_t pl = 0; pl < (size_t)d->n * d->c; pl++) {
            const sd_real *xc = x + pl * hw;
            for (int oy = 0; oy < d->oh; oy++) {
                const sd_real *r0 = xc + (size_t)(2 * oy) * d->w, *r1 = r0 + d->w;
                sd_real *yr = y + pl * ohw + (size_t)oy * d->ow;
                int32_t *ar = arg + pl * ohw + (size_t)oy * d->ow;
                int32_t base = (int32_t)(2 * oy * d->w);
                int ox = maxpool2_row_sse2(r0, r1, d->ow, (int32_t)d->w, base, yr, ar);
                for (; ox < d->ow; ox++) {
                    sd_real v[4] = {r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]};
                    int k = first_max4(v[0], v[1], v[2], v[3]);
                    yr[ox] = v[k];
                    ar[ox] = base + (k >> 1) * (int32_t)d->w + 2 * ox + (k & 1);
                }
            }
        }
        return SD_OK;
    }
    for (size_t pl = 0; pl < (size_t)d->n * d->c; pl++) {
        const sd_real *xc = x + pl * hw;
        sd_real *yc = y + pl * ohw;
        int32_t *ac = arg ? arg + pl * ohw : NULL;
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                long a = maxpool_arg(d, xc, oy, ox);
                size_t o = (size_t)oy * d->ow + ox;
                yc[o] = a < 0 ? 0 : xc[a];
                if (ac)
                    ac[o] = (int32_t)a;
            }
    }
    return SD_OK;
}

/* The argmaxes kept by maxpool_fwd are used when given and when the plane
 * is small enough for the forward to have written them. */
static int use_arg(const sd_pool_desc *d, const int32_t *arg)
{
    return arg && (size_t)d->h * d->w <= 0x7fffffff;
}

static int cpu_maxpool_bwd(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                           const int32_t *arg, const sd_real *gy, sd_real *gx)
{
    int rc = pool_check(be, err, d, "maxpool_bwd");
    if (rc)
        return rc;
    const size_t hw = (size_t)d->h * d->w, ohw = (size_t)d->oh * d->ow;
    const size_t planes = (size_t)d->n * d->c;
    if (use_arg(d, arg)) {
        for (size_t pl = 0; pl < planes; pl++) {
            const int32_t *ac = arg + pl * ohw;
            const sd_real *gyc = gy + pl * ohw;
            sd_real *gxc = gx + pl * hw;
            for (size_t o = 0; o < ohw; o++)
                if (ac[o] >= 0)
                    gxc[ac[o]] += gyc[o];
        }
        return SD_OK;
    }
    for (size_t pl = 0; pl < planes; pl++) {
        const sd_real *xc = x + pl * hw, *gyc = gy + pl * ohw;
        sd_real *gxc = gx + pl * hw;
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                long a = maxpool_arg(d, xc, oy, ox);
                if (a >= 0)
                    gxc[a] += gyc[(size_t)oy * d->ow + ox];
            }
    }
    return SD_OK;
}

static int cpu_maxpool_gather(sd_backend *be, sd_error *err, const sd_pool_desc *d,
                              const sd_real *x, const int32_t *arg, const sd_real *dx, sd_real *dy)
{
    int rc = pool_check(be, err, d, "maxpool_gather");
    if (rc)
        return rc;
    const size_t hw = (size_t)d->h * d->w, ohw = (size_t)d->oh * d->ow;
    const size_t planes = (size_t)d->n * d->c;
    if (use_arg(d, arg)) {
        for (size_t pl = 0; pl < planes; pl++) {
            const int32_t *ac = arg + pl * ohw;
            const sd_real *dxc = dx + pl * hw;
            sd_real *dyc = dy + pl * ohw;
            for (size_t o = 0; o < ohw; o++)
                dyc[o] = ac[o] < 0 ? 0 : dxc[ac[o]];
        }
        return SD_OK;
    }
    for (size_t pl = 0; pl < planes; pl++) {
        const sd_real *xc = x + pl * hw, *dxc = dx + pl * hw;
        sd_real *dyc = dy + pl * ohw;
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                long a = maxpool_arg(d, xc, oy, ox);
                dyc[(size_t)oy * d->ow + ox] = a < 0 ? 0 : dxc[a];
            }
    }
    return SD_OK;
}

/* One axis of an average-pool window: cell o covers input [*lo, *hi) and,
 * for fixed windows, *full cells of the padded input.  Fixed windows follow
 * PyTorch's avg_pool2d: the window is first clipped to the padded input (so a
 * ceil_mode overhang beyond the padding never counts), count_include_pad
 * divides by that size, otherwise by the number of input cells.  Adaptive
 * windows are [floor(o*in/on), ceil((o+1)*in/on)).  Separable, so the row
 * part is computed once per output row. */
static inline void avg_axis(const sd_pool_desc *d, int o, int in, int on, int k, int st, int pad,
                            int *lo, int *hi, int *full)
{
    if (d->adaptive) {
        *lo = (int)(((long)o * in) / on);
        *hi = (int)(((long)(o + 1) * in + on - 1) / on);
        *full = *hi - *lo;
        return;
    }
    int a0 = o * st - pad, a1 = a0 + k;
    if (a1 > in + pad)
        a1 = in + pad;
    *full = a1 - a0;
    *lo = a0 < 0 ? 0 : a0;
    *hi = a1 > in ? in : a1;
}

static inline double avg_div(const sd_pool_desc *d, int yl, int yh, int yf, int xl, int xh, int xf)
{
    if (!d->adaptive && d->count_include_pad)
        return (double)yf * xf;
    return (double)(yh - yl) * (xh - xl);
}

/* 2x2/2 windows without padding, all inside the input (the ConvNet's and
 * VGG-style pools): every window is full, so the divisor is 4 whatever the
 * padding rule. */
static int avg_2x2(const sd_pool_desc *d)
{
    return !d->adaptive && d->kh == 2 && d->kw == 2 && d->sh == 2 && d->sw == 2 && d->ph == 0 &&
           d->pw == 0 && 2 * d->oh <= d->h && 2 * d->ow <= d->w;
}

static int cpu_avgpool_fwd(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                           sd_real *y)
{
    int rc = pool_check(be, err, d, "avgpool_fwd");
    if (rc)
        return rc;
    const size_t hw = (size_t)d->h * d->w, ohw = (size_t)d->oh * d->ow;
    if (avg_2x2(d)) { /* the general loop below, unrolled: same sums, same order */
        for (size_t pl = 0; pl < (size_t)d->n * d->c; pl++)
            for (int oy = 0; oy < d->oh; oy++) {
                const sd_real *r0 = x + pl * hw + (size_t)(2 * oy) * d->w, *r1 = r0 + d->w;
                sd_real *yr = y + pl * ohw + (size_t)oy * d->ow;
                for (int ox = 0; ox < d->ow; ox++) {
                    double s = 0;
                    s += r0[2 * ox];
                    s += r0[2 * ox + 1];
                    s += r1[2 * ox];
                    s += r1[2 * ox + 1];
                    yr[ox] = (sd_real)(s / 4.0);
                }
            }
        return SD_OK;
    }
    for (size_t pl = 0; pl < (size_t)d->n * d->c; pl++) {
        const sd_real *xc = x + pl * hw;
        sd_real *yc = y + pl * ohw;
        for (int oy = 0; oy < d->oh; oy++) {
            int y0, y1, yf;
            avg_axis(d, oy, d->h, d->oh, d->kh, d->sh, d->ph, &y0, &y1, &yf);
            for (int ox = 0; ox < d->ow; ox++) {
                int x0, x1, xf;
                avg_axis(d, ox, d->w, d->ow, d->kw, d->sw, d->pw, &x0, &x1, &xf);
                double div = avg_div(d, y0, y1, yf, x0, x1, xf), s = 0;
                for (int yy = y0; yy < y1; yy++) {
                    const sd_real *row = xc + (size_t)yy * d->w;
                    for (int xx = x0; xx < x1; xx++)
                        s += row[xx];
                }
                yc[(size_t)oy * d->ow + ox] = div > 0 ? (sd_real)(s / div) : 0;
            }
        }
    }
    return SD_OK;
}

static int cpu_avgpool_bwd(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *gy,
                           sd_real *gx)
{
    int rc = pool_check(be, err, d, "avgpool_bwd");
    if (rc)
        return rc;
    const size_t hw = (size_t)d->h * d->w, ohw = (size_t)d->oh * d->ow;
    if (avg_2x2(d)) { /* windows do not overlap: each cell gets one share */
        for (size_t pl = 0; pl < (size_t)d->n * d->c; pl++)
            for (int oy = 0; oy < d->oh; oy++) {
                sd_real *r0 = gx + pl * hw + (size_t)(2 * oy) * d->w, *r1 = r0 + d->w;
                const sd_real *gr = gy + pl * ohw + (size_t)oy * d->ow;
                for (int ox = 0; ox < d->ow; ox++) {
                    sd_real g = (sd_real)(gr[ox] / 4.0);
                    r0[2 * ox] += g;
                    r0[2 * ox + 1] += g;
                    r1[2 * ox] += g;
                    r1[2 * ox + 1] += g;
                }
            }
        return SD_OK;
    }
    for (size_t pl = 0; pl < (size_t)d->n * d->c; pl++) {
        const sd_real *gyc = gy + pl * ohw;
        sd_real *gxc = gx + pl * hw;
        for (int oy = 0; oy < d->oh; oy++) {
            int y0, y1, yf;
            avg_axis(d, oy, d->h, d->oh, d->kh, d->sh, d->ph, &y0, &y1, &yf);
            for (int ox = 0; ox < d->ow; ox++) {
                int x0, x1, xf;
                avg_axis(d, ox, d->w, d->ow, d->kw, d->sw, d->pw, &x0, &x1, &xf);
                double div = avg_div(d, y0, y1, yf, x0, x1, xf);
                if (div <= 0)
                    continue;
                sd_real g = (sd_real)(gyc[(size_t)oy * d->ow + ox] / div);
                for (int yy = y0; yy < y1; yy++) {
                    sd_real *row = gxc + (size_t)yy * d->w;
                    for (int xx = x0; xx < x1; xx++)
                        row[xx] += g;
                }
            }
        }
    }
    return SD_OK;
}

void sd_cpu_install_pool(sd_backend *be)
{
    be->maxpool_fwd = cpu_maxpool_fwd;
    be->maxpool_bwd = cpu_maxpool_bwd;
    be->maxpool_gather = cpu_maxpool_gather;
    be->avgpool_fwd = cpu_avgpool_fwd;
    be->avgpool_bwd = cpu_avgpool_bwd;
}
