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
 * This file builds graphs and creates execs (their slots and, on backends
 * that run tasks in parallel, their batch shards: one sub-exec each); the
 * passes themselves run in sd_exec_run.c.
 */
#include "sd_exec_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        free(ex->bn_part[k]);
    }
    free(ex->bn_sums);
    be->free(be, ex->logits);
    free(ex->grad_alone);
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

/* Whether the gradient buffers of layer i's output (g[i], dg[i]) have one
 * writer only, a ReLU whose backward entry points then write them (=) where
 * the others add (+=): such buffers are not zeroed before a backward
 * (zero_grads in sd_exec_run.c), which saves about 40 % of LeNet's zeroing
 * and a read.  Needs the backend's relu_mask_set (read once, here).  Same
 * bits: the ReLU writes 0 + its value, what adding to zero gave. */
static int grad_written_alone(const sd_model *m, const sd_backend *be, int i)
{
    if (i < 1 || !be->relu_mask_set)
        return 0;
    int writer = -1, writers = 0;
    for (int j = i + 1; j < m->n_layers; j++)
        for (int k = 0; k < m->layers[j].n_in; k++)
            if (m->inputs[j][k] == i) {
                writer = j;
                writers++;
            }
    return writers == 1 && m->layers[writer].kind == SD_LAYER_RELU;
}

static sd_exec *exec_new(const sd_model *m, sd_backend *be, int nmax, unsigned flags)
{
    sd_exec *ex = calloc(1, sizeof *ex);
    if (ex && !(ex->grad_alone = calloc((size_t)m->n_layers, 1))) {
        free(ex);
        return NULL;
    }
    if (ex) {
        ex->m = m;
        ex->be = be;
        ex->nmax = nmax;
        ex->flags = flags;
        ex->loss_scale = 1.0;
        for (int i = 0; i < m->n_layers; i++)
            ex->grad_alone[i] = (unsigned char)grad_written_alone(m, be, i);
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
 * can run tasks in parallel, and for batch-mode batch norm (which couples
 * the samples of a batch) only where it can split its statistics into
 * per-shard sums (be->bn_partial, joined between rounds of the shards); an
 * SD_EXEC_INFERENCE exec runs frozen batch norm only.  Never dependent on
 * the thread count, so results are the same with any number of threads. */
static int shard_count(const sd_model *m, const sd_backend *be, int nmax, unsigned flags)
{
    if (!be->parallel || (m->has_bn && !(flags & SD_EXEC_INFERENCE) &&
                          (!be->bn_partial || !be->bn_apply || !be->host_memory)))
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
    if (m->has_bn && !(flags & SD_EXEC_INFERENCE)) {
        size_t cmax = 0;
        for (int i = 0; i < m->n_layers; i++)
            if (m->layers[i].kind == SD_LAYER_BN && (size_t)m->layers[i].out.c > cmax)
                cmax = (size_t)m->layers[i].out.c;
        for (int k = 0; k < P; k++)
            if (!(ex->bn_part[k] = calloc(cmax * SD_BN_SUMS, sizeof(double))))
                goto oom;
        if (!(ex->bn_sums = calloc(cmax * SD_BN_SUMS, sizeof(double))))
            goto oom;
    }
    *out = ex;
    return SD_OK;
oom:
    rc = sd_error_set(err, SD_ENOMEM, "out of memory");
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

int sd_exec_shards(const sd_exec *ex)
{
    return ex->nshards ? ex->nshards : 1;
}

int sd_exec_slots(const sd_exec *ex)
{
    return ex->nslots;
}
