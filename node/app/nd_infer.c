/*
 * nd_infer.c - patch classifiers from payloads or weights files, detection
 * on whole images and evaluation of a split (see nd_infer.h).
 */
#include "nd_infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nd_payload.h"
#include "nd_weights.h"
#include "sd_distill.h"

#define PAYLOAD_MAX_BYTES ((size_t)512 << 20)

static int failf(char *msg, size_t len, const char *what, const char *detail)
{
    snprintf(msg, len, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    return -1;
}

/* A copy of theta_bn (n_bn floats) for prediction, when the model has any. */
static int keep_bn(nd_infer *inf, const float *bn, char *msg, size_t msglen)
{
    if (!inf->m->n_bn)
        return 0;
    inf->bn = malloc(inf->m->n_bn * sizeof *inf->bn);
    if (!inf->bn)
        return failf(msg, msglen, "out of memory", NULL);
    memcpy(inf->bn, bn, inf->m->n_bn * sizeof *inf->bn);
    return 0;
}

void nd_infer_free(nd_infer *inf)
{
    if (!inf)
        return;
    if (inf->be) {
        inf->be->free(inf->be, inf->theta);
        inf->be->free(inf->be, inf->bn_dev);
        inf->be->free(inf->be, inf->xbuf);
    }
    sd_exec_destroy(inf->ex);
    sd_model_destroy(inf->m);
    free(inf->bn);
    memset(inf, 0, sizeof *inf);
}

/* Everything after theta is in place: BN statistics on the backend, the
 * prediction exec and its batch buffer. */
static int finish(nd_infer *inf, char *msg, size_t msglen)
{
    sd_backend *be = inf->be;
    const sd_model *m = inf->m;
    sd_error err = {0};
    size_t d = (size_t)m->spec.in_c * (size_t)m->spec.in_h * (size_t)m->spec.in_w;
    /* batches of about 1M input values: 256 patches of 64x64, 11 of 299x299 */
    size_t cap = ((size_t)1 << 20) / d;
    inf->cap = cap < 8 ? 8 : cap > 256 ? 256 : (int)cap;
    if (be->alloc(be, &err, (m->n_bn + 1) * sizeof(sd_real), (void **)&inf->bn_dev) ||
        be->alloc(be, &err, (size_t)inf->cap * d * sizeof(sd_real), (void **)&inf->xbuf))
        return failf(msg, msglen, "allocating prediction buffers", err.msg);
    if (m->n_bn) {
        sd_real *tmp = malloc(m->n_bn * sizeof *tmp);
        if (!tmp)
            return failf(msg, msglen, "out of memory", NULL);
        for (size_t i = 0; i < m->n_bn; i++)
            tmp[i] = (sd_real)inf->bn[i];
        int rc = be->upload(be, &err, inf->bn_dev, tmp, m->n_bn * sizeof *tmp);
        free(tmp);
        if (rc)
            return failf(msg, msglen, "uploading batch-norm statistics", err.msg);
    }
    if (sd_exec_create(&inf->ex, m, be, inf->cap, SD_EXEC_INFERENCE, &err))
        return failf(msg, msglen, "prediction buffers", err.msg);
    return 0;
}

int nd_infer_from_payload(nd_infer *inf, const uint8_t *buf, size_t len, sd_backend *be,
                          char *msg, size_t msglen)
{
    memset(inf, 0, sizeof *inf);
    inf->be = be;
    sd_distilled d = {0};
    nd_payload_info info;
    char why[512];
    if (nd_payload_parse(buf, len, &d, &info, why, sizeof why))
        return failf(msg, msglen, "not a usable payload", why);
    sd_error err = {0};
    int rc = -1;
    if (sd_replay(&d, be, &inf->m, &inf->theta, &err)) {
        failf(msg, msglen, "replaying the distilled set (Algorithm 2)", err.msg);
        goto out;
    }
    if (keep_bn(inf, d.bn_stats, msg, msglen))
        goto out;
    inf->psize = info.patch_size;
    inf->stride = info.patch_stride;
    inf->osize = info.patch_resize ? info.patch_resize : info.patch_size;
    inf->mean = info.norm_mean;
    inf->std = info.norm_std > 0 ? info.norm_std : 1;
    snprintf(inf->kind, sizeof inf->kind, "payload");
    char spec[64];
    sd_model_spec_label(&inf->m->spec, spec, sizeof spec);
    snprintf(inf->label, sizeof inf->label, "payload: %s replayed from %zu distilled image(s), "
             "%d step(s), sender %s", spec, sd_distilled_image_count(&d),
             d.steps * d.epochs_inner, info.sender[0] ? info.sender : "?");
    rc = finish(inf, msg, msglen);
out:
    sd_distilled_free(&d);
    if (rc)
        nd_infer_free(inf);
    return rc;
}

int nd_infer_from_payload_file(nd_infer *inf, const char *path, sd_backend *be, char *msg,
                               size_t msglen)
{
    memset(inf, 0, sizeof *inf);
    uint8_t *buf = NULL;
    size_t len = 0;
    char why[512];
    if (nd_file_read(path, PAYLOAD_MAX_BYTES, &buf, &len, why, sizeof why))
        return failf(msg, msglen, why, NULL);
    int rc = nd_infer_from_payload(inf, buf, len, be, why, sizeof why);
    free(buf);
    if (rc)
        snprintf(msg, msglen, "%s: %s", path, why);
    return rc;
}

static int upload_theta(sd_backend *be, sd_real **dst, const float *src, size_t n, char *msg,
                        size_t msglen)
{
    sd_real *tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return failf(msg, msglen, "out of memory", NULL);
    for (size_t i = 0; i < n; i++)
        tmp[i] = (sd_real)src[i];
    sd_error err = {0};
    int rc = be->alloc(be, &err, n * sizeof(sd_real), (void **)dst) ||
             be->upload(be, &err, *dst, tmp, n * sizeof *tmp);
    free(tmp);
    return rc ? failf(msg, msglen, "uploading weights", err.msg) : 0;
}

int nd_infer_from_weights_file(nd_infer *inf, const char *path, sd_backend *be, char *msg,
                               size_t msglen)
{
    memset(inf, 0, sizeof *inf);
    inf->be = be;
    nd_weights w;
    if (nd_weights_read(path, &w, msg, msglen))
        return -1;
    sd_error err = {0};
    int rc = -1;
    if (sd_model_create(&inf->m, &w.spec, &err)) {
        failf(msg, msglen, "model", err.msg);
        goto out;
    }
    if (upload_theta(be, &inf->theta, w.theta, w.n_theta, msg, msglen))
        goto out;
    if (w.n_bn) {
        inf->bn = w.bn; /* take ownership */
        w.bn = NULL;
    }
    inf->psize = w.patch_size;
    inf->stride = w.patch_stride;
    inf->osize = w.patch_resize ? w.patch_resize : w.patch_size;
    inf->mean = w.norm_mean;
    inf->std = w.norm_std;
    inf->synthetic = w.synthetic;
    snprintf(inf->kind, sizeof inf->kind, "weights");
    char spec[64];
    sd_model_spec_label(&inf->m->spec, spec, sizeof spec);
    snprintf(inf->label, sizeof inf->label, "weights: %s %.100s", spec, w.trained);
    rc = finish(inf, msg, msglen);
out:
    nd_weights_free(&w);
    if (rc)
        nd_infer_free(inf);
    return rc;
}

int nd_infer_from_theta(nd_infer *inf, const sd_model_spec *spec, const sd_real *theta,
                        const float *bn, int psize, int stride, int osize, double mean,
                        double std, sd_backend *be, char *msg, size_t msglen)
{
    memset(inf, 0, sizeof *inf);
    inf->be = be;
    sd_error err = {0};
    if (sd_model_create(&inf->m, spec, &err))
        return failf(msg, msglen, "model", err.msg);
    size_t nt = inf->m->n_theta;
    int rc = -1;
    if (be->alloc(be, &err, nt * sizeof(sd_real), (void **)&inf->theta) ||
        be->copy(be, &err, inf->theta, theta, nt * sizeof(sd_real))) {
        failf(msg, msglen, "copying weights", err.msg);
        goto out;
    }
    if (keep_bn(inf, bn, msg, msglen))
        goto out;
    inf->psize = psize;
    inf->stride = stride;
    inf->osize = osize;
    inf->mean = mean;
    inf->std = std;
    snprintf(inf->kind, sizeof inf->kind, "weights");
    sd_model_spec_label(&inf->m->spec, inf->label, sizeof inf->label);
    rc = finish(inf, msg, msglen);
out:
    if (rc)
        nd_infer_free(inf);
    return rc;
}

int nd_infer_check_gastric(const nd_infer *inf, char *msg, size_t msglen)
{
    const sd_model_spec *s = &inf->m->spec;
    if (s->in_c != 1 || s->classes != SD_NUM_CLASSES) {
        snprintf(msg, msglen,
                 "the %s's model takes %d channel(s) and has %d classes; gastritis detection "
                 "needs a gastric model (1 channel, classes I/N/P)",
                 inf->kind, s->in_c, s->classes);
        return -1;
    }
    if (inf->psize <= 0 || inf->stride <= 0 || inf->osize <= 0) {
        snprintf(msg, msglen, "the %s carries no patch grid (made from data that is not gastric "
                              "patches?); detection needs patch size and stride",
                 inf->kind);
        return -1;
    }
    if (inf->osize != s->in_h || inf->osize != s->in_w || inf->osize > inf->psize) {
        snprintf(msg, msglen, "the %s's patch input %d does not match its model input %dx%d",
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
        sd_exec_args a = {inf->theta, inf->bn_dev, SD_BN_FROZEN, SD_LABEL_RAW, inf->xbuf, NULL, k};
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
        return sd_error_set(err, SD_EINVAL, "no loaded images in split '%s'",
                            sd_split_name(split));
    ev->r = malloc((size_t)n * sizeof *ev->r);
    ev->label = malloc((size_t)n * sizeof *ev->label);
    ev->index = malloc((size_t)n * sizeof *ev->index);
    if (!ev->r || !ev->label || !ev->index) {
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
        if (!sd_patch_grid_dim(im->w, inf->psize, inf->stride) ||
            !sd_patch_grid_dim(im->h, inf->psize, inf->stride))
            continue; /* smaller than a patch: undetermined */
        sd_detect_result res;
        if ((rc = nd_infer_detect(inf, sd_dataset_pixels(ds, i), im->w, im->h,
                                  SD_DETECT_DELTA, &res, err))) {
            sd_error_wrap(err, "image '%s'", im->id);
            goto out;
        }
        ev->r[k] = res.r;
        for (int c = 0; c < 3; c++)
            ev->num[c] += res.num[c];
        while (j < ix.n && ix.p[j].img < i)
            j++;
        for (; j < ix.n && ix.p[j].img == i; j++) {
            const sd_patch *p = &ix.p[j];
            int pred = res.classes[(p->y / inf->stride) * res.gw + p->x / inf->stride];
            ev->confusion[p->label * 3 + pred]++;
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
