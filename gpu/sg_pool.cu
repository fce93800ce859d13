/*
 * sg_pool.cu - max and average pooling (forward, backward, tangent gather).
 *
 * The window rules are the CPU reference's (distill/engine/cpu/sd_cpu_pool.c), line
 * for line: max pooling takes the FIRST maximum in row-major window order
 * (NaN wins, as in PyTorch), cells outside the input never win, an empty
 * window gives 0; average windows are clipped to the padded input first and
 * count_include_pad divides by that size; adaptive windows are
 * [floor(i*h/oh), ceil((i+1)*h/oh)).
 *
 * Backward passes must add into gx without atomics (whose order would vary
 * from run to run).  When windows cannot overlap (stride >= kernel) each
 * output scatters into its own cells; otherwise each INPUT cell gathers from
 * the windows that contain it, visiting them in the same (oy, ox) order as
 * the CPU's scatter loop and adding in float one by one, so the sums are
 * bit-identical to the CPU's.
 *
 * The overlapping gather runs per tile: a block takes a band of input rows
 * of one plane, first finds the argmax of every window that band can fall
 * in (each once, into shared memory), then lets each input cell of the band
 * compare its index against the stored argmaxes of its windows.  Without the
 * tile every cell re-searched each of its windows (a 3x3/2 pool: up to four
 * 9-cell searches per cell, ~12x the forward's work).  Same windows, same
 * order, same float additions, so the result is the same bits.  Planes too
 * wide for a one-row band in shared memory keep the untiled kernel.
 */
#include "sg_internal.h"

/* First-maximum index within one h*w plane, as maxpool_arg on the CPU. */
__device__ static long sg_maxpool_arg(const sd_pool_desc d, const float *xc, int oy, int ox)
{
    int y0 = oy * d.sh - d.ph, x0 = ox * d.sw - d.pw;
    int y1 = y0 + d.kh, x1 = x0 + d.kw;
    if (y0 < 0)
        y0 = 0;
    if (x0 < 0)
        x0 = 0;
    if (y1 > d.h)
        y1 = d.h;
    if (x1 > d.w)
        x1 = d.w;
    long best = -1;
    float bv = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            float v = xc[(size_t)y * d.w + x];
            if (best < 0 || v > bv || (v != v && bv == bv)) {
                best = (long)y * d.w + x;
                bv = v;
            }
        }
    return best;
}

/* Average window of cell (oy, ox) and its divisor, as avgpool_window. */
__device__ static void sg_avg_window(const sd_pool_desc d, int oy, int ox, int *y0, int *y1,
                                     int *x0, int *x1, double *div)
{
    if (d.adaptive) {
        *y0 = (int)(((long)oy * d.h) / d.oh);
        *y1 = (int)(((long)(oy + 1) * d.h + d.oh - 1) / d.oh);
        *x0 = (int)(((long)ox * d.w) / d.ow);
        *x1 = (int)(((long)(ox + 1) * d.w + d.ow - 1) / d.ow);
        *div = (double)(*y1 - *y0) * (*x1 - *x0);
        return;
    }
    int a0 = oy * d.sh - d.ph, b0 = ox * d.sw - d.pw;
    int a1 = a0 + d.kh, b1 = b0 + d.kw;
    if (a1 > d.h + d.ph)
        a1 = d.h + d.ph;
    if (b1 > d.w + d.pw)
        b1 = d.w + d.pw;
    double full = (double)(a1 - a0) * (b1 - b0);
    if (a0 < 0)
        a0 = 0;
    if (b0 < 0)
        b0 = 0;
    if (a1 > d.h)
        a1 = d.h;
    if (b1 > d.w)
        b1 = d.w;
    *y0 = a0;
    *y1 = a1;
    *x0 = b0;
    *x1 = b1;
    *div = d.count_include_pad ? full : (double)(a1 - a0) * (b1 - b0);
}

/* Output rows/cols whose fixed window (size k, stride s, pad p) can contain
 * input coordinate i: [lo, hi] clipped to [0, on-1] (may be empty). */
__device__ static void sg_win_range(int i, int k, int s, int p, int on, int *lo, int *hi)
{
    int a = i + p - k + 1;
    int l = a <= 0 ? 0 : (a + s - 1) / s;
    int h = (i + p) / s;
    if (h > on - 1)
        h = on - 1;
    *lo = l;
    *hi = h;
}

/* Adaptive windows containing input coordinate i (see the derivation in
 * docs/gpu.md): [floor(i*on/n), ceil((i+1)*on/n) - 1]. */
__device__ static void sg_adaptive_range(int i, int n, int on, int *lo, int *hi)
{
    int l = (int)(((long)i * on) / n);
    int h = (int)((((long)i + 1) * on + n - 1) / n) - 1;
    if (h > on - 1)
        h = on - 1;
    *lo = l;
    *hi = h;
}

#define SG_POOL_FOR(i, n)                                                   \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (size_t)gridDim.x * blockDim.x)

__global__ void sg_maxpool_fwd_kernel(const sd_pool_desc d, const float *x, float *y,
                                      const float *dx, size_t total)
{
    const size_t hw = (size_t)d.h * d.w, ohw = (size_t)d.oh * d.ow;
    SG_POOL_FOR(o, total)
    {
        size_t pl = o / ohw;
        int r = (int)(o - pl * ohw), oy = r / d.ow, ox = r - oy * d.ow;
        long a = sg_maxpool_arg(d, x + pl * hw, oy, ox);
        /* forward reads x at the argmax; the tangent gather reads dx there */
        const float *src = dx ? dx : x;
        y[o] = a < 0 ? 0.0f : src[pl * hw + a];
    }
}

/* Non-overlapping windows: each output owns its argmax cell. */
__global__ void sg_maxpool_bwd_scatter_kernel(const sd_pool_desc d, const float *x, const float *gy,
                                              float *gx, size_t total)
{
    const size_t hw = (size_t)d.h * d.w, ohw = (size_t)d.oh * d.ow;
    SG_POOL_FOR(o, total)
    {
        size_t pl = o / ohw;
        int r = (int)(o - pl * ohw), oy = r / d.ow, ox = r - oy * d.ow;
        long a = sg_maxpool_arg(d, x + pl * hw, oy, ox);
        if (a >= 0)
            gx[pl * hw + a] += gy[o];
    }
}

/* Overlapping windows: each input cell gathers, in (oy, ox) order. */
__global__ void sg_maxpool_bwd_gather_kernel(const sd_pool_desc d, const float *x, const float *gy,
                                             float *gx, size_t total)
{
    const size_t hw = (size_t)d.h * d.w, ohw = (size_t)d.oh * d.ow;
    SG_POOL_FOR(i, total)
    {
        size_t pl = i / hw;
        int r = (int)(i - pl * hw), iy = r / d.w, ix = r - iy * d.w;
        int ylo, yhi, xlo, xhi;
        sg_win_range(iy, d.kh, d.sh, d.ph, d.oh, &ylo, &yhi);
        sg_win_range(ix, d.kw, d.sw, d.pw, d.ow, &xlo, &xhi);
        const float *xc = x + pl * hw, *gyc = gy + pl * ohw;
        float acc = gx[i];
        int touched = 0;
        for (int oy = ylo; oy <= yhi; oy++)
            for (int ox = xlo; ox <= xhi; ox++)
                if (sg_maxpool_arg(d, xc, oy, ox) == (long)r) {
                    acc += gyc[(size_t)oy * d.ow + ox];
                    touched = 1;
                }
        if (touched)
            gx[i] = acc;
    }
}

/* Shared-memory budget of one tile's argmaxes (ints), and its block size. */
#define SG_POOL_TILE_INTS    8192
#define SG_POOL_TILE_THREADS 256

/* Overlapping windows, tiled: block b handles input rows
 * [t*th, min((t+1)*th, h)) of plane b / tiles (t = b % tiles); the host
 * chose th so that the windows of those rows fit SG_POOL_TILE_INTS. */
__global__ void sg_maxpool_bwd_tiled_kernel(const sd_pool_desc d, const float *x, const float *gy,
                                            float *gx, int th, int tiles, size_t nblocks)
{
    extern __shared__ int sg_tile_arg[];
    const size_t hw = (size_t)d.h * d.w, ohw = (size_t)d.oh * d.ow;
    for (size_t b = blockIdx.x; b < nblocks; b += gridDim.x) {
        size_t pl = b / (size_t)tiles;
        int t = (int)(b - pl * (size_t)tiles);
        int iy0 = t * th, iy1 = iy0 + th < d.h ? iy0 + th : d.h;
        int olo, ohi, unused;
        sg_win_range(iy0, d.kh, d.sh, d.ph, d.oh, &olo, &unused);
        sg_win_range(iy1 - 1, d.kh, d.sh, d.ph, d.oh, &unused, &ohi);
        int rows = ohi >= olo ? ohi - olo + 1 : 0;
        int cnt = rows * d.ow;
        const float *xc = x + pl * hw, *gyc = gy + pl * ohw;
        float *gxc = gx + pl * hw;
        for (int j = threadIdx.x; j < cnt; j += blockDim.x) {
            int oy = olo + j / d.ow, ox = j - (j / d.ow) * d.ow;
            sg_tile_arg[j] = (int)sg_maxpool_arg(d, xc, oy, ox);
        }
        __syncthreads();
        int ncell = (iy1 - iy0) * d.w;
        for (int j = threadIdx.x; j < ncell; j += blockDim.x) {
            int iy = iy0 + j / d.w, ix = j - (j / d.w) * d.w;
            int r = iy * d.w + ix;
            int ylo, yhi, xlo, xhi;
            sg_win_range(iy, d.kh, d.sh, d.ph, d.oh, &ylo, &yhi);
            sg_win_range(ix, d.kw, d.sw, d.pw, d.ow, &xlo, &xhi);
            float acc = gxc[r];
            int touched = 0;
            for (int oy = ylo; oy <= yhi; oy++)
                for (int ox = xlo; ox <= xhi; ox++)
                    if (sg_tile_arg[(oy - olo) * d.ow + ox] == r) {
                        acc += gyc[(size_t)oy * d.ow + ox];
                        touched = 1;
                    }
            if (touched)
                gxc[r] = acc;
        }
        __syncthreads(); /* the next tile reuses the shared argmaxes */
    }
}

/* Rows per tile for the tiled gather, or 0 when one row's windows do not
 * fit (or a plane index would not fit an int).  The windows of th
 * consecutive input rows span at most floor((th + kh - 2)/sh) + 1 output
 * rows (sg_win_range), each of ow argmaxes. */
static int sg_maxpool_tile_rows(const sd_pool_desc *d)
{
    if ((long long)d->h * d->w > 0x7fffffffLL || d->ow > SG_POOL_TILE_INTS)
        return 0;
    long long rmax = SG_POOL_TILE_INTS / d->ow - 1; /* floor((th + kh - 2)/sh) <= rmax */
    long long th = (rmax + 1) * d->sh - d->kh + 1;
    if (th < 1)
        return 0;
    return th >= d->h ? d->h : (int)th;
}

__global__ void sg_avgpool_fwd_kernel(const sd_pool_desc d, const float *x, float *y, size_t total)
{
    const size_t hw = (size_t)d.h * d.w, ohw = (size_t)d.oh * d.ow;
    SG_POOL_FOR(o, total)
    {
        size_t pl = o / ohw;
        int r = (int)(o - pl * ohw), oy = r / d.ow, ox = r - oy * d.ow;
        int y0, y1, x0, x1;
        double div, s = 0;
        sg_avg_window(d, oy, ox, &y0, &y1, &x0, &x1, &div);
        const float *xc = x + pl * hw;
        for (int yy = y0; yy < y1; yy++)
            for (int xx = x0; xx < x1; xx++)
                s += xc[(size_t)yy * d.w + xx];
        y[o] = div > 0 ? (float)(s / div) : 0.0f;
    }
}

__global__ void sg_avgpool_bwd_gather_kernel(const sd_pool_desc d, const float *gy, float *gx,
                                             size_t total)
{
    const size_t hw = (size_t)d.h * d.w, ohw = (size_t)d.oh * d.ow;
    SG_POOL_FOR(i, total)
    {
        size_t pl = i / hw;
        int r = (int)(i - pl * hw), iy = r / d.w, ix = r - iy * d.w;
        int ylo, yhi, xlo, xhi;
        if (d.adaptive) {
            sg_adaptive_range(iy, d.h, d.oh, &ylo, &yhi);
            sg_adaptive_range(ix, d.w, d.ow, &xlo, &xhi);
        } else {
            sg_win_range(iy, d.kh, d.sh, d.ph, d.oh, &ylo, &yhi);
            sg_win_range(ix, d.kw, d.sw, d.pw, d.ow, &xlo, &xhi);
        }
        const float *gyc = gy + pl * ohw;
        float acc = gx[i];
        int touched = 0;
        for (int oy = ylo; oy <= yhi; oy++)
            for (int ox = xlo; ox <= xhi; ox++) {
                int y0, y1, x0, x1;
                double div;
                sg_avg_window(d, oy, ox, &y0, &y1, &x0, &x1, &div);
                if (div <= 0 || iy < y0 || iy >= y1 || ix < x0 || ix >= x1)
                    continue;
                acc += (float)(gyc[(size_t)oy * d.ow + ox] / div);
                touched = 1;
            }
        if (touched)
            gx[i] = acc;
    }
}

static int sg_pool_check(sd_backend *be, sd_error *err, const sd_pool_desc *d, const char *op)
{
    if (d->n < 0 || d->c < 1 || d->h < 1 || d->w < 1 || d->oh < 1 || d->ow < 1 ||
        (!d->adaptive &&
         (d->kh < 1 || d->kw < 1 || d->sh < 1 || d->sw < 1 || d->ph < 0 || d->pw < 0)))
        return sg_fail_code(err, SD_EINVAL, op, "bad pooling geometry");
    return 0;
}

/* The argmax is recomputed from x in every call: arg (see sd_backend.h) is
 * left unused on the GPU. */
static int sg_maxpool_fwd(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                          sd_real *y, int32_t *arg)
{
    (void)arg;
    SG_TRY(sg_pool_check(be, err, d, "maxpool_fwd"));
    size_t total = (size_t)d->n * d->c * d->oh * d->ow;
    if (!total)
        return 0;
    SG_ENTER(be);
    sg_maxpool_fwd_kernel<<<sg_blocks(total), SG_THREADS, 0, sg_ctx_of(be)->stream>>>(*d, x, y,
                                                                                      NULL, total);
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_maxpool_gather(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                             const int32_t *arg, const sd_real *dx, sd_real *dy)
{
    (void)arg;
    SG_TRY(sg_pool_check(be, err, d, "maxpool_gather"));
    size_t total = (size_t)d->n * d->c * d->oh * d->ow;
    if (!total)
        return 0;
    SG_ENTER(be);
    sg_maxpool_fwd_kernel<<<sg_blocks(total), SG_THREADS, 0, sg_ctx_of(be)->stream>>>(*d, x, dy, dx,
                                                                                      total);
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_maxpool_bwd(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                          const int32_t *arg, const sd_real *gy, sd_real *gx)
{
    (void)arg;
    SG_TRY(sg_pool_check(be, err, d, "maxpool_bwd"));
    SG_ENTER(be);
    cudaStream_t st = sg_ctx_of(be)->stream;
    if (d->sh >= d->kh && d->sw >= d->kw) {
        size_t total = (size_t)d->n * d->c * d->oh * d->ow;
        if (!total)
            return 0;
        sg_maxpool_bwd_scatter_kernel<<<sg_blocks(total), SG_THREADS, 0, st>>>(*d, x, gy, gx,
                                                                               total);
    } else if (int th = sg_maxpool_tile_rows(d)) {
        int tiles = (d->h + th - 1) / th;
        size_t nblocks = (size_t)d->n * d->c * (size_t)tiles;
        if (!nblocks)
            return 0;
        /* shared memory for the tallest band's windows (see sg_maxpool_tile_rows) */
        int rows = (th + d->kh - 2) / d->sh + 1;
        if (rows > d->oh)
            rows = d->oh;
        size_t smem = sizeof(int) * (size_t)rows * (size_t)d->ow;
        unsigned grid = nblocks > 0x7fffffffu ? 0x7fffffffu : (unsigned)nblocks;
        sg_maxpool_bwd_tiled_kernel<<<grid, SG_POOL_TILE_THREADS, smem, st>>>(*d, x, gy, gx, th,
                                                                              tiles, nblocks);
    } else {
        size_t total = (size_t)d->n * d->c * d->h * d->w;
        if (!total)
            return 0;
        sg_maxpool_bwd_gather_kernel<<<sg_blocks(total), SG_THREADS, 0, st>>>(*d, x, gy, gx, total);
    }
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_avgpool_fwd(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                          sd_real *y)
{
    SG_TRY(sg_pool_check(be, err, d, "avgpool_fwd"));
    size_t total = (size_t)d->n * d->c * d->oh * d->ow;
    if (!total)
        return 0;
    SG_ENTER(be);
    sg_avgpool_fwd_kernel<<<sg_blocks(total), SG_THREADS, 0, sg_ctx_of(be)->stream>>>(*d, x, y,
                                                                                      total);
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_avgpool_bwd(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *gy,
                          sd_real *gx)
{
    SG_TRY(sg_pool_check(be, err, d, "avgpool_bwd"));
    size_t total = (size_t)d->n * d->c * d->h * d->w;
    if (!total)
        return 0;
    SG_ENTER(be);
    sg_avgpool_bwd_gather_kernel<<<sg_blocks(total), SG_THREADS, 0, sg_ctx_of(be)->stream>>>(
        *d, gy, gx, total);
    SG_CK_LAUNCH(be);
    return 0;
}

void sg_install_pool(sd_backend *be)
{
    be->maxpool_fwd = sg_maxpool_fwd;
    be->maxpool_bwd = sg_maxpool_bwd;
    be->maxpool_gather = sg_maxpool_gather;
    be->avgpool_fwd = sg_avgpool_fwd;
    be->avgpool_bwd = sg_avgpool_bwd;
}
