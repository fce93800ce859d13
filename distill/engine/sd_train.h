/*
 * sd_train.h - ordinary training of a model on real samples: the baselines
 * the paper compares distillation with ("ResNet18 (9000)": the same network
 * trained on N random real patches per class, and networks trained on the
 * full data).
 *
 * Training starts from weights the caller supplies (normally theta_0 from
 * sd_init_theta, so a trained model and a distilled set start from the same
 * point), uses hard-label cross-entropy, mini-batches drawn by a seeded
 * shuffle each epoch, and SGD with momentum or Adam.  Batch-norm layers
 * normalise with the statistics of each training batch (SD_BN_BATCH, as the
 * inner steps of distillation do); at the end theta_bn is recomputed over
 * real batches exactly as sd_distiller_export does, so a trained model and a
 * replayed distilled one are evaluated the same way.
 *
 * Dropout layers (AlexNet, VGG) are inactive here as everywhere in sd_exec:
 * the comparison with distillation, whose inner steps have no dropout,
 * stays like for like.
 */
#ifndef SD_TRAIN_H
#define SD_TRAIN_H

#include <stdint.h>

#include "sd_distill.h"

typedef enum sd_optimizer {
    SD_OPT_SGD = 0, /* SGD with (PyTorch-style) momentum */
    SD_OPT_ADAM = 1
} sd_optimizer;

typedef struct sd_train_config {
    sd_optimizer optimizer;
    double lr;                     /* learning rate (sd_train_config_defaults: 0.01) */
    double momentum;               /* SGD: buf = momentum*buf + g; theta -= lr*buf (0.9) */
    double weight_decay;           /* L2: g += weight_decay*theta before the step (0) */
    double beta1, beta2, adam_eps; /* Adam (0.9, 0.999, 1e-8) */
    int epochs;                    /* passes over the training samples (10) */
    int batch;                     /* samples per step (64); the last partial batch of an
                             epoch is dropped unless it is the only one */
    int decay_epochs;    /* multiply lr by decay_factor every this many epochs (0: never) */
    double decay_factor; /* 0.1 */
    int64_t max_steps;   /* > 0: stop after this many steps (0: no limit) */
    uint64_t seed;       /* shuffle order, theta_bn batches */
    int bn_batches;      /* theta_bn: real batches averaged after training (20) */
    int bn_batch;        /* their size (256) */
} sd_train_config;

void sd_train_config_defaults(sd_train_config *cfg);

typedef struct sd_train_progress {
    int64_t step, steps; /* steps done / planned */
    int epoch, epochs;   /* current epoch (1-based) */
    int epoch_done;      /* this step ended an epoch */
    double loss;         /* loss of this step's batch */
    double epoch_loss;   /* mean batch loss of the epoch so far */
    double lr;
    double seconds; /* since the start */
} sd_train_progress;
typedef int (*sd_train_progress_fn)(void *ctx, const sd_train_progress *p); /* non-zero: cancel */

/* Train theta (backend memory, m->n_theta values, updated in place) on every
 * sample of data with hard labels; then write theta_bn (host, m->n_bn values;
 * may be NULL when m has no BN) recomputed over real batches.  progress may
 * be NULL.  SD_ECANCELED when progress asked to stop. */
int sd_train(const sd_model *m, sd_backend *be, const sd_data_view *data,
             const sd_train_config *cfg, sd_real *theta, float *bn_out,
             sd_train_progress_fn progress, void *progress_ctx, sd_error *err) SD_WUR;

/* A class-balanced random subset: up to per_class samples of every class
 * 0..classes-1 (all of a class when it has fewer), drawn without
 * replacement, deterministic from seed.  *idx_out (malloc'ed, ascending
 * sample indices) gets *n_out entries; counts_out (classes entries, may be
 * NULL) gets how many of each class were taken.  Labels outside
 * 0..classes-1 are refused. */
int sd_train_balanced_subset(const int32_t *labels, int64_t count, int classes, int64_t per_class,
                             uint64_t seed, int64_t **idx_out, int64_t *n_out, int64_t *counts_out,
                             sd_error *err) SD_WUR;

#endif
