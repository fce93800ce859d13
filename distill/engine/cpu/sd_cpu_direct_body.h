/*
 * sd_cpu_direct_body.h - the register-tiled correlation of the `direct`
 * convolution path, compiled once per instruction set by sd_cpu_direct.c.
 *
 * Included with DK_BYTES (vector width in bytes), DK_SUFFIX (name suffix)
 * and DK_TARGET (a function attribute selecting the instruction set, or
 * nothing) defined; defines DK_NAME(dk_run), which computes
 *   out[c][y][x] = sum over k, i, j of wt[c][k][i][j] * in[k][y+i][x+j]
 * for every tile of g (sd_cpu_direct.c says what each buffer holds).  Every
 * output element is one chain of multiply-adds in the order k, i, j, the
 * same whatever the tile; the vector width and the instruction set only
 * decide how many lanes go at once (and whether each multiply-add is fused:
 * where the instruction set has FMA, the compiler contracts them).
 */

#define DK_CAT2(a, b) a##b
#define DK_CAT(a, b)  DK_CAT2(a, b)
#define DK_NAME(x)    DK_CAT(x, DK_SUFFIX)
#define DK_LANES      ((int)(DK_BYTES / sizeof(sd_real)))
/* the tile functions under names clang-format reads as calls */
#define DK_TILE  DK_NAME(dk_tile)
#define DK_FTILE DK_NAME(dk_ftile)
#define DK_KTILE DK_NAME(dk_ktile)

/* Keep a loaded vector in a register: without it GCC folds the load into
 * every multiply-add that uses it, reloading (an unaligned, line-splitting
 * load) once per output channel. */
#ifndef DK_KEEP
#if defined(__GNUC__) && defined(__x86_64__)
#define DK_KEEP(v) __asm__("" : "+v"(v))
#else
#define DK_KEEP(v) ((void)0)
#endif
#endif

/* one vector; aligned to its element only, so loads at any offset are fine */
typedef sd_real DK_NAME(dk_vec) __attribute__((vector_size(DK_BYTES), aligned(sizeof(sd_real))));

/* One tile: CB output channels from c0, RB rows from y0, U vectors from x0.
 * CB * RB * U accumulators stay in registers (at most 8 vectors). */
static inline __attribute__((always_inline)) void DK_TILE(const sd_cpu_direct_geom *g,
                                                          const sd_real *in, const sd_real *wt,
                                                          sd_real *out, int c0, int y0, int x0,
                                                          const int CB, const int RB, const int U,
                                                          const int K5)
{
    typedef DK_NAME(dk_vec) vec;
    const int L = DK_LANES, r = K5 ? 5 : g->r, s = K5 ? 5 : g->s;
    const size_t wcs = (size_t)g->ci * r * s; /* weights of one output channel */
    vec acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < CB * RB * U; t++)
        acc[t] = (vec){0};
    for (int k = 0; k < g->ci; k++)
        for (int i = 0; i < r; i++) {
            const sd_real *row = in + (size_t)k * g->ics + (size_t)(y0 + i) * g->irs + x0;
            const sd_real *w0 = wt + (size_t)c0 * wcs + ((size_t)k * r + i) * s;
#pragma GCC unroll 5
            for (int j = 0; j < s; j++) {
                vec v[8];
#pragma GCC unroll 8
                for (int rr = 0; rr < RB; rr++)
#pragma GCC unroll 8
                    for (int uu = 0; uu < U; uu++) {
                        v[rr * U + uu] = *(const vec *)(row + (size_t)rr * g->irs + j + uu * L);
                        if (CB > 1)
                            DK_KEEP(v[rr * U + uu]);
                    }
#pragma GCC unroll 8
                for (int cc = 0; cc < CB; cc++) {
                    const sd_real wv = w0[(size_t)cc * wcs + j];
#pragma GCC unroll 8
                    for (int t = 0; t < RB * U; t++)
                        acc[cc * RB * U + t] += wv * v[t];
                }
            }
        }
#pragma GCC unroll 8
    for (int cc = 0; cc < CB; cc++)
#pragma GCC unroll 8
        for (int rr = 0; rr < RB; rr++)
#pragma GCC unroll 8
            for (int uu = 0; uu < U; uu++)
                *(vec *)(out + ((size_t)(c0 + cc) * g->ohp + (size_t)(y0 + rr)) * g->owp + x0 +
                         uu * L) = acc[(cc * RB + rr) * U + uu];
}

/* Every tile of the map, with the tile shape g chose (CB, RB, U as constants
 * so that the accumulators are registers; 5x5 kernels, LeNet's, with their
 * taps unrolled). */
#define DK_TILES_K(CB, RB, U, K5)                                   \
    for (int c0 = 0; c0 < g->cop; c0 += CB)                         \
        for (int y0 = 0; y0 < g->ohp; y0 += RB)                     \
            for (int x0 = 0; x0 < g->owp; x0 += U * DK_LANES) {     \
                DK_TILE(g, in, wt, out, c0, y0, x0, CB, RB, U, K5); \
            }
#define DK_TILES(CB, RB, U)           \
    do {                              \
        if (g->r == 5 && g->s == 5) { \
            DK_TILES_K(CB, RB, U, 1); \
        } else {                      \
            DK_TILES_K(CB, RB, U, 0); \
        }                             \
    } while (0)

DK_TARGET static void DK_NAME(dk_run)(const sd_cpu_direct_geom *g, const sd_real *in,
                                      const sd_real *wt, sd_real *out)
{
    switch (g->tile) {
    case SD_DIRECT_TILE_8x1x1: DK_TILES(8, 1, 1); break;
    case SD_DIRECT_TILE_4x2x1: DK_TILES(4, 2, 1); break;
    case SD_DIRECT_TILE_2x4x1: DK_TILES(2, 4, 1); break;
    case SD_DIRECT_TILE_1x8x1: DK_TILES(1, 8, 1); break;
    case SD_DIRECT_TILE_4x1x2: DK_TILES(4, 1, 2); break;
    case SD_DIRECT_TILE_2x2x2: DK_TILES(2, 2, 2); break;
    default: DK_TILES(1, 4, 2); break;
    }
}

#undef DK_TILES
#undef DK_TILES_K

/* The filter gradient of one sample into the vector partial sums of
 * sd_cpu_direct.c's filter layout: for every KB output channels from k0,
 * input channel c, kernel row i and tap j (in blocks of DF_JB),
 *   part[k][c][i][j] += gyw[k][p] * xflat[c][p + i*wp + j]   over vectors p
 * (the first sample starts the sums from zero instead of reading part).
 * Each lane of each partial sum is one chain in the order of the samples
 * and then of p. */
static inline __attribute__((always_inline)) void DK_FTILE(const sd_cpu_dfilter_geom *f,
                                                           const sd_real *gyw, const sd_real *xc,
                                                           sd_real *part, size_t kstride, int first,
                                                           const int KB)
{
    typedef DK_NAME(dk_vec) vec;
    const int L = DK_LANES;
    vec acc[4 * DF_JB];
#pragma GCC unroll 4
    for (int kk = 0; kk < KB; kk++)
#pragma GCC unroll 8
        for (int jj = 0; jj < DF_JB; jj++)
            acc[kk * DF_JB + jj] =
                first ? (vec){0} : *(const vec *)(part + ((size_t)kk * kstride + (size_t)jj) * L);
    for (size_t p = 0; p < f->np; p++) {
        vec x[DF_JB];
#pragma GCC unroll 8
        for (int jj = 0; jj < DF_JB; jj++) {
            x[jj] = *(const vec *)(xc + p * L + jj);
            if (KB > 1)
                DK_KEEP(x[jj]);
        }
#pragma GCC unroll 4
        for (int kk = 0; kk < KB; kk++) {
            const vec g = *(const vec *)(gyw + (size_t)kk * f->pp + p * L);
#pragma GCC unroll 8
            for (int jj = 0; jj < DF_JB; jj++)
                acc[kk * DF_JB + jj] += g * x[jj];
        }
    }
#pragma GCC unroll 4
    for (int kk = 0; kk < KB; kk++)
#pragma GCC unroll 8
        for (int jj = 0; jj < DF_JB; jj++)
            *(vec *)(part + ((size_t)kk * kstride + (size_t)jj) * L) = acc[kk * DF_JB + jj];
}

#define DK_FTILES(KB)                                                                    \
    for (int k0 = 0; k0 < f->kp; k0 += KB)                                               \
        for (int c = 0; c < f->c; c++)                                                   \
            for (int i = 0; i < f->r; i++)                                               \
                for (int j0 = 0; j0 < f->sj; j0 += DF_JB) {                              \
                    const size_t at = (((size_t)k0 * f->c + c) * f->r + i) * f->sj + j0; \
                    DK_FTILE(f, gyw + (size_t)k0 * f->pp,                                \
                             xflat + (size_t)c * f->cs + (size_t)i * f->wp + j0,         \
                             part + at * DK_LANES, kstride, first, KB);                  \
                }

DK_TARGET static void DK_NAME(dk_filter)(const sd_cpu_dfilter_geom *f, const sd_real *gyw,
                                         const sd_real *xflat, sd_real *part, int first)
{
    const size_t kstride = (size_t)f->c * f->r * f->sj; /* vectors per output channel */
    switch (f->kb) {
    case 4: DK_FTILES(4); break;
    case 3: DK_FTILES(3); break;
    case 2: DK_FTILES(2); break;
    default: DK_FTILES(1); break;
    }
}

#undef DK_FTILES

/* The filter gradient with the output channels across the lanes (layers
 * with k a multiple of the vector, or nearly: LeNet's conv2): for one block
 * of L output channels, one input channel c and a tile of DK_KTI kernel rows
 * x DF_JB taps from (i0, j0),
 *   part[k][c][i][j] += gyt[y*ow + x][k] * xpad[c][(y+i)*wp + x + j]
 * over every output pixel in order, each accumulator a vector of L output
 * channels in registers and each pixel's gradient loaded once per tile.
 * DK_KTI kernel rows per tile: 5 (25 accumulators) with AVX-512's 32
 * registers, 2 with 16. */
#if DK_BYTES >= 64
#define DK_KTI 5
#else
#define DK_KTI 2
#endif

static inline __attribute__((always_inline)) void DK_KTILE(const sd_cpu_kfilter_geom *f,
                                                           const sd_real *gyt, const sd_real *xc,
                                                           sd_real *part, int first)
{
    typedef DK_NAME(dk_vec) vec;
    const int L = DK_LANES;
    vec acc[DK_KTI * DF_JB];
#pragma GCC unroll 8
    for (int ii = 0; ii < DK_KTI; ii++)
#pragma GCC unroll 8
        for (int jj = 0; jj < DF_JB; jj++)
            acc[ii * DF_JB + jj] =
                first ? (vec){0} : *(const vec *)(part + ((size_t)ii * f->sj + (size_t)jj) * L);
    for (int y = 0; y < f->oh; y++) {
        const sd_real *xr = xc + (size_t)y * f->wp, *gr = gyt + (size_t)y * f->ow * L;
        for (int x = 0; x < f->ow; x++) {
            const vec g = *(const vec *)(gr + (size_t)x * L);
#pragma GCC unroll 8
            for (int ii = 0; ii < DK_KTI; ii++)
#pragma GCC unroll 8
                for (int jj = 0; jj < DF_JB; jj++)
                    acc[ii * DF_JB + jj] += g * xr[(size_t)ii * f->wp + x + jj];
        }
    }
#pragma GCC unroll 8
    for (int ii = 0; ii < DK_KTI; ii++)
#pragma GCC unroll 8
        for (int jj = 0; jj < DF_JB; jj++)
            *(vec *)(part + ((size_t)ii * f->sj + (size_t)jj) * L) = acc[ii * DF_JB + jj];
}

DK_TARGET static void DK_NAME(dk_kfilter)(const sd_cpu_kfilter_geom *f, const sd_real *gyt,
                                          const sd_real *xpad, sd_real *part, int first)
{
    const size_t L = (size_t)DK_LANES, ohw = (size_t)f->oh * f->ow;
    for (int kb = 0; kb < f->nkb; kb++)
        for (int c = 0; c < f->c; c++)
            for (int i0 = 0; i0 < f->rp; i0 += DK_KTI)
                for (int j0 = 0; j0 < f->sj; j0 += DF_JB)
                    DK_KTILE(f, gyt + (size_t)kb * ohw * L,
                             xpad + (size_t)c * f->cs + (size_t)i0 * f->wp + j0,
                             part + ((((size_t)kb * f->c + c) * f->rp + i0) * f->sj + j0) * L,
                             first);
}

/* Kernel rows per tile of dk_kfilter, for sd_cpu_direct.c's layout. */
enum { DK_NAME(dk_kti) = DK_KTI };

#undef DK_KTI
#undef DK_LANES
#undef DK_TILE
#undef DK_FTILE
#undef DK_KTILE
#undef DK_NAME
#undef DK_CAT
#undef DK_CAT2
