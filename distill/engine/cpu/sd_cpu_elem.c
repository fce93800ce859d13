/*
 * sd_cpu_elem.c - elementwise ops on the CPU: axpy, scal, fill, dot, Adam,
 * bias forward/backward, ReLU forward and mask.
 * GPU twin: gpu/sg_elem.cu, which repeats this arithmetic op for op.
 *
 * Sums (dot, bias gradient) are accumulated in double in a fixed sequential
 * order.  The plain loops are written to vectorise (-ftree-vectorize, no
 * reduction reordered: docs/cpu-backend.md).
 */
#include "sd_cpu_internal.h"

#include <math.h>

static int cpu_axpy(sd_backend *be, sd_error *err, size_t n, sd_real alpha, const sd_real *x,
                    sd_real *y)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
    return SD_OK;
}

static int cpu_scal(sd_backend *be, sd_error *err, size_t n, sd_real alpha, sd_real *x)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        x[i] *= alpha;
    return SD_OK;
}

static int cpu_fill(sd_backend *be, sd_error *err, size_t n, sd_real value, sd_real *x)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        x[i] = value;
    return SD_OK;
}

static int cpu_dot(sd_backend *be, sd_error *err, size_t n, const sd_real *x, const sd_real *y,
                   double *out)
{
    (void)be;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)y[i];
    *out = s;
    return SD_OK;
}

/* Adam (Kingma & Ba) in PyTorch's arithmetic:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 * which is lr * mhat / (sqrt(vhat) + eps) with the bias-corrected moments. */
static int cpu_adam(sd_backend *be, sd_error *err, size_t n, sd_real *p, const sd_real *g,
                    sd_real *m, sd_real *v, double lr, double beta1, double beta2, double eps,
                    int t)
{
    if (t < 1 || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps >= 0))
        return CPU_FAIL(err, SD_EINVAL, "cpu adam: bad hyper-parameters (t=%d b1=%g b2=%g eps=%g)",
                        t, beta1, beta2, eps);
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    double step = lr / bc1, sbc2 = sqrt(bc2);
    for (size_t i = 0; i < n; i++) {
        double gi = g[i];
        double mi = beta1 * (double)m[i] + (1.0 - beta1) * gi;
        double vi = beta2 * (double)v[i] + (1.0 - beta2) * gi * gi;
        m[i] = (sd_real)mi;
        v[i] = (sd_real)vi;
        p[i] = (sd_real)((double)p[i] - step * mi / (sqrt(vi) / sbc2 + eps));
    }
    return SD_OK;
}

static int cpu_bias_fwd(sd_backend *be, sd_error *err, int n, int c, int hw, const sd_real *b,
                        sd_real *y)
{
    (void)be;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            sd_real *yc = y + ((size_t)i * c + ch) * hw, bc = b[ch];
            for (int p = 0; p < hw; p++)
                yc[p] += bc;
        }
    return SD_OK;
}

/* gb[ch..ch+G) += the sums of G channels, side by side: each channel's sum
 * runs in the same order (samples, then positions), one dependent double
 * addition after another, and G such chains stay in flight instead of one.
 * G is a constant where this is inlined. */
static inline void bias_bwd_group(int G, int n, int c, int hw, const sd_real *gy, int ch,
                                  sd_real *gb)
{
    double s[8] = {0};
    for (int i = 0; i < n; i++) {
        const sd_real *g = gy + ((size_t)i * c + ch) * hw;
        for (int p = 0; p < hw; p++) {
#pragma GCC unroll 8
            for (int t = 0; t < G; t++)
                s[t] += g[(size_t)t * hw + p];
        }
    }
    for (int t = 0; t < G; t++)
        gb[ch + t] += (sd_real)s[t];
}

static int cpu_bias_bwd(sd_backend *be, sd_error *err, int n, int c, int hw, const sd_real *gy,
                        sd_real *gb)
{
    (void)be;
    /* eight chains keep both floating-point adders busy (latency 4) */
    int ch = 0;
    for (; ch + 8 <= c; ch += 8)
        bias_bwd_group(8, n, c, hw, gy, ch, gb);
    if (ch + 4 <= c) {
        bias_bwd_group(4, n, c, hw, gy, ch, gb);
        ch += 4;
    }
    if (ch + 2 <= c) {
        bias_bwd_group(2, n, c, hw, gy, ch, gb);
        ch += 2;
    }
    if (ch < c)
        bias_bwd_group(1, n, c, hw, gy, ch, gb);
    return SD_OK;
}

/* Both loops are selects, not branches: on data of random sign a branch is
 * mispredicted half the time (~12 ns per element measured, against ~1 ns for
 * the vectorised select).  d is loaded unconditionally so the compiler may
 * if-convert; adding 0 leaves out unchanged. */
static int cpu_relu_fwd(sd_backend *be, sd_error *err, size_t n, const sd_real *x, sd_real *y)
{
    (void)be;
    for (size_t i = 0; i < n; i++) {
        sd_real v = x[i];
        y[i] = v > 0 ? v : 0;
    }
    return SD_OK;
}

static int cpu_relu_mask(sd_backend *be, sd_error *err, size_t n, const sd_real *x,
                         const sd_real *d, sd_real *out)
{
    (void)be;
    for (size_t i = 0; i < n; i++) {
        sd_real dv = d[i];
        out[i] += x[i] > 0 ? dv : 0;
    }
    return SD_OK;
}

/* relu_mask_set's zero, read through volatile: with a literal 0 the
 * compiler rewrites 0 + (c ? d : 0) as c ? 0 + d : 0, a branch it may not
 * vectorise (the addition could trap), 10x slower on data of random sign. */
static volatile sd_real relu_zero = 0;

static int cpu_relu_mask_set(sd_backend *be, sd_error *err, size_t n, const sd_real *x,
                             const sd_real *d, sd_real *out)
{
    (void)be;
    const sd_real z = relu_zero;
    for (size_t i = 0; i < n; i++) {
        sd_real dv = d[i];
        out[i] = z + (x[i] > 0 ? dv : 0); /* +0 for a zero d, as 0 += gives */
    }
    return SD_OK;
}

void sd_cpu_install_elem(sd_backend *be)
{
    be->axpy = cpu_axpy;
    be->scal = cpu_scal;
    be->fill = cpu_fill;
    be->dot = cpu_dot;
    be->adam = cpu_adam;
    be->bias_fwd = cpu_bias_fwd;
    be->bias_bwd = cpu_bias_bwd;
    be->relu_fwd = cpu_relu_fwd;
    be->relu_mask = cpu_relu_mask;
    be->relu_mask_set = cpu_relu_mask_set;
}
