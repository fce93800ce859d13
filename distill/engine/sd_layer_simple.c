/*
 * sd_layer_simple.c - layers without parameters: input, ReLU, max and
 * average pooling, add, concat, flatten, dropout.
 *
 * ReLU, max pooling and dropout are piecewise linear: their Jacobian is a
 * fixed selection (the ReLU mask, the window argmax, the dropout mask) that
 * does not change under a small perturbation, so
 *   forward tangent  = the same selection applied to dx, and
 *   backward tangent = the backward applied to dgy (the selection's own
 *                      derivative is zero almost everywhere).
 * Average pooling, add, concat and flatten are linear: tangents are the
 * forward / backward maps applied to the tangents.
 */
#include "sd_layer_impl.h"

static size_t out_elems(const sd_layer *l, int n)
{
    return (size_t)n * sd_shape_size(l->out);
}

static size_t in_elems(const sd_layer *l, int n, int i)
{
    return (size_t)n * sd_shape_size(l->in[i]);
}

static int zero_out(sd_backend *be, sd_error *err, const sd_layer *l, int n, sd_real *p)
{
    return be->zero(be, err, p, out_elems(l, n) * sizeof(sd_real));
}

/* ---- input: a placeholder, nothing to compute ---- */

static int nop(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    (void)be;
    (void)l;
    (void)io;
    return SD_OK;
}

const sd_layer_ops sd_layer_ops_input = {nop, nop, nop, nop};

/* ---- ReLU: y = max(x, 0); derivative (x > 0) ---- */

static int relu_fwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->x[0] || !io->y)
        return sd_layer_missing(io->err, l, "forward", "x or y");
    return be->relu_fwd(be, io->err, out_elems(l, io->n), io->x[0], io->y);
}

static int relu_bwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->gx[0])
        return SD_OK;
    if (!io->x[0] || !io->gy)
        return sd_layer_missing(io->err, l, "backward", "x or gy");
    if (io->gx_set)
        return be->relu_mask_set(be, io->err, out_elems(l, io->n), io->x[0], io->gy, io->gx[0]);
    return be->relu_mask(be, io->err, out_elems(l, io->n), io->x[0], io->gy, io->gx[0]);
}

static int relu_fwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dy || (io->dx[0] && !io->x[0]))
        return sd_layer_missing(io->err, l, "forward_tangent", "dy or x");
    if (io->dx[0] && be->relu_mask_set) /* dy = 0 + mask * dx, without zeroing dy first */
        return be->relu_mask_set(be, io->err, out_elems(l, io->n), io->x[0], io->dx[0], io->dy);
    SD_TRY(zero_out(be, io->err, l, io->n, io->dy));
    if (!io->dx[0])
        return SD_OK;
    return be->relu_mask(be, io->err, out_elems(l, io->n), io->x[0], io->dx[0], io->dy);
}

static int relu_bwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dgx[0] || !io->dgy)
        return SD_OK;
    if (!io->x[0])
        return sd_layer_missing(io->err, l, "backward_tangent", "x");
    if (io->gx_set)
        return be->relu_mask_set(be, io->err, out_elems(l, io->n), io->x[0], io->dgy, io->dgx[0]);
    return be->relu_mask(be, io->err, out_elems(l, io->n), io->x[0], io->dgy, io->dgx[0]);
}

const sd_layer_ops sd_layer_ops_relu = {relu_fwd, relu_bwd, relu_fwd_t, relu_bwd_t};

/* ---- max pooling (first maximum of each window wins) ---- */

static int maxp_fwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->x[0] || !io->y)
        return sd_layer_missing(io->err, l, "forward", "x or y");
    sd_pool_desc d = sd_layer_pool_desc(l, io->n);
    return be->maxpool_fwd(be, io->err, &d, io->x[0], io->y, (int32_t *)io->saved);
}

static int maxp_bwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->gx[0])
        return SD_OK;
    if (!io->x[0] || !io->gy)
        return sd_layer_missing(io->err, l, "backward", "x or gy");
    sd_pool_desc d = sd_layer_pool_desc(l, io->n);
    return be->maxpool_bwd(be, io->err, &d, io->x[0], (const int32_t *)io->saved, io->gy,
                           io->gx[0]);
}

static int maxp_fwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dy || (io->dx[0] && !io->x[0]))
        return sd_layer_missing(io->err, l, "forward_tangent", "dy or x");
    if (!io->dx[0])
        return zero_out(be, io->err, l, io->n, io->dy);
    sd_pool_desc d = sd_layer_pool_desc(l, io->n);
    return be->maxpool_gather(be, io->err, &d, io->x[0], (const int32_t *)io->saved, io->dx[0],
                              io->dy);
}

static int maxp_bwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dgx[0] || !io->dgy)
        return SD_OK;
    if (!io->x[0])
        return sd_layer_missing(io->err, l, "backward_tangent", "x");
    sd_pool_desc d = sd_layer_pool_desc(l, io->n);
    return be->maxpool_bwd(be, io->err, &d, io->x[0], (const int32_t *)io->saved, io->dgy,
                           io->dgx[0]);
}

const sd_layer_ops sd_layer_ops_maxpool = {maxp_fwd, maxp_bwd, maxp_fwd_t, maxp_bwd_t};

/* ---- average pooling, fixed or adaptive windows (linear) ---- */

static int avgp_fwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->x[0] || !io->y)
        return sd_layer_missing(io->err, l, "forward", "x or y");
    sd_pool_desc d = sd_layer_pool_desc(l, io->n);
    return be->avgpool_fwd(be, io->err, &d, io->x[0], io->y);
}

static int avgp_bwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->gx[0])
        return SD_OK;
    if (!io->gy)
        return sd_layer_missing(io->err, l, "backward", "gy");
    sd_pool_desc d = sd_layer_pool_desc(l, io->n);
    return be->avgpool_bwd(be, io->err, &d, io->gy, io->gx[0]);
}

static int avgp_fwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dy)
        return sd_layer_missing(io->err, l, "forward_tangent", "dy");
    if (!io->dx[0])
        return zero_out(be, io->err, l, io->n, io->dy);
    sd_pool_desc d = sd_layer_pool_desc(l, io->n);
    return be->avgpool_fwd(be, io->err, &d, io->dx[0], io->dy);
}

static int avgp_bwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dgx[0] || !io->dgy)
        return SD_OK;
    sd_pool_desc d = sd_layer_pool_desc(l, io->n);
    return be->avgpool_bwd(be, io->err, &d, io->dgy, io->dgx[0]);
}

const sd_layer_ops sd_layer_ops_avgpool = {avgp_fwd, avgp_bwd, avgp_fwd_t, avgp_bwd_t};

/* ---- add: y = sum_i x_i ---- */

static int add_fwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    const size_t ne = out_elems(l, io->n);
    for (int i = 0; i < l->n_in; i++)
        if (!io->x[i])
            return sd_layer_missing(io->err, l, "forward", "an input x");
    if (!io->y)
        return sd_layer_missing(io->err, l, "forward", "y");
    SD_TRY(be->copy(be, io->err, io->y, io->x[0], ne * sizeof(sd_real)));
    for (int i = 1; i < l->n_in; i++)
        SD_TRY(be->axpy(be, io->err, ne, 1, io->x[i], io->y));
    return SD_OK;
}

/* gx_i += g for every wanted input (backward, and backward tangent on dgy) */
static int add_spread(sd_backend *be, sd_error *err, const sd_layer *l, int n, const sd_real *g,
                      sd_real *const *gx)
{
    if (!g)
        return SD_OK;
    for (int i = 0; i < l->n_in; i++)
        if (gx[i])
            SD_TRY(be->axpy(be, err, out_elems(l, n), 1, g, gx[i]));
    return SD_OK;
}

static int add_bwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    return add_spread(be, io->err, l, io->n, io->gy, io->gx);
}

static int add_fwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dy)
        return sd_layer_missing(io->err, l, "forward_tangent", "dy");
    SD_TRY(zero_out(be, io->err, l, io->n, io->dy));
    for (int i = 0; i < l->n_in; i++)
        if (io->dx[i])
            SD_TRY(be->axpy(be, io->err, out_elems(l, io->n), 1, io->dx[i], io->dy));
    return SD_OK;
}

static int add_bwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    return add_spread(be, io->err, l, io->n, io->dgy, io->dgx);
}

const sd_layer_ops sd_layer_ops_add = {add_fwd, add_bwd, add_fwd_t, add_bwd_t};

/* ---- concat along channels: per sample, input i's block follows input i-1's ---- */

/* y blocks = x_i (x_i NULL: zeros), the forward and the forward tangent */
static int concat_gather(sd_backend *be, sd_error *err, const sd_layer *l, int n,
                         const sd_real *const *x, sd_real *y)
{
    const size_t os = sd_shape_size(l->out);
    for (int b = 0; b < n; b++) {
        size_t off = (size_t)b * os;
        for (int i = 0; i < l->n_in; i++) {
            const size_t is = sd_shape_size(l->in[i]);
            if (x[i])
                SD_TRY(be->copy(be, err, y + off, x[i] + (size_t)b * is, is * sizeof(sd_real)));
            else
                SD_TRY(be->zero(be, err, y + off, is * sizeof(sd_real)));
            off += is;
        }
    }
    return SD_OK;
}

/* gx_i += block i of g, the backward and the backward tangent */
static int concat_split(sd_backend *be, sd_error *err, const sd_layer *l, int n, const sd_real *g,
                        sd_real *const *gx)
{
    if (!g)
        return SD_OK;
    const size_t os = sd_shape_size(l->out);
    for (int b = 0; b < n; b++) {
        size_t off = (size_t)b * os;
        for (int i = 0; i < l->n_in; i++) {
            const size_t is = sd_shape_size(l->in[i]);
            if (gx[i])
                SD_TRY(be->axpy(be, err, is, 1, g + off, gx[i] + (size_t)b * is));
            off += is;
        }
    }
    return SD_OK;
}

static int concat_fwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    for (int i = 0; i < l->n_in; i++)
        if (!io->x[i])
            return sd_layer_missing(io->err, l, "forward", "an input x");
    if (!io->y)
        return sd_layer_missing(io->err, l, "forward", "y");
    return concat_gather(be, io->err, l, io->n, io->x, io->y);
}

static int concat_bwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    return concat_split(be, io->err, l, io->n, io->gy, io->gx);
}

static int concat_fwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dy)
        return sd_layer_missing(io->err, l, "forward_tangent", "dy");
    return concat_gather(be, io->err, l, io->n, io->dx, io->dy);
}

static int concat_bwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    return concat_split(be, io->err, l, io->n, io->dgy, io->dgx);
}

const sd_layer_ops sd_layer_ops_concat = {concat_fwd, concat_bwd, concat_fwd_t, concat_bwd_t};

/* ---- flatten: the same memory read as (c*h*w, 1, 1) ---- */

static int flat_fwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->x[0] || !io->y)
        return sd_layer_missing(io->err, l, "forward", "x or y");
    return be->copy(be, io->err, io->y, io->x[0], in_elems(l, io->n, 0) * sizeof(sd_real));
}

static int flat_bwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->gx[0] || !io->gy)
        return SD_OK;
    return be->axpy(be, io->err, in_elems(l, io->n, 0), 1, io->gy, io->gx[0]);
}

static int flat_fwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dy)
        return sd_layer_missing(io->err, l, "forward_tangent", "dy");
    if (!io->dx[0])
        return zero_out(be, io->err, l, io->n, io->dy);
    return be->copy(be, io->err, io->dy, io->dx[0], in_elems(l, io->n, 0) * sizeof(sd_real));
}

static int flat_bwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dgx[0] || !io->dgy)
        return SD_OK;
    return be->axpy(be, io->err, in_elems(l, io->n, 0), 1, io->dgy, io->dgx[0]);
}

const sd_layer_ops sd_layer_ops_flatten = {flat_fwd, flat_bwd, flat_fwd_t, flat_bwd_t};

/* ---- dropout (inverted): y = x * keep / (1 - p) when io->dropout_train ----
 * keep for element i of the batch is  u_i >= p  with u_i the i-th output of
 * SplitMix64 seeded with io->dropout_seed, scaled to [0,1) by its top 53 bits:
 * a pure function of (seed, i), so every backend draws the same mask.  The
 * forward stores keep (0/1) in io->saved; the other entry points reuse it and
 * must be called with the same dropout_train. */

static uint64_t splitmix64_at(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int drop_active(const sd_layer *l, const sd_layer_io *io)
{
    return io->dropout_train && l->p_drop > 0;
}

/* out (=) or (+=, accumulate) scale * keep * v; uses ws for the masked copy
 * when accumulating */
static int drop_apply(sd_backend *be, const sd_layer *l, sd_layer_io *io, const sd_real *v,
                      sd_real *out, int accumulate)
{
    const size_t ne = in_elems(l, io->n, 0);
    const sd_real scale = (sd_real)(1.0 / (1.0 - l->p_drop));
    if (!drop_active(l, io)) {
        if (accumulate)
            return be->axpy(be, io->err, ne, 1, v, out);
        return be->copy(be, io->err, out, v, ne * sizeof(sd_real));
    }
    if (!io->saved)
        return sd_layer_missing(io->err, l, "an entry point", "saved (mask)");
    if (accumulate) {
        if (!io->ws)
            return sd_layer_missing(io->err, l, "an entry point", "ws");
        sd_real *tmp = io->ws;
        SD_TRY(be->zero(be, io->err, tmp, ne * sizeof(sd_real)));
        SD_TRY(be->relu_mask(be, io->err, ne, io->saved, v, tmp));
        return be->axpy(be, io->err, ne, scale, tmp, out);
    }
    SD_TRY(be->zero(be, io->err, out, ne * sizeof(sd_real)));
    SD_TRY(be->relu_mask(be, io->err, ne, io->saved, v, out));
    return be->scal(be, io->err, ne, scale, out);
}

static int drop_fwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->x[0] || !io->y)
        return sd_layer_missing(io->err, l, "forward", "x or y");
    if (drop_active(l, io)) {
        if (!io->saved)
            return sd_layer_missing(io->err, l, "forward", "saved (mask)");
        /* draw the mask on the host in chunks and upload it: no allocation */
        enum { CHUNK = 1024 };
        sd_real buf[CHUNK];
        const size_t ne = in_elems(l, io->n, 0);
        for (size_t off = 0; off < ne; off += CHUNK) {
            size_t m = ne - off < CHUNK ? ne - off : CHUNK;
            for (size_t j = 0; j < m; j++) {
                double u = (double)(splitmix64_at(io->dropout_seed, off + j) >> 11) *
                           (1.0 / 9007199254740992.0);
                buf[j] = u >= l->p_drop ? 1 : 0;
            }
            SD_TRY(be->upload(be, io->err, io->saved + off, buf, m * sizeof(sd_real)));
        }
    }
    return drop_apply(be, l, io, io->x[0], io->y, 0);
}

static int drop_bwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->gx[0] || !io->gy)
        return SD_OK;
    return drop_apply(be, l, io, io->gy, io->gx[0], 1);
}

static int drop_fwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dy)
        return sd_layer_missing(io->err, l, "forward_tangent", "dy");
    if (!io->dx[0])
        return zero_out(be, io->err, l, io->n, io->dy);
    return drop_apply(be, l, io, io->dx[0], io->dy, 0);
}

static int drop_bwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dgx[0] || !io->dgy)
        return SD_OK;
    return drop_apply(be, l, io, io->dgy, io->dgx[0], 1);
}

const sd_layer_ops sd_layer_ops_dropout = {drop_fwd, drop_bwd, drop_fwd_t, drop_bwd_t};
