/*
 * bench_gpu.c - timings of the CUDA backend (not a test: no assertions).
 *
 * Measures, on the CUDA backend (device 0):
 *   - primitives at the shapes that dominate ResNet18 at 299x299, batch 256
 *     (cuDNN convolutions, batch norm and its tangent, pooling, GEMM,
 *     patch cutting);
 *   - whole-model passes at batch 256 through the executor (sd_exec):
 *     loss+gradient (forward+backward) and the forward-over-reverse HVP
 *     (forward, tangent forward, backward, tangent backward), for ConvNet-BN
 *     (depth 3, width 128) at 64x64 and ResNet18-BN at 299x299, 1 channel,
 *     3 classes;
 *   - seconds per SLDD outer iteration (sd_distiller: 3 images in one step,
 *     T = 9 inner steps, real batch 256, exact meta-gradient, Adam update)
 *     for both models, each also on the other side of the distiller's step
 *     cache (ConvNet-BN recomputing its steps, ResNet18 keeping them);
 *   - detection throughput: 299x299 patches cut on the GPU from a 2048x2048
 *     16-bit image (stride 50, 35x35 = 1225 patches per image) and classified
 *     by ResNet18-BN with frozen BN statistics, in batches of 256.
 * scripts/bench/bench-gpu.py measures the same things with PyTorch on the same
 * GPU; scripts/device-check prints both side by side.
 *
 * Every measured line is also printed as "RESULT <key> <value> <unit>" for
 * scripts.  Options: --quick (fewer repetitions, smaller batch for the
 * models), --mode det|fast (cuDNN algorithm choice, default det), --only
 * prim|model|outer|detect (one section).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sd_backend.h"
#include "sd_distill.h"
#include "sd_init.h"
#include "sd_model.h"
#include "sg_backend.h"

/* messages of backend calls made outside any test's own sd_error */
static sd_error be_err;

static sd_backend *be;
static int quick;
static const char *mode_name = "det";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_gpu: %s: %s\n", what, be ? be_err.msg : "");
    exit(1);
}

#define TRY(what, call)  \
    do {                 \
        if ((call) != 0) \
            die(what);   \
    } while (0)

static void *dalloc(size_t bytes)
{
    void *p = NULL;
    TRY("alloc", be->alloc(be, &be_err, bytes ? bytes : 4, &p));
    return p;
}

static uint64_t rs = 0x243f6a8885a308d3ULL;
static double urand(void)
{
    uint64_t z = (rs += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static float *drand(size_t n, double lo, double hi)
{
    float *h = malloc(n * sizeof(float));
    if (!h)
        die("host memory");
    for (size_t i = 0; i < n; i++)
        h[i] = (float)(lo + (hi - lo) * urand());
    float *d = dalloc(n * sizeof(float));
    TRY("upload", be->upload(be, &be_err, d, h, n * sizeof(float)));
    free(h);
    return d;
}

static void result(const char *key, double v, const char *unit)
{
    printf("  %-44s %12.4f %s\n", key, v, unit);
    printf("RESULT %s %.6g %s\n", key, v, unit);
    fflush(stdout);
}

/* Mean seconds of one call of fn over reps calls, after one warm-up call. */
typedef int (*bench_fn)(void *ctx);
static double timeit(bench_fn fn, void *ctx, int reps)
{
    TRY("warm-up", fn(ctx));
    TRY("sync", be->sync(be, &be_err));
    double t0 = now();
    for (int i = 0; i < reps; i++)
        TRY("timed call", fn(ctx));
    TRY("sync", be->sync(be, &be_err));
    return (now() - t0) / reps;
}

/* ------------------------------------------------------------ primitives */

typedef struct conv_ctx {
    sd_conv_desc d;
    float *x, *w, *y;
    void *ws;
    int pass;
} conv_ctx;

static int conv_run(void *p)
{
    conv_ctx *c = p;
    switch (c->pass) {
    case 0: return be->conv_fwd(be, &be_err, &c->d, c->x, c->w, 0, c->y, c->ws);
    case 1: return be->conv_bwd_data(be, &be_err, &c->d, c->y, c->w, c->x, c->ws);
    default: return be->conv_bwd_filter(be, &be_err, &c->d, c->x, c->y, c->w, c->ws);
    }
}

static void bench_conv(const char *name, sd_conv_desc d, int reps)
{
    conv_ctx c = {.d = d};
    size_t xs = (size_t)d.n * d.c * d.h * d.w, ws = (size_t)d.k * d.c * d.r * d.s,
           ys = (size_t)d.n * d.k * d.oh * d.ow;
    c.x = drand(xs, -1, 1);
    c.w = drand(ws, -0.1, 0.1);
    c.y = drand(ys, -1, 1);
    /* conv_workspace reports nothing; a failure shows in the timed calls */
    size_t wsz = be->conv_workspace(be, &d);
    c.ws = wsz ? dalloc(wsz) : NULL;
    double flop = 2.0 * d.n * d.k * d.oh * d.ow * (double)d.c * d.r * d.s;
    static const char *pass[3] = {"fwd", "bwd_data", "bwd_filter"};
    for (c.pass = 0; c.pass < 3; c.pass++) {
        double s = timeit(conv_run, &c, reps);
        char key[96];
        snprintf(key, sizeof key, "prim.conv.%s.%s_ms", name, pass[c.pass]);
        result(key, s * 1e3, "ms");
        snprintf(key, sizeof key, "prim.conv.%s.%s_tflops", name, pass[c.pass]);
        result(key, flop / s * 1e-12, "TFLOP/s");
    }
    be->free(be, c.x);
    be->free(be, c.w);
    be->free(be, c.y);
    be->free(be, c.ws);
}

typedef struct bn_ctx {
    sd_bn_desc d;
    float *x, *dx, *y, *gy, *dgy, *gx, *gamma, *beta, *dgamma, *mean, *invstd, *gg, *gb;
    int pass;
} bn_ctx;

static int bn_run(void *p)
{
    bn_ctx *b = p;
    switch (b->pass) {
    case 0:
        return be->bn_fwd_train(be, &be_err, &b->d, b->x, b->gamma, b->beta, b->y, b->mean,
                                b->invstd);
    case 1:
        return be->bn_bwd_train(be, &be_err, &b->d, b->x, b->gamma, b->mean, b->invstd, b->gy,
                                b->gx, b->gg, b->gb);
    case 2:
        return be->bn_fwd_tangent_train(be, &be_err, &b->d, b->x, b->dx, b->gamma, b->dgamma,
                                        b->beta, b->mean, b->invstd, b->y);
    default:
        return be->bn_bwd_tangent_train(be, &be_err, &b->d, b->x, b->dx, b->gamma, b->dgamma,
                                        b->mean, b->invstd, b->gy, b->dgy, b->gx, b->gg, b->gb);
    }
}

static void bench_bn(int n, int c, int hw, int reps)
{
    bn_ctx b = {.d = {n, c, hw, 1e-5}};
    size_t sz = (size_t)n * c * hw;
    b.x = drand(sz, -1, 1);
    b.dx = drand(sz, -1, 1);
    b.y = drand(sz, -1, 1);
    b.gy = drand(sz, -1, 1);
    b.dgy = drand(sz, -1, 1);
    b.gx = drand(sz, -1, 1);
    b.gamma = drand((size_t)c, 0.5, 1.5);
    b.beta = drand((size_t)c, -1, 1);
    b.dgamma = drand((size_t)c, -1, 1);
    b.mean = drand((size_t)c, 0, 1);
    b.invstd = drand((size_t)c, 0.5, 1);
    b.gg = drand((size_t)c, 0, 1);
    b.gb = drand((size_t)c, 0, 1);
    static const char *pass[4] = {"fwd_train", "bwd_train", "fwd_tangent", "bwd_tangent"};
    /* tensors read + written per pass, for an effective bandwidth */
    static const int touched[4] = {4, 4, 3, 6};
    for (b.pass = 0; b.pass < 4; b.pass++) {
        double s = timeit(bn_run, &b, reps);
        char key[96];
        snprintf(key, sizeof key, "prim.bn.%s_ms", pass[b.pass]);
        result(key, s * 1e3, "ms");
        snprintf(key, sizeof key, "prim.bn.%s_gbs", pass[b.pass]);
        result(key, touched[b.pass] * sz * 4.0 / s * 1e-9, "GB/s");
    }
    float *all[] = {b.x,    b.dx,     b.y,    b.gy,     b.dgy, b.gx, b.gamma,
                    b.beta, b.dgamma, b.mean, b.invstd, b.gg,  b.gb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        be->free(be, all[i]);
}

typedef struct pool_ctx {
    sd_pool_desc d;
    float *x, *y, *gx;
    int pass;
} pool_ctx;

static int pool_run(void *p)
{
    pool_ctx *c = p;
    if (c->pass == 0)
        return be->maxpool_fwd(be, &be_err, &c->d, c->x, c->y, NULL);
    if (c->pass == 1)
        return be->maxpool_bwd(be, &be_err, &c->d, c->x, NULL, c->y, c->gx);
    return be->maxpool_gather(be, &be_err, &c->d, c->x, NULL, c->gx, c->y);
}

typedef struct gemm_ctx {
    int m, n, k;
    float *a, *b, *c;
} gemm_ctx;

static int gemm_run(void *p)
{
    gemm_ctx *g = p;
    return be->gemm(be, &be_err, 0, 1, g->m, g->n, g->k, 1, g->a, g->k, g->b, g->k, 0, g->c, g->n);
}

typedef struct patch_ctx {
    uint16_t *pix;
    int64_t *off;
    int32_t *w, *idx;
    int n;
    float *out;
} patch_ctx;

static int patch_run(void *p)
{
    patch_ctx *c = p;
    return be->patch_gather(be, &be_err, c->pix, c->off, c->w, c->idx, c->n, 299, 299, 0.5, 0.25,
                            c->out);
}

/* A 2048x2048 16-bit image in backend memory and the index of its 35x35
 * patch grid (stride 50). */
static void make_image(patch_ctx *c)
{
    const int W = 2048, P = 299, S = 50, G = (W - P) / S + 1;
    uint16_t *h = malloc(sizeof(uint16_t) * W * W);
    if (!h)
        die("host memory");
    for (int i = 0; i < W * W; i++)
        h[i] = (uint16_t)(urand() * 65535);
    c->pix = dalloc(sizeof(uint16_t) * W * W);
    TRY("upload", be->upload(be, &be_err, c->pix, h, sizeof(uint16_t) * W * W));
    free(h);
    int64_t off = 0;
    int32_t w = W;
    c->off = dalloc(sizeof off);
    c->w = dalloc(sizeof w);
    TRY("upload", be->upload(be, &be_err, c->off, &off, sizeof off));
    TRY("upload", be->upload(be, &be_err, c->w, &w, sizeof w));
    c->n = G * G;
    int32_t *idx = malloc(sizeof(int32_t) * 3 * (size_t)c->n);
    if (!idx)
        die("host memory");
    for (int i = 0; i < c->n; i++) {
        idx[3 * i] = 0;
        idx[3 * i + 1] = (i / G) * S;
        idx[3 * i + 2] = (i % G) * S;
    }
    c->idx = dalloc(sizeof(int32_t) * 3 * (size_t)c->n);
    TRY("upload", be->upload(be, &be_err, c->idx, idx, sizeof(int32_t) * 3 * (size_t)c->n));
    free(idx);
}

static void bench_primitives(void)
{
    printf("primitives (ResNet18 shapes at 299x299, batch 256):\n");
    int reps = quick ? 3 : 10, n = quick ? 64 : 256;
    bench_conv("conv1_7x7s2", (sd_conv_desc){n, 1, 299, 299, 64, 7, 7, 2, 3, 150, 150}, reps);
    bench_conv("layer1_3x3", (sd_conv_desc){n, 64, 75, 75, 64, 3, 3, 1, 1, 75, 75}, reps);
    bench_conv("layer3_3x3", (sd_conv_desc){n, 256, 19, 19, 256, 3, 3, 1, 1, 19, 19}, reps);
    bench_bn(n, 64, 150 * 150, reps);

    pool_ctx pc = {0};
    pc.d = (sd_pool_desc){n, 64, 150, 150, 3, 3, 2, 2, 1, 1, 75, 75, 0, 0};
    size_t xs = (size_t)n * 64 * 150 * 150, ys = (size_t)n * 64 * 75 * 75;
    pc.x = drand(xs, -1, 1);
    pc.gx = drand(xs, -1, 1);
    pc.y = drand(ys, -1, 1);
    static const char *pass[3] = {"prim.maxpool.fwd_ms", "prim.maxpool.bwd_ms",
                                  "prim.maxpool.gather_ms"};
    for (pc.pass = 0; pc.pass < 3; pc.pass++)
        result(pass[pc.pass], timeit(pool_run, &pc, reps) * 1e3, "ms");
    be->free(be, pc.x);
    be->free(be, pc.gx);
    be->free(be, pc.y);

    gemm_ctx g = {4096, 4096, 4096, NULL, NULL, NULL};
    g.a = drand((size_t)g.m * g.k, -1, 1);
    g.b = drand((size_t)g.n * g.k, -1, 1);
    g.c = drand((size_t)g.m * g.n, -1, 1);
    double s = timeit(gemm_run, &g, reps);
    result("prim.gemm4096.tflops", 2.0 * g.m * g.n * (double)g.k / s * 1e-12, "TFLOP/s");
    be->free(be, g.a);
    be->free(be, g.b);
    be->free(be, g.c);

    patch_ctx p;
    make_image(&p);
    p.out = dalloc(sizeof(float) * (size_t)p.n * 299 * 299);
    s = timeit(patch_run, &p, reps);
    result("prim.patch_gather.patches_per_s", p.n / s, "patches/s");
    be->free(be, p.out);
    be->free(be, p.pix);
    be->free(be, p.off);
    be->free(be, p.w);
    be->free(be, p.idx);
}

/* ------------------------------------------------------------ model level */

static sd_model *make_model(const char *arch, int size)
{
    sd_error err = {0};
    sd_model_spec spec;
    memset(&spec, 0, sizeof spec);
    if (sd_model_spec_parse_arch(&spec, arch, &err))
        die(err.msg);
    spec.in_c = 1;
    spec.in_h = spec.in_w = size;
    spec.classes = 3;
    sd_model *m = NULL;
    if (sd_model_spec_normalize(&spec, &err) || sd_model_create(&m, &spec, &err)) {
        fprintf(stderr, "bench_gpu: %s: %s\n", arch, err.msg);
        exit(1);
    }
    return m;
}

typedef struct exec_ctx {
    sd_exec *ex;
    sd_exec_args a;
    float *v, *gth, *hv, *dgx, *dgy;
    int hvp;
} exec_ctx;

static int exec_run(void *p)
{
    exec_ctx *e = p;
    double loss;
    if (e->hvp)
        return sd_exec_hvp(e->ex, &e->a, e->v, &loss, e->gth, e->hv, e->dgx, e->dgy, &be_err);
    return sd_exec_loss_grad(e->ex, &e->a, &loss, e->gth, NULL, NULL, &be_err);
}

static void bench_model(const char *key, const char *arch, int size, int n)
{
    sd_error err = {0};
    sd_model *m = make_model(arch, size);
    exec_ctx e;
    memset(&e, 0, sizeof e);
    if (sd_exec_create(&e.ex, m, be, n, SD_EXEC_TANGENT, &err)) {
        /* e.g. out of memory at batch 256: report and go on */
        fprintf(stderr, "bench_gpu: exec %s (batch %d): %s\n", arch, n, err.msg);
        printf("RESULT model.%s.skipped 1 -\n", key);
        sd_model_destroy(m);
        return;
    }
    float *h = malloc(sizeof(float) * m->n_theta);
    if (!h || sd_init_theta(m, 1, h, &err))
        die("theta");
    float *th = dalloc(sizeof(float) * m->n_theta);
    TRY("upload", be->upload(be, &err, th, h, sizeof(float) * m->n_theta));
    free(h);
    size_t xs = (size_t)n * size * size;
    e.a.theta = th;
    e.a.bn_mode = SD_BN_BATCH;
    e.a.label_mode = SD_LABEL_SOFTMAX;
    e.a.x = drand(xs, -1, 1);
    e.a.y = drand((size_t)n * 3, -1, 1);
    e.a.n = n;
    e.v = drand(m->n_theta, -0.01, 0.01);
    e.gth = drand(m->n_theta, 0, 0);
    e.hv = drand(m->n_theta, 0, 0);
    e.dgx = drand(xs, 0, 0);
    e.dgy = drand((size_t)n * 3, 0, 0);
    int reps = quick ? 2 : 5;
    char k[96];
    e.hvp = 0;
    snprintf(k, sizeof k, "model.%s.fwd_bwd_s", key);
    result(k, timeit(exec_run, &e, reps), "s");
    e.hvp = 1;
    snprintf(k, sizeof k, "model.%s.hvp_s", key);
    result(k, timeit(exec_run, &e, reps), "s");
    float *all[] = {th, (float *)e.a.x, (float *)e.a.y, e.v, e.gth, e.hv, e.dgx, e.dgy};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        be->free(be, all[i]);
    sd_exec_destroy(e.ex);
    sd_model_destroy(m);
}

/* ------------------------------------------------------ outer iterations */

/* Real patches: a pool of random samples in backend memory; sample i is
 * pool entry i mod P (copied on the device). */
typedef struct pool_view {
    float *pool;
    int P;
    size_t per;
} pool_view;

static int pool_fetch(void *ctx, sd_backend *b, const int64_t *idx, int n, sd_real *x, int *labels,
                      sd_error *err)
{
    pool_view *pv = ctx;
    for (int i = 0; i < n; i++) {
        int64_t j = idx[i] % pv->P;
        if (b->copy(b, err, x + (size_t)i * pv->per, pv->pool + (size_t)j * pv->per,
                    pv->per * sizeof(float)))
            return sd_error_wrap_code(err, SD_EBACKEND, "pool fetch");
        labels[i] = (int)(idx[i] % 3);
    }
    return 0;
}

/* The progress callback sees the seconds since the start of the run after
 * every iteration: the stamps after the warm-up and after the last
 * iteration bracket the timed ones. */
typedef struct timing {
    int64_t warm;
    double t_warm, t_last;
} timing;

static int on_progress(void *ctx, const sd_progress *p)
{
    timing *t = ctx;
    if (p->iter == t->warm)
        t->t_warm = p->seconds;
    t->t_last = p->seconds;
    return 0;
}

/* cache_mib: the distiller's step cache (0: recompute the inner steps in the
 * walk back; -1: the default, 2 GiB) */
static void bench_outer(const char *key, const char *arch, int size, long cache_mib)
{
    sd_error err = {0};
    pool_view pv;
    pv.P = 512;
    pv.per = (size_t)size * size;
    pv.pool = drand((size_t)pv.P * pv.per, -1, 1);
    sd_data_view train;
    memset(&train, 0, sizeof train);
    train.count = 100000;
    train.c = 1;
    train.h = train.w = size;
    train.classes = 3;
    train.fetch = pool_fetch;
    train.ctx = &pv;

    sd_distill_config cfg;
    sd_distill_config_defaults(&cfg);
    if (sd_model_spec_parse_arch(&cfg.spec, arch, &err))
        die(err.msg);
    cfg.spec.in_c = 1;
    cfg.spec.in_h = cfg.spec.in_w = size;
    cfg.spec.classes = 3;
    if (sd_model_spec_normalize(&cfg.spec, &err))
        die(err.msg);
    cfg.steps = 1;
    cfg.images_per_step = 3;
    cfg.epochs_inner = 9; /* T = 9 */
    cfg.real_batch = quick ? 64 : 256;
    timing t = {1, 0, 0};
    int timed = quick ? 2 : 4;
    cfg.iterations = t.warm + timed;
    cfg.seed = 1;
    if (cache_mib >= 0)
        cfg.step_cache_bytes = (size_t)cache_mib << 20;

    sd_distiller *d = NULL;
    if (sd_distiller_create(&d, &cfg, be, &train, NULL, NULL, &err)) {
        fprintf(stderr, "bench_gpu: distiller %s: %s\n", arch, err.msg);
        exit(1);
    }
    if (sd_distiller_run(d, on_progress, &t)) {
        fprintf(stderr, "bench_gpu: distill %s: %s\n", arch, sd_distiller_error(d)->msg);
        exit(1);
    }
    char k[96];
    snprintf(k, sizeof k, "outer.%s.s_per_iter", key);
    result(k, (t.t_last - t.t_warm) / timed, "s");
    sd_distiller_destroy(d);
    be->free(be, pv.pool);
}

/* ------------------------------------------------------------- detection */

static void bench_detect(void)
{
    sd_error err = {0};
    const int bsz = quick ? 64 : 256;
    sd_model *m = make_model("resnet18-bn", 299);
    sd_exec *ex = NULL;
    if (sd_exec_create(&ex, m, be, bsz, 0, &err)) {
        fprintf(stderr, "bench_gpu: exec: %s\n", err.msg);
        exit(1);
    }
    float *h = malloc(sizeof(float) * (m->n_theta + m->n_bn));
    if (!h || sd_init_theta(m, 1, h, &err))
        die("theta");
    sd_init_theta_bn(m, h + m->n_theta);
    float *th = dalloc(sizeof(float) * m->n_theta), *bn = dalloc(sizeof(float) * m->n_bn);
    TRY("upload", be->upload(be, &err, th, h, sizeof(float) * m->n_theta));
    TRY("upload", be->upload(be, &err, bn, h + m->n_theta, sizeof(float) * m->n_bn));
    free(h);
    patch_ctx p;
    make_image(&p);
    float *x = dalloc(sizeof(float) * (size_t)bsz * 299 * 299);
    int *cls = malloc(sizeof(int) * (size_t)bsz);
    if (!cls)
        die("host memory");
    sd_exec_args a;
    memset(&a, 0, sizeof a);
    a.theta = th;
    a.theta_bn = bn;
    a.bn_mode = SD_BN_FROZEN;
    a.x = x;
    int images = quick ? 1 : 3, total = 0;
    double t0 = 0;
    for (int it = -1; it < images; it++) { /* it = -1: warm-up image */
        if (it == 0) {
            TRY("sync", be->sync(be, &err));
            t0 = now();
        }
        for (int s = 0; s < p.n; s += bsz) {
            int nb = p.n - s < bsz ? p.n - s : bsz;
            TRY("patch_gather", be->patch_gather(be, &err, p.pix, p.off, p.w, p.idx + 3 * s, nb,
                                                 299, 299, 0.5, 0.25, x));
            a.n = nb;
            TRY("predict", sd_exec_predict(ex, &a, cls, NULL, &err));
            if (it >= 0)
                total += nb;
        }
    }
    double s = now() - t0;
    result("detect.resnet18.patches_per_s", total / s, "patches/s");
    be->free(be, x);
    be->free(be, th);
    be->free(be, bn);
    be->free(be, p.pix);
    be->free(be, p.off);
    be->free(be, p.w);
    be->free(be, p.idx);
    free(cls);
    sd_exec_destroy(ex);
    sd_model_destroy(m);
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    int det = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
            mode_name = argv[++i];
            det = strcmp(mode_name, "fast") != 0;
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_gpu [--quick] [--mode det|fast] "
                            "[--only prim|model|outer|detect]\n");
            return 2;
        }
    }
    sd_error err = {0};
    if (sg_backend_cuda_create(&be, 0, det, &err)) {
        fprintf(stderr, "bench_gpu: %s\n", err.msg);
        return err.code == SD_EUNSUPPORTED ? 77 : 1;
    }
    char desc[512];
    sg_backend_describe(be, desc, sizeof desc);
    printf("device: %s\n", desc);
    printf("RESULT mode %s -\n", mode_name);
    if (!only || !strcmp(only, "prim"))
        bench_primitives();
    if (!only || !strcmp(only, "model")) {
        int n = quick ? 64 : 256;
        printf("model passes (batch %d):\n", n);
        bench_model("convnet_bn_64", "convnet-bn", 64, n);
        bench_model("resnet18_bn_299", "resnet18-bn", 299, n);
    }
    if (!only || !strcmp(only, "outer")) {
        printf("SLDD outer iterations (3 images, T = 9, real batch %d):\n", quick ? 64 : 256);
        bench_outer("convnet_bn_64", "convnet-bn", 64, -1);
        bench_outer("resnet18_bn_299", "resnet18-bn", 299, -1);
        /* the other side of the step cache: recomputing (ConvNet-BN keeps its
         * steps by default) and keeping (ResNet18 at 299 needs ~3 GB) */
        bench_outer("convnet_bn_64_recompute", "convnet-bn", 64, 0);
        bench_outer("resnet18_bn_299_kept", "resnet18-bn", 299, 16384);
    }
    if (!only || !strcmp(only, "detect")) {
        printf("detection (ResNet18-BN, 299x299 patches cut on the GPU):\n");
        bench_detect();
    }
    sd_backend_destroy(be);
    return 0;
}
