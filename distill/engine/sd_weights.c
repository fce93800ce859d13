/*
 * sd_weights.c - the weights object (model, theta, theta_bn on a backend),
 * the one theta_bn upload, replay (Algorithm 2), theta_bn recomputation and
 * evaluation (see sd_weights.h).
 *
 * The replay counter is process-wide and atomic: replays may run in worker
 * threads (the node's import) while a test reads it.
 */
#include "sd_weights.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sd_init.h"

enum { SD_STREAM_BNSAMPLE = 4 };

static _Atomic uint64_t replays;

uint64_t sd_debug_replay_count(void)
{
    return atomic_load(&replays);
}

/* ---------------------------------------------------------------- transfers */

int sd_dev_alloc(sd_backend *be, size_t elems, sd_real **out, sd_error *err)
{
    *out = NULL;
    int rc = be->alloc(be, err, (elems ? elems : 1) * sizeof(sd_real), (void **)out);
    if (rc)
        return sd_error_wrap_code(err, rc, "allocating %zu values", elems);
    rc = be->zero(be, err, *out, (elems ? elems : 1) * sizeof(sd_real));
    return rc ? sd_error_wrap_code(err, rc, "zeroing %zu values", elems) : SD_OK;
}

int sd_upload_floats(sd_backend *be, sd_real *dst, const float *src, size_t n, sd_error *err)
{
    int rc;
    if (sizeof(sd_real) == sizeof(float)) {
        rc = be->upload(be, err, dst, src, n * sizeof(float));
    } else {
        sd_real *tmp = malloc((n ? n : 1) * sizeof *tmp);
        if (!tmp)
            return sd_error_set(err, SD_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
            tmp[i] = (sd_real)src[i];
        rc = be->upload(be, err, dst, tmp, n * sizeof *tmp);
        free(tmp);
    }
    return rc ? sd_error_wrap_code(err, rc, "upload") : SD_OK;
}

int sd_download_floats(sd_backend *be, float *dst, const sd_real *src, size_t n, sd_error *err)
{
    int rc;
    if (sizeof(sd_real) == sizeof(float)) {
        rc = be->download(be, err, dst, src, n * sizeof(float));
    } else {
        sd_real *tmp = malloc((n ? n : 1) * sizeof *tmp);
        if (!tmp)
            return sd_error_set(err, SD_ENOMEM, "out of memory");
        rc = be->download(be, err, tmp, src, n * sizeof *tmp);
        for (size_t i = 0; !rc && i < n; i++)
            dst[i] = (float)tmp[i];
        free(tmp);
    }
    return rc ? sd_error_wrap_code(err, rc, "download") : SD_OK;
}

int sd_theta0_upload(const sd_model *m, sd_backend *be, uint64_t seed, sd_real *dst,
                     uint8_t sha[32], sd_error *err)
{
    sd_real *h = malloc(m->n_theta * sizeof *h);
    if (!h)
        return sd_error_set(err, SD_ENOMEM, "out of memory for theta_0");
    int rc = sd_init_theta(m, seed, h, err);
    if (!rc && sha)
        rc = sd_theta_sha256(h, m->n_theta, sha, err);
    if (!rc && (rc = be->upload(be, err, dst, h, m->n_theta * sizeof *h)))
        sd_error_wrap_code(err, rc, "upload theta_0");
    free(h);
    return rc;
}

int sd_theta_bn_upload(sd_backend *be, sd_real *dst, const float *theta_bn, size_t n, sd_error *err)
{
    if (!n)
        return SD_OK;
    if (!theta_bn)
        return sd_error_set(err, SD_EINVAL, "the model needs theta_bn (%zu values)", n);
    int rc = sd_upload_floats(be, dst, theta_bn, n, err);
    return rc ? sd_error_wrap(err, "theta_bn") : SD_OK;
}

/* ---------------------------------------------------------------- the object */

void sd_weights_destroy(sd_weights *w)
{
    if (!w)
        return;
    if (w->be) {
        w->be->free(w->be, w->theta);
        w->be->free(w->be, w->theta_bn);
    }
    sd_model_destroy(w->m);
    free(w->theta_bn_host);
    free(w);
}

int sd_weights_create(sd_weights **out, const sd_model_spec *spec, sd_backend *be, sd_error *err)
{
    *out = NULL;
    sd_weights *w = calloc(1, sizeof *w);
    if (!w)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    w->be = be;
    int rc = sd_model_create(&w->m, spec, err);
    if (!rc && w->m->n_bn && !(w->theta_bn_host = calloc(w->m->n_bn, sizeof(float))))
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
    if (!rc && !(rc = sd_dev_alloc(be, w->m->n_theta, &w->theta, err)))
        rc = sd_dev_alloc(be, w->m->n_bn, &w->theta_bn, err);
    if (rc) {
        sd_weights_destroy(w);
        return rc;
    }
    *out = w;
    return SD_OK;
}

int sd_weights_set_theta_bn(sd_weights *w, const float *theta_bn, sd_error *err)
{
    size_t n = w->m->n_bn;
    int rc = sd_theta_bn_upload(w->be, w->theta_bn, theta_bn, n, err);
    if (!rc && n)
        memcpy(w->theta_bn_host, theta_bn, n * sizeof *theta_bn);
    return rc;
}

int sd_weights_from_host(sd_weights **out, const sd_model_spec *spec, sd_backend *be,
                         const float *theta, const float *theta_bn, sd_error *err)
{
    int rc = sd_weights_create(out, spec, be, err);
    if (rc)
        return rc;
    if ((rc = sd_upload_floats(be, (*out)->theta, theta, (*out)->m->n_theta, err)) ||
        (rc = sd_weights_set_theta_bn(*out, theta_bn, err))) {
        sd_weights_destroy(*out);
        *out = NULL;
    }
    return rc;
}

int sd_weights_from_backend(sd_weights **out, const sd_model_spec *spec, sd_backend *be,
                            const sd_real *theta, const float *theta_bn, sd_error *err)
{
    int rc = sd_weights_create(out, spec, be, err);
    if (rc)
        return rc;
    if ((rc = be->copy(be, err, (*out)->theta, theta, (*out)->m->n_theta * sizeof(sd_real))))
        sd_error_wrap_code(err, rc, "copying weights");
    else
        rc = sd_weights_set_theta_bn(*out, theta_bn, err);
    if (rc) {
        sd_weights_destroy(*out);
        *out = NULL;
    }
    return rc;
}

int sd_weights_download(const sd_weights *w, float *theta, sd_error *err)
{
    return sd_download_floats(w->be, theta, w->theta, w->m->n_theta, err);
}

/* ---------------------------------------------------------------- replay */

int sd_replay(const sd_distilled *dd, sd_backend *be, sd_model **model_out, sd_real **theta_out,
              sd_error *err)
{
    *model_out = NULL;
    *theta_out = NULL;
    atomic_fetch_add(&replays, 1);
    sd_model *m = NULL;
    sd_exec *ex = NULL;
    sd_real *theta = NULL, *g = NULL, *x = NULL, *y = NULL, *bn = NULL;
    int rc = sd_model_create(&m, &dd->spec, err);
    if (rc)
        return rc;
    int K = m->spec.classes, n = dd->images_per_step, S = dd->steps;
    int T = dd->steps * dd->epochs_inner;
    size_t img = (size_t)m->spec.in_c * (size_t)m->spec.in_h * (size_t)m->spec.in_w;
    size_t nx = (size_t)S * (size_t)n * img, ny = (size_t)S * (size_t)n * (size_t)K;
    uint8_t sha[32];
    if ((rc = sd_dev_alloc(be, m->n_theta, &theta, err)) ||
        (rc = sd_dev_alloc(be, m->n_theta, &g, err)) || (rc = sd_dev_alloc(be, nx, &x, err)) ||
        (rc = sd_dev_alloc(be, ny, &y, err)) || (rc = sd_dev_alloc(be, m->n_bn, &bn, err)))
        goto out;
    if ((rc = sd_theta0_upload(m, be, dd->seed, theta, sha, err)))
        goto out;
    if (memcmp(sha, dd->theta0_sha256, 32)) {
        char a[65], b[65];
        sd_hex(sha, 32, a);
        sd_hex(dd->theta0_sha256, 32, b);
        rc = sd_error_set(err, SD_EHASH,
                          "initial weights rebuilt from seed %llu hash to %s, the bundle says %s: "
                          "refusing to replay on different weights",
                          (unsigned long long)dd->seed, a, b);
        goto out;
    }
    /* frozen-mode steps normalise with theta_bn */
    if ((rc = sd_upload_floats(be, x, dd->images, nx, err)) ||
        (rc = sd_upload_floats(be, y, dd->labels, ny, err)) ||
        (rc = sd_theta_bn_upload(be, bn, dd->theta_bn, m->n_bn, err)))
        goto out;
    if ((rc = sd_exec_create(&ex, m, be, n, 0, err)))
        goto out;
    for (int t = 0; t < T; t++) {
        int s = t % S;
        sd_exec_args a = {theta,
                          bn,
                          dd->bn_mode,
                          dd->label_param,
                          x + (size_t)s * (size_t)n * img,
                          y + (size_t)s * (size_t)n * (size_t)K,
                          n};
        if ((rc = be->zero(be, err, g, m->n_theta * sizeof(sd_real))) ||
            (rc = sd_exec_loss_grad(ex, &a, NULL, g, NULL, NULL, err)) ||
            (rc = be->axpy(be, err, m->n_theta, (sd_real)-dd->step_sizes[t], g, theta))) {
            sd_error_wrap_code(err, rc, "replay step %d", t);
            goto out;
        }
    }
    *model_out = m;
    *theta_out = theta;
    m = NULL;
    theta = NULL;
out:
    sd_exec_destroy(ex);
    be->free(be, theta);
    be->free(be, g);
    be->free(be, x);
    be->free(be, y);
    be->free(be, bn);
    sd_model_destroy(m);
    return rc;
}

int sd_weights_replay(sd_weights **out, const sd_distilled *d, sd_backend *be, sd_error *err)
{
    *out = NULL;
    sd_weights *w = calloc(1, sizeof *w);
    if (!w)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    w->be = be;
    int rc = sd_replay(d, be, &w->m, &w->theta, err);
    if (!rc && w->m->n_bn && !(w->theta_bn_host = calloc(w->m->n_bn, sizeof(float))))
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
    if (!rc && !(rc = sd_dev_alloc(be, w->m->n_bn, &w->theta_bn, err)))
        rc = sd_weights_set_theta_bn(w, d->theta_bn, err);
    if (rc) {
        sd_weights_destroy(w);
        return rc;
    }
    *out = w;
    return SD_OK;
}

/* ---------------------------------------------------------------- theta_bn */

int sd_bn_recompute(const sd_model *m, sd_backend *be, const sd_real *theta,
                    const sd_data_view *data, int batches, int bsz, uint64_t seed, float *bn_out,
                    sd_error *err)
{
    if (!m->n_bn)
        return SD_OK;
    if (bsz > data->count)
        bsz = (int)data->count;
    sd_exec *ex = NULL;
    sd_real *xb = NULL;
    int64_t *idx = malloc((size_t)bsz * sizeof *idx);
    int *lb = malloc((size_t)bsz * sizeof *lb);
    double *sum = calloc(m->n_bn, sizeof *sum);
    int rc = SD_OK;
    if (!idx || !lb || !sum) {
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
        goto out;
    }
    size_t img = (size_t)data->c * (size_t)data->h * (size_t)data->w;
    if ((rc = sd_exec_create(&ex, m, be, bsz, 0, err)) ||
        (rc = sd_dev_alloc(be, (size_t)bsz * img, &xb, err)))
        goto out;
    for (int b = 0; b < batches; b++) {
        for (int i = 0; i < bsz; i++)
            idx[i] = (int64_t)(sd_uniform_u32(seed, SD_STREAM_BNSAMPLE,
                                              (uint64_t)b * (uint64_t)bsz + (uint64_t)i) %
                               (uint64_t)data->count);
        if ((rc = data->fetch(data->ctx, be, idx, bsz, xb, lb, err)))
            goto out;
        sd_exec_args a = {theta, NULL, SD_BN_BATCH, SD_LABEL_RAW, xb, NULL, bsz};
        if ((rc = sd_exec_forward(ex, &a, err)) || (rc = sd_exec_bn_batch_stats(ex, sum, err))) {
            sd_error_wrap_code(err, rc, "theta_bn");
            goto out;
        }
    }
    for (size_t i = 0; i < m->n_bn; i++)
        bn_out[i] = (float)(sum[i] / batches);
out:
    sd_exec_destroy(ex);
    be->free(be, xb);
    free(idx);
    free(lb);
    free(sum);
    return rc;
}

/* ---------------------------------------------------------------- evaluation */

/* theta_bn already on the backend (bn_dev) */
static int evaluate_on(const sd_model *m, sd_backend *be, const sd_real *theta,
                       const sd_real *bn_dev, const sd_data_view *data, int64_t max,
                       double *accuracy, int64_t *confusion, int *predictions, sd_error *err)
{
    int64_t count = max > 0 && max < data->count ? max : data->count;
    int bsz = count < 256 ? (int)count : 256, K = m->spec.classes;
    sd_exec *ex = NULL;
    sd_real *xb = NULL;
    int64_t *idx = malloc((size_t)bsz * sizeof *idx);
    int *lb = malloc((size_t)bsz * sizeof *lb), *pred = malloc((size_t)bsz * sizeof *pred);
    int rc = SD_OK;
    int64_t correct = 0;
    if (!idx || !lb || !pred) {
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
        goto out;
    }
    if (confusion)
        memset(confusion, 0, (size_t)K * (size_t)K * sizeof *confusion);
    size_t img = (size_t)data->c * (size_t)data->h * (size_t)data->w;
    if ((rc = sd_exec_create(&ex, m, be, bsz, SD_EXEC_INFERENCE, err)) ||
        (rc = sd_dev_alloc(be, (size_t)bsz * img, &xb, err)))
        goto out;
    for (int64_t s = 0; s < count; s += bsz) {
        int n = (int)(count - s < bsz ? count - s : bsz);
        for (int i = 0; i < n; i++)
            idx[i] = s + i;
        if ((rc = data->fetch(data->ctx, be, idx, n, xb, lb, err)))
            goto out;
        sd_exec_args a = {theta, bn_dev, SD_BN_FROZEN, SD_LABEL_RAW, xb, NULL, n};
        if ((rc = sd_exec_predict(ex, &a, pred, NULL, err))) {
            sd_error_wrap_code(err, rc, "evaluation");
            goto out;
        }
        for (int i = 0; i < n; i++) {
            correct += pred[i] == lb[i];
            if (confusion && lb[i] >= 0 && lb[i] < K)
                confusion[(size_t)lb[i] * (size_t)K + (size_t)pred[i]]++;
            if (predictions)
                predictions[s + i] = pred[i];
        }
    }
    *accuracy = count ? (double)correct / (double)count : 0;
out:
    sd_exec_destroy(ex);
    be->free(be, xb);
    free(idx);
    free(lb);
    free(pred);
    return rc;
}

int sd_weights_evaluate(const sd_weights *w, const sd_data_view *data, int64_t max,
                        double *accuracy, int64_t *confusion, int *predictions, sd_error *err)
{
    return evaluate_on(w->m, w->be, w->theta, w->theta_bn, data, max, accuracy, confusion,
                       predictions, err);
}

int sd_evaluate(const sd_model *m, sd_backend *be, const sd_real *theta, const float *theta_bn,
                const sd_data_view *data, int64_t max, double *accuracy, int64_t *confusion,
                int *predictions, sd_error *err)
{
    sd_real *bn = NULL;
    int rc = sd_dev_alloc(be, m->n_bn, &bn, err);
    if (!rc)
        rc = sd_theta_bn_upload(be, bn, theta_bn, m->n_bn, err);
    if (!rc)
        rc = evaluate_on(m, be, theta, bn, data, max, accuracy, confusion, predictions, err);
    if (bn)
        be->free(be, bn);
    return rc;
}
