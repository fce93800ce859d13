/*
 * nd_weights.h - the trained-weights file written by `sldd train` and read
 * by `sldd detect --weights` / `sldd evaluate --weights` (docs/detection.md).
 *
 * A payload carries a distilled set that a receiver replays into weights; a
 * weights file carries the weights themselves (theta and theta_bn), with the
 * model spec and the input geometry and normalisation the model was trained
 * with, so a trained baseline can be used exactly like a replayed payload.
 * It is a local artefact: unsigned, never sent to peers.
 *
 * Layout (all integers and floats little-endian):
 *   "SLDDWTS1"                       8-byte magic (format version 1)
 *   u32 header_len                   <= 65536
 *   header_len bytes of text         "key=value\n" lines, UTF-8 (see below)
 *   f32 theta[n_theta]               parameter order of sd_model.h
 *   f32 theta_bn[n_bn]               per BN layer: mean (c) then biased var (c)
 *   32 bytes SHA-256                 of every byte before it
 * Header keys: arch, bn, depth, width, in_c, in_h, in_w, classes, n_theta,
 * n_bn (required); norm_mean, norm_std, patch, stride, patch_resize,
 * synthetic, seed, init, source, data, trained, task (optional; unknown keys
 * are kept in the file but ignored on reading).  task is written only for a
 * task other than gastric: "NAME|OUTSIDE|LABEL,LABEL,..." (OUTSIDE empty when
 * the task has no region-outside class; sd_task.h).
 *
 * source says where the weights come from: "training" (`sldd train`, the
 * default when absent) or "payload" (theta_opt replayed from a bundle's
 * payload, which a node stores at import; `data` then names the bundle and
 * `trained` says what was replayed).  The same bytes can live in a file or
 * in the node's object store (nd_weights_encode / nd_weights_decode).
 */
#ifndef ND_WEIGHTS_H
#define ND_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "sd_model.h"
#include "sd_task.h"

#define ND_WEIGHTS_MAGIC     "SLDDWTS1"
#define ND_WEIGHTS_MAX_BYTES ((size_t)2 << 30) /* 2 GiB: VGG19 needs 560 MB */

typedef struct nd_weights {
    sd_model_spec spec;
    float *theta; /* n_theta */
    size_t n_theta;
    float *theta_bn; /* n_bn (may be NULL when 0) */
    size_t n_bn;
    double norm_mean, norm_std;                 /* input normalisation ([0,1] scale) */
    int patch_size, patch_stride, patch_resize; /* 0: not patch data (Fashion-MNIST) */
    int synthetic;                              /* trained on synthetic data */
    uint64_t seed;                              /* seed of theta_0 it started from */
    char source[16];                            /* "training" or "payload" */
    char data[256];                             /* what it was trained on */
    char trained[256];                          /* how (optimizer, lr, epochs, ...) */
    sd_task task;                               /* labels == 0: the gastric task */
} nd_weights;

/* w as file bytes (*out malloc'ed, *len).  0 or -1 with err. */
int nd_weights_encode(const nd_weights *w, uint8_t **out, size_t *len, sd_error *err);
/* Check and read file bytes (what nd_weights_read does after reading the
 * file); name prefixes the messages.  0 or -1 with err. */
int nd_weights_decode(const uint8_t *buf, size_t len, const char *name, nd_weights *w,
                      sd_error *err);

/* Write w to path (temp file + fsync + rename).  0 or -1 with err. */
int nd_weights_write(const char *path, const nd_weights *w, sd_error *err);

/* Read and check path: magic, header, sizes, SHA-256, that the spec builds
 * a model with exactly n_theta / n_bn values, finite values and positive
 * variances.  w is filled (free with nd_weights_free).  0 or -1 with err. */
int nd_weights_read(const char *path, nd_weights *w, sd_error *err);

void nd_weights_free(nd_weights *w);

#endif
