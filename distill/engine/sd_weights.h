/*
 * sd_weights.h - a model with its weights on one backend: the network
 * (sd_model), theta and theta_bn (batch-norm running statistics, per BN layer
 * mean then biased variance).  It is what replay (Algorithm 2), training and
 * weights files produce, and what evaluation, detection and the privacy
 * audit consume, so that theta_bn is uploaded in one place
 * (sd_theta_bn_upload) and a payload is replayed only where a caller asks
 * for it (sd_weights_replay; sd_debug_replay_count counts them).
 *
 * Also here: the host <-> backend float transfers the engine shares, the
 * upload of theta_0 for a seed, theta_bn recomputation over real batches and
 * evaluation on labelled data.
 */
#ifndef SD_WEIGHTS_H
#define SD_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "sd_distill.h"
#include "sd_model.h"

typedef struct sd_weights {
    sd_backend *be;       /* borrowed: outlives the weights */
    sd_model *m;          /* owned */
    sd_real *theta;       /* backend memory, m->n_theta */
    sd_real *theta_bn;    /* backend memory, m->n_bn (one zero value without BN) */
    float *theta_bn_host; /* host copy of theta_bn, m->n_bn (NULL without BN) */
} sd_weights;

/* ---- the engine's host <-> backend transfers ---- */

/* Allocate elems values (at least one) of backend memory, zeroed. */
int sd_dev_alloc(sd_backend *be, size_t elems, sd_real **out, sd_error *err) SD_WUR;
/* host float32 -> backend sd_real, n values */
int sd_upload_floats(sd_backend *be, sd_real *dst, const float *src, size_t n,
                     sd_error *err) SD_WUR;
/* backend sd_real -> host float32, n values */
int sd_download_floats(sd_backend *be, float *dst, const sd_real *src, size_t n,
                       sd_error *err) SD_WUR;
/* theta_0 of m for seed (sd_init.h) into dst (backend, n_theta); sha (may be
 * NULL) gets its SHA-256. */
int sd_theta0_upload(const sd_model *m, sd_backend *be, uint64_t seed, sd_real *dst,
                     uint8_t sha[32], sd_error *err) SD_WUR;

/* The one upload of theta_bn (host float32, n values, may be NULL when n is
 * 0) into backend memory dst; every consumer of theta_bn goes through it. */
int sd_theta_bn_upload(sd_backend *be, sd_real *dst, const float *theta_bn, size_t n,
                       sd_error *err) SD_WUR;

/* ---- the weights object ---- */

/* Model of spec on be with theta and theta_bn zero. */
int sd_weights_create(sd_weights **out, const sd_model_spec *spec, sd_backend *be,
                      sd_error *err) SD_WUR;
/* From host values (weights files): theta (n_theta float32) and theta_bn
 * (n_bn float32; NULL when the model has no BN). */
int sd_weights_from_host(sd_weights **out, const sd_model_spec *spec, sd_backend *be,
                         const float *theta, const float *theta_bn, sd_error *err) SD_WUR;
/* From theta already in be's memory (copied; training) and theta_bn (host). */
int sd_weights_from_backend(sd_weights **out, const sd_model_spec *spec, sd_backend *be,
                            const sd_real *theta, const float *theta_bn, sd_error *err) SD_WUR;
/* Replace theta_bn (host, m->n_bn values) on the backend and the host copy. */
int sd_weights_set_theta_bn(sd_weights *w, const float *theta_bn, sd_error *err) SD_WUR;
/* theta to the host (float32, m->n_theta values). */
int sd_weights_download(const sd_weights *w, float *theta, sd_error *err) SD_WUR;
void sd_weights_destroy(sd_weights *w); /* accepts NULL */

/* ---- replay (Algorithm 2) ---- */

/* theta_opt of a distilled set: rebuild theta_0 from the seed, check its
 * hash (SD_EHASH when it differs from d->theta0_sha256), replay the T steps
 * in order and pair theta_T with the set's theta_bn. */
int sd_weights_replay(sd_weights **out, const sd_distilled *d, sd_backend *be,
                      sd_error *err) SD_WUR;

/* The same replay, giving the model and theta_T (backend memory, allocated;
 * free with be->free) without theta_bn. */
int sd_replay(const sd_distilled *d, sd_backend *be, sd_model **model_out, sd_real **theta_out,
              sd_error *err) SD_WUR;

/* Replays run by this process so far (both entry points above), for tests
 * that check a path does not replay. */
uint64_t sd_debug_replay_count(void);

/* Recompute theta_bn (host, model n_bn values) at theta over `batches` real
 * batches of size bsz drawn deterministically from data. */
int sd_bn_recompute(const sd_model *m, sd_backend *be, const sd_real *theta,
                    const sd_data_view *data, int batches, int bsz, uint64_t seed, float *bn_out,
                    sd_error *err) SD_WUR;

/* ---- evaluation ---- */

/* Accuracy of w on labelled data (the first max samples; 0: all), the
 * confusion matrix (K*K, row = truth, host, may be NULL) and predictions
 * (count, may be NULL). */
int sd_weights_evaluate(const sd_weights *w, const sd_data_view *data, int64_t max,
                        double *accuracy, int64_t *confusion, int *predictions,
                        sd_error *err) SD_WUR;

/* The same for a model, theta (backend) and theta_bn (host, may be NULL
 * without BN) not held in an sd_weights. */
int sd_evaluate(const sd_model *m, sd_backend *be, const sd_real *theta, const float *theta_bn,
                const sd_data_view *data, int64_t max, double *accuracy, int64_t *confusion,
                int *predictions, sd_error *err) SD_WUR;

#endif
