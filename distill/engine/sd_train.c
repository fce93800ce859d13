/*
 * sd_train.c - ordinary mini-batch training (SGD with momentum or Adam) and
 * class-balanced sample budgets; see sd_train.h.
 *
 * Random choices come from the same counter-based generator as theta_0
 * (sd_uniform_u32), on streams of their own, so a run is reproducible from
 * its seed on any machine and with any thread count.
 */
#include "sd_train.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sd_init.h"

/* Streams of the generator used only here (sd_init.h and sd_distill.c use
 * 0..5). */
enum { TRAIN_STREAM_SHUFFLE = 16, TRAIN_STREAM_SUBSET = 17, TRAIN_STREAM_BN = 18 };

void sd_train_config_defaults(sd_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->optimizer = SD_OPT_SGD;
    cfg->lr = 0.01;
    cfg->momentum = 0.9;
    cfg->beta1 = 0.9;
    cfg->beta2 = 0.999;
    cfg->adam_eps = 1e-8;
    cfg->epochs = 10;
    cfg->batch = 64;
    cfg->decay_factor = 0.1;
    cfg->bn_batches = 20;
    cfg->bn_batch = 256;
}

static uint64_t rand_u64(uint64_t seed, uint32_t stream, uint64_t ctr)
{
    /* two independent words of the same counter block position */
    return (uint64_t)sd_uniform_u32(seed, stream, 2 * ctr) << 32 |
           sd_uniform_u32(seed, stream, 2 * ctr + 1);
}

/* Fisher-Yates; the modulo bias (< n / 2^64) is irrelevant at these sizes. */
static void shuffle(int64_t *a, int64_t n, uint64_t seed, uint32_t stream, uint64_t base)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rand_u64(seed, stream, base + (uint64_t)i) % (uint64_t)(i + 1));
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int sd_train_balanced_subset(const int32_t *labels, int64_t count, int classes, int64_t per_class,
                             uint64_t seed, int64_t **idx_out, int64_t *n_out, int64_t *counts_out,
                             sd_error *err)
{
    *idx_out = NULL;
    *n_out = 0;
    if (count <= 0 || classes <= 0 || per_class <= 0)
        return sd_error_set(err, SD_EINVAL,
                            "balanced subset: need samples, classes and a "
                            "positive budget per class");
    int64_t *order = malloc((size_t)count * sizeof *order);
    int64_t *taken = calloc((size_t)classes, sizeof *taken);
    int64_t *out = malloc((size_t)count * sizeof *out);
    if (!order || !taken || !out) {
        free(order);
        free(taken);
        free(out);
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < count; i++) {
        if (labels[i] < 0 || labels[i] >= classes) {
            free(order);
            free(taken);
            free(out);
            return sd_error_set(err, SD_EINVAL, "sample %lld has label %d, outside 0..%d",
                                (long long)i, labels[i], classes - 1);
        }
        order[i] = i;
    }
    /* one random permutation of everything, then the first per_class of
     * each class in that order: a uniform draw without replacement per class */
    shuffle(order, count, seed, TRAIN_STREAM_SUBSET, 0);
    int64_t n = 0;
    for (int64_t i = 0; i < count; i++) {
        int c = labels[order[i]];
        if (taken[c] < per_class) {
            taken[c]++;
            out[n++] = order[i];
        }
    }
    qsort(out, (size_t)n, sizeof *out, cmp_i64);
    if (counts_out)
        memcpy(counts_out, taken, (size_t)classes * sizeof *taken);
    free(order);
    free(taken);
    *idx_out = out;
    *n_out = n;
    return SD_OK;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int sd_train(const sd_model *m, sd_backend *be, const sd_data_view *data,
             const sd_train_config *cfg, sd_real *theta, float *bn_out,
             sd_train_progress_fn progress, void *progress_ctx, sd_error *err)
{
    if (data->count <= 0)
        return sd_error_set(err, SD_EINVAL, "training: no training samples");
    if (cfg->batch <= 0 || cfg->epochs <= 0 || !(cfg->lr > 0))
        return sd_error_set(err, SD_EINVAL, "training: batch, epochs and lr must be positive");
    if (data->c != m->spec.in_c || data->h != m->spec.in_h || data->w != m->spec.in_w ||
        data->classes != m->spec.classes)
        return sd_error_set(err, SD_EINVAL,
                            "training: samples are %dx%dx%d with %d classes, the model takes "
                            "%dx%dx%d with %d",
                            data->c, data->h, data->w, data->classes, m->spec.in_c, m->spec.in_h,
                            m->spec.in_w, m->spec.classes);
    if (m->n_bn && !bn_out)
        return sd_error_set(err, SD_EINVAL, "training: the model has batch norm; bn_out needed");
    int K = m->spec.classes;
    int bsz = data->count < cfg->batch ? (int)data->count : cfg->batch;
    int64_t per_epoch = data->count / bsz;
    int64_t steps = per_epoch * cfg->epochs;
    if (cfg->max_steps > 0 && cfg->max_steps < steps)
        steps = cfg->max_steps;
    size_t img = (size_t)data->c * (size_t)data->h * (size_t)data->w, nt = m->n_theta;
    int64_t *order = malloc((size_t)data->count * sizeof *order);
    int *lb = malloc((size_t)bsz * sizeof *lb);
    sd_real *yh = malloc((size_t)bsz * (size_t)K * sizeof *yh);
    sd_real *x = NULL, *y = NULL, *g = NULL, *m1 = NULL, *m2 = NULL;
    sd_exec *ex = NULL;
    int rc = SD_OK;
    if (!order || !lb || !yh) {
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
        goto out;
    }
    size_t sz_x = (size_t)bsz * img * sizeof(sd_real),
           sz_y = (size_t)bsz * (size_t)K * sizeof(sd_real), sz_t = (nt ? nt : 1) * sizeof(sd_real);
    if ((rc = be->alloc(be, err, sz_x, (void **)&x)) ||
        (rc = be->alloc(be, err, sz_y, (void **)&y)) ||
        (rc = be->alloc(be, err, sz_t, (void **)&g)) ||
        (rc = be->alloc(be, err, sz_t, (void **)&m1)) ||
        (cfg->optimizer == SD_OPT_ADAM && (rc = be->alloc(be, err, sz_t, (void **)&m2))) ||
        (rc = be->zero(be, err, m1, sz_t)) || (m2 && (rc = be->zero(be, err, m2, sz_t)))) {
        sd_error_wrap_code(err, rc, "training buffers");
        goto out;
    }
    if ((rc = sd_exec_create(&ex, m, be, bsz, 0, err)))
        goto out;
    double t0 = now_seconds(), lr = cfg->lr, epoch_sum = 0;
    int64_t step = 0, in_epoch = 0;
    for (int64_t i = 0; i < data->count; i++)
        order[i] = i;
    for (int e = 0; e < cfg->epochs && step < steps; e++) {
        if (cfg->decay_epochs > 0 && e > 0 && e % cfg->decay_epochs == 0)
            lr *= cfg->decay_factor;
        shuffle(order, data->count, cfg->seed, TRAIN_STREAM_SHUFFLE,
                (uint64_t)e * (uint64_t)data->count);
        epoch_sum = 0;
        in_epoch = 0;
        for (int64_t b = 0; b < per_epoch && step < steps; b++) {
            if ((rc = data->fetch(data->ctx, be, order + b * bsz, bsz, x, lb, err)))
                goto out;
            memset(yh, 0, (size_t)bsz * (size_t)K * sizeof *yh);
            for (int i = 0; i < bsz; i++) {
                if (lb[i] < 0 || lb[i] >= K) {
                    rc = sd_error_set(err, SD_EINVAL, "training sample with label %d", lb[i]);
                    goto out;
                }
                yh[(size_t)i * (size_t)K + (size_t)lb[i]] = 1;
            }
            double loss = 0;
            sd_exec_args a = {theta, NULL, SD_BN_BATCH, SD_LABEL_RAW, x, y, bsz};
            if ((rc = be->upload(be, err, y, yh, sz_y)) || (rc = be->zero(be, err, g, sz_t)) ||
                (rc = sd_exec_loss_grad(ex, &a, &loss, g, NULL, NULL, err)) ||
                (cfg->weight_decay > 0 &&
                 (rc = be->axpy(be, err, nt, (sd_real)cfg->weight_decay, theta, g)))) {
                sd_error_wrap_code(err, rc, "training step %lld", (long long)step);
                goto out;
            }
            if (cfg->optimizer == SD_OPT_ADAM) {
                rc = be->adam(be, err, nt, theta, g, m1, m2, lr, cfg->beta1, cfg->beta2,
                              cfg->adam_eps, (int)(step + 1));
            } else if (cfg->momentum > 0) {
                /* buf = momentum*buf + g; theta -= lr*buf (buf starts at 0, so
                 * the first step is buf = g, as in PyTorch) */
                rc = be->scal(be, err, nt, (sd_real)cfg->momentum, m1);
                if (!rc)
                    rc = be->axpy(be, err, nt, 1, g, m1);
                if (!rc)
                    rc = be->axpy(be, err, nt, (sd_real)-lr, m1, theta);
            } else {
                rc = be->axpy(be, err, nt, (sd_real)-lr, g, theta);
            }
            if (rc) {
                sd_error_wrap_code(err, rc, "training step %lld", (long long)step);
                goto out;
            }
            if (!(loss == loss) || loss > 1e30) {
                rc = sd_error_set(err, SD_EINVAL,
                                  "training diverged at step %lld (loss %g); lower --lr",
                                  (long long)step, loss);
                goto out;
            }
            step++;
            in_epoch++;
            epoch_sum += loss;
            if (progress) {
                sd_train_progress p = {step,
                                       steps,
                                       e + 1,
                                       cfg->epochs,
                                       b + 1 == per_epoch || step == steps,
                                       loss,
                                       epoch_sum / (double)in_epoch,
                                       lr,
                                       now_seconds() - t0};
                if (progress(progress_ctx, &p)) {
                    rc = sd_error_set(err, SD_ECANCELED, "training canceled at step %lld",
                                      (long long)step);
                    goto out;
                }
            }
        }
    }
    /* a last step can blow up without any loss having shown it */
    double norm2 = 0;
    if ((rc = be->dot(be, err, nt, theta, theta, &norm2))) {
        sd_error_wrap_code(err, rc, "training");
        goto out;
    }
    if (!(norm2 <= 1e30)) {
        rc = sd_error_set(err, SD_EINVAL,
                          "training diverged: the weights are not finite after %lld steps; "
                          "lower --lr",
                          (long long)step);
        goto out;
    }
    if (m->n_bn)
        rc = sd_bn_recompute(m, be, theta, data, cfg->bn_batches > 0 ? cfg->bn_batches : 20,
                             cfg->bn_batch > 0 ? cfg->bn_batch : 256,
                             cfg->seed ^ ((uint64_t)TRAIN_STREAM_BN << 32), bn_out, err);
out:
    sd_exec_destroy(ex);
    be->free(be, x);
    be->free(be, y);
    be->free(be, g);
    be->free(be, m1);
    be->free(be, m2);
    free(order);
    free(lb);
    free(yh);
    return rc;
}
