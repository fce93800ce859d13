/*
 * sp_check.c - unknown-field walk and semantic validation of payloads
 * (see sp_check.h).  Every check returns the first problem found, phrased
 * for the refusal message a receiving admin will read.
 */
#include "sp_check.h"
#include "sp_encoding.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Every check's refusal: a malformed payload (SB_EFORMAT) with the reason. */
static int fail(sb_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(sb_error *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        e->code = SB_EFORMAT;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return SB_EFORMAT;
}

static int walk_unknown(const ProtobufCMessage *m, const char *path, sb_error *e, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    char sub[256];
    if (depth > 16) /* the schema is not recursive; guard anyway */
        return fail(e, "%s: nested too deeply", path);
    if (m->n_unknown_fields)
        return fail(e, "%s: unknown field %u (%u unknown in all)", path, m->unknown_fields[0].tag,
                    m->n_unknown_fields);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n;
            ProtobufCMessage *const *arr;
            memcpy(&n, base + f->quantifier_offset, sizeof n);
            memcpy(&arr, base + f->offset, sizeof arr);
            for (size_t j = 0; j < n; j++) {
                snprintf(sub, sizeof sub, "%s.%s[%zu]", path, f->name, j);
                if (arr[j] && walk_unknown(arr[j], sub, e, depth + 1))
                    return SB_EFORMAT;
            }
        } else {
            const ProtobufCMessage *s;
            memcpy(&s, base + f->offset, sizeof s);
            snprintf(sub, sizeof sub, "%s.%s", path, f->name);
            if (s && walk_unknown(s, sub, e, depth + 1))
                return SB_EFORMAT;
        }
    }
    return 0;
}

int sp_message_check_unknown(const ProtobufCMessage *m, sb_error *e)
{
    return walk_unknown(m, m->descriptor->short_name, e, 0);
}

int sp_valid_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > SP_ID_MAX || s[0] == '.' || s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int sp_valid_text(const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = s ? strlen(s) : 0;
    if (!s || n > max)
        return 0;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t len;
        uint32_t cp;
        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        /* overlong forms, surrogates, beyond Unicode, C1 controls */
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
            return 0;
        i += len;
    }
    return 1;
}

static int mul_ok(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

/* Index of the first non-finite value, or n. */
static size_t first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return n;
}

int sp_bundle_dims_get(const Sldd__V1__Bundle *b, sp_bundle_dims *dims, sb_error *e)
{
    const Sldd__V1__ModelSpec *ms = b->model;
    const Sldd__V1__DistilledSet *ds = b->distilled;
    size_t chw;
    if (!ms)
        return fail(e, "model spec missing");
    if (!ds)
        return fail(e, "distilled set missing");
    if (!mul_ok(ms->in_channels, ms->in_height, &chw) ||
        !mul_ok(chw, ms->in_width, &dims->image_values) ||
        !mul_ok(ds->steps, ds->images_per_step, &dims->images) ||
        !mul_ok(dims->images, ms->classes, &dims->labels) ||
        !mul_ok(ds->steps, ds->epochs, &dims->steps))
        return fail(e, "shape products overflow");
    return 0;
}

static int check_model(const Sldd__V1__ModelSpec *ms, sb_error *e)
{
    if (!sp_valid_text(ms->arch, SP_TEXT_MAX) || !ms->arch[0])
        return fail(e, "model.arch missing or not valid text");
    if (ms->in_channels < 1 || ms->in_channels > 64)
        return fail(e, "model.in_channels %u out of range 1..64", ms->in_channels);
    if (ms->in_height < 1 || ms->in_height > 4096 || ms->in_width < 1 || ms->in_width > 4096)
        return fail(e, "model input %ux%u out of range 1..4096", ms->in_height, ms->in_width);
    if (ms->classes < 2 || ms->classes > 1000)
        return fail(e, "model.classes %u out of range 2..1000", ms->classes);
    if (ms->depth > 1000 || ms->width > 100000)
        return fail(e, "model depth %u or width %u out of range", ms->depth, ms->width);
    if (!sp_valid_text(ms->init_scheme, SP_TEXT_MAX) || !ms->init_scheme[0])
        return fail(e, "model.init_scheme missing or not valid text");
    if (ms->theta0_sha256.len != 32)
        return fail(e, "model.theta0_sha256 has %zu bytes, want 32", ms->theta0_sha256.len);
    if (ms->bn_mode != SLDD__V1__BN_MODE__BN_MODE_BATCH &&
        ms->bn_mode != SLDD__V1__BN_MODE__BN_MODE_FROZEN)
        return fail(e, "model.bn_mode %d is not BATCH or FROZEN", (int)ms->bn_mode);
    if (ms->label_param != SLDD__V1__LABEL_PARAM__LABEL_PARAM_SOFTMAX &&
        ms->label_param != SLDD__V1__LABEL_PARAM__LABEL_PARAM_RAW)
        return fail(e, "model.label_param %d is not SOFTMAX or RAW", (int)ms->label_param);
    if (ms->param_count < 1)
        return fail(e, "model.param_count is 0");
    return 0;
}

static int check_images(const Sldd__V1__ImageTensor *t, const sp_bundle_dims *dm, sb_error *e)
{
    size_t vs = sp_encoding_value_size(t->encoding), values, want;
    if (!vs)
        return fail(e, "images.encoding %d is not a known encoding", (int)t->encoding);
    if (!mul_ok(dm->images, dm->image_values, &values) || !mul_ok(values, vs, &want))
        return fail(e, "image tensor size overflows");
    if (t->data.len != want)
        return fail(e, "images.data has %zu bytes, want %zu (%zu images x %zu values x %zu)",
                    t->data.len, want, dm->images, dm->image_values, vs);
    if (t->encoding == SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED) {
        if (t->n_scale != dm->images || t->n_offset != dm->images)
            return fail(e, "uint8 images need %zu scales and offsets, have %zu and %zu", dm->images,
                        t->n_scale, t->n_offset);
        for (size_t i = 0; i < dm->images; i++)
            if (!isfinite(t->scale[i]) || t->scale[i] < 0 || !isfinite(t->offset[i]) ||
                !isfinite(t->offset[i] + 255.0f * t->scale[i]))
                return fail(e, "image %zu: scale/offset not finite or scale < 0", i);
    } else {
        if (t->n_scale || t->n_offset)
            return fail(e, "scale/offset present for %s images",
                        t->encoding == SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT32
                            ? "float32"
                            : "float16");
        for (size_t i = 0; i < values; i++) {
            const uint8_t *p = t->data.data + i * vs;
            int bad;
            if (vs == 4) {
                uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24;
                bad = (v & 0x7f800000u) == 0x7f800000u;
            } else {
                bad = (p[1] & 0x7c) == 0x7c;
            }
            if (bad)
                return fail(e, "image value %zu (image %zu) is not finite", i,
                            i / (dm->image_values ? dm->image_values : 1));
        }
    }
    return 0;
}

static int check_distilled(const Sldd__V1__DistilledSet *ds, const sp_bundle_dims *dm, sb_error *e)
{
    size_t k;
    if (ds->steps < 1 || ds->images_per_step < 1 || ds->epochs < 1)
        return fail(e, "distilled S=%u n=%u E=%u must all be >= 1", ds->steps, ds->images_per_step,
                    ds->epochs);
    if (!ds->images)
        return fail(e, "distilled.images missing");
    if (check_images(ds->images, dm, e))
        return SB_EFORMAT;
    if (ds->n_label_logits != dm->labels)
        return fail(e, "label_logits has %zu values, want S*n*K = %zu", ds->n_label_logits,
                    dm->labels);
    if ((k = first_nonfinite(ds->label_logits, ds->n_label_logits)) < ds->n_label_logits)
        return fail(e, "label_logits[%zu] is not finite", k);
    if (ds->n_step_sizes != dm->steps)
        return fail(e, "step_sizes has %zu values, want S*E = %zu", ds->n_step_sizes, dm->steps);
    for (size_t i = 0; i < ds->n_step_sizes; i++)
        if (!isfinite(ds->step_sizes[i]) || !(ds->step_sizes[i] > 0))
            return fail(e, "step_sizes[%zu] = %g is not a finite value > 0", i,
                        (double)ds->step_sizes[i]);
    return 0;
}

static int check_bn(const Sldd__V1__BnStats *bs, int model_bn, sb_error *e)
{
    size_t total = 0, k;
    if (!model_bn) {
        if (bs && (bs->n_layer_channels || bs->n_mean || bs->n_var))
            return fail(e, "bn_stats present for a model without batch norm");
        return 0;
    }
    if (!bs || !bs->n_layer_channels)
        return fail(e, "bn_stats missing for a model with batch norm");
    if (bs->n_layer_channels > 100000)
        return fail(e, "bn_stats has too many layers (%zu)", bs->n_layer_channels);
    for (size_t i = 0; i < bs->n_layer_channels; i++) {
        if (bs->layer_channels[i] < 1)
            return fail(e, "bn_stats layer %zu has 0 channels", i);
        total += bs->layer_channels[i]; /* < 1e5 * 2^32: no overflow in 64 bits */
    }
    if (bs->n_mean != total || bs->n_var != total)
        return fail(e, "bn_stats has %zu means and %zu variances, want %zu", bs->n_mean, bs->n_var,
                    total);
    if ((k = first_nonfinite(bs->mean, bs->n_mean)) < bs->n_mean)
        return fail(e, "bn_stats.mean[%zu] is not finite", k);
    for (size_t i = 0; i < bs->n_var; i++)
        if (!isfinite(bs->var[i]) || !(bs->var[i] > 0))
            return fail(e, "bn_stats.var[%zu] = %g is not a finite value > 0", i,
                        (double)bs->var[i]);
    if (bs->count < 1)
        return fail(e, "bn_stats.count is 0");
    return 0;
}

static int check_norm(const Sldd__V1__Normalisation *n, uint32_t channels, sb_error *e)
{
    if (!n)
        return fail(e, "normalisation missing");
    if (n->n_mean != channels || n->n_std != channels)
        return fail(e, "normalisation has %zu means and %zu stds, want %u", n->n_mean, n->n_std,
                    channels);
    for (size_t i = 0; i < channels; i++)
        if (!isfinite(n->mean[i]) || !isfinite(n->std[i]) || !(n->std[i] > 0))
            return fail(e, "normalisation channel %zu: mean/std not finite or std <= 0", i);
    if (n->patch_size < 1 || n->patch_stride < 1)
        return fail(e, "normalisation patch size %u / stride %u must be >= 1", n->patch_size,
                    n->patch_stride);
    return 0;
}

static int check_provenance(const Sldd__V1__Provenance *p, sb_error *e)
{
    if (!p)
        return fail(e, "provenance missing");
    if (p->n_counts > SP_LIST_MAX || p->n_hyper_params > SP_LIST_MAX)
        return fail(e, "provenance lists too long");
    for (size_t i = 0; i < p->n_counts; i++) {
        const Sldd__V1__ClassCount *c = p->counts[i];
        if (!sp_valid_text(c->split, SP_TEXT_MAX) || !sp_valid_text(c->class_name, SP_TEXT_MAX))
            return fail(e, "provenance.counts[%zu]: split or class not valid text", i);
    }
    for (size_t i = 0; i < p->n_hyper_params; i++) {
        const Sldd__V1__HyperParam *h = p->hyper_params[i];
        if (!sp_valid_text(h->key, SP_TEXT_MAX) || !h->key[0] ||
            !sp_valid_text(h->value, SP_LONG_TEXT_MAX))
            return fail(e, "provenance.hyper_params[%zu] not valid text", i);
    }
    if (!sp_valid_text(p->engine_version, SP_TEXT_MAX) || !sp_valid_text(p->backend, SP_TEXT_MAX) ||
        !sp_valid_text(p->data_source, SP_TEXT_MAX))
        return fail(e, "provenance engine/backend/source not valid text");
    return 0;
}

static int unit(double x)
{
    return isfinite(x) && x >= 0 && x <= 1;
}

static double metric_value(const Sldd__V1__Metrics *m, enum sp_metric which)
{
    switch (which) {
    case SP_METRIC_ACCURACY: return m->accuracy;
    case SP_METRIC_SENSITIVITY: return m->sensitivity;
    case SP_METRIC_SPECIFICITY: return m->specificity;
    case SP_METRIC_HARMONIC_MEAN: return m->harmonic_mean;
    case SP_METRIC_AUC: return m->auc;
    default: return NAN;
    }
}

static int check_metrics(const Sldd__V1__Metrics *m, sb_error *e)
{
    if (!m)
        return fail(e, "metrics missing");
    if (!sp_valid_text(m->split, SP_TEXT_MAX))
        return fail(e, "metrics.split not valid text");
    if (!unit(m->accuracy) || !unit(m->sensitivity) || !unit(m->specificity) ||
        !unit(m->harmonic_mean) || !unit(m->auc))
        return fail(e, "metrics must be finite values in [0, 1]");
    if (m->undefined & ~(uint32_t)SP_METRIC_ALL)
        return fail(e, "metrics.undefined has unknown bits");
    for (unsigned bit = 1; bit & SP_METRIC_ALL; bit <<= 1)
        if ((m->undefined & bit) && metric_value(m, (enum sp_metric)bit) != 0)
            return fail(e, "metrics: a figure marked undefined must be stored as 0");
    return 0;
}

double sp_metric_get(const Sldd__V1__Metrics *m, enum sp_metric which)
{
    if (!m || (m->undefined & which))
        return NAN;
    return metric_value(m, which);
}

static int check_privacy(const Sldd__V1__PrivacyReport *p, size_t images, sb_error *e)
{
    if (!p)
        return fail(e, "privacy report missing");
    if (p->n_images > images)
        return fail(e, "privacy report audits %zu images, the set has %zu", p->n_images, images);
    for (size_t i = 0; i < p->n_images; i++) {
        const Sldd__V1__ImageAudit *a = p->images[i];
        if (a->image_index >= images)
            return fail(e, "privacy.images[%zu].image_index %u out of range", i, a->image_index);
        if (!isfinite(a->nearest_pixel_distance) || a->nearest_pixel_distance < 0 ||
            !isfinite(a->nearest_ssim) || a->nearest_ssim < -1 || a->nearest_ssim > 1 ||
            !unit(a->heldout_percentile))
            return fail(e, "privacy.images[%zu] has values out of range", i);
    }
    if (p->n_quantile_levels > SP_LIST_MAX ||
        p->n_heldout_distance_quantiles != p->n_quantile_levels ||
        p->n_heldout_ssim_quantiles != p->n_quantile_levels)
        return fail(e, "privacy quantile lists differ in length (%zu, %zu, %zu)",
                    p->n_quantile_levels, p->n_heldout_distance_quantiles,
                    p->n_heldout_ssim_quantiles);
    for (size_t i = 0; i < p->n_quantile_levels; i++)
        if (!unit(p->quantile_levels[i]) || !isfinite(p->heldout_distance_quantiles[i]) ||
            p->heldout_distance_quantiles[i] < 0 || !isfinite(p->heldout_ssim_quantiles[i]))
            return fail(e, "privacy quantile %zu out of range", i);
    if (!unit(p->membership_auc))
        return fail(e, "privacy.membership_auc must be in [0, 1]");
    if (!sp_valid_text(p->verdict, SP_TEXT_MAX) || !p->verdict[0] ||
        !sp_valid_text(p->policy, SP_LONG_TEXT_MAX))
        return fail(e, "privacy verdict missing or not valid text");
    return 0;
}

int sp_bundle_validate(const Sldd__V1__Bundle *b, sb_error *e)
{
    sp_bundle_dims dm;
    if (b->format_version != SP_FORMAT_VERSION)
        return fail(e, "format_version %u, this node reads %d", b->format_version,
                    SP_FORMAT_VERSION);
    if (b->bundle_id.len != SP_BUNDLE_ID_LEN)
        return fail(e, "bundle_id has %zu bytes, want %d", b->bundle_id.len, SP_BUNDLE_ID_LEN);
    if (!sp_valid_id(b->sender))
        return fail(e, "sender is not a valid node id");
    if (b->n_audience < 1 || b->n_audience > SP_LIST_MAX)
        return fail(e, "audience has %zu entries, want 1..%d", b->n_audience, SP_LIST_MAX);
    for (size_t i = 0; i < b->n_audience; i++)
        if (!sp_valid_id(b->audience[i]))
            return fail(e, "audience[%zu] is not a valid node id", i);
    if (b->created_unix <= 0 || b->expires_unix <= b->created_unix)
        return fail(e, "created %lld / expires %lld: want 0 < created < expires",
                    (long long)b->created_unix, (long long)b->expires_unix);
    if (b->sequence < 1)
        return fail(e, "sequence must be >= 1");
    if (!b->model)
        return fail(e, "model spec missing");
    if (check_model(b->model, e))
        return SB_EFORMAT;
    if (sp_bundle_dims_get(b, &dm, e))
        return SB_EFORMAT;
    if (check_distilled(b->distilled, &dm, e) || check_bn(b->bn_stats, b->model->bn, e) ||
        check_norm(b->normalisation, b->model->in_channels, e) ||
        check_provenance(b->provenance, e) || check_metrics(b->metrics, e) ||
        check_privacy(b->privacy, dm.images, e))
        return SB_EFORMAT;
    return 0;
}
