/*
 * test_proto.c - the bundle payload format: float16 and uint8 image
 * encodings, the parse budget, unknown-field detection and every semantic
 * validation rule (one mutation of a valid payload per rule).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sd_test.h"
#include "sldd.pb-c.h"
#include "sp_budget.h"
#include "sp_check.h"
#include "sp_encoding.h"
#include "sp_testbundle.h"

static float f_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_half(void)
{
    static double hv[0x7c00];
    int bad = 0, rt_bad = 0;
    for (int i = 0; i < 0x7c00; i++)
        hv[i] = sp_half_to_float((uint16_t)i);
    /* exhaustive round trip of every half */
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = sp_half_to_float((uint16_t)h);
        uint16_t back = sp_half_from_float(f);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            if (!isnan(f) || (back & 0x7c00) != 0x7c00 || !(back & 0x3ff))
                rt_bad++;
        } else if (back != h) {
            rt_bad++;
        }
    }
    CHECKF(rt_bad == 0, "%d halves do not round-trip", rt_bad);
    /* monotone decoding of positive halves */
    for (int i = 1; i < 0x7c00; i++)
        if (!(hv[i] > hv[i - 1]))
            bad++;
    CHECK(bad == 0);
    CHECK(sp_half_to_float(0x3c00) == 1.0f);
    CHECK(sp_half_to_float(0xc000) == -2.0f);
    CHECK(sp_half_to_float(0x7bff) == 65504.0f);
    CHECK(sp_half_to_float(0x0001) == ldexpf(1.0f, -24));
    CHECK(isinf(sp_half_to_float(0x7c00)));
    /* rounding of floats: compare to the nearest half with ties to even */
    {
        uint32_t step = 4099, mism = 0, checked = 0;
        for (uint64_t u = 0; u < 0x100000000ull; u += step) {
            float f = f_from_bits((uint32_t)u);
            double x = f, ax = fabs(x);
            uint16_t got = sp_half_from_float(f), want;
            if (isnan(f)) {
                if ((got & 0x7c00) != 0x7c00 || !(got & 0x3ff))
                    mism++;
                continue;
            }
            if (ax >= 65520.0) {
                want = 0x7c00;
            } else {
                /* binary search for the neighbours among positive halves */
                int lo = 0, hi = 0x7bff;
                while (lo < hi) {
                    int mid = (lo + hi + 1) / 2;
                    if (hv[mid] <= ax)
                        lo = mid;
                    else
                        hi = mid - 1;
                }
                if (lo == 0x7bff) {
                    want = ax > 65504.0 && ax - 65504.0 >= 16.0 ? 0x7c00 : 0x7bff;
                } else {
                    double dl = ax - hv[lo], du = hv[lo + 1] - ax;
                    want = (uint16_t)(dl < du ? lo : du < dl ? lo + 1 : (lo & 1) ? lo + 1 : lo);
                }
            }
            if (signbit(f))
                want |= 0x8000;
            if (got != want)
                mism++;
            checked++;
        }
        CHECKF(mism == 0, "%u of %u floats round differently from the reference", mism, checked);
    }
    /* exact midpoints between consecutive halves (the tie cases) */
    {
        int mism = 0;
        for (int i = 0; i < 0x7bff; i++) {
            float mid = (float)((hv[i] + hv[i + 1]) / 2);
            uint16_t want = (uint16_t)((i & 1) ? i + 1 : i);
            if ((double)mid != (hv[i] + hv[i + 1]) / 2)
                continue; /* not representable in float: not a tie */
            if (sp_half_from_float(mid) != want)
                mism++;
            if (sp_half_from_float(-mid) != (want | 0x8000))
                mism++;
        }
        CHECKF(mism == 0, "%d ties not rounded to even", mism);
    }
#ifdef __FLT16_MAX__
    /* and the compiler's own conversion where it has one */
    {
        __extension__ typedef _Float16 f16;
        int mism = 0;
        for (uint64_t u = 0; u < 0x100000000ull; u += 65521) {
            float f = f_from_bits((uint32_t)u);
            f16 c = (f16)f;
            uint16_t cb;
            memcpy(&cb, &c, 2);
            if (!isnan(f) && cb != sp_half_from_float(f))
                mism++;
        }
        CHECKF(mism == 0, "%d differ from _Float16", mism);
    }
#endif
}

static void test_images(void)
{
    enum { M = 4, D = 300 };
    static float x[M * D], y[M * D];
    static uint8_t buf[M * D * 4];
    float sc[M], off[M];
    double maxerr;
    for (int i = 0; i < M * D; i++)
        x[i] = (float)(3.0 * sin(0.37 * i) + (i / D) * 0.5);
    x[D] = 1e-7f; /* a subnormal-in-half value */
    CHECK(sp_images_encode(SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT32, x, M, D, buf, NULL,
                           NULL) == 0);
    CHECK(sp_images_decode(SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT32, buf, M, D, NULL, NULL,
                           y) == 0);
    CHECK(memcmp(x, y, sizeof x) == 0);
    CHECK(buf[0] == 0 && buf[3] == 0); /* x[0] = 0: little-endian zero */

    CHECK(sp_images_encode(SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT16, x, M, D, buf, NULL,
                           NULL) == 0);
    CHECK(sp_images_decode(SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT16, buf, M, D, NULL, NULL,
                           y) == 0);
    maxerr = 0;
    for (int i = 0; i < M * D; i++) {
        double rel = fabs(y[i] - x[i]) / fmax(fabs(x[i]), ldexp(1, -14));
        maxerr = fmax(maxerr, rel);
    }
    CHECKF(maxerr <= ldexp(1, -11) + 1e-12, "float16 relative error %g", maxerr);

    CHECK(sp_images_encode(SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED, x, M, D, buf, sc,
                           off) == 0);
    CHECK(sp_images_decode(SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED, buf, M, D, sc,
                           off, y) == 0);
    for (int j = 0; j < M; j++) {
        double e = 0;
        for (int i = 0; i < D; i++)
            e = fmax(e, fabs(y[j * D + i] - x[j * D + i]));
        CHECKF(e <= 0.5 * sc[j] * (1 + 1e-5) + 1e-6, "uint8 image %d error %g, scale %g", j, e,
               (double)sc[j]);
    }
    /* constant image: scale 0, exact */
    for (int i = 0; i < D; i++)
        x[i] = 2.5f;
    CHECK(sp_images_encode(SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED, x, 1, D, buf, sc,
                           off) == 0);
    CHECK(sc[0] == 0 && off[0] == 2.5f);
    CHECK(sp_images_decode(SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED, buf, 1, D, sc,
                           off, y) == 0 &&
          y[D - 1] == 2.5f);
    /* refusals */
    x[5] = NAN;
    CHECK(sp_images_encode(SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT32, x, 1, D, buf, NULL,
                           NULL) == -1);
    x[5] = 1e6f; /* beyond float16 */
    CHECK(sp_images_encode(SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT16, x, 1, D, buf, NULL,
                           NULL) == -1);
    CHECK(sp_images_encode(7, x, 1, D, buf, NULL, NULL) == -1);
    CHECK(sp_encoding_parse("f16") == SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT16);
    CHECK(sp_encoding_parse("bogus") == -1);
}

static uint8_t *make(const sp_test_params *p, size_t *len)
{
    uint8_t *buf = NULL;
    if (sp_test_bundle_build(p, &buf, len))
        return NULL;
    return buf;
}

static Sldd__V1__Bundle *parse(const uint8_t *buf, size_t len)
{
    return sldd__v1__bundle__unpack(NULL, len, buf);
}

static void test_budget_and_unknown(void)
{
    sp_test_params p;
    size_t len;
    uint8_t *buf;
    sp_budget b;
    Sldd__V1__Bundle *m;
    sb_error why;
    sp_test_params_default(&p);
    buf = make(&p, &len);
    CHECK(buf != NULL);
    if (!buf)
        return;
    sp_budget_init(&b, len / 2);
    m = sldd__v1__bundle__unpack(sp_budget_allocator(&b), len, buf);
    CHECK(m == NULL && b.exceeded);
    CHECK(b.used == 0);
    sp_budget_init(&b, len * 3 + 100000);
    m = sldd__v1__bundle__unpack(sp_budget_allocator(&b), len, buf);
    CHECK(m != NULL && !b.exceeded && b.peak >= len / 2);
    if (m) {
        CHECK(sp_message_check_unknown(&m->base, &why) == 0);
        CHECKF(sp_bundle_validate(m, &why) == 0, "%s", why.msg);
        protobuf_c_message_free_unpacked(&m->base, sp_budget_allocator(&b));
    }
    CHECK(b.used == 0);

    /* top-level unknown field 99 (varint) */
    {
        uint8_t *u = malloc(len + 4);
        memcpy(u, buf, len);
        u[len] = (uint8_t)((99 << 3) | 0) | 0x80; /* tag 99: two-byte varint */
        u[len + 1] = (uint8_t)((99 << 3) >> 7);
        u[len + 2] = 5;
        m = parse(u, len + 3);
        CHECK(m != NULL);
        if (m) {
            CHECK(sp_message_check_unknown(&m->base, &why) == SB_EFORMAT);
            CHECKF(strstr(why.msg, "unknown field 99") != NULL, "%s", why.msg);
            sldd__v1__bundle__free_unpacked(m, NULL);
        }
        free(u);
        /* nested: field 8 (model) again, holding only an unknown field 50;
         * the parser merges it into the model */
        u = malloc(len + 5);
        memcpy(u, buf, len);
        u[len] = (8 << 3) | 2;
        u[len + 1] = 3;
        u[len + 2] = (uint8_t)((50 << 3) | 0x80);
        u[len + 3] = (uint8_t)((50 << 3) >> 7);
        u[len + 4] = 1;
        m = parse(u, len + 5);
        CHECK(m != NULL);
        if (m) {
            CHECK(sp_message_check_unknown(&m->base, &why) == SB_EFORMAT);
            CHECKF(strstr(why.msg, "Bundle.model: unknown field 50") != NULL, "%s", why.msg);
            sldd__v1__bundle__free_unpacked(m, NULL);
        }
        free(u);
    }
    free(buf);
}

typedef void (*mutator)(Sldd__V1__Bundle *b);

static float nanf_(void)
{
    return NAN;
}

static void m_version(Sldd__V1__Bundle *b)
{
    b->format_version = 2;
}
static void m_id_len(Sldd__V1__Bundle *b)
{
    b->bundle_id.len = 15;
}
static void m_sender(Sldd__V1__Bundle *b)
{
    b->sender[0] = '/';
}
static void m_audience(Sldd__V1__Bundle *b)
{
    b->n_audience = 0;
}
static void m_times(Sldd__V1__Bundle *b)
{
    b->expires_unix = b->created_unix;
}
static void m_seq(Sldd__V1__Bundle *b)
{
    b->sequence = 0;
}
static void m_classes(Sldd__V1__Bundle *b)
{
    b->model->classes = 1;
}
static void m_theta(Sldd__V1__Bundle *b)
{
    b->model->theta0_sha256.len = 31;
}
static void m_bnmode(Sldd__V1__Bundle *b)
{
    b->model->bn_mode = (Sldd__V1__BnMode)7;
}
static void m_labelp(Sldd__V1__Bundle *b)
{
    b->model->label_param = (Sldd__V1__LabelParam)0;
}
static void m_arch(Sldd__V1__Bundle *b)
{
    b->model->arch[0] = '\n';
}
static void m_enc(Sldd__V1__Bundle *b)
{
    b->distilled->images->encoding = (Sldd__V1__ImageEncoding)9;
}
static void m_datalen(Sldd__V1__Bundle *b)
{
    b->distilled->images->data.len--;
}
static void m_nanimg(Sldd__V1__Bundle *b)
{
    memcpy(b->distilled->images->data.data + 8, "\x00\x00\xc0\x7f", 4);
}
static void m_infimg(Sldd__V1__Bundle *b)
{
    memcpy(b->distilled->images->data.data + 4, "\x00\x00\x80\xff", 4);
}
static void m_nlabels(Sldd__V1__Bundle *b)
{
    b->distilled->n_label_logits--;
}
static void m_nanlabel(Sldd__V1__Bundle *b)
{
    b->distilled->label_logits[3] = nanf_();
}
static void m_alpha0(Sldd__V1__Bundle *b)
{
    b->distilled->step_sizes[2] = 0;
}
static void m_alphaneg(Sldd__V1__Bundle *b)
{
    b->distilled->step_sizes[0] = -0.01f;
}
static void m_alphanan(Sldd__V1__Bundle *b)
{
    b->distilled->step_sizes[1] = nanf_();
}
static void m_nalpha(Sldd__V1__Bundle *b)
{
    b->distilled->n_step_sizes++;
}
static void m_steps0(Sldd__V1__Bundle *b)
{
    b->distilled->epochs = 0;
}
static void m_overflow(Sldd__V1__Bundle *b)
{
    b->distilled->steps = b->distilled->images_per_step = 0xffffffffu;
}
static void m_noimages(Sldd__V1__Bundle *b)
{
    b->distilled->images = NULL;
}
static void m_var0(Sldd__V1__Bundle *b)
{
    b->bn_stats->var[5] = 0;
}
static void m_varnan(Sldd__V1__Bundle *b)
{
    b->bn_stats->var[0] = nanf_();
}
static void m_meaninf(Sldd__V1__Bundle *b)
{
    b->bn_stats->mean[0] = INFINITY;
}
static void m_bncount(Sldd__V1__Bundle *b)
{
    b->bn_stats->n_var--;
}
static void m_bnlayers(Sldd__V1__Bundle *b)
{
    b->bn_stats->layer_channels[0]++;
}
static void m_nobn(Sldd__V1__Bundle *b)
{
    b->bn_stats = NULL;
}
static void m_std0(Sldd__V1__Bundle *b)
{
    b->normalisation->std[0] = 0;
}
static void m_nonorm(Sldd__V1__Bundle *b)
{
    b->normalisation = NULL;
}
static void m_metric(Sldd__V1__Bundle *b)
{
    b->metrics->harmonic_mean = 1.5;
}
static void m_metricnan(Sldd__V1__Bundle *b)
{
    b->metrics->auc = NAN;
}
static void m_undefbits(Sldd__V1__Bundle *b)
{
    b->metrics->undefined = 1u << 5; /* no such figure */
}
static void m_undefvalue(Sldd__V1__Bundle *b)
{
    b->metrics->undefined = SP_METRIC_SENSITIVITY; /* marked undefined, stored as non-zero */
    b->metrics->sensitivity = 0.5;
}
static void m_audit(Sldd__V1__Bundle *b)
{
    b->privacy->images[0]->image_index = 1000000;
}
static void m_verdict(Sldd__V1__Bundle *b)
{
    b->privacy->verdict[0] = 0;
}
static void m_quant(Sldd__V1__Bundle *b)
{
    b->privacy->n_heldout_ssim_quantiles--;
}
static void m_mia(Sldd__V1__Bundle *b)
{
    b->privacy->membership_auc = -0.1;
}
static void m_noprivacy(Sldd__V1__Bundle *b)
{
    b->privacy = NULL;
}
static void m_hyper(Sldd__V1__Bundle *b)
{
    b->provenance->hyper_params[0]->key[0] = 0;
}
static void m_utf8(Sldd__V1__Bundle *b)
{
    b->provenance->backend[0] = (char)0xc0;
}

static void test_validate(void)
{
    static const struct {
        const char *name;
        mutator fn;
        const char *needle;
    } cases[] = {
        {"version", m_version, "format_version"},
        {"bundle id length", m_id_len, "bundle_id"},
        {"sender id", m_sender, "sender"},
        {"empty audience", m_audience, "audience"},
        {"expires <= created", m_times, "expires"},
        {"sequence 0", m_seq, "sequence"},
        {"1 class", m_classes, "classes"},
        {"theta0 hash length", m_theta, "theta0"},
        {"bn mode enum", m_bnmode, "bn_mode"},
        {"label param enum", m_labelp, "label_param"},
        {"arch control char", m_arch, "arch"},
        {"encoding enum", m_enc, "encoding"},
        {"image bytes", m_datalen, "bytes"},
        {"NaN image", m_nanimg, "not finite"},
        {"-inf image", m_infimg, "not finite"},
        {"label count", m_nlabels, "label_logits"},
        {"NaN label", m_nanlabel, "label_logits"},
        {"step size 0", m_alpha0, "step_sizes"},
        {"negative step size", m_alphaneg, "step_sizes"},
        {"NaN step size", m_alphanan, "step_sizes"},
        {"step size count", m_nalpha, "step_sizes"},
        {"E = 0", m_steps0, ">= 1"},
        {"S*n*K overflow", m_overflow, "overflow"},
        {"images missing", m_noimages, "images"},
        {"variance 0", m_var0, "var"},
        {"NaN variance", m_varnan, "var"},
        {"inf mean", m_meaninf, "mean"},
        {"bn counts", m_bncount, "bn_stats"},
        {"bn layer sizes", m_bnlayers, "bn_stats"},
        {"bn missing", m_nobn, "bn_stats"},
        {"std 0", m_std0, "std"},
        {"normalisation missing", m_nonorm, "normalisation"},
        {"metric > 1", m_metric, "metrics"},
        {"NaN metric", m_metricnan, "metrics"},
        {"unknown undefined bit", m_undefbits, "unknown bits"},
        {"undefined figure not 0", m_undefvalue, "stored as 0"},
        {"audit index", m_audit, "image_index"},
        {"empty verdict", m_verdict, "verdict"},
        {"quantile lengths", m_quant, "quantile"},
        {"membership auc", m_mia, "membership_auc"},
        {"privacy missing", m_noprivacy, "privacy"},
        {"empty hyper-parameter key", m_hyper, "hyper_params"},
        {"invalid utf-8", m_utf8, "provenance"},
    };
    sp_test_params p;
    size_t len;
    uint8_t *buf;
    sb_error why;
    sp_test_params_default(&p);
    p.steps = 4;
    p.epochs = 2;
    buf = make(&p, &len);
    CHECK(buf != NULL);
    if (!buf)
        return;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Sldd__V1__Bundle *b = parse(buf, len);
        /* restore what mutators clear so that free_unpacked stays valid */
        Sldd__V1__ImageTensor *img = b ? b->distilled->images : NULL;
        Sldd__V1__BnStats *bs = b ? b->bn_stats : NULL;
        Sldd__V1__Normalisation *nm = b ? b->normalisation : NULL;
        Sldd__V1__PrivacyReport *pr = b ? b->privacy : NULL;
        size_t n_aud = b ? b->n_audience : 0, dlen = img ? img->data.len : 0;
        size_t nl = b ? b->distilled->n_label_logits : 0, na = b ? b->distilled->n_step_sizes : 0;
        size_t nv = bs ? bs->n_var : 0, nq = pr ? pr->n_heldout_ssim_quantiles : 0;
        CHECK(b != NULL);
        if (!b)
            continue;
        why.msg[0] = 0;
        cases[i].fn(b);
        CHECKF(sp_bundle_validate(b, &why) == SB_EFORMAT, "%s: accepted", cases[i].name);
        CHECKF(strstr(why.msg, cases[i].needle) != NULL, "%s: reason '%s' lacks '%s'",
               cases[i].name, why.msg, cases[i].needle);
        b->distilled->images = img;
        b->bn_stats = bs;
        b->normalisation = nm;
        b->privacy = pr;
        b->n_audience = n_aud;
        img->data.len = dlen;
        b->distilled->n_label_logits = nl;
        b->distilled->n_step_sizes = na;
        bs->n_var = nv;
        pr->n_heldout_ssim_quantiles = nq;
        sldd__v1__bundle__free_unpacked(b, NULL);
    }
    free(buf);

    /* a figure marked undefined and stored as 0 validates, and reads as NaN;
     * the others read as stored */
    buf = make(&p, &len);
    CHECK(buf != NULL);
    Sldd__V1__Bundle *u = buf ? parse(buf, len) : NULL;
    CHECK(u != NULL);
    if (u) {
        CHECK(sp_metric_get(u->metrics, SP_METRIC_SENSITIVITY) == u->metrics->sensitivity);
        u->metrics->undefined = SP_METRIC_SPECIFICITY | SP_METRIC_HARMONIC_MEAN | SP_METRIC_AUC;
        u->metrics->specificity = u->metrics->harmonic_mean = u->metrics->auc = 0;
        CHECKF(sp_bundle_validate(u, &why) == 0, "undefined figures: %s", why.msg);
        CHECK(isnan(sp_metric_get(u->metrics, SP_METRIC_HARMONIC_MEAN)));
        CHECK(isnan(sp_metric_get(u->metrics, SP_METRIC_AUC)));
        CHECK(!isnan(sp_metric_get(u->metrics, SP_METRIC_ACCURACY)));
        CHECK(isnan(sp_metric_get(NULL, SP_METRIC_ACCURACY)));
        sldd__v1__bundle__free_unpacked(u, NULL);
    }
    free(buf);

    /* every encoding and a model without BN validate */
    for (int enc = 1; enc <= 3; enc++)
        for (int bn = 0; bn <= 1; bn++) {
            Sldd__V1__Bundle *b;
            float *x;
            size_t m, d;
            p.encoding = enc;
            p.bn = bn;
            buf = make(&p, &len);
            CHECK(buf != NULL);
            if (!buf)
                continue;
            b = parse(buf, len);
            CHECK(b != NULL);
            if (b) {
                CHECKF(sp_bundle_validate(b, &why) == 0, "enc %d bn %d: %s", enc, bn, why.msg);
                m = (size_t)p.steps * p.per_step;
                d = (size_t)p.channels * p.height * p.width_px;
                x = malloc(m * d * sizeof *x);
                CHECK(sp_image_tensor_decode(b->distilled->images, m, d, x) == 0);
                CHECK(sp_image_tensor_decode(b->distilled->images, m + 1, d, x) == -1);
                free(x);
                sldd__v1__bundle__free_unpacked(b, NULL);
            }
            free(buf);
        }
}

static void test_text(void)
{
    CHECK(sp_valid_id("node-a"));
    CHECK(sp_valid_id("Hospital_1.x"));
    CHECK(!sp_valid_id(""));
    CHECK(!sp_valid_id("-a"));
    CHECK(!sp_valid_id(".."));
    CHECK(!sp_valid_id("a/b"));
    CHECK(!sp_valid_id("a b"));
    CHECK(
        !sp_valid_id("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 65 */
    CHECK(sp_valid_text("Chūbu — 胃", 100));
    CHECK(!sp_valid_text("a\x1b[31m", 100));
    CHECK(!sp_valid_text("\xc0\xaf", 100));     /* overlong */
    CHECK(!sp_valid_text("\xed\xa0\x80", 100)); /* surrogate */
    CHECK(!sp_valid_text("\xe2\x82", 100));     /* truncated */
    CHECK(!sp_valid_text("abcdef", 5));
}

int main(void)
{
    test_half();
    test_images();
    test_budget_and_unknown();
    test_validate();
    test_text();
    return sd_test_finish();
}
