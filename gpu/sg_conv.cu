/*
 * sg_conv.cu - convolutions on cuDNN, with a plan cache keyed by shape.
 *
 * A plan holds the cuDNN descriptors of one sd_conv_desc and the algorithm
 * (and its workspace size) of each pass: forward, backward-data and
 * backward-filter.  Plans are made once per shape and kept for the backend's
 * lifetime.
 *
 * Algorithm choice, when the shape is planned through conv_workspace:
 *  - SG_MODE_DETERMINISTIC (the default): cudnnFind* times every algorithm
 *    once and the fastest that cuDNN reports as deterministic is kept.  The
 *    plan is then fixed for the backend's lifetime, so results are
 *    bit-identical run to run within a process; another process may time
 *    differently and pick another deterministic algorithm (last-bit
 *    differences, well inside what bundle replay tolerates);
 *  - SG_MODE_DETERMINISTIC_HEURISTIC: cuDNN's heuristics (cudnnGet*_v7),
 *    deterministic algorithms only, no timing: the same algorithm in every
 *    process on the same GPU model and library versions;
 *  - SG_MODE_FAST: cudnnFind*, fastest first, deterministic or not;
 *  - a failed timing (memory short) falls back to the heuristics, and a shape
 *    first met in a convolution call (below) always uses the heuristics;
 *  - always: CUDNN_FMA_MATH on the descriptor and results that need tensor
 *    cores skipped, so no TF32; at most `ws_limit` bytes of workspace
 *    (SLDD_CUDA_WS_MAX_MB, default 1024).
 *
 * Workspace: conv_workspace(d) returns the largest of the three passes'
 * sizes, and the caller passes a buffer of that size to each call.  Callers
 * plan for their largest batch and then also run smaller ones (the last
 * partial batch, the few distilled images of an inner step).  A shape met
 * first in a convolution call is planned by heuristics with the workspace of
 * the same geometry's planned larger batch as its limit, so it fits in what
 * the caller provides.  Only when no algorithm fits that limit does the plan
 * get a workspace of the backend's own, allocated (or grown) once when the
 * plan is made, never in later calls.
 *
 * Accumulation follows the header: forward y = conv + beta*y; both backward
 * passes add into their output (cuDNN beta = 1).
 */
#include "sg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sg_desc_same_geometry(const sd_conv_desc *a, const sd_conv_desc *b)
{
    return a->c == b->c && a->h == b->h && a->w == b->w && a->k == b->k && a->r == b->r &&
           a->s == b->s && a->stride == b->stride && a->pad == b->pad && a->oh == b->oh &&
           a->ow == b->ow;
}

static int sg_desc_equal(const sd_conv_desc *a, const sd_conv_desc *b)
{
    return a->n == b->n && sg_desc_same_geometry(a, b);
}

static void sg_plan_release(sg_conv_plan *p)
{
    if (p->xd)
        cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd)
        cudnnDestroyTensorDescriptor(p->yd);
    if (p->wd)
        cudnnDestroyFilterDescriptor(p->wd);
    if (p->cd)
        cudnnDestroyConvolutionDescriptor(p->cd);
    memset(p, 0, sizeof *p);
}

void sg_conv_cache_clear(sg_ctx *c)
{
    for (int i = 0; i < c->n_plans; i++)
        sg_plan_release(&c->plans[i]);
    c->n_plans = 0;
}

static int sg_tensor_core_math(cudnnMathType_t m)
{
    return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

#define SG_MAX_ALGOS 16

static int sg_pick_fwd(sd_backend *be, sd_error *err, sg_conv_plan *p, size_t cap, int timed)
{
    sg_ctx *c = sg_ctx_of(be);
    cudnnConvolutionFwdAlgoPerf_t res[SG_MAX_ALGOS];
    int got = 0;
    /* timing needs memory for every candidate; heuristics when it fails */
    if (!timed ||
        cudnnFindConvolutionForwardAlgorithm(c->cudnn, p->xd, p->wd, p->cd, p->yd, SG_MAX_ALGOS,
                                             &got, res) != CUDNN_STATUS_SUCCESS) {
        (void)cudaGetLastError(); /* a failed allocation inside Find is not ours to report */
        SG_CK_CUDNN(be, cudnnGetConvolutionForwardAlgorithm_v7(c->cudnn, p->xd, p->wd, p->cd, p->yd,
                                                               SG_MAX_ALGOS, &got, res));
    }
    for (int i = 0; i < got; i++) {
        size_t ws = 0;
        if (res[i].status != CUDNN_STATUS_SUCCESS || sg_tensor_core_math(res[i].mathType))
            continue;
        if (c->deterministic && res[i].determinism != CUDNN_DETERMINISTIC)
            continue;
        if (cudnnGetConvolutionForwardWorkspaceSize(c->cudnn, p->xd, p->wd, p->cd, p->yd,
                                                    res[i].algo, &ws) != CUDNN_STATUS_SUCCESS ||
            ws > cap)
            continue;
        p->fwd = res[i].algo;
        p->ws_fwd = ws;
        return 0;
    }
    return sd_error_set(err, SD_EUNSUPPORTED,
                        "cuda conv: no usable cuDNN forward algorithm within %zu bytes of "
                        "workspace (%d candidates)",
                        cap, got);
}

static int sg_pick_bwd_data(sd_backend *be, sd_error *err, sg_conv_plan *p, size_t cap, int timed)
{
    sg_ctx *c = sg_ctx_of(be);
    cudnnConvolutionBwdDataAlgoPerf_t res[SG_MAX_ALGOS];
    int got = 0;
    if (!timed || cudnnFindConvolutionBackwardDataAlgorithm(c->cudnn, p->wd, p->yd, p->cd, p->xd,
                                                            SG_MAX_ALGOS, &got,
                                                            res) != CUDNN_STATUS_SUCCESS) {
        (void)cudaGetLastError(); /* a failed allocation inside Find is not ours to report */
        SG_CK_CUDNN(be, cudnnGetConvolutionBackwardDataAlgorithm_v7(
                            c->cudnn, p->wd, p->yd, p->cd, p->xd, SG_MAX_ALGOS, &got, res));
    }
    for (int i = 0; i < got; i++) {
        size_t ws = 0;
        if (res[i].status != CUDNN_STATUS_SUCCESS || sg_tensor_core_math(res[i].mathType))
            continue;
        if (c->deterministic && res[i].determinism != CUDNN_DETERMINISTIC)
            continue;
        if (cudnnGetConvolutionBackwardDataWorkspaceSize(
                c->cudnn, p->wd, p->yd, p->cd, p->xd, res[i].algo, &ws) != CUDNN_STATUS_SUCCESS ||
            ws > cap)
            continue;
        p->bwd_data = res[i].algo;
        p->ws_data = ws;
        return 0;
    }
    return sd_error_set(err, SD_EUNSUPPORTED,
                        "cuda conv: no usable cuDNN backward-data algorithm within %zu bytes of "
                        "workspace (%d candidates)",
                        cap, got);
}

static int sg_pick_bwd_filter(sd_backend *be, sd_error *err, sg_conv_plan *p, size_t cap, int timed)
{
    sg_ctx *c = sg_ctx_of(be);
    cudnnConvolutionBwdFilterAlgoPerf_t res[SG_MAX_ALGOS];
    int got = 0;
    if (!timed || cudnnFindConvolutionBackwardFilterAlgorithm(c->cudnn, p->xd, p->yd, p->cd, p->wd,
                                                              SG_MAX_ALGOS, &got,
                                                              res) != CUDNN_STATUS_SUCCESS) {
        (void)cudaGetLastError(); /* a failed allocation inside Find is not ours to report */
        SG_CK_CUDNN(be, cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                            c->cudnn, p->xd, p->yd, p->cd, p->wd, SG_MAX_ALGOS, &got, res));
    }
    for (int i = 0; i < got; i++) {
        size_t ws = 0;
        if (res[i].status != CUDNN_STATUS_SUCCESS || sg_tensor_core_math(res[i].mathType))
            continue;
        if (c->deterministic && res[i].determinism != CUDNN_DETERMINISTIC)
            continue;
        if (cudnnGetConvolutionBackwardFilterWorkspaceSize(
                c->cudnn, p->xd, p->yd, p->cd, p->wd, res[i].algo, &ws) != CUDNN_STATUS_SUCCESS ||
            ws > cap)
            continue;
        p->bwd_filter = res[i].algo;
        p->ws_filter = ws;
        return 0;
    }
    return sd_error_set(err, SD_EUNSUPPORTED,
                        "cuda conv: no usable cuDNN backward-filter algorithm within %zu bytes "
                        "of workspace (%d candidates)",
                        cap, got);
}

static int sg_plan_describe(sd_backend *be, sd_error *err, sg_conv_plan *p)
{
    const sd_conv_desc *d = &p->d;
    int on, oc, ohh, oww;
    SG_CK_CUDNN(be, cudnnCreateTensorDescriptor(&p->xd));
    SG_CK_CUDNN(be, cudnnCreateTensorDescriptor(&p->yd));
    SG_CK_CUDNN(be, cudnnCreateFilterDescriptor(&p->wd));
    SG_CK_CUDNN(be, cudnnCreateConvolutionDescriptor(&p->cd));
    SG_CK_CUDNN(be, cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->n,
                                               d->c, d->h, d->w));
    SG_CK_CUDNN(be, cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->n,
                                               d->k, d->oh, d->ow));
    SG_CK_CUDNN(be, cudnnSetFilter4dDescriptor(p->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, d->k,
                                               d->c, d->r, d->s));
    SG_CK_CUDNN(be, cudnnSetConvolution2dDescriptor(p->cd, d->pad, d->pad, d->stride, d->stride, 1,
                                                    1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    /* FMA only: keeps TF32 tensor cores out of FP32 convolutions. */
    SG_CK_CUDNN(be, cudnnSetConvolutionMathType(p->cd, CUDNN_FMA_MATH));
    SG_CK_CUDNN(be,
                cudnnGetConvolution2dForwardOutputDim(p->cd, p->xd, p->wd, &on, &oc, &ohh, &oww));
    if (on != d->n || oc != d->k || ohh != d->oh || oww != d->ow)
        return sd_error_set(err, SD_EINVAL,
                            "cuda conv: output size %dx%d in the descriptor, cuDNN computes "
                            "%dx%d",
                            d->oh, d->ow, ohh, oww);
    return 0;
}

static int sg_plan_make(sd_backend *be, sd_error *err, const sd_conv_desc *d, size_t cap, int timed,
                        sg_conv_plan *p)
{
    memset(p, 0, sizeof *p);
    p->d = *d;
    int rc = sg_plan_describe(be, err, p);
    /* A timed search whose results leave nothing usable (for instance every
     * deterministic candidate failed to get its workspace while timing) gets
     * a second chance from the heuristics. */
    if (!rc && (rc = sg_pick_fwd(be, err, p, cap, timed)) == SD_EUNSUPPORTED && timed)
        rc = sg_pick_fwd(be, err, p, cap, 0);
    if (!rc && (rc = sg_pick_bwd_data(be, err, p, cap, timed)) == SD_EUNSUPPORTED && timed)
        rc = sg_pick_bwd_data(be, err, p, cap, 0);
    if (!rc && (rc = sg_pick_bwd_filter(be, err, p, cap, timed)) == SD_EUNSUPPORTED && timed)
        rc = sg_pick_bwd_filter(be, err, p, cap, 0);
    if (rc)
        sg_plan_release(p);
    return rc;
}

static int sg_check_desc(sd_backend *be, sd_error *err, const sd_conv_desc *d)
{
    if (d->n <= 0 || d->c <= 0 || d->h <= 0 || d->w <= 0 || d->k <= 0 || d->r <= 0 || d->s <= 0 ||
        d->stride <= 0 || d->pad < 0 || d->h + 2 * d->pad < d->r || d->w + 2 * d->pad < d->s ||
        d->oh != (d->h + 2 * d->pad - d->r) / d->stride + 1 ||
        d->ow != (d->w + 2 * d->pad - d->s) / d->stride + 1)
        return sd_error_set(err, SD_EINVAL,
                            "cuda conv: bad shape n=%d c=%d h=%d w=%d k=%d r=%d s=%d stride=%d "
                            "pad=%d oh=%d ow=%d",
                            d->n, d->c, d->h, d->w, d->k, d->r, d->s, d->stride, d->pad, d->oh,
                            d->ow);
    return 0;
}

static size_t sg_plan_ws(const sg_conv_plan *p)
{
    size_t ws = p->ws_fwd;
    if (p->ws_data > ws)
        ws = p->ws_data;
    if (p->ws_filter > ws)
        ws = p->ws_filter;
    return ws;
}

/* Grow the backend's own workspace to fit plan p (plan time only). */
static int sg_own_ws_reserve(sd_backend *be, sd_error *err, sg_conv_plan *p)
{
    sg_ctx *c = sg_ctx_of(be);
    size_t need = sg_plan_ws(p);
    if (need <= c->own_ws_size)
        return 0;
    if (c->own_ws) {
        SG_CK_CUDA(be, cudaStreamSynchronize(c->stream)); /* queued work may still use it */
        SG_CK_CUDA(be, cudaFree(c->own_ws));
        c->own_ws = NULL;
        c->own_ws_size = 0;
    }
    cudaError_t e = cudaMalloc(&c->own_ws, need);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        c->own_ws = NULL;
        return sd_error_set(err, SD_ENOMEM, "cuda conv: cudaMalloc(%zu) for workspace: %s", need,
                            cudaGetErrorString(e));
    }
    c->own_ws_size = need;
    return 0;
}

/* Find (or make) the plan for d and copy it to *out.  requested: the call
 * comes from conv_workspace, which tells the caller how much to provide. */
static int sg_plan_get_locked(sd_backend *be, sd_error *err, const sd_conv_desc *d, int requested,
                              sg_conv_plan *out)
{
    sg_ctx *c = sg_ctx_of(be);
    for (int i = 0; i < c->n_plans; i++) {
        if (sg_desc_equal(&c->plans[i].d, d)) {
            if (requested)
                c->plans[i].requested = 1;
            *out = c->plans[i];
            return 0;
        }
    }
    size_t cap = c->ws_limit;
    int timed = c->timed_search;
    if (!requested) {
        /* Unplanned batch size: stay within what the caller was told for
         * the nearest larger batch of the same geometry. */
        const sg_conv_plan *best = NULL;
        for (int i = 0; i < c->n_plans; i++) {
            const sg_conv_plan *q = &c->plans[i];
            if (q->requested && q->d.n >= d->n && sg_desc_same_geometry(&q->d, d) &&
                (!best || q->d.n < best->d.n))
                best = q;
        }
        size_t have = best && !best->own_ws ? sg_plan_ws(best) : 0;
        if (have < cap)
            cap = have;
        timed = 0;
    }
    if (c->n_plans == c->cap_plans) {
        int ncap = c->cap_plans ? 2 * c->cap_plans : 32;
        sg_conv_plan *np = (sg_conv_plan *)realloc(c->plans, sizeof *np * (size_t)ncap);
        if (!np)
            return sd_error_set(err, SD_ENOMEM, "cuda conv: out of memory for plans");
        c->plans = np;
        c->cap_plans = ncap;
    }
    sg_conv_plan p;
    int rc = sg_plan_make(be, err, d, cap, timed, &p);
    int own = 0;
    if (rc == SD_EUNSUPPORTED && !requested && cap < c->ws_limit) {
        rc = sg_plan_make(be, err, d, c->ws_limit, 0, &p);
        own = 1;
    }
    if (!rc && own) {
        rc = sg_own_ws_reserve(be, err, &p);
        if (rc)
            sg_plan_release(&p);
    }
    if (rc) {
        if (!requested)
            sd_error_wrap(err, "planning convolution n=%d c=%d %dx%d k=%d %dx%d", d->n, d->c, d->h,
                          d->w, d->k, d->r, d->s);
        return rc;
    }
    p.requested = requested;
    p.own_ws = own;
    c->plans[c->n_plans++] = p;
    *out = p;
    return 0;
}

static int sg_plan_get(sd_backend *be, sd_error *err, const sd_conv_desc *d, int requested,
                       sg_conv_plan *out)
{
    SG_TRY(sg_check_desc(be, err, d));
    sg_ctx *c = sg_ctx_of(be);
    SG_ENTER(be);
    pthread_mutex_lock(&c->lock);
    int rc = sg_plan_get_locked(be, err, d, requested, out);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static size_t sg_conv_workspace(sd_backend *be, const sd_conv_desc *d)
{
    sg_conv_plan p;
    /* a failure here is planned again, and reported, by the convolution call */
    if (sg_plan_get(be, NULL, d, 1, &p))
        return 0;
    return p.own_ws ? 0 : sg_plan_ws(&p);
}

static int sg_ws_pick(sd_backend *be, sd_error *err, const sg_conv_plan *p, size_t need, void **ws)
{
    if (p->own_ws)
        *ws = sg_ctx_of(be)->own_ws;
    if (need > 0 && !*ws)
        return sd_error_set(err, SD_EINVAL,
                            "cuda conv: needs %zu bytes of workspace but none was given", need);
    return 0;
}

static int sg_conv_fwd(sd_backend *be, sd_error *err, const sd_conv_desc *d, const sd_real *x,
                       const sd_real *w, sd_real beta, sd_real *y, void *ws)
{
    sg_conv_plan p;
    SG_TRY(sg_plan_get(be, err, d, 0, &p));
    SG_TRY(sg_ws_pick(be, err, &p, p.ws_fwd, &ws));
    const float one = 1.0f, b = beta;
    SG_CK_CUDNN(be, cudnnConvolutionForward(sg_ctx_of(be)->cudnn, &one, p.xd, x, p.wd, w, p.cd,
                                            p.fwd, ws, p.ws_fwd, &b, p.yd, y));
    return 0;
}

static int sg_conv_bwd_data(sd_backend *be, sd_error *err, const sd_conv_desc *d, const sd_real *gy,
                            const sd_real *w, sd_real *gx, void *ws)
{
    sg_conv_plan p;
    SG_TRY(sg_plan_get(be, err, d, 0, &p));
    SG_TRY(sg_ws_pick(be, err, &p, p.ws_data, &ws));
    const float one = 1.0f;
    SG_CK_CUDNN(be, cudnnConvolutionBackwardData(sg_ctx_of(be)->cudnn, &one, p.wd, w, p.yd, gy,
                                                 p.cd, p.bwd_data, ws, p.ws_data, &one, p.xd, gx));
    return 0;
}

static int sg_conv_bwd_filter(sd_backend *be, sd_error *err, const sd_conv_desc *d,
                              const sd_real *x, const sd_real *gy, sd_real *gw, void *ws)
{
    sg_conv_plan p;
    SG_TRY(sg_plan_get(be, err, d, 0, &p));
    SG_TRY(sg_ws_pick(be, err, &p, p.ws_filter, &ws));
    const float one = 1.0f;
    SG_CK_CUDNN(be,
                cudnnConvolutionBackwardFilter(sg_ctx_of(be)->cudnn, &one, p.xd, x, p.yd, gy, p.cd,
                                               p.bwd_filter, ws, p.ws_filter, &one, p.wd, gw));
    return 0;
}

void sg_install_conv(sd_backend *be)
{
    be->conv_workspace = sg_conv_workspace;
    be->conv_fwd = sg_conv_fwd;
    be->conv_bwd_data = sg_conv_bwd_data;
    be->conv_bwd_filter = sg_conv_bwd_filter;
}
