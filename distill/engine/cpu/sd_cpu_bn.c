/*
 * sd_cpu_bn.c - batch normalisation on the CPU, batch-statistics and frozen
 * modes: forward, backward, forward tangent and backward tangent.
 * GPU twin: gpu/sg_bn.cu (same formulas; its per-channel sums are tree
 * reductions, so it differs from these bits only through their order).
 *
 * The derivation is below.  Each channel's sums are sequential in double;
 * the batch-mode forward and backward split channels over the pool
 * (sd_cpu_for), which never changes a bit.
 */
#include "sd_cpu_internal.h"

#include <math.h>

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

typedef struct bn_job {
    const sd_bn_desc *d;
    const sd_real *x, *gamma, *beta, *mean, *invstd, *gy;
    sd_real *y, *mean_out, *invstd_out, *gx, *ggamma, *gbeta;
} bn_job;

/* channels [lo, hi) of bn_fwd_train */
static void bn_fwd_train_ch(void *arg, int t, int lo, int hi)
{
    const bn_job *j = arg;
    const sd_bn_desc *d = j->d;
    (void)t;
    const double m = (double)d->n * d->hw;
    for (int ch = lo; ch < hi; ch++) {
        double s = 0, v = 0;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(j->x, d, i, ch);
            for (int p = 0; p < d->hw; p++)
                s += xc[p];
        }
        double mu = s / m;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(j->x, d, i, ch);
            for (int p = 0; p < d->hw; p++) {
                double t2 = xc[p] - mu;
                v += t2 * t2;
            }
        }
        j->mean_out[ch] = (sd_real)mu;
        j->invstd_out[ch] = (sd_real)(1.0 / sqrt(v / m + d->eps));
        double mur = j->mean_out[ch], a = j->invstd_out[ch], g = j->gamma[ch], b = j->beta[ch];
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(j->x, d, i, ch);
            sd_real *yc = BN_AT(j->y, d, i, ch);
            for (int p = 0; p < d->hw; p++)
                yc[p] = (sd_real)(g * ((xc[p] - mur) * a) + b);
        }
    }
}

/* Batch norm over channels: each channel's sums are sequential, so the
 * channels may run on different threads (sd_cpu_for) with the same bits. */
static int cpu_bn_fwd_train(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                            const sd_real *gamma, const sd_real *beta, sd_real *y, sd_real *mean,
                            sd_real *invstd)
{
    int rc = bn_check(be, err, d, "bn_fwd_train");
    if (rc)
        return rc;
    bn_job j = {.d = d,
                .x = x,
                .gamma = gamma,
                .beta = beta,
                .y = y,
                .mean_out = mean,
                .invstd_out = invstd};
    sd_cpu_for(be, d->c, (size_t)d->n * d->c * d->hw, d->c, bn_fwd_train_ch, &j);
    return SD_OK;
}

/* channels [lo, hi) of bn_bwd_train */
static void bn_bwd_train_ch(void *arg, int t, int lo, int hi)
{
    const bn_job *j = arg;
    const sd_bn_desc *d = j->d;
    (void)t;
    const double m = (double)d->n * d->hw;
    for (int ch = lo; ch < hi; ch++) {
        double mu = j->mean[ch], a = j->invstd[ch], g = j->gamma[ch], sg = 0, sgx = 0;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(j->x, d, i, ch), *gyc = BN_AT(j->gy, d, i, ch);
            for (int p = 0; p < d->hw; p++) {
                sg += gyc[p];
                sgx += gyc[p] * ((xc[p] - mu) * a);
            }
        }
        if (j->gbeta)
            j->gbeta[ch] += (sd_real)sg;
        if (j->ggamma)
            j->ggamma[ch] += (sd_real)sgx;
        if (!j->gx)
            continue;
        double A = sg / m, B = sgx / m, ga = g * a;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(j->x, d, i, ch), *gyc = BN_AT(j->gy, d, i, ch);
            sd_real *gxc = BN_AT(j->gx, d, i, ch);
            for (int p = 0; p < d->hw; p++) {
                double xh = (xc[p] - mu) * a;
                gxc[p] += (sd_real)(ga * (gyc[p] - A - xh * B));
            }
        }
    }
}

static int cpu_bn_bwd_train(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                            const sd_real *gamma, const sd_real *mean, const sd_real *invstd,
                            const sd_real *gy, sd_real *gx, sd_real *ggamma, sd_real *gbeta)
{
    int rc = bn_check(be, err, d, "bn_bwd_train");
    if (rc)
        return rc;
    bn_job j = {.d = d,
                .x = x,
                .gamma = gamma,
                .mean = mean,
                .invstd = invstd,
                .gy = gy,
                .gx = gx,
                .ggamma = ggamma,
                .gbeta = gbeta};
    sd_cpu_for(be, d->c, (size_t)d->n * d->c * d->hw, d->c, bn_bwd_train_ch, &j);
    return SD_OK;
}

static int cpu_bn_fwd_tangent_train(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                    const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                    const sd_real *dgamma, const sd_real *dbeta,
                                    const sd_real *mean, const sd_real *invstd, sd_real *dy)
{
    int rc = bn_check(be, err, d, "bn_fwd_tangent_train");
    if (rc)
        return rc;
    const double m = (double)d->n * d->hw;
    for (int ch = 0; ch < d->c; ch++) {
        double mu = mean[ch], a = invstd[ch], g = gamma[ch];
        double dg = dgamma ? dgamma[ch] : 0, db = dbeta ? dbeta[ch] : 0;
        double sdx = 0, sxdx = 0;
        if (dx)
            for (int i = 0; i < d->n; i++) {
                const sd_real *xc = BN_AT(x, d, i, ch), *dxc = BN_AT(dx, d, i, ch);
                for (int p = 0; p < d->hw; p++) {
                    sdx += dxc[p];
                    sxdx += ((xc[p] - mu) * a) * dxc[p];
                }
            }
        double D = sdx / m, C = sxdx / m;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch);
            const sd_real *dxc = dx ? BN_AT(dx, d, i, ch) : NULL;
            sd_real *dyc = BN_AT(dy, d, i, ch);
            for (int p = 0; p < d->hw; p++) {
                double xh = (xc[p] - mu) * a;
                double dxh = dxc ? a * (dxc[p] - D - xh * C) : 0;
                dyc[p] = (sd_real)(dg * xh + g * dxh + db);
            }
        }
    }
    return SD_OK;
}

static int cpu_bn_bwd_tangent_train(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                    const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                    const sd_real *dgamma, const sd_real *mean,
                                    const sd_real *invstd, const sd_real *gy, const sd_real *dgy,
                                    sd_real *dgx, sd_real *dggamma, sd_real *dgbeta)
{
    int rc = bn_check(be, err, d, "bn_bwd_tangent_train");
    if (rc)
        return rc;
    const double m = (double)d->n * d->hw;
    for (int ch = 0; ch < d->c; ch++) {
        double mu = mean[ch], a = invstd[ch], g = gamma[ch];
        double dg = dgamma ? dgamma[ch] : 0;
        /* sums of gy, gy xh, dx, xh dx, gy dx, dgy, dgy xh */
        double s_gy = 0, s_gyxh = 0, s_dx = 0, s_xhdx = 0, s_gydx = 0, s_dgy = 0, s_dgyxh = 0;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch), *gyc = BN_AT(gy, d, i, ch);
            const sd_real *dxc = dx ? BN_AT(dx, d, i, ch) : NULL;
            const sd_real *dgyc = dgy ? BN_AT(dgy, d, i, ch) : NULL;
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
        double A = s_gy / m, B = s_gyxh / m, D = s_dx / m, C = s_xhdx / m;
        double dA = s_dgy / m;
        double dB = s_dgyxh / m + a * (s_gydx / m - A * D - B * C);
        double da = -a * a * C;
        if (dgbeta)
            dgbeta[ch] += (sd_real)(m * dA);
        if (dggamma)
            dggamma[ch] += (sd_real)(m * dB);
        if (!dgx)
            continue;
        double c1 = dg * a + g * da, ga = g * a;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch), *gyc = BN_AT(gy, d, i, ch);
            const sd_real *dxc = dx ? BN_AT(dx, d, i, ch) : NULL;
            const sd_real *dgyc = dgy ? BN_AT(dgy, d, i, ch) : NULL;
            sd_real *o = BN_AT(dgx, d, i, ch);
            for (int p = 0; p < d->hw; p++) {
                double xh = (xc[p] - mu) * a;
                double dxh = dxc ? a * (dxc[p] - D - xh * C) : 0;
                double dgv = dgyc ? dgyc[p] : 0;
                o[p] += (sd_real)(c1 * (gyc[p] - A - xh * B) + ga * (dgv - dA - dxh * B - xh * dB));
            }
        }
    }
    return SD_OK;
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
}
