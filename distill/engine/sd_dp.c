/*
 * sd_dp.c - Poisson sampling, per-sample clipping and Gaussian noise of the
 * DP outer gradient (see sd_dp.h).
 */
#include "sd_dp.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/random.h>

#include "sd_init.h"
#include "sd_weights.h"

enum { DP_STREAM_SAMPLE = 11, DP_STREAM_NOISE = 12 };

int sd_dp_secret_key(uint64_t *key, sd_error *e)
{
    uint8_t b[8];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return sd_error_set(e, SD_EIO, "getrandom: %s", strerror(errno));
        got += (size_t)r;
    }
    memcpy(key, b, sizeof *key);
    return SD_OK;
}

/* A uniform double in [0, 1) with 53 random bits: counter `index` of the
 * stream, keyed by key. */
static double uniform53(uint64_t key, uint32_t stream, uint64_t index)
{
    uint64_t hi = sd_uniform_u32(key, stream, 2 * index),
             lo = sd_uniform_u32(key, stream, 2 * index + 1);
    return (double)(((hi << 21) ^ (lo >> 11)) & ((1ull << 53) - 1)) / 9007199254740992.0;
}

void sd_dp_poisson(uint64_t key, int64_t iter, int64_t n, double q, int64_t *idx, int64_t *count)
{
    int64_t c = 0;
    /* one counter per (iteration, sample): 2^32 samples per iteration */
    for (int64_t i = 0; i < n; i++)
        if (uniform53(key ^ (uint64_t)iter * 0x9E3779B97F4A7C15ull, DP_STREAM_SAMPLE, (uint64_t)i) <
            q)
            idx[c++] = i;
    *count = c;
}

int sd_dp_clip_add(sd_backend *be, size_t n, const sd_real *g, double clip, sd_real *sum,
                   double *norm, sd_error *e)
{
    double sq = 0;
    if (be->dot(be, e, n, g, g, &sq))
        return sd_error_wrap_code(e, SD_EBACKEND, "per-sample gradient norm");
    double nrm = sqrt(sq), scale = nrm > clip ? clip / nrm : 1.0;
    if (norm)
        *norm = nrm;
    if (!isfinite(nrm))
        return sd_error_set(e, SD_EINVAL, "per-sample gradient is not finite");
    if (be->axpy(be, e, n, (sd_real)scale, g, sum))
        return sd_error_wrap_code(e, SD_EBACKEND, "clipped sum");
    return SD_OK;
}

int sd_dp_add_noise(sd_backend *be, size_t n, sd_real *sum, double std, uint64_t key, int64_t iter,
                    float *host, sd_real *tmp, sd_error *e)
{
    uint64_t k = key ^ (uint64_t)iter * 0xD1B54A32D192ED03ull;
    /* the engine's normal numbers (Philox, Box-Muller in double), keyed by
     * the secret key and the iteration */
    for (size_t i = 0; i < n; i++)
        host[i] = (float)(std * sd_normal(k, DP_STREAM_NOISE, i));
    int rc = sd_upload_floats(be, tmp, host, n, e);
    if (rc)
        return rc;
    if (be->axpy(be, e, n, (sd_real)1, tmp, sum))
        return sd_error_wrap_code(e, SD_EBACKEND, "noise");
    return SD_OK;
}

int sd_dp_clipped_sum(sd_exec *ex, sd_backend *be, size_t nt, const sd_real *theta,
                      const sd_real *theta_bn, const sd_real *x, const sd_real *y, int nb,
                      size_t img, int classes, double clip, sd_real *g, sd_real *sum,
                      double *loss_sum, sd_error *e)
{
    for (int i = 0; i < nb; i++) {
        sd_exec_args a = {theta,
                          theta_bn,
                          theta_bn ? SD_BN_FROZEN : SD_BN_BATCH,
                          SD_LABEL_RAW,
                          x + (size_t)i * img,
                          y + (size_t)i * (size_t)classes,
                          1};
        double l = 0;
        if (be->zero(be, e, g, nt * sizeof(sd_real)))
            return sd_error_wrap_code(e, SD_EBACKEND, "zero");
        if (sd_exec_loss_grad(ex, &a, &l, g, NULL, NULL, e))
            return sd_error_wrap_code(e, SD_EBACKEND, "per-sample gradient");
        *loss_sum += l;
        int rc = sd_dp_clip_add(be, nt, g, clip, sum, NULL, e);
        if (rc)
            return rc;
    }
    return SD_OK;
}
