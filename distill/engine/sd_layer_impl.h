/*
 * sd_layer_impl.h - internal interface between sd_layer.c (shapes, sizes,
 * dispatch) and the files holding the per-kind entry points
 * (sd_layer_dense.c: conv and linear; sd_layer_bn.c: batch norm;
 * sd_layer_simple.c: everything without parameters).
 *
 * Every entry point here only calls the backend table: the same code drives
 * the CPU and the CUDA backend, so tensor data is never dereferenced on the
 * host (pointer offsets into backend buffers are fine).
 */
#ifndef SD_LAYER_IMPL_H
#define SD_LAYER_IMPL_H

#include "sd_layer.h"

typedef int (*sd_layer_fn)(sd_backend *be, const sd_layer *l, sd_layer_io *io);

/* Four entry points of one kind: forward, backward, forward_tangent,
 * backward_tangent. */
typedef struct sd_layer_ops {
    sd_layer_fn fwd, bwd, fwd_t, bwd_t;
} sd_layer_ops;

extern const sd_layer_ops sd_layer_ops_conv, sd_layer_ops_linear, sd_layer_ops_bn,
    sd_layer_ops_relu, sd_layer_ops_maxpool, sd_layer_ops_avgpool, sd_layer_ops_add,
    sd_layer_ops_concat, sd_layer_ops_flatten, sd_layer_ops_dropout, sd_layer_ops_input;

/* Return on a non-zero status. */
#define SD_TRY(expr)         \
    do {                     \
        int sd_rc_ = (expr); \
        if (sd_rc_)          \
            return sd_rc_;   \
    } while (0)

/* Missing buffer the entry point needs: SD_EINVAL with a message in err. */
int sd_layer_missing(sd_error *err, const sd_layer *l, const char *entry, const char *what);

static inline size_t sd_shape_size(sd_shape s)
{
    return (size_t)s.c * (size_t)s.h * (size_t)s.w;
}

/* Geometry descriptors of a layer for a batch of n. */
sd_conv_desc sd_layer_conv_desc(const sd_layer *l, int n);
sd_pool_desc sd_layer_pool_desc(const sd_layer *l, int n);

#endif
