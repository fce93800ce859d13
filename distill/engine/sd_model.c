/*
 * sd_model.c - model graphs and their executor (see sd_model.h).
 *
 * The executor keeps, per layer, its output y, the gradient g of the loss
 * with respect to y, and with SD_EXEC_TANGENT the tangents dy and dg.  The
 * passes are:
 *   forward            y_i = f_i(y_inputs)                 (topological order)
 *   tangent forward    dy_i along theta-tangent v          (same order)
 *   backward           g_inputs += J^T g_i                 (reverse order)
 *   tangent backward   dg_inputs += d(J^T g_i)             (reverse order)
 * The input layer (index 0) holds a copy of x, so g_0 and dg_0 are the
 * derivatives with respect to the input images.
 */
#include "sd_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The state one forward and backward leave behind: per-layer outputs,
 * their gradients, what each layer saved, the targets and the softmax. */
/* Shards: at most this many, of at least SD_EXEC_SHARD_MIN samples each.
 * The maximum can be set at build time (-DSD_EXEC_MAX_SHARDS=N) to study how
 * results move with the summation order alone (docs/experiments.md). */
#ifndef SD_EXEC_MAX_SHARDS
#define SD_EXEC_MAX_SHARDS 8
#endif
#define SD_EXEC_SHARD_MIN 4

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
    sd_real *gq;       /* (nmax, classes) gradient w.r.t. targets */
    sd_real *dgq;      /* (nmax, classes) its tangent */
    int want_g0;       /* this call needs the gradient w.r.t. the input */
    double loss_scale; /* weight of this exec's mean loss in the caller's (shards) */
    /* Batch shards (see shard_count): the samples of a call are split into
     * nshards contiguous parts, each run by its own sub-exec as one task of
     * be->parallel.  Shard 0 writes the caller's gtheta and hv directly,
     * shard s > 0 into sg[s] and shv[s], added after in shard order. */
    int nshards;
    sd_exec *shard[SD_EXEC_MAX_SHARDS];
    sd_real *sg[SD_EXEC_MAX_SHARDS], *shv[SD_EXEC_MAX_SHARDS];
    sd_real *logits; /* (nmax, classes) gathered from the shards */
};

/* ---------------------------------------------------------------- build */

int sd_model_begin(sd_model **out, const sd_model_spec *spec, sd_error *err)
{
    *out = NULL;
    sd_model *m = calloc(1, sizeof *m);
    if (!m)
        return sd_error_set(err, SD_ENOMEM, "out of memory building model");
    m->spec = *spec;
    sd_layer in = {0};
    in.kind = SD_LAYER_INPUT;
    in.out.c = spec->in_c;
    in.out.h = spec->in_h;
    in.out.w = spec->in_w;
    if (sd_model_add(m, &in, NULL, 0, "input", err) < 0) {
        sd_model_destroy(m);
        return err ? err->code : SD_EINVAL;
    }
    *out = m;
    return SD_OK;
}

int sd_model_add(sd_model *m, const sd_layer *l, const int *inputs, int n_in, const char *name,
                 sd_error *err)
{
    if (n_in < 0 || n_in > SD_LAYER_MAX_IN)
        return sd_error_set(err, SD_EINVAL, "layer %s: %d inputs", name, n_in);
    if (m->n_layers == m->cap_layers) {
        int cap = m->cap_layers ? 2 * m->cap_layers : 32;
        sd_layer *nl = realloc(m->layers, (size_t)cap * sizeof *nl);
        if (!nl)
            return sd_error_set(err, SD_ENOMEM, "out of memory building model");
        m->layers = nl;
        int(*ni)[SD_LAYER_MAX_IN] = realloc(m->inputs, (size_t)cap * sizeof *ni);
        if (!ni)
            return sd_error_set(err, SD_ENOMEM, "out of memory building model");
        m->inputs = ni;
        char(*nn)[48] = realloc(m->names, (size_t)cap * sizeof *nn);
        if (!nn)
            return sd_error_set(err, SD_ENOMEM, "out of memory building model");
        m->names = nn;
        m->cap_layers = cap;
    }
    int idx = m->n_layers;
    sd_layer L = *l;
    L.n_in = n_in;
    for (int i = 0; i < SD_LAYER_MAX_IN; i++)
        m->inputs[idx][i] = -1;
    for (int i = 0; i < n_in; i++) {
        if (inputs[i] < 0 || inputs[i] >= idx)
            return sd_error_set(err, SD_EINVAL, "layer %s: input %d out of range", name, inputs[i]);
        m->inputs[idx][i] = inputs[i];
        L.in[i] = m->layers[inputs[i]].out;
    }
    if (L.kind != SD_LAYER_INPUT) {
        int rc = sd_layer_finish(&L, err);
        if (rc)
            return sd_error_wrap(err, "layer %d (%s)", idx, name);
    } else {
        L.theta_len = 0;
    }
    L.theta_off = m->n_theta;
    m->n_theta += L.theta_len;
    if (L.kind == SD_LAYER_BN) {
        L.bn_off = m->n_bn;
        m->n_bn += 2 * (size_t)L.out.c;
        m->has_bn = 1;
    }
    m->layers[idx] = L;
    snprintf(m->names[idx], sizeof m->names[idx], "%s", name);
    m->n_layers++;
    return idx;
}

void sd_model_destroy(sd_model *m)
{
    if (!m)
        return;
    free(m->layers);
    free(m->inputs);
    free(m->names);
    free(m);
}

/* ---------------------------------------------------------------- exec */

static size_t layer_out_elems(const sd_model *m, int i, int n)
{
    return (size_t)n * sd_layer_out_size(&m->layers[i]);
}

static void free_layer_bufs(sd_backend *be, int L, sd_real **b)
{
    if (!b)
        return;
    for (int i = 0; i < L; i++)
        be->free(be, b[i]);
    free(b);
}

void sd_exec_destroy(sd_exec *ex)
{
    if (!ex)
        return;
    sd_backend *be = ex->be;
    int L = ex->m->n_layers;
    for (int k = 0; ex->slots && k < ex->nslots; k++) {
        exec_slot *s = &ex->slots[k];
        free_layer_bufs(be, L, s->y);
        free_layer_bufs(be, L, s->g);
        free_layer_bufs(be, L, s->saved);
        be->free(be, s->q);
        be->free(be, s->p);
    }
    free(ex->slots);
    free_layer_bufs(be, L, ex->dy);
    free_layer_bufs(be, L, ex->dg);
    be->free(be, ex->ws);
    be->free(be, ex->gq);
    be->free(be, ex->dgq);
    for (int k = 0; k < ex->nshards; k++) {
        sd_exec_destroy(ex->shard[k]);
        be->free(be, ex->sg[k]);
        be->free(be, ex->shv[k]);
    }
    be->free(be, ex->logits);
    free(ex);
}

static int exec_alloc(sd_exec *ex, size_t elems, sd_real **out, sd_error *err)
{
    *out = NULL;
    if (elems == 0)
        return SD_OK;
    int rc = ex->be->alloc(ex->be, err, elems * sizeof(sd_real), (void **)out);
    if (rc)
        return sd_error_wrap_code(err, rc, "allocating %zu values on %s", elems, ex->be->name);
    return SD_OK;
}

static int alloc_layer_bufs(sd_exec *ex, sd_real ***out, int saved, sd_error *err)
{
    const sd_model *m = ex->m;
    *out = calloc((size_t)m->n_layers, sizeof **out);
    if (!*out)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    for (int i = 0; i < m->n_layers; i++) {
        size_t e = saved ? (m->layers[i].kind == SD_LAYER_INPUT
                                ? 0
                                : sd_layer_saved_size(&m->layers[i], ex->nmax))
                         : layer_out_elems(m, i, ex->nmax);
        int rc = exec_alloc(ex, e, &(*out)[i], err);
        if (rc)
            return rc;
    }
    return SD_OK;
}

size_t sd_exec_slot_bytes(const sd_model *m, int nmax)
{
    size_t e = 2 * (size_t)nmax * (size_t)m->spec.classes;
    for (int i = 0; i < m->n_layers; i++) {
        e += 2 * layer_out_elems(m, i, nmax);
        if (m->layers[i].kind != SD_LAYER_INPUT)
            e += sd_layer_saved_size(&m->layers[i], nmax);
    }
    return e * sizeof(sd_real);
}

static sd_exec *exec_new(const sd_model *m, sd_backend *be, int nmax, unsigned flags)
{
    sd_exec *ex = calloc(1, sizeof *ex);
    if (ex) {
        ex->m = m;
        ex->be = be;
        ex->nmax = nmax;
        ex->flags = flags;
        ex->loss_scale = 1.0;
    }
    return ex;
}

/* One exec holding every buffer itself (no shards). */
static int create_plain(sd_exec **out, const sd_model *m, sd_backend *be, int nmax, unsigned flags,
                        int nslots, sd_error *err)
{
    *out = NULL;
    sd_exec *ex = exec_new(m, be, nmax, flags);
    if (!ex)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    int L = m->n_layers, rc = SD_OK;
    size_t qk = (size_t)nmax * (size_t)m->spec.classes;
    ex->slots = calloc((size_t)nslots, sizeof *ex->slots);
    if (!ex->slots) {
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
        goto fail;
    }
    ex->nslots = nslots;
    for (int k = 0; k < nslots; k++) {
        exec_slot *s = &ex->slots[k];
        if ((rc = alloc_layer_bufs(ex, &s->y, 0, err)) ||
            (rc = alloc_layer_bufs(ex, &s->g, 0, err)) ||
            (rc = alloc_layer_bufs(ex, &s->saved, 1, err)) ||
            (rc = exec_alloc(ex, qk, &s->q, err)) || (rc = exec_alloc(ex, qk, &s->p, err)))
            goto fail;
    }
    if ((flags & SD_EXEC_TANGENT) && ((rc = alloc_layer_bufs(ex, &ex->dy, 0, err)) ||
                                      (rc = alloc_layer_bufs(ex, &ex->dg, 0, err))))
        goto fail;
    size_t ws = 0;
    for (int i = 0; i < L; i++) {
        const sd_layer *l = &m->layers[i];
        if (l->kind != SD_LAYER_INPUT) {
            size_t w = sd_layer_ws_size(l, nmax, be);
            if (w > ws)
                ws = w;
        }
    }
    if (ws) {
        rc = be->alloc(be, err, ws, &ex->ws);
        if (rc) {
            rc = sd_error_wrap_code(err, rc, "allocating %zu bytes of workspace", ws);
            goto fail;
        }
    }
    if ((rc = exec_alloc(ex, qk, &ex->gq, err)) || (rc = exec_alloc(ex, qk, &ex->dgq, err)))
        goto fail;
    rc = sd_exec_use_slot(ex, 0, err);
    if (rc)
        goto fail;
    *out = ex;
    return SD_OK;
fail:
    sd_exec_destroy(ex);
    return rc;
}

/* How many shards an exec for batches of nmax gets.  Only where the backend
 * can run tasks in parallel and no layer couples the samples of a batch
 * (batch norm with batch statistics does; an SD_EXEC_INFERENCE exec only
 * runs frozen batch norm), and never dependent on the thread count, so
 * results are the same with any number of threads. */
static int shard_count(const sd_model *m, const sd_backend *be, int nmax, unsigned flags)
{
    if (!be->parallel || (m->has_bn && !(flags & SD_EXEC_INFERENCE)))
        return 1;
    int p = nmax / SD_EXEC_SHARD_MIN;
    return p < 1 ? 1 : p > SD_EXEC_MAX_SHARDS ? SD_EXEC_MAX_SHARDS : p;
}

int sd_exec_create_slots(sd_exec **out, const sd_model *m, sd_backend *be, int nmax, unsigned flags,
                         int nslots, sd_error *err)
{
    *out = NULL;
    if (nmax <= 0)
        return sd_error_set(err, SD_EINVAL, "batch size must be positive");
    if (nslots <= 0)
        return sd_error_set(err, SD_EINVAL, "an exec needs at least one state slot");
    int P = shard_count(m, be, nmax, flags);
    if (P == 1)
        return create_plain(out, m, be, nmax, flags, nslots, err);
    sd_exec *ex = exec_new(m, be, nmax, flags);
    if (!ex)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    int rc = SD_OK;
    ex->nslots = nslots;
    for (int k = 0; k < P; k++) {
        ex->nshards = k + 1;
        if ((rc = create_plain(&ex->shard[k], m, be, (nmax + P - 1) / P, flags, nslots, err)))
            goto fail;
        if (k > 0 &&
            ((rc = exec_alloc(ex, m->n_theta, &ex->sg[k], err)) ||
             ((flags & SD_EXEC_TANGENT) && (rc = exec_alloc(ex, m->n_theta, &ex->shv[k], err)))))
            goto fail;
    }
    if ((rc = exec_alloc(ex, (size_t)nmax * (size_t)m->spec.classes, &ex->logits, err)))
        goto fail;
    *out = ex;
    return SD_OK;
fail:
    sd_exec_destroy(ex);
    return rc;
}

int sd_exec_create(sd_exec **out, const sd_model *m, sd_backend *be, int nmax, unsigned flags,
                   sd_error *err)
{
    return sd_exec_create_slots(out, m, be, nmax, flags, 1, err);
}

int sd_exec_use_slot(sd_exec *ex, int k, sd_error *err)
{
    if (k < 0 || k >= ex->nslots)
        return sd_error_set(err, SD_EINVAL, "exec slot %d of %d", k, ex->nslots);
    if (ex->nshards) {
        ex->cur = k;
        for (int j = 0; j < ex->nshards; j++)
            if (sd_exec_use_slot(ex->shard[j], k, err))
                return SD_EINVAL;
        return SD_OK;
    }
    exec_slot *s = &ex->slots[k];
    ex->cur = k;
    ex->y = s->y;
    ex->g = s->g;
    ex->saved = s->saved;
    ex->q = s->q;
    ex->p = s->p;
    return SD_OK;
}

int sd_exec_slots(const sd_exec *ex)
{
    return ex->nslots;
}

/* A failing call's message (written into err by the backend or layer) is
 * wrapped with what the executor was doing; never formatted into itself. */
#define BE_CALL(ex, call, err, what)                         \
    do {                                                     \
        int rc_ = (call);                                    \
        if (rc_)                                             \
            return sd_error_wrap_code(err, rc_, "%s", what); \
    } while (0)

static int check_args(sd_exec *ex, const sd_exec_args *a, sd_error *err)
{
    if (a->n <= 0 || a->n > ex->nmax)
        return sd_error_set(err, SD_EINVAL, "batch of %d samples, exec holds 1..%d", a->n,
                            ex->nmax);
    if (a->bn_mode == SD_BN_FROZEN && ex->m->has_bn && !a->theta_bn)
        return sd_error_set(err, SD_EINVAL, "frozen batch-norm mode needs theta_bn");
    if ((ex->flags & SD_EXEC_INFERENCE) && ex->m->has_bn && a->bn_mode != SD_BN_FROZEN)
        return sd_error_set(err, SD_EINVAL,
                            "an exec made for inference runs batch norm frozen only");
    return SD_OK;
}

/* Fill the per-layer io for layer i; pass selects which buffers are wired. */
static void wire_io(sd_exec *ex, const sd_exec_args *a, int i, sd_layer_io *io, const sd_real *v,
                    sd_real *gtheta, sd_real *hv)
{
    const sd_model *m = ex->m;
    const sd_layer *l = &m->layers[i];
    memset(io, 0, sizeof *io);
    io->n = a->n;
    io->bn_mode = a->bn_mode;
    for (int j = 0; j < l->n_in; j++) {
        int in = m->inputs[i][j];
        io->x[j] = ex->y[in];
        /* the first layer's input gradient is wasted work unless asked for */
        io->gx[j] = (in == 0 && !ex->want_g0) ? NULL : ex->g[in];
        if (ex->dy)
            io->dx[j] = in == 0 ? NULL : ex->dy[in];
        if (ex->dg)
            io->dgx[j] = (in == 0 && !ex->want_g0) ? NULL : ex->dg[in];
    }
    io->y = ex->y[i];
    io->gy = ex->g[i];
    if (ex->dy) {
        io->dy = ex->dy[i];
        io->dgy = ex->dg[i];
    }
    io->theta = a->theta + l->theta_off;
    io->dtheta = v ? v + l->theta_off : NULL;
    io->gtheta = gtheta ? gtheta + l->theta_off : NULL;
    io->dgtheta = hv ? hv + l->theta_off : NULL;
    io->theta_bn = a->theta_bn && l->kind == SD_LAYER_BN ? a->theta_bn + l->bn_off : NULL;
    io->saved = ex->saved[i];
    io->ws = ex->ws;
}

static int run_forward(sd_exec *ex, const sd_exec_args *a, sd_error *err)
{
    const sd_model *m = ex->m;
    ex->slots[ex->cur].has_backward = 0;
    BE_CALL(
        ex,
        ex->be->copy(ex->be, err, ex->y[0], a->x, layer_out_elems(m, 0, a->n) * sizeof(sd_real)),
        err, "copying input");
    for (int i = 1; i < m->n_layers; i++) {
        sd_layer_io io;
        wire_io(ex, a, i, &io, NULL, NULL, NULL);
        io.err = err;
        int rc = sd_layer_forward(ex->be, &m->layers[i], &io);
        if (rc)
            return sd_error_wrap_code(err, rc, "forward of layer %s", m->names[i]);
    }
    return SD_OK;
}

static int make_targets(sd_exec *ex, const sd_exec_args *a, sd_error *err)
{
    int K = ex->m->spec.classes;
    size_t bytes = (size_t)a->n * (size_t)K * sizeof(sd_real);
    if (a->label_mode == SD_LABEL_SOFTMAX)
        BE_CALL(ex, ex->be->softmax_fwd(ex->be, err, a->n, K, a->y, ex->q), err, "label softmax");
    else
        BE_CALL(ex, ex->be->copy(ex->be, err, ex->q, a->y, bytes), err, "copying labels");
    return SD_OK;
}

static int zero_grads(sd_exec *ex, sd_real **bufs, int n, sd_error *err)
{
    for (int i = 0; i < ex->m->n_layers; i++)
        BE_CALL(ex,
                ex->be->zero(ex->be, err, bufs[i], layer_out_elems(ex->m, i, n) * sizeof(sd_real)),
                err, "zeroing gradients");
    return SD_OK;
}

static int run_backward(sd_exec *ex, const sd_exec_args *a, sd_real *gtheta, sd_error *err)
{
    const sd_model *m = ex->m;
    for (int i = m->n_layers - 1; i >= 1; i--) {
        sd_layer_io io;
        wire_io(ex, a, i, &io, NULL, gtheta, NULL);
        io.err = err;
        int rc = sd_layer_backward(ex->be, &m->layers[i], &io);
        if (rc)
            return sd_error_wrap_code(err, rc, "backward of layer %s", m->names[i]);
    }
    return SD_OK;
}

/* gy += J_softmax^T gq when the labels are parameterised by a softmax. */
static int labels_backward(sd_exec *ex, const sd_exec_args *a, const sd_real *gq, sd_real *gy,
                           sd_error *err)
{
    int K = ex->m->spec.classes;
    if (a->label_mode == SD_LABEL_SOFTMAX)
        BE_CALL(ex, ex->be->softmax_bwd(ex->be, err, a->n, K, ex->q, gq, gy), err,
                "label softmax backward");
    else
        BE_CALL(ex, ex->be->axpy(ex->be, err, (size_t)a->n * (size_t)K, 1, gq, gy), err,
                "label gradient");
    return SD_OK;
}

static int run_sharded(sd_exec *ex, int kind, const sd_exec_args *a, const sd_real *v, double *loss,
                       sd_real *gtheta, sd_real *hv, sd_real *gx, sd_real *gy, sd_error *err);

enum { JOB_FORWARD, JOB_LOSS_GRAD, JOB_HVP, JOB_HVP_CACHED };

int sd_exec_forward(sd_exec *ex, const sd_exec_args *a, sd_error *err)
{
    sd_error_clear(err);
    if (ex->nshards)
        return run_sharded(ex, JOB_FORWARD, a, NULL, NULL, NULL, NULL, NULL, NULL, err);
    int rc = check_args(ex, a, err);
    return rc ? rc : run_forward(ex, a, err);
}

const sd_real *sd_exec_logits(const sd_exec *ex)
{
    return ex->nshards ? ex->logits : ex->y[ex->m->n_layers - 1];
}

/* Forward, loss and (when any gradient is asked for, or always with
 * force_bwd) backward: gtheta += dl/dtheta, and with want_gx the input
 * gradient in g[0], with want_gy the target gradient in gq.  The slot then
 * holds this backward. */
static int forward_backward(sd_exec *ex, const sd_exec_args *a, double *loss, sd_real *gtheta,
                            int want_gx, int want_gy, int force_bwd, sd_error *err)
{
    int rc, last = ex->m->n_layers - 1, K = ex->m->spec.classes;
    size_t nk = (size_t)a->n * (size_t)K;
    if ((rc = check_args(ex, a, err)) || (rc = make_targets(ex, a, err)) ||
        (rc = run_forward(ex, a, err)))
        return rc;
    double l = 0;
    BE_CALL(ex, ex->be->sce_fwd(ex->be, err, a->n, K, ex->y[last], ex->q, ex->p, &l), err, "loss");
    if (loss)
        *loss = l;
    if (!gtheta && !want_gx && !want_gy && !force_bwd)
        return SD_OK;
    ex->want_g0 = want_gx;
    if ((rc = zero_grads(ex, ex->g, a->n, err)))
        return rc;
    if (want_gy)
        BE_CALL(ex, ex->be->zero(ex->be, err, ex->gq, nk * sizeof(sd_real)), err, "zeroing");
    BE_CALL(ex,
            ex->be->sce_bwd(ex->be, err, a->n, K, ex->p, ex->q, ex->loss_scale, ex->g[last],
                            want_gy ? ex->gq : NULL),
            err, "loss backward");
    if ((rc = run_backward(ex, a, gtheta, err)))
        return rc;
    exec_slot *s = &ex->slots[ex->cur];
    s->args = *a;
    s->has_backward = 1;
    return SD_OK;
}

static int loss_grad_one(sd_exec *ex, const sd_exec_args *a, double *loss, sd_real *gtheta,
                         sd_real *gx, sd_real *gy, sd_error *err)
{
    int rc = forward_backward(ex, a, loss, gtheta, gx != NULL, gy != NULL, 0, err);
    if (!rc && gx)
        rc = ex->be->axpy(ex->be, err, layer_out_elems(ex->m, 0, a->n), 1, ex->g[0], gx);
    if (rc)
        return sd_error_wrap_code(err, rc, "input gradient");
    if (!rc && gy)
        rc = labels_backward(ex, a, ex->gq, gy, err);
    return rc;
}

int sd_exec_loss_grad(sd_exec *ex, const sd_exec_args *a, double *loss, sd_real *gtheta,
                      sd_real *gx, sd_real *gy, sd_error *err)
{
    sd_error_clear(err);
    if (ex->nshards)
        return run_sharded(ex, JOB_LOSS_GRAD, a, NULL, loss, gtheta, NULL, gx, gy, err);
    return loss_grad_one(ex, a, loss, gtheta, gx, gy, err);
}

/* The tangent passes along v, on the forward and backward the current slot
 * holds: hv += H v, dgx += d/dx <v, g>, dgy += d/dy <v, g>.  The backward of
 * every layer is complete before any tangent backward runs, which is what
 * the tangent of a layer needs (its g_i final). */
static int tangent_passes(sd_exec *ex, const sd_exec_args *a, const sd_real *v, sd_real *hv,
                          sd_real *dgx, sd_real *dgy, sd_error *err)
{
    const sd_model *m = ex->m;
    int rc, last = m->n_layers - 1, K = m->spec.classes;
    size_t nk = (size_t)a->n * (size_t)K;
    /* tangent forward along theta-tangent v (input and labels fixed) */
    for (int i = 1; i < m->n_layers; i++) {
        sd_layer_io io;
        wire_io(ex, a, i, &io, v, NULL, NULL);
        io.err = err;
        if ((rc = sd_layer_forward_tangent(ex->be, &m->layers[i], &io)))
            return sd_error_wrap_code(err, rc, "tangent of layer %s", m->names[i]);
    }
    ex->want_g0 = dgx != NULL;
    if ((rc = zero_grads(ex, ex->dg, a->n, err)))
        return rc;
    BE_CALL(ex, ex->be->zero(ex->be, err, ex->dgq, nk * sizeof(sd_real)), err, "zeroing");
    BE_CALL(ex,
            ex->be->sce_bwd_tangent(ex->be, err, a->n, K, ex->p, ex->q, ex->dy[last], NULL,
                                    ex->loss_scale, 0.0, ex->dg[last], dgy ? ex->dgq : NULL),
            err, "loss backward tangent");
    for (int i = last; i >= 1; i--) {
        sd_layer_io io;
        wire_io(ex, a, i, &io, v, NULL, hv);
        io.err = err;
        if ((rc = sd_layer_backward_tangent(ex->be, &m->layers[i], &io)))
            return sd_error_wrap_code(err, rc, "tangent backward of layer %s", m->names[i]);
    }
    if (dgx)
        BE_CALL(ex, ex->be->axpy(ex->be, err, layer_out_elems(m, 0, a->n), 1, ex->dg[0], dgx), err,
                "input tangent");
    /* labels have no tangent along v, so the tangent of the label gradient is
     * the softmax backward of the tangent of the target gradient */
    if (dgy)
        return labels_backward(ex, a, ex->dgq, dgy, err);
    return SD_OK;
}

static int hvp_one(sd_exec *ex, const sd_exec_args *a, const sd_real *v, double *loss,
                   sd_real *gtheta, sd_real *hv, sd_real *dgx, sd_real *dgy, sd_error *err)
{
    if (!(ex->flags & SD_EXEC_TANGENT))
        return sd_error_set(err, SD_EINVAL, "exec was created without SD_EXEC_TANGENT");
    int rc = forward_backward(ex, a, loss, gtheta, 0, 0, 1, err);
    return rc ? rc : tangent_passes(ex, a, v, hv, dgx, dgy, err);
}

int sd_exec_hvp(sd_exec *ex, const sd_exec_args *a, const sd_real *v, double *loss, sd_real *gtheta,
                sd_real *hv, sd_real *dgx, sd_real *dgy, sd_error *err)
{
    sd_error_clear(err);
    if (ex->nshards)
        return run_sharded(ex, JOB_HVP, a, v, loss, gtheta, hv, dgx, dgy, err);
    return hvp_one(ex, a, v, loss, gtheta, hv, dgx, dgy, err);
}

static int same_args(const sd_exec_args *x, const sd_exec_args *y)
{
    return x->theta == y->theta && x->theta_bn == y->theta_bn && x->bn_mode == y->bn_mode &&
           x->label_mode == y->label_mode && x->x == y->x && x->y == y->y && x->n == y->n;
}

static int hvp_cached_one(sd_exec *ex, const sd_exec_args *a, const sd_real *v, sd_real *hv,
                          sd_real *dgx, sd_real *dgy, sd_error *err)
{
    const exec_slot *s = &ex->slots[ex->cur];
    if (!(ex->flags & SD_EXEC_TANGENT))
        return sd_error_set(err, SD_EINVAL, "exec was created without SD_EXEC_TANGENT");
    if (!s->has_backward || !same_args(&s->args, a))
        return sd_error_set(err, SD_EINVAL,
                            "exec slot %d holds no backward of these arguments (call "
                            "sd_exec_loss_grad on it first)",
                            ex->cur);
    return tangent_passes(ex, a, v, hv, dgx, dgy, err);
}

int sd_exec_hvp_cached(sd_exec *ex, const sd_exec_args *a, const sd_real *v, sd_real *hv,
                       sd_real *dgx, sd_real *dgy, sd_error *err)
{
    sd_error_clear(err);
    if (ex->nshards)
        return run_sharded(ex, JOB_HVP_CACHED, a, v, NULL, NULL, hv, dgx, dgy, err);
    return hvp_cached_one(ex, a, v, hv, dgx, dgy, err);
}

/* ---- shards ---- */

typedef struct shard_job {
    sd_exec *ex;
    int kind;
    const sd_exec_args *a;
    const sd_real *v;
    sd_real *gtheta, *hv, *gx, *gy; /* the caller's outputs (gx, gy: dgx, dgy for HVPs) */
    double loss[SD_EXEC_MAX_SHARDS];
    sd_error err[SD_EXEC_MAX_SHARDS];
} shard_job;

/* Samples [lo, hi) of a batch of n go to shard s of P. */
static void shard_range(int n, int P, int s, int *lo, int *hi)
{
    *lo = (int)((long long)s * n / P);
    *hi = (int)((long long)(s + 1) * n / P);
}

static int shard_task(void *arg, int s)
{
    shard_job *j = arg;
    sd_exec *ex = j->ex, *sub = ex->shard[s];
    sd_backend *be = ex->be;
    const sd_model *m = ex->m;
    sd_error *err = &j->err[s];
    int lo, hi, K = m->spec.classes;
    shard_range(j->a->n, ex->nshards, s, &lo, &hi);
    j->loss[s] = 0;
    if (hi <= lo)
        return SD_OK;
    size_t img = layer_out_elems(m, 0, 1);
    sd_exec_args as = *j->a;
    as.x = j->a->x + (size_t)lo * img;
    as.y = j->a->y ? j->a->y + (size_t)lo * (size_t)K : NULL;
    as.n = hi - lo;
    /* the caller's loss is the mean over all n: this shard's weight */
    sub->loss_scale = (double)as.n / (double)j->a->n;
    sd_real *gt = j->gtheta && s > 0 ? ex->sg[s] : j->gtheta;
    sd_real *hv = j->hv && s > 0 ? ex->shv[s] : j->hv;
    sd_real *gx = j->gx ? j->gx + (size_t)lo * img : NULL;
    sd_real *gy = j->gy ? j->gy + (size_t)lo * (size_t)K : NULL;
    if (s > 0 && gt)
        BE_CALL(ex, be->zero(be, err, gt, m->n_theta * sizeof(sd_real)), err, "zeroing");
    if (s > 0 && hv)
        BE_CALL(ex, be->zero(be, err, hv, m->n_theta * sizeof(sd_real)), err, "zeroing");
    int rc;
    switch (j->kind) {
    case JOB_FORWARD:
        if ((rc = check_args(sub, &as, err)) || (rc = run_forward(sub, &as, err)))
            return rc;
        BE_CALL(ex,
                be->copy(be, err, ex->logits + (size_t)lo * (size_t)K, sd_exec_logits(sub),
                         (size_t)as.n * (size_t)K * sizeof(sd_real)),
                err, "gathering logits");
        return SD_OK;
    case JOB_LOSS_GRAD: return loss_grad_one(sub, &as, &j->loss[s], gt, gx, gy, err);
    case JOB_HVP: return hvp_one(sub, &as, j->v, &j->loss[s], gt, hv, gx, gy, err);
    default: return hvp_cached_one(sub, &as, j->v, hv, gx, gy, err);
    }
}

/* Run one call on the shards, then fold their parameter gradients (and
 * HVPs) into the caller's in shard order and weight their losses. */
static int run_sharded(sd_exec *ex, int kind, const sd_exec_args *a, const sd_real *v, double *loss,
                       sd_real *gtheta, sd_real *hv, sd_real *gx, sd_real *gy, sd_error *err)
{
    sd_backend *be = ex->be;
    if (a->n <= 0 || a->n > ex->nmax)
        return sd_error_set(err, SD_EINVAL, "batch of %d samples, exec holds 1..%d", a->n,
                            ex->nmax);
    shard_job *j = calloc(1, sizeof *j);
    if (!j)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    *j = (shard_job){
        .ex = ex, .kind = kind, .a = a, .v = v, .gtheta = gtheta, .hv = hv, .gx = gx, .gy = gy};
    int P = ex->nshards, rc = be->parallel(be, P, shard_task, j);
    if (rc) {
        for (int s = 0; s < P; s++)
            if (j->err[s].code) {
                *err = j->err[s];
                break;
            }
        free(j);
        return rc;
    }
    double l = 0;
    for (int s = 0; s < P; s++) {
        int lo, hi;
        shard_range(a->n, P, s, &lo, &hi);
        if (hi <= lo)
            continue;
        l += (double)(hi - lo) / (double)a->n * j->loss[s];
        if (s > 0 && gtheta && (rc = be->axpy(be, err, ex->m->n_theta, 1, ex->sg[s], gtheta)))
            break;
        if (s > 0 && hv && (rc = be->axpy(be, err, ex->m->n_theta, 1, ex->shv[s], hv)))
            break;
    }
    free(j);
    if (rc)
        return sd_error_wrap_code(err, rc, "adding shard gradients");
    if (loss)
        *loss = l;
    return SD_OK;
}

int sd_exec_bn_batch_stats(sd_exec *ex, double *sum, sd_error *err)
{
    const sd_model *m = ex->m;
    sd_error_clear(err);
    for (int i = 1; i < m->n_layers; i++) {
        const sd_layer *l = &m->layers[i];
        if (l->kind != SD_LAYER_BN)
            continue;
        int c = l->out.c;
        sd_real buf[2 * 1024];
        if (c > 1024)
            return sd_error_set(err, SD_EUNSUPPORTED, "batch norm with %d channels", c);
        BE_CALL(ex,
                ex->be->download(ex->be, err, buf, ex->saved[i], 2 * (size_t)c * sizeof(sd_real)),
                err, "reading batch statistics");
        for (int j = 0; j < c; j++) {
            double is = buf[c + j];
            sum[l->bn_off + (size_t)j] += buf[j];
            sum[l->bn_off + (size_t)c + (size_t)j] += 1.0 / (is * is) - l->eps;
        }
    }
    return SD_OK;
}

int sd_exec_predict(sd_exec *ex, const sd_exec_args *a, int *classes, float *probs, sd_error *err)
{
    int rc = sd_exec_forward(ex, a, err);
    if (rc)
        return rc;
    int K = ex->m->spec.classes;
    size_t nk = (size_t)a->n * (size_t)K;
    sd_real *z = malloc(nk * sizeof *z);
    if (!z)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    rc = ex->be->download(ex->be, err, z, sd_exec_logits(ex), nk * sizeof *z);
    if (rc) {
        free(z);
        return sd_error_wrap_code(err, rc, "reading logits");
    }
    for (int i = 0; i < a->n; i++) {
        const sd_real *zi = z + (size_t)i * (size_t)K;
        int best = 0;
        double mx = zi[0];
        for (int c = 1; c < K; c++)
            if (zi[c] > mx) {
                mx = zi[c];
                best = c;
            }
        if (classes)
            classes[i] = best;
        if (probs) {
            double s = 0;
            for (int c = 0; c < K; c++)
                s += exp((double)zi[c] - mx);
            for (int c = 0; c < K; c++)
                probs[(size_t)i * (size_t)K + (size_t)c] = (float)(exp((double)zi[c] - mx) / s);
        }
    }
    free(z);
    return SD_OK;
}
