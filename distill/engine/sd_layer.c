/*
 * sd_layer.c - layer shapes, buffer sizes and entry-point dispatch.
 *
 * sd_layer_finish() derives each kind's output shape and parameter count
 * (PyTorch's rules, so that models built here have PyTorch's shapes and
 * parameter counts); the four entry points dispatch to the per-kind code in
 * sd_layer_dense.c, sd_layer_bn.c and sd_layer_simple.c.  The soft-target
 * cross-entropy and row-softmax wrappers live here too.
 */
#include "sd_layer_impl.h"

#include <string.h>

static const char *const sd_layer_names[SD_LAYER_KIND_COUNT] = {
    [SD_LAYER_INPUT] = "input",     [SD_LAYER_CONV] = "conv",
    [SD_LAYER_LINEAR] = "linear",   [SD_LAYER_BN] = "batchnorm",
    [SD_LAYER_RELU] = "relu",       [SD_LAYER_MAXPOOL] = "maxpool",
    [SD_LAYER_AVGPOOL] = "avgpool", [SD_LAYER_ADAPTIVE_AVGPOOL] = "adaptive_avgpool",
    [SD_LAYER_ADD] = "add",         [SD_LAYER_CONCAT] = "concat",
    [SD_LAYER_FLATTEN] = "flatten", [SD_LAYER_DROPOUT] = "dropout",
};

const char *sd_layer_kind_name(sd_layer_kind k)
{
    if ((int)k < 0 || k >= SD_LAYER_KIND_COUNT)
        return "unknown";
    return sd_layer_names[k];
}

int sd_layer_missing(sd_error *err, const sd_layer *l, const char *entry, const char *what)
{
    return sd_error_set(err, SD_EINVAL, "%s %s: %s is NULL", sd_layer_kind_name(l->kind), entry,
                        what);
}

sd_conv_desc sd_layer_conv_desc(const sd_layer *l, int n)
{
    sd_conv_desc d;
    d.n = n;
    d.c = l->in[0].c;
    d.h = l->in[0].h;
    d.w = l->in[0].w;
    d.k = l->k;
    d.r = l->r;
    d.s = l->s;
    d.stride = l->stride;
    d.pad = l->pad;
    d.oh = l->out.h;
    d.ow = l->out.w;
    return d;
}

sd_pool_desc sd_layer_pool_desc(const sd_layer *l, int n)
{
    sd_pool_desc d;
    memset(&d, 0, sizeof d);
    d.n = n;
    d.c = l->in[0].c;
    d.h = l->in[0].h;
    d.w = l->in[0].w;
    d.oh = l->out.h;
    d.ow = l->out.w;
    if (l->kind == SD_LAYER_ADAPTIVE_AVGPOOL) {
        d.adaptive = 1;
        return d;
    }
    d.kh = l->kh;
    d.kw = l->kw;
    d.sh = l->sh;
    d.sw = l->sw;
    d.ph = l->ph;
    d.pw = l->pw;
    d.count_include_pad = l->count_include_pad;
    return d;
}

/* PyTorch's pooling_output_shape (dilation 1): with ceil_mode the last
 * window must still start inside the input or its left padding. */
static int pool_out(int in, int k, int s, int p, int ceil_mode)
{
    int num = in + 2 * p - k + (ceil_mode ? s - 1 : 0);
    int o = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
    if (ceil_mode && (o - 1) * s >= in + p)
        o--;
    return o;
}

static int shape_ok(sd_shape s)
{
    return s.c >= 1 && s.h >= 1 && s.w >= 1;
}

#define FINISH_FAIL(...) sd_error_set(err, SD_EINVAL, __VA_ARGS__)

int sd_layer_finish(sd_layer *l, sd_error *err)
{
    if (!l)
        return FINISH_FAIL("sd_layer_finish: layer is NULL");
    const char *kn = sd_layer_kind_name(l->kind);
    if ((int)l->kind < 0 || l->kind >= SD_LAYER_KIND_COUNT)
        return FINISH_FAIL("layer: unknown kind %d", (int)l->kind);
    if (l->kind == SD_LAYER_INPUT && l->n_in == 0) {
        /* the graph's input: the caller gives its shape in out */
        if (!shape_ok(l->out))
            return FINISH_FAIL("input: shape (%d,%d,%d)", l->out.c, l->out.h, l->out.w);
        l->theta_len = 0;
        return SD_OK;
    }
    int max_in = (l->kind == SD_LAYER_ADD || l->kind == SD_LAYER_CONCAT) ? SD_LAYER_MAX_IN : 1;
    if (l->n_in < 1 || l->n_in > max_in)
        return FINISH_FAIL("%s: %d inputs (allowed 1..%d)", kn, l->n_in, max_in);
    for (int i = 0; i < l->n_in; i++)
        if (!shape_ok(l->in[i]))
            return FINISH_FAIL("%s: input %d has shape (%d,%d,%d)", kn, i, l->in[i].c, l->in[i].h,
                               l->in[i].w);
    const sd_shape in = l->in[0];
    l->theta_len = 0;

    switch (l->kind) {
    case SD_LAYER_INPUT:
    case SD_LAYER_RELU: l->out = in; break;
    case SD_LAYER_CONV:
        if (l->s == 0)
            l->s = l->r;
        if (l->stride == 0)
            l->stride = 1;
        if (l->k < 1 || l->r < 1 || l->s < 1 || l->stride < 1 || l->pad < 0)
            return FINISH_FAIL("conv: bad settings k=%d kernel=%dx%d stride=%d pad=%d", l->k, l->r,
                               l->s, l->stride, l->pad);
        if (in.h + 2 * l->pad < l->r || in.w + 2 * l->pad < l->s)
            return FINISH_FAIL("conv: kernel %dx%d larger than padded input %dx%d", l->r, l->s,
                               in.h + 2 * l->pad, in.w + 2 * l->pad);
        l->out.c = l->k;
        l->out.h = (in.h + 2 * l->pad - l->r) / l->stride + 1;
        l->out.w = (in.w + 2 * l->pad - l->s) / l->stride + 1;
        l->theta_len = (size_t)l->k * in.c * l->r * l->s + (l->bias ? (size_t)l->k : 0);
        break;
    case SD_LAYER_LINEAR:
        if (l->out_features < 1)
            return FINISH_FAIL("linear: out_features %d", l->out_features);
        l->out.c = l->out_features;
        l->out.h = l->out.w = 1;
        l->theta_len =
            (size_t)l->out_features * sd_shape_size(in) + (l->bias ? (size_t)l->out_features : 0);
        break;
    case SD_LAYER_BN:
        if (l->eps == 0)
            l->eps = 1e-5;
        if (!(l->eps > 0))
            return FINISH_FAIL("batchnorm: eps %g", l->eps);
        l->out = in;
        l->theta_len = 2 * (size_t)in.c;
        break;
    case SD_LAYER_MAXPOOL:
    case SD_LAYER_AVGPOOL:
        if (l->kw == 0)
            l->kw = l->kh;
        if (l->sh == 0)
            l->sh = l->kh; /* PyTorch: stride defaults to the kernel size */
        if (l->sw == 0)
            l->sw = l->kw;
        if (l->kh < 1 || l->kw < 1 || l->sh < 1 || l->sw < 1 || l->ph < 0 || l->pw < 0)
            return FINISH_FAIL("%s: bad settings kernel=%dx%d stride=%dx%d pad=%dx%d", kn, l->kh,
                               l->kw, l->sh, l->sw, l->ph, l->pw);
        if (2 * l->ph > l->kh || 2 * l->pw > l->kw)
            return FINISH_FAIL("%s: padding %dx%d exceeds half the kernel %dx%d", kn, l->ph, l->pw,
                               l->kh, l->kw);
        l->out.c = in.c;
        l->out.h = pool_out(in.h, l->kh, l->sh, l->ph, l->ceil_mode);
        l->out.w = pool_out(in.w, l->kw, l->sw, l->pw, l->ceil_mode);
        if (l->out.h < 1 || l->out.w < 1)
            return FINISH_FAIL("%s: input %dx%d too small for kernel %dx%d", kn, in.h, in.w, l->kh,
                               l->kw);
        break;
    case SD_LAYER_ADAPTIVE_AVGPOOL: {
        /* the caller presets the output size in out.h/out.w (or kh, kw) */
        int oh = l->kh > 0 ? l->kh : l->out.h, ow = l->kw > 0 ? l->kw : l->out.w;
        if (oh < 1 || ow < 1)
            return FINISH_FAIL("adaptive_avgpool: output size %dx%d (set kh, kw)", oh, ow);
        l->kh = oh;
        l->kw = ow;
        l->out.c = in.c;
        l->out.h = oh;
        l->out.w = ow;
        break;
    }
    case SD_LAYER_ADD:
        for (int i = 1; i < l->n_in; i++)
            if (l->in[i].c != in.c || l->in[i].h != in.h || l->in[i].w != in.w)
                return FINISH_FAIL("add: input %d shape (%d,%d,%d) differs from (%d,%d,%d)", i,
                                   l->in[i].c, l->in[i].h, l->in[i].w, in.c, in.h, in.w);
        l->out = in;
        break;
    case SD_LAYER_CONCAT:
        l->out = in;
        for (int i = 1; i < l->n_in; i++) {
            if (l->in[i].h != in.h || l->in[i].w != in.w)
                return FINISH_FAIL("concat: input %d is %dx%d, input 0 is %dx%d", i, l->in[i].h,
                                   l->in[i].w, in.h, in.w);
            l->out.c += l->in[i].c;
        }
        break;
    case SD_LAYER_FLATTEN:
        l->out.c = (int)sd_shape_size(in);
        l->out.h = l->out.w = 1;
        break;
    case SD_LAYER_DROPOUT:
        if (!(l->p_drop >= 0 && l->p_drop < 1))
            return FINISH_FAIL("dropout: p %g not in [0,1)", l->p_drop);
        l->out = in;
        break;
    default: return FINISH_FAIL("layer: unknown kind %d", (int)l->kind);
    }
    return SD_OK;
}

size_t sd_layer_saved_size(const sd_layer *l, int n)
{
    switch (l->kind) {
    case SD_LAYER_BN: return 2 * (size_t)l->in[0].c; /* batch mode: mean, invstd */
    case SD_LAYER_DROPOUT: return (size_t)n * sd_shape_size(l->in[0]); /* the mask, when training */
    case SD_LAYER_MAXPOOL: /* the argmax of each window, int32, for the backend */
        return ((size_t)n * sd_shape_size(l->out) * sizeof(int32_t) + sizeof(sd_real) - 1) /
               sizeof(sd_real);
    default: return 0;
    }
}

size_t sd_layer_ws_size(const sd_layer *l, int n, sd_backend *be)
{
    switch (l->kind) {
    case SD_LAYER_CONV: {
        sd_conv_desc d = sd_layer_conv_desc(l, n);
        return be->conv_workspace(be, &d);
    }
    case SD_LAYER_DROPOUT: return (size_t)n * sd_shape_size(l->in[0]) * sizeof(sd_real);
    default: return 0;
    }
}

size_t sd_layer_out_size(const sd_layer *l)
{
    return sd_shape_size(l->out);
}

size_t sd_layer_in_size(const sd_layer *l, int i)
{
    if (i < 0 || i >= l->n_in)
        return 0;
    return sd_shape_size(l->in[i]);
}

static const sd_layer_ops *ops_of(sd_layer_kind k)
{
    switch (k) {
    case SD_LAYER_INPUT: return &sd_layer_ops_input;
    case SD_LAYER_CONV: return &sd_layer_ops_conv;
    case SD_LAYER_LINEAR: return &sd_layer_ops_linear;
    case SD_LAYER_BN: return &sd_layer_ops_bn;
    case SD_LAYER_RELU: return &sd_layer_ops_relu;
    case SD_LAYER_MAXPOOL: return &sd_layer_ops_maxpool;
    case SD_LAYER_AVGPOOL:
    case SD_LAYER_ADAPTIVE_AVGPOOL: return &sd_layer_ops_avgpool;
    case SD_LAYER_ADD: return &sd_layer_ops_add;
    case SD_LAYER_CONCAT: return &sd_layer_ops_concat;
    case SD_LAYER_FLATTEN: return &sd_layer_ops_flatten;
    case SD_LAYER_DROPOUT: return &sd_layer_ops_dropout;
    default: return NULL;
    }
}

enum { ENTRY_FWD, ENTRY_BWD, ENTRY_FWD_T, ENTRY_BWD_T };

static int dispatch(sd_backend *be, const sd_layer *l, sd_layer_io *io, int entry)
{
    static const char *const names[] = {"forward", "backward", "forward_tangent",
                                        "backward_tangent"};
    if (!be || !l || !io)
        return SD_EINVAL;
    const sd_layer_ops *ops = ops_of(l->kind);
    if (!ops)
        return sd_error_set(io->err, SD_EINVAL, "layer: unknown kind %d", (int)l->kind);
    if (io->n < 1)
        return sd_error_set(io->err, SD_EINVAL, "%s %s: batch size %d", sd_layer_kind_name(l->kind),
                            names[entry], io->n);
    sd_layer_fn fn = entry == ENTRY_FWD     ? ops->fwd
                     : entry == ENTRY_BWD   ? ops->bwd
                     : entry == ENTRY_FWD_T ? ops->fwd_t
                                            : ops->bwd_t;
    int rc = fn(be, l, io);
    if (rc && io->err && io->err->msg[0] &&
        strncmp(io->err->msg, sd_layer_kind_name(l->kind), strlen(sd_layer_kind_name(l->kind))) !=
            0)
        sd_error_wrap(io->err, "%s %s", sd_layer_kind_name(l->kind), names[entry]);
    return rc;
}

int sd_layer_forward(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    return dispatch(be, l, io, ENTRY_FWD);
}

int sd_layer_backward(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    return dispatch(be, l, io, ENTRY_BWD);
}

int sd_layer_forward_tangent(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    return dispatch(be, l, io, ENTRY_FWD_T);
}

int sd_layer_backward_tangent(sd_backend *be, const sd_layer *l, sd_layer_io *io)
{
    return dispatch(be, l, io, ENTRY_BWD_T);
}

/* ---- soft-target cross-entropy and row softmax ---- */

int sd_sce_forward(sd_backend *be, sd_error *err, int n, int k, const sd_real *z, const sd_real *q,
                   sd_real *p, double *loss)
{
    return be->sce_fwd(be, err, n, k, z, q, p, loss);
}

int sd_sce_backward(sd_backend *be, sd_error *err, int n, int k, const sd_real *p, const sd_real *q,
                    double g, sd_real *gz, sd_real *gq)
{
    return be->sce_bwd(be, err, n, k, p, q, g, gz, gq);
}

int sd_sce_forward_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *p,
                           const sd_real *q, const sd_real *dz, const sd_real *dq, double *dloss)
{
    return be->sce_fwd_tangent(be, err, n, k, p, q, dz, dq, dloss);
}

int sd_sce_backward_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *p,
                            const sd_real *q, const sd_real *dz, const sd_real *dq, double g,
                            double dg, sd_real *dgz, sd_real *dgq)
{
    return be->sce_bwd_tangent(be, err, n, k, p, q, dz, dq, g, dg, dgz, dgq);
}

int sd_softmax_forward(sd_backend *be, sd_error *err, int n, int k, const sd_real *y, sd_real *q)
{
    return be->softmax_fwd(be, err, n, k, y, q);
}

int sd_softmax_backward(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                        const sd_real *gq, sd_real *gy)
{
    return be->softmax_bwd(be, err, n, k, q, gq, gy);
}

int sd_softmax_forward_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                               const sd_real *dy, sd_real *dq)
{
    /* the softmax Jacobian diag(q) - q q' is symmetric: J dy = J' dy */
    SD_TRY(be->zero(be, err, dq, (size_t)n * k * sizeof(sd_real)));
    if (!dy)
        return SD_OK;
    return be->softmax_bwd(be, err, n, k, q, dy, dq);
}

int sd_softmax_backward_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                                const sd_real *dy, const sd_real *gq, const sd_real *dgq,
                                sd_real *dgy)
{
    return be->softmax_bwd_tangent(be, err, n, k, q, dy, gq, dgq, dgy);
}
