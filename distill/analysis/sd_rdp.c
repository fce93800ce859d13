/*
 * sd_rdp.c - RDP accountant of the Poisson-subsampled Gaussian mechanism
 * (see sd_rdp.h for the formulas and their sources).
 *
 * Everything is computed in double precision and in log space: the terms of
 * A_alpha grow like exp(k^2 / (2 sigma^2)) before the binomial weights and
 * the Gaussian tails bring them down, so plain sums overflow for small sigma
 * and large orders.  Signed series (fractional orders) keep their positive
 * and negative parts as two log-sums and subtract once at the end.
 */
#include "sd_rdp.h"

#include <float.h>
#include <math.h>

const double sd_rdp_orders[SD_RDP_NORDERS] = {
    1.1,  1.2, 1.3,  1.4, 1.5,  1.6, 1.7,  1.8, 1.9,  2,   2.25, 2.5, 2.75, 3,   3.25, 3.5,
    3.75, 4,   4.25, 4.5, 4.75, 5,   5.25, 5.5, 5.75, 6,   6.5,  7,   7.5,  8,   8.5,  9,
    9.5,  10,  10.5, 11,  11.5, 12,  13,   14,  15,   16,  17,   18,  19,   20,  21,   22,
    23,   24,  25,   26,  27,   28,  29,   30,  31,   32,  36,   40,  44,   48,  52,   56,
    60,   64,  72,   80,  96,   112, 128,  160, 192,  256, 320,  384, 512,  768, 1024};

/* log(exp(a) + exp(b)) with -inf as the log of zero. */
static double log_add(double a, double b)
{
    double hi = a > b ? a : b, lo = a > b ? b : a;
    if (hi == -INFINITY)
        return -INFINITY;
    return hi + log1p(exp(lo - hi));
}

/* log erfc(x): the library erfc while it is representable, the asymptotic
 * series (relative error below 1e-11 from x = 20 on) beyond. */
static double log_erfc(double x)
{
    if (x < 20.0)
        return log(erfc(x));
    double r = 1.0 / (x * x);
    double s =
        1.0 - r / 2.0 + 3.0 * r * r / 4.0 - 15.0 * r * r * r / 8.0 + 105.0 * r * r * r * r / 16.0;
    return -x * x - log(x) - 0.5 * log(M_PI) + log(s);
}

/* log A_alpha for integer alpha: the finite binomial sum (MTZ19, Sec. 3.2). */
static double log_a_int(double q, double sigma, long alpha)
{
    double acc = -INFINITY, logc = 0.0; /* log C(alpha, k) */
    double lq = log(q), l1q = log1p(-q), s2 = 2.0 * sigma * sigma;
    for (long k = 0; k <= alpha; k++) {
        if (k > 0)
            logc += log((double)(alpha - k + 1)) - log((double)k);
        double kk = (double)k;
        acc = log_add(acc, logc + kk * lq + (double)(alpha - k) * l1q + (kk * kk - kk) / s2);
    }
    return acc;
}

/* log A_alpha for fractional alpha: the two series split at z0 (MTZ19,
 * Sec. 3.3).  Returns NaN when the series does not settle. */
static double log_a_frac(double q, double sigma, double alpha)
{
    double pos = -INFINITY, neg = -INFINITY;
    double lq = log(q), l1q = log1p(-q), s2 = 2.0 * sigma * sigma;
    double z0 = sigma * sigma * log(1.0 / q - 1.0) + 0.5;
    double logc = 0.0;
    int sign = 1;
    for (long i = 0; i < 1000000; i++) {
        if (i > 0) {
            double f = alpha - (double)i + 1.0; /* C(a,i) = C(a,i-1) (a-i+1)/i */
            if (f == 0.0)
                break; /* cannot happen for fractional alpha */
            logc += log(fabs(f)) - log((double)i);
            if (f < 0)
                sign = -sign;
        }
        double ii = (double)i, j = alpha - ii;
        double t0 = logc + ii * lq + j * l1q + (ii * ii - ii) / s2 + log(0.5) +
                    log_erfc((ii - z0) / (M_SQRT2 * sigma));
        double t1 = logc + j * lq + ii * l1q + (j * j - j) / s2 + log(0.5) +
                    log_erfc((z0 - j) / (M_SQRT2 * sigma));
        if (sign > 0) {
            pos = log_add(pos, t0);
            pos = log_add(pos, t1);
        } else {
            neg = log_add(neg, t0);
            neg = log_add(neg, t1);
        }
        /* Past alpha the terms shrink; A_alpha >= 1, so exp(-40) is far below
         * double precision of the sum. */
        if (ii > alpha && (t0 > t1 ? t0 : t1) < -40.0)
            return neg == -INFINITY ? pos : pos + log1p(-exp(neg - pos));
    }
    return NAN;
}

int sd_rdp_sgm(double q, double sigma, double alpha, double *rdp, sd_error *e)
{
    if (!(q >= 0.0 && q <= 1.0) || !(sigma > 0.0) || !(alpha > 1.0) || !isfinite(alpha) ||
        !isfinite(sigma))
        return sd_error_set(e, SD_EINVAL,
                            "RDP needs 0 <= q <= 1, sigma > 0 and an order above 1 "
                            "(q %g, sigma %g, order %g)",
                            q, sigma, alpha);
    if (q == 0.0) {
        *rdp = 0.0;
        return 0;
    }
    if (q == 1.0) { /* the plain Gaussian mechanism */
        *rdp = alpha / (2.0 * sigma * sigma);
        return 0;
    }
    double la;
    if (alpha == floor(alpha) && alpha <= 1e6)
        la = log_a_int(q, sigma, (long)alpha);
    else
        la = log_a_frac(q, sigma, alpha);
    if (!isfinite(la))
        return sd_error_set(e, SD_EINVAL, "RDP series did not converge (q %g, sigma %g, order %g)",
                            q, sigma, alpha);
    /* Rounding can leave log A a hair below 0 when A - 1 is below 1e-16;
     * the true value is >= 0. */
    *rdp = (la > 0.0 ? la : 0.0) / (alpha - 1.0);
    return 0;
}

int sd_rdp_curve(double q, double sigma, int64_t steps, double *rdp, sd_error *e)
{
    if (steps < 0)
        return sd_error_set(e, SD_EINVAL, "negative step count %lld", (long long)steps);
    for (int i = 0; i < SD_RDP_NORDERS; i++) {
        int rc = sd_rdp_sgm(q, sigma, sd_rdp_orders[i], &rdp[i], e);
        if (rc)
            return rc;
        rdp[i] *= (double)steps;
    }
    return 0;
}

double sd_rdp_to_epsilon(const double *orders, const double *rdp, int n, double delta,
                         double *order)
{
    double best = INFINITY, best_order = NAN;
    for (int i = 0; i < n; i++) {
        double a = orders[i];
        if (!(a > 1.0) || !isfinite(rdp[i]))
            continue;
        double eps = rdp[i] + log((a - 1.0) / a) - (log(delta) + log(a)) / (a - 1.0);
        if (eps < 0.0)
            eps = 0.0;
        if (eps < best) {
            best = eps;
            best_order = a;
        }
    }
    if (order)
        *order = best_order;
    return best;
}

double sd_rdp_to_epsilon_classic(const double *orders, const double *rdp, int n, double delta,
                                 double *order)
{
    double best = INFINITY, best_order = NAN;
    for (int i = 0; i < n; i++) {
        double a = orders[i];
        if (!(a > 1.0) || !isfinite(rdp[i]))
            continue;
        double eps = rdp[i] - log(delta) / (a - 1.0);
        if (eps < best) {
            best = eps;
            best_order = a;
        }
    }
    if (order)
        *order = best_order;
    return best;
}

int sd_rdp_epsilon(double q, double sigma, int64_t steps, double delta, double *epsilon,
                   double *order, sd_error *e)
{
    double rdp[SD_RDP_NORDERS];
    if (!(delta > 0.0 && delta < 1.0))
        return sd_error_set(e, SD_EINVAL, "delta must lie in (0, 1), not %g", delta);
    int rc = sd_rdp_curve(q, sigma, steps, rdp, e);
    if (rc)
        return rc;
    *epsilon = sd_rdp_to_epsilon(sd_rdp_orders, rdp, SD_RDP_NORDERS, delta, order);
    return 0;
}

int sd_rdp_solve_sigma(double q, int64_t steps, double delta, double target_epsilon, double *sigma,
                       sd_error *e)
{
    double lo = 0.05, hi = 1e4, eps;
    int rc;
    if (!(target_epsilon > 0.0) || !isfinite(target_epsilon))
        return sd_error_set(e, SD_EINVAL, "target epsilon must be positive, not %g",
                            target_epsilon);
    if ((rc = sd_rdp_epsilon(q, hi, steps, delta, &eps, NULL, e)))
        return rc;
    if (eps > target_epsilon)
        return sd_error_set(e, SD_EINVAL,
                            "epsilon %g is out of reach: even sigma = %g gives %g after %lld "
                            "iterations at q = %g",
                            target_epsilon, hi, eps, (long long)steps, q);
    if ((rc = sd_rdp_epsilon(q, lo, steps, delta, &eps, NULL, e)))
        return rc;
    if (eps <= target_epsilon) {
        *sigma = lo;
        return 0;
    }
    /* epsilon falls as sigma grows: bisect in log sigma. */
    while (hi / lo > 1.0 + 1e-7) {
        double mid = sqrt(lo * hi);
        if ((rc = sd_rdp_epsilon(q, mid, steps, delta, &eps, NULL, e)))
            return rc;
        if (eps > target_epsilon)
            lo = mid;
        else
            hi = mid;
    }
    *sigma = hi;
    return 0;
}

double sd_rdp_epsilon_after(const double *rdp_one, int64_t steps, double delta)
{
    double rdp[SD_RDP_NORDERS];
    for (int k = 0; k < SD_RDP_NORDERS; k++)
        rdp[k] = rdp_one[k] * (double)steps;
    return sd_rdp_to_epsilon(sd_rdp_orders, rdp, SD_RDP_NORDERS, delta, NULL);
}
