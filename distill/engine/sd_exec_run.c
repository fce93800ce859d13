/*
 * sd_exec_run.c - running an executor's calls (sd_model.h: sd_exec_forward,
 * sd_exec_loss_grad, sd_exec_hvp, sd_exec_hvp_cached, sd_exec_predict,
 * sd_exec_bn_batch_stats); the executor's state and its creation are in
 * sd_exec_impl.h and sd_model.c.
 *
 * A call is a short program of steps (run_call).  An exec with batch shards
 * runs its program on every shard as tasks of be->parallel; shards running
 * batch-mode batch norm stop at each such layer after their per-channel
 * sums, which the caller joins in shard order (sd_bn_join) before the shards
 * go on, so every result is independent of the thread count.
 */
#include "sd_exec_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    io->gx_set = l->kind == SD_LAYER_RELU && ex->grad_alone[m->inputs[i][0]];
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
        if (!ex->grad_alone[i])
            BE_CALL(
                ex,
                ex->be->zero(ex->be, err, bufs[i], layer_out_elems(ex->m, i, n) * sizeof(sd_real)),
                err, "zeroing gradients");
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

static int same_args(const sd_exec_args *x, const sd_exec_args *y)
{
    return x->theta == y->theta && x->theta_bn == y->theta_bn && x->bn_mode == y->bn_mode &&
           x->label_mode == y->label_mode && x->x == y->x && x->y == y->y && x->n == y->n;
}

/* ---- calls as programs of steps ----
 * Every call (forward, loss and gradient, HVP, HVP from kept state) is a
 * short program of the steps below, run by run_call.  A batch shard running
 * batch-mode batch norm stops at each such layer once its sums are written
 * (EXEC_WAIT) and goes on, from the same place, when the caller has joined
 * the sums of all shards; an unsharded exec runs its program in one go. */
enum {
    ST_END,
    ST_ARGS,    /* check the arguments */
    ST_TANGENT, /* the exec has tangent buffers */
    ST_KEPT,    /* ... and the slot holds the backward of these arguments */
    ST_TARGETS, /* q from the labels */
    ST_FWD,     /* layers forward */
    ST_LOGITS,  /* a shard's logits into the caller's */
    ST_LOSS,    /* loss, and the loss gradient when a backward is wanted */
    ST_BWD,     /* layers backward */
    ST_KEEP,    /* the slot now holds this backward */
    ST_GOUT,    /* input and label gradients out */
    ST_TFWD,    /* layers tangent forward along v */
    ST_TLOSS,   /* tangent of the loss gradient */
    ST_TBWD,    /* layers tangent backward */
    ST_TOUT     /* input and label tangents out */
};
enum { JOB_FORWARD, JOB_LOSS_GRAD, JOB_HVP, JOB_HVP_CACHED };
enum { EXEC_WAIT = 1, EXEC_DONE = 2 };

static const unsigned char job_steps[4][13] = {
    [JOB_FORWARD] = {ST_ARGS, ST_FWD, ST_LOGITS, ST_END},
    [JOB_LOSS_GRAD] = {ST_ARGS, ST_TARGETS, ST_FWD, ST_LOSS, ST_BWD, ST_KEEP, ST_GOUT, ST_END},
    [JOB_HVP] = {ST_TANGENT, ST_ARGS, ST_TARGETS, ST_FWD, ST_LOSS, ST_BWD, ST_KEEP, ST_TFWD,
                 ST_TLOSS, ST_TBWD, ST_TOUT, ST_END},
    [JOB_HVP_CACHED] = {ST_KEPT, ST_TFWD, ST_TLOSS, ST_TBWD, ST_TOUT, ST_END}};

/* One call on one exec (the caller's, or a shard's part of it). */
typedef struct exec_call {
    int kind;
    sd_exec_args a;
    const sd_real *v;
    double loss;
    sd_real *gtheta, *hv, *gx, *gy; /* += (gx, gy: dgx, dgy for HVPs) */
    sd_real *logits;                /* a shard's forward: its rows of the caller's */
    int step, layer;                /* where the program stands (layer -1: step not begun) */
    int begun, done;
    /* batch-mode batch norm over shards: bn_part non-NULL stops at each such
     * layer after its sums (bn_waiting), bn_sums and bn_count are then the
     * joined ones; only a shard with bn_params adds the layer's parameter
     * gradients (computed from the joined sums, so once for the batch) */
    double *bn_part;
    const double *bn_sums;
    double bn_count;
    int bn_waiting, bn_params;
} exec_call;

static const char *const pass_name[] = {[ST_FWD] = "forward",
                                        [ST_BWD] = "backward",
                                        [ST_TFWD] = "tangent",
                                        [ST_TBWD] = "tangent backward"};

/* The layers of one pass (ST_FWD, ST_BWD, ST_TFWD, ST_TBWD) from c->layer on. */
static int run_layers(sd_exec *ex, exec_call *c, int pass, sd_error *err)
{
    const sd_model *m = ex->m;
    int fwd = pass == ST_FWD || pass == ST_TFWD, tangent = pass == ST_TFWD || pass == ST_TBWD;
    if (c->layer < 0)
        c->layer = fwd ? 1 : m->n_layers - 1;
    for (; fwd ? c->layer < m->n_layers : c->layer >= 1; c->layer += fwd ? 1 : -1) {
        int i = c->layer, rc;
        const sd_layer *l = &m->layers[i];
        sd_layer_io io;
        wire_io(ex, &c->a, i, &io, tangent ? c->v : NULL, pass == ST_BWD ? c->gtheta : NULL,
                pass == ST_TBWD ? c->hv : NULL);
        io.err = err;
        int join = c->bn_part && l->kind == SD_LAYER_BN && c->a.bn_mode == SD_BN_BATCH;
        if (join && !c->bn_waiting) {
            memset(c->bn_part, 0, (size_t)l->out.c * SD_BN_SUMS * sizeof *c->bn_part);
            io.bn_part = c->bn_part;
        } else if (join) {
            io.bn_sums = c->bn_sums;
            io.bn_count = c->bn_count;
            if (!c->bn_params)
                io.gtheta = io.dgtheta = NULL;
        }
        switch (pass) {
        case ST_FWD: rc = sd_layer_forward(ex->be, l, &io); break;
        case ST_BWD: rc = sd_layer_backward(ex->be, l, &io); break;
        case ST_TFWD: rc = sd_layer_forward_tangent(ex->be, l, &io); break;
        default: rc = sd_layer_backward_tangent(ex->be, l, &io); break;
        }
        if (rc)
            return sd_error_wrap_code(err, rc, "%s of layer %s", pass_name[pass], m->names[i]);
        c->bn_waiting = join && !c->bn_waiting;
        if (c->bn_waiting)
            return EXEC_WAIT;
    }
    return SD_OK;
}

/* Loss and, when a backward is wanted (always for an HVP), the loss
 * gradient; EXEC_DONE when nothing more is wanted. */
static int step_loss(sd_exec *ex, exec_call *c, sd_error *err)
{
    const sd_exec_args *a = &c->a;
    int last = ex->m->n_layers - 1, K = ex->m->spec.classes;
    int want_gx = c->kind == JOB_LOSS_GRAD && c->gx, want_gy = c->kind == JOB_LOSS_GRAD && c->gy;
    BE_CALL(ex, ex->be->sce_fwd(ex->be, err, a->n, K, ex->y[last], ex->q, ex->p, &c->loss), err,
            "loss");
    if (c->kind == JOB_LOSS_GRAD && !c->gtheta && !want_gx && !want_gy)
        return EXEC_DONE;
    ex->want_g0 = want_gx;
    int rc = zero_grads(ex, ex->g, a->n, err);
    if (rc)
        return rc;
    if (want_gy)
        BE_CALL(ex, ex->be->zero(ex->be, err, ex->gq, (size_t)a->n * (size_t)K * sizeof(sd_real)),
                err, "zeroing");
    BE_CALL(ex,
            ex->be->sce_bwd(ex->be, err, a->n, K, ex->p, ex->q, ex->loss_scale, ex->g[last],
                            want_gy ? ex->gq : NULL),
            err, "loss backward");
    return SD_OK;
}

/* The tangent of the loss gradient along v, from the tangent forward. */
static int step_tangent_loss(sd_exec *ex, exec_call *c, sd_error *err)
{
    const sd_exec_args *a = &c->a;
    int last = ex->m->n_layers - 1, K = ex->m->spec.classes;
    ex->want_g0 = c->gx != NULL;
    int rc = zero_grads(ex, ex->dg, a->n, err);
    if (rc)
        return rc;
    BE_CALL(ex, ex->be->zero(ex->be, err, ex->dgq, (size_t)a->n * (size_t)K * sizeof(sd_real)), err,
            "zeroing");
    BE_CALL(ex,
            ex->be->sce_bwd_tangent(ex->be, err, a->n, K, ex->p, ex->q, ex->dy[last], NULL,
                                    ex->loss_scale, 0.0, ex->dg[last], c->gy ? ex->dgq : NULL),
            err, "loss backward tangent");
    return SD_OK;
}

/* gx += g[0] (or dg[0]) and the label gradient (or its tangent). */
static int step_out(sd_exec *ex, exec_call *c, sd_real *g0, const sd_real *gq, const char *what,
                    sd_error *err)
{
    if (c->gx)
        BE_CALL(ex, ex->be->axpy(ex->be, err, layer_out_elems(ex->m, 0, c->a.n), 1, g0, c->gx), err,
                what);
    /* labels have no tangent along v, so the tangent of the label gradient
     * is the softmax backward of the tangent of the target gradient */
    return c->gy ? labels_backward(ex, &c->a, gq, c->gy, err) : SD_OK;
}

static int run_step(sd_exec *ex, exec_call *c, int st, sd_error *err)
{
    exec_slot *s = &ex->slots[ex->cur];
    int K = ex->m->spec.classes;
    switch (st) {
    case ST_ARGS: return check_args(ex, &c->a, err);
    case ST_TANGENT:
    case ST_KEPT:
        if (!(ex->flags & SD_EXEC_TANGENT))
            return sd_error_set(err, SD_EINVAL, "exec was created without SD_EXEC_TANGENT");
        if (st == ST_KEPT && (!s->has_backward || !same_args(&s->args, &c->a)))
            return sd_error_set(err, SD_EINVAL,
                                "exec slot %d holds no backward of these arguments (call "
                                "sd_exec_loss_grad on it first)",
                                ex->cur);
        return SD_OK;
    case ST_TARGETS: return make_targets(ex, &c->a, err);
    case ST_FWD:
        if (c->layer < 0) {
            s->has_backward = 0;
            BE_CALL(ex,
                    ex->be->copy(ex->be, err, ex->y[0], c->a.x,
                                 layer_out_elems(ex->m, 0, c->a.n) * sizeof(sd_real)),
                    err, "copying input");
        }
        return run_layers(ex, c, st, err);
    case ST_LOGITS:
        if (c->logits)
            BE_CALL(ex,
                    ex->be->copy(ex->be, err, c->logits, sd_exec_logits(ex),
                                 (size_t)c->a.n * (size_t)K * sizeof(sd_real)),
                    err, "gathering logits");
        return SD_OK;
    case ST_LOSS: return step_loss(ex, c, err);
    case ST_KEEP:
        s->args = c->a;
        s->has_backward = 1;
        return SD_OK;
    case ST_GOUT: return step_out(ex, c, ex->g[0], ex->gq, "input gradient", err);
    case ST_TLOSS: return step_tangent_loss(ex, c, err);
    case ST_TOUT: return step_out(ex, c, ex->dg[0], ex->dgq, "input tangent", err);
    default: return run_layers(ex, c, st, err); /* ST_BWD, ST_TFWD, ST_TBWD */
    }
}

/* Run c's program from where it stands: SD_OK when it has finished,
 * EXEC_WAIT when it waits for joined batch-norm sums, else the error. */
static int run_call(sd_exec *ex, exec_call *c, sd_error *err)
{
    const unsigned char *prog = job_steps[c->kind];
    while (prog[c->step] != ST_END) {
        int rc = run_step(ex, c, prog[c->step], err);
        if (rc == EXEC_WAIT || (rc && rc != EXEC_DONE))
            return rc;
        if (rc == EXEC_DONE)
            break;
        c->step++;
        c->layer = -1;
    }
    c->done = 1;
    return SD_OK;
}

static int run_sharded(sd_exec *ex, exec_call *c, sd_error *err);

/* One call on this exec: on its shards when it has them, else in one go. */
static int exec_call_run(sd_exec *ex, int kind, const sd_exec_args *a, const sd_real *v,
                         double *loss, sd_real *gtheta, sd_real *hv, sd_real *gx, sd_real *gy,
                         sd_error *err)
{
    sd_error_clear(err);
    exec_call c = {.kind = kind,
                   .a = *a,
                   .v = v,
                   .gtheta = gtheta,
                   .hv = hv,
                   .gx = gx,
                   .gy = gy,
                   .layer = -1,
                   .bn_params = 1};
    int rc = ex->nshards ? run_sharded(ex, &c, err) : run_call(ex, &c, err);
    if (!rc && loss)
        *loss = c.loss;
    return rc;
}

int sd_exec_forward(sd_exec *ex, const sd_exec_args *a, sd_error *err)
{
    return exec_call_run(ex, JOB_FORWARD, a, NULL, NULL, NULL, NULL, NULL, NULL, err);
}

const sd_real *sd_exec_logits(const sd_exec *ex)
{
    return ex->nshards ? ex->logits : ex->y[ex->m->n_layers - 1];
}

/* Forward, loss and (when any gradient is asked for) backward: gtheta +=
 * dl/dtheta, gx += dl/dx, gy += dl/dy.  The slot then holds this backward. */
int sd_exec_loss_grad(sd_exec *ex, const sd_exec_args *a, double *loss, sd_real *gtheta,
                      sd_real *gx, sd_real *gy, sd_error *err)
{
    return exec_call_run(ex, JOB_LOSS_GRAD, a, NULL, loss, gtheta, NULL, gx, gy, err);
}

/* Forward and backward, then the tangent passes along v: hv += H v, dgx +=
 * d/dx <v, g>, dgy += d/dy <v, g>.  The backward of every layer is complete
 * before any tangent backward runs, which is what the tangent of a layer
 * needs (its g_i final). */
int sd_exec_hvp(sd_exec *ex, const sd_exec_args *a, const sd_real *v, double *loss, sd_real *gtheta,
                sd_real *hv, sd_real *dgx, sd_real *dgy, sd_error *err)
{
    return exec_call_run(ex, JOB_HVP, a, v, loss, gtheta, hv, dgx, dgy, err);
}

/* The tangent passes alone, on the forward and backward the slot holds. */
int sd_exec_hvp_cached(sd_exec *ex, const sd_exec_args *a, const sd_real *v, sd_real *hv,
                       sd_real *dgx, sd_real *dgy, sd_error *err)
{
    return exec_call_run(ex, JOB_HVP_CACHED, a, v, NULL, NULL, hv, dgx, dgy, err);
}

/* ---- shards ---- */

typedef struct shard_job {
    sd_exec *ex;
    int n; /* samples of the whole call */
    exec_call call[SD_EXEC_MAX_SHARDS];
    sd_error err[SD_EXEC_MAX_SHARDS];
} shard_job;

/* Samples [lo, hi) of a batch of n go to shard s of P. */
static void shard_range(int n, int P, int s, int *lo, int *hi)
{
    *lo = (int)((long long)s * n / P);
    *hi = (int)((long long)(s + 1) * n / P);
}

/* Shard s's part of the caller's call c. */
static exec_call shard_call(sd_exec *ex, const exec_call *c, int s)
{
    const sd_model *m = ex->m;
    int lo, hi, K = m->spec.classes;
    shard_range(c->a.n, ex->nshards, s, &lo, &hi);
    size_t img = layer_out_elems(m, 0, 1);
    exec_call sc = *c;
    sc.a.x = c->a.x + (size_t)lo * img;
    sc.a.y = c->a.y ? c->a.y + (size_t)lo * (size_t)K : NULL;
    sc.a.n = hi - lo;
    sc.done = hi <= lo;
    sc.gtheta = c->gtheta && s > 0 ? ex->sg[s] : c->gtheta;
    sc.hv = c->hv && s > 0 ? ex->shv[s] : c->hv;
    sc.gx = c->gx ? c->gx + (size_t)lo * img : NULL;
    sc.gy = c->gy ? c->gy + (size_t)lo * (size_t)K : NULL;
    sc.logits = c->kind == JOB_FORWARD ? ex->logits + (size_t)lo * (size_t)K : NULL;
    sc.bn_part = ex->bn_part[s];
    sc.bn_params = s == 0;
    return sc;
}

static int shard_task(void *arg, int s)
{
    shard_job *j = arg;
    sd_exec *ex = j->ex, *sub = ex->shard[s];
    exec_call *c = &j->call[s];
    sd_error *err = &j->err[s];
    if (c->done)
        return SD_OK;
    if (!c->begun) {
        sd_backend *be = ex->be;
        c->begun = 1;
        /* the caller's loss is the mean over all n: this shard's weight */
        sub->loss_scale = (double)c->a.n / (double)j->n;
        if (s > 0 && c->gtheta)
            BE_CALL(ex, be->zero(be, err, c->gtheta, ex->m->n_theta * sizeof(sd_real)), err,
                    "zeroing");
        if (s > 0 && c->hv)
            BE_CALL(ex, be->zero(be, err, c->hv, ex->m->n_theta * sizeof(sd_real)), err, "zeroing");
    }
    int rc = run_call(sub, c, err);
    return rc == EXEC_WAIT ? SD_OK : rc;
}

/* The shards all wait at the same batch-norm layer (they run the same
 * program): join their sums in shard order into ex->bn_sums. */
static int shard_join(sd_exec *ex, shard_job *j, sd_error *err)
{
    static const sd_bn_op ops[] = {[ST_FWD] = SD_BN_OP_FWD,
                                   [ST_BWD] = SD_BN_OP_BWD,
                                   [ST_TFWD] = SD_BN_OP_FWD_TANGENT,
                                   [ST_TBWD] = SD_BN_OP_BWD_TANGENT};
    int P = ex->nshards, at = -1, step = -1;
    const double *parts[SD_EXEC_MAX_SHARDS];
    double count[SD_EXEC_MAX_SHARDS], m = 0;
    for (int s = 0; s < P; s++) {
        const exec_call *c = &j->call[s];
        count[s] = 0;
        parts[s] = ex->bn_part[s];
        if (c->done)
            continue;
        if (!c->bn_waiting || (at >= 0 && (c->layer != at || c->step != step)))
            return sd_error_set(err, SD_EBACKEND, "batch shards out of step at layer %d", c->layer);
        at = c->layer;
        step = c->step;
    }
    if (at < 0)
        return sd_error_set(err, SD_EBACKEND, "batch shards: nothing to join");
    const sd_layer *l = &ex->m->layers[at];
    for (int s = 0; s < P; s++)
        if (!j->call[s].done) {
            count[s] = (double)j->call[s].a.n * l->out.h * l->out.w;
            m += count[s];
        }
    sd_bn_join(ops[job_steps[j->call[0].kind][step]], l->out.c, parts, count, P, ex->bn_sums);
    for (int s = 0; s < P; s++) {
        j->call[s].bn_sums = ex->bn_sums;
        j->call[s].bn_count = m;
    }
    return SD_OK;
}

/* Run one call on the shards (in rounds separated by the batch-norm joins
 * when the model has batch-mode batch norm), then fold their parameter
 * gradients (and HVPs) into the caller's in shard order and weight their
 * losses. */
static int run_sharded(sd_exec *ex, exec_call *c, sd_error *err)
{
    sd_backend *be = ex->be;
    if (c->a.n <= 0 || c->a.n > ex->nmax)
        return sd_error_set(err, SD_EINVAL, "batch of %d samples, exec holds 1..%d", c->a.n,
                            ex->nmax);
    shard_job *j = calloc(1, sizeof *j);
    if (!j)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    int P = ex->nshards, rc;
    j->ex = ex;
    j->n = c->a.n;
    for (int s = 0; s < P; s++)
        j->call[s] = shard_call(ex, c, s);
    for (;;) {
        if ((rc = be->parallel(be, P, shard_task, j))) {
            for (int s = 0; s < P; s++)
                if (j->err[s].code) {
                    *err = j->err[s];
                    break;
                }
            free(j);
            return rc;
        }
        int waiting = 0;
        for (int s = 0; s < P; s++)
            waiting |= !j->call[s].done;
        if (!waiting)
            break;
        if ((rc = shard_join(ex, j, err))) {
            free(j);
            return rc;
        }
    }
    double l = 0;
    for (int s = 0; s < P; s++) {
        const exec_call *sc = &j->call[s];
        if (sc->a.n <= 0)
            continue;
        l += (double)sc->a.n / (double)c->a.n * sc->loss;
        if (s > 0 && c->gtheta && (rc = be->axpy(be, err, ex->m->n_theta, 1, ex->sg[s], c->gtheta)))
            break;
        if (s > 0 && c->hv && (rc = be->axpy(be, err, ex->m->n_theta, 1, ex->shv[s], c->hv)))
            break;
    }
    free(j);
    if (rc)
        return sd_error_wrap_code(err, rc, "adding shard gradients");
    c->loss = l;
    return SD_OK;
}

int sd_exec_bn_batch_stats(sd_exec *ex, double *sum, sd_error *err)
{
    const sd_model *m = ex->m;
    sd_error_clear(err);
    /* every shard keeps the joined statistics; the last one always ran */
    if (ex->nshards)
        return sd_exec_bn_batch_stats(ex->shard[ex->nshards - 1], sum, err);
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
