/*
 * sg_elem.cu - elementwise ops, bias, ReLU, dot and Adam on the GPU.
 *
 * The arithmetic mirrors the CPU reference (distill/engine/cpu/sd_cpu_elem.c) op for
 * op: float where the CPU uses float, double where it uses double, and no
 * fused multiply-add (the library is built with --fmad=false), so most of
 * these ops give the CPU's bits exactly.  Sums (bias gradient, dot) are
 * accumulated in double by the deterministic two-stage reductions of
 * sg_reduce.cuh; only their order differs from the CPU's sequential loop.
 */
#include "sg_reduce.cuh"

#include <math.h>

/* Grid-stride loop over n elements. */
#define SG_FOR(i, n)                                                        \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (size_t)gridDim.x * blockDim.x)

__global__ void sg_axpy_kernel(size_t n, float alpha, const float *x, float *y)
{
    SG_FOR(i, n)
    y[i] += alpha * x[i];
}

__global__ void sg_scal_kernel(size_t n, float alpha, float *x)
{
    SG_FOR(i, n)
    x[i] *= alpha;
}

__global__ void sg_fill_kernel(size_t n, float v, float *x)
{
    SG_FOR(i, n)
    x[i] = v;
}

__global__ void sg_relu_kernel(size_t n, const float *x, float *y)
{
    SG_FOR(i, n)
    {
        float v = x[i];
        y[i] = v > 0 ? v : 0.0f;
    }
}

__global__ void sg_relu_mask_kernel(size_t n, const float *x, const float *d, float *out)
{
    SG_FOR(i, n)
    {
        if (x[i] > 0)
            out[i] += d[i];
    }
}

__global__ void sg_adam_kernel(size_t n, float *p, const float *g, float *m, float *v, double beta1,
                               double beta2, double eps, double step, double sbc2)
{
    SG_FOR(i, n)
    {
        double gi = g[i];
        double mi = beta1 * (double)m[i] + (1.0 - beta1) * gi;
        double vi = beta2 * (double)v[i] + (1.0 - beta2) * gi * gi;
        m[i] = (float)mi;
        v[i] = (float)vi;
        p[i] = (float)((double)p[i] - step * mi / (sqrt(vi) / sbc2 + eps));
    }
}

static int sg_axpy(sd_backend *be, sd_error *err, size_t n, sd_real alpha, const sd_real *x,
                   sd_real *y)
{
    if (n == 0)
        return 0;
    SG_ENTER(be);
    sg_axpy_kernel<<<sg_blocks(n), SG_THREADS, 0, sg_ctx_of(be)->stream>>>(n, alpha, x, y);
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_scal(sd_backend *be, sd_error *err, size_t n, sd_real alpha, sd_real *x)
{
    if (n == 0)
        return 0;
    SG_ENTER(be);
    sg_scal_kernel<<<sg_blocks(n), SG_THREADS, 0, sg_ctx_of(be)->stream>>>(n, alpha, x);
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_fill(sd_backend *be, sd_error *err, size_t n, sd_real value, sd_real *x)
{
    if (n == 0)
        return 0;
    SG_ENTER(be);
    sg_fill_kernel<<<sg_blocks(n), SG_THREADS, 0, sg_ctx_of(be)->stream>>>(n, value, x);
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_dot(sd_backend *be, sd_error *err, size_t n, const sd_real *x, const sd_real *y,
                  double *out)
{
    *out = 0;
    if (n == 0)
        return 0;
    SG_ENTER(be);
    sg_ctx *c = sg_ctx_of(be);
    SG_TRY(sg_flat_sum(
        be, err, n, [=] __device__(size_t i) -> double { return (double)x[i] * (double)y[i]; }, 1.0,
        sg_small(c)));
    return sg_fetch_small(be, err, sg_small(c), 1, out);
}

static int sg_adam(sd_backend *be, sd_error *err, size_t n, sd_real *p, const sd_real *g,
                   sd_real *m, sd_real *v, double lr, double beta1, double beta2, double eps, int t)
{
    if (t < 1 || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps >= 0))
        return sd_error_set(err, SD_EINVAL,
                            "cuda adam: bad hyper-parameters (t=%d b1=%g b2=%g eps=%g)", t, beta1,
                            beta2, eps);
    if (n == 0)
        return 0;
    SG_ENTER(be);
    /* Same bias corrections as the CPU backend, computed on the host. */
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    sg_adam_kernel<<<sg_blocks(n), SG_THREADS, 0, sg_ctx_of(be)->stream>>>(
        n, p, g, m, v, beta1, beta2, eps, lr / bc1, sqrt(bc2));
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_relu_fwd(sd_backend *be, sd_error *err, size_t n, const sd_real *x, sd_real *y)
{
    if (n == 0)
        return 0;
    SG_ENTER(be);
    sg_relu_kernel<<<sg_blocks(n), SG_THREADS, 0, sg_ctx_of(be)->stream>>>(n, x, y);
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_relu_mask(sd_backend *be, sd_error *err, size_t n, const sd_real *x, const sd_real *d,
                        sd_real *out)
{
    if (n == 0)
        return 0;
    SG_ENTER(be);
    sg_relu_mask_kernel<<<sg_blocks(n), SG_THREADS, 0, sg_ctx_of(be)->stream>>>(n, x, d, out);
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_bias_fwd(sd_backend *be, sd_error *err, int n, int c, int hw, const sd_real *b,
                       sd_real *y)
{
    if (n < 0 || c < 0 || hw < 0)
        return sg_fail_code(err, SD_EINVAL, "bias_fwd", "bad shape");
    SG_ENTER(be);
    return sg_chan_apply(be, err, n, c, hw,
                         [=] __device__(size_t i, unsigned ch) { y[i] += b[ch]; });
}

static int sg_bias_bwd(sd_backend *be, sd_error *err, int n, int c, int hw, const sd_real *gy,
                       sd_real *gb)
{
    if (c == 0)
        return 0;
    SG_ENTER(be);
    return sg_chan_reduce<1>(
        be, err, "bias_bwd", n, c, hw,
        [=] __device__(size_t i, unsigned ch, double *acc) { acc[0] += gy[i]; },
        [=] __device__(unsigned ch, const double *tot) { gb[ch] += (float)tot[0]; });
}

void sg_install_elem(sd_backend *be)
{
    be->axpy = sg_axpy;
    be->scal = sg_scal;
    be->fill = sg_fill;
    be->dot = sg_dot;
    be->adam = sg_adam;
    be->relu_fwd = sg_relu_fwd;
    be->relu_mask = sg_relu_mask;
    be->bias_fwd = sg_bias_fwd;
    be->bias_bwd = sg_bias_bwd;
}
