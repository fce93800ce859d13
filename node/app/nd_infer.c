/*
 * nd_infer.c - patch classifiers from payloads or weights files, detection
 * on whole images and evaluation of a split (see nd_infer.h).
 */
#include "nd_infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PAYLOAD_MAX_BYTES ((size_t)512 << 20)

/* A step that failed with its reason in err: prefix what was being done. */
static int failf(sd_error *err, const char *what)
{
    sd_error_wrap(err, "%s", what);
    return -1;
}

void nd_infer_free(nd_infer *inf)
{
    if (!inf)
        return;
    if (inf->be)
        inf->be->free(inf->be, inf->xbuf);
    sd_exec_destroy(inf->ex);
    sd_weights_destroy(inf->w);
    memset(inf, 0, sizeof *inf);
}

/* Take w (destroyed on failure too) and build the prediction exec and its
 * batch buffer.  The geometry is the caller's to fill. */
static int adopt(nd_infer *inf, sd_weights *w, sd_error *err)
{
    memset(inf, 0, sizeof *inf);
    inf->dp_epsilon = NAN;
    if (!w)
        return -1;
    inf->w = w;
    inf->be = w->be;
    inf->m = w->m;
    sd_backend *be = inf->be;
    size_t d = (size_t)w->m->spec.in_c * (size_t)w->m->spec.in_h * (size_t)w->m->spec.in_w;
    /* batches of about 1M input values: 256 patches of 64x64, 11 of 299x299 */
    size_t cap = ((size_t)1 << 20) / d;
    inf->cap = cap < 8 ? 8 : cap > 256 ? 256 : (int)cap;
    if (be->alloc(be, err, (size_t)inf->cap * d * sizeof(sd_real), (void **)&inf->xbuf)) {
        failf(err, "allocating prediction buffers");
        goto fail;
    }
    if (sd_exec_create(&inf->ex, w->m, be, inf->cap, SD_EXEC_INFERENCE, err)) {
        failf(err, "prediction buffers");
        goto fail;
    }
    return 0;
fail:
    nd_infer_free(inf);
    return -1;
}

int nd_infer_from_distilled(nd_infer *inf, const sd_distilled *d, const nd_payload_info *info,
                            sd_backend *be, sd_error *err)
{
    sd_weights *w = NULL;
    memset(inf, 0, sizeof *inf);
    if (sd_weights_replay(&w, d, be, err))
        return failf(err, "replaying the distilled set (Algorithm 2)");
    if (adopt(inf, w, err))
        return -1;
    inf->psize = info->patch_size;
    inf->stride = info->patch_stride;
    inf->osize = info->patch_resize ? info->patch_resize : info->patch_size;
    inf->mean = info->norm_mean;
    inf->std = info->norm_std > 0 ? info->norm_std : 1;
    inf->mm_per_pixel = info->mm_per_pixel;
    inf->dp_epsilon = info->dp_epsilon;
    inf->task = info->task;
    snprintf(inf->sender, sizeof inf->sender, "%s", info->sender);
    for (int i = 0; i < 32; i++)
        snprintf(inf->theta0_sha256 + 2 * i, 3, "%02x", d->theta0_sha256[i]);
    snprintf(inf->kind, sizeof inf->kind, "payload");
    char spec[64];
    sd_model_spec_label(&inf->m->spec, spec, sizeof spec);
    snprintf(inf->label, sizeof inf->label,
             "payload: %s replayed from %zu distilled image(s), "
             "%d step(s), sender %s",
             spec, sd_distilled_image_count(d), d->steps * d->epochs_inner,
             info->sender[0] ? info->sender : "?");
    return 0;
}

int nd_infer_from_payload(nd_infer *inf, const uint8_t *buf, size_t len, sd_backend *be,
                          sd_error *err)
{
    memset(inf, 0, sizeof *inf);
    sd_distilled d = {0};
    nd_payload_info info;
    if (nd_payload_parse(buf, len, &d, &info, err))
        return failf(err, "not a usable payload");
    int rc = nd_infer_from_distilled(inf, &d, &info, be, err);
    sd_distilled_free(&d);
    return rc;
}

int nd_infer_from_payload_file(nd_infer *inf, const char *path, sd_backend *be, sd_error *err)
{
    memset(inf, 0, sizeof *inf);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (nd_file_read(path, PAYLOAD_MAX_BYTES, &buf, &len, err))
        return -1;
    int rc = nd_infer_from_payload(inf, buf, len, be, err);
    free(buf);
    if (rc)
        sd_error_wrap(err, "%s", path);
    return rc;
}

/* The label a replayed payload shows ("replayed from ...") is kept in the
 * stored theta_opt's `trained` text, so both read the same. */
#define REPLAYED_FROM "replayed from "

int nd_infer_from_weights(nd_infer *inf, const nd_weights *wf, sd_backend *be, sd_error *err)
{
    sd_weights *w = NULL;
    memset(inf, 0, sizeof *inf);
    if (sd_weights_from_host(&w, &wf->spec, be, wf->theta, wf->n_bn ? wf->theta_bn : NULL, err))
        return failf(err, "loading weights");
    if (adopt(inf, w, err))
        return -1;
    inf->psize = wf->patch_size;
    inf->stride = wf->patch_stride;
    inf->osize = wf->patch_resize ? wf->patch_resize : wf->patch_size;
    inf->mean = wf->norm_mean;
    inf->std = wf->norm_std;
    inf->synthetic = wf->synthetic;
    inf->task = wf->task;
    int payload = !strcmp(wf->source, "payload");
    snprintf(inf->kind, sizeof inf->kind, "%s", payload ? "payload" : "weights");
    char spec[64];
    sd_model_spec_label(&inf->m->spec, spec, sizeof spec);
    if (payload)
        snprintf(inf->label, sizeof inf->label, "payload: %s %.250s", spec, wf->trained);
    else
        snprintf(inf->label, sizeof inf->label, "weights: %s %.100s", spec, wf->trained);
    return 0;
}

int nd_infer_from_weights_file(nd_infer *inf, const char *path, sd_backend *be, sd_error *err)
{
    memset(inf, 0, sizeof *inf);
    nd_weights wf;
    if (nd_weights_read(path, &wf, err))
        return -1;
    int rc = nd_infer_from_weights(inf, &wf, be, err);
    nd_weights_free(&wf);
    return rc;
}

int nd_infer_from_theta(nd_infer *inf, const sd_model_spec *spec, const sd_real *theta,
                        const float *bn, int psize, int stride, int osize, double mean, double std,
                        sd_backend *be, sd_error *err)
{
    sd_weights *w = NULL;
    memset(inf, 0, sizeof *inf);
    if (sd_weights_from_backend(&w, spec, be, theta, bn, err))
        return failf(err, "copying weights");
    if (adopt(inf, w, err))
        return -1;
    inf->psize = psize;
    inf->stride = stride;
    inf->osize = osize;
    inf->mean = mean;
    inf->std = std;
    snprintf(inf->kind, sizeof inf->kind, "weights");
    sd_model_spec_label(&inf->m->spec, inf->label, sizeof inf->label);
    return 0;
}

int nd_infer_to_weights(const nd_infer *inf, nd_weights *wf, sd_error *err)
{
    const sd_model *m = inf->m;
    memset(wf, 0, sizeof *wf);
    wf->spec = m->spec;
    wf->n_theta = m->n_theta;
    wf->n_bn = m->n_bn;
    wf->theta = malloc(m->n_theta * sizeof *wf->theta);
    wf->theta_bn = malloc((m->n_bn ? m->n_bn : 1) * sizeof *wf->theta_bn);
    if (!wf->theta || !wf->theta_bn) {
        nd_weights_free(wf);
        sd_error_set(err, SD_ENOMEM, "out of memory");
        return -1;
    }
    if (sd_weights_download(inf->w, wf->theta, err)) {
        nd_weights_free(wf);
        return failf(err, "downloading weights");
    }
    if (m->n_bn)
        memcpy(wf->theta_bn, inf->w->theta_bn_host, m->n_bn * sizeof *wf->theta_bn);
    wf->norm_mean = inf->mean;
    wf->norm_std = inf->std;
    wf->task = inf->task;
    wf->patch_size = inf->psize;
    wf->patch_stride = inf->stride;
    wf->patch_resize = inf->osize != inf->psize ? inf->osize : 0;
    wf->synthetic = inf->synthetic;
    snprintf(wf->source, sizeof wf->source, "%s",
             strcmp(inf->kind, "payload") ? "training" : "payload");
    /* the label's text after "payload: <spec> " */
    const char *from = strstr(inf->label, REPLAYED_FROM);
    snprintf(wf->trained, sizeof wf->trained, "%s", from ? from : "");
    return 0;
}

int nd_infer_check_gastric(const nd_infer *inf, sd_error *err)
{
    const sd_model_spec *s = &inf->m->spec;
    sd_task gastric;
    sd_task_gastric(&gastric);
    const sd_task *t = inf->task.labels ? &inf->task : &gastric;
    if (s->in_c != 1 || s->classes != t->classes) {
        if (sd_task_is_gastric(t))
            sd_error_set(err, SD_EINVAL,
                         "the %s's model takes %d channel(s) and has %d classes; gastritis "
                         "detection needs a gastric model (1 channel, classes I/N/P)",
                         inf->kind, s->in_c, s->classes);
        else
            sd_error_set(err, SD_EINVAL,
                         "the %s's model takes %d channel(s) and has %d classes; task '%s' needs "
                         "1 channel and %d classes",
                         inf->kind, s->in_c, s->classes, t->name, t->classes);
        return -1;
    }
    if (inf->psize <= 0 || inf->stride <= 0 || inf->osize <= 0) {
        sd_error_set(err, SD_EINVAL,
                     "the %s carries no patch grid (made from data that is not gastric "
                     "patches?); detection needs patch size and stride",
                     inf->kind);
        return -1;
    }
    if (inf->osize != s->in_h || inf->osize != s->in_w || inf->osize > inf->psize) {
        sd_error_set(err, SD_EINVAL, "the %s's patch input %d does not match its model input %dx%d",
                     inf->kind, inf->osize, s->in_h, s->in_w);
        return -1;
    }
    return 0;
}

void nd_infer_params(const nd_infer *inf, double delta, sd_detect_params *p)
{
    p->psize = inf->psize;
    p->stride = inf->stride;
    p->osize = inf->osize;
    p->mean = inf->mean;
    p->std = inf->std;
    p->delta = delta;
    p->batch = inf->cap;
    p->task = inf->task.labels ? &inf->task : NULL;
}

int nd_infer_classify(void *ctx, const sd_real *patches, int n, int *classes)
{
    nd_infer *inf = ctx;
    const sd_model_spec *s = &inf->m->spec;
    size_t d = (size_t)s->in_c * (size_t)s->in_h * (size_t)s->in_w;
    for (int at = 0; at < n; at += inf->cap) {
        int k = n - at < inf->cap ? n - at : inf->cap;
        int rc = inf->be->upload(inf->be, &inf->err, inf->xbuf, patches + (size_t)at * d,
                                 (size_t)k * d * sizeof(sd_real));
        if (rc)
            return rc;
        sd_exec_args a = {
            inf->w->theta, inf->w->theta_bn, SD_BN_FROZEN, SD_LABEL_RAW, inf->xbuf, NULL, k};
        if ((rc = sd_exec_predict(inf->ex, &a, classes + at, NULL, &inf->err)))
            return rc;
    }
    return SD_OK;
}

int nd_infer_detect(nd_infer *inf, const uint16_t *pix, int w, int h, double delta,
                    sd_detect_result *res, sd_error *err)
{
    sd_detect_params p;
    nd_infer_params(inf, delta, &p);
    /* so that a classifier message found afterwards belongs to this detection */
    sd_error_clear(&inf->err);
    int rc = sd_detect_image(pix, w, h, &p, nd_infer_classify, inf, res, err);
    if (rc && inf->err.msg[0] && !strstr(err->msg, inf->err.msg))
        sd_error_wrap(err, "%s", inf->err.msg);
    return rc;
}

void nd_split_eval_free(nd_split_eval *ev)
{
    if (!ev)
        return;
    free(ev->r);
    free(ev->label);
    free(ev->index);
    free(ev->decision);
    memset(ev, 0, sizeof *ev);
}

int nd_infer_eval_split(nd_infer *inf, const sd_dataset *ds, int split, nd_split_eval *ev,
                        sd_error *err)
{
    memset(ev, 0, sizeof *ev);
    ev->split = split;
    int n = 0, masks = 0;
    for (int i = 0; i < ds->n; i++)
        if (ds->img[i].split == split && ds->img[i].loaded) {
            n++;
            masks += ds->img[i].has_mask;
        }
    if (!n)
        return sd_error_set(err, SD_EINVAL, "no loaded images in split '%s'", sd_split_name(split));
    /* the model's task must be the data set's: same classes, same order */
    sd_task gastric;
    sd_task_gastric(&gastric);
    const sd_task *t = inf->task.labels ? &inf->task : &gastric;
    int K = ev->classes = t->classes;
    for (int c = 0; c < K; c++)
        if (ds->task.classes != K || strcasecmp(ds->task.cls[c], t->cls[c]))
            return sd_error_set(err, SD_EINVAL,
                                "the %s classifies task '%s' (%d classes) but the data set %s "
                                "has task '%s' (%d classes)",
                                inf->kind, t->name, K, ds->dir, ds->task.name, ds->task.classes);
    masks += !ds->task.outside; /* whole images: every patch is labelled */
    ev->r = malloc((size_t)n * sizeof *ev->r);
    ev->label = malloc((size_t)n * sizeof *ev->label);
    ev->index = malloc((size_t)n * sizeof *ev->index);
    ev->decision = malloc((size_t)n * sizeof *ev->decision);
    if (!ev->r || !ev->label || !ev->index || !ev->decision) {
        nd_split_eval_free(ev);
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    }
    /* Labelled patches on this classifier's grid.  They are positions of the
     * detection grid, so their predictions come from detection itself and no
     * patch is classified twice. */
    sd_patch_index ix = {0};
    int rc = SD_OK;
    if (masks && (rc = sd_patch_index_build(&ix, ds, split, inf->psize, inf->stride, err)))
        goto out;
    size_t j = 0;
    int64_t correct = 0;
    for (int i = 0; i < ds->n; i++) {
        const sd_dataset_image *im = &ds->img[i];
        if (im->split != split || !im->loaded)
            continue;
        int k = ev->images++;
        ev->label[k] = im->label;
        ev->index[k] = i;
        ev->r[k] = NAN;
        ev->decision[k] = -1;
        if (!sd_patch_grid_dim(im->w, inf->psize, inf->stride) ||
            !sd_patch_grid_dim(im->h, inf->psize, inf->stride))
            continue; /* smaller than a patch: undetermined */
        sd_detect_result res;
        if ((rc = nd_infer_detect(inf, sd_dataset_pixels(ds, i), im->w, im->h, SD_DETECT_DELTA,
                                  &res, err))) {
            sd_error_wrap(err, "image '%s'", im->id);
            goto out;
        }
        ev->r[k] = res.r;
        ev->decision[k] = res.decision;
        ev->correct += res.decision == im->label;
        for (int c = 0; c < K; c++)
            ev->num[c] += res.num[c];
        while (j < ix.n && ix.p[j].img < i)
            j++;
        for (; j < ix.n && ix.p[j].img == i; j++) {
            const sd_patch *p = &ix.p[j];
            int pred = res.classes[(p->y / inf->stride) * res.gw + p->x / inf->stride];
            ev->confusion[p->label * K + pred]++;
            correct += pred == p->label;
            ev->patches++;
        }
        sd_detect_result_free(&res);
    }
    ev->accuracy = ev->patches ? (double)correct / (double)ev->patches : NAN;
out:
    sd_patch_index_free(&ix);
    if (rc)
        nd_split_eval_free(ev);
    return rc;
}
