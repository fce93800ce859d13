/*
 * nd_data.c - Fashion-MNIST and prepared gastric data behind sd_data_view,
 * evaluation of a weights object (one function, nd_data_evaluate_weights), and the pictures of a distilled set (see
 * nd_data.h).
 */
#include "nd_data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sd_detect.h"
#include "sd_distill.h"
#include "sd_metrics.h"
#include "sd_plot.h"

static const char *const fmnist_names[] = {"T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                                           "Sandal",  "Shirt",   "Sneaker",  "Bag",   "Boot"};

/* ---- gastric patches cut on the fly ---- */

static int patch_fetch(void *ctx, sd_backend *be, const int64_t *idx, int n, sd_real *x,
                       int *labels, sd_error *err)
{
    nd_patch_source *s = ctx;
    if (n > s->cap) {
        sd_real *h = realloc(s->host, (size_t)n * (size_t)s->osize * (size_t)s->osize * sizeof *h);
        int32_t *t = realloc(s->tri, (size_t)n * 3 * sizeof *t);
        if (h)
            s->host = h;
        if (t)
            s->tri = t;
        if (!h || !t)
            return sd_error_set(err, SD_ENOMEM, "out of memory for a patch batch");
        s->cap = n;
    }
    for (int i = 0; i < n; i++) {
        if (idx[i] < 0 || (size_t)idx[i] >= s->ix->n)
            return sd_error_set(err, SD_EINVAL, "patch %lld out of range", (long long)idx[i]);
        const sd_patch *p = &s->ix->p[idx[i]];
        s->tri[3 * i] = p->img;
        s->tri[3 * i + 1] = p->y;
        s->tri[3 * i + 2] = p->x;
        if (labels)
            labels[i] = p->label;
    }
    int rc = sd_patch_cut(s->ds->pix, s->off, s->w, s->tri, n, s->ix->psize, s->osize, s->mean,
                          s->std, s->host, err);
    if (rc)
        return rc;
    rc = be->upload(be, err, x, s->host,
                    (size_t)n * (size_t)s->osize * (size_t)s->osize * sizeof(sd_real));
    return rc ? sd_error_wrap_code(err, rc, "uploading patches") : SD_OK;
}

static int patch_view(nd_data *d, int split, sd_data_view *v, sd_error *err)
{
    nd_patch_source *s = &d->src[split];
    s->off = malloc((size_t)d->ds->n * sizeof *s->off);
    s->w = malloc((size_t)d->ds->n * sizeof *s->w);
    if (!s->off || !s->w)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    sd_dataset_tables(d->ds, s->off, s->w);
    s->ds = d->ds;
    s->ix = &d->ix[split];
    s->osize = d->prep.osize;
    s->mean = d->prep.mean;
    s->std = d->prep.std;
    memset(v, 0, sizeof *v);
    v->count = (int64_t)d->ix[split].n;
    v->c = 1;
    v->h = v->w = d->prep.osize;
    v->classes = d->prep.task.classes;
    v->class_names = d->task_names;
    v->fetch = patch_fetch;
    v->ctx = s;
    return SD_OK;
}

static int open_gastric(nd_data *d, const char *dir, sd_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/prepared.json", dir);
    int rc = sd_prepared_read(path, &d->prep, err);
    if (rc)
        return sd_error_wrap(err, "%s is not prepared (run 'sldd dataset prepare --data %s')", dir,
                             dir);
    if ((rc = sd_dataset_open(&d->ds, dir, SD_LOAD_ALL, err)))
        return rc;
    if (strcmp(d->ds->task.name, d->prep.task.name) || d->ds->task.labels != d->prep.task.labels)
        return sd_error_set(err, SD_EFORMAT,
                            "%s: task.json declares task '%s' but prepared.json has '%s'"
                            " (run 'sldd dataset prepare --data %s' again)",
                            dir, d->ds->task.name, d->prep.task.name, dir);
    d->gastric = 1;
    d->synthetic = d->prep.synthetic;
    d->default_arch = "convnet-bn";
    for (int k = 0; k < d->prep.task.classes; k++)
        d->task_names[k] = d->prep.task.cls[k];
    d->class_names = d->task_names;
    for (int s = 0; s < SD_SPLIT_COUNT; s++) {
        /* val and test images may lack masks: their patch index is then
         * empty and they are evaluated at image level only */
        rc = sd_patch_index_build(&d->ix[s], d->ds, s, d->prep.psize, d->prep.stride, err);
        if (rc && s == SD_SPLIT_TRAIN)
            return rc;
        if (rc)
            memset(&d->ix[s], 0, sizeof d->ix[s]);
    }
    if ((rc = patch_view(d, SD_SPLIT_TRAIN, &d->train, err)) ||
        (rc = patch_view(d, SD_SPLIT_VAL, &d->val, err)) ||
        (rc = patch_view(d, SD_SPLIT_TEST, &d->test, err)))
        return rc;
    return SD_OK;
}

static int open_fmnist(nd_data *d, sd_error *err)
{
    static const int parts[3] = {SD_FMNIST_TRAIN, SD_FMNIST_VAL, SD_FMNIST_TEST};
    sd_data_view *views[3] = {&d->train, &d->val, &d->test};
    for (int i = 0; i < 3; i++) {
        int rc = sd_fmnist_load(&d->fm[i], NULL, parts[i], 0, err);
        if (rc)
            return rc;
        d->arr[i] = (sd_array_data){.x = d->fm[i].x,
                                    .labels = d->fm[i].y,
                                    .count = d->fm[i].n,
                                    .c = d->fm[i].c,
                                    .h = d->fm[i].h,
                                    .w = d->fm[i].w,
                                    .classes = d->fm[i].classes};
        sd_data_view_array(views[i], &d->arr[i]);
        views[i]->class_names = fmnist_names;
    }
    d->default_arch = "lenet";
    d->class_names = fmnist_names;
    return SD_OK;
}

int nd_data_open(nd_data *d, const char *source, long long train_limit, sd_error *err)
{
    memset(d, 0, sizeof *d);
    d->source = source;
    int rc = !strcmp(source, "fashion-mnist") ? open_fmnist(d, err) : open_gastric(d, source, err);
    if (rc) {
        nd_data_close(d);
        return rc;
    }
    if (train_limit > 0 && train_limit < d->train.count) {
        /* an evenly spread subset, so every class stays represented */
        d->sub_index = malloc((size_t)train_limit * sizeof *d->sub_index);
        if (!d->sub_index) {
            nd_data_close(d);
            return sd_error_set(err, SD_ENOMEM, "out of memory");
        }
        for (long long i = 0; i < train_limit; i++)
            d->sub_index[i] = (int64_t)((double)i * (double)d->train.count / (double)train_limit);
        d->train_full = d->train;
        d->sub =
            (sd_subset_data){.base = &d->train_full, .index = d->sub_index, .count = train_limit};
        sd_data_view_subset(&d->train, &d->sub);
    }
    return SD_OK;
}

int nd_data_train_label(const nd_data *d, int64_t i)
{
    if (d->sub_index)
        i = d->sub_index[i];
    return d->gastric ? d->ix[SD_SPLIT_TRAIN].p[i].label : d->fm[0].y[i];
}

void nd_data_close(nd_data *d)
{
    for (int i = 0; i < 3; i++) {
        sd_imageset_free(&d->fm[i]);
        sd_array_data_free(&d->arr[i]);
        sd_patch_index_free(&d->ix[i]);
        free(d->src[i].host);
        free(d->src[i].tri);
        free(d->src[i].off);
        free(d->src[i].w);
    }
    sd_subset_data_free(&d->sub);
    free(d->sub_index);
    sd_dataset_destroy(d->ds);
    memset(d, 0, sizeof *d);
}

/* ---- evaluation ---- */

typedef struct classify_ctx {
    const sd_weights *w;
    sd_real *x;
    sd_exec *ex;
    int cap;
    sd_error *err; /* the evaluation's: sd_detect_image keeps a reason found there */
} classify_ctx;

static int classify_patches(void *vctx, const sd_real *patches, int n, int *classes)
{
    classify_ctx *c = vctx;
    const sd_model *m = c->w->m;
    sd_backend *be = c->w->be;
    size_t d = (size_t)m->spec.in_c * (size_t)m->spec.in_h * (size_t)m->spec.in_w;
    for (int s = 0; s < n; s += c->cap) {
        int k = n - s < c->cap ? n - s : c->cap;
        int rc =
            be->upload(be, c->err, c->x, patches + (size_t)s * d, (size_t)k * d * sizeof(sd_real));
        if (rc)
            return rc;
        sd_exec_args a = {c->w->theta, c->w->theta_bn, SD_BN_FROZEN, SD_LABEL_RAW, c->x, NULL, k};
        if ((rc = sd_exec_predict(c->ex, &a, classes + s, NULL, c->err)))
            return rc;
    }
    return SD_OK;
}

static int image_level(nd_data *ds, const sd_weights *w, const nd_norm *norm, int split,
                       nd_eval *ev, sd_error *err)
{
    const sd_model *m = w->m;
    sd_backend *be = w->be;
    classify_ctx c = {w, NULL, NULL, 256, err};
    int rc = SD_OK, n = 0;
    double *r = malloc((size_t)ds->ds->n * sizeof *r);
    int *lab = malloc((size_t)ds->ds->n * sizeof *lab);
    size_t d = (size_t)m->spec.in_c * (size_t)m->spec.in_h * (size_t)m->spec.in_w;
    if (!r || !lab) {
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = be->alloc(be, err, (size_t)c.cap * d * sizeof(sd_real), (void **)&c.x)) ||
        (rc = sd_exec_create(&c.ex, m, be, c.cap, SD_EXEC_INFERENCE, err))) {
        sd_error_wrap_code(err, rc, "evaluation buffers");
        goto out;
    }
    sd_detect_params p = {ds->prep.psize,
                          ds->prep.stride,
                          ds->prep.osize,
                          norm->mean,
                          norm->std,
                          SD_DETECT_DELTA,
                          256,
                          &ds->prep.task};
    int correct = 0;
    for (int i = 0; i < ds->ds->n; i++) {
        const sd_dataset_image *im = &ds->ds->img[i];
        if (im->split != split || !im->loaded)
            continue;
        sd_detect_result res = {0};
        if ((rc = sd_detect_image(sd_dataset_pixels(ds->ds, i), im->w, im->h, &p, classify_patches,
                                  &c, &res, err)))
            goto out;
        r[n] = res.r;
        lab[n] = im->label;
        correct += res.decision == im->label;
        ev->undetermined += res.decision < 0;
        n++;
        sd_detect_result_free(&res);
    }
    ev->images = n;
    ev->delta = SD_DETECT_DELTA;
    ev->image_accuracy = n ? (double)correct / n : NAN;
    ev->sen = ev->spe = ev->hm = ev->auc = NAN;
    if (n && ds->prep.task.rule == SD_RULE_RATIO) {
        sd_confusion cf;
        sd_confusion_at(r, lab, n, SD_DETECT_DELTA, &cf);
        ev->sen = sd_sensitivity(&cf);
        ev->spe = sd_specificity(&cf);
        ev->hm = sd_harmonic_mean(ev->sen, ev->spe);
        sd_roc roc = {0};
        sd_error e2 = {0};
        ev->auc = sd_roc_compute(r, lab, n, &roc, &e2) ? NAN : roc.auc;
        for (int k = 0; isfinite(ev->auc) && k < roc.n && k < ND_EVAL_ROC_MAX; k++) {
            /* k-th of at most ND_EVAL_ROC_MAX points spread over roc.n */
            int at = roc.n <= ND_EVAL_ROC_MAX
                         ? k
                         : (int)((int64_t)k * (roc.n - 1) / (ND_EVAL_ROC_MAX - 1));
            ev->roc_fpr[k] = (float)roc.pt[at].fpr;
            ev->roc_tpr[k] = (float)roc.pt[at].tpr;
            ev->roc_n = k + 1;
        }
        sd_roc_free(&roc);
    }
out:
    sd_exec_destroy(c.ex);
    be->free(be, c.x);
    free(r);
    free(lab);
    return rc;
}

int nd_data_evaluate_weights(nd_data *ds, const sd_weights *w, const nd_norm *norm_in, int split,
                             nd_eval *ev, sd_error *err)
{
    memset(ev, 0, sizeof *ev);
    const sd_data_view *v = split == SD_SPLIT_TEST  ? &ds->test
                            : split == SD_SPLIT_VAL ? &ds->val
                                                    : &ds->train;
    ev->split = sd_split_name(split);
    int K = w->m->spec.classes, rc = SD_OK;
    if (K > 10)
        return sd_error_set(err, SD_EUNSUPPORTED, "evaluation prints at most 10 classes");
    nd_norm norm = norm_in ? *norm_in : (nd_norm){ds->prep.mean, ds->prep.std};
    /* gastric patches are cut and standardised on the fly: a private copy of
     * the split's patch source cuts them with the normalisation asked for,
     * leaving the data set as it is */
    nd_patch_source src;
    sd_data_view view = *v;
    if (ds->gastric) {
        src = ds->src[split];
        src.mean = norm.mean;
        src.std = norm.std;
        src.host = NULL;
        src.tri = NULL;
        src.cap = 0;
        view.ctx = &src;
    }
    if (view.count > 0) {
        rc = sd_weights_evaluate(w, &view, 0, &ev->accuracy, ev->confusion, NULL, err);
        ev->samples = view.count;
    }
    if (ds->gastric) {
        free(src.host);
        free(src.tri);
        if (!rc)
            rc = image_level(ds, w, &norm, split, ev, err);
    }
    return rc;
}

int nd_data_evaluate_theta(nd_data *ds, const sd_model *m, const sd_real *theta,
                           const float *theta_bn, sd_backend *be, int split, nd_eval *ev,
                           sd_error *err)
{
    sd_weights *w = NULL;
    int rc = sd_weights_from_backend(&w, &m->spec, be, theta, theta_bn, err);
    if (!rc)
        rc = nd_data_evaluate_weights(ds, w, NULL, split, ev, err);
    sd_weights_destroy(w);
    return rc;
}

int nd_data_evaluate(nd_data *ds, const sd_distilled *d, sd_backend *be, nd_eval *ev, sd_error *err)
{
    sd_weights *w = NULL;
    int rc = sd_weights_replay(&w, d, be, err);
    if (!rc)
        rc = nd_data_evaluate_weights(ds, w, NULL, ds->gastric ? SD_SPLIT_VAL : SD_SPLIT_TEST, ev,
                                      err);
    sd_weights_destroy(w);
    return rc;
}

/* v with 3 or 4 decimals, or "undefined" when v is not a number. */
static const char *eval_fig(char *buf, size_t len, int decimals, double v)
{
    if (isfinite(v))
        snprintf(buf, len, "%.*f", decimals, v);
    else
        snprintf(buf, len, "undefined");
    return buf;
}

void nd_eval_print(const nd_data *ds, const nd_eval *ev, FILE *f)
{
    int K = ds->gastric ? ds->prep.task.classes : 10;
    char a[16], b[16], c[16], d[16];
    fprintf(f, "replayed model on the %s split: accuracy %s over %lld %s\n", ev->split,
            eval_fig(a, sizeof a, 4, ev->samples ? ev->accuracy : NAN), (long long)ev->samples,
            ds->gastric ? "patches" : "images");
    if (ev->samples) {
        fprintf(f, "confusion (rows: truth, columns: prediction)\n%10s", "");
        for (int j = 0; j < K; j++)
            fprintf(f, " %8.8s", ds->class_names[j]);
        fputc('\n', f);
        for (int i = 0; i < K; i++) {
            int64_t row = 0;
            fprintf(f, "%10.10s", ds->class_names[i]);
            for (int j = 0; j < K; j++) {
                fprintf(f, " %8lld", (long long)ev->confusion[i * K + j]);
                row += ev->confusion[i * K + j];
            }
            fprintf(f, "   recall %s\n",
                    eval_fig(a, sizeof a, 3,
                             row ? (double)ev->confusion[i * K + i] / (double)row : NAN));
        }
    }
    const sd_task *t = &ds->prep.task;
    if (ds->gastric && t->rule == SD_RULE_RATIO)
        fprintf(f,
                "image level (%d images, delta %.2f): Sen %s  Spe %s  HM %s  AUC %s"
                "  undetermined %d\n",
                ev->images, ev->delta, eval_fig(a, sizeof a, 3, ev->sen),
                eval_fig(b, sizeof b, 3, ev->spe), eval_fig(c, sizeof c, 3, ev->hm),
                eval_fig(d, sizeof d, 3, ev->auc), ev->undetermined);
    if (ds->gastric && !sd_task_is_gastric(t))
        fprintf(f, "task %s: %s (%s)\n", t->name, t->rule_name,
                t->rule == SD_RULE_RATIO ? "Sen and AUC for the second class" : "any K classes");
    if (ds->gastric && t->rule == SD_RULE_MAJORITY)
        fprintf(f, "image level (%d images, majority rule): accuracy %s  undetermined %d\n",
                ev->images, eval_fig(a, sizeof a, 3, ev->image_accuracy), ev->undetermined);
}

void nd_data_meta(const nd_data *ds, const nd_eval *ev, nd_payload_meta *meta)
{
    static const char *const aud[] = {"local"};
    static nd_class_count counts[SD_SPLIT_COUNT * SD_TASK_MAX_CLASSES];
    memset(meta, 0, sizeof *meta);
    meta->sender = "local";
    meta->audience = aud;
    meta->n_audience = 1;
    meta->data_source =
        ds->gastric ? (ds->synthetic ? "synthetic-phantom" : "hospital") : "fashion-mnist";
    meta->metrics_split = ev->split;
    meta->accuracy = ev->samples ? ev->accuracy : NAN;
    meta->sensitivity = meta->specificity = meta->harmonic_mean = meta->auc = NAN;
    meta->patch_count = (uint64_t)ev->samples;
    if (ds->gastric) {
        meta->norm_mean = ds->prep.mean;
        meta->norm_std = ds->prep.std;
        meta->patch_size = ds->prep.psize;
        meta->patch_stride = ds->prep.stride;
        meta->patch_resize = ds->prep.osize;
        meta->sensitivity = ev->sen; /* NaN (undefined) is marked as such in the payload */
        meta->specificity = ev->spe;
        meta->harmonic_mean = ev->hm;
        meta->auc = ev->auc;
        meta->image_count = (uint64_t)ev->images;
        size_t k = 0;
        const sd_task *t = &ds->prep.task;
        meta->task = sd_task_is_gastric(t) ? NULL : t; /* absent from a bundle: gastric */
        for (int s = 0; s < SD_SPLIT_COUNT; s++)
            for (int c = 0; c < t->classes; c++) {
                int l = sd_task_label_of_class(t, c);
                counts[k].split = sd_split_name(s);
                counts[k].class_name = t->cls[c];
                counts[k].images = (uint64_t)(l < 0 ? 0 : ds->prep.images[s][l]);
                counts[k].patches = (uint64_t)ds->prep.patches[s][c];
                k++;
            }
        meta->counts = counts;
        meta->n_counts = k;
    } else {
        meta->norm_mean = SD_FMNIST_MEAN;
        meta->norm_std = SD_FMNIST_STD;
        /* whole images: one "patch" the size of the image */
        meta->patch_size = ds->train.h;
        meta->patch_stride = ds->train.h;
    }
}

/* ---- pictures ---- */

/* The caption lines of step s's learned step sizes: step s is taken once
 * per distill epoch e, with alpha[e * S + s], so E values in epoch order
 * (four to a line, comma-separated; the range where there are more than
 * twelve). */
static void grid_step_sizes(const sd_distilled *d, size_t s, char *buf, size_t len)
{
    size_t S = (size_t)d->steps, E = d->epochs_inner > 0 ? (size_t)d->epochs_inner : 1;
    const float *a = d->step_sizes;
    int o;
    if (E == 1) {
        snprintf(buf, len, "\nstep %zu lr %.4g", s, a[s]);
        return;
    }
    if (E > 12) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t e = 0; e < E; e++) {
            lo = fmin(lo, a[e * S + s]);
            hi = fmax(hi, a[e * S + s]);
        }
        snprintf(buf, len, "\nstep %zu lr in %zu epochs:\n%.4g to %.4g", s, E, lo, hi);
        return;
    }
    o = snprintf(buf, len, "\nstep %zu lr per epoch:", s);
    for (size_t e = 0; e < E && o > 0 && (size_t)o < len; e++)
        o += snprintf(buf + o, len - (size_t)o, "%s%.4g", e % 4 ? ", " : "\n", a[e * S + s]);
}

int nd_picture_grid(const char *path, const sd_distilled *d, const char *const *names,
                    int synthetic, sd_error *err)
{
    size_t M = sd_distilled_image_count(d), K = (size_t)d->spec.classes;
    int h = d->spec.in_h, w = d->spec.in_w;
    char **cap = calloc(M, sizeof *cap);
    sd_real *tiles = malloc(M * (size_t)h * (size_t)w * sizeof *tiles);
    int rc = SD_OK;
    if (!cap || !tiles) {
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < M; i++) {
        /* first channel of each image */
        const float *src = d->images + i * (size_t)d->spec.in_c * (size_t)h * (size_t)w;
        for (size_t j = 0; j < (size_t)h * (size_t)w; j++)
            tiles[i * (size_t)h * (size_t)w + j] = src[j];
        const float *y = d->labels + i * K;
        double q[16], mx = -INFINITY, s = 0;
        size_t kk = K < 16 ? K : 16;
        for (size_t c = 0; c < kk; c++)
            mx = fmax(mx, y[c]);
        for (size_t c = 0; c < kk; c++) {
            q[c] = d->label_param == SD_LABEL_SOFTMAX ? exp(y[c] - mx) : y[c];
            s += q[c];
        }
        if (d->label_param == SD_LABEL_SOFTMAX)
            for (size_t c = 0; c < kk; c++)
                q[c] /= s;
        char buf[400];
        int o = 0;
        if (kk <= 3) {
            for (size_t c = 0; c < kk; c++)
                o += snprintf(buf + o, sizeof buf - (size_t)o, "%s%s %.2f", c ? " " : "",
                              names ? names[c] : "?", q[c]);
        } else { /* the three largest */
            int used[16] = {0};
            for (int r = 0; r < 3; r++) {
                size_t best = 0;
                double bv = -INFINITY;
                for (size_t c = 0; c < kk; c++)
                    if (!used[c] && q[c] > bv) {
                        bv = q[c];
                        best = c;
                    }
                used[best] = 1;
                o += snprintf(buf + o, sizeof buf - (size_t)o, "%s%.7s %.2f", r ? "\n" : "",
                              names ? names[best] : "?", bv);
            }
        }
        grid_step_sizes(d, i / (size_t)d->images_per_step, buf + o, sizeof buf - (size_t)o);
        cap[i] = strdup(buf);
        if (!cap[i]) {
            rc = sd_error_set(err, SD_ENOMEM, "out of memory");
            goto out;
        }
    }
    char title[200], label[64];
    sd_model_spec_label(&d->spec, label, sizeof label);
    snprintf(title, sizeof title,
             "%sdistilled set: %s, %d step(s) x %d image(s), %d epoch(s): %d step sizes, %s "
             "labels",
             synthetic ? "SYNTHETIC DATA - " : "", label, d->steps, d->images_per_step,
             d->epochs_inner, d->steps * d->epochs_inner,
             d->label_param == SD_LABEL_SOFTMAX ? "soft (softmax)" : "raw");
    int cols = d->images_per_step < 10 ? d->images_per_step : 10;
    if (cols < 3 && M >= 3)
        cols = (int)(M < 10 ? M : 10);
    rc = sd_plot_image_grid_png(path, tiles, (int)M, h, w, cols, 0, (const char *const *)cap, title,
                                err);
out:
    if (cap)
        for (size_t i = 0; i < M; i++)
            free(cap[i]);
    free(cap);
    free(tiles);
    return rc;
}

int nd_picture_curves(const char *path, const double *iter, const double *loss, const double *acc,
                      int n, sd_error *err)
{
    const double *ys[2] = {loss, acc};
    const char *names[2] = {"outer loss", "validation accuracy"};
    return sd_plot_lines_png(path, "distillation", "outer iteration", "", iter, n, ys, names, 2, 0,
                             err);
}

void nd_data_public_norm(nd_data *d)
{
    if (!d->gastric)
        return;
    d->prep.mean = ND_PUBLIC_NORM_MEAN;
    d->prep.std = ND_PUBLIC_NORM_STD;
    for (int s = 0; s < SD_SPLIT_COUNT; s++) {
        d->src[s].mean = ND_PUBLIC_NORM_MEAN;
        d->src[s].std = ND_PUBLIC_NORM_STD;
    }
}
