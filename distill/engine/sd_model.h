/*
 * sd_model.h - models as graphs of layers, and their execution.
 *
 * A model is a list of layers in topological order; layer 0 is the input and
 * the last layer produces the logits.  Each layer names up to
 * SD_LAYER_MAX_IN earlier layers as its inputs, which is enough for residual
 * adds (ResNet) and channel concatenation (GoogLeNet).
 *
 * All parameters form ONE flat vector theta (each layer owns a slice, in the
 * order PyTorch's named_parameters() lists them for the same architecture), so
 * SGD steps, Hessian-vector products and hashes are plain vector operations.
 * Batch-norm running statistics form a second flat vector theta_bn.
 *
 * An sd_exec holds the per-layer buffers to run a model on one backend for
 * batches of up to nmax samples: activations, their gradients, and (when asked
 * for) their tangents, in one or more state slots.  It never allocates after
 * creation.
 */
#ifndef SD_MODEL_H
#define SD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "sd_backend.h"
#include "sd_layer.h"

#define SD_ARCH_NAME_MAX 32

/* What a receiving node needs to rebuild the same network (docs/design.md). */
typedef struct sd_model_spec {
    char arch
        [SD_ARCH_NAME_MAX]; /* lenet, convnet, alexnet, vgg16, vgg19, resnet18, resnet34, googlenet */
    int bn;                 /* batch-norm variant */
    int depth, width;       /* convnet: depth, width (3, 128); resnet: base width (64) */
    int in_c, in_h, in_w;   /* input shape */
    int classes;
} sd_model_spec;

typedef struct sd_model {
    sd_model_spec spec;
    int n_layers, cap_layers;
    sd_layer *layers;
    int (*inputs)[SD_LAYER_MAX_IN]; /* per layer: indices of its inputs */
    char (*names)[48];              /* per layer: PyTorch-like module name */
    size_t n_theta;                 /* parameters */
    size_t n_bn;                    /* theta_bn entries (mean and var per BN channel) */
    int has_bn;
} sd_model;

/* Fill spec defaults (depth/width for convnet) and check the values. */
int sd_model_spec_normalize(sd_model_spec *spec, sd_error *err) SD_WUR;
/* Parse "convnet", "convnet-bn", "resnet18", "vgg16-bn", ... into arch+bn. */
int sd_model_spec_parse_arch(sd_model_spec *spec, const char *name, sd_error *err) SD_WUR;
/* "convnet-bn(d3,w128)" style label, for logs and pictures. */
void sd_model_spec_label(const sd_model_spec *spec, char *buf, size_t len);

/* Build the architecture named in spec. */
int sd_model_create(sd_model **out, const sd_model_spec *spec, sd_error *err) SD_WUR;
void sd_model_destroy(sd_model *m); /* accepts NULL */

/* Names of the architectures sd_model_create knows, NULL-terminated. */
const char *const *sd_model_arch_names(void);

/* ---- building blocks used by sd_models.c (and by tests) ---- */
int sd_model_begin(sd_model **out, const sd_model_spec *spec, sd_error *err) SD_WUR;
/* Append a layer whose kind and settings are filled in l (inputs are given as
 * layer indices); derives shapes and theta placement.  Returns the new index
 * or a negative SD_E* code. */
int sd_model_add(sd_model *m, const sd_layer *l, const int *inputs, int n_in, const char *name,
                 sd_error *err);

/* ---- execution ---- */
enum {
    SD_EXEC_TANGENT = 1,  /* also allocate tangent buffers (HVP) */
    SD_EXEC_INFERENCE = 2 /* every call uses SD_BN_FROZEN: the samples of a batch are
                           * independent even with batch norm, so the CPU backend may
                           * run them as shards; calls in batch mode are refused */
};

typedef enum sd_label_mode {
    SD_LABEL_RAW = 0,    /* targets are the given values */
    SD_LABEL_SOFTMAX = 1 /* targets are softmax(given values) per row */
} sd_label_mode;

typedef struct sd_exec sd_exec;

/* Every sd_exec_* call takes the caller's sd_error (which may be NULL): it is
 * cleared on entry and, on failure, holds what the executor was doing, the
 * layer and the backend's reason ("forward of layer conv1: conv forward:
 * ...").  Batch shards each report into their own and the first failing
 * shard's message is returned. */

int sd_exec_create(sd_exec **out, const sd_model *m, sd_backend *be, int nmax, unsigned flags,
                   sd_error *err) SD_WUR;
void sd_exec_destroy(sd_exec *ex); /* accepts NULL */

/* How many batch shards the exec's calls run as (1: none).  Fixed at
 * creation by the model, the backend and nmax, never by the thread count. */
int sd_exec_shards(const sd_exec *ex);

/* An exec with nslots state slots: each keeps what one forward and backward
 * leave behind (layer outputs, their gradients, saved layer state, targets
 * and softmax), so several of them can be kept and their tangents taken
 * later with sd_exec_hvp_cached (the unrolled steps of distillation).
 * Tangent buffers and the workspace are shared.  sd_exec_create is
 * nslots = 1. */
int sd_exec_create_slots(sd_exec **out, const sd_model *m, sd_backend *be, int nmax, unsigned flags,
                         int nslots, sd_error *err) SD_WUR;
/* Make slot k current: later calls read and write its state. */
int sd_exec_use_slot(sd_exec *ex, int k, sd_error *err) SD_WUR;
int sd_exec_slots(const sd_exec *ex);
/* Bytes of backend memory one slot takes for batches of nmax. */
size_t sd_exec_slot_bytes(const sd_model *m, int nmax);

/* Everything that stays the same across calls of one computation.  Pointers are
 * backend memory. */
typedef struct sd_exec_args {
    const sd_real *theta;    /* n_theta */
    const sd_real *theta_bn; /* n_bn: needed in SD_BN_FROZEN mode */
    sd_bn_mode bn_mode;
    sd_label_mode label_mode;
    const sd_real *x; /* (n, in_c, in_h, in_w) */
    const sd_real *y; /* (n, classes): label values (see label_mode) */
    int n;
} sd_exec_args;

/* Forward pass only; the logits stay in the exec (sd_exec_logits). */
int sd_exec_forward(sd_exec *ex, const sd_exec_args *a, sd_error *err) SD_WUR;
/* Backend pointer to the last forward's logits (n, classes). */
const sd_real *sd_exec_logits(const sd_exec *ex);

/* l = -(1/n) sum_i sum_c q_ic log softmax(f(x_i; theta))_c with q from y.
 * *loss = l; gtheta += dl/dtheta; gx += dl/dx; gy += dl/dy  (each may be NULL). */
int sd_exec_loss_grad(sd_exec *ex, const sd_exec_args *a, double *loss, sd_real *gtheta,
                      sd_real *gx, sd_real *gy, sd_error *err) SD_WUR;

/* Forward-over-reverse second order along theta-tangent v (exec needs
 * SD_EXEC_TANGENT):
 *   gtheta += dl/dtheta                 (may be NULL)
 *   hv     += H_theta,theta v           (may be NULL)
 *   dgx    += d/dx <v, dl/dtheta>       (may be NULL)
 *   dgy    += d/dy <v, dl/dtheta>       (may be NULL)
 * all from one forward, one tangent-forward, one backward and one
 * tangent-backward pass. */
int sd_exec_hvp(sd_exec *ex, const sd_exec_args *a, const sd_real *v, double *loss, sd_real *gtheta,
                sd_real *hv, sd_real *dgx, sd_real *dgy, sd_error *err) SD_WUR;

/* The same hv, dgx, dgy as sd_exec_hvp, but on the forward and backward the
 * current slot already holds from sd_exec_loss_grad with the same args
 * (same pointers; their contents must not have changed since): only the
 * tangent-forward and tangent-backward passes run.  SD_EINVAL when the slot
 * holds no such backward. */
int sd_exec_hvp_cached(sd_exec *ex, const sd_exec_args *a, const sd_real *v, sd_real *hv,
                       sd_real *dgx, sd_real *dgy, sd_error *err) SD_WUR;

/* After a forward in SD_BN_BATCH mode: add each BN layer's batch mean and
 * biased variance to sum (n_bn, HOST memory, double) so callers can average
 * over many batches. */
int sd_exec_bn_batch_stats(sd_exec *ex, double *sum, sd_error *err) SD_WUR;

/* Predict classes (host array of n) with the given mode (SD_BN_FROZEN for
 * inference); probs (n*classes, host) may be NULL. */
int sd_exec_predict(sd_exec *ex, const sd_exec_args *a, int *classes, float *probs,
                    sd_error *err) SD_WUR;

#endif
