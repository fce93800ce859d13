/*
 * sp_testbundle.c - random payloads of realistic shape (see sp_testbundle.h).
 * Everything lives in one arena freed at the end; the Bundle message is
 * assembled on the stack and packed once.
 */
#include "sp_testbundle.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sldd.pb-c.h"
#include "sp_encoding.h"

typedef struct rng {
    uint64_t s;
} rng;

/* splitmix64: small, portable, good enough for test contents */
static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static float rng_normal(rng *r)
{
    double u1 = rng_unit(r), u2 = rng_unit(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void sp_test_params_default(sp_test_params *p)
{
    static const char *const aud[] = {"node-b"};
    memset(p, 0, sizeof *p);
    p->sender = "node-a";
    p->audience = aud;
    p->n_audience = 1;
    p->created_unix = 1767225600; /* 2026-01-01 */
    p->expires_unix = p->created_unix + 30 * 86400;
    p->sequence = 1;
    for (int i = 0; i < 16; i++)
        p->bundle_id[i] = (uint8_t)(0xa0 + i);
    p->encoding = SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT32;
    p->arch = "convnet";
    p->bn = 1;
    p->depth = 3;
    p->width = 32;
    p->channels = 1;
    p->height = 64;
    p->width_px = 64;
    p->classes = 3;
    p->steps = 10;
    p->per_step = 3;
    p->epochs = 3;
    p->seed = 1;
    p->verdict = "pass";
}

static uint64_t convnet_params(const sp_test_params *p)
{
    uint64_t n = 0, cin = p->channels, h = p->height, w = p->width_px;
    for (uint32_t l = 0; l < p->depth; l++) {
        n += cin * 9 * p->width + p->width + (p->bn ? 2u * p->width : 0);
        cin = p->width;
        h /= 2;
        w /= 2;
    }
    return n + cin * h * w * p->classes + p->classes;
}

typedef struct arena {
    void *blocks[32];
    int n;
} arena;

static void *arena_alloc(arena *a, size_t size)
{
    void *p;
    if (a->n == 32 || !(p = calloc(size ? size : 1, 1)))
        return NULL;
    a->blocks[a->n++] = p;
    return p;
}

int sp_test_bundle_build(const sp_test_params *p, uint8_t **out, size_t *len)
{
    static const char *const class_names[] = {"I", "N", "P"};
    rng r = {p->seed * 0x2545f4914f6cdd1dull + 17};
    arena a = {{0}, 0};
    Sldd__V1__Bundle b = SLDD__V1__BUNDLE__INIT;
    Sldd__V1__ModelSpec ms = SLDD__V1__MODEL_SPEC__INIT;
    Sldd__V1__DistilledSet ds = SLDD__V1__DISTILLED_SET__INIT;
    Sldd__V1__ImageTensor it = SLDD__V1__IMAGE_TENSOR__INIT;
    Sldd__V1__BnStats bs = SLDD__V1__BN_STATS__INIT;
    Sldd__V1__Normalisation nm = SLDD__V1__NORMALISATION__INIT;
    Sldd__V1__Provenance pv = SLDD__V1__PROVENANCE__INIT;
    Sldd__V1__Metrics mt = SLDD__V1__METRICS__INIT;
    Sldd__V1__PrivacyReport pr = SLDD__V1__PRIVACY_REPORT__INIT;
    Sldd__V1__ClassCount cc[6], *ccp[6];
    Sldd__V1__HyperParam hp[4], *hpp[4];
    Sldd__V1__ImageAudit *audits, **auditp;
    static float qlev[] = {0.01f, 0.05f, 0.25f, 0.5f};
    float qd[4], qs[4], nmean[64], nstd[64];
    uint8_t theta0[32];
    size_t m = (size_t)p->steps * p->per_step, d = (size_t)p->channels * p->height * p->width_px;
    size_t nbn = p->bn ? (size_t)p->depth * p->width : 0;
    float *x, *y, *alpha, *mean, *var;
    uint32_t *lch;
    int rc = -1;

    *out = NULL;
    *len = 0;
    if (!m || !d || !p->classes || !p->epochs || p->channels > 64 || (p->bn && !nbn) ||
        m > SIZE_MAX / 4 / d)
        return -1;
    x = arena_alloc(&a, m * d * sizeof *x);
    y = arena_alloc(&a, m * p->classes * sizeof *y);
    alpha = arena_alloc(&a, (size_t)p->steps * p->epochs * sizeof *alpha);
    mean = arena_alloc(&a, (nbn ? nbn : 1) * sizeof *mean);
    var = arena_alloc(&a, (nbn ? nbn : 1) * sizeof *var);
    lch = arena_alloc(&a, (p->depth ? p->depth : 1) * sizeof *lch);
    audits = arena_alloc(&a, m * sizeof *audits);
    auditp = arena_alloc(&a, m * sizeof *auditp);
    if (!x || !y || !alpha || !mean || !var || !lch || !audits || !auditp)
        goto out;

    for (size_t i = 0; i < m * d; i++)
        x[i] = rng_normal(&r);
    for (size_t i = 0; i < m; i++) /* one-hot-ish logits drifted by training */
        for (uint32_t c = 0; c < p->classes; c++)
            y[i * p->classes + c] = (c == i % p->classes ? 1.0f : 0.0f) + 0.3f * rng_normal(&r);
    for (size_t t = 0; t < (size_t)p->steps * p->epochs; t++)
        alpha[t] = 0.01f * (float)(0.5 + rng_unit(&r));
    for (size_t i = 0; i < nbn; i++) {
        mean[i] = 0.2f * rng_normal(&r);
        var[i] = (float)(0.05 + rng_unit(&r));
    }
    for (uint32_t l = 0; l < p->depth; l++)
        lch[l] = p->width;
    for (int i = 0; i < 32; i++)
        theta0[i] = (uint8_t)rng_next(&r);

    b.format_version = 1;
    b.bundle_id.data = (uint8_t *)p->bundle_id;
    b.bundle_id.len = 16;
    b.sender = (char *)p->sender;
    b.n_audience = p->n_audience;
    b.audience = (char **)p->audience;
    b.created_unix = p->created_unix;
    b.expires_unix = p->expires_unix;
    b.sequence = p->sequence;

    ms.arch = (char *)p->arch;
    ms.bn = p->bn;
    ms.depth = p->depth;
    ms.width = p->width;
    ms.in_channels = p->channels;
    ms.in_height = p->height;
    ms.in_width = p->width_px;
    ms.classes = p->classes;
    /* the engine's scheme (SD_INIT_SCHEME), so a test payload reaches the
     * rebuild like a real one (and fails there on theta_0's hash) */
    ms.init_scheme = "philox-xavier-normal-v1";
    ms.init_seed = p->seed;
    ms.theta0_sha256.data = theta0;
    ms.theta0_sha256.len = 32;
    ms.bn_mode = SLDD__V1__BN_MODE__BN_MODE_BATCH;
    ms.label_param = SLDD__V1__LABEL_PARAM__LABEL_PARAM_SOFTMAX;
    ms.param_count = convnet_params(p);
    b.model = &ms;

    if (sp_image_tensor_set(&it, p->encoding, x, m, d))
        goto out;
    ds.steps = p->steps;
    ds.images_per_step = p->per_step;
    ds.epochs = p->epochs;
    ds.images = &it;
    ds.n_label_logits = m * p->classes;
    ds.label_logits = y;
    ds.n_step_sizes = (size_t)p->steps * p->epochs;
    ds.step_sizes = alpha;
    b.distilled = &ds;

    if (p->bn) {
        bs.n_layer_channels = p->depth;
        bs.layer_channels = lch;
        bs.n_mean = bs.n_var = nbn;
        bs.mean = mean;
        bs.var = var;
        bs.count = 12800;
        b.bn_stats = &bs;
    }

    for (uint32_t c = 0; c < p->channels; c++) {
        nmean[c] = 0.45f;
        nstd[c] = 0.22f;
    }
    nm.n_mean = nm.n_std = p->channels;
    nm.mean = nmean;
    nm.std = nstd;
    nm.patch_size = 299;
    nm.patch_stride = 50;
    nm.patch_resize = p->height;
    b.normalisation = &nm;

    for (int i = 0; i < 6; i++) {
        sldd__v1__class_count__init(&cc[i]);
        cc[i].split = i < 3 ? "train" : "val";
        cc[i].class_name = (char *)class_names[i % 3];
        cc[i].images = 40 + (uint64_t)i;
        cc[i].patches = 1000 + 37 * (uint64_t)i;
        ccp[i] = &cc[i];
    }
    {
        static const char *const keys[] = {"epochs", "distill_lr", "lr", "batch_real"};
        static const char *const vals[] = {"400", "0.01", "0.01", "128"};
        for (int i = 0; i < 4; i++) {
            sldd__v1__hyper_param__init(&hp[i]);
            hp[i].key = (char *)keys[i];
            hp[i].value = (char *)vals[i];
            hpp[i] = &hp[i];
        }
    }
    pv.n_counts = 6;
    pv.counts = ccp;
    pv.n_hyper_params = 4;
    pv.hyper_params = hpp;
    pv.engine_version = "sldd-test";
    pv.backend = "cpu";
    pv.data_source = "synthetic-test";
    b.provenance = &pv;

    mt.split = "val";
    mt.accuracy = 0.8 + 0.1 * rng_unit(&r);
    mt.sensitivity = 0.8 + 0.1 * rng_unit(&r);
    mt.specificity = 0.8 + 0.1 * rng_unit(&r);
    mt.harmonic_mean = 2 * mt.sensitivity * mt.specificity / (mt.sensitivity + mt.specificity);
    mt.auc = 0.9;
    mt.patch_count = 4000;
    mt.image_count = 40;
    b.metrics = &mt;

    for (size_t i = 0; i < m; i++) {
        sldd__v1__image_audit__init(&audits[i]);
        audits[i].image_index = (uint32_t)i;
        audits[i].nearest_pixel_distance = (float)(0.3 + 0.2 * rng_unit(&r));
        audits[i].nearest_ssim = (float)(0.1 * rng_unit(&r));
        audits[i].heldout_percentile = (float)(0.5 + 0.5 * rng_unit(&r));
        auditp[i] = &audits[i];
    }
    for (int i = 0; i < 4; i++) {
        qd[i] = 0.1f + 0.05f * (float)i;
        qs[i] = 0.4f - 0.05f * (float)i;
    }
    pr.n_images = m;
    pr.images = auditp;
    pr.n_quantile_levels = pr.n_heldout_distance_quantiles = pr.n_heldout_ssim_quantiles = 4;
    pr.quantile_levels = qlev;
    pr.heldout_distance_quantiles = qd;
    pr.heldout_ssim_quantiles = qs;
    pr.membership_auc = 0.52;
    pr.verdict = (char *)(p->verdict ? p->verdict : "pass");
    pr.policy = "block if any image is nearer than the 1% held-out quantile";
    b.privacy = &pr;

    *len = sldd__v1__bundle__get_packed_size(&b);
    *out = malloc(*len ? *len : 1);
    if (!*out)
        goto out;
    if (sldd__v1__bundle__pack(&b, *out) != *len) {
        free(*out);
        *out = NULL;
        goto out;
    }
    rc = 0;
out:
    sp_image_tensor_clear(&it);
    for (int i = 0; i < a.n; i++)
        free(a.blocks[i]);
    return rc;
}
