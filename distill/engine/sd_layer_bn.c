/*
 * sd_layer_bn.c - batch normalisation layer (affine, per channel).
 *
 * theta slice: gamma (c) then beta (c).  io->bn_mode picks the statistics:
 *  - SD_BN_BATCH: the batch's own mean and biased variance, differentiated
 *    through (forward keeps mean (c) then invstd (c) in io->saved for the
 *    other entry points);
 *  - SD_BN_FROZEN: io->theta_bn = running mean (c) then var (c), constants.
 * The formulas and their derivations are with the backend ops
 * (cpu/sd_cpu_bn.c); this file only routes buffers.  In batch mode run over
 * batch shards (io->bn_part, io->bn_sums) each entry point is called twice
 * per shard: once for the shard's sums and once, after the executor has
 * joined them, for its outputs (be->bn_partial, be->bn_apply).
 */
#include "sd_layer_impl.h"

static sd_bn_desc bn_desc(const sd_layer *l, int n)
{
    sd_bn_desc d;
    d.n = n;
    d.c = l->in[0].c;
    d.hw = l->in[0].h * l->in[0].w;
    d.eps = l->eps > 0 ? l->eps : 1e-5;
    return d;
}

static int bn_need(sd_backend *be, const sd_layer *l, const sd_layer_io *io, const char *entry)
{
    if (!io->x[0] || !io->theta)
        return sd_layer_missing(io->err, l, entry, "x or theta");
    if (io->bn_mode == SD_BN_FROZEN && !io->theta_bn)
        return sd_layer_missing(io->err, l, entry, "theta_bn (frozen mode)");
    if (io->bn_mode == SD_BN_BATCH && !io->saved)
        return sd_layer_missing(io->err, l, entry, "saved (batch mode)");
    if (io->bn_mode != SD_BN_BATCH && io->bn_mode != SD_BN_FROZEN)
        return sd_error_set(io->err, SD_EINVAL, "batchnorm %s: bad bn_mode %d", entry,
                            (int)io->bn_mode);
    return SD_OK;
}

/* Batch mode split over batch shards (io->bn_part or io->bn_sums): this
 * shard's sums or the outputs from the joined ones; 1 when not split. */
static int bn_split(sd_backend *be, const sd_layer *l, const sd_layer_io *io, sd_bn_op op,
                    const sd_bn_bufs *b)
{
    if (!io->bn_part && !io->bn_sums)
        return 1;
    if (!be->bn_partial || !be->bn_apply)
        return sd_error_set(io->err, SD_EUNSUPPORTED,
                            "batchnorm: backend %s cannot split batch statistics", be->name);
    sd_bn_desc d = bn_desc(l, io->n);
    if (io->bn_part)
        return be->bn_partial(be, io->err, op, &d, b, io->bn_part);
    return be->bn_apply(be, io->err, op, &d, b, io->bn_sums, io->bn_count);
}

static int bn_fwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    SD_TRY(bn_need(be, l, io, "forward"));
    if (!io->y)
        return sd_layer_missing(io->err, l, "forward", "y");
    sd_bn_desc d = bn_desc(l, io->n);
    const sd_real *gamma = io->theta, *beta = io->theta + d.c;
    if (io->bn_mode == SD_BN_BATCH) {
        sd_bn_bufs b = {.x = io->x[0],
                        .gamma = gamma,
                        .beta = beta,
                        .y = io->y,
                        .mean_out = io->saved,
                        .invstd_out = io->saved + d.c};
        int rc = bn_split(be, l, io, SD_BN_OP_FWD, &b);
        if (rc <= 0)
            return rc;
        return be->bn_fwd_train(be, io->err, &d, io->x[0], gamma, beta, io->y, io->saved,
                                io->saved + d.c);
    }
    return be->bn_fwd_frozen(be, io->err, &d, io->x[0], gamma, beta, io->theta_bn,
                             io->theta_bn + d.c, io->y);
}

static int bn_bwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    SD_TRY(bn_need(be, l, io, "backward"));
    if (!io->gy)
        return sd_layer_missing(io->err, l, "backward", "gy");
    if (!io->gx[0] && !io->gtheta)
        return SD_OK;
    sd_bn_desc d = bn_desc(l, io->n);
    sd_real *gg = io->gtheta, *gb = io->gtheta ? io->gtheta + d.c : NULL;
    if (io->bn_mode == SD_BN_BATCH) {
        sd_bn_bufs b = {.x = io->x[0],
                        .gamma = io->theta,
                        .mean = io->saved,
                        .invstd = io->saved + d.c,
                        .gy = io->gy,
                        .gx = io->gx[0],
                        .ggamma = gg,
                        .gbeta = gb};
        int rc = bn_split(be, l, io, SD_BN_OP_BWD, &b);
        if (rc <= 0)
            return rc;
        return be->bn_bwd_train(be, io->err, &d, io->x[0], io->theta, io->saved, io->saved + d.c,
                                io->gy, io->gx[0], gg, gb);
    }
    return be->bn_bwd_frozen(be, io->err, &d, io->x[0], io->theta, io->theta_bn, io->theta_bn + d.c,
                             io->gy, io->gx[0], gg, gb);
}

static int bn_fwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    SD_TRY(bn_need(be, l, io, "forward_tangent"));
    if (!io->dy)
        return sd_layer_missing(io->err, l, "forward_tangent", "dy");
    sd_bn_desc d = bn_desc(l, io->n);
    if (!io->dx[0] && !io->dtheta)
        return be->zero(be, io->err, io->dy,
                        (size_t)io->n * sd_shape_size(l->out) * sizeof(sd_real));
    const sd_real *dg = io->dtheta, *db = io->dtheta ? io->dtheta + d.c : NULL;
    if (io->bn_mode == SD_BN_BATCH) {
        sd_bn_bufs b = {.x = io->x[0],
                        .dx = io->dx[0],
                        .gamma = io->theta,
                        .dgamma = dg,
                        .dbeta = db,
                        .mean = io->saved,
                        .invstd = io->saved + d.c,
                        .dy = io->dy};
        int rc = bn_split(be, l, io, SD_BN_OP_FWD_TANGENT, &b);
        if (rc <= 0)
            return rc;
        return be->bn_fwd_tangent_train(be, io->err, &d, io->x[0], io->dx[0], io->theta, dg, db,
                                        io->saved, io->saved + d.c, io->dy);
    }
    return be->bn_fwd_tangent_frozen(be, io->err, &d, io->x[0], io->dx[0], io->theta, dg, db,
                                     io->theta_bn, io->theta_bn + d.c, io->dy);
}

static int bn_bwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    SD_TRY(bn_need(be, l, io, "backward_tangent"));
    if (!io->gy)
        return sd_layer_missing(io->err, l, "backward_tangent", "gy");
    if (!io->dgx[0] && !io->dgtheta)
        return SD_OK;
    if (!io->dx[0] && !io->dtheta && !io->dgy)
        return SD_OK; /* zero tangent: nothing to add */
    sd_bn_desc d = bn_desc(l, io->n);
    const sd_real *dg = io->dtheta;
    sd_real *dgg = io->dgtheta, *dgb = io->dgtheta ? io->dgtheta + d.c : NULL;
    if (io->bn_mode == SD_BN_BATCH) {
        sd_bn_bufs b = {.x = io->x[0],
                        .dx = io->dx[0],
                        .gamma = io->theta,
                        .dgamma = dg,
                        .mean = io->saved,
                        .invstd = io->saved + d.c,
                        .gy = io->gy,
                        .dgy = io->dgy,
                        .dgx = io->dgx[0],
                        .dggamma = dgg,
                        .dgbeta = dgb};
        int rc = bn_split(be, l, io, SD_BN_OP_BWD_TANGENT, &b);
        if (rc <= 0)
            return rc;
        return be->bn_bwd_tangent_train(be, io->err, &d, io->x[0], io->dx[0], io->theta, dg,
                                        io->saved, io->saved + d.c, io->gy, io->dgy, io->dgx[0],
                                        dgg, dgb);
    }
    return be->bn_bwd_tangent_frozen(be, io->err, &d, io->x[0], io->dx[0], io->theta, dg,
                                     io->theta_bn, io->theta_bn + d.c, io->gy, io->dgy, io->dgx[0],
                                     dgg, dgb);
}

const sd_layer_ops sd_layer_ops_bn = {bn_fwd, bn_bwd, bn_fwd_t, bn_bwd_t};
