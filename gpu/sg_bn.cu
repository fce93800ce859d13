/*
 * sg_bn.cu - batch normalisation, batch-statistics and frozen modes: forward,
 * backward, forward tangent and backward tangent.
 *
 * The formulas are the header's and the CPU reference's (derivation in
 * distill/engine/cpu/sd_cpu_bn.c and docs/gpu.md): biased variance, eps inside the
 * square root, and the batch-mode ops normalise with the mean and invstd as
 * stored in float, so every entry point sees the same numbers as forward.
 *
 * Each op is one or two deterministic per-channel reductions (sg_reduce.cuh:
 * fixed chunks, double accumulation, fixed-order tree) whose final stage
 * writes per-channel results and coefficients (double, in the scratch area),
 * followed by one elementwise pass.  Per-element arithmetic is in double in
 * the CPU's operation order (no FMA contraction), so outputs differ from the
 * CPU's only through the order of the per-channel sums.
 */
#include "sg_reduce.cuh"

#include <math.h>

#define SG_BN_NC 8 /* coefficients per channel in the scratch area */

static int sg_bn_check(sd_backend *be, sd_error *err, const sd_bn_desc *d, const char *op)
{
    if (d->n < 1 || d->c < 1 || d->hw < 1 || !(d->eps > 0))
        return sd_error_set(err, SD_EINVAL, "cuda %s: bad geometry n=%d c=%d hw=%d eps=%g", op,
                            d->n, d->c, d->hw, d->eps);
    return 0;
}

/* ---- batch-statistics mode ---- */

static int sg_bn_fwd_train(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                           const sd_real *gamma, const sd_real *beta, sd_real *y, sd_real *mean,
                           sd_real *invstd)
{
    SG_TRY(sg_bn_check(be, err, d, "bn_fwd_train"));
    SG_ENTER(be);
    double *coef = sg_coef(sg_ctx_of(be));
    const double m = (double)d->n * d->hw, eps = d->eps;
    /* two passes, as on the CPU: the mean, then squared deviations from the
     * unrounded mean */
    SG_TRY(sg_chan_reduce<1>(
        be, err, "bn_fwd_train", d->n, d->c, d->hw,
        [=] __device__(size_t i, unsigned ch, double *acc) { acc[0] += x[i]; },
        [=] __device__(unsigned ch, const double *tot) {
            double mu = tot[0] / m;
            coef[ch * SG_BN_NC] = mu;
            mean[ch] = (float)mu;
        }));
    SG_TRY(sg_chan_reduce<1>(
        be, err, "bn_fwd_train", d->n, d->c, d->hw,
        [=] __device__(size_t i, unsigned ch, double *acc) {
            double t = x[i] - coef[ch * SG_BN_NC];
            acc[0] += t * t;
        },
        [=] __device__(unsigned ch, const double *tot) {
            invstd[ch] = (float)(1.0 / sqrt(tot[0] / m + eps));
        }));
    return sg_chan_apply(be, err, d->n, d->c, d->hw, [=] __device__(size_t i, unsigned ch) {
        double mur = mean[ch], a = invstd[ch], g = gamma[ch], b = beta[ch];
        y[i] = (float)(g * ((x[i] - mur) * a) + b);
    });
}

static int sg_bn_bwd_train(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                           const sd_real *gamma, const sd_real *mean, const sd_real *invstd,
                           const sd_real *gy, sd_real *gx, sd_real *ggamma, sd_real *gbeta)
{
    SG_TRY(sg_bn_check(be, err, d, "bn_bwd_train"));
    SG_ENTER(be);
    double *coef = sg_coef(sg_ctx_of(be));
    const double m = (double)d->n * d->hw;
    SG_TRY(sg_chan_reduce<2>(
        be, err, "bn_bwd_train", d->n, d->c, d->hw,
        [=] __device__(size_t i, unsigned ch, double *acc) {
            double mu = mean[ch], a = invstd[ch];
            acc[0] += gy[i];
            acc[1] += gy[i] * ((x[i] - mu) * a);
        },
        [=] __device__(unsigned ch, const double *tot) {
            if (gbeta)
                gbeta[ch] += (float)tot[0];
            if (ggamma)
                ggamma[ch] += (float)tot[1];
            coef[ch * SG_BN_NC + 0] = tot[0] / m;
            coef[ch * SG_BN_NC + 1] = tot[1] / m;
        }));
    if (!gx)
        return 0;
    return sg_chan_apply(be, err, d->n, d->c, d->hw, [=] __device__(size_t i, unsigned ch) {
        double mu = mean[ch], a = invstd[ch], g = gamma[ch];
        double A = coef[ch * SG_BN_NC + 0], B = coef[ch * SG_BN_NC + 1], ga = g * a;
        double xh = (x[i] - mu) * a;
        gx[i] += (float)(ga * (gy[i] - A - xh * B));
    });
}

static int sg_bn_fwd_tangent_train(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                   const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                   const sd_real *dgamma, const sd_real *dbeta, const sd_real *mean,
                                   const sd_real *invstd, sd_real *dy)
{
    SG_TRY(sg_bn_check(be, err, d, "bn_fwd_tangent_train"));
    SG_ENTER(be);
    double *coef = sg_coef(sg_ctx_of(be));
    const double m = (double)d->n * d->hw;
    if (dx)
        SG_TRY(sg_chan_reduce<2>(
            be, err, "bn_fwd_tangent_train", d->n, d->c, d->hw,
            [=] __device__(size_t i, unsigned ch, double *acc) {
                double mu = mean[ch], a = invstd[ch];
                acc[0] += dx[i];
                acc[1] += ((x[i] - mu) * a) * dx[i];
            },
            [=] __device__(unsigned ch, const double *tot) {
                coef[ch * SG_BN_NC + 0] = tot[0] / m; /* D = <dx> */
                coef[ch * SG_BN_NC + 1] = tot[1] / m; /* C = <xh dx> */
            }));
    return sg_chan_apply(be, err, d->n, d->c, d->hw, [=] __device__(size_t i, unsigned ch) {
        double mu = mean[ch], a = invstd[ch], g = gamma[ch];
        double dg = dgamma ? dgamma[ch] : 0, db = dbeta ? dbeta[ch] : 0;
        double xh = (x[i] - mu) * a, dxh = 0;
        if (dx)
            dxh = a * (dx[i] - coef[ch * SG_BN_NC + 0] - xh * coef[ch * SG_BN_NC + 1]);
        dy[i] = (float)(dg * xh + g * dxh + db);
    });
}

static int sg_bn_bwd_tangent_train(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                   const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                   const sd_real *dgamma, const sd_real *mean,
                                   const sd_real *invstd, const sd_real *gy, const sd_real *dgy,
                                   sd_real *dgx, sd_real *dggamma, sd_real *dgbeta)
{
    SG_TRY(sg_bn_check(be, err, d, "bn_bwd_tangent_train"));
    SG_ENTER(be);
    double *coef = sg_coef(sg_ctx_of(be));
    const double m = (double)d->n * d->hw;
    /* sums of gy, gy xh, dx, xh dx, gy dx, dgy, dgy xh */
    SG_TRY(sg_chan_reduce<7>(
        be, err, "bn_bwd_tangent_train", d->n, d->c, d->hw,
        [=] __device__(size_t i, unsigned ch, double *acc) {
            double mu = mean[ch], a = invstd[ch];
            double xh = (x[i] - mu) * a, gv = gy[i];
            acc[0] += gv;
            acc[1] += gv * xh;
            if (dx) {
                double dv = dx[i];
                acc[2] += dv;
                acc[3] += xh * dv;
                acc[4] += gv * dv;
            }
            if (dgy) {
                double dgv = dgy[i];
                acc[5] += dgv;
                acc[6] += dgv * xh;
            }
        },
        [=] __device__(unsigned ch, const double *s) {
            double a = invstd[ch], g = gamma[ch], dg = dgamma ? dgamma[ch] : 0;
            double A = s[0] / m, B = s[1] / m, D = s[2] / m, C = s[3] / m;
            double dA = s[5] / m;
            double dB = s[6] / m + a * (s[4] / m - A * D - B * C);
            double da = -a * a * C;
            if (dgbeta)
                dgbeta[ch] += (float)(m * dA);
            if (dggamma)
                dggamma[ch] += (float)(m * dB);
            double *k = coef + (size_t)ch * SG_BN_NC;
            k[0] = A;
            k[1] = B;
            k[2] = D;
            k[3] = C;
            k[4] = dA;
            k[5] = dB;
            k[6] = dg * a + g * da; /* c1 */
            k[7] = g * a;           /* ga */
        }));
    if (!dgx)
        return 0;
    return sg_chan_apply(be, err, d->n, d->c, d->hw, [=] __device__(size_t i, unsigned ch) {
        const double *k = coef + (size_t)ch * SG_BN_NC;
        double mu = mean[ch], a = invstd[ch];
        double A = k[0], B = k[1], D = k[2], C = k[3], dA = k[4], dB = k[5], c1 = k[6], ga = k[7];
        double xh = (x[i] - mu) * a;
        double dxh = dx ? a * (dx[i] - D - xh * C) : 0;
        double dgv = dgy ? dgy[i] : 0;
        dgx[i] += (float)(c1 * (gy[i] - A - xh * B) + ga * (dgv - dA - dxh * B - xh * dB));
    });
}

/* ---- frozen-statistics mode ---- */

/* coef[ch*NC] = 1/sqrt(rvar + eps), in double as on the CPU. */
__global__ void sg_bn_frozen_coef_kernel(int c, const float *rvar, double eps, double *coef)
{
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch < c)
        coef[(size_t)ch * SG_BN_NC] = 1.0 / sqrt((double)rvar[ch] + eps);
}

static int sg_bn_frozen_coef(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                             const sd_real *rvar)
{
    sg_ctx *cx = sg_ctx_of(be);
    if ((size_t)d->c * SG_BN_NC > SG_SCRATCH_COEF)
        return sg_fail_code(err, SD_EUNSUPPORTED, "bn", "too many channels for the scratch area");
    sg_bn_frozen_coef_kernel<<<(d->c + 127) / 128, 128, 0, cx->stream>>>(d->c, rvar, d->eps,
                                                                         sg_coef(cx));
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_bn_fwd_frozen(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                            const sd_real *gamma, const sd_real *beta, const sd_real *rmean,
                            const sd_real *rvar, sd_real *y)
{
    SG_TRY(sg_bn_check(be, err, d, "bn_fwd_frozen"));
    SG_ENTER(be);
    double *coef = sg_coef(sg_ctx_of(be));
    SG_TRY(sg_bn_frozen_coef(be, err, d, rvar));
    return sg_chan_apply(be, err, d->n, d->c, d->hw, [=] __device__(size_t i, unsigned ch) {
        double mu = rmean[ch], a = coef[ch * SG_BN_NC], g = gamma[ch], b = beta[ch];
        y[i] = (float)(g * ((x[i] - mu) * a) + b);
    });
}

static int sg_bn_bwd_frozen(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                            const sd_real *gamma, const sd_real *rmean, const sd_real *rvar,
                            const sd_real *gy, sd_real *gx, sd_real *ggamma, sd_real *gbeta)
{
    SG_TRY(sg_bn_check(be, err, d, "bn_bwd_frozen"));
    SG_ENTER(be);
    double *coef = sg_coef(sg_ctx_of(be));
    SG_TRY(sg_bn_frozen_coef(be, err, d, rvar));
    if (ggamma || gbeta)
        SG_TRY(sg_chan_reduce<2>(
            be, err, "bn_bwd_frozen", d->n, d->c, d->hw,
            [=] __device__(size_t i, unsigned ch, double *acc) {
                double mu = rmean[ch], a = coef[ch * SG_BN_NC];
                acc[0] += gy[i];
                acc[1] += gy[i] * ((x[i] - mu) * a);
            },
            [=] __device__(unsigned ch, const double *tot) {
                if (gbeta)
                    gbeta[ch] += (float)tot[0];
                if (ggamma)
                    ggamma[ch] += (float)tot[1];
            }));
    if (!gx)
        return 0;
    return sg_chan_apply(be, err, d->n, d->c, d->hw, [=] __device__(size_t i, unsigned ch) {
        double a = coef[ch * SG_BN_NC], g = gamma[ch];
        gx[i] += (float)(g * a * gy[i]);
    });
}

static int sg_bn_fwd_tangent_frozen(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                    const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                    const sd_real *dgamma, const sd_real *dbeta,
                                    const sd_real *rmean, const sd_real *rvar, sd_real *dy)
{
    SG_TRY(sg_bn_check(be, err, d, "bn_fwd_tangent_frozen"));
    SG_ENTER(be);
    double *coef = sg_coef(sg_ctx_of(be));
    SG_TRY(sg_bn_frozen_coef(be, err, d, rvar));
    return sg_chan_apply(be, err, d->n, d->c, d->hw, [=] __device__(size_t i, unsigned ch) {
        double mu = rmean[ch], a = coef[ch * SG_BN_NC], g = gamma[ch];
        double dg = dgamma ? dgamma[ch] : 0, db = dbeta ? dbeta[ch] : 0;
        double xh = (x[i] - mu) * a;
        dy[i] = (float)(dg * xh + (dx ? g * a * dx[i] : 0) + db);
    });
}

static int sg_bn_bwd_tangent_frozen(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                    const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                    const sd_real *dgamma, const sd_real *rmean,
                                    const sd_real *rvar, const sd_real *gy, const sd_real *dgy,
                                    sd_real *dgx, sd_real *dggamma, sd_real *dgbeta)
{
    SG_TRY(sg_bn_check(be, err, d, "bn_bwd_tangent_frozen"));
    SG_ENTER(be);
    double *coef = sg_coef(sg_ctx_of(be));
    SG_TRY(sg_bn_frozen_coef(be, err, d, rvar));
    if (dggamma || dgbeta)
        SG_TRY(sg_chan_reduce<2>(
            be, err, "bn_bwd_tangent_frozen", d->n, d->c, d->hw,
            [=] __device__(size_t i, unsigned ch, double *acc) {
                double mu = rmean[ch], a = coef[ch * SG_BN_NC];
                double xh = (x[i] - mu) * a, dgv = dgy ? dgy[i] : 0;
                acc[0] += dgv;
                acc[1] += dgv * xh + (dx ? gy[i] * a * dx[i] : 0);
            },
            [=] __device__(unsigned ch, const double *tot) {
                if (dgbeta)
                    dgbeta[ch] += (float)tot[0];
                if (dggamma)
                    dggamma[ch] += (float)tot[1];
            }));
    if (!dgx)
        return 0;
    return sg_chan_apply(be, err, d->n, d->c, d->hw, [=] __device__(size_t i, unsigned ch) {
        double a = coef[ch * SG_BN_NC], g = gamma[ch], dg = dgamma ? dgamma[ch] : 0;
        double dgv = dgy ? dgy[i] : 0;
        dgx[i] += (float)(dg * a * gy[i] + g * a * dgv);
    });
}

void sg_install_bn(sd_backend *be)
{
    be->bn_fwd_train = sg_bn_fwd_train;
    be->bn_bwd_train = sg_bn_bwd_train;
    be->bn_fwd_tangent_train = sg_bn_fwd_tangent_train;
    be->bn_bwd_tangent_train = sg_bn_bwd_tangent_train;
    be->bn_fwd_frozen = sg_bn_fwd_frozen;
    be->bn_bwd_frozen = sg_bn_bwd_frozen;
    be->bn_fwd_tangent_frozen = sg_bn_fwd_tangent_frozen;
    be->bn_bwd_tangent_frozen = sg_bn_bwd_tangent_frozen;
}
