/*
 * sd_bn_join.c - joining the per-channel batch-norm sums of batch shards
 * (sd_bn_join, declared in sd_backend.h).
 *
 * A batch-mode batch norm run as batch shards (sd_exec_run.c) needs the
 * statistics of the whole batch; each shard computes its own sums
 * (be->bn_partial) and this joins them, always in shard order, so the joined
 * numbers depend on the shard split (fixed by the batch size) and never on
 * which thread ran which shard.  Host arithmetic in double; no backend call.
 */
#include "sd_backend.h"

static int bn_op_sums(sd_bn_op op)
{
    return op == SD_BN_OP_BWD_TANGENT ? 7 : 2;
}

/* FWD: shard s has n_s values, mean m_s = sum_s / n_s and M2_s = sum of
 * squared deviations from m_s.  Merging (n, mean, M2) with shard s:
 *   d = m_s - mean,  n' = n + n_s,  mean' = mean + d n_s / n',
 *   M2' = M2 + M2_s + d^2 n n_s / n'
 * which is exact algebra and stable for any split (no sum of squares minus
 * square of sums). */
static void join_fwd(int c, const double *const *parts, const double *count, int P, double *sums)
{
    for (int ch = 0; ch < c; ch++) {
        double n = 0, mean = 0, m2 = 0;
        for (int s = 0; s < P; s++) {
            double ns = count[s];
            if (!(ns > 0))
                continue;
            const double *p = parts[s] + (size_t)ch * SD_BN_SUMS;
            double ms = p[0] / ns;
            if (n == 0) {
                mean = ms;
                m2 = p[1];
            } else {
                double d = ms - mean, nn = n + ns;
                mean += d * ns / nn;
                m2 += p[1] + d * d * n * ns / nn;
            }
            n += ns;
        }
        sums[(size_t)ch * SD_BN_SUMS] = mean;
        sums[(size_t)ch * SD_BN_SUMS + 1] = m2;
    }
}

void sd_bn_join(sd_bn_op op, int c, const double *const *parts, const double *count, int P,
                double *sums)
{
    if (op == SD_BN_OP_FWD) {
        join_fwd(c, parts, count, P, sums);
        return;
    }
    int k = bn_op_sums(op);
    for (int ch = 0; ch < c; ch++) {
        double *o = sums + (size_t)ch * SD_BN_SUMS;
        int first = 1;
        for (int s = 0; s < P; s++) {
            if (!(count[s] > 0))
                continue;
            const double *p = parts[s] + (size_t)ch * SD_BN_SUMS;
            for (int j = 0; j < k; j++)
                o[j] = first ? p[j] : o[j] + p[j];
            first = 0;
        }
        if (first)
            for (int j = 0; j < k; j++)
                o[j] = 0;
    }
}
