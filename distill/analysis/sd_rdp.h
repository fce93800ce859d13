/*
 * sd_rdp.h - the privacy accountant of differentially private distillation:
 * Rényi differential privacy (RDP) of the Poisson-subsampled Gaussian
 * mechanism, composed over iterations and converted to (epsilon, delta).
 *
 * One outer iteration of DP distillation is a subsampled Gaussian mechanism:
 * each real sample joins the batch with probability q, each sample's gradient
 * is clipped to norm C, the sum gets N(0, sigma^2 C^2 I) added.  With
 * add/remove-one neighbouring data sets its RDP at order alpha is
 *
 *   eps_RDP(alpha) = log A_alpha / (alpha - 1),
 *   A_alpha = E_{z ~ N(0, sigma^2)} [ ((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha ]
 *
 * (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the Sampled
 * Gaussian Mechanism", Sections 3.2-3.3): for integer alpha the exact finite
 * binomial sum, for fractional alpha the two convergent series split at
 * z0 = sigma^2 log(1/q - 1) + 1/2, all in log space.  RDP composes by
 * addition at each order.  The conversion to (epsilon, delta) is the tighter
 * one of Balle et al. 2020 (Theorem 21) / Canonne, Kamath, Steinke 2020:
 *
 *   epsilon = min_alpha  eps_RDP(alpha) + log((alpha-1)/alpha)
 *                        - (log delta + log alpha) / (alpha - 1).
 *
 * Every figure the node states about a DP release comes from here, and
 * tests/distill/test_rdp.c checks it against an independent numerical
 * integration (scripts/ref/rdp-oracle.py) and against published DP-SGD
 * figures (docs/privacy.md).
 */
#ifndef SD_RDP_H
#define SD_RDP_H

#include <stdint.h>

#include "sd_error.h"

#define SD_RDP_ACCOUNTANT "rdp-sgm-mtz19-bkmt20"
#define SD_RDP_VERSION    1

/* The fixed grid of orders the node composes on (ledgers store one RDP
 * value per order of this grid, so releases compose by adding vectors). */
#define SD_RDP_NORDERS 79
extern const double sd_rdp_orders[SD_RDP_NORDERS];

/* RDP of ONE step of the Poisson-subsampled Gaussian mechanism (sensitivity
 * 1, noise multiplier sigma, sampling rate q) at order alpha > 1.
 * q in [0, 1], sigma > 0.  SD_EINVAL for bad arguments. */
int sd_rdp_sgm(double q, double sigma, double alpha, double *rdp, sd_error *e) SD_WUR;

/* The RDP curve of `steps` compositions on sd_rdp_orders (rdp[SD_RDP_NORDERS]). */
int sd_rdp_curve(double q, double sigma, int64_t steps, double *rdp, sd_error *e) SD_WUR;

/* (epsilon, delta) from an RDP curve on `orders` (n values): the tight
 * conversion above; *order gets the minimising order (may be NULL).
 * Returns +inf when no order gives a finite value. */
double sd_rdp_to_epsilon(const double *orders, const double *rdp, int n, double delta,
                         double *order);
/* The classic conversion (Mironov 2017, Proposition 3):
 * epsilon = min_alpha eps_RDP(alpha) + log(1/delta) / (alpha - 1).
 * Only for comparing with figures published with it. */
double sd_rdp_to_epsilon_classic(const double *orders, const double *rdp, int n, double delta,
                                 double *order);

/* epsilon after `steps` iterations whose ONE-iteration curve on
 * sd_rdp_orders is rdp_one (RDP composes by addition): what a progress line
 * prints without running the accountant again.  +inf when no order bounds it. */
double sd_rdp_epsilon_after(const double *rdp_one, int64_t steps, double delta);

/* epsilon after `steps` iterations at (q, sigma), for delta. */
int sd_rdp_epsilon(double q, double sigma, int64_t steps, double delta, double *epsilon,
                   double *order, sd_error *e) SD_WUR;

/* The smallest noise multiplier sigma (to relative 1e-6) whose epsilon after
 * `steps` iterations at rate q is at most target_epsilon for delta.
 * SD_EINVAL when no sigma up to 1e4 reaches it. */
int sd_rdp_solve_sigma(double q, int64_t steps, double delta, double target_epsilon, double *sigma,
                       sd_error *e) SD_WUR;

#endif
