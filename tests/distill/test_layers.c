/*
 * test_layers.c - finite-difference checks of every layer kind's four entry
 * points, of the soft-target cross-entropy and of the row softmax, in double
 * precision (links sldd_distill64).
 *
 * For each case (kind, shape, settings), with random tie-free data:
 *   backward          gx, gtheta  vs  per-coordinate central differences of
 *                     <gy, f(x + h e_j, theta)> (and of theta's coordinates);
 *   forward tangent   dy          vs  (f(x + h dx, th + h dth) - f(x - h dx, th - h dth)) / 2h;
 *   backward tangent  dgx, dgth   vs  the same central difference of the
 *                     backward (gx, gtheta) along (dx, dtheta, dgy), the
 *                     forward (and so BN's batch statistics) recomputed at
 *                     each perturbed point.
 * Error = max |analytic - fd| / max |fd| over the compared vector.  With
 * h = 1e-6 the central difference has truncation error ~h^2 |f'''| ~ 1e-12
 * and round-off ~ 1e-16 |f| / h ~ 1e-10, so a correct derivative lands near
 * 1e-9 and any missing or wrong term lands above 1e-3; the limit 1e-6 sits
 * between with margin both ways.
 * Also checked: "+=" outputs accumulate, and NULL tangents behave as zeros.
 * Every conv case also runs through every convolution path, its four entry
 * points compared with the im2col path's; the float32 build of this file
 * (test_layers32, linking sldd_distill) runs only that comparison, which so
 * covers the paths only float32 has (dnnl).
 * The table printed here is the one in docs/derivative-checks.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_backend.h"
#include "sd_backend_cpu.h"
#include "sd_layer.h"
#include "../sd_test.h"

#define FD_H   1e-6
#define FD_TOL 1e-6

/* ---------------------------------------------------------------- utils */

static uint64_t rng_state = 0x5eed1234abcdULL;

static double urand(void) /* [0,1), SplitMix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static void fill_uniform(sd_real *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (sd_real)(lo + (hi - lo) * urand());
}

/* A shuffled, jittered grid on [-scale, scale]: all values distinct with gaps
 * >= scale/n and none closer than 0.75 scale/n to zero, so no ReLU kink or
 * max-pool tie lies within h of the data. */
static void fill_tiefree(sd_real *x, size_t n, double scale)
{
    for (size_t k = 0; k < n; k++)
        x[k] = (sd_real)(scale * (-1.0 + 2.0 * (k + 0.5 + 0.25 * (urand() - 0.5)) / n));
    for (size_t k = n; k > 1; k--) {
        size_t j = (size_t)(urand() * k);
        sd_real t = x[k - 1];
        x[k - 1] = x[j];
        x[j] = t;
    }
}

static sd_real *vec(size_t n)
{
    sd_real *p = calloc(n ? n : 1, sizeof(sd_real));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static double dotv(const sd_real *a, const sd_real *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* running max |a-b| and max |b| for the relative error of a vector */
typedef struct erracc {
    double diff, ref;
} erracc;

static void err_add(erracc *e, const sd_real *a, const sd_real *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > e->diff || d != d)
            e->diff = d != d ? INFINITY : d;
        if (fabs((double)b[i]) > e->ref)
            e->ref = fabs((double)b[i]);
    }
}

static double err_rel(const erracc *e)
{
    return e->diff / (e->ref > 1e-12 ? e->ref : 1e-12);
}

/* ---------------------------------------------------------------- layer harness */

typedef struct lcase {
    const char *name;
    sd_layer l;
    int n;
    sd_bn_mode bn_mode;
    int dropout_train;
    double xscale; /* 0: 1 */
} lcase;

typedef struct harness {
    sd_backend *be;
    const lcase *c;
    sd_layer l;
    int n, nin;
    size_t insz[SD_LAYER_MAX_IN], outsz, tlen;
    sd_real *saved, *theta_bn;
    void *ws;
    sd_real *ytmp;
    sd_error err; /* the layer entry points' message */
} harness;

static void h_io(harness *h, sd_layer_io *io, sd_real *const *x, const sd_real *theta)
{
    memset(io, 0, sizeof *io);
    io->n = h->n;
    io->bn_mode = h->c->bn_mode;
    io->dropout_train = h->c->dropout_train;
    io->dropout_seed = 42;
    for (int i = 0; i < h->nin; i++)
        io->x[i] = x[i];
    io->theta = theta;
    io->theta_bn = h->theta_bn;
    io->saved = h->saved;
    io->ws = h->ws;
    io->err = &h->err;
}

static void h_fwd(harness *h, sd_real *const *x, const sd_real *theta, sd_real *y)
{
    sd_layer_io io;
    h_io(h, &io, x, theta);
    io.y = y;
    int rc = sd_layer_forward(h->be, &h->l, &io);
    if (rc) {
        fprintf(stderr, "%s forward: %s\n", h->c->name, h->err.msg);
        exit(2);
    }
}

/* gx[i], gtheta zeroed then = backward at (x, theta, gy) */
static void h_bwd(harness *h, sd_real *const *x, const sd_real *theta, const sd_real *gy,
                  sd_real *const *gx, sd_real *gtheta)
{
    h_fwd(h, x, theta, h->ytmp);
    sd_layer_io io;
    h_io(h, &io, x, theta);
    io.y = h->ytmp;
    io.gy = gy;
    for (int i = 0; i < h->nin; i++) {
        memset(gx[i], 0, h->insz[i] * sizeof(sd_real));
        io.gx[i] = gx[i];
    }
    if (h->tlen) {
        memset(gtheta, 0, h->tlen * sizeof(sd_real));
        io.gtheta = gtheta;
    }
    int rc = sd_layer_backward(h->be, &h->l, &io);
    if (rc) {
        fprintf(stderr, "%s backward: %s\n", h->c->name, h->err.msg);
        exit(2);
    }
}

static void h_fwd_t(harness *h, sd_real *const *x, const sd_real *theta, sd_real *const *dx,
                    const sd_real *dtheta, sd_real *dy)
{
    h_fwd(h, x, theta, h->ytmp);
    sd_layer_io io;
    h_io(h, &io, x, theta);
    io.y = h->ytmp;
    for (int i = 0; i < h->nin; i++)
        io.dx[i] = dx ? dx[i] : NULL;
    io.dtheta = dtheta;
    io.dy = dy;
    int rc = sd_layer_forward_tangent(h->be, &h->l, &io);
    if (rc) {
        fprintf(stderr, "%s forward_tangent: %s\n", h->c->name, h->err.msg);
        exit(2);
    }
}

/* dgx[i], dgtheta zeroed then = backward tangent */
static void h_bwd_t(harness *h, sd_real *const *x, const sd_real *theta, const sd_real *gy,
                    sd_real *const *dx, const sd_real *dtheta, const sd_real *dgy,
                    sd_real *const *dgx, sd_real *dgtheta)
{
    h_fwd(h, x, theta, h->ytmp);
    sd_layer_io io;
    h_io(h, &io, x, theta);
    io.y = h->ytmp;
    io.gy = gy;
    io.dgy = dgy;
    io.dtheta = dtheta;
    for (int i = 0; i < h->nin; i++) {
        io.dx[i] = dx ? dx[i] : NULL;
        memset(dgx[i], 0, h->insz[i] * sizeof(sd_real));
        io.dgx[i] = dgx[i];
    }
    if (h->tlen) {
        memset(dgtheta, 0, h->tlen * sizeof(sd_real));
        io.dgtheta = dgtheta;
    }
    int rc = sd_layer_backward_tangent(h->be, &h->l, &io);
    if (rc) {
        fprintf(stderr, "%s backward_tangent: %s\n", h->c->name, h->err.msg);
        exit(2);
    }
}

/* x +/- h*dx into xs (per input), theta +/- h*dtheta into ts */
static void perturb(harness *h, sd_real *const *x, const sd_real *theta, sd_real *const *dx,
                    const sd_real *dtheta, double step, sd_real **xs, sd_real *ts)
{
    for (int i = 0; i < h->nin; i++)
        for (size_t j = 0; j < h->insz[i]; j++)
            xs[i][j] = (sd_real)(x[i][j] + step * dx[i][j]);
    for (size_t j = 0; j < h->tlen; j++)
        ts[j] = (sd_real)(theta[j] + step * dtheta[j]);
}

typedef struct lresult {
    double bwd, fwd_t, bwd_t;
} lresult;

/* The harness of case c on be (its buffers sized for the backend's current
 * convolution path); non-zero when the layer is refused. */
static int h_init(harness *h, sd_backend *be, const lcase *c)
{
    memset(h, 0, sizeof *h);
    h->be = be;
    h->c = c;
    h->l = c->l;
    sd_error err = {0};
    int rc = sd_layer_finish(&h->l, &err);
    CHECKF(rc == 0, "%s: finish: %s", c->name, err.msg);
    if (rc)
        return rc;
    h->n = c->n;
    h->nin = h->l.n_in;
    for (int i = 0; i < h->nin; i++)
        h->insz[i] = (size_t)h->n * sd_layer_in_size(&h->l, i);
    h->outsz = (size_t)h->n * sd_layer_out_size(&h->l);
    h->tlen = h->l.theta_len;
    h->saved = vec(sd_layer_saved_size(&h->l, h->n));
    size_t wsb = sd_layer_ws_size(&h->l, h->n, be);
    h->ws = wsb ? malloc(wsb) : NULL;
    h->ytmp = vec(h->outsz);
    return 0;
}

static lresult run_case(sd_backend *be, const lcase *c)
{
    lresult res = {0, 0, 0};
    harness H;
    harness *h = &H;
    if (h_init(h, be, c))
        return (lresult){INFINITY, INFINITY, INFINITY};
    if (h->l.kind == SD_LAYER_BN) {
        int ch = h->l.in[0].c;
        h->theta_bn = vec(2 * (size_t)ch);
        fill_uniform(h->theta_bn, (size_t)ch, -0.5, 0.5);
        fill_uniform(h->theta_bn + ch, (size_t)ch, 0.3, 1.5);
    }

    sd_real *x[SD_LAYER_MAX_IN], *dx[SD_LAYER_MAX_IN], *gx[SD_LAYER_MAX_IN], *dgx[SD_LAYER_MAX_IN],
        *xs[SD_LAYER_MAX_IN], *zx[SD_LAYER_MAX_IN], *gxp[SD_LAYER_MAX_IN], *gxm[SD_LAYER_MAX_IN],
        *fd[SD_LAYER_MAX_IN];
    double xscale = c->xscale > 0 ? c->xscale : 1.0;
    for (int i = 0; i < h->nin; i++) {
        x[i] = vec(h->insz[i]);
        dx[i] = vec(h->insz[i]);
        gx[i] = vec(h->insz[i]);
        dgx[i] = vec(h->insz[i]);
        xs[i] = vec(h->insz[i]);
        zx[i] = vec(h->insz[i]);
        gxp[i] = vec(h->insz[i]);
        gxm[i] = vec(h->insz[i]);
        fd[i] = vec(h->insz[i]);
        fill_tiefree(x[i], h->insz[i], xscale);
        fill_uniform(dx[i], h->insz[i], -1, 1);
    }
    sd_real *theta = vec(h->tlen), *dtheta = vec(h->tlen), *gtheta = vec(h->tlen),
            *dgtheta = vec(h->tlen), *ts = vec(h->tlen), *zt = vec(h->tlen), *gtp = vec(h->tlen),
            *gtm = vec(h->tlen), *fdt = vec(h->tlen);
    fill_uniform(theta, h->tlen, -0.5, 0.5);
    if (h->l.kind == SD_LAYER_BN) /* gamma away from zero */
        for (int j = 0; j < h->l.in[0].c; j++)
            theta[j] = (sd_real)(0.5 + urand());
    fill_uniform(dtheta, h->tlen, -1, 1);
    sd_real *gy = vec(h->outsz), *dgy = vec(h->outsz), *y = vec(h->outsz), *yp = vec(h->outsz),
            *ym = vec(h->outsz), *dy = vec(h->outsz), *dyfd = vec(h->outsz), *zy = vec(h->outsz);
    fill_uniform(gy, h->outsz, -1, 1);
    fill_uniform(dgy, h->outsz, -1, 1);

    /* ---- backward vs per-coordinate differences of <gy, f> ---- */
    h_bwd(h, x, theta, gy, gx, gtheta);
    erracc eb = {0, 0};
    for (int i = 0; i < h->nin; i++) {
        for (int k = 0; k < h->nin; k++)
            memcpy(xs[k], x[k], h->insz[k] * sizeof(sd_real));
        for (size_t j = 0; j < h->insz[i]; j++) {
            sd_real keep = xs[i][j];
            xs[i][j] = (sd_real)(keep + FD_H);
            h_fwd(h, xs, theta, yp);
            xs[i][j] = (sd_real)(keep - FD_H);
            h_fwd(h, xs, theta, ym);
            xs[i][j] = keep;
            fd[i][j] = (sd_real)((dotv(gy, yp, h->outsz) - dotv(gy, ym, h->outsz)) / (2 * FD_H));
        }
        err_add(&eb, gx[i], fd[i], h->insz[i]);
    }
    if (h->tlen) {
        memcpy(ts, theta, h->tlen * sizeof(sd_real));
        for (size_t j = 0; j < h->tlen; j++) {
            sd_real keep = ts[j];
            ts[j] = (sd_real)(keep + FD_H);
            h_fwd(h, x, ts, yp);
            ts[j] = (sd_real)(keep - FD_H);
            h_fwd(h, x, ts, ym);
            ts[j] = keep;
            fdt[j] = (sd_real)((dotv(gy, yp, h->outsz) - dotv(gy, ym, h->outsz)) / (2 * FD_H));
        }
        err_add(&eb, gtheta, fdt, h->tlen);
    }
    res.bwd = err_rel(&eb);

    /* backward accumulates: run it on top of a constant and compare */
    {
        sd_layer_io io;
        h_fwd(h, x, theta, y);
        h_io(h, &io, x, theta);
        io.y = y;
        io.gy = gy;
        double worst = 0;
        for (int i = 0; i < h->nin; i++) {
            for (size_t j = 0; j < h->insz[i]; j++)
                gxp[i][j] = 0.25;
            io.gx[i] = gxp[i];
        }
        if (h->tlen) {
            for (size_t j = 0; j < h->tlen; j++)
                gtp[j] = 0.25;
            io.gtheta = gtp;
        }
        CHECK(sd_layer_backward(be, &h->l, &io) == 0);
        for (int i = 0; i < h->nin; i++)
            for (size_t j = 0; j < h->insz[i]; j++)
                worst = fmax(worst, fabs(gxp[i][j] - 0.25 - gx[i][j]));
        for (size_t j = 0; j < h->tlen; j++)
            worst = fmax(worst, fabs(gtp[j] - 0.25 - gtheta[j]));
        CHECKF(worst < 1e-12, "%s: backward does not accumulate (%g)", c->name, worst);
    }

    /* ---- forward tangent vs directional difference ---- */
    h_fwd_t(h, x, theta, dx, h->tlen ? dtheta : NULL, dy);
    perturb(h, x, theta, dx, dtheta, FD_H, xs, ts);
    h_fwd(h, xs, ts, yp);
    perturb(h, x, theta, dx, dtheta, -FD_H, xs, ts);
    h_fwd(h, xs, ts, ym);
    for (size_t j = 0; j < h->outsz; j++)
        dyfd[j] = (sd_real)((yp[j] - ym[j]) / (2 * FD_H));
    erracc ef = {0, 0};
    err_add(&ef, dy, dyfd, h->outsz);
    res.fwd_t = err_rel(&ef);

    /* NULL tangents are zeros: (dx, NULL) + (NULL, dtheta) = (dx, dtheta) by linearity */
    if (h->tlen) {
        h_fwd_t(h, x, theta, dx, NULL, yp);
        h_fwd_t(h, x, theta, NULL, dtheta, ym);
        double worst = 0;
        for (size_t j = 0; j < h->outsz; j++)
            worst = fmax(worst, fabs(yp[j] + ym[j] - dy[j]));
        CHECKF(worst < 1e-10, "%s: forward_tangent with NULL parts (%g)", c->name, worst);
    }
    h_fwd_t(h, x, theta, NULL, NULL, dy);
    {
        double worst = 0;
        for (size_t j = 0; j < h->outsz; j++)
            worst = fmax(worst, fabs(dy[j]));
        CHECKF(worst == 0, "%s: forward_tangent of zero tangent is %g", c->name, worst);
    }

    /* ---- backward tangent vs directional difference of the backward ---- */
    h_bwd_t(h, x, theta, gy, dx, h->tlen ? dtheta : NULL, dgy, dgx, dgtheta);
    {
        sd_real *gys = vec(h->outsz);
        for (size_t j = 0; j < h->outsz; j++)
            gys[j] = (sd_real)(gy[j] + FD_H * dgy[j]);
        perturb(h, x, theta, dx, dtheta, FD_H, xs, ts);
        h_bwd(h, xs, ts, gys, gxp, gtp);
        for (size_t j = 0; j < h->outsz; j++)
            gys[j] = (sd_real)(gy[j] - FD_H * dgy[j]);
        perturb(h, x, theta, dx, dtheta, -FD_H, xs, ts);
        h_bwd(h, xs, ts, gys, gxm, gtm);
        free(gys);
    }
    erracc et = {0, 0};
    for (int i = 0; i < h->nin; i++) {
        for (size_t j = 0; j < h->insz[i]; j++)
            fd[i][j] = (sd_real)((gxp[i][j] - gxm[i][j]) / (2 * FD_H));
        err_add(&et, dgx[i], fd[i], h->insz[i]);
    }
    for (size_t j = 0; j < h->tlen; j++)
        fdt[j] = (sd_real)((gtp[j] - gtm[j]) / (2 * FD_H));
    err_add(&et, dgtheta, fdt, h->tlen);
    res.bwd_t = err_rel(&et);

    /* NULL tangents: the three parts add up to the full tangent */
    {
        double worst = 0;
        h_bwd_t(h, x, theta, gy, dx, NULL, NULL, gxp, gtp);
        h_bwd_t(h, x, theta, gy, NULL, h->tlen ? dtheta : NULL, NULL, gxm, gtm);
        h_bwd_t(h, x, theta, gy, NULL, NULL, dgy, zx, zt);
        for (int i = 0; i < h->nin; i++)
            for (size_t j = 0; j < h->insz[i]; j++)
                worst = fmax(worst, fabs(gxp[i][j] + gxm[i][j] + zx[i][j] - dgx[i][j]));
        for (size_t j = 0; j < h->tlen; j++)
            worst = fmax(worst, fabs(gtp[j] + gtm[j] + zt[j] - dgtheta[j]));
        CHECKF(worst < 1e-10, "%s: backward_tangent with NULL parts (%g)", c->name, worst);
    }

    CHECKF(res.bwd <= FD_TOL, "%s: backward rel err %.2e", c->name, res.bwd);
    CHECKF(res.fwd_t <= FD_TOL, "%s: forward_tangent rel err %.2e", c->name, res.fwd_t);
    CHECKF(res.bwd_t <= FD_TOL, "%s: backward_tangent rel err %.2e", c->name, res.bwd_t);

    for (int i = 0; i < h->nin; i++) {
        free(x[i]), free(dx[i]), free(gx[i]), free(dgx[i]), free(xs[i]), free(zx[i]);
        free(gxp[i]), free(gxm[i]), free(fd[i]);
    }
    free(theta), free(dtheta), free(gtheta), free(dgtheta), free(ts), free(zt), free(gtp);
    free(gtm), free(fdt);
    free(gy), free(dgy), free(y), free(yp), free(ym), free(dy), free(dyfd), free(zy);
    free(h->saved), free(h->ws), free(h->ytmp), free(h->theta_bn);
    return res;
}

/* ---------------------------------------------------------------- conv paths agree */

#ifdef SD_REAL_DOUBLE
#define PATH_TOL 1e-12
#else
#define PATH_TOL 1e-5 /* float32: sums of up to a few hundred products */
#endif

/* Whether c is a conv case; its finished layer and geometry into l, d. */
static int conv_case(const lcase *c, sd_layer *l, sd_conv_desc *d)
{
    sd_error err = {0};
    *l = c->l;
    if (l->kind != SD_LAYER_CONV || sd_layer_finish(l, &err) != 0)
        return 0;
    *d = (sd_conv_desc){c->n, l->in[0].c, l->in[0].h, l->in[0].w, l->k,    l->r,
                        l->s, l->stride,  l->pad,     l->out.h,   l->out.w};
    return 1;
}

/* The four entry points of conv layer case c on the backend's current path:
 * out[0] y, [1] gx, [2] gtheta, [3] dy, [4] dgx, [5] dgtheta (each zeroed by
 * the harness or overwritten), the inputs from in[] (x, theta, gy, dx,
 * dtheta, dgy). */
static void conv_entry_points(sd_backend *be, const lcase *c, sd_real *const in[6],
                              sd_real *const out[6])
{
    harness H;
    harness *h = &H;
    if (h_init(h, be, c)) /* its workspace: for the path now set */
        return;
    sd_real *x[1] = {in[0]}, *dx[1] = {in[3]}, *gx[1] = {out[1]}, *dgx[1] = {out[4]};
    h_fwd(h, x, in[1], out[0]);
    h_bwd(h, x, in[1], in[2], gx, out[2]);
    h_fwd_t(h, x, in[1], dx, in[4], out[3]);
    h_bwd_t(h, x, in[1], in[2], dx, in[4], in[5], dgx, out[5]);
    free(h->saved), free(h->ws), free(h->ytmp);
}

/* Every conv case through every path that applies (dnnl included where the
 * build has it): the four entry points' outputs against the im2col path's,
 * max |path - im2col| / max |im2col| per output.  This is what the float32
 * build of this file checks (its finite differences would be too coarse). */
static void conv_path_agreement(sd_backend *be, const lcase *cs, int nc)
{
    printf("\n| conv case | path | worst rel. diff from im2col over y, gx, gW, dy, dgx, dgW |\n");
    printf("|---|---|---|\n");
    for (int i = 0; i < nc; i++) {
        sd_layer l;
        sd_conv_desc d;
        if (!conv_case(&cs[i], &l, &d))
            continue;
        int n = cs[i].n;
        size_t sz[6] = {(size_t)n * sd_layer_in_size(&l, 0), l.theta_len,
                        (size_t)n * sd_layer_out_size(&l)};
        sz[3] = sz[0], sz[4] = sz[1], sz[5] = sz[2];
        const size_t osz[6] = {sz[2], sz[0], sz[1], sz[2], sz[0], sz[1]};
        sd_real *in[6], *ref[6], *out[6];
        for (int k = 0; k < 6; k++) {
            in[k] = vec(sz[k]);
            fill_uniform(in[k], sz[k], -1, 1);
            ref[k] = vec(osz[k]);
            out[k] = vec(osz[k]);
        }
        CHECK(sd_backend_cpu_set_conv_path(be, SD_CPU_CONV_IM2COL) == 0);
        conv_entry_points(be, &cs[i], in, ref);
        for (int p = SD_CPU_CONV_IM2COL + 1; p < SD_CPU_CONV_PATH_COUNT; p++) {
            if (!sd_cpu_conv_path_applies((sd_cpu_conv_path)p, &d))
                continue;
            CHECK(sd_backend_cpu_set_conv_path(be, (sd_cpu_conv_path)p) == 0);
            conv_entry_points(be, &cs[i], in, out);
            double worst = 0;
            for (int k = 0; k < 6; k++) {
                erracc e = {0, 0};
                err_add(&e, out[k], ref[k], osz[k]);
                worst = fmax(worst, err_rel(&e));
            }
            printf("| %s | %s | %.1e |\n", cs[i].name, sd_cpu_conv_path_name((sd_cpu_conv_path)p),
                   worst);
            CHECKF(worst <= PATH_TOL, "%s [%s]: entry points differ from im2col by %.2e",
                   cs[i].name, sd_cpu_conv_path_name((sd_cpu_conv_path)p), worst);
        }
        for (int k = 0; k < 6; k++)
            free(in[k]), free(ref[k]), free(out[k]);
    }
    CHECK(sd_backend_cpu_set_conv_path(be, SD_CPU_CONV_AUTO) == 0);
}

/* ---------------------------------------------------------------- cases */

static sd_layer mk_conv(int c, int hh, int ww, int k, int r, int s, int stride, int pad, int bias)
{
    sd_layer l;
    memset(&l, 0, sizeof l);
    l.kind = SD_LAYER_CONV;
    l.n_in = 1;
    l.in[0] = (sd_shape){c, hh, ww};
    l.k = k;
    l.r = r;
    l.s = s;
    l.stride = stride;
    l.pad = pad;
    l.bias = bias;
    return l;
}

static sd_layer mk_simple(sd_layer_kind kind, int c, int hh, int ww)
{
    sd_layer l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    l.n_in = 1;
    l.in[0] = (sd_shape){c, hh, ww};
    return l;
}

static sd_layer mk_pool(sd_layer_kind kind, int c, int hh, int ww, int k, int s, int p, int ceil,
                        int cip)
{
    sd_layer l = mk_simple(kind, c, hh, ww);
    l.kh = l.kw = k;
    l.sh = l.sw = s;
    l.ph = l.pw = p;
    l.ceil_mode = ceil;
    l.count_include_pad = cip;
    return l;
}

static sd_layer mk_linear(int c, int hh, int ww, int out, int bias)
{
    sd_layer l = mk_simple(SD_LAYER_LINEAR, c, hh, ww);
    l.out_features = out;
    l.bias = bias;
    return l;
}

static sd_layer mk_multi(sd_layer_kind kind, int n_in, const sd_shape *in)
{
    sd_layer l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    l.n_in = n_in;
    for (int i = 0; i < n_in; i++)
        l.in[i] = in[i];
    return l;
}

static void print_row(const char *name, lresult r)
{
    printf("| %-44s | %8.1e | %8.1e | %8.1e |\n", name, r.bwd, r.fwd_t, r.bwd_t);
}

static void layer_cases(sd_backend *be)
{
    lcase cs[64];
    int nc = 0;
#define ADD(nm, lay, ...) cs[nc++] = (lcase){.name = nm, .l = lay, .n = __VA_ARGS__}
    ADD("conv 3x3 s1 p1 bias (3,7,6)->4", mk_conv(3, 7, 6, 4, 3, 3, 1, 1, 1), 2, .xscale = 1);
    ADD("conv 3x3 s2 p1 (2,9,7)->3", mk_conv(2, 9, 7, 3, 3, 3, 2, 1, 1), 3, .xscale = 1);
    ADD("conv 1x1 s1 p0 (5,4,3)->4", mk_conv(5, 4, 3, 4, 1, 1, 1, 0, 1), 3, .xscale = 1);
    ADD("conv 1x1 s2 p0 (3,5,6)->2 no bias", mk_conv(3, 5, 6, 2, 1, 1, 2, 0, 0), 2, .xscale = 1);
    ADD("conv 5x5 s2 p2 no bias (2,8,9)->3", mk_conv(2, 8, 9, 3, 5, 5, 2, 2, 0), 2, .xscale = 1);
    ADD("conv 2x3 s1 p0 (2,5,6)->2", mk_conv(2, 5, 6, 2, 2, 3, 1, 0, 1), 2, .xscale = 1);
    ADD("conv 7x7 s2 p3 (1,9,8)->2", mk_conv(1, 9, 8, 2, 7, 7, 2, 3, 1), 2, .xscale = 1);
    /* 24x24 maps: the batched path splits n = 5 into chunks of 4 and 1 */
    ADD("conv 3x3 s1 p1 (1,24,24)->2, n=5", mk_conv(1, 24, 24, 2, 3, 3, 1, 1, 1), 5, .xscale = 1);
    ADD("linear (3,2,2)->5 bias", mk_linear(3, 2, 2, 5, 1), 3, .xscale = 1);
    ADD("linear (7,1,1)->4 no bias", mk_linear(7, 1, 1, 4, 0), 2, .xscale = 1);
    ADD("bn batch (3,5,4)", mk_simple(SD_LAYER_BN, 3, 5, 4), 3, .bn_mode = SD_BN_BATCH);
    ADD("bn batch (4,1,1) after linear", mk_simple(SD_LAYER_BN, 4, 1, 1), 5,
        .bn_mode = SD_BN_BATCH);
    ADD("bn batch (2,3,3) n=1", mk_simple(SD_LAYER_BN, 2, 3, 3), 1, .bn_mode = SD_BN_BATCH);
    ADD("bn frozen (3,5,4)", mk_simple(SD_LAYER_BN, 3, 5, 4), 3, .bn_mode = SD_BN_FROZEN);
    ADD("bn frozen (4,1,1)", mk_simple(SD_LAYER_BN, 4, 1, 1), 2, .bn_mode = SD_BN_FROZEN);
    ADD("relu (3,4,5)", mk_simple(SD_LAYER_RELU, 3, 4, 5), 2, .xscale = 1);
    ADD("maxpool 2x2 s2 (2,6,6)", mk_pool(SD_LAYER_MAXPOOL, 2, 6, 6, 2, 2, 0, 0, 0), 2);
    ADD("maxpool 3x3 s2 p1 (2,7,6)", mk_pool(SD_LAYER_MAXPOOL, 2, 7, 6, 3, 2, 1, 0, 0), 2);
    ADD("maxpool 3x3 s2 ceil (2,8,7)", mk_pool(SD_LAYER_MAXPOOL, 2, 8, 7, 3, 2, 0, 1, 0), 2);
    ADD("maxpool 3x3 s2 p1 ceil (1,6,9)", mk_pool(SD_LAYER_MAXPOOL, 1, 6, 9, 3, 2, 1, 1, 0), 2);
    ADD("maxpool 2x2 s1 (2,4,5)", mk_pool(SD_LAYER_MAXPOOL, 2, 4, 5, 2, 1, 0, 0, 0), 2);
    ADD("avgpool 2x2 s2 (2,6,5)", mk_pool(SD_LAYER_AVGPOOL, 2, 6, 5, 2, 2, 0, 0, 1), 2);
    ADD("avgpool 3x3 s2 p1 incl-pad (2,7,6)", mk_pool(SD_LAYER_AVGPOOL, 2, 7, 6, 3, 2, 1, 0, 1), 2);
    ADD("avgpool 3x3 s2 p1 excl-pad (2,7,6)", mk_pool(SD_LAYER_AVGPOOL, 2, 7, 6, 3, 2, 1, 0, 0), 2);
    ADD("avgpool 3x3 s2 p1 ceil incl-pad (1,6,8)",
        mk_pool(SD_LAYER_AVGPOOL, 1, 6, 8, 3, 2, 1, 1, 1), 2);
    {
        sd_layer a = mk_simple(SD_LAYER_ADAPTIVE_AVGPOOL, 2, 7, 5);
        a.out.h = 3;
        a.out.w = 2;
        ADD("adaptive avgpool (2,7,5)->3x2", a, 2);
        sd_layer b = mk_simple(SD_LAYER_ADAPTIVE_AVGPOOL, 3, 4, 3);
        b.out.h = b.out.w = 1;
        ADD("adaptive avgpool (3,4,3)->1x1", b, 2);
        sd_layer c = mk_simple(SD_LAYER_ADAPTIVE_AVGPOOL, 1, 3, 4);
        c.kh = 5; /* larger than the input: overlapping windows */
        c.kw = 6;
        ADD("adaptive avgpool (1,3,4)->5x6", c, 2);
    }
    {
        sd_shape s2[2] = {{3, 4, 5}, {3, 4, 5}};
        ADD("add 2 inputs (3,4,5)", mk_multi(SD_LAYER_ADD, 2, s2), 2);
        sd_shape s4[4] = {{2, 3, 3}, {2, 3, 3}, {2, 3, 3}, {2, 3, 3}};
        ADD("add 4 inputs (2,3,3)", mk_multi(SD_LAYER_ADD, 4, s4), 2);
        sd_shape c3[3] = {{2, 3, 4}, {1, 3, 4}, {3, 3, 4}};
        ADD("concat (2+1+3,3,4)", mk_multi(SD_LAYER_CONCAT, 3, c3), 2);
    }
    ADD("flatten (3,2,4)", mk_simple(SD_LAYER_FLATTEN, 3, 2, 4), 2);
    {
        sd_layer d = mk_simple(SD_LAYER_DROPOUT, 3, 4, 4);
        d.p_drop = 0.3;
        ADD("dropout p=0.3 train", d, 2, .dropout_train = 1);
        ADD("dropout p=0.3 eval", d, 2, .dropout_train = 0);
    }
    ADD("input (2,3,3)", mk_simple(SD_LAYER_INPUT, 2, 3, 3), 2);
#undef ADD

    conv_path_agreement(be, cs, nc);
#ifndef SD_REAL_DOUBLE
    return; /* float32: the path agreement only */
#endif
    printf("\n| layer / case | backward | forward tangent | backward tangent |\n");
    printf("|---|---|---|---|\n");
    lresult worst = {0, 0, 0};
    for (int i = 0; i < nc; i++) {
        lresult r = run_case(be, &cs[i]);
        print_row(cs[i].name, r);
        worst.bwd = fmax(worst.bwd, r.bwd);
        worst.fwd_t = fmax(worst.fwd_t, r.fwd_t);
        worst.bwd_t = fmax(worst.bwd_t, r.bwd_t);
    }

    /* every conv path on the conv cases (the automatic choice ran above) */
    for (int p = SD_CPU_CONV_IM2COL; p < SD_CPU_CONV_PATH_COUNT; p++) {
        CHECK(sd_backend_cpu_set_conv_path(be, (sd_cpu_conv_path)p) == 0);
        for (int i = 0; i < nc; i++) {
            sd_layer l;
            sd_conv_desc d;
            if (!conv_case(&cs[i], &l, &d))
                continue;
            if (!sd_cpu_conv_path_applies((sd_cpu_conv_path)p, &d))
                continue;
            char name[128];
            snprintf(name, sizeof name, "%s [%s]", cs[i].name,
                     sd_cpu_conv_path_name((sd_cpu_conv_path)p));
            lcase c = cs[i];
            c.name = name;
            lresult r = run_case(be, &c);
            print_row(name, r);
            worst.bwd = fmax(worst.bwd, r.bwd);
            worst.fwd_t = fmax(worst.fwd_t, r.fwd_t);
            worst.bwd_t = fmax(worst.bwd_t, r.bwd_t);
        }
    }
    CHECK(sd_backend_cpu_set_conv_path(be, SD_CPU_CONV_AUTO) == 0);
    print_row("**max over layers**", worst);
}

/* ---------------------------------------------------------------- loss and softmax */

/* One soft-target CE case: n x k logits z, targets q (normalised or raw),
 * upstream scalar g.  The backward's inputs are p = softmax(z) (recomputed by
 * sce_fwd at every perturbed z) and q. */
static void sce_case(sd_backend *be, const char *name, int n, int k, int raw, double zscale)
{
    size_t m = (size_t)n * k;
    sd_real *z = vec(m), *q = vec(m), *p = vec(m), *dz = vec(m), *dq = vec(m), *gz = vec(m),
            *gq = vec(m), *zs = vec(m), *qs = vec(m), *ps = vec(m), *fz = vec(m), *fq = vec(m),
            *dgz = vec(m), *dgq = vec(m), *gzp = vec(m), *gqp = vec(m), *gzm = vec(m),
            *gqm = vec(m);
    fill_uniform(z, m, -zscale, zscale);
    if (raw) {
        fill_uniform(q, m, -0.5, 1.5); /* --label-param raw: anything goes */
    } else {
        fill_uniform(q, m, 0.1, 1);
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int c = 0; c < k; c++)
                s += q[(size_t)i * k + c];
            for (int c = 0; c < k; c++)
                q[(size_t)i * k + c] = (sd_real)(q[(size_t)i * k + c] / s);
        }
    }
    fill_uniform(dz, m, -1, 1);
    fill_uniform(dq, m, -1, 1);
    const double g = 0.7, dg = -0.4;
    double loss, lp, lm;

    /* backward: per-coordinate differences of g * L */
    CHECK(sd_sce_forward(be, NULL, n, k, z, q, p, &loss) == 0);
    CHECK(sd_sce_backward(be, NULL, n, k, p, q, g, gz, gq) == 0);
    memcpy(zs, z, m * sizeof(sd_real));
    memcpy(qs, q, m * sizeof(sd_real));
    for (size_t j = 0; j < m; j++) {
        zs[j] = (sd_real)(z[j] + FD_H);
        CHECK(sd_sce_forward(be, NULL, n, k, zs, q, ps, &lp) == 0);
        zs[j] = (sd_real)(z[j] - FD_H);
        CHECK(sd_sce_forward(be, NULL, n, k, zs, q, ps, &lm) == 0);
        zs[j] = z[j];
        fz[j] = (sd_real)(g * (lp - lm) / (2 * FD_H));
        qs[j] = (sd_real)(q[j] + FD_H);
        CHECK(sd_sce_forward(be, NULL, n, k, z, qs, ps, &lp) == 0);
        qs[j] = (sd_real)(q[j] - FD_H);
        CHECK(sd_sce_forward(be, NULL, n, k, z, qs, ps, &lm) == 0);
        qs[j] = q[j];
        fq[j] = (sd_real)(g * (lp - lm) / (2 * FD_H));
    }
    erracc eb = {0, 0};
    err_add(&eb, gz, fz, m);
    err_add(&eb, gq, fq, m);

    /* forward tangent */
    double dl, fdl;
    CHECK(sd_sce_forward_tangent(be, NULL, n, k, p, q, dz, dq, &dl) == 0);
    for (size_t j = 0; j < m; j++) {
        zs[j] = (sd_real)(z[j] + FD_H * dz[j]);
        qs[j] = (sd_real)(q[j] + FD_H * dq[j]);
    }
    CHECK(sd_sce_forward(be, NULL, n, k, zs, qs, ps, &lp) == 0);
    for (size_t j = 0; j < m; j++) {
        zs[j] = (sd_real)(z[j] - FD_H * dz[j]);
        qs[j] = (sd_real)(q[j] - FD_H * dq[j]);
    }
    CHECK(sd_sce_forward(be, NULL, n, k, zs, qs, ps, &lm) == 0);
    fdl = (lp - lm) / (2 * FD_H);
    double ef = fabs(dl - fdl) / fmax(fabs(fdl), 1e-12);

    /* backward tangent along (dz, dq, dg) */
    CHECK(sd_sce_backward_tangent(be, NULL, n, k, p, q, dz, dq, g, dg, dgz, dgq) == 0);
    for (size_t j = 0; j < m; j++) {
        zs[j] = (sd_real)(z[j] + FD_H * dz[j]);
        qs[j] = (sd_real)(q[j] + FD_H * dq[j]);
    }
    CHECK(sd_sce_forward(be, NULL, n, k, zs, qs, ps, &lp) == 0);
    CHECK(sd_sce_backward(be, NULL, n, k, ps, qs, g + FD_H * dg, gzp, gqp) == 0);
    for (size_t j = 0; j < m; j++) {
        zs[j] = (sd_real)(z[j] - FD_H * dz[j]);
        qs[j] = (sd_real)(q[j] - FD_H * dq[j]);
    }
    CHECK(sd_sce_forward(be, NULL, n, k, zs, qs, ps, &lm) == 0);
    CHECK(sd_sce_backward(be, NULL, n, k, ps, qs, g - FD_H * dg, gzm, gqm) == 0);
    for (size_t j = 0; j < m; j++) {
        fz[j] = (sd_real)((gzp[j] - gzm[j]) / (2 * FD_H));
        fq[j] = (sd_real)((gqp[j] - gqm[j]) / (2 * FD_H));
    }
    erracc et = {0, 0};
    err_add(&et, dgz, fz, m);
    err_add(&et, dgq, fq, m);

    /* dq = NULL means zero */
    {
        double d1, d2;
        memset(fz, 0, m * sizeof(sd_real));
        CHECK(sd_sce_forward_tangent(be, NULL, n, k, p, q, dz, NULL, &d1) == 0);
        CHECK(sd_sce_forward_tangent(be, NULL, n, k, p, q, dz, fz, &d2) == 0);
        CHECK(d1 == d2);
    }

    lresult r = {err_rel(&eb), ef, err_rel(&et)};
    print_row(name, r);
    CHECKF(r.bwd <= FD_TOL && r.fwd_t <= FD_TOL && r.bwd_t <= FD_TOL, "%s: %.1e %.1e %.1e", name,
           r.bwd, r.fwd_t, r.bwd_t);
    free(z), free(q), free(p), free(dz), free(dq), free(gz), free(gq), free(zs), free(qs);
    free(ps), free(fz), free(fq), free(dgz), free(dgq), free(gzp), free(gqp), free(gzm);
    free(gqm);
}

static void softmax_case(sd_backend *be, const char *name, int n, int k, double scale)
{
    size_t m = (size_t)n * k;
    sd_real *y = vec(m), *q = vec(m), *gq = vec(m), *gy = vec(m), *dy = vec(m), *dgq = vec(m),
            *ys = vec(m), *qp = vec(m), *qm = vec(m), *f = vec(m), *dq = vec(m), *dgy = vec(m),
            *gyp = vec(m), *gym = vec(m), *gqs = vec(m);
    fill_uniform(y, m, -scale, scale);
    fill_uniform(gq, m, -1, 1);
    fill_uniform(dy, m, -1, 1);
    fill_uniform(dgq, m, -1, 1);
    CHECK(sd_softmax_forward(be, NULL, n, k, y, q) == 0);
    CHECK(sd_softmax_backward(be, NULL, n, k, q, gq, gy) == 0);
    memcpy(ys, y, m * sizeof(sd_real));
    for (size_t j = 0; j < m; j++) {
        ys[j] = (sd_real)(y[j] + FD_H);
        CHECK(sd_softmax_forward(be, NULL, n, k, ys, qp) == 0);
        ys[j] = (sd_real)(y[j] - FD_H);
        CHECK(sd_softmax_forward(be, NULL, n, k, ys, qm) == 0);
        ys[j] = y[j];
        f[j] = (sd_real)((dotv(gq, qp, m) - dotv(gq, qm, m)) / (2 * FD_H));
    }
    erracc eb = {0, 0};
    err_add(&eb, gy, f, m);

    CHECK(sd_softmax_forward_tangent(be, NULL, n, k, q, dy, dq) == 0);
    for (size_t j = 0; j < m; j++)
        ys[j] = (sd_real)(y[j] + FD_H * dy[j]);
    CHECK(sd_softmax_forward(be, NULL, n, k, ys, qp) == 0);
    for (size_t j = 0; j < m; j++)
        ys[j] = (sd_real)(y[j] - FD_H * dy[j]);
    CHECK(sd_softmax_forward(be, NULL, n, k, ys, qm) == 0);
    for (size_t j = 0; j < m; j++)
        f[j] = (sd_real)((qp[j] - qm[j]) / (2 * FD_H));
    erracc ef = {0, 0};
    err_add(&ef, dq, f, m);

    CHECK(sd_softmax_backward_tangent(be, NULL, n, k, q, dy, gq, dgq, dgy) == 0);
    for (size_t j = 0; j < m; j++) {
        ys[j] = (sd_real)(y[j] + FD_H * dy[j]);
        gqs[j] = (sd_real)(gq[j] + FD_H * dgq[j]);
    }
    CHECK(sd_softmax_forward(be, NULL, n, k, ys, qp) == 0);
    CHECK(sd_softmax_backward(be, NULL, n, k, qp, gqs, gyp) == 0);
    for (size_t j = 0; j < m; j++) {
        ys[j] = (sd_real)(y[j] - FD_H * dy[j]);
        gqs[j] = (sd_real)(gq[j] - FD_H * dgq[j]);
    }
    CHECK(sd_softmax_forward(be, NULL, n, k, ys, qm) == 0);
    CHECK(sd_softmax_backward(be, NULL, n, k, qm, gqs, gym) == 0);
    for (size_t j = 0; j < m; j++)
        f[j] = (sd_real)((gyp[j] - gym[j]) / (2 * FD_H));
    erracc et = {0, 0};
    err_add(&et, dgy, f, m);

    lresult r = {err_rel(&eb), err_rel(&ef), err_rel(&et)};
    print_row(name, r);
    CHECKF(r.bwd <= FD_TOL && r.fwd_t <= FD_TOL && r.bwd_t <= FD_TOL, "%s: %.1e %.1e %.1e", name,
           r.bwd, r.fwd_t, r.bwd_t);
    free(y), free(q), free(gq), free(gy), free(dy), free(dgq), free(ys), free(qp), free(qm);
    free(f), free(dq), free(dgy), free(gyp), free(gym), free(gqs);
}

int main(void)
{
    sd_backend *be = NULL;
    sd_error err = {0};
    if (sd_backend_create(&be, "cpu", &err) != 0) {
        fprintf(stderr, "cpu backend: %s\n", err.msg);
        return 1;
    }
#ifdef SD_REAL_DOUBLE
    printf("finite-difference checks, %s, h = %g, limit %g (max |a-fd| / max |fd|)\n", SD_REAL_NAME,
           FD_H, FD_TOL);
#else
    printf("conv paths against im2col, %s, limit %g\n", SD_REAL_NAME, PATH_TOL);
#endif
    layer_cases(be);
#ifndef SD_REAL_DOUBLE
    sd_backend_destroy(be);
    return sd_test_finish();
#endif

    printf("\n| loss / softmax case | backward | forward tangent | backward tangent |\n");
    printf("|---|---|---|---|\n");
    sce_case(be, "soft CE, q normalised (4x3)", 4, 3, 0, 2);
    sce_case(be, "soft CE, raw q (not summing to 1) (5x3)", 5, 3, 1, 2);
    sce_case(be, "soft CE, raw q, large logits (3x10)", 3, 10, 1, 30);
    softmax_case(be, "row softmax (4x3)", 4, 3, 2);
    softmax_case(be, "row softmax, large logits (3x10)", 3, 10, 30);

    sd_backend_destroy(be);
    return sd_test_finish();
}
