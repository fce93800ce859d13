/*
 * nd_cli_approval.c - the approval summary, rendered from the bytes to be
 * signed (see nd_cli_approval.h).
 */
#include "nd_cli_approval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nd_buf.h"
#include "nd_data.h"
#include "sc_error.h"
#include "sc_sign.h"
#include "sc_util.h"
#include "sldd.pb-c.h"
#include "sp_budget.h"
#include "sp_check.h"
#include "sp_encoding.h"
#include "sp_print.h"

#define LABEL_CLASSES_SHOWN 16

/* Class names in model order, from the provenance counts when they name
 * exactly K classes; NULL entries otherwise. */
static void class_names(const Sldd__V1__Bundle *b, const char **names, size_t k)
{
    size_t n = 0;
    memset(names, 0, k * sizeof *names);
    if (!b->provenance)
        return;
    for (size_t i = 0; i < b->provenance->n_counts; i++) {
        const char *c = b->provenance->counts[i]->class_name;
        size_t j = 0;
        while (j < n && strcmp(names[j], c))
            j++;
        if (j == n) {
            if (n == k) {
                memset(names, 0, k * sizeof *names);
                return;
            }
            names[n++] = c;
        }
    }
    if (n != k)
        memset(names, 0, k * sizeof *names);
}

/* Soft labels in one line: how many images lean to each class, and the
 * mean probability of that leading class (softmax labels only). */
static void print_labels(FILE *f, const Sldd__V1__Bundle *b)
{
    const Sldd__V1__DistilledSet *ds = b->distilled;
    size_t k = b->model->classes, m = ds->n_label_logits / k;
    size_t lean[LABEL_CLASSES_SHOWN] = {0};
    const char *names[LABEL_CLASSES_SHOWN];
    double top = 0;
    int softmax = b->model->label_param == SLDD__V1__LABEL_PARAM__LABEL_PARAM_SOFTMAX;
    if (k > LABEL_CLASSES_SHOWN) {
        fprintf(f, "%-22s %zu images x %zu classes\n", "soft labels", m, k);
        return;
    }
    class_names(b, names, k);
    for (size_t i = 0; i < m; i++) {
        const float *y = ds->label_logits + i * k;
        size_t c = 0;
        double z = 0;
        for (size_t j = 1; j < k; j++)
            c = y[j] > y[c] ? j : c;
        for (size_t j = 0; j < k; j++)
            z += exp((double)y[j] - (double)y[c]);
        lean[c]++;
        top += 1.0 / z;
    }
    fprintf(f, "%-22s %zu images lean to", "soft labels", m);
    for (size_t j = 0; j < k; j++) {
        if (names[j])
            fprintf(f, " %s %zu", names[j], lean[j]);
        else
            fprintf(f, " class %zu: %zu", j, lean[j]);
        fputc(j + 1 < k ? ',' : ';', f);
    }
    if (softmax && m)
        fprintf(f, " mean probability of the leading class %.3f\n", top / (double)m);
    else
        fprintf(f, " (raw label targets)\n");
}

static void print_privacy(FILE *f, const Sldd__V1__PrivacyReport *p)
{
    double closest = INFINITY, ssim = -INFINITY;
    if (!p) {
        fprintf(f, "%-22s none: not audited\n", "privacy");
        return;
    }
    fprintf(f, "%-22s %s\n", "privacy policy", p->policy[0] ? p->policy : "(none stated)");
    for (size_t i = 0; i < p->n_images; i++) {
        closest = fmin(closest, (double)p->images[i]->heldout_percentile);
        ssim = fmax(ssim, (double)p->images[i]->nearest_ssim);
    }
    if (p->n_images)
        fprintf(f,
                "%-22s %zu images; lowest held-out closer %.1f%% (near 0%% = closer than "
                "real patches get); highest SSIM %.4f\n",
                "privacy audit", p->n_images, 100.0 * closest, ssim);
}

/* The approval summary of a payload that passed sp_bundle_validate(). */
static void print_summary(FILE *f, const Sldd__V1__Bundle *b, size_t len,
                          const nd_signed_payload *p)
{
    const Sldd__V1__ImageTensor *t = b->distilled->images;
    uint8_t h[32];
    char hex[65];
    fprintf(f, "what your signature covers (read from the statement it signs):\n");
    fprintf(f, "%-22s %s\n", "payload sha256", p->payload_sha256);
    sp_bundle_print_summary(f, b, len);
    sc_sha256(h, t->data.data, t->data.len);
    nd_hex(hex, h, 32);
    fprintf(f, "%-22s %zu of %u x %u x %u (%s, %zu bytes), sha256 %s\n", "images",
            (size_t)b->distilled->steps * b->distilled->images_per_step, b->model->in_channels,
            b->model->in_height, b->model->in_width, sp_encoding_name(t->encoding), t->data.len,
            hex);
    print_labels(f, b);
    print_privacy(f, b->privacy);
}

/* The image grid of a validated payload b into the PNG file path: its
 * images, soft labels and step sizes as they are in b, whatever model
 * this node could rebuild from it. */
static int draw_grid(const Sldd__V1__Bundle *b, const char *path, sc_error *e)
{
    const Sldd__V1__ModelSpec *ms = b->model;
    const Sldd__V1__DistilledSet *ds = b->distilled;
    const char *names[LABEL_CLASSES_SHOWN];
    const char *const *use = NULL;
    size_t m = (size_t)ds->steps * ds->images_per_step;
    size_t dv = (size_t)ms->in_channels * ms->in_height * ms->in_width;
    sd_error err = {0};
    sd_distilled d;
    memset(&d, 0, sizeof d);
    snprintf(d.spec.arch, sizeof d.spec.arch, "%s", ms->arch);
    d.spec.bn = ms->bn;
    d.spec.depth = (int)ms->depth;
    d.spec.width = (int)ms->width;
    d.spec.in_c = (int)ms->in_channels;
    d.spec.in_h = (int)ms->in_height;
    d.spec.in_w = (int)ms->in_width;
    d.spec.classes = (int)ms->classes;
    d.steps = (int)ds->steps;
    d.images_per_step = (int)ds->images_per_step;
    d.epochs_inner = (int)ds->epochs;
    d.label_param =
        ms->label_param == SLDD__V1__LABEL_PARAM__LABEL_PARAM_RAW ? SD_LABEL_RAW : SD_LABEL_SOFTMAX;
    d.labels = ds->label_logits;
    d.step_sizes = ds->step_sizes;
    if (!(d.images = malloc(m * dv * sizeof *d.images + 1)) ||
        sp_image_tensor_decode(ds->images, m, dv, d.images)) {
        free(d.images);
        sc_error_set(e, SC_EFORMAT, "image grid: the images do not decode");
        return -1;
    }
    if (ms->classes <= LABEL_CLASSES_SHOWN) {
        class_names(b, names, ms->classes);
        use = names[0] ? names : NULL;
    }
    int synthetic = b->provenance && strstr(b->provenance->data_source, "synthetic") != NULL;
    int rc = nd_picture_grid(path, &d, use, synthetic, &err);
    if (rc)
        sc_error_set(e, err.code ? err.code : SC_EIO, "image grid: %s", err.msg);
    free(d.images);
    return rc ? -1 : 0;
}

int nd_cli_statement_check(const uint8_t *st, size_t sl, const char *self, size_t parse_budget,
                           FILE *out, const char *grid, nd_signed_payload *p, sc_error *e)
{
    sp_budget sb, pb;
    Sldd__V1__Statement *s = NULL;
    Sldd__V1__Bundle *b = NULL;
    sb_error why;
    uint8_t h[32];
    int rc = -1;
    memset(p, 0, sizeof *p);
    sp_budget_init(&sb, sl + 65536);
    if (sc_statement_parse(st, sl, &sb, &s, e))
        return -1;
    sp_budget_init(&pb, parse_budget);
    if (strcmp(s->payload_type, SC_TYPE_BUNDLE))
        sc_error_set(e, SC_EFORMAT, "the statement's payload type '%.80s' is not a bundle",
                     s->payload_type);
    else if (!(b = sldd__v1__bundle__unpack(sp_budget_allocator(&pb), s->payload.len,
                                            s->payload.data)))
        sc_error_set(e, SC_EFORMAT, "the payload does not parse");
    else if (sp_message_check_unknown(&b->base, &why) || sp_bundle_validate(b, &why))
        sc_error_set(e, SC_EFORMAT, "invalid payload: %s", why.msg);
    else if (strcmp(b->sender, self))
        sc_error_set(e, SC_EINVAL, "the payload is from '%s', this node is '%s'", b->sender, self);
    else if (!grid || draw_grid(b, grid, e) == 0) {
        sc_sha256(h, s->payload.data, s->payload.len);
        nd_hex(p->payload_sha256, h, 32);
        nd_hex(p->bundle_id, b->bundle_id.data, 16);
        if (out)
            print_summary(out, b, s->payload.len, p);
        if (out && grid)
            fprintf(out, "%-22s %s (drawn from these bytes)\n", "image grid", grid);
        rc = 0;
    }
    if (b)
        protobuf_c_message_free_unpacked(&b->base, sp_budget_allocator(&pb));
    protobuf_c_message_free_unpacked(&s->base, sp_budget_allocator(&sb));
    return rc;
}

int nd_cli_payload_grid(const uint8_t *payload, size_t len, size_t parse_budget, const char *path,
                        sc_error *e)
{
    sp_budget pb;
    sb_error why;
    Sldd__V1__Bundle *b;
    int rc = -1;
    sp_budget_init(&pb, parse_budget);
    if (!(b = sldd__v1__bundle__unpack(sp_budget_allocator(&pb), len, payload))) {
        sc_error_set(e, SC_EFORMAT, "the payload does not parse");
        return -1;
    }
    if (sp_message_check_unknown(&b->base, &why) || sp_bundle_validate(b, &why))
        sc_error_set(e, SC_EFORMAT, "invalid payload: %s", why.msg);
    else
        rc = draw_grid(b, path, e);
    protobuf_c_message_free_unpacked(&b->base, sp_budget_allocator(&pb));
    return rc;
}

static int hex_field(const char *s, size_t n, char *out)
{
    if (strspn(s, "0123456789abcdef") != n)
        return -1;
    memcpy(out, s, n);
    out[n] = 0;
    return 0;
}

int nd_cli_view_identity(const char *view, nd_signed_payload *p)
{
    static const char sha_label[] = "\n  payload sha256  ";
    const char *h;
    memset(p, 0, sizeof *p);
    if (strncmp(view, "bundle ", 7) || hex_field(view + 7, 32, p->bundle_id) || view[39] != '\n' ||
        !(h = strstr(view, sha_label)) ||
        hex_field(h + sizeof sha_label - 1, 64, p->payload_sha256) ||
        h[sizeof sha_label - 1 + 64] != '\n')
        return -1;
    return 0;
}
