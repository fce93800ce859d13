/*
 * sg_sce.cu - soft-target cross-entropy (forward, backward, both tangents)
 * and the row softmax of the label parameterisation.
 *
 * Rows are short (k = number of classes), so one thread handles one row, with
 * the CPU reference's arithmetic in double: log-sum-exp in the forward, and
 * log(max(p, FLT_MIN)) in the ops that only receive p.  Formulas (see
 * distill/engine/cpu/sd_cpu_sce.c and docs/gpu.md), per row with S = sum_c q_c:
 *   L     = -(1/n) sum q log p
 *   gz   += g/n (p S - q),            gq += -g/n log p
 *   dL    = (1/n) sum (p S - q) dz - (1/n) sum dq log p
 *   dgz  += dg/n (p S - q) + g/n (dp S + p dS - dq),   dp = p (dz - <p,dz>)
 *   dgq  += -dg/n log p - g/n (dz - <p,dz>)
 *   softmax: gy += q (gq - <q,gq>);  along (dy, dgq), dq = q (dy - <q,dy>):
 *   dgy  += dq (gq - <q,gq>) + q (dgq - <dq,gq> - <q,dgq>)
 * Scalar results (loss, dloss) are per-row values summed by the
 * deterministic flat reduction, then divided by n as on the CPU.
 */
#include "sg_reduce.cuh"

#include <float.h>
#include <math.h>

__device__ static double sg_safe_log(float p)
{
    return log(p > FLT_MIN ? (double)p : (double)FLT_MIN);
}

#define SG_ROW_THREADS 128
#define SG_ROW_FOR(i, n) \
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += gridDim.x * blockDim.x)

static unsigned sg_row_blocks(int n)
{
    unsigned b = (unsigned)((n + SG_ROW_THREADS - 1) / SG_ROW_THREADS);
    return b > SG_MAX_BLOCKS ? SG_MAX_BLOCKS : (b ? b : 1u);
}

/* rowv[i] = -sum_c q log p of row i; p written. */
__global__ void sg_sce_fwd_kernel(int n, int k, const float *z, const float *q, float *p,
                                  double *rowv)
{
    SG_ROW_FOR(i, n)
    {
        const float *zi = z + (size_t)i * k, *qi = q + (size_t)i * k;
        float *pi = p + (size_t)i * k;
        double mx = zi[0], s = 0;
        for (int c = 1; c < k; c++)
            if (zi[c] > mx)
                mx = zi[c];
        for (int c = 0; c < k; c++)
            s += exp(zi[c] - mx);
        double lse = mx + log(s), row = 0;
        for (int c = 0; c < k; c++) {
            double lp = zi[c] - lse;
            pi[c] = (float)exp(lp);
            row += qi[c] * lp;
        }
        rowv[i] = -row;
    }
}

__global__ void sg_sce_bwd_kernel(int n, int k, const float *p, const float *q, double gn,
                                  float *gz, float *gq)
{
    SG_ROW_FOR(i, n)
    {
        const float *pi = p + (size_t)i * k, *qi = q + (size_t)i * k;
        double S = 0;
        for (int c = 0; c < k; c++)
            S += qi[c];
        for (int c = 0; c < k; c++) {
            if (gz)
                gz[(size_t)i * k + c] += (float)(gn * (pi[c] * S - qi[c]));
            if (gq)
                gq[(size_t)i * k + c] += (float)(-gn * sg_safe_log(pi[c]));
        }
    }
}

__global__ void sg_sce_fwd_tangent_kernel(int n, int k, const float *p, const float *q,
                                          const float *dz, const float *dq, double *rowv)
{
    SG_ROW_FOR(i, n)
    {
        const float *pi = p + (size_t)i * k, *qi = q + (size_t)i * k;
        double S = 0, total = 0;
        for (int c = 0; c < k; c++)
            S += qi[c];
        for (int c = 0; c < k; c++) {
            if (dz)
                total += (pi[c] * S - qi[c]) * dz[(size_t)i * k + c];
            if (dq)
                total -= dq[(size_t)i * k + c] * sg_safe_log(pi[c]);
        }
        rowv[i] = total;
    }
}

__global__ void sg_sce_bwd_tangent_kernel(int n, int k, const float *p, const float *q,
                                          const float *dz, const float *dq, double gn, double dgn,
                                          float *dgz, float *dgq)
{
    SG_ROW_FOR(i, n)
    {
        const float *pi = p + (size_t)i * k, *qi = q + (size_t)i * k;
        const float *dzi = dz ? dz + (size_t)i * k : NULL;
        const float *dqi = dq ? dq + (size_t)i * k : NULL;
        double S = 0, dS = 0, pdz = 0;
        for (int c = 0; c < k; c++) {
            S += qi[c];
            if (dqi)
                dS += dqi[c];
            if (dzi)
                pdz += pi[c] * dzi[c];
        }
        for (int c = 0; c < k; c++) {
            double dlp = dzi ? dzi[c] - pdz : 0; /* d log p */
            double dp = pi[c] * dlp, dqc = dqi ? dqi[c] : 0;
            if (dgz)
                dgz[(size_t)i * k + c] +=
                    (float)(dgn * (pi[c] * S - qi[c]) + gn * (dp * S + pi[c] * dS - dqc));
            if (dgq)
                dgq[(size_t)i * k + c] += (float)(-dgn * sg_safe_log(pi[c]) - gn * dlp);
        }
    }
}

__global__ void sg_softmax_fwd_kernel(int n, int k, const float *y, float *q)
{
    SG_ROW_FOR(i, n)
    {
        const float *yi = y + (size_t)i * k;
        float *qi = q + (size_t)i * k;
        double mx = yi[0], s = 0;
        for (int c = 1; c < k; c++)
            if (yi[c] > mx)
                mx = yi[c];
        for (int c = 0; c < k; c++)
            s += exp(yi[c] - mx);
        double lse = mx + log(s);
        for (int c = 0; c < k; c++)
            qi[c] = (float)exp(yi[c] - lse);
    }
}

__global__ void sg_softmax_bwd_kernel(int n, int k, const float *q, const float *gq, float *gy)
{
    SG_ROW_FOR(i, n)
    {
        const float *qi = q + (size_t)i * k, *gi = gq + (size_t)i * k;
        double s = 0;
        for (int c = 0; c < k; c++)
            s += (double)qi[c] * gi[c];
        for (int c = 0; c < k; c++)
            gy[(size_t)i * k + c] += (float)(qi[c] * (gi[c] - s));
    }
}

__global__ void sg_softmax_bwd_tangent_kernel(int n, int k, const float *q, const float *dy,
                                              const float *gq, const float *dgq, float *dgy)
{
    SG_ROW_FOR(i, n)
    {
        const float *qi = q + (size_t)i * k, *gi = gq + (size_t)i * k;
        const float *dyi = dy ? dy + (size_t)i * k : NULL;
        const float *dgi = dgq ? dgq + (size_t)i * k : NULL;
        double qg = 0, qdy = 0, qdg = 0, dqg = 0;
        for (int c = 0; c < k; c++) {
            qg += (double)qi[c] * gi[c];
            if (dyi)
                qdy += (double)qi[c] * dyi[c];
            if (dgi)
                qdg += (double)qi[c] * dgi[c];
        }
        if (dyi)
            for (int c = 0; c < k; c++)
                dqg += qi[c] * (dyi[c] - qdy) * gi[c];
        for (int c = 0; c < k; c++) {
            double dq = dyi ? qi[c] * (dyi[c] - qdy) : 0, dgv = dgi ? dgi[c] : 0;
            dgy[(size_t)i * k + c] += (float)(dq * (gi[c] - qg) + qi[c] * (dgv - dqg - qdg));
        }
    }
}

static int sg_rows_check(sd_backend *be, sd_error *err, int n, int k, const char *op)
{
    if (n < 1 || k < 1)
        return sd_error_set(err, SD_EINVAL, "cuda %s: bad shape n=%d k=%d", op, n, k);
    if ((size_t)n > SG_SCRATCH_COEF)
        return sg_fail_code(err, SD_EUNSUPPORTED, op, "too many rows for the scratch area");
    return 0;
}

/* Sum the per-row values in the coefficient area, divide by n, fetch. */
static int sg_rows_total(sd_backend *be, sd_error *err, int n, double *out)
{
    sg_ctx *c = sg_ctx_of(be);
    const double *rowv = sg_coef(c);
    SG_TRY(sg_flat_sum(
        be, err, (size_t)n, [=] __device__(size_t i) -> double { return rowv[i]; }, (double)n,
        sg_small(c)));
    return sg_fetch_small(be, err, sg_small(c), 1, out);
}

static int sg_sce_fwd(sd_backend *be, sd_error *err, int n, int k, const sd_real *z,
                      const sd_real *q, sd_real *p, double *loss)
{
    SG_TRY(sg_rows_check(be, err, n, k, "sce_fwd"));
    SG_ENTER(be);
    sg_ctx *c = sg_ctx_of(be);
    sg_sce_fwd_kernel<<<sg_row_blocks(n), SG_ROW_THREADS, 0, c->stream>>>(n, k, z, q, p,
                                                                          sg_coef(c));
    SG_CK_LAUNCH(be);
    return sg_rows_total(be, err, n, loss);
}

static int sg_sce_bwd(sd_backend *be, sd_error *err, int n, int k, const sd_real *p,
                      const sd_real *q, double g, sd_real *gz, sd_real *gq)
{
    SG_TRY(sg_rows_check(be, err, n, k, "sce_bwd"));
    if (!gz && !gq)
        return 0;
    SG_ENTER(be);
    sg_sce_bwd_kernel<<<sg_row_blocks(n), SG_ROW_THREADS, 0, sg_ctx_of(be)->stream>>>(
        n, k, p, q, g / n, gz, gq);
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_sce_fwd_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *p,
                              const sd_real *q, const sd_real *dz, const sd_real *dq, double *dloss)
{
    SG_TRY(sg_rows_check(be, err, n, k, "sce_fwd_tangent"));
    SG_ENTER(be);
    sg_ctx *c = sg_ctx_of(be);
    sg_sce_fwd_tangent_kernel<<<sg_row_blocks(n), SG_ROW_THREADS, 0, c->stream>>>(n, k, p, q, dz,
                                                                                  dq, sg_coef(c));
    SG_CK_LAUNCH(be);
    return sg_rows_total(be, err, n, dloss);
}

static int sg_sce_bwd_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *p,
                              const sd_real *q, const sd_real *dz, const sd_real *dq, double g,
                              double dg, sd_real *dgz, sd_real *dgq)
{
    SG_TRY(sg_rows_check(be, err, n, k, "sce_bwd_tangent"));
    if (!dgz && !dgq)
        return 0;
    SG_ENTER(be);
    sg_sce_bwd_tangent_kernel<<<sg_row_blocks(n), SG_ROW_THREADS, 0, sg_ctx_of(be)->stream>>>(
        n, k, p, q, dz, dq, g / n, dg / n, dgz, dgq);
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_softmax_fwd(sd_backend *be, sd_error *err, int n, int k, const sd_real *y, sd_real *q)
{
    SG_TRY(sg_rows_check(be, err, n, k, "softmax_fwd"));
    SG_ENTER(be);
    sg_softmax_fwd_kernel<<<sg_row_blocks(n), SG_ROW_THREADS, 0, sg_ctx_of(be)->stream>>>(n, k, y,
                                                                                          q);
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_softmax_bwd(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                          const sd_real *gq, sd_real *gy)
{
    SG_TRY(sg_rows_check(be, err, n, k, "softmax_bwd"));
    SG_ENTER(be);
    sg_softmax_bwd_kernel<<<sg_row_blocks(n), SG_ROW_THREADS, 0, sg_ctx_of(be)->stream>>>(n, k, q,
                                                                                          gq, gy);
    SG_CK_LAUNCH(be);
    return 0;
}

static int sg_softmax_bwd_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                                  const sd_real *dy, const sd_real *gq, const sd_real *dgq,
                                  sd_real *dgy)
{
    SG_TRY(sg_rows_check(be, err, n, k, "softmax_bwd_tangent"));
    SG_ENTER(be);
    sg_softmax_bwd_tangent_kernel<<<sg_row_blocks(n), SG_ROW_THREADS, 0, sg_ctx_of(be)->stream>>>(
        n, k, q, dy, gq, dgq, dgy);
    SG_CK_LAUNCH(be);
    return 0;
}

void sg_install_sce(sd_backend *be)
{
    be->sce_fwd = sg_sce_fwd;
    be->sce_bwd = sg_sce_bwd;
    be->sce_fwd_tangent = sg_sce_fwd_tangent;
    be->sce_bwd_tangent = sg_sce_bwd_tangent;
    be->softmax_fwd = sg_softmax_fwd;
    be->softmax_bwd = sg_softmax_bwd;
    be->softmax_bwd_tangent = sg_softmax_bwd_tangent;
}
