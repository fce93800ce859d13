/*
 * sd_exec_impl.h - the executor's state, shared by its two files:
 * sd_model.c (graphs, creating and destroying execs and their slots) and
 * sd_exec_run.c (running calls: the passes, the loss, batch shards).
 * Internal to distill/engine; callers use sd_model.h.
 */
#ifndef SD_EXEC_IMPL_H
#define SD_EXEC_IMPL_H

#include "sd_model.h"

/* Shards: at most this many, of at least SD_EXEC_SHARD_MIN samples each.
 * The maximum can be set at build time (-DSD_EXEC_MAX_SHARDS=N) to study how
 * results move with the summation order alone (docs/experiments.md). */
#ifndef SD_EXEC_MAX_SHARDS
#define SD_EXEC_MAX_SHARDS 8
#endif
#define SD_EXEC_SHARD_MIN 4

/* The state one forward and backward leave behind: per-layer outputs,
 * their gradients, what each layer saved, the targets and the softmax. */
typedef struct exec_slot {
    sd_real **y, **g, **saved;
    sd_real *q;        /* (nmax, classes) targets */
    sd_real *p;        /* (nmax, classes) softmax of logits */
    sd_exec_args args; /* of the backward this slot holds, when has_backward */
    int has_backward;
} exec_slot;

struct sd_exec {
    const sd_model *m;
    sd_backend *be;
    int nmax;
    unsigned flags;
    int nslots, cur;
    exec_slot *slots;
    /* the current slot's buffers (aliases into slots[cur]) */
    sd_real **y, **g, **saved;
    sd_real *q, *p;
    /* shared by all slots: tangents, workspace, label gradients */
    sd_real **dy, **dg;
    void *ws;
    sd_real *gq;  /* (nmax, classes) gradient w.r.t. targets */
    sd_real *dgq; /* (nmax, classes) its tangent */
    int want_g0;  /* this call needs the gradient w.r.t. the input */
    /* per layer: its output's gradient buffers have one writer, a ReLU that
     * writes them (=); zero_grads skips them (sd_model.c, exec_new) */
    unsigned char *grad_alone;
    double loss_scale; /* weight of this exec's mean loss in the caller's (shards) */
    /* Batch shards (see shard_count): the samples of a call are split into
     * nshards contiguous parts, each run by its own sub-exec as one task of
     * be->parallel.  Shard 0 writes the caller's gtheta and hv directly,
     * shard s > 0 into sg[s] and shv[s], added after in shard order. */
    int nshards;
    sd_exec *shard[SD_EXEC_MAX_SHARDS];
    sd_real *sg[SD_EXEC_MAX_SHARDS], *shv[SD_EXEC_MAX_SHARDS];
    sd_real *logits; /* (nmax, classes) gathered from the shards */
    /* batch-mode batch norm over the shards: each shard's per-channel sums
     * and their join (host doubles, widest BN layer x SD_BN_SUMS) */
    double *bn_part[SD_EXEC_MAX_SHARDS], *bn_sums;
};

static inline size_t layer_out_elems(const sd_model *m, int i, int n)
{
    return (size_t)n * sd_layer_out_size(&m->layers[i]);
}

#endif
