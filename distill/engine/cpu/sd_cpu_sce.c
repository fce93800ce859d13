/*
 * sd_cpu_sce.c - soft-target cross-entropy (forward, backward, both
 * tangents) and the row softmax of the label parameterisation, on the CPU.
 * GPU twin: gpu/sg_sce.cu (one thread per row, the same arithmetic).
 *
 * Rows are short (k = number of classes); every row sum is accumulated in
 * double, in order.  Formulas below.
 */
#include "sd_cpu_internal.h"

#include <math.h>

/*
 * Per row i, S = sum_c q_c, lse = max z + log sum exp(z - max z),
 * log p = z - lse (never log of an underflowed p in the forward).
 *   L      = -(1/n) sum q log p
 *   dL/dz  = (1/n)(p S - q),           dL/dq = -(1/n) log p
 *   dL     = (1/n) sum (p S - q) dz - (1/n) sum dq log p
 * Tangent of the backward along (dz, dq, dg), with dp = p (dz - <p,dz>),
 * d log p = dz - <p,dz>, dS = sum dq:
 *   d gz = dg/n (p S - q) + g/n (dp S + p dS - dq)
 *   d gq = -dg/n log p - g/n (dz - <p,dz>)
 * The backward ops only receive p, so they take log p = log(max(p, tiny)):
 * exact unless p underflowed (|logit gap| > ~87 in float32).
 * Softmax q = softmax(y) has the symmetric Jacobian diag(q) - q q', so
 *   gy = q (gq - <q,gq>)  (also the forward tangent, with gq = dy), and along
 *   (dy, dgq), with dq = q (dy - <q,dy>):
 *   d gy = dq (gq - <q,gq>) + q (dgq - <dq,gq> - <q,dgq>).
 */

static double safe_log(sd_real p)
{
    return log(p > CPU_REAL_TINY ? (double)p : (double)CPU_REAL_TINY);
}

static int cpu_sce_fwd(sd_backend *be, sd_error *err, int n, int k, const sd_real *z,
                       const sd_real *q, sd_real *p, double *loss)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu sce_fwd: bad shape n=%d k=%d", n, k);
    double total = 0;
    for (int i = 0; i < n; i++) {
        const sd_real *zi = z + (size_t)i * k, *qi = q + (size_t)i * k;
        sd_real *pi = p + (size_t)i * k;
        double mx = zi[0], s = 0;
        for (int c = 1; c < k; c++)
            if (zi[c] > mx)
                mx = zi[c];
        for (int c = 0; c < k; c++)
            s += exp(zi[c] - mx);
        double lse = mx + log(s), row = 0;
        for (int c = 0; c < k; c++) {
            double lp = zi[c] - lse;
            pi[c] = (sd_real)exp(lp);
            row += qi[c] * lp;
        }
        total -= row;
    }
    *loss = total / n;
    return SD_OK;
}

static int cpu_sce_bwd(sd_backend *be, sd_error *err, int n, int k, const sd_real *p,
                       const sd_real *q, double g, sd_real *gz, sd_real *gq)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu sce_bwd: bad shape n=%d k=%d", n, k);
    const double gn = g / n;
    for (int i = 0; i < n; i++) {
        const sd_real *pi = p + (size_t)i * k, *qi = q + (size_t)i * k;
        double S = 0;
        for (int c = 0; c < k; c++)
            S += qi[c];
        for (int c = 0; c < k; c++) {
            if (gz)
                gz[(size_t)i * k + c] += (sd_real)(gn * (pi[c] * S - qi[c]));
            if (gq)
                gq[(size_t)i * k + c] += (sd_real)(-gn * safe_log(pi[c]));
        }
    }
    return SD_OK;
}

static int cpu_sce_fwd_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *p,
                               const sd_real *q, const sd_real *dz, const sd_real *dq,
                               double *dloss)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu sce_fwd_tangent: bad shape n=%d k=%d", n, k);
    double total = 0;
    for (int i = 0; i < n; i++) {
        const sd_real *pi = p + (size_t)i * k, *qi = q + (size_t)i * k;
        double S = 0;
        for (int c = 0; c < k; c++)
            S += qi[c];
        for (int c = 0; c < k; c++) {
            if (dz)
                total += (pi[c] * S - qi[c]) * dz[(size_t)i * k + c];
            if (dq)
                total -= dq[(size_t)i * k + c] * safe_log(pi[c]);
        }
    }
    *dloss = total / n;
    return SD_OK;
}

static int cpu_sce_bwd_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *p,
                               const sd_real *q, const sd_real *dz, const sd_real *dq, double g,
                               double dg, sd_real *dgz, sd_real *dgq)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu sce_bwd_tangent: bad shape n=%d k=%d", n, k);
    const double gn = g / n, dgn = dg / n;
    for (int i = 0; i < n; i++) {
        const sd_real *pi = p + (size_t)i * k, *qi = q + (size_t)i * k;
        const sd_real *dzi = dz ? dz + (size_t)i * k : NULL;
        const sd_real *dqi = dq ? dq + (size_t)i * k : NULL;
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
                    (sd_real)(dgn * (pi[c] * S - qi[c]) + gn * (dp * S + pi[c] * dS - dqc));
            if (dgq)
                dgq[(size_t)i * k + c] += (sd_real)(-dgn * safe_log(pi[c]) - gn * dlp);
        }
    }
    return SD_OK;
}

static int cpu_softmax_fwd(sd_backend *be, sd_error *err, int n, int k, const sd_real *y,
                           sd_real *q)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu softmax_fwd: bad shape n=%d k=%d", n, k);
    for (int i = 0; i < n; i++) {
        const sd_real *yi = y + (size_t)i * k;
        sd_real *qi = q + (size_t)i * k;
        double mx = yi[0], s = 0;
        for (int c = 1; c < k; c++)
            if (yi[c] > mx)
                mx = yi[c];
        for (int c = 0; c < k; c++)
            s += exp(yi[c] - mx);
        double lse = mx + log(s);
        for (int c = 0; c < k; c++)
            qi[c] = (sd_real)exp(yi[c] - lse);
    }
    return SD_OK;
}

static int cpu_softmax_bwd(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                           const sd_real *gq, sd_real *gy)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu softmax_bwd: bad shape n=%d k=%d", n, k);
    for (int i = 0; i < n; i++) {
        const sd_real *qi = q + (size_t)i * k, *gi = gq + (size_t)i * k;
        double s = 0;
        for (int c = 0; c < k; c++)
            s += (double)qi[c] * gi[c];
        for (int c = 0; c < k; c++)
            gy[(size_t)i * k + c] += (sd_real)(qi[c] * (gi[c] - s));
    }
    return SD_OK;
}

static int cpu_softmax_bwd_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                                   const sd_real *dy, const sd_real *gq, const sd_real *dgq,
                                   sd_real *dgy)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu softmax_bwd_tangent: bad shape n=%d k=%d", n, k);
    for (int i = 0; i < n; i++) {
        const sd_real *qi = q + (size_t)i * k, *gi = gq + (size_t)i * k;
        const sd_real *dyi = dy ? dy + (size_t)i * k : NULL;
        const sd_real *dgi = dgq ? dgq + (size_t)i * k : NULL;
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
            dgy[(size_t)i * k + c] += (sd_real)(dq * (gi[c] - qg) + qi[c] * (dgv - dqg - qdg));
        }
    }
    return SD_OK;
}

void sd_cpu_install_sce(sd_backend *be)
{
    be->sce_fwd = cpu_sce_fwd;
    be->sce_bwd = cpu_sce_bwd;
    be->sce_fwd_tangent = cpu_sce_fwd_tangent;
    be->sce_bwd_tangent = cpu_sce_bwd_tangent;
    be->softmax_fwd = cpu_softmax_fwd;
    be->softmax_bwd = cpu_softmax_bwd;
    be->softmax_bwd_tangent = cpu_softmax_bwd_tangent;
}
