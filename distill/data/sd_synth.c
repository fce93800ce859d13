/*
 * sd_synth.c - synthetic double-contrast barium stomach phantoms
 * (see sd_synth.h for what they look like and why).
 *
 * Geometry is in normalised units: the shorter image side spans [0,1] and
 * the other axis is centred on it.  Smooth fields (the stomach's distance
 * field, background anatomy, severity and fold-tortuosity noise) are
 * evaluated on a grid of at most 512 nodes per side and bilinearly
 * interpolated; only the fine structures (mucosal texture, fold ridges,
 * noise) are evaluated per pixel.  This keeps a 2048x2048 phantom well under
 * a second.
 */
#include "sd_synth.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sd_png.h"
#include "sd_pool.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- portable random numbers ---- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* splitmix64 stream */
static uint64_t rng_next(uint64_t *s)
{
    *s += 0x9E3779B97F4A7C15ULL;
    return mix64(*s);
}

static double rng_u01(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static double rng_uniform(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * rng_u01(s);
}

/* Counter-based hash of a 2-D lattice point: the same (seed, a, b) always
 * gives the same value, whatever order pixels are visited in. */
static uint64_t hash2(uint64_t seed, int64_t a, int64_t b)
{
    return mix64(seed ^ mix64((uint64_t)a * 0x9E3779B97F4A7C15ULL +
                              (uint64_t)b * 0xC2B2AE3D27D4EB4FULL + 0x165667B19E3779F9ULL));
}

static double h01(uint64_t h)
{
    return (double)(h >> 11) * 0x1.0p-53;
}

/* ---- noise ---- */

static double smooth01(double t)
{
    return t * t * (3 - 2 * t);
}

static double smoothstep(double e0, double e1, double x)
{
    double t = (x - e0) / (e1 - e0);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return smooth01(t);
}

/* Value noise in [-1,1] with lattice spacing 1/freq. */
static double vnoise(uint64_t seed, double x, double y, double freq)
{
    double X = x * freq, Y = y * freq;
    double fx = floor(X), fy = floor(Y);
    int64_t ix = (int64_t)fx, iy = (int64_t)fy;
    double tx = smooth01(X - fx), ty = smooth01(Y - fy);
    double v00 = h01(hash2(seed, ix, iy)), v10 = h01(hash2(seed, ix + 1, iy));
    double v01 = h01(hash2(seed, ix, iy + 1)), v11 = h01(hash2(seed, ix + 1, iy + 1));
    double a = v00 + tx * (v10 - v00), b = v01 + tx * (v11 - v01);
    return 2 * (a + ty * (b - a)) - 1;
}

/* Two-octave fractal noise, roughly in [-1,1]. */
static double fbm2(uint64_t seed, double x, double y, double freq)
{
    return 0.67 * vnoise(seed, x, y, freq) + 0.33 * vnoise(seed + 1, x, y, 2.03 * freq);
}

/* Worley (cellular) noise in cell units: distances to the nearest and second
 * nearest feature point (one per cell, jittered) and the nearest one's hash. */
static void worley(uint64_t seed, double x, double y, double jitter, double *f1, double *f2,
                   uint64_t *id)
{
    double fx = floor(x), fy = floor(y);
    int64_t ix = (int64_t)fx, iy = (int64_t)fy;
    double d1 = 1e9, d2 = 1e9;
    uint64_t best = 0;
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            uint64_t h = hash2(seed, ix + dx, iy + dy);
            double px = (double)(ix + dx) + 0.5 + jitter * (h01(h) - 0.5);
            double py =
                (double)(iy + dy) + 0.5 + jitter * ((double)((h >> 3) & 0xffff) / 65535.0 - 0.5);
            double d = (px - x) * (px - x) + (py - y) * (py - y);
            if (d < d1) {
                d2 = d1;
                d1 = d;
                best = h;
            } else if (d < d2) {
                d2 = d;
            }
        }
    *f1 = sqrt(d1);
    *f2 = sqrt(d2);
    *id = best;
}

/* ---- the patient ---- */

#define CTRL     7  /* stomach centre-line control points */
#define NSEG     72 /* centre-line segments after spline sampling */
#define MAX_RIBS 8
#define MAX_GAS  4

typedef struct patient {
    int label;
    uint64_t seed;
    /* stomach centre line and radius */
    double cx[NSEG + 1], cy[NSEG + 1], cr[NSEG + 1];
    /* body and anatomy */
    double body_cx, body_cy, body_ax, body_ay;
    double spine_x, spine_tilt, spine_hw, vert_period, vert_phase;
    int nribs;
    double rib_y[MAX_RIBS], rib_k[MAX_RIBS], rib_side[MAX_RIBS];
    int ngas;
    double gas_x[MAX_GAS], gas_y[MAX_GAS], gas_r[MAX_GAS];
    double liver_x, liver_y;
    /* stomach appearance */
    double gas_depth;      /* lucency of the air-filled stomach */
    double rim_amp, rim_w; /* barium line along the wall */
    double folds;          /* number of folds across the stomach */
    double fold_amp;
    double sigma_n, sigma_g; /* fold half-width (phase units) */
    double tort_n, tort_g;   /* fold tortuosity amplitude (phase units) */
    double tort_freq;
    double cell_n, cell_g; /* mucosal cell size, normalised units */
    double tex_amp;
    double sev0, sev_amp; /* severity field: sev0 + sev_amp * noise */
    int pool;
    double pool_x, pool_y, pool_r;
    /* film */
    double noise_sd, vignette, gain, offset;
} patient;

static void catmull_rom(const double *p, int n, double t, double *out)
{
    /* t in [0, n-1]; end points are duplicated. */
    int i = (int)floor(t);
    if (i >= n - 1)
        i = n - 2;
    if (i < 0)
        i = 0;
    double u = t - i;
    double p0 = p[i > 0 ? i - 1 : 0], p1 = p[i], p2 = p[i + 1], p3 = p[i + 2 < n ? i + 2 : n - 1];
    *out = 0.5 * ((2 * p1) + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u * u +
                  (-p0 + 3 * p1 - 3 * p2 + p3) * u * u * u);
}

static void patient_draw(patient *P, int label, uint64_t seed)
{
    memset(P, 0, sizeof *P);
    P->label = label;
    P->seed = seed;
    uint64_t s = seed ^ 0x5D1D5EEDULL;
    /* A J-shaped stomach: fundus top right (the patient's left), body
     * descending, the angle low, the antrum running left and up to the
     * pylorus.  Each patient's stomach is moved, scaled, rotated and bent. */
    static const double bx[CTRL] = {0.62, 0.69, 0.68, 0.57, 0.42, 0.29, 0.19};
    static const double by[CTRL] = {0.17, 0.34, 0.55, 0.72, 0.74, 0.65, 0.55};
    static const double br[CTRL] = {0.15, 0.165, 0.155, 0.135, 0.115, 0.085, 0.055};
    double scale = rng_uniform(&s, 0.86, 1.08);
    double rot = rng_uniform(&s, -0.14, 0.14);
    double shx = rng_uniform(&s, -0.04, 0.04), shy = rng_uniform(&s, -0.03, 0.04);
    double wscale = rng_uniform(&s, 0.85, 1.12);
    double px[CTRL], py[CTRL], pr[CTRL];
    for (int i = 0; i < CTRL; i++) {
        double x = bx[i] + rng_uniform(&s, -0.025, 0.025) - 0.5;
        double y = by[i] + rng_uniform(&s, -0.025, 0.025) - 0.5;
        double c = cos(rot), sn = sin(rot);
        px[i] = 0.5 + shx + scale * (c * x - sn * y);
        py[i] = 0.5 + shy + scale * (sn * x + c * y);
        pr[i] = br[i] * scale * wscale * rng_uniform(&s, 0.9, 1.1);
    }
    for (int j = 0; j <= NSEG; j++) {
        double t = (double)j * (CTRL - 1) / NSEG;
        catmull_rom(px, CTRL, t, &P->cx[j]);
        catmull_rom(py, CTRL, t, &P->cy[j]);
        catmull_rom(pr, CTRL, t, &P->cr[j]);
        if (P->cr[j] < 0.03)
            P->cr[j] = 0.03;
    }

    P->body_cx = 0.5 + rng_uniform(&s, -0.04, 0.04);
    P->body_cy = 0.55;
    P->body_ax = rng_uniform(&s, 0.52, 0.75);
    P->body_ay = rng_uniform(&s, 0.75, 1.0);
    P->spine_x = rng_uniform(&s, 0.36, 0.46);
    P->spine_tilt = rng_uniform(&s, -0.05, 0.05);
    P->spine_hw = rng_uniform(&s, 0.045, 0.06);
    P->vert_period = rng_uniform(&s, 0.085, 0.105);
    P->vert_phase = rng_u01(&s);
    P->nribs = 6;
    for (int i = 0; i < P->nribs; i++) {
        P->rib_side[i] = i % 2 ? 1 : -1;
        P->rib_y[i] = -0.08 + 0.11 * (i / 2) + rng_uniform(&s, -0.02, 0.02);
        P->rib_k[i] = rng_uniform(&s, 0.7, 1.1);
    }
    P->ngas = 2 + (int)(rng_u01(&s) * 3);
    for (int i = 0; i < P->ngas; i++) {
        P->gas_x[i] = rng_uniform(&s, 0.08, 0.92);
        P->gas_y[i] = rng_uniform(&s, 0.80, 0.98);
        P->gas_r[i] = rng_uniform(&s, 0.025, 0.06);
    }
    P->liver_x = rng_uniform(&s, 0.05, 0.18);
    P->liver_y = rng_uniform(&s, 0.15, 0.3);

    P->gas_depth = rng_uniform(&s, 0.14, 0.22);
    P->rim_amp = rng_uniform(&s, 0.22, 0.32);
    P->rim_w = rng_uniform(&s, 0.003, 0.005);
    P->folds = rng_uniform(&s, 5.5, 10.0);
    P->fold_amp = rng_uniform(&s, 0.07, 0.12);
    P->sigma_n = rng_uniform(&s, 0.055, 0.08);
    P->sigma_g = rng_uniform(&s, 0.11, 0.17);
    P->tort_n = rng_uniform(&s, 0.03, 0.10);
    P->tort_g = rng_uniform(&s, 0.35, 0.75);
    P->tort_freq = rng_uniform(&s, 7.0, 11.0);
    P->cell_n = rng_uniform(&s, 0.0070, 0.0100);
    P->cell_g = rng_uniform(&s, 0.014, 0.022);
    P->tex_amp = rng_uniform(&s, 0.06, 0.10);
    if (label) {
        P->sev0 = rng_uniform(&s, 0.45, 1.0);
        P->sev_amp = rng_uniform(&s, 0.3, 0.5);
    } else {
        P->sev0 = rng_uniform(&s, -0.25, 0.12);
        P->sev_amp = rng_uniform(&s, 0.15, 0.3);
    }
    P->pool = rng_u01(&s) < 0.75;
    P->pool_x = P->cx[0] + rng_uniform(&s, -0.02, 0.04);
    P->pool_y = P->cy[0] + rng_uniform(&s, -0.02, 0.03);
    P->pool_r = rng_uniform(&s, 0.05, 0.10);

    P->noise_sd = rng_uniform(&s, 0.012, 0.03);
    P->vignette = rng_uniform(&s, 0.25, 0.5);
    P->gain = rng_uniform(&s, 0.85, 1.2);
    P->offset = rng_uniform(&s, -0.05, 0.05);
}

/* ---- smooth fields on the coarse grid ---- */

/* F_U is signed (its sign flips across the centre line and along the line
 * through each end cap, where bilinear interpolation would pass through 0),
 * so the mask uses the unsigned F_D. */
enum { F_BG, F_U, F_D, F_S, F_R, F_SEV, F_TORT, F_BEAD, F_POOL, F_COAT, NFIELDS };

typedef struct grid {
    int nx, ny;
    double q; /* pixels per grid step */
    float *f; /* NFIELDS planes of nx*ny */
} grid;

/* Normalised signed distance to the stomach centre line: u = ±d/r, with d
 * the distance to the nearest segment and r the radius there; also the
 * position along the stomach s in [0,1] and the local radius. */
static void stomach_field(const patient *P, double x, double y, double *u, double *sp, double *rad)
{
    double best = 1e9, bs = 0, br = P->cr[0], side = 1;
    for (int j = 0; j < NSEG; j++) {
        double ax = P->cx[j], ay = P->cy[j];
        double abx = P->cx[j + 1] - ax, aby = P->cy[j + 1] - ay;
        double px = x - ax, py = y - ay;
        double l2 = abx * abx + aby * aby;
        double t = l2 > 0 ? (px * abx + py * aby) / l2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        double dx = px - t * abx, dy = py - t * aby;
        double r = P->cr[j] + t * (P->cr[j + 1] - P->cr[j]);
        double d2 = (dx * dx + dy * dy) / (r * r);
        if (d2 < best) {
            best = d2;
            bs = (j + t) / NSEG;
            br = r;
            side = abx * py - aby * px >= 0 ? 1 : -1;
        }
    }
    *u = side * sqrt(best);
    *sp = bs;
    *rad = br;
}

static double background(const patient *P, double x, double y)
{
    uint64_t sd = P->seed;
    double v = 0.50 + 0.05 * fbm2(sd + 11, x, y, 3.0);
    /* liver: the patient's right upper abdomen, image left */
    double lvx = (x - P->liver_x) / 0.32, lvy = (y - P->liver_y) / 0.26;
    v += 0.07 * (1 - smoothstep(0.8, 1.1, sqrt(lvx * lvx + lvy * lvy)));
    /* spine with vertebral bodies and darker discs between them */
    double sx = P->spine_x + P->spine_tilt * (y - 0.5);
    double ex = fabs(x - sx) / P->spine_hw;
    if (ex < 1.6) {
        /* the column of posterior elements, soft-edged */
        v += 0.03 * (1 - smoothstep(0.7, 1.5, ex));
        /* vertebral body: a rounded box per period, a little wider or
         * narrower each level, with a brighter cortical rim and trabecular
         * mottling; pedicles as two small rings */
        double ph = y / P->vert_period + P->vert_phase;
        double lvl = floor(ph);
        double ly = (ph - lvl - 0.5) / 0.40;
        double wv = 1 + 0.08 * (h01(hash2(sd + 7, (int64_t)lvl, 0)) - 0.5);
        double bx = ex / wv * (1 + 0.06 * ly * ly); /* waisted sides */
        double r4 = pow(bx * bx * bx * bx + ly * ly * ly * ly, 0.25);
        double body = 1 - smoothstep(0.92, 1.02, r4);
        double cortex = exp(-(r4 - 0.95) * (r4 - 0.95) / 0.0025);
        double trab = 0.015 * vnoise(sd + 8, x, y, 160);
        v += body * (0.045 + trab) + 0.03 * cortex;
        for (int side = -1; side <= 1; side += 2) {
            double pxn = (ex * (x > sx ? 1 : -1) - side * 0.62) / 0.22, pyn = (ly + 0.45) / 0.3;
            double pr = sqrt(pxn * pxn + pyn * pyn);
            v += 0.02 * exp(-(pr - 1) * (pr - 1) / 0.05);
        }
    }
    /* ribs: arcs running out and down from the spine */
    for (int i = 0; i < P->nribs; i++) {
        double dx = (x - sx) * P->rib_side[i];
        if (dx < 0.05)
            continue;
        double yc = P->rib_y[i] + P->rib_k[i] * 0.5 * dx * dx + 0.15 * dx;
        double d = fabs(y - yc);
        if (d < 0.03) {
            double band = 1 - smoothstep(0.008, 0.014, d);
            double edge = exp(-(d - 0.011) * (d - 0.011) / 0.00001);
            v += (0.035 * band + 0.03 * edge) * smoothstep(0.05, 0.09, dx);
        }
    }
    /* bowel gas below the stomach */
    for (int i = 0; i < P->ngas; i++) {
        double gx = (x - P->gas_x[i]) / (P->gas_r[i] * 1.4), gy = (y - P->gas_y[i]) / P->gas_r[i];
        double d = sqrt(gx * gx + gy * gy) + 0.25 * vnoise(sd + 40 + (uint64_t)i, x, y, 25);
        v -= 0.09 * (1 - smoothstep(0.8, 1.0, d));
    }
    /* the body outline: soft tissue thins towards the flanks */
    double bxn = (x - P->body_cx) / P->body_ax, byn = (y - P->body_cy) / P->body_ay;
    double e = sqrt(bxn * bxn + byn * byn);
    double thick = e < 1 ? sqrt(1 - e * e) : 0;
    double inside = 1 - smoothstep(0.985, 1.0, e);
    v = 0.06 + (v - 0.06) * inside * (0.55 + 0.45 * sqrt(thick));
    return v;
}

static int grid_build(grid *g, const patient *P, int W, int H)
{
    int S = W < H ? W : H;
    /* about 2 pixels per node at 512, 8 at 2048: the fields are smooth */
    int gs = S < 256 ? S : S < 512 ? S / 2 : 256;
    g->q = (double)S / gs;
    g->nx = (int)ceil(W / g->q) + 2;
    g->ny = (int)ceil(H / g->q) + 2;
    size_t plane = (size_t)g->nx * (size_t)g->ny;
    g->f = malloc(plane * NFIELDS * sizeof(float));
    if (!g->f)
        return SD_ENOMEM;
    double ox = (W - S) / 2.0, oy = (H - S) / 2.0;
    uint64_t sd = P->seed;
    for (int j = 0; j < g->ny; j++)
        for (int i = 0; i < g->nx; i++) {
            double x = (i * g->q - ox) / S, y = (j * g->q - oy) / S;
            size_t k = (size_t)j * g->nx + i;
            double u, sp, rad;
            stomach_field(P, x, y, &u, &sp, &rad);
            float *f = g->f;
            f[F_BG * plane + k] = (float)background(P, x, y);
            f[F_U * plane + k] = (float)u;
            f[F_D * plane + k] = (float)fabs(u);
            f[F_COAT * plane + k] = (float)fbm2(sd + 81, x, y, 9.0);
            f[F_S * plane + k] = (float)sp;
            f[F_R * plane + k] = (float)rad;
            double sev = P->sev0 + P->sev_amp * fbm2(sd + 21, x, y, 3.5);
            f[F_SEV * plane + k] = (float)(sev < 0 ? 0 : sev > 1 ? 1 : sev);
            f[F_TORT * plane + k] = (float)fbm2(sd + 31, x, y, P->tort_freq);
            f[F_BEAD * plane + k] = (float)vnoise(sd + 35, x, y, 2.5 * P->tort_freq);
            double pool = 0;
            if (P->pool) {
                double dx = (x - P->pool_x) / (P->pool_r * 1.3), dy = (y - P->pool_y) / P->pool_r;
                double d = sqrt(dx * dx + dy * dy) + 0.15 * vnoise(sd + 51, x, y, 12);
                /* deepest (brightest) towards the dependent side */
                pool = (1 - smoothstep(0.6, 1.05, d)) * (0.75 + 0.25 * smoothstep(-1, 1, dy));
            }
            f[F_POOL * plane + k] = (float)pool;
        }
    return 0;
}

/* ---- per-pixel rendering ---- */

/* Fine, regular reticular pattern (areae gastricae) of non-gastritis
 * mucosa, zero-mean-ish. */
static double texture_fine(uint64_t seed, double x, double y, double cell)
{
    double f1, f2;
    uint64_t id;
    worley(seed, x / cell, y / cell, 0.55, &f1, &f2, &id);
    double e = (f2 - f1) / 0.2;
    return exp(-e * e) - 0.33;
}

/* Coarse, irregular nodules ringed with barium, for gastritis. */
static double texture_coarse(uint64_t seed, double x, double y, double cell)
{
    double f1, f2;
    uint64_t id;
    worley(seed, x / cell, y / cell, 1.0, &f1, &f2, &id);
    double rho = 0.30 + 0.25 * (double)((id >> 20) & 0xff) / 255.0;
    double depth = 0.4 + 0.6 * (double)((id >> 28) & 0xff) / 255.0;
    double e = (f2 - f1) / 0.14, ring = (f1 - rho) / 0.09;
    double v = 0.8 * exp(-e * e) + 0.6 * depth * exp(-ring * ring) -
               0.45 * depth * (1 - smoothstep(rho - 0.1, rho, f1));
    return v - 0.12;
}

static int render(const patient *P, const grid *g, int W, int H, uint8_t *img, uint8_t *mask)
{
    int S = W < H ? W : H;
    double ox = (W - S) / 2.0, oy = (H - S) / 2.0;
    size_t plane = (size_t)g->nx * (size_t)g->ny;
    uint64_t sd = P->seed;
    double px_norm = 1.0 / S; /* one pixel in normalised units */
    for (int py = 0; py < H; py++) {
        double fy = (py + 0.5) / g->q;
        int j0 = (int)fy;
        double ty = fy - j0;
        for (int pxi = 0; pxi < W; pxi++) {
            double fx = (pxi + 0.5) / g->q;
            int i0 = (int)fx;
            double tx = fx - i0;
            size_t k = (size_t)j0 * g->nx + i0;
            double fld[NFIELDS];
            for (int c = 0; c < NFIELDS; c++) {
                const float *f = g->f + c * plane;
                double a = f[k] + tx * (f[k + 1] - f[k]);
                double b = f[k + g->nx] + tx * (f[k + g->nx + 1] - f[k + g->nx]);
                fld[c] = a + ty * (b - a);
            }
            double x = (pxi + 0.5 - ox) / S, y = (py + 0.5 - oy) / S;
            double v = fld[F_BG];
            double au = fld[F_D], rad = fld[F_R];
            /* distance to the wall in pixels, positive inside */
            double wall_px = (1 - au) * rad / px_norm;
            double inside = wall_px > 1 ? 1 : wall_px < -1 ? 0 : 0.5 * (wall_px + 1);
            if (mask)
                mask[(size_t)py * W + pxi] = au < 1 ? 255 : 0;
            if (inside > 0) {
                double sev = fld[F_SEV], pool = fld[F_POOL];
                double sp = fld[F_S];
                double st = -P->gas_depth;
                /* barium line along the wall */
                double wd = ((1 - au) * rad - 0.6 * P->rim_w) / P->rim_w;
                st += P->rim_amp * exp(-wd * wd);
                /* uneven barium coating */
                st += 0.035 * fld[F_COAT];
                /* mucosal texture: blend of the fine and coarse patterns */
                double tex = 0;
                if (sev < 0.999)
                    tex += (1 - sev) * texture_fine(sd + 61, x, y, P->cell_n);
                if (sev > 0.001)
                    tex += sev * 1.15 * texture_coarse(sd + 71, x, y, P->cell_g);
                st += P->tex_amp * tex * (1 - 0.85 * pool);
                /* folds: ridges along lines of constant u, bent by the
                 * tortuosity noise and thickened with severity */
                double tort = P->tort_n + sev * (P->tort_g - P->tort_n);
                double phase = (fld[F_U] + 1) * 0.5 * P->folds + tort * fld[F_TORT];
                double fr = phase - floor(phase) - 0.5;
                double sig = P->sigma_n + sev * (P->sigma_g - P->sigma_n);
                sig *= 1 + 0.45 * sev * fld[F_BEAD];
                double e = fr / sig;
                double ends = smoothstep(0.02, 0.16, sp) * (1 - smoothstep(0.9, 0.99, sp));
                double wall_fade = smoothstep(0.0, 0.12, 1 - au);
                st += P->fold_amp * (exp(-e * e) - 0.15) * ends * wall_fade * (1 - pool);
                /* barium pool in the dependent fundus */
                st += 0.30 * pool;
                v += inside * st;
            }
            /* vignetting, film response, quantum noise */
            double cx = x - 0.5, cy = y - 0.5;
            v *= 1 - P->vignette * (cx * cx + cy * cy);
            v = P->gain * (v - 0.45) + 0.45 + P->offset;
            uint64_t h = hash2(sd + 91, pxi, py);
            double n = ((double)(h & 0xffff) + (double)((h >> 16) & 0xffff) +
                        (double)((h >> 32) & 0xffff) + (double)(h >> 48)) /
                           65535.0 -
                       2.0; /* Irwin-Hall: mean 0, variance 1/3 */
            v += P->noise_sd * 1.7320508 * n;
            double o = v * 255.0 + 0.5;
            img[(size_t)py * W + pxi] = (uint8_t)(o < 0 ? 0 : o > 255 ? 255 : o);
        }
    }
    return 0;
}

int sd_synth_generate(const sd_synth_opts *o, uint8_t *img, uint8_t *mask, sd_error *err)
{
    if (!o || !img)
        return sd_error_set(err, SD_EINVAL, "synth: missing options or output buffer");
    if (o->width < 16 || o->height < 16 || o->width > 16384 || o->height > 16384)
        return sd_error_set(err, SD_EINVAL, "synth: image size %dx%d out of range 16..16384",
                            o->width, o->height);
    if (o->label != 0 && o->label != 1)
        return sd_error_set(err, SD_EINVAL, "synth: label %d is not 0 or 1", o->label);
    patient *P = malloc(sizeof *P);
    if (!P)
        return sd_error_set(err, SD_ENOMEM, "synth: out of memory");
    patient_draw(P, o->label, o->seed);
    grid g = {0};
    if (grid_build(&g, P, o->width, o->height)) {
        free(P);
        return sd_error_set(err, SD_ENOMEM, "synth: out of memory for a %dx%d phantom", o->width,
                            o->height);
    }
    render(P, &g, o->width, o->height, img, mask);
    free(g.f);
    free(P);
    return 0;
}

/* ---- a dataset on disk ---- */

void sd_synth_image_id(char *buf, int i, int count)
{
    int digits = 4;
    for (int c = count - 1; c >= 10000; c /= 10)
        digits++;
    if (digits > 9)
        digits = 9;
    snprintf(buf, 32, "synth%0*u", digits, (unsigned)i % 1000000000u);
}

static int make_dir(const char *path, sd_error *err)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        return sd_error_set(err, SD_EIO, "%s: exists and is not a directory", path);
    }
    return sd_error_set(err, SD_EIO, "%s: cannot create directory: %s", path, strerror(errno));
}

/* mkdir -p */
static int make_dirs(const char *path, sd_error *err)
{
    char buf[4096];
    if (strlen(path) >= sizeof buf)
        return sd_error_set(err, SD_EINVAL, "path too long: %s", path);
    memcpy(buf, path, strlen(path) + 1);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            int rc = make_dir(buf, err);
            if (rc)
                return rc;
            *p = '/';
        }
    return make_dir(buf, err);
}

/* One image per pool task (sd_pool.h); `lock` only serialises the
 * progress callback. */
typedef struct synth_job {
    const sd_synth_dataset_opts *o;
    const int *labels;
    pthread_mutex_t lock;
    int done;
} synth_job;

static int synth_one(void *arg, int i, sd_error *e)
{
    synth_job *J = arg;
    const sd_synth_dataset_opts *o = J->o;
    size_t npix = (size_t)o->size * (size_t)o->size;
    uint8_t *img = malloc(npix), *mask = malloc(npix);
    char path[4200], id[32];
    int rc = 0;
    if (!img || !mask)
        rc = sd_error_set(e, SD_ENOMEM, "synth: out of memory");
    sd_synth_image_id(id, i, o->count);
    if (!rc) {
        sd_synth_opts so = {o->size, o->size, J->labels[i],
                            mix64(o->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i + 1)};
        rc = sd_synth_generate(&so, img, mask, e);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/images/%s.png", o->out_dir, id);
        rc = sd_png_write_comment(path, img, o->size, o->size, 1, SD_SYNTH_COMMENT, e);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/masks/%s.png", o->out_dir, id);
        rc = sd_png_write_comment(path, mask, o->size, o->size, 1, SD_SYNTH_COMMENT, e);
    }
    free(img);
    free(mask);
    if (!rc && o->progress) {
        pthread_mutex_lock(&J->lock);
        o->progress(o->progress_ctx, ++J->done, o->count);
        pthread_mutex_unlock(&J->lock);
    }
    return rc;
}

/* Largest-remainder apportionment of n items into 3 parts. */
static void apportion(int n, const double frac[3], int out[3])
{
    double sum = frac[0] + frac[1] + frac[2], rem[3];
    int given = 0;
    for (int k = 0; k < 3; k++) {
        double q = n * frac[k] / sum;
        out[k] = (int)floor(q);
        rem[k] = q - out[k];
        given += out[k];
    }
    while (given < n) {
        int b = 0;
        for (int k = 1; k < 3; k++)
            if (rem[k] > rem[b])
                b = k;
        out[b]++;
        rem[b] = -1;
        given++;
    }
}

int sd_synth_dataset_write(const sd_synth_dataset_opts *o, sd_error *err)
{
    if (!o || !o->out_dir || !*o->out_dir)
        return sd_error_set(err, SD_EINVAL, "synth: no output directory");
    if (o->count < 1 || o->count > 1000000)
        return sd_error_set(err, SD_EINVAL, "synth: --count %d out of range 1..1000000", o->count);
    if (o->size < 16 || o->size > 16384)
        return sd_error_set(err, SD_EINVAL, "synth: --size %d out of range 16..16384", o->size);
    if (!(o->gastritis_fraction >= 0 && o->gastritis_fraction <= 1))
        return sd_error_set(err, SD_EINVAL, "synth: gastritis fraction %g not in [0,1]",
                            o->gastritis_fraction);
    for (int k = 0; k < 3; k++)
        if (!(o->split[k] >= 0 && o->split[k] <= 1e6))
            return sd_error_set(err, SD_EINVAL, "synth: split fraction %g is negative or invalid",
                                o->split[k]);
    if (!(o->split[0] + o->split[1] + o->split[2] > 0))
        return sd_error_set(err, SD_EINVAL, "synth: split fractions sum to zero");

    char path[4200];
    int rc = make_dirs(o->out_dir, err);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s/labels.csv", o->out_dir);
    if (!o->force && access(path, F_OK) == 0)
        return sd_error_set(err, SD_EINVAL,
                            "%s already exists; choose an empty directory or pass --force", path);
    snprintf(path, sizeof path, "%s/images", o->out_dir);
    if ((rc = make_dir(path, err)))
        return rc;
    snprintf(path, sizeof path, "%s/masks", o->out_dir);
    if ((rc = make_dir(path, err)))
        return rc;

    int n = o->count;
    int *labels = calloc((size_t)n, sizeof *labels), *split = calloc((size_t)n, sizeof *split);
    int *order = malloc((size_t)n * sizeof *order);
    if (!labels || !split || !order) {
        free(labels);
        free(split);
        free(order);
        return sd_error_set(err, SD_ENOMEM, "synth: out of memory");
    }
    /* labels: a seeded Fisher-Yates shuffle picks the gastritis images */
    uint64_t s = o->seed ^ 0x1ABE15ULL;
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng_next(&s) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int npos = (int)floor(n * o->gastritis_fraction + 0.5);
    for (int i = 0; i < npos; i++)
        labels[order[i]] = 1;
    /* splits: stratified by label, in image order within each class */
    for (int lab = 0; lab < 2; lab++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            m += labels[i] == lab;
        int parts[3];
        apportion(m, o->split, parts);
        int seen = 0;
        for (int i = 0; i < n; i++) {
            if (labels[i] != lab)
                continue;
            split[i] = seen < parts[0] ? 0 : seen < parts[0] + parts[1] ? 1 : 2;
            seen++;
        }
    }
    free(order);

    synth_job J;
    memset(&J, 0, sizeof J);
    J.o = o;
    J.labels = labels;
    if (pthread_mutex_init(&J.lock, NULL)) {
        free(labels);
        free(split);
        return sd_error_set(err, SD_EBACKEND, "synth: pthread_mutex_init failed");
    }
    rc = sd_pool_run_once(o->threads, n, synth_one, &J, err);
    pthread_mutex_destroy(&J.lock);
    if (rc) {
        free(labels);
        free(split);
        return rc;
    }

    /* labels.csv, then README.txt, each via a temp file and rename */
    static const char *split_names[3] = {"train", "val", "test"};
    rc = 0;
    for (int which = 0; which < 2 && !rc; which++) {
        char final[4200], tmp[4300];
        snprintf(final, sizeof final, "%s/%s", o->out_dir, which ? "README.txt" : "labels.csv");
        snprintf(tmp, sizeof tmp, "%s.tmp", final);
        FILE *f = fopen(tmp, "w");
        if (!f) {
            rc = sd_error_set(err, SD_EIO, "%s: cannot create: %s", tmp, strerror(errno));
            break;
        }
        if (which == 0) {
            fprintf(f, "id,label,split\n");
            char id[32];
            for (int i = 0; i < n; i++) {
                sd_synth_image_id(id, i, n);
                fprintf(f, "%s,%d,%s\n", id, labels[i], split_names[split[i]]);
            }
        } else {
            int cnt[3][2] = {{0}};
            for (int i = 0; i < n; i++)
                cnt[split[i]][labels[i]]++;
            fprintf(f,
                    "SYNTHETIC DATA - gastric X-ray phantoms generated by 'sldd dataset synth'.\n"
                    "\n"
                    "These images are computer-generated phantoms, not patient data and not\n"
                    "real radiographs.  They imitate double-contrast barium stomach images:\n"
                    "label 0 (non-gastritis) has straight, regular folds and a fine, uniform\n"
                    "mucosal pattern; label 1 (gastritis) has tortuous, thickened folds and a\n"
                    "coarse, nodular pattern.  Use them for demonstrations and tests only.\n"
                    "\n"
                    "count: %d images of %dx%d pixels (8-bit grayscale PNG)\n"
                    "seed: %llu\n"
                    "gastritis fraction: %g\n"
                    "split          non-gastritis  gastritis\n"
                    "train          %13d  %9d\n"
                    "val            %13d  %9d\n"
                    "test           %13d  %9d\n"
                    "\n"
                    "Layout: images/ID.png, masks/ID.png (255 = stomach), labels.csv\n"
                    "(id,label,split).  See docs/data.md in the sldd sources.\n",
                    n, o->size, o->size, (unsigned long long)o->seed, o->gastritis_fraction,
                    cnt[0][0], cnt[0][1], cnt[1][0], cnt[1][1], cnt[2][0], cnt[2][1]);
        }
        if (fflush(f) != 0 || ferror(f)) {
            rc = sd_error_set(err, SD_EIO, "%s: write failed: %s", tmp, strerror(errno));
            fclose(f);
            remove(tmp);
            break;
        }
        if (fclose(f) != 0) {
            rc = sd_error_set(err, SD_EIO, "%s: close failed: %s", tmp, strerror(errno));
            remove(tmp);
            break;
        }
        if (rename(tmp, final) != 0) {
            rc = sd_error_set(err, SD_EIO, "%s: cannot rename: %s", final, strerror(errno));
            remove(tmp);
        }
    }
    free(labels);
    free(split);
    return rc;
}
