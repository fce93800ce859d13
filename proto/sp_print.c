/*
 * sp_print.c - text dump of payloads (see sp_print.h).  Works on any parsed
 * payload, valid or not, so inspect can show what a refused bundle held:
 * array lengths are taken from the message, never from the model spec.
 */
#include "sp_print.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sp_check.h"
#include "sp_encoding.h"

#define SP_PRINT_ROWS 64 /* longest per-item listing before eliding */

void sp_print_hex(FILE *f, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
}

/* One figure of m as text: four decimals, or "undefined" when the payload
 * marks it so (docs/bundle-format.md, Metrics.undefined). */
static const char *metric_text(char *buf, size_t size, const Sldd__V1__Metrics *m,
                               enum sp_metric which)
{
    double v = sp_metric_get(m, which);
    if (isnan(v))
        snprintf(buf, size, "undefined");
    else
        snprintf(buf, size, "%.4f", v);
    return buf;
}

static void print_time(FILE *f, const char *label, int64_t t)
{
    char buf[64] = "?";
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm))
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(f, "%-22s %" PRId64 " (%s)\n", label, t, buf);
}

static void print_floats(FILE *f, const char *label, const float *x, size_t n)
{
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    size_t bad = 0;
    fprintf(f, "%-22s %zu values (%zu bytes)", label, n, n * 4);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            bad++;
            continue;
        }
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
        sum += x[i];
    }
    if (n > bad)
        fprintf(f, " min %.6g max %.6g mean %.6g", lo, hi, sum / (double)(n - bad));
    if (bad)
        fprintf(f, " NON-FINITE %zu", bad);
    fputc('\n', f);
    if (n && n <= 16) {
        fprintf(f, "%-22s", "");
        for (size_t i = 0; i < n; i++)
            fprintf(f, " %.6g", (double)x[i]);
        fputc('\n', f);
    }
}

static size_t msg_size(const void *m)
{
    return m ? protobuf_c_message_get_packed_size((const ProtobufCMessage *)m) : 0;
}

static void print_parts(FILE *f, const Sldd__V1__Bundle *b, size_t wire_size)
{
    const Sldd__V1__DistilledSet *ds = b->distilled;
    const Sldd__V1__ImageTensor *t = ds ? ds->images : NULL;
    fprintf(f, "parts (bytes):\n");
    fprintf(f, "  %-20s %zu\n", "total", wire_size);
    fprintf(f, "  %-20s %zu\n", "images", t ? t->data.len : 0);
    fprintf(f, "  %-20s %zu\n", "image scale/offset", t ? (t->n_scale + t->n_offset) * 4 : 0);
    fprintf(f, "  %-20s %zu\n", "label logits", ds ? ds->n_label_logits * 4 : 0);
    fprintf(f, "  %-20s %zu\n", "step sizes", ds ? ds->n_step_sizes * 4 : 0);
    fprintf(f, "  %-20s %zu\n", "bn stats",
            b->bn_stats ? (b->bn_stats->n_mean + b->bn_stats->n_var) * 4 : 0);
    fprintf(f, "  %-20s %zu\n", "model spec", msg_size(b->model));
    fprintf(f, "  %-20s %zu\n", "normalisation", msg_size(b->normalisation));
    fprintf(f, "  %-20s %zu\n", "provenance", msg_size(b->provenance));
    fprintf(f, "  %-20s %zu\n", "metrics", msg_size(b->metrics));
    fprintf(f, "  %-20s %zu\n", "privacy report", msg_size(b->privacy));
}

static void print_model(FILE *f, const Sldd__V1__ModelSpec *m)
{
    const char *bnm = m->bn_mode == SLDD__V1__BN_MODE__BN_MODE_BATCH    ? "batch"
                      : m->bn_mode == SLDD__V1__BN_MODE__BN_MODE_FROZEN ? "frozen"
                                                                        : "INVALID";
    const char *lp = m->label_param == SLDD__V1__LABEL_PARAM__LABEL_PARAM_SOFTMAX ? "softmax"
                     : m->label_param == SLDD__V1__LABEL_PARAM__LABEL_PARAM_RAW   ? "raw"
                                                                                  : "INVALID";
    fprintf(f, "model:\n");
    fprintf(f, "  %-20s %s (bn %s, depth %u, width %u)\n", "arch", m->arch, m->bn ? "yes" : "no",
            m->depth, m->width);
    fprintf(f, "  %-20s %u x %u x %u, %u classes\n", "input", m->in_channels, m->in_height,
            m->in_width, m->classes);
    fprintf(f, "  %-20s %" PRIu64 " (%.1f MB as float32)\n", "parameters", m->param_count,
            (double)m->param_count * 4 / 1e6);
    fprintf(f, "  %-20s %s seed %" PRIu64 "\n", "init", m->init_scheme, m->init_seed);
    fprintf(f, "  %-20s ", "theta0 sha256");
    sp_print_hex(f, m->theta0_sha256.data, m->theta0_sha256.len);
    fprintf(f, "\n  %-20s %s (%d)\n  %-20s %s (%d)\n", "bn mode", bnm, (int)m->bn_mode,
            "label param", lp, (int)m->label_param);
}

static void print_distilled(FILE *f, const Sldd__V1__DistilledSet *ds, uint32_t classes)
{
    const Sldd__V1__ImageTensor *t = ds->images;
    size_t m = (size_t)ds->steps * ds->images_per_step;
    fprintf(f, "distilled set:\n");
    fprintf(f, "  %-20s S=%u n=%u E=%u (M=%zu images, T=%zu steps)\n", "shape", ds->steps,
            ds->images_per_step, ds->epochs, m, (size_t)ds->steps * ds->epochs);
    if (t) {
        fprintf(f, "  %-20s %s, %zu bytes", "images", sp_encoding_name(t->encoding), t->data.len);
        if (t->n_scale)
            fprintf(f, ", %zu scales, %zu offsets", t->n_scale, t->n_offset);
        fputc('\n', f);
    } else {
        fprintf(f, "  %-20s MISSING\n", "images");
    }
    print_floats(f, "  label logits", ds->label_logits, ds->n_label_logits);
    if (classes && ds->n_label_logits % classes == 0) {
        size_t rows = ds->n_label_logits / classes;
        for (size_t i = 0; i < rows && i < SP_PRINT_ROWS; i++) {
            const float *y = ds->label_logits + i * classes;
            double mx = -INFINITY, z = 0;
            fprintf(f, "    image %3zu (step %3zu) softmax", i,
                    ds->images_per_step ? i / ds->images_per_step : 0);
            for (uint32_t c = 0; c < classes; c++)
                mx = y[c] > mx ? y[c] : mx;
            for (uint32_t c = 0; c < classes; c++)
                z += exp(y[c] - mx);
            for (uint32_t c = 0; c < classes && c < 16; c++)
                fprintf(f, " %.3f", exp(y[c] - mx) / z);
            fputc('\n', f);
        }
        if (rows > SP_PRINT_ROWS)
            fprintf(f, "    ... %zu more images\n", rows - SP_PRINT_ROWS);
    }
    print_floats(f, "  step sizes", ds->step_sizes, ds->n_step_sizes);
}

static void print_rest(FILE *f, const Sldd__V1__Bundle *b)
{
    if (b->bn_stats) {
        const Sldd__V1__BnStats *s = b->bn_stats;
        fprintf(f, "bn stats:\n  %-20s %zu layers, count %" PRIu64 "\n", "layers",
                s->n_layer_channels, s->count);
        print_floats(f, "  mean", s->mean, s->n_mean);
        print_floats(f, "  var", s->var, s->n_var);
    }
    if (b->normalisation) {
        const Sldd__V1__Normalisation *n = b->normalisation;
        fprintf(f, "normalisation:\n");
        print_floats(f, "  mean", n->mean, n->n_mean);
        print_floats(f, "  std", n->std, n->n_std);
        fprintf(f, "  %-20s size %u stride %u resize %u\n", "patches", n->patch_size,
                n->patch_stride, n->patch_resize);
    }
    if (b->provenance) {
        const Sldd__V1__Provenance *p = b->provenance;
        fprintf(f, "provenance:\n  %-20s %s\n  %-20s %s\n  %-20s %s\n", "engine", p->engine_version,
                "backend", p->backend, "data source", p->data_source);
        for (size_t i = 0; i < p->n_counts && i < SP_PRINT_ROWS; i++)
            fprintf(f, "  count %-14s %-6s images %" PRIu64 " patches %" PRIu64 "\n",
                    p->counts[i]->split, p->counts[i]->class_name, p->counts[i]->images,
                    p->counts[i]->patches);
        for (size_t i = 0; i < p->n_hyper_params && i < SP_PRINT_ROWS; i++)
            fprintf(f, "  param %-14s %s\n", p->hyper_params[i]->key, p->hyper_params[i]->value);
    }
    if (b->metrics) {
        const Sldd__V1__Metrics *m = b->metrics;
        fprintf(f, "metrics (%s, %" PRIu64 " patches, %" PRIu64 " images):\n", m->split,
                m->patch_count, m->image_count);
        char a[16], se[16], sp[16], h[16], u[16];
        fprintf(f, "  acc %s sen %s spe %s hm %s auc %s\n",
                metric_text(a, sizeof a, m, SP_METRIC_ACCURACY),
                metric_text(se, sizeof se, m, SP_METRIC_SENSITIVITY),
                metric_text(sp, sizeof sp, m, SP_METRIC_SPECIFICITY),
                metric_text(h, sizeof h, m, SP_METRIC_HARMONIC_MEAN),
                metric_text(u, sizeof u, m, SP_METRIC_AUC));
    }
    if (b->privacy) {
        const Sldd__V1__PrivacyReport *p = b->privacy;
        fprintf(f, "privacy report:\n  %-20s %s\n  %-20s %.4f\n", "verdict", p->verdict,
                "membership auc", p->membership_auc);
        if (p->policy[0])
            fprintf(f, "  %-20s %s\n", "policy", p->policy);
        for (size_t i = 0; i < p->n_quantile_levels; i++)
            fprintf(f, "  held-out q%-11.3f dist %.5g ssim %.4f\n", (double)p->quantile_levels[i],
                    i < p->n_heldout_distance_quantiles ? (double)p->heldout_distance_quantiles[i]
                                                        : NAN,
                    i < p->n_heldout_ssim_quantiles ? (double)p->heldout_ssim_quantiles[i] : NAN);
        for (size_t i = 0; i < p->n_images && i < SP_PRINT_ROWS; i++)
            fprintf(f, "  image %3u nearest dist %.5g ssim %.4f held-out closer %.1f%%\n",
                    p->images[i]->image_index, (double)p->images[i]->nearest_pixel_distance,
                    (double)p->images[i]->nearest_ssim,
                    100.0 * (double)p->images[i]->heldout_percentile);
        if (p->n_images > SP_PRINT_ROWS)
            fprintf(f, "  ... %zu more images\n", p->n_images - SP_PRINT_ROWS);
    }
}

static void print_head(FILE *f, const Sldd__V1__Bundle *b)
{
    fprintf(f, "%-22s %u\n", "format version", b->format_version);
    fprintf(f, "%-22s ", "bundle id");
    sp_print_hex(f, b->bundle_id.data, b->bundle_id.len);
    fprintf(f, "\n%-22s %s\n%-22s", "sender", b->sender, "audience");
    for (size_t i = 0; i < b->n_audience; i++)
        fprintf(f, " %s", b->audience[i]);
    fputc('\n', f);
    print_time(f, "created", b->created_unix);
    print_time(f, "expires", b->expires_unix);
    fprintf(f, "%-22s %" PRIu64 "\n", "sequence", b->sequence);
}

void sp_bundle_print(FILE *f, const Sldd__V1__Bundle *b, size_t wire_size)
{
    print_head(f, b);
    if (b->model)
        print_model(f, b->model);
    if (b->distilled)
        print_distilled(f, b->distilled, b->model ? b->model->classes : 0);
    print_rest(f, b);
    print_parts(f, b, wire_size);
}

static const char *hyper(const Sldd__V1__Bundle *b, const char *key)
{
    if (!b->provenance)
        return NULL;
    for (size_t i = 0; i < b->provenance->n_hyper_params; i++)
        if (b->provenance->hyper_params[i] && b->provenance->hyper_params[i]->key &&
            !strcmp(b->provenance->hyper_params[i]->key, key))
            return b->provenance->hyper_params[i]->value;
    return NULL;
}

void sp_bundle_print_summary(FILE *f, const Sldd__V1__Bundle *b, size_t wire_size)
{
    print_head(f, b);
    if (b->model)
        fprintf(f, "%-22s %s, %u x %u x %u, %u classes\n", "model", b->model->arch,
                b->model->in_channels, b->model->in_height, b->model->in_width, b->model->classes);
    if (b->distilled)
        fprintf(f, "%-22s S=%u n=%u E=%u, images %s\n", "distilled set", b->distilled->steps,
                b->distilled->images_per_step, b->distilled->epochs,
                b->distilled->images ? sp_encoding_name(b->distilled->images->encoding) : "none");
    const char *eps = hyper(b, "dp_epsilon");
    if (eps) {
        const char *delta = hyper(b, "dp_delta"), *acc = hyper(b, "dp_accountant");
        const char *unit = hyper(b, "dp_unit");
        fprintf(f, "%-22s epsilon %s at delta %s per training %s (%s)\n", "differential privacy",
                eps, delta ? delta : "?", unit ? unit : "sample",
                acc ? acc : "accountant not named");
    } else {
        fprintf(f, "%-22s none: no epsilon can be stated\n", "differential privacy");
    }
    if (b->metrics && b->metrics->split && !strcmp(b->metrics->split, "none"))
        fprintf(f, "%-22s none in the payload\n", "sender metrics");
    else if (b->metrics) {
        char h[16], se[16], sp[16];
        fprintf(f, "%-22s hm %s sen %s spe %s\n", "sender metrics",
                metric_text(h, sizeof h, b->metrics, SP_METRIC_HARMONIC_MEAN),
                metric_text(se, sizeof se, b->metrics, SP_METRIC_SENSITIVITY),
                metric_text(sp, sizeof sp, b->metrics, SP_METRIC_SPECIFICITY));
    }
    if (b->privacy && b->privacy->verdict && !strcmp(b->privacy->verdict, "not-audited"))
        fprintf(f, "%-22s not in the payload\n", "privacy audit");
    else if (b->privacy)
        fprintf(f, "%-22s %s (membership auc %.3f)\n", "privacy verdict", b->privacy->verdict,
                b->privacy->membership_auc);
    fprintf(f, "%-22s %zu bytes\n", "size", wire_size);
}
