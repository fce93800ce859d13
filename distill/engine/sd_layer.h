/*
 * sd_layer.h - layers with first- and second-order entry points.
 *
 * Every layer kind has four entry points (docs/architecture.md, "Layers"):
 *   forward           y  = f(x, theta)
 *   backward          gx += J_x^T gy,  gtheta += J_theta^T gy          (VJP)
 *   forward_tangent   dy  = J_x dx + J_theta dtheta                     (JVP)
 *   backward_tangent  dgx += d/de [J_x^T gy], dgtheta += d/de [J_theta^T gy]
 *                     along (x + e dx, theta + e dtheta, gy + e dgy)
 * so that a forward-tangent pass followed by a backward and a backward-tangent
 * pass gives Hessian-vector products and mixed second derivatives
 * (forward-over-reverse).
 *
 * A layer describes ONE sample's shapes; the batch size n comes with each call.
 * Parameters of a layer are a contiguous slice of the model's flat theta, in
 * PyTorch's named_parameters() order: conv weight (k,c,r,s) then bias (k);
 * linear weight (out,in) then bias (out); batch norm gamma (c) then beta (c).
 * Batch-norm running statistics are not parameters: they live in theta_bn as
 * mean (c) then var (c).
 *
 * Ownership: the caller (usually sd_model's executor) owns every buffer in
 * sd_layer_io and sizes them with sd_layer_saved_size()/sd_layer_ws_size().
 * Outputs marked "+=" accumulate; the caller zeroes them.
 */
#ifndef SD_LAYER_H
#define SD_LAYER_H

#include <stddef.h>

#include "sd_backend.h"

#define SD_LAYER_MAX_IN 4

typedef enum sd_layer_kind {
    SD_LAYER_INPUT = 0, /* graph input placeholder: no computation */
    SD_LAYER_CONV,      /* 2-D convolution, optional bias */
    SD_LAYER_LINEAR,    /* fully connected on the flattened input, optional bias */
    SD_LAYER_BN,        /* batch normalisation (affine) */
    SD_LAYER_RELU,
    SD_LAYER_MAXPOOL,
    SD_LAYER_AVGPOOL,
    SD_LAYER_ADAPTIVE_AVGPOOL,
    SD_LAYER_ADD,     /* elementwise sum of inputs (residual) */
    SD_LAYER_CONCAT,  /* concatenation along channels */
    SD_LAYER_FLATTEN, /* (c,h,w) -> (c*h*w,1,1); memory is unchanged */
    SD_LAYER_DROPOUT, /* identity unless io->dropout_train */
    SD_LAYER_KIND_COUNT
} sd_layer_kind;

typedef enum sd_bn_mode {
    SD_BN_BATCH = 0, /* normalise with the statistics of the batch, differentiated */
    SD_BN_FROZEN = 1 /* normalise with theta_bn (running mean/var) as constants */
} sd_bn_mode;

typedef struct sd_shape {
    int c, h, w;
} sd_shape;

typedef struct sd_layer {
    sd_layer_kind kind;
    int n_in;
    sd_shape in[SD_LAYER_MAX_IN];
    sd_shape out;
    /* kind-specific settings */
    int k, r, s, stride, pad; /* conv: out channels, kernel, stride, padding */
    int bias;                 /* conv, linear: has a bias */
    int out_features;         /* linear */
    int kh, kw, sh, sw, ph, pw, ceil_mode, count_include_pad; /* pooling */
    /* (pooling: sh/sw 0 = the kernel size, as in PyTorch; adaptive average
     *  pooling may give its output size as kh, kw instead of out.h, out.w) */
    double eps;    /* bn */
    double p_drop; /* dropout */
    /* SD_LAYER_INPUT: the caller sets out.c/h/w.  SD_LAYER_ADAPTIVE_AVGPOOL:
     * the caller sets the target out.h/out.w; sd_layer_finish keeps them. */
    /* placement in the model's flat vectors */
    size_t theta_off, theta_len; /* slice of theta */
    size_t bn_off;               /* bn: mean at bn_off, var at bn_off + c in theta_bn */
} sd_layer;

/* Buffers for one call.  Pointers not used by a kind or an entry point may be
 * NULL; an input tangent dx[i] == NULL means zero, dtheta == NULL means zero,
 * dgy == NULL means zero.  gx[i] / dgx[i] == NULL means "not wanted". */
typedef struct sd_layer_io {
    int n; /* batch size */
    sd_bn_mode bn_mode;
    int dropout_train; /* dropout active (ordinary training only); the mask
                            * comes from (dropout_seed, element index) and is kept
                            * in saved, so pass the same value to every entry point */
    unsigned long long dropout_seed;

    const sd_real *x[SD_LAYER_MAX_IN];
    const sd_real *dx[SD_LAYER_MAX_IN];
    sd_real *y, *dy;
    const sd_real *gy, *dgy;
    sd_real *gx[SD_LAYER_MAX_IN], *dgx[SD_LAYER_MAX_IN];
    /* gx_set: gx[0] and dgx[0] were not zeroed and this layer is their only
     * writer, so its backward entry points write them (=) instead of adding
     * (+=).  Set by the executor for ReLU layers only (sd_model.c,
     * grad_written_alone); every other entry point accumulates. */
    int gx_set;

    const sd_real *theta, *dtheta; /* this layer's slice */
    sd_real *gtheta, *dgtheta;     /* += */
    const sd_real *theta_bn;       /* this layer's running mean (c) then var (c) */

    /* Batch-mode batch norm over batch shards (sd_exec_run.c): with bn_part the
     * entry point only writes this shard's per-channel sums there (c *
     * SD_BN_SUMS, see sd_bn_op); with bn_sums it computes its outputs from
     * the sums of all shards joined (sd_bn_join), bn_count values per
     * channel.  Both NULL: the whole batch at once.  Other kinds ignore them. */
    double *bn_part;
    const double *bn_sums;
    double bn_count;

    sd_real *saved; /* state forward keeps for the other entry points */
    void *ws;       /* scratch of sd_layer_ws_size() bytes */
    sd_error *err;  /* where a failing entry point writes its message (may be NULL) */
} sd_layer_io;

/* Set out shape, theta_len and the remaining derived fields from kind, inputs
 * and settings; SD_EINVAL with a message for inconsistent settings. */
int sd_layer_finish(sd_layer *l, sd_error *err) SD_WUR;

size_t sd_layer_saved_size(const sd_layer *l, int n);              /* in sd_real elements */
size_t sd_layer_ws_size(const sd_layer *l, int n, sd_backend *be); /* in bytes */
size_t sd_layer_out_size(const sd_layer *l);                       /* elements per sample */
size_t sd_layer_in_size(const sd_layer *l, int i);                 /* elements per sample */
const char *sd_layer_kind_name(sd_layer_kind k);

int sd_layer_forward(sd_backend *be, const sd_layer *l, sd_layer_io *io) SD_WUR;
int sd_layer_backward(sd_backend *be, const sd_layer *l, sd_layer_io *io) SD_WUR;
int sd_layer_forward_tangent(sd_backend *be, const sd_layer *l, sd_layer_io *io) SD_WUR;
int sd_layer_backward_tangent(sd_backend *be, const sd_layer *l, sd_layer_io *io) SD_WUR;

/* Soft-target cross-entropy (the loss is not a graph layer).  Thin wrappers
 * over the backend's sce_* ops; see sd_backend.h for the formulas. */
int sd_sce_forward(sd_backend *be, sd_error *err, int n, int k, const sd_real *z, const sd_real *q,
                   sd_real *p, double *loss) SD_WUR;
int sd_sce_backward(sd_backend *be, sd_error *err, int n, int k, const sd_real *p, const sd_real *q,
                    double g, sd_real *gz, sd_real *gq) SD_WUR;
int sd_sce_forward_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *p,
                           const sd_real *q, const sd_real *dz, const sd_real *dq,
                           double *dloss) SD_WUR;
int sd_sce_backward_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *p,
                            const sd_real *q, const sd_real *dz, const sd_real *dq, double g,
                            double dg, sd_real *dgz, sd_real *dgq) SD_WUR;

/* Row softmax q = softmax(y) (label parameterisation), four entry points:
 * q =; gy += J'gq; dq = J dy (J is symmetric, dy NULL = 0);
 * dgy += tangent of the backward along (dy, dgq). */
int sd_softmax_forward(sd_backend *be, sd_error *err, int n, int k, const sd_real *y,
                       sd_real *q) SD_WUR;
int sd_softmax_backward(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                        const sd_real *gq, sd_real *gy) SD_WUR;
int sd_softmax_forward_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                               const sd_real *dy, sd_real *dq) SD_WUR;
int sd_softmax_backward_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                                const sd_real *dy, const sd_real *gq, const sd_real *dgq,
                                sd_real *dgy) SD_WUR;

#endif
