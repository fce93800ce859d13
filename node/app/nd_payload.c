/*
 * nd_payload.c - sd_distilled <-> payload bytes (see nd_payload.h).
 *
 * Building assembles the Bundle message on the stack around the caller's
 * arrays (nothing is copied but the encoded images) and packs it once.
 * Parsing goes through the same gates as a received bundle: memory budget,
 * no unknown fields, sp_bundle_validate.
 */
#include "nd_payload.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_parse.h"
#include "sd_init.h"
#include "sd_model.h"
#include "sldd.pb-c.h"
#include "sp_budget.h"
#include "sp_check.h"
#include "sp_encoding.h"

/* per-BN-layer channel counts of a model, in layer order */
static size_t bn_layers(const sd_model *m, uint32_t *ch)
{
    size_t k = 0;
    for (int i = 1; i < m->n_layers; i++)
        if (m->layers[i].kind == SD_LAYER_BN) {
            if (ch)
                ch[k] = (uint32_t)m->layers[i].out.c;
            k++;
        }
    return k;
}

/* theta_bn from the engine layout (per layer: mean (c) then var (c)) to
 * the wire's (all means, all variances); lch: channels of the nl layers */
static void theta_bn_to_wire(const float *theta_bn, const uint32_t *lch, size_t nl, float *mean,
                             float *var)
{
    for (size_t l = 0, at = 0, o = 0; l < nl; l++) {
        for (uint32_t c = 0; c < lch[l]; c++) {
            mean[o + c] = theta_bn[at + c];
            var[o + c] = theta_bn[at + lch[l] + c];
        }
        at += 2 * (size_t)lch[l];
        o += lch[l];
    }
}

static void set_model_spec(Sldd__V1__ModelSpec *ms, const sd_distilled *d, const sd_model *m)
{
    ms->arch = (char *)d->spec.arch;
    ms->bn = d->spec.bn != 0;
    ms->depth = (uint32_t)d->spec.depth;
    ms->width = (uint32_t)d->spec.width;
    ms->in_channels = (uint32_t)d->spec.in_c;
    ms->in_height = (uint32_t)d->spec.in_h;
    ms->in_width = (uint32_t)d->spec.in_w;
    ms->classes = (uint32_t)d->spec.classes;
    ms->init_scheme = (char *)SD_INIT_SCHEME;
    ms->init_seed = d->seed;
    ms->theta0_sha256.data = (uint8_t *)d->theta0_sha256;
    ms->theta0_sha256.len = 32;
    ms->bn_mode = d->bn_mode == SD_BN_FROZEN ? SLDD__V1__BN_MODE__BN_MODE_FROZEN
                                             : SLDD__V1__BN_MODE__BN_MODE_BATCH;
    ms->label_param = d->label_param == SD_LABEL_RAW ? SLDD__V1__LABEL_PARAM__LABEL_PARAM_RAW
                                                     : SLDD__V1__LABEL_PARAM__LABEL_PARAM_SOFTMAX;
    ms->param_count = m->n_theta;
}

/* The privacy audit into pr, pointing into ia/iap (n_images each), q and
 * policy (4096 bytes), which must live until the bundle is packed. */
static void set_privacy(Sldd__V1__PrivacyReport *pr, const sd_privacy_report *prv,
                        Sldd__V1__ImageAudit *ia, Sldd__V1__ImageAudit **iap,
                        float q[3][SD_PRIVACY_NQ], char *policy)
{
    size_t n_audit = prv ? prv->n_images : 0;
    pr->verdict = (char *)"not-audited";
    pr->policy = (char *)"";
    if (prv) {
        /* per image: distance to the pixel-nearest, the best SSIM, and the
         * distance's percentile among held-out samples (docs/privacy.md) */
        for (size_t i = 0; i < n_audit; i++) {
            const sd_privacy_image *pi = &prv->images[i];
            sldd__v1__image_audit__init(&ia[i]);
            ia[i].image_index = (uint32_t)i;
            ia[i].nearest_pixel_distance = (float)pi->pixel_distance;
            ia[i].nearest_ssim = (float)(pi->ssim > 1 ? 1 : pi->ssim < -1 ? -1 : pi->ssim);
            ia[i].heldout_percentile = (float)pi->pixel_pct;
            iap[i] = &ia[i];
        }
        for (int k = 0; k < SD_PRIVACY_NQ; k++) {
            q[0][k] = (float)prv->levels[k];
            q[1][k] = (float)prv->heldout_distance_q[k];
            q[2][k] = (float)prv->heldout_ssim_q[k];
        }
        pr->images = iap;
        pr->n_images = n_audit;
        pr->quantile_levels = q[0];
        pr->n_quantile_levels = SD_PRIVACY_NQ;
        pr->heldout_distance_quantiles = q[1];
        pr->n_heldout_distance_quantiles = SD_PRIVACY_NQ;
        pr->heldout_ssim_quantiles = q[2];
        pr->n_heldout_ssim_quantiles = SD_PRIVACY_NQ;
        /* not measured is written as 0.5 and said so in the policy text */
        pr->membership_auc = prv->membership_done ? prv->membership_auc : 0.5;
        pr->verdict = (char *)sd_privacy_verdict_name(prv->verdict);
        sd_privacy_report_describe(prv, policy, 4096);
        pr->policy = policy;
    }
}

/* The declared task into tk (pointing into t and the name arrays). */
static void set_task(Sldd__V1__Task *tk, char **labels, char **cls, const sd_task *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->labels; i++)
        labels[i] = (char *)t->label[i];
    for (int i = 0; i < t->classes; i++)
        cls[i] = (char *)t->cls[i];
    tk->name = (char *)t->name;
    tk->labels = labels;
    tk->n_labels = (size_t)t->labels;
    tk->outside = (char *)(t->outside ? t->outside_name : "");
    tk->class_names = cls;
    tk->n_class_names = (size_t)t->classes;
    tk->rule = (char *)(t->rule == SD_RULE_RATIO ? "ratio" : "majority");
    tk->rule_name = (char *)t->rule_name;
}

/* The sender's task from a parsed bundle (absent: gastric), checked: it
 * must be a valid task whose class count is the model's. */
static int get_task(const Sldd__V1__Task *tk, int model_classes, sd_task *t, sd_error *err)
{
    if (!tk) {
        sd_task_gastric(t);
    } else {
        if (!tk->name || tk->n_labels > SD_TASK_MAX_CLASSES || !tk->outside || !tk->rule)
            return sd_error_set(err, SD_EFORMAT, "payload task: missing fields");
        for (size_t i = 0; i < tk->n_labels; i++)
            if (!tk->labels[i])
                return sd_error_set(err, SD_EFORMAT, "payload task: missing label name");
        int rc = sd_task_make(t, tk->name, (int)tk->n_labels, (const char *const *)tk->labels,
                              *tk->outside ? tk->outside : NULL, err);
        if (rc)
            return sd_error_wrap(err, "payload task");
        if (!strcmp(tk->name, "gastric"))
            sd_task_gastric(t);
        if (strcmp(tk->rule, t->rule == SD_RULE_RATIO ? "ratio" : "majority"))
            return sd_error_set(err, SD_EFORMAT,
                                "payload task: rule '%.20s' does not fit %d classes", tk->rule,
                                t->labels);
    }
    if (tk && t->classes != model_classes)
        return sd_error_set(err, SD_EFORMAT, "payload task '%s' has %d classes, the model %d",
                            t->name, t->classes, model_classes);
    return SD_OK;
}

/* Provenance and the sender's metrics from meta into pv and mt, pointing
 * into cc/ccp (n_counts each) and hp/hpp (n_hyper each). */
/* A figure as stored: an undefined one (NaN) is 0 with its bit set in *undef. */
static double metric_put(double v, enum sp_metric bit, uint32_t *undef)
{
    if (isfinite(v))
        return v;
    *undef |= (uint32_t)bit;
    return 0;
}

static void set_provenance(Sldd__V1__Provenance *pv, Sldd__V1__Metrics *mt,
                           Sldd__V1__ClassCount *cc, Sldd__V1__ClassCount **ccp,
                           Sldd__V1__HyperParam *hp, Sldd__V1__HyperParam **hpp, Sldd__V1__Task *tk,
                           const nd_payload_meta *meta)
{
    for (size_t i = 0; i < meta->n_counts; i++) {
        sldd__v1__class_count__init(&cc[i]);
        cc[i].split = (char *)meta->counts[i].split;
        cc[i].class_name = (char *)meta->counts[i].class_name;
        cc[i].images = meta->counts[i].images;
        cc[i].patches = meta->counts[i].patches;
        ccp[i] = &cc[i];
    }
    for (size_t i = 0; i < meta->n_hyper; i++) {
        sldd__v1__hyper_param__init(&hp[i]);
        hp[i].key = (char *)meta->hyper_keys[i];
        hp[i].value = (char *)meta->hyper_values[i];
        hpp[i] = &hp[i];
    }
    pv->counts = ccp;
    pv->n_counts = meta->n_counts;
    pv->hyper_params = hpp;
    pv->n_hyper_params = meta->n_hyper;
    pv->engine_version = (char *)SLDD_VERSION;
    pv->backend = (char *)(meta->backend ? meta->backend : "cpu");
    pv->data_source = (char *)(meta->data_source ? meta->data_source : "");
    pv->task = tk;
    mt->split = (char *)(meta->metrics_split ? meta->metrics_split : "val");
    mt->accuracy = metric_put(meta->accuracy, SP_METRIC_ACCURACY, &mt->undefined);
    mt->sensitivity = metric_put(meta->sensitivity, SP_METRIC_SENSITIVITY, &mt->undefined);
    mt->specificity = metric_put(meta->specificity, SP_METRIC_SPECIFICITY, &mt->undefined);
    mt->harmonic_mean = metric_put(meta->harmonic_mean, SP_METRIC_HARMONIC_MEAN, &mt->undefined);
    mt->auc = metric_put(meta->auc, SP_METRIC_AUC, &mt->undefined);
    mt->patch_count = meta->patch_count;
    mt->image_count = meta->image_count;
}

int nd_payload_build(const sd_distilled *d, const nd_payload_meta *meta, uint8_t **out, size_t *len,
                     sd_error *err)
{
    *out = NULL;
    *len = 0;
    sd_model *m = NULL;
    int rc = sd_model_create(&m, &d->spec, err);
    if (rc)
        return rc;
    rc = -1;
    size_t M = sd_distilled_image_count(d), T = (size_t)d->steps * (size_t)d->epochs_inner;
    size_t D = (size_t)d->spec.in_c * (size_t)d->spec.in_h * (size_t)d->spec.in_w;
    size_t K = (size_t)d->spec.classes;
    size_t nl = bn_layers(m, NULL), nbn = m->n_bn / 2;
    uint32_t *lch = calloc(nl + 1, sizeof *lch);
    float *mean = calloc(nbn + 1, sizeof *mean), *var = calloc(nbn + 1, sizeof *var);
    Sldd__V1__ClassCount *cc = calloc(meta->n_counts + 1, sizeof *cc);
    Sldd__V1__ClassCount **ccp = calloc(meta->n_counts + 1, sizeof *ccp);
    Sldd__V1__HyperParam *hp = calloc(meta->n_hyper + 1, sizeof *hp);
    Sldd__V1__HyperParam **hpp = calloc(meta->n_hyper + 1, sizeof *hpp);
    Sldd__V1__ImageTensor it = SLDD__V1__IMAGE_TENSOR__INIT;
    const sd_privacy_report *prv = meta->privacy;
    size_t n_audit = prv ? prv->n_images : 0;
    Sldd__V1__ImageAudit *ia = calloc(n_audit + 1, sizeof *ia);
    Sldd__V1__ImageAudit **iap = calloc(n_audit + 1, sizeof *iap);
    char *policy = calloc(1, 4096);
    if (!lch || !mean || !var || !cc || !ccp || !hp || !hpp || !ia || !iap || !policy) {
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
        goto out;
    }
    bn_layers(m, lch);
    theta_bn_to_wire(d->theta_bn, lch, nl, mean, var);
    int enc = meta->encoding ? meta->encoding : SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT32;
    if (sp_image_tensor_set(&it, enc, d->images, M, D)) {
        rc = sd_error_set(err, SD_EFORMAT,
                          "cannot encode the images (non-finite value or unknown encoding)");
        goto out;
    }
    Sldd__V1__Bundle b = SLDD__V1__BUNDLE__INIT;
    Sldd__V1__ModelSpec ms = SLDD__V1__MODEL_SPEC__INIT;
    Sldd__V1__DistilledSet ds = SLDD__V1__DISTILLED_SET__INIT;
    Sldd__V1__BnStats bs = SLDD__V1__BN_STATS__INIT;
    Sldd__V1__Normalisation nm = SLDD__V1__NORMALISATION__INIT;
    Sldd__V1__Provenance pv = SLDD__V1__PROVENANCE__INIT;
    Sldd__V1__Metrics mt = SLDD__V1__METRICS__INIT;
    Sldd__V1__PrivacyReport pr = SLDD__V1__PRIVACY_REPORT__INIT;
    b.format_version = SP_FORMAT_VERSION;
    b.bundle_id.data = (uint8_t *)meta->bundle_id;
    b.bundle_id.len = 16;
    b.sender = (char *)meta->sender;
    b.audience = (char **)meta->audience;
    b.n_audience = meta->n_audience;
    b.created_unix = meta->created_unix;
    b.expires_unix = meta->expires_unix;
    b.sequence = meta->sequence;
    set_model_spec(&ms, d, m);
    ds.steps = (uint32_t)d->steps;
    ds.images_per_step = (uint32_t)d->images_per_step;
    ds.epochs = (uint32_t)d->epochs_inner;
    ds.images = &it;
    ds.label_logits = d->labels;
    ds.n_label_logits = M * K;
    ds.step_sizes = d->step_sizes;
    ds.n_step_sizes = T;
    bs.layer_channels = lch;
    bs.n_layer_channels = nl;
    bs.mean = mean;
    bs.n_mean = nbn;
    bs.var = var;
    bs.n_var = nbn;
    bs.count = meta->bn_count;
    float nmean = (float)meta->norm_mean, nstd = (float)(meta->norm_std > 0 ? meta->norm_std : 1);
    nm.mean = &nmean;
    nm.n_mean = 1;
    nm.std = &nstd;
    nm.n_std = 1;
    nm.patch_size = (uint32_t)meta->patch_size;
    nm.patch_stride = (uint32_t)meta->patch_stride;
    nm.patch_resize = (uint32_t)meta->patch_resize;
    Sldd__V1__Task tk = SLDD__V1__TASK__INIT;
    char *tlabels[SD_TASK_MAX_CLASSES], *tcls[SD_TASK_MAX_CLASSES];
    set_task(&tk, tlabels, tcls, meta->task);
    set_provenance(&pv, &mt, cc, ccp, hp, hpp, meta->task ? &tk : NULL, meta);
    float q[3][SD_PRIVACY_NQ];
    set_privacy(&pr, prv, ia, iap, q, policy);
    b.model = &ms;
    b.distilled = &ds;
    b.bn_stats = &bs;
    b.normalisation = &nm;
    b.provenance = &pv;
    b.metrics = &mt;
    b.privacy = &pr;
    if ((rc = sp_bundle_validate(&b, err)))
        goto out;
    *len = sldd__v1__bundle__get_packed_size(&b);
    *out = malloc(*len ? *len : 1);
    if (!*out) {
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
        goto out;
    }
    if (sldd__v1__bundle__pack(&b, *out) != *len) {
        free(*out);
        *out = NULL;
        rc = sd_error_set(err, SD_EFORMAT, "protobuf packing failed");
        goto out;
    }
    rc = 0;
out:
    sp_image_tensor_clear(&it);
    free(ia);
    free(iap);
    free(policy);
    free(lch);
    free(mean);
    free(var);
    free(cc);
    free(ccp);
    free(hp);
    free(hpp);
    sd_model_destroy(m);
    return rc;
}

static _Atomic uint64_t parses;

uint64_t nd_debug_parse_count(void)
{
    return atomic_load(&parses);
}

int nd_payload_parse(const uint8_t *buf, size_t len, sd_distilled *d, nd_payload_info *info,
                     sd_error *err)
{
    memset(d, 0, sizeof *d);
    atomic_fetch_add(&parses, 1);
    sp_budget budget;
    sp_budget_init(&budget, len * 8 + (1u << 20));
    Sldd__V1__Bundle *b = sldd__v1__bundle__unpack(sp_budget_allocator(&budget), len, buf);
    if (!b)
        return sd_error_set(err, SD_EFORMAT, "not a bundle payload (protobuf parse failed)");
    int rc = -1;
    sp_bundle_dims dims;
    sd_model *m = NULL;
    if ((rc = sp_message_check_unknown(&b->base, err)) || (rc = sp_bundle_validate(b, err)) ||
        (rc = sp_bundle_dims_get(b, &dims, err)))
        goto out;
    const Sldd__V1__ModelSpec *ms = b->model;
    snprintf(d->spec.arch, sizeof d->spec.arch, "%s", ms->arch);
    d->spec.bn = ms->bn;
    d->spec.depth = (int)ms->depth;
    d->spec.width = (int)ms->width;
    d->spec.in_c = (int)ms->in_channels;
    d->spec.in_h = (int)ms->in_height;
    d->spec.in_w = (int)ms->in_width;
    d->spec.classes = (int)ms->classes;
    d->seed = ms->init_seed;
    memcpy(d->theta0_sha256, ms->theta0_sha256.data, 32);
    d->bn_mode = ms->bn_mode == SLDD__V1__BN_MODE__BN_MODE_FROZEN ? SD_BN_FROZEN : SD_BN_BATCH;
    d->label_param =
        ms->label_param == SLDD__V1__LABEL_PARAM__LABEL_PARAM_RAW ? SD_LABEL_RAW : SD_LABEL_SOFTMAX;
    if (strcmp(ms->init_scheme, SD_INIT_SCHEME)) {
        rc = sd_error_set(err, SD_EFORMAT,
                          "initial-weight scheme '%s' is not supported (this node: %s)",
                          ms->init_scheme, SD_INIT_SCHEME);
        goto out;
    }
    if ((rc = sd_model_create(&m, &d->spec, err))) {
        sd_error_wrap(err, "model");
        goto out;
    }
    if (ms->param_count != m->n_theta) {
        rc = sd_error_set(err, SD_EFORMAT, "model has %zu parameters here, the bundle says %llu",
                          m->n_theta, (unsigned long long)ms->param_count);
        goto out;
    }
    const Sldd__V1__DistilledSet *ds = b->distilled;
    d->steps = (int)ds->steps;
    d->images_per_step = (int)ds->images_per_step;
    d->epochs_inner = (int)ds->epochs;
    d->n_bn = m->n_bn;
    d->images = malloc(dims.images * dims.image_values * sizeof(float) + 1);
    d->labels = malloc(dims.labels * sizeof(float) + 1);
    d->step_sizes = malloc(dims.steps * sizeof(float) + 1);
    d->theta_bn = calloc(m->n_bn + 1, sizeof(float));
    if (!d->images || !d->labels || !d->step_sizes || !d->theta_bn) {
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
        goto out;
    }
    if (sp_image_tensor_decode(ds->images, dims.images, dims.image_values, d->images)) {
        rc = sd_error_set(err, SD_EFORMAT, "image tensor does not match the model");
        goto out;
    }
    memcpy(d->labels, ds->label_logits, dims.labels * sizeof(float));
    memcpy(d->step_sizes, ds->step_sizes, dims.steps * sizeof(float));
    /* theta_bn back to the engine layout, checking it matches the model */
    uint32_t lch[4096];
    size_t nl = bn_layers(m, NULL);
    const Sldd__V1__BnStats *bs = b->bn_stats;
    if (nl > 4096 || (bs ? bs->n_layer_channels : 0) != nl) {
        rc =
            sd_error_set(err, SD_EFORMAT, "batch-norm statistics for %zu layers, the model has %zu",
                         bs ? bs->n_layer_channels : 0, nl);
        goto out;
    }
    bn_layers(m, lch);
    for (size_t l = 0, at = 0, o = 0; l < nl; l++) {
        if (bs->layer_channels[l] != lch[l] || o + lch[l] > bs->n_mean || o + lch[l] > bs->n_var) {
            rc =
                sd_error_set(err, SD_EFORMAT, "batch-norm layer %zu: %u channels, the model has %u",
                             l, bs->layer_channels[l], lch[l]);
            goto out;
        }
        for (uint32_t c = 0; c < lch[l]; c++) {
            d->theta_bn[at + c] = bs->mean[o + c];
            d->theta_bn[at + lch[l] + c] = bs->var[o + c];
        }
        at += 2 * (size_t)lch[l];
        o += lch[l];
    }
    sd_task task;
    if ((rc = get_task(b->provenance ? b->provenance->task : NULL, d->spec.classes, &task, err)))
        goto out;
    if (info) {
        memset(info, 0, sizeof *info);
        info->task = task;
        snprintf(info->sender, sizeof info->sender, "%s", b->sender);
        info->sequence = b->sequence;
        memcpy(info->bundle_id, b->bundle_id.data, 16);
        info->encoding = ds->images->encoding;
        if (b->normalisation) {
            info->norm_mean = b->normalisation->n_mean ? b->normalisation->mean[0] : 0;
            info->norm_std = b->normalisation->n_std ? b->normalisation->std[0] : 1;
            info->patch_size = (int)b->normalisation->patch_size;
            info->patch_stride = (int)b->normalisation->patch_stride;
            info->patch_resize = (int)b->normalisation->patch_resize;
        }
        /* the images' grid, when the data set had one (docs/dicom.md), and
         * the privacy guarantee, for reports */
        info->dp_epsilon = NAN;
        for (size_t i = 0; b->provenance && i < b->provenance->n_hyper_params; i++) {
            const Sldd__V1__HyperParam *hp = b->provenance->hyper_params[i];
            if (!hp->key || !hp->value)
                continue;
            if (!strcmp(hp->key, "mm_per_pixel") &&
                sb_parse_double(hp->value, 1e-3, 100, &info->mm_per_pixel))
                info->mm_per_pixel = 0;
            if (!strcmp(hp->key, "dp_epsilon") &&
                sb_parse_double(hp->value, 0, 1e9, &info->dp_epsilon))
                info->dp_epsilon = NAN;
        }
        info->accuracy = sp_metric_get(b->metrics, SP_METRIC_ACCURACY);
        info->harmonic_mean = sp_metric_get(b->metrics, SP_METRIC_HARMONIC_MEAN);
    }
    rc = 0;
out:
    if (rc)
        sd_distilled_free(d);
    sd_model_destroy(m);
    sldd__v1__bundle__free_unpacked(b, sp_budget_allocator(&budget));
    return rc;
}

int nd_file_read(const char *path, size_t max, uint8_t **out, size_t *len, sd_error *err)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sd_error_set(err, SD_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || st.st_size < 0 || (size_t)st.st_size > max) {
        fclose(f);
        return sd_error_set(err, SD_EIO, "%s: larger than the %zu-byte limit", path, max);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n + 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return sd_error_set(err, SD_EIO, "cannot read %s", path);
    }
    fclose(f);
    *out = buf;
    *len = n;
    return 0;
}

int nd_file_write_atomic(const char *path, const uint8_t *buf, size_t len, sd_error *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return sd_error_set(err, SD_EINVAL, "path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return sd_error_set(err, SD_EIO, "cannot create %s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int rc = sd_error_set(err, SD_EIO, "writing %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return rc;
        }
        off += (size_t)w;
    }
    if (fsync(fd) || close(fd)) {
        int rc = sd_error_set(err, SD_EIO, "flushing %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return rc;
    }
    if (rename(tmp, path)) {
        int rc = sd_error_set(err, SD_EIO, "renaming %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return rc;
    }
    return 0;
}
