/*
 * sd_cpu_bn.c - batch normalisation on the CPU, batch-statistics and frozen
 * modes: forward, backward, forward tangent and backward tangent.
 * GPU twin: gpu/sg_bn.cu (same formulas; its per-channel sums are tree
 * reductions, so it differs from these bits only through their order).
 *
 * The derivation is below.  Each channel's sums are sequential in double;
 * the batch-mode ops split channels over the pool (sd_cpu_for), which never
 * changes a bit.  Every batch-mode op is its sums (bn_partial), their join
 * (sd_bn_join) and its outputs from the joined sums (bn_apply): the executor
 * calls the two halves itself to run batch norm over batch shards, and the
 * whole-batch ops are the same three steps on one shard.
 */
#include "sd_cpu_internal.h"

#include <math.h>
#include <stdlib.h>

/*
 * Notation per channel (m = n*hw values): a = invstd, xh = (x - mean) a,
 * <u> = (1/m) sum u.  In batch mode mean and var are functions of x:
 *   d mean = <dx>,  d var = (2/m) sum (x-mean) dx = (2/a) <xh dx>,
 *   d a = -1/2 (var+eps)^(-3/2) d var = -a^2 <xh dx>,
 *   d xh = a (dx - <dx>) + (x-mean) d a = a (dx - <dx> - xh <xh dx>).
 * Forward:            y = g xh + b
 * Forward tangent:    dy = dg xh + g dxh + db
 * Backward (VJP):     gx = g a (gy - <gy> - xh <gy xh>),
 *                     gg = sum gy xh,  gb = sum gy
 *   (the Jacobian of xh in x is a (I - 11'/m - xh xh'/m), symmetric, hence
 *   the same shape as the tangent).
 * Backward tangent, along (dx, dg, dgy) with A = <gy>, B = <gy xh>:
 *   dA = <dgy>,  dB = <dgy xh> + <gy dxh>
 *      = <dgy xh> + a (<gy dx> - A <dx> - B <xh dx>),
 *   d gx = (dg a + g da)(gy - A - xh B) + g a (dgy - dA - dxh B - xh dB),
 *   d gg = m dB,  d gb = m dA.
 * Frozen mode: mean, var are constants, so a is fixed and
 *   gx = g a gy,  dy = dg xh + g a dx + db,
 *   d gx = dg a gy + g a dgy,  d gg = sum (dgy xh + gy a dx),  d gb = sum dgy.
 * Every per-channel sum is accumulated in double.  In the batch-mode ops the
 * y and gradients use the mean and invstd as stored (rounded to sd_real), so
 * forward and the other entry points see the same numbers.
 * A NULL tangent input means zero and a NULL output means "not wanted".
 */

static int bn_check(sd_backend *be, sd_error *err, const sd_bn_desc *d, const char *op)
{
    if (d->n < 1 || d->c < 1 || d->hw < 1 || !(d->eps > 0))
        return CPU_FAIL(err, SD_EINVAL, "cpu %s: bad geometry n=%d c=%d hw=%d eps=%g", op, d->n,
                        d->c, d->hw, d->eps);
    return SD_OK;
}

#define BN_AT(p, d, i, ch) ((p) + ((size_t)(i) * (d)->c + (ch)) * (d)->hw)

/* One batch-mode op over channels [lo, hi): its sums (part) or, from the
 * joined sums of m values per channel, its outputs (apply). */
typedef struct bn_job {
    sd_bn_op op;
    const sd_bn_desc *d;
    const sd_bn_bufs *b;
    double *part;
    const double *sums;
    double m;
} bn_job;

static void bn_partial_ch(void *arg, int t, int lo, int hi)
{
    const bn_job *j = arg;
    const sd_bn_desc *d = j->d;
    const sd_bn_bufs *b = j->b;
    (void)t;
    for (int ch = lo; ch < hi; ch++) {
        double *o = j->part + (size_t)ch * SD_BN_SUMS;
        if (j->op == SD_BN_OP_FWD) {
            double s = 0, v = 0;
            for (int i = 0; i < d->n; i++) {
                const sd_real *xc = BN_AT(b->x, d, i, ch);
                for (int p = 0; p < d->hw; p++)
                    s += xc[p];
            }
            double mu = s / ((double)d->n * d->hw);
            for (int i = 0; i < d->n; i++) {
                const sd_real *xc = BN_AT(b->x, d, i, ch);
                for (int p = 0; p < d->hw; p++) {
                    double t2 = xc[p] - mu;
                    v += t2 * t2;
                }
            }
            o[0] = s;
            o[1] = v;
            continue;
        }
        double mu = b->mean[ch], a = b->invstd[ch];
        if (j->op == SD_BN_OP_BWD) {
            double sg = 0, sgx = 0;
            for (int i = 0; i < d->n; i++) {
                const sd_real *xc = BN_AT(b->x, d, i, ch), *gyc = BN_AT(b->gy, d, i, ch);
                for (int p = 0; p < d->hw; p++) {
                    sg += gyc[p];
                    sgx += gyc[p] * ((xc[p] - mu) * a);
                }
            }
            o[0] = sg;
            o[1] = sgx;
        } else if (j->op == SD_BN_OP_FWD_TANGENT) {
            double sdx = 0, sxdx = 0;
            for (int i = 0; b->dx && i < d->n; i++) {
                const sd_real *xc = BN_AT(b->x, d, i, ch), *dxc = BN_AT(b->dx, d, i, ch);
                for (int p = 0; p < d->hw; p++) {
                    sdx += dxc[p];
                    sxdx += ((xc[p] - mu) * a) * dxc[p];
                }
            }
            o[0] = sdx;
            o[1] = sxdx;
        } else {
            /* sums of gy, gy xh, dx, xh dx, gy dx, dgy, dgy xh */
            double s_gy = 0, s_gyxh = 0, s_dx = 0, s_xhdx = 0, s_gydx = 0, s_dgy = 0, s_dgyxh = 0;
            for (int i = 0; i < d->n; i++) {
                const sd_real *xc = BN_AT(b->x, d, i, ch), *gyc = BN_AT(b->gy, d, i, ch);
                const sd_real *dxc = b->dx ? BN_AT(b->dx, d, i, ch) : NULL;
                const sd_real *dgyc = b->dgy ? BN_AT(b->dgy, d, i, ch) : NULL;
                for (int p = 0; p < d->hw; p++) {
                    double xh = (xc[p] - mu) * a, gv = gyc[p];
                    s_gy += gv;
                    s_gyxh += gv * xh;
                    if (dxc) {
                        s_dx += dxc[p];
                        s_xhdx += xh * dxc[p];
                        s_gydx += gv * dxc[p];
                    }
                    if (dgyc) {
                        s_dgy += dgyc[p];
                        s_dgyxh += dgyc[p] * xh;
                    }
                }
            }
            const double v[7] = {s_gy, s_gyxh, s_dx, s_xhdx, s_gydx, s_dgy, s_dgyxh};
            for (int k = 0; k < 7; k++)
                o[k] = v[k];
        }
    }
}

static void bn_apply_fwd(const bn_job *j, int ch)
{
    const sd_bn_desc *d = j->d;
    const sd_bn_bufs *b = j->b;
    const double *sm = j->sums + (size_t)ch * SD_BN_SUMS;
    b->mean_out[ch] = (sd_real)sm[0];
    b->invstd_out[ch] = (sd_real)(1.0 / sqrt(sm[1] / j->m + d->eps));
    double mur = b->mean_out[ch], a = b->invstd_out[ch], g = b->gamma[ch], bt = b->beta[ch];
    for (int i = 0; i < d->n; i++) {
        const sd_real *xc = BN_AT(b->x, d, i, ch);
        sd_real *yc = BN_AT(b->y, d, i, ch);
        for (int p = 0; p < d->hw; p++)
            yc[p] = (sd_real)(g * ((xc[p] - mur) * a) + bt);
    }
}

static void bn_apply_bwd(const bn_job *j, int ch)
{
    const sd_bn_desc *d = j->d;
    const sd_bn_bufs *b = j->b;
    const double *sm = j->sums + (size_t)ch * SD_BN_SUMS;
    double mu = b->mean[ch], a = b->invstd[ch], g = b->gamma[ch], sg = sm[0], sgx = sm[1];
    if (b->gbeta)
        b->gbeta[ch] += (sd_real)sg;
    if (b->ggamma)
        b->ggamma[ch] += (sd_real)sgx;
    if (!b->gx)
        return;
    double A = sg / j->m, B = sgx / j->m, ga = g * a;
    for (int i = 0; i < d->n; i++) {
        const sd_real *xc = BN_AT(b->x, d, i, ch), *gyc = BN_AT(b->gy, d, i, ch);
        sd_real *gxc = BN_AT(b->gx, d, i, ch);
        for (int p = 0; p < d->hw; p++) {
            double xh = (xc[p] - mu) * a;
            gxc[p] += (sd_real)(ga * (gyc[p] - A - xh * B));
        }
    }
}

static void bn_apply_fwd_tangent(const bn_job *j, int ch)
{
    const sd_bn_desc *d = j->d;
    const sd_bn_bufs *b = j->b;
    const double *sm = j->sums + (size_t)ch * SD_BN_SUMS;
    double mu = b->mean[ch], a = b->invstd[ch], g = b->gamma[ch];
    double dg = b->dgamma ? b->dgamma[ch] : 0, db = b->dbeta ? b->dbeta[ch] : 0;
    double D = sm[0] / j->m, C = sm[1] / j->m;
    for (int i = 0; i < d->n; i++) {
        const sd_real *xc = BN_AT(b->x, d, i, ch);
        const sd_real *dxc = b->dx ? BN_AT(b->dx, d, i, ch) : NULL;
        sd_real *dyc = BN_AT(b->dy, d, i, ch);
        for (int p = 0; p < d->hw; p++) {
            double xh = (xc[p] - mu) * a;
            double dxh = dxc ? a * (dxc[p] - D - xh * C) : 0;
            dyc[p] = (sd_real)(dg * xh + g * dxh + db);
        }
    }
}

static void bn_apply_bwd_tangent(const bn_job *j, int ch)
{
    const sd_bn_desc *d = j->d;
    const sd_bn_bufs *b = j->b;
    const double *sm = j->sums + (size_t)ch * SD_BN_SUMS, m = j->m;
    double mu = b->mean[ch], a = b->invstd[ch], g = b->gamma[ch];
    double dg = b->dgamma ? b->dgamma[ch] : 0;
    double A = sm[0] / m, B = sm[1] / m, D = sm[2] / m, C = sm[3] / m;
    double dA = sm[5] / m;
    double dB = sm[6] / m + a * (sm[4] / m - A * D - B * C);
    double da = -a * a * C;
    if (b->dgbeta)
        b->dgbeta[ch] += (sd_real)(m * dA);
    if (b->dggamma)
        b->dggamma[ch] += (sd_real)(m * dB);
    if (!b->dgx)
        return;
    double c1 = dg * a + g * da, ga = g * a;
    for (int i = 0; i < d->n; i++) {
        const sd_real *xc = BN_AT(b->x, d, i, ch), *gyc = BN_AT(b->gy, d, i, ch);
        const sd_real *dxc = b->dx ? BN_AT(b->dx, d, i, ch) : NULL;
        const sd_real *dgyc = b->dgy ? BN_AT(b->dgy, d, i, ch) : NULL;
        sd_real *o = BN_AT(b->dgx, d, i, ch);
        for (int p = 0; p < d->hw; p++) {
            double xh = (xc[p] - mu) * a;
            double dxh = dxc ? a * (dxc[p] - D - xh * C) : 0;
            double dgv = dgyc ? dgyc[p] : 0;
            o[p] += (sd_real)(c1 * (gyc[p] - A - xh * B) + ga * (dgv - dA - dxh * B - xh * dB));
        }
    }
}

static void bn_apply_ch(void *arg, int t, int lo, int hi)
{
    const bn_job *j = arg;
    (void)t;
    for (int ch = lo; ch < hi; ch++) {
        switch (j->op) {
        case SD_BN_OP_FWD: bn_apply_fwd(j, ch); break;
        case SD_BN_OP_BWD: bn_apply_bwd(j, ch); break;
        case SD_BN_OP_FWD_TANGENT: bn_apply_fwd_tangent(j, ch); break;
        default: bn_apply_bwd_tangent(j, ch); break;
        }
    }
}

/* Each channel's sums are sequential and the channels independent, so the
 * channels may run on different threads (sd_cpu_for) with the same bits. */
static int cpu_bn_partial(sd_backend *be, sd_error *err, sd_bn_op op, const sd_bn_desc *d,
                          const sd_bn_bufs *b, double *part)
{
    int rc = bn_check(be, err, d, "bn_partial");
    if (rc)
        return rc;
    bn_job j = {.op = op, .d = d, .b = b, .part = part};
    sd_cpu_for(be, d->c, (size_t)d->n * d->c * d->hw, d->c, bn_partial_ch, &j);
    return SD_OK;
}

static int cpu_bn_apply(sd_backend *be, sd_error *err, sd_bn_op op, const sd_bn_desc *d,
                        const sd_bn_bufs *b, const double *sums, double m)
{
    int rc = bn_check(be, err, d, "bn_apply");
    if (rc)
        return rc;
    if (!(m > 0))
        return CPU_FAIL(err, SD_EINVAL, "cpu bn_apply: %g values per channel", m);
    bn_job j = {.op = op, .d = d, .b = b, .sums = sums, .m = m};
    sd_cpu_for(be, d->c, (size_t)d->n * d->c * d->hw, d->c, bn_apply_ch, &j);
    return SD_OK;
}

/* The whole batch at once: its sums, joined as one shard (the same numbers),
 * then the outputs. */
static int bn_whole(sd_backend *be, sd_error *err, sd_bn_op op, const sd_bn_desc *d,
                    const sd_bn_bufs *b)
{
    int rc = bn_check(be, err, d, "batch norm");
    if (rc)
        return rc;
    double *part = malloc(2 * (size_t)d->c * SD_BN_SUMS * sizeof *part);
    if (!part)
        return CPU_FAIL(err, SD_ENOMEM, "cpu batch norm: out of memory");
    double *sums = part + (size_t)d->c * SD_BN_SUMS, m = (double)d->n * d->hw;
    const double *parts[1] = {part};
    if (!(rc = cpu_bn_partial(be, err, op, d, b, part))) {
        sd_bn_join(op, d->c, parts, &m, 1, sums);
        rc = cpu_bn_apply(be, err, op, d, b, sums, m);
    }
    free(part);
    return rc;
}

static int cpu_bn_fwd_train(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                            const sd_real *gamma, const sd_real *beta, sd_real *y, sd_real *mean,
                            sd_real *invstd)
{
    sd_bn_bufs b = {
        .x = x, .gamma = gamma, .beta = beta, .y = y, .mean_out = mean, .invstd_out = invstd};
    return bn_whole(be, err, SD_BN_OP_FWD, d, &b);
}

static int cpu_bn_bwd_train(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                            const sd_real *gamma, const sd_real *mean, const sd_real *invstd,
                            const sd_real *gy, sd_real *gx, sd_real *ggamma, sd_real *gbeta)
{
    sd_bn_bufs b = {.x = x,
                    .gamma = gamma,
                    .mean = mean,
                    .invstd = invstd,
                    .gy = gy,
                    .gx = gx,
                    .ggamma = ggamma,
                    .gbeta = gbeta};
    return bn_whole(be, err, SD_BN_OP_BWD, d, &b);
}

static int cpu_bn_fwd_tangent_train(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                    const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                    const sd_real *dgamma, const sd_real *dbeta,
                                    const sd_real *mean, const sd_real *invstd, sd_real *dy)
{
    sd_bn_bufs b = {.x = x,
                    .dx = dx,
                    .gamma = gamma,
                    .dgamma = dgamma,
                    .dbeta = dbeta,
                    .mean = mean,
                    .invstd = invstd,
                    .dy = dy};
    return bn_whole(be, err, SD_BN_OP_FWD_TANGENT, d, &b);
}

static int cpu_bn_bwd_tangent_train(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                    const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                    const sd_real *dgamma, const sd_real *mean,
                                    const sd_real *invstd, const sd_real *gy, const sd_real *dgy,
                                    sd_real *dgx, sd_real *dggamma, sd_real *dgbeta)
{
    sd_bn_bufs b = {.x = x,
                    .dx = dx,
                    .gamma = gamma,
                    .dgamma = dgamma,
                    .mean = mean,
                    .invstd = invstd,
                    .gy = gy,
                    .dgy = dgy,
                    .dgx = dgx,
                    .dggamma = dggamma,
                    .dgbeta = dgbeta};
    return bn_whole(be, err, SD_BN_OP_BWD_TANGENT, d, &b);
}

static int cpu_bn_fwd_frozen(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                             const sd_real *gamma, const sd_real *beta, const sd_real *rmean,
                             const sd_real *rvar, sd_real *y)
{
    int rc = bn_check(be, err, d, "bn_fwd_frozen");
    if (rc)
        return rc;
    for (int ch = 0; ch < d->c; ch++) {
        double mu = rmean[ch], a = 1.0 / sqrt((double)rvar[ch] + d->eps), g = gamma[ch],
               b = beta[ch];
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch);
            sd_real *yc = BN_AT(y, d, i, ch);
            for (int p = 0; p < d->hw; p++)
                yc[p] = (sd_real)(g * ((xc[p] - mu) * a) + b);
        }
    }
    return SD_OK;
}

static int cpu_bn_bwd_frozen(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                             const sd_real *gamma, const sd_real *rmean, const sd_real *rvar,
                             const sd_real *gy, sd_real *gx, sd_real *ggamma, sd_real *gbeta)
{
    int rc = bn_check(be, err, d, "bn_bwd_frozen");
    if (rc)
        return rc;
    for (int ch = 0; ch < d->c; ch++) {
        double mu = rmean[ch], a = 1.0 / sqrt((double)rvar[ch] + d->eps), g = gamma[ch];
        double sg = 0, sgx = 0;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch), *gyc = BN_AT(gy, d, i, ch);
            sd_real *gxc = gx ? BN_AT(gx, d, i, ch) : NULL;
            for (int p = 0; p < d->hw; p++) {
                sg += gyc[p];
                sgx += gyc[p] * ((xc[p] - mu) * a);
                if (gxc)
                    gxc[p] += (sd_real)(g * a * gyc[p]);
            }
        }
        if (gbeta)
            gbeta[ch] += (sd_real)sg;
        if (ggamma)
            ggamma[ch] += (sd_real)sgx;
    }
    return SD_OK;
}

static int cpu_bn_fwd_tangent_frozen(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                     const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                     const sd_real *dgamma, const sd_real *dbeta,
                                     const sd_real *rmean, const sd_real *rvar, sd_real *dy)
{
    int rc = bn_check(be, err, d, "bn_fwd_tangent_frozen");
    if (rc)
        return rc;
    for (int ch = 0; ch < d->c; ch++) {
        double mu = rmean[ch], a = 1.0 / sqrt((double)rvar[ch] + d->eps), g = gamma[ch];
        double dg = dgamma ? dgamma[ch] : 0, db = dbeta ? dbeta[ch] : 0;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch);
            const sd_real *dxc = dx ? BN_AT(dx, d, i, ch) : NULL;
            sd_real *dyc = BN_AT(dy, d, i, ch);
            for (int p = 0; p < d->hw; p++) {
                double xh = (xc[p] - mu) * a;
                dyc[p] = (sd_real)(dg * xh + (dxc ? g * a * dxc[p] : 0) + db);
            }
        }
    }
    return SD_OK;
}

static int cpu_bn_bwd_tangent_frozen(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                     const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                     const sd_real *dgamma, const sd_real *rmean,
                                     const sd_real *rvar, const sd_real *gy, const sd_real *dgy,
                                     sd_real *dgx, sd_real *dggamma, sd_real *dgbeta)
{
    int rc = bn_check(be, err, d, "bn_bwd_tangent_frozen");
    if (rc)
        return rc;
    for (int ch = 0; ch < d->c; ch++) {
        double mu = rmean[ch], a = 1.0 / sqrt((double)rvar[ch] + d->eps), g = gamma[ch];
        double dg = dgamma ? dgamma[ch] : 0, s_dgy = 0, s_gg = 0;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch), *gyc = BN_AT(gy, d, i, ch);
            const sd_real *dxc = dx ? BN_AT(dx, d, i, ch) : NULL;
            const sd_real *dgyc = dgy ? BN_AT(dgy, d, i, ch) : NULL;
            sd_real *o = dgx ? BN_AT(dgx, d, i, ch) : NULL;
            for (int p = 0; p < d->hw; p++) {
                double xh = (xc[p] - mu) * a, dgv = dgyc ? dgyc[p] : 0;
                s_dgy += dgv;
                s_gg += dgv * xh + (dxc ? gyc[p] * a * dxc[p] : 0);
                if (o)
                    o[p] += (sd_real)(dg * a * gyc[p] + g * a * dgv);
            }
        }
        if (dgbeta)
            dgbeta[ch] += (sd_real)s_dgy;
        if (dggamma)
            dggamma[ch] += (sd_real)s_gg;
    }
    return SD_OK;
}

void sd_cpu_install_bn(sd_backend *be)
{
    be->bn_fwd_train = cpu_bn_fwd_train;
    be->bn_bwd_train = cpu_bn_bwd_train;
    be->bn_fwd_tangent_train = cpu_bn_fwd_tangent_train;
    be->bn_bwd_tangent_train = cpu_bn_bwd_tangent_train;
    be->bn_fwd_frozen = cpu_bn_fwd_frozen;
    be->bn_bwd_frozen = cpu_bn_bwd_frozen;
    be->bn_fwd_tangent_frozen = cpu_bn_fwd_tangent_frozen;
    be->bn_bwd_tangent_frozen = cpu_bn_bwd_tangent_frozen;
    be->bn_partial = cpu_bn_partial;
    be->bn_apply = cpu_bn_apply;
}
