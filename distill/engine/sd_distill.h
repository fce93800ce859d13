/*
 * sd_distill.h - soft-label dataset distillation (the paper's Algorithm 1)
 * and its result, the distilled set a bundle carries, exactly as docs/design.md
 * ("Algorithm") pins them; replay (Algorithm 2) and evaluation are in
 * sd_weights.h, included at the end.
 *
 * The distilled set is S steps of n images with label logits; E epochs over
 * it give T = S*E inner SGD steps, step t using set t mod S with the learned
 * step size alpha_t = softplus(rho_t).  The meta-gradient of the outer loss
 * (hard-label cross-entropy of f(x; theta_T) on a real mini-batch) is exact
 * through all T steps: walking back from v = grad L, each step needs one
 * forward-over-reverse pass (sd_exec_hvp).
 *
 * Real data reach the distiller through sd_data_view, so Fashion-MNIST,
 * folders of PNGs and gastric patches cut on the fly all look the same.
 */
#ifndef SD_DISTILL_H
#define SD_DISTILL_H

#include <stdint.h>
#include <stdio.h>

#include "sd_model.h"

/* A labelled set of samples the distiller can draw batches from. */
typedef struct sd_data_view {
    int64_t count; /* samples */
    int c, h, w;   /* sample shape */
    int classes;
    const char *const *class_names; /* may be NULL */
    /* Write samples idx[0..n) into x (BACKEND memory, n*c*h*w values) and
     * their labels into labels (host).  */
    int (*fetch)(void *ctx, sd_backend *be, const int64_t *idx, int n, sd_real *x, int *labels,
                 sd_error *err);
    void *ctx;
} sd_data_view;

typedef enum sd_label_init {
    SD_LABEL_INIT_ONEHOT = 0, /* image i gets class i mod K (one image per class) */
    SD_LABEL_INIT_CLASS = 1   /* every image gets label_class (SLDD(1) used "N") */
} sd_label_init;

typedef struct sd_distill_config {
    sd_model_spec spec;
    int steps;                 /* S */
    int images_per_step;       /* n */
    int epochs_inner;          /* E */
    int real_batch;            /* K_b, the paper's K */
    sd_label_mode label_param; /* SOFTMAX (default) or RAW targets */
    sd_label_init label_init;
    int label_class;
    int hard_labels;               /* DD baseline: labels fixed, not learned */
    double distill_lr;             /* initial step size alpha_0 (0.01) */
    double lr;                     /* outer Adam learning rate (0.01) */
    double beta1, beta2, adam_eps; /* 0.5, 0.999, 1e-8 */
    int decay_epochs;              /* halve lr every this many epochs (40) */
    double decay_factor;           /* 0.5 */
    int epochs;                    /* outer epochs over the real set (400) */
    int64_t iterations;            /* > 0: this many outer iterations instead of epochs */
    uint64_t seed;                 /* theta_0 seed (and base of every other stream) */
    int nets;                      /* number of fixed initial weights (1) */
    int random_init;               /* draw a fresh theta_0 every iteration */
    sd_bn_mode bn_mode;            /* inner-step batch norm: BATCH (default) or FROZEN */
    double bn_momentum;            /* running theta_bn average for monitoring (0.1) */
    int bn_export_batches;         /* batches averaged for theta_bn at export (20) */
    /* backend memory for keeping the T inner steps' forward and backward state
     * (and gradients) so the walk back runs only the tangent passes; when the
     * T steps need more, they are recomputed there.  0: always recompute.
     * Results are the same either way. (2 GiB) */
    size_t step_cache_bytes;
    /* monitoring */
    int eval_every;       /* validate every this many iterations (0: never) */
    int64_t eval_max;     /* validation samples used (0: all) */
    int checkpoint_every; /* iterations between checkpoints (0: never) */
    const char *checkpoint_path;
    /* differential privacy (sd_dp.h, docs/privacy.md): dp_noise > 0 turns it
     * on - Poisson sampling at q = real_batch / N, per-sample clipping to
     * dp_clip, Gaussian noise of std dp_noise * dp_clip on the sum;
     * validation is off and theta_bn comes from the synthetic images.
     * dp_delta is the delta of the epsilon the progress reports. */
    double dp_noise, dp_clip, dp_delta;
} sd_distill_config;

void sd_distill_config_defaults(sd_distill_config *cfg);

/* The distilled result: what a bundle carries. Host memory. */
typedef struct sd_distilled {
    sd_model_spec spec;
    uint64_t seed;
    uint8_t theta0_sha256[32];
    int steps, images_per_step, epochs_inner;
    sd_bn_mode bn_mode;
    sd_label_mode label_param;
    float *images;     /* S*n*c*h*w, normalised input space */
    float *labels;     /* S*n*K label values (logits for SOFTMAX) */
    float *step_sizes; /* T = S*E learned alpha_t (> 0) */
    float *theta_bn;   /* model n_bn: per BN layer mean (c) then biased var (c) */
    size_t n_bn;
} sd_distilled;

void sd_distilled_free(sd_distilled *d);
size_t sd_distilled_image_count(const sd_distilled *d); /* S*n */

/* Progress, called after each outer iteration and after each validation. */
typedef struct sd_progress {
    int64_t iter, total;
    int epoch;
    double loss; /* outer loss of this iteration */
    double lr;
    double seconds; /* since start (this run) */
    double eta_seconds;
    int evaluated; /* val_acc valid */
    double val_acc;
    const float *step_sizes; /* current alpha (host), T of them */
    int n_steps;
    int64_t dp_batch; /* DP runs: this iteration's Poisson batch size (the
                           * caller accounts epsilon with sd_rdp.h) */
} sd_progress;
typedef int (*sd_progress_fn)(void *ctx, const sd_progress *p); /* non-zero: cancel */

typedef struct sd_distiller sd_distiller;

/* Create a distiller; resume_path (may be NULL) continues from a checkpoint
 * written by an earlier run with the same configuration and data. */
int sd_distiller_create(sd_distiller **out, const sd_distill_config *cfg, sd_backend *be,
                        const sd_data_view *train, const sd_data_view *val, const char *resume_path,
                        sd_error *err) SD_WUR;
void sd_distiller_destroy(sd_distiller *d);
/* Run to the configured end (or until progress returns non-zero: SD_ECANCELED,
 * after writing a checkpoint when one is configured). */
int sd_distiller_run(sd_distiller *d, sd_progress_fn progress, void *progress_ctx) SD_WUR;
/* Export: replays, recomputes theta_bn over real batches and fills *out. */
int sd_distiller_export(sd_distiller *d, sd_distilled *out) SD_WUR;
sd_error *sd_distiller_error(sd_distiller *d);
/* Current distilled data (host): images S*n*c*h*w, label values S*n*K and
 * step parameters rho (T; alpha = softplus(rho)).  Any pointer may be NULL. */
int sd_distiller_get(sd_distiller *d, float *x, float *y, double *rho) SD_WUR;
int sd_distiller_set(sd_distiller *d, const float *x, const float *y, const double *rho) SD_WUR;
/* Replace the first fixed theta_0 (host, n_theta values), e.g. to start from
 * weights exported to a reference implementation. */
int sd_distiller_set_theta0(sd_distiller *d, const float *theta0) SD_WUR;
/* The outer loss of the current iteration's real batch and its exact
 * meta-gradient with respect to images, labels and rho, without updating
 * anything (for tests and reference comparisons). */
int sd_distiller_meta_gradient(sd_distiller *d, double *loss, float *gx, float *gy,
                               double *grho) SD_WUR;
/* Backend pointers to the images (S*n*c*h*w) and label values (S*n*K), for
 * tests that must perturb them in the engine's own precision. */
void sd_distiller_data_ptr(sd_distiller *d, sd_real **x, sd_real **y);
/* Model, for pictures and tests */
const sd_model *sd_distiller_model(const sd_distiller *d);
int64_t sd_distiller_iteration(const sd_distiller *d);

/* Replay (Algorithm 2), theta_bn recomputation and evaluation work on the
 * weights object (model, theta, theta_bn on a backend): */
#include "sd_weights.h"

#endif
