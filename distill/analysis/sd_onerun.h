/*
 * sd_onerun.h - the statistics of a one-run membership audit (Steinke, Nasr,
 * Jagielski 2023, "Privacy auditing with one (1) training run").
 *
 * m canaries are each put into the training data independently with
 * probability 1/2; after ONE training (here: one distillation and the
 * rebuild of theta_opt) every canary gets a score (higher: "looks like a
 * member", e.g. minus its loss under theta_opt).  The auditor guesses
 * "member" for the k_pos highest scores, "non-member" for the k_neg lowest
 * and abstains on the rest; W correct guesses out of r = k_pos + k_neg.
 *
 * If training is (epsilon, delta)-DP, W is dominated by
 * Binomial(r, e^eps / (1 + e^eps)) up to a delta term (their Theorem 3.1 and
 * the p-value computation of their appendix).  The empirical lower bound on
 * epsilon at confidence 1 - beta is the largest epsilon that this p-value
 * still rejects; the auditor tries a grid of (k_pos, k_neg) and, to pay for
 * that choice, divides beta by the number of guesses tried (Bonferroni).
 *
 * Alongside it, the usual membership-inference summaries with percentile
 * bootstrap intervals: the AUC of the scores and the TPR at FPR 1 %.
 */
#ifndef SD_ONERUN_H
#define SD_ONERUN_H

#include <stdint.h>

#include "sd_error.h"

/* The p-value of observing >= v correct out of r guesses among m canaries
 * if training were (eps, delta)-DP. */
double sd_onerun_pvalue(int m, int r, int v, double eps, double delta);

/* The largest eps (to 1e-4, in [0, 50]) with p-value <= beta for (m, r, v):
 * the lower bound from one guess.  0 when even eps = 0 is not rejected. */
double sd_onerun_eps_lower(int m, int r, int v, double delta, double beta);

typedef struct sd_onerun_result {
    double eps_lower;              /* empirical epsilon lower bound at confidence 1 - beta */
    int k_pos, k_neg;              /* the guess that gave it */
    int correct;                   /* its correct guesses */
    double auc, auc_lo, auc_hi;    /* AUC and its 95 % bootstrap interval */
    double tpr1, tpr1_lo, tpr1_hi; /* TPR at FPR <= 1 % and its interval */
} sd_onerun_result;

/* The audit of m canaries: member[i] in {0,1} (was canary i trained on),
 * score[i] (higher: more member-like).  delta as accounted (0 for a run
 * without DP), beta = 0.05 for 95 % confidence; `boot` bootstrap resamples
 * drawn with `seed` (0: no intervals).  SD_EINVAL when either class is
 * empty. */
int sd_onerun_audit(const int *member, const double *score, int m, double delta, double beta,
                    int boot, uint64_t seed, sd_onerun_result *out, sd_error *e) SD_WUR;

/* AUC (ties count one half) and TPR at FPR <= fpr of scores. */
double sd_onerun_auc(const int *member, const double *score, int m);
double sd_onerun_tpr_at(const int *member, const double *score, int m, double fpr);

#endif
