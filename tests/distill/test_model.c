/*
 * test_model.c - the architectures and initial weights (float32 build):
 *  - parameter counts: the paper's Table 6 (AlexNet 57,000,643, VGG16
 *    134,271,683, VGG19 139,581,379 for 1 channel, 3 classes) and
 *    torchvision's counts for the other models;
 *  - Philox4x32-10 known-answer vectors (Random123);
 *  - pinned SHA-256 of theta_0 for two (model, seed) pairs, so every machine
 *    and backend rebuilds the same bytes;
 *  - loss, gradient, Hessian-vector product and mixed derivatives against the
 *    PyTorch reference files (scripts/ref/make-reference.py), relative error
 *    <= 1e-4 per tensor in float32;
 *  - batch shards (sd_model.c): the same bits with 1, 2 and 3 threads, and
 *    sd_exec_hvp_cached on kept slots gives the bits of sd_exec_hvp.
 */
#include <stdlib.h>
#include <string.h>

#include "../sd_test.h"
#include "sd_init.h"
#include "sd_model.h"
#include "sd_testutil.h"

/* Pinned once and never to change: a different value means receivers can no
 * longer rebuild the weights of bundles made by earlier versions. */
#define LENET_SEED0_SHA256       "dd37d4aeeb5dcf49721fe09e64a74ec7c865c20e831821239b0b72bb2643697f"
#define CONVNET_SEED12345_SHA256 "3f4c0cb3912592d699eb92cf3493b9e980c496a6218f402df661ae11e8d501f3"

static size_t count(const char *arch, int c, int size, int k)
{
    sd_error err = {0};
    sd_model_spec spec = {.in_c = c, .in_h = size, .in_w = size, .classes = k};
    sd_model *m = NULL;
    if (sd_model_spec_parse_arch(&spec, arch, &err) || sd_model_create(&m, &spec, &err)) {
        fprintf(stderr, "%s: %s\n", arch, err.msg);
        return 0;
    }
    size_t n = m->n_theta;
    sd_model_destroy(m);
    return n;
}

static void test_counts(void)
{
    /* the paper's Table 6 */
    CHECK(count("alexnet", 1, 299, 3) == 57000643);
    CHECK(count("vgg16", 1, 299, 3) == 134271683);
    CHECK(count("vgg19", 1, 299, 3) == 139581379);
    /* torchvision with its default 3 channels and 1000 classes */
    CHECK(count("alexnet", 3, 224, 1000) == 61100840);
    CHECK(count("vgg16", 3, 224, 1000) == 138357544);
    CHECK(count("vgg16-bn", 3, 224, 1000) == 138365992);
    CHECK(count("vgg19", 3, 224, 1000) == 143667240);
    CHECK(count("resnet18-bn", 3, 224, 1000) == 11689512);
    CHECK(count("resnet34-bn", 3, 224, 1000) == 21797672);
    CHECK(count("googlenet-bn", 3, 224, 1000) == 6624904);
    /* LeNet-5 on 28x28 with 10 classes */
    CHECK(count("lenet", 1, 28, 10) == 61706);
}

static void test_philox(void)
{
    /* Random123 kat_vectors: philox4x32 10 rounds */
    uint32_t out[4];
    sd_philox4x32((const uint32_t[4]){0, 0, 0, 0}, (const uint32_t[2]){0, 0}, out);
    CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu &&
          out[3] == 0x9b00dbd8u);
    sd_philox4x32((const uint32_t[4]){0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                  (const uint32_t[2]){0xffffffffu, 0xffffffffu}, out);
    CHECK(out[0] == 0x408f276du && out[1] == 0x41c83b0eu && out[2] == 0xa20bc7c6u &&
          out[3] == 0x6d5451fdu);
    sd_philox4x32((const uint32_t[4]){0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                  (const uint32_t[2]){0xa4093822u, 0x299f31d0u}, out);
    CHECK(out[0] == 0xd16cfe09u && out[1] == 0x94fdccebu && out[2] == 0x5001e420u &&
          out[3] == 0x24126ea1u);
}

static void theta_hash(const char *arch, int c, int size, int k, uint64_t seed, char hex[65])
{
    sd_error err = {0};
    sd_model_spec spec = {.in_c = c, .in_h = size, .in_w = size, .classes = k};
    sd_model *m = NULL;
    hex[0] = '\0';
    if (sd_model_spec_parse_arch(&spec, arch, &err) || sd_model_create(&m, &spec, &err))
        return;
    sd_real *theta = malloc(m->n_theta * sizeof *theta);
    uint8_t h[32];
    if (theta && !sd_init_theta(m, seed, theta, &err) &&
        !sd_theta_sha256(theta, m->n_theta, h, &err))
        sd_hex(h, 32, hex);
    free(theta);
    sd_model_destroy(m);
}

static void test_theta_hash(void)
{
    char hex[65];
    theta_hash("lenet", 1, 28, 10, 0, hex);
    printf("theta_0 sha256 lenet(1x28x28,10) seed 0: %s\n", hex);
    CHECK(!strcmp(hex, LENET_SEED0_SHA256));
    theta_hash("convnet-bn", 1, 64, 3, 12345, hex);
    printf("theta_0 sha256 convnet-bn(1x64x64,3) seed 12345: %s\n", hex);
    CHECK(!strcmp(hex, CONVNET_SEED12345_SHA256));
}

static void test_reference(const char *path, const char *arch, int c, int size, int k, int depth,
                           int width)
{
    ref_file r;
    if (ref_load(&r, path)) {
        CHECK(0);
        return;
    }
    sd_error err = {0};
    sd_model_spec spec = {
        .in_c = c, .in_h = size, .in_w = size, .classes = k, .depth = depth, .width = width};
    sd_model *m = NULL;
    sd_backend *be = NULL;
    sd_exec *ex = NULL;
    CHECK(sd_model_spec_parse_arch(&spec, arch, &err) == 0);
    CHECK(sd_model_create(&m, &spec, &err) == 0);
    CHECK(sd_backend_cpu_create(&be, 0, &err) == 0);
    const ref_tensor *th = ref_get(&r, "theta"), *x = ref_get(&r, "x"), *y = ref_get(&r, "y"),
                     *v = ref_get(&r, "v"), *loss = ref_get(&r, "loss"),
                     *g = ref_get(&r, "grad_theta"), *hv = ref_get(&r, "hv"),
                     *dgx = ref_get(&r, "dgx"), *dgy = ref_get(&r, "dgy");
    if (!m || !be || !th || !x || !y || !v || !loss || !g || !hv || !dgx || !dgy ||
        th->n != m->n_theta) {
        fprintf(stderr, "%s: reference does not match the model\n", path);
        CHECK(0);
        goto out;
    }
    int n = (int)(y->n / (size_t)k);
    CHECK(sd_exec_create(&ex, m, be, n, SD_EXEC_TANGENT, &err) == 0);
    sd_real *gt = calloc(m->n_theta, sizeof *gt), *h = calloc(m->n_theta, sizeof *h),
            *mx = calloc(x->n, sizeof *mx), *my = calloc(y->n, sizeof *my);
    sd_exec_args a = {th->data, NULL, SD_BN_BATCH, SD_LABEL_SOFTMAX, x->data, y->data, n};
    double l = 0;
    CHECKF(sd_exec_hvp(ex, &a, v->data, &l, gt, h, mx, my, &err) == 0, "%s", err.msg);
    double el = fabs(l - loss->data[0]) / fabs(loss->data[0]);
    double eg = relerr_vec(gt, g->data, g->n), eh = relerr_vec(h, hv->data, hv->n),
           ex_ = relerr_vec(mx, dgx->data, dgx->n), ey = relerr_vec(my, dgy->data, dgy->n);
    printf("| %-10s | %.1e | %.1e | %.1e | %.1e | %.1e |\n", arch, el, eg, eh, ex_, ey);
    CHECKF(el <= 1e-4, "%s loss %g", arch, el);
    CHECKF(eg <= 1e-4, "%s grad %g", arch, eg);
    CHECKF(eh <= 1e-4, "%s hv %g", arch, eh);
    CHECKF(ex_ <= 1e-4, "%s dgx %g", arch, ex_);
    CHECKF(ey <= 1e-4, "%s dgy %g", arch, ey);
    free(gt);
    free(h);
    free(mx);
    free(my);
out:
    sd_exec_destroy(ex);
    sd_backend_destroy(be);
    sd_model_destroy(m);
    ref_free(&r);
}

/* Everything one call computes on a model, for batches of n. */
typedef struct calls {
    size_t nt;
    double l1, l2;
    sd_real *g, *gx, *gy, *g2, *hv, *dgx, *dgy, *hvc, *dgxc, *dgyc, *logits;
    int shards;
    size_t n_bn;
    double *bn; /* batch statistics after the last forward (n_bn) */
} calls;

/* threads 0: one thread and a backend without be->parallel, so the exec
 * runs unsharded; -1: one thread and a backend without relu_mask_set, so
 * every gradient buffer is zeroed and accumulated into */
static void run_calls(const char *arch, int size, int threads, int n, calls *o)
{
    sd_error err = {0};
    sd_model_spec spec = {
        .in_c = 1, .in_h = size, .in_w = size, .classes = 10, .depth = 2, .width = 16};
    sd_model *m = NULL;
    sd_backend *be = NULL;
    sd_exec *ex = NULL;
    CHECK(sd_model_spec_parse_arch(&spec, arch, &err) == 0);
    CHECK(sd_model_create(&m, &spec, &err) == 0);
    CHECK(sd_backend_cpu_create(&be, threads > 0 ? threads : 1, &err) == 0);
    if (be && threads == 0)
        be->parallel = NULL;
    if (be && threads < 0)
        be->relu_mask_set = NULL;
    CHECK(sd_exec_create_slots(&ex, m, be, n, SD_EXEC_TANGENT, 2, &err) == 0);
    if (!m || !be || !ex)
        return;
    o->nt = m->n_theta;
    o->shards = sd_exec_shards(ex);
    size_t nt = m->n_theta, nx = (size_t)n * (size_t)(size * size), ny = (size_t)n * 10;
    sd_real *th = malloc(nt * sizeof *th), *v = malloc(nt * sizeof *v), *x = malloc(nx * sizeof *x),
            *y = malloc(ny * sizeof *y), *x2 = malloc(nx * sizeof *x2);
    CHECK(sd_init_theta(m, 3, th, &err) == 0);
    fill_rand(v, nt, 4, 0.01);
    fill_rand(x, nx, 5, 1.0);
    fill_rand(x2, nx, 7, 1.0);
    fill_rand(y, ny, 6, 1.0);
    sd_real **bufs[] = {&o->g,   &o->gx,  &o->gy,   &o->g2,   &o->hv,    &o->dgx,
                        &o->dgy, &o->hvc, &o->dgxc, &o->dgyc, &o->logits};
    size_t sizes[] = {nt, nx, ny, nt, nt, nx, ny, nt, nx, ny, ny};
    for (int i = 0; i < 11; i++)
        *bufs[i] = calloc(sizes[i], sizeof(sd_real));
    sd_exec_args a = {th, NULL, SD_BN_BATCH, SD_LABEL_SOFTMAX, x, y, n};
    sd_exec_args b = a;
    b.x = x2;
    /* slot 0 keeps (a), slot 1 (b); then the tangents of slot 0 from its kept state */
    CHECK(sd_exec_use_slot(ex, 0, &err) == 0);
    CHECK(sd_exec_loss_grad(ex, &a, &o->l1, o->g, o->gx, o->gy, &err) == 0);
    CHECK(sd_exec_use_slot(ex, 1, &err) == 0);
    CHECK(sd_exec_loss_grad(ex, &b, NULL, o->g2, NULL, NULL, &err) == 0);
    CHECK(sd_exec_use_slot(ex, 0, &err) == 0);
    CHECK(sd_exec_hvp_cached(ex, &a, v, o->hvc, o->dgxc, o->dgyc, &err) == 0);
    CHECK(sd_exec_hvp_cached(ex, &b, v, o->hvc, NULL, NULL, &err) != 0); /* slot 0 holds (a) */
    CHECK(sd_exec_hvp(ex, &a, v, &o->l2, NULL, o->hv, o->dgx, o->dgy, &err) == 0);
    CHECK(sd_exec_forward(ex, &a, &err) == 0);
    memcpy(o->logits, sd_exec_logits(ex), ny * sizeof(sd_real));
    o->n_bn = m->n_bn;
    o->bn = calloc(m->n_bn + 1, sizeof *o->bn);
    CHECK(o->bn && sd_exec_bn_batch_stats(ex, o->bn, &err) == 0);
    free(th);
    free(v);
    free(x);
    free(x2);
    free(y);
    sd_exec_destroy(ex);
    sd_backend_destroy(be);
    sd_model_destroy(m);
}

static void free_calls(calls *o)
{
    sd_real *bufs[] = {o->g,   o->gx,  o->gy,   o->g2,   o->hv,    o->dgx,
                       o->dgy, o->hvc, o->dgxc, o->dgyc, o->logits};
    for (int i = 0; i < 11; i++)
        free(bufs[i]);
    free(o->bn);
}

/* The ReLU that writes its input gradient (=) where it is the only writer
 * gives the same bits as zeroing that gradient and adding to it: every
 * output of every call, LeNet, ConvNet-BN and ResNet18-BN (a ReLU feeding a
 * residual sum, two writers: zeroed as before). */
static void test_relu_set_bits(void)
{
    const struct {
        const char *arch;
        int size, n;
    } cases[] = {{"lenet", 28, 10}, {"convnet-bn", 32, 8}, {"resnet18-bn", 32, 4}};
    for (int k = 0; k < 3; k++) {
        int n = cases[k].n, size = cases[k].size;
        calls c[2];
        run_calls(cases[k].arch, size, 1, n, &c[0]);
        run_calls(cases[k].arch, size, -1, n, &c[1]);
        size_t nt = c[0].nt, nx = (size_t)n * (size_t)(size * size), ny = (size_t)n * 10,
               B = sizeof(sd_real);
        CHECKF(c[1].l1 == c[0].l1 && c[1].l2 == c[0].l2 && !memcmp(c[1].g, c[0].g, nt * B) &&
                   !memcmp(c[1].gx, c[0].gx, nx * B) && !memcmp(c[1].gy, c[0].gy, ny * B) &&
                   !memcmp(c[1].hv, c[0].hv, nt * B) && !memcmp(c[1].dgx, c[0].dgx, nx * B) &&
                   !memcmp(c[1].dgy, c[0].dgy, ny * B) && !memcmp(c[1].hvc, c[0].hvc, nt * B) &&
                   !memcmp(c[1].logits, c[0].logits, ny * B),
               "%s n %d: ReLU writing its gradient differs from zeroing and adding", cases[k].arch,
               n);
        free_calls(&c[0]);
        free_calls(&c[1]);
    }
}

/* Same bits with 1, 2 and 3 threads: LeNet runs as batch shards at n = 10
 * and 37; the batch-norm models too, in batch mode, their statistics joined
 * from per-shard sums in shard order (ConvNet-BN at n = 64 as 8 shards, at
 * 37 as 8 of 4 or 5 samples, ResNet18-BN at 9 as 2), and they stay close to
 * the same calls unsharded (the sums in another order). */
static void test_shards(void)
{
    const struct {
        const char *arch;
        int size, n, shards;
    } cases[] = {{"lenet", 28, 10, 2},
                 {"lenet", 28, 37, 8},
                 {"convnet-bn", 32, 64, 8},
                 {"convnet-bn", 32, 37, 8},
                 {"resnet18-bn", 32, 9, 2}};
    for (int k = 0; k < 5; k++) {
        int n = cases[k].n, size = cases[k].size;
        calls c[4];
        for (int t = 0; t < 4; t++)
            run_calls(cases[k].arch, size, t < 3 ? t + 1 : 0, n, &c[t]);
        CHECKF(c[0].shards == cases[k].shards && c[3].shards == 1, "%s n %d: %d shards, want %d",
               cases[k].arch, n, c[0].shards, cases[k].shards);
        size_t nt = c[0].nt, nx = (size_t)n * (size_t)(size * size), ny = (size_t)n * 10,
               B = sizeof(sd_real);
        for (int t = 1; t < 3; t++) {
            CHECKF(c[t].l1 == c[0].l1 && c[t].l2 == c[0].l2, "%s n %d threads %d: loss",
                   cases[k].arch, n, t + 1);
            CHECKF(!memcmp(c[t].g, c[0].g, nt * B) && !memcmp(c[t].gx, c[0].gx, nx * B) &&
                       !memcmp(c[t].gy, c[0].gy, ny * B) && !memcmp(c[t].hv, c[0].hv, nt * B) &&
                       !memcmp(c[t].dgx, c[0].dgx, nx * B) && !memcmp(c[t].dgy, c[0].dgy, ny * B) &&
                       !memcmp(c[t].logits, c[0].logits, ny * B),
                   "%s n %d: %d threads differ from 1", cases[k].arch, n, t + 1);
        }
        /* kept state: the tangents equal a full recomputation, bit for bit */
        CHECKF(!memcmp(c[0].hvc, c[0].hv, nt * B) && !memcmp(c[0].dgxc, c[0].dgx, nx * B) &&
                   !memcmp(c[0].dgyc, c[0].dgy, ny * B),
               "%s n %d: hvp_cached differs from hvp", cases[k].arch, n);
        CHECK(c[0].l1 == c[0].l2);
        /* sharded against unsharded: float32 sums in another order (seen up to
         * 2.5e-6 relative, ResNet18-BN; a wrong join term is O(1)) */
        double e = fmax(fmax(relerr_vec(c[0].g, c[3].g, nt), relerr_vec(c[0].hv, c[3].hv, nt)),
                        fmax(relerr_vec(c[0].dgx, c[3].dgx, nx), relerr_vec(c[0].gx, c[3].gx, nx)));
        e = fmax(e, fabs(c[0].l1 - c[3].l1) / fabs(c[3].l1));
        /* the batch statistics a sharded exec reports are the whole batch's
         * (normwise, like relerr_vec: the means and variances as stored in
         * float differ in the last bits) */
        double bd = 0, bm = 0;
        for (size_t i = 0; i < c[0].n_bn; i++) {
            bd = fmax(bd, fabs(c[0].bn[i] - c[3].bn[i]));
            bm = fmax(bm, fabs(c[3].bn[i]));
        }
        e = fmax(e, bm > 0 ? bd / bm : bd);
        for (int t = 1; t < 3; t++)
            CHECKF(!memcmp(c[t].bn, c[0].bn, c[0].n_bn * sizeof(double)),
                   "%s n %d: batch statistics with %d threads differ", cases[k].arch, n, t + 1);
        printf("%s n %d: %d shards, sharded vs unsharded max rel. difference %.1e\n", cases[k].arch,
               n, c[0].shards, e);
        CHECKF(e < 2e-5, "%s n %d: sharded vs unsharded %g", cases[k].arch, n, e);
        for (int t = 0; t < 4; t++)
            free_calls(&c[t]);
    }
}

/* Inference execs shard batch-norm models too (frozen statistics make the
 * samples independent): the same logits with 1, 2 and 3 threads, close to
 * an unsharded exec's, and batch-statistics calls refused. */
static void test_inference_shards(void)
{
    enum { N = 37 };
    sd_error err = {0};
    sd_model_spec spec = {.in_c = 1, .in_h = 16, .in_w = 16, .classes = 3, .depth = 2, .width = 8};
    sd_model *m = NULL;
    CHECK(sd_model_spec_parse_arch(&spec, "convnet-bn", &err) == 0);
    CHECK(sd_model_create(&m, &spec, &err) == 0);
    if (!m)
        return;
    size_t nt = m->n_theta, nx = (size_t)N * 256;
    sd_real *th = malloc(nt * sizeof *th), *x = malloc(nx * sizeof *x),
            *bn = malloc(m->n_bn * sizeof *bn), z[4][N * 3];
    CHECK(sd_init_theta(m, 8, th, &err) == 0);
    fill_rand(x, nx, 9, 1.0);
    for (size_t i = 0; i < m->n_bn; i++) /* means near 0, variances near 1 */
        bn[i] = (sd_real)(0.1 * sd_normal(10, 0, i)) + ((i / 8) % 2 ? 1 : 0);
    sd_exec_args a = {th, bn, SD_BN_FROZEN, SD_LABEL_RAW, x, NULL, N};
    for (int k = 0; k < 4; k++) { /* k < 3: inference exec, k + 1 threads; 3: plain */
        sd_backend *be = NULL;
        sd_exec *ex = NULL;
        CHECK(sd_backend_cpu_create(&be, k < 3 ? k + 1 : 2, &err) == 0);
        CHECK(sd_exec_create(&ex, m, be, N, k < 3 ? SD_EXEC_INFERENCE : 0, &err) == 0);
        if (!be || !ex)
            return;
        CHECK(sd_exec_forward(ex, &a, &err) == 0);
        memcpy(z[k], sd_exec_logits(ex), sizeof z[k]);
        if (k < 3) {
            sd_exec_args b = a;
            b.bn_mode = SD_BN_BATCH;
            CHECK(sd_exec_forward(ex, &b, &err) == SD_EINVAL);
        }
        sd_exec_destroy(ex);
        sd_backend_destroy(be);
    }
    CHECK(!memcmp(z[0], z[1], sizeof z[0]) && !memcmp(z[0], z[2], sizeof z[0]));
    CHECKF(relerr_vec(z[0], z[3], N * 3) < 1e-5, "sharded vs plain logits %g",
           relerr_vec(z[0], z[3], N * 3));
    free(th);
    free(x);
    free(bn);
    sd_model_destroy(m);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/data";
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/ref_lenet.bin", dir);
    snprintf(p2, sizeof p2, "%s/ref_convnet_bn.bin", dir);
    test_counts();
    test_philox();
    test_theta_hash();
    printf("| model | loss | grad θ | Hv | ∂x⟨v,∇θ⟩ | ∂y⟨v,∇θ⟩ |\n|---|---|---|---|---|---|\n");
    test_reference(p1, "lenet", 1, 28, 10, 0, 0);
    test_reference(p2, "convnet-bn", 1, 16, 3, 2, 8);
    test_shards();
    test_inference_shards();
    test_relu_set_bits();
    return sd_test_finish();
}
