/*
 * sd_layer_dense.c - convolution and fully connected layers.
 *
 * Both are bilinear in (x, W) plus a bias, so every derivative is built from
 * the same primitives (conv_fwd / conv_bwd_data / conv_bwd_filter, or GEMM):
 *   forward           y   = x * W + b
 *   backward          gx += gy *' W            gW += x corr gy     gb += sum gy
 *   forward tangent   dy  = dx * W + x * dW + db
 *   backward tangent  dgx += dgy *' W + gy *' dW
 *                     dgW += dx corr gy + x corr dgy               dgb += sum dgy
 * (* convolution, *' its transpose, corr the filter correlation; for linear
 * these are the products below with W stored (out, in)).
 */
#include "sd_layer_impl.h"

/* ---- convolution ---- */

static const sd_real *conv_bias(const sd_layer *l, const sd_real *theta)
{
    return theta + (size_t)l->k * l->in[0].c * l->r * l->s;
}

static sd_real *conv_bias_mut(const sd_layer *l, sd_real *theta)
{
    return theta + (size_t)l->k * l->in[0].c * l->r * l->s;
}

static int conv_fwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->x[0] || !io->y || !io->theta)
        return sd_layer_missing(io->err, l, "forward", "x, y or theta");
    sd_conv_desc d = sd_layer_conv_desc(l, io->n);
    SD_TRY(be->conv_fwd(be, io->err, &d, io->x[0], io->theta, 0, io->y, io->ws));
    if (l->bias)
        SD_TRY(be->bias_fwd(be, io->err, io->n, l->k, l->out.h * l->out.w, conv_bias(l, io->theta),
                            io->y));
    return SD_OK;
}

static int conv_bwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->gy || !io->theta || (io->gtheta && !io->x[0]))
        return sd_layer_missing(io->err, l, "backward", "gy, theta or x");
    sd_conv_desc d = sd_layer_conv_desc(l, io->n);
    if (io->gx[0])
        SD_TRY(be->conv_bwd_data(be, io->err, &d, io->gy, io->theta, io->gx[0], io->ws));
    if (io->gtheta) {
        SD_TRY(be->conv_bwd_filter(be, io->err, &d, io->x[0], io->gy, io->gtheta, io->ws));
        if (l->bias)
            SD_TRY(be->bias_bwd(be, io->err, io->n, l->k, l->out.h * l->out.w, io->gy,
                                conv_bias_mut(l, io->gtheta)));
    }
    return SD_OK;
}

static int conv_fwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dy || !io->theta || (io->dtheta && !io->x[0]))
        return sd_layer_missing(io->err, l, "forward_tangent", "dy, theta or x");
    sd_conv_desc d = sd_layer_conv_desc(l, io->n);
    sd_real beta = 0; /* the first term overwrites dy, later ones add */
    if (io->dx[0]) {
        SD_TRY(be->conv_fwd(be, io->err, &d, io->dx[0], io->theta, 0, io->dy, io->ws));
        beta = 1;
    }
    if (io->dtheta) {
        SD_TRY(be->conv_fwd(be, io->err, &d, io->x[0], io->dtheta, beta, io->dy, io->ws));
        beta = 1;
        if (l->bias)
            SD_TRY(be->bias_fwd(be, io->err, io->n, l->k, l->out.h * l->out.w,
                                conv_bias(l, io->dtheta), io->dy));
    }
    if (beta == 0)
        SD_TRY(
            be->zero(be, io->err, io->dy, (size_t)io->n * sd_shape_size(l->out) * sizeof(sd_real)));
    return SD_OK;
}

static int conv_bwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->gy || !io->theta || !io->x[0])
        return sd_layer_missing(io->err, l, "backward_tangent", "gy, theta or x");
    sd_conv_desc d = sd_layer_conv_desc(l, io->n);
    if (io->dgx[0]) {
        if (io->dgy)
            SD_TRY(be->conv_bwd_data(be, io->err, &d, io->dgy, io->theta, io->dgx[0], io->ws));
        if (io->dtheta)
            SD_TRY(be->conv_bwd_data(be, io->err, &d, io->gy, io->dtheta, io->dgx[0], io->ws));
    }
    if (io->dgtheta) {
        if (io->dx[0])
            SD_TRY(be->conv_bwd_filter(be, io->err, &d, io->dx[0], io->gy, io->dgtheta, io->ws));
        if (io->dgy) {
            SD_TRY(be->conv_bwd_filter(be, io->err, &d, io->x[0], io->dgy, io->dgtheta, io->ws));
            if (l->bias)
                SD_TRY(be->bias_bwd(be, io->err, io->n, l->k, l->out.h * l->out.w, io->dgy,
                                    conv_bias_mut(l, io->dgtheta)));
        }
    }
    return SD_OK;
}

const sd_layer_ops sd_layer_ops_conv = {conv_fwd, conv_bwd, conv_fwd_t, conv_bwd_t};

/* ---- linear: y (n,o) = x (n,i) W' + b, W stored (o,i) ---- */

static int lin_fwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->x[0] || !io->y || !io->theta)
        return sd_layer_missing(io->err, l, "forward", "x, y or theta");
    const int ni = (int)sd_shape_size(l->in[0]), no = l->out_features;
    SD_TRY(
        be->gemm(be, io->err, 0, 1, io->n, no, ni, 1, io->x[0], ni, io->theta, ni, 0, io->y, no));
    if (l->bias)
        SD_TRY(be->bias_fwd(be, io->err, io->n, no, 1, io->theta + (size_t)no * ni, io->y));
    return SD_OK;
}

static int lin_bwd(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->gy || !io->theta || (io->gtheta && !io->x[0]))
        return sd_layer_missing(io->err, l, "backward", "gy, theta or x");
    const int ni = (int)sd_shape_size(l->in[0]), no = l->out_features;
    if (io->gx[0]) /* gx (n,i) += gy (n,o) W (o,i) */
        SD_TRY(be->gemm(be, io->err, 0, 0, io->n, ni, no, 1, io->gy, no, io->theta, ni, 1,
                        io->gx[0], ni));
    if (io->gtheta) { /* gW (o,i) += gy' (o,n) x (n,i) */
        SD_TRY(be->gemm(be, io->err, 1, 0, no, ni, io->n, 1, io->gy, no, io->x[0], ni, 1,
                        io->gtheta, ni));
        if (l->bias)
            SD_TRY(be->bias_bwd(be, io->err, io->n, no, 1, io->gy, io->gtheta + (size_t)no * ni));
    }
    return SD_OK;
}

static int lin_fwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->dy || !io->theta || (io->dtheta && !io->x[0]))
        return sd_layer_missing(io->err, l, "forward_tangent", "dy, theta or x");
    const int ni = (int)sd_shape_size(l->in[0]), no = l->out_features;
    sd_real beta = 0;
    if (io->dx[0]) {
        SD_TRY(be->gemm(be, io->err, 0, 1, io->n, no, ni, 1, io->dx[0], ni, io->theta, ni, 0,
                        io->dy, no));
        beta = 1;
    }
    if (io->dtheta) {
        SD_TRY(be->gemm(be, io->err, 0, 1, io->n, no, ni, 1, io->x[0], ni, io->dtheta, ni, beta,
                        io->dy, no));
        beta = 1;
        if (l->bias)
            SD_TRY(be->bias_fwd(be, io->err, io->n, no, 1, io->dtheta + (size_t)no * ni, io->dy));
    }
    if (beta == 0)
        SD_TRY(be->zero(be, io->err, io->dy, (size_t)io->n * no * sizeof(sd_real)));
    return SD_OK;
}

static int lin_bwd_t(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    if (!io->gy || !io->theta || !io->x[0])
        return sd_layer_missing(io->err, l, "backward_tangent", "gy, theta or x");
    const int ni = (int)sd_shape_size(l->in[0]), no = l->out_features;
    if (io->dgx[0]) {
        if (io->dgy)
            SD_TRY(be->gemm(be, io->err, 0, 0, io->n, ni, no, 1, io->dgy, no, io->theta, ni, 1,
                            io->dgx[0], ni));
        if (io->dtheta)
            SD_TRY(be->gemm(be, io->err, 0, 0, io->n, ni, no, 1, io->gy, no, io->dtheta, ni, 1,
                            io->dgx[0], ni));
    }
    if (io->dgtheta) {
        if (io->dx[0])
            SD_TRY(be->gemm(be, io->err, 1, 0, no, ni, io->n, 1, io->gy, no, io->dx[0], ni, 1,
                            io->dgtheta, ni));
        if (io->dgy) {
            SD_TRY(be->gemm(be, io->err, 1, 0, no, ni, io->n, 1, io->dgy, no, io->x[0], ni, 1,
                            io->dgtheta, ni));
            if (l->bias)
                SD_TRY(be->bias_bwd(be, io->err, io->n, no, 1, io->dgy,
                                    io->dgtheta + (size_t)no * ni));
        }
    }
    return SD_OK;
}

const sd_layer_ops sd_layer_ops_linear = {lin_fwd, lin_bwd, lin_fwd_t, lin_bwd_t};
