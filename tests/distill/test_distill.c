/*
 * test_distill.c - the meta-gradient of a whole unrolled distillation run.
 *
 * Tiny problem (ConvNet-BN depth 1 width 4 on 1x8x8, K=3, S=2 steps of n=2
 * images, E=2, so T=4 inner steps; soft labels q=softmax(y); outer loss on 6
 * real samples), built from tests/data/ref_meta.bin (scripts/ref/make-reference.py):
 *  - built as float32 (test_distill): loss and dL/dx, dL/dy, dL/drho match the
 *    PyTorch double-backward reference within 1e-4 relative error per tensor;
 *  - built as float64 (test_distill_fd): they match central finite differences
 *    of the outer loss along random directions within 1e-6.
 * Also checks (float32 build only) that checkpoint + resume gives the same
 * result as an uninterrupted run, that two replays of one result give
 * bit-identical theta_T, and that a wrong theta_0 hash is refused.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../sd_test.h"
#include "sd_dataview.h"
#include "sd_distill.h"
#include "sd_init.h"
#include "sd_testutil.h"

typedef struct fixture {
    ref_file r;
    sd_backend *be;
    sd_array_data arr;
    sd_data_view view;
    int32_t *labels;
    sd_real *xr;
    sd_distiller *d;
    sd_distill_config cfg;
} fixture;

/* step_cache_bytes for the next setup (the default keeps the inner steps) */
static size_t setup_cache_bytes = (size_t)-1;

static int setup(fixture *f, const char *dir, const char *ckpt, const char *resume)
{
    char path[512];
    snprintf(path, sizeof path, "%s/ref_meta.bin", dir);
    memset(f, 0, sizeof *f);
    if (ref_load(&f->r, path))
        return -1;
    sd_error err = {0};
    if (sd_backend_cpu_create(&f->be, 1, &err))
        return -1;
    const ref_tensor *xr = ref_get(&f->r, "xr"), *lr = ref_get(&f->r, "lr");
    f->labels = malloc(lr->n * sizeof *f->labels);
    f->xr = malloc(xr->n * sizeof *f->xr);
    for (size_t i = 0; i < lr->n; i++)
        f->labels[i] = (int32_t)lr->data[i];
    for (size_t i = 0; i < xr->n; i++)
        f->xr[i] = xr->data[i];
    f->arr = (sd_array_data){.x = f->xr,
                             .labels = f->labels,
                             .count = (int64_t)lr->n,
                             .c = 1,
                             .h = 8,
                             .w = 8,
                             .classes = 3};
    sd_data_view_array(&f->view, &f->arr);
    sd_distill_config_defaults(&f->cfg);
    snprintf(f->cfg.spec.arch, sizeof f->cfg.spec.arch, "convnet");
    f->cfg.spec.bn = 1;
    f->cfg.spec.depth = 1;
    f->cfg.spec.width = 4;
    f->cfg.steps = 2;
    f->cfg.images_per_step = 2;
    f->cfg.epochs_inner = 2;
    f->cfg.real_batch = 6;
    f->cfg.iterations = 6;
    f->cfg.checkpoint_path = ckpt;
    f->cfg.checkpoint_every = ckpt ? 3 : 0;
    if (setup_cache_bytes != (size_t)-1)
        f->cfg.step_cache_bytes = setup_cache_bytes;
    if (sd_distiller_create(&f->d, &f->cfg, f->be, &f->view, NULL, resume, &err)) {
        fprintf(stderr, "distiller: %s\n", err.msg);
        return -1;
    }
    const ref_tensor *th = ref_get(&f->r, "theta0"), *x = ref_get(&f->r, "x"),
                     *y = ref_get(&f->r, "y"), *rho = ref_get(&f->r, "rho");
    double rh[4];
    for (int i = 0; i < 4; i++)
        rh[i] = rho->data[i];
    if (sd_distiller_set_theta0(f->d, th->data) ||
        (!resume && sd_distiller_set(f->d, x->data, y->data, rh))) {
        fprintf(stderr, "set: %s\n", sd_distiller_error(f->d)->msg);
        return -1;
    }
    return 0;
}

static void teardown(fixture *f)
{
    sd_distiller_destroy(f->d);
    sd_backend_destroy(f->be);
    sd_array_data_free(&f->arr);
    free(f->labels);
    free(f->xr);
    ref_free(&f->r);
}

#ifdef SD_REAL_DOUBLE
static double loss_now(fixture *f, const double *rho)
{
    double l = 0;
    if (sd_distiller_set(f->d, NULL, NULL, rho) ||
        sd_distiller_meta_gradient(f->d, &l, NULL, NULL, NULL))
        fprintf(stderr, "loss: %s\n", sd_distiller_error(f->d)->msg);
    return l;
}

static void test_fd(const char *dir)
{
    fixture f;
    if (setup(&f, dir, NULL, NULL)) {
        CHECK(0);
        return;
    }
    const ref_tensor *rt = ref_get(&f.r, "rho");
    sd_real *x, *y; /* CPU backend: host memory, perturbed in double */
    sd_distiller_data_ptr(f.d, &x, &y);
    size_t nx = 4 * 64, ny = 4 * 3;
    float gx[4 * 64], gy[12];
    double grho[4], rho[4], l0;
    CHECK(sd_distiller_meta_gradient(f.d, &l0, gx, gy, grho) == 0);
    for (int i = 0; i < 4; i++)
        rho[i] = rt->data[i];
    /* the float copies of the gradients lose nothing that matters at 1e-6 */
    const double h = 1e-6;
    sd_real w[4 * 64];
    double e[3];
    for (int which = 0; which < 3; which++) {
        size_t n = which == 0 ? nx : which == 1 ? ny : 4;
        sd_real *p = which == 0 ? x : which == 1 ? y : NULL;
        fill_rand(w, n, 40 + (uint64_t)which, 1.0);
        double lp = 0, lm = 0, an = 0, rr[4];
        for (int sgn = 1; sgn >= -1; sgn -= 2) {
            memcpy(rr, rho, sizeof rr);
            for (size_t i = 0; i < n; i++) {
                if (p)
                    p[i] += (sd_real)(sgn * h * w[i]);
                else
                    rr[i] += sgn * h * w[i];
            }
            double l = loss_now(&f, rr);
            for (size_t i = 0; p && i < n; i++)
                p[i] -= (sd_real)(sgn * h * w[i]);
            if (sgn > 0)
                lp = l;
            else
                lm = l;
        }
        double fd = (lp - lm) / (2 * h);
        for (size_t i = 0; i < n; i++)
            an += (which == 0 ? gx[i] : which == 1 ? gy[i] : grho[i]) * (double)w[i];
        e[which] = fabs(an - fd) / fmax(fabs(fd), 1e-12);
    }
    printf("meta-gradient vs finite differences (float64): images %.1e, labels %.1e, step sizes "
           "%.1e\n",
           e[0], e[1], e[2]);
    /* the analytic side went through float copies: allow 1e-6 */
    CHECKF(e[0] < 1e-6, "images %g", e[0]);
    CHECKF(e[1] < 1e-6, "labels %g", e[1]);
    CHECKF(e[2] < 1e-6, "step sizes %g", e[2]);
    teardown(&f);
}
#else
static void test_reference(const char *dir)
{
    fixture f;
    if (setup(&f, dir, NULL, NULL)) {
        CHECK(0);
        return;
    }
    const ref_tensor *gxr = ref_get(&f.r, "gx"), *gyr = ref_get(&f.r, "gy"),
                     *grr = ref_get(&f.r, "grho"), *lr = ref_get(&f.r, "loss");
    float *gx = malloc(gxr->n * sizeof *gx), *gy = malloc(gyr->n * sizeof *gy);
    double grho[4], l;
    CHECK(sd_distiller_meta_gradient(f.d, &l, gx, gy, grho) == 0);
    sd_real g4[4];
    for (int i = 0; i < 4; i++)
        g4[i] = (sd_real)grho[i];
    double el = fabs(l - lr->data[0]) / fabs(lr->data[0]), ex = relerr_vec(gx, gxr->data, gxr->n),
           ey = relerr_vec(gy, gyr->data, gyr->n), er = relerr_vec(g4, grr->data, 4);
    printf("meta-gradient vs PyTorch (float32): loss %.1e, images %.1e, labels %.1e, step sizes "
           "%.1e\n",
           el, ex, ey, er);
    CHECK(el <= 1e-4);
    CHECKF(ex <= 1e-4, "images %g", ex);
    CHECKF(ey <= 1e-4, "labels %g", ey);
    CHECKF(er <= 1e-4, "step sizes %g", er);
    free(gx);
    free(gy);
    teardown(&f);
}

/* Keeping the inner steps' forward and backward for the walk back
 * (sd_exec_hvp_cached) gives the same bits as recomputing them (sd_exec_hvp),
 * over several outer iterations. */
static void test_step_cache(const char *dir)
{
    enum { NX = 4 * 64, NY = 12 };
    float gx[2][NX], gy[2][NY], x[2][NX];
    double grho[2][4], l[2];
    for (int k = 0; k < 2; k++) {
        fixture f;
        setup_cache_bytes = k ? 0 : (size_t)-1;
        if (setup(&f, dir, NULL, NULL)) {
            CHECK(0);
            return;
        }
        CHECK(sd_distiller_meta_gradient(f.d, &l[k], gx[k], gy[k], grho[k]) == 0);
        CHECK(sd_distiller_run(f.d, NULL, NULL) == 0);
        CHECK(sd_distiller_get(f.d, x[k], NULL, NULL) == 0);
        teardown(&f);
    }
    setup_cache_bytes = (size_t)-1;
    CHECK(l[0] == l[1]);
    CHECK(memcmp(gx[0], gx[1], sizeof gx[0]) == 0);
    CHECK(memcmp(gy[0], gy[1], sizeof gy[0]) == 0);
    CHECK(memcmp(grho[0], grho[1], sizeof grho[0]) == 0);
    CHECK(memcmp(x[0], x[1], sizeof x[0]) == 0); /* after 6 outer iterations */
}

/* Algorithm 2 twice on one exported result: bit-identical theta_T. */
static void test_replay_deterministic(const char *dir)
{
    fixture f;
    if (setup(&f, dir, NULL, NULL)) {
        CHECK(0);
        return;
    }
    sd_distilled res = {0};
    CHECK(sd_distiller_run(f.d, NULL, NULL) == 0);
    /* the fixture replaced theta_0, so replay from the seed's own weights */
    CHECKF(sd_distiller_export(f.d, &res) == 0, "%s", sd_distiller_error(f.d)->msg);
    sd_error err = {0};
    sd_model *m1 = NULL, *m2 = NULL;
    sd_real *t1 = NULL, *t2 = NULL;
    CHECKF(sd_replay(&res, f.be, &m1, &t1, &err) == 0, "%s", err.msg);
    CHECKF(sd_replay(&res, f.be, &m2, &t2, &err) == 0, "%s", err.msg);
    if (m1 && m2 && t1 && t2)
        CHECK(memcmp(t1, t2, m1->n_theta * sizeof *t1) == 0);
    /* a payload whose theta_0 hash does not match is refused */
    res.theta0_sha256[0] ^= 1;
    sd_model *m3 = NULL;
    sd_real *t3 = NULL;
    CHECK(sd_replay(&res, f.be, &m3, &t3, &err) == SD_EHASH);
    CHECK(strstr(err.msg, "refusing") != NULL);
    f.be->free(f.be, t1);
    f.be->free(f.be, t2);
    sd_model_destroy(m1);
    sd_model_destroy(m2);
    sd_distilled_free(&res);
    teardown(&f);
}

static int keep_val(void *ctx, const sd_progress *p)
{
    if (p->evaluated)
        *(double *)ctx = p->val_acc;
    return 0;
}

/* The validation accuracy reported during a run is that of the payload an
 * export would give at that point (theta_0 of the seed, the steps of the
 * data after the iteration's update), not of the iteration's own theta_T.
 * Random inputs and labels (no batch norm, so export adds nothing). */
static void test_validation_is_payload(void)
{
    enum { N = 96, D = 64 };
    sd_real *x = malloc(N * D * sizeof *x);
    int32_t lab[N];
    fill_rand(x, N * D, 21, 1.0);
    for (int i = 0; i < N; i++) { /* learnable: the class of the brightest third */
        double t[3] = {0, 0, 0};
        for (int j = 0; j < D; j++)
            t[j * 3 / D] += x[i * D + j];
        lab[i] = t[0] > t[1] ? (t[0] > t[2] ? 0 : 2) : (t[1] > t[2] ? 1 : 2);
    }
    sd_array_data arr = {.x = x, .labels = lab, .count = N, .c = 1, .h = 8, .w = 8, .classes = 3};
    sd_data_view view;
    sd_data_view_array(&view, &arr);
    sd_error err = {0};
    sd_backend *be = NULL;
    sd_distiller *d = NULL;
    sd_distill_config cfg;
    sd_distill_config_defaults(&cfg);
    snprintf(cfg.spec.arch, sizeof cfg.spec.arch, "convnet");
    cfg.spec.depth = 1;
    cfg.spec.width = 4;
    cfg.steps = 2;
    cfg.images_per_step = 3;
    cfg.real_batch = 32;
    cfg.iterations = 3;
    cfg.eval_every = 3;
    cfg.distill_lr = 1.0; /* large steps, so that one update changes predictions */
    cfg.lr = 0.2;
    double val = -1, acc = -2;
    CHECK(sd_backend_cpu_create(&be, 1, &err) == 0);
    CHECKF(sd_distiller_create(&d, &cfg, be, &view, &view, NULL, &err) == 0, "%s", err.msg);
    if (d) {
        CHECK(sd_distiller_run(d, keep_val, &val) == 0);
        sd_distilled res = {0};
        sd_model *m = NULL;
        sd_real *th = NULL;
        CHECK(sd_distiller_export(d, &res) == 0);
        CHECK(sd_replay(&res, be, &m, &th, &err) == 0);
        if (m && th)
            CHECK(sd_evaluate(m, be, th, NULL, &view, 0, &acc, NULL, NULL, &err) == 0);
        printf("validation during the run %.4f, of the exported payload %.4f\n", val, acc);
        CHECKF(val == acc, "validation during the run %g, of the exported payload %g", val, acc);
        be->free(be, th);
        sd_model_destroy(m);
        sd_distilled_free(&res);
    }
    sd_distiller_destroy(d);
    sd_backend_destroy(be);
    sd_array_data_free(&arr);
    free(x);
}

/* A batch-norm ConvNet in batch mode distilled with 1 and with 3 threads:
 * the real batches (32, 8 shards) and the inner steps (9 images, 2 shards)
 * run as batch shards whose batch-norm statistics are joined in shard
 * order, so the distilled images, labels and learning rates are the same
 * bits. */
static void test_threads_bn(void)
{
    enum { N = 64, D = 64, IPS = 9, STEPS = 2, EPOCHS = 2 };
    sd_real *x = malloc(N * D * sizeof *x);
    int32_t lab[N];
    fill_rand(x, N * D, 31, 1.0);
    for (int i = 0; i < N; i++)
        lab[i] = i % 3;
    sd_array_data arr = {.x = x, .labels = lab, .count = N, .c = 1, .h = 8, .w = 8, .classes = 3};
    sd_data_view view;
    sd_data_view_array(&view, &arr);
    float xs[2][STEPS * IPS * D], ys[2][STEPS * IPS * 3];
    double rho[2][STEPS * EPOCHS]; /* T = S * E step sizes */
    memset(xs, 0, sizeof xs);
    memset(ys, 0, sizeof ys);
    memset(rho, 0, sizeof rho);
    for (int k = 0; k < 2; k++) {
        sd_error err = {0};
        sd_backend *be = NULL;
        sd_distiller *d = NULL;
        sd_distill_config cfg;
        sd_distill_config_defaults(&cfg);
        snprintf(cfg.spec.arch, sizeof cfg.spec.arch, "convnet");
        cfg.spec.bn = 1;
        cfg.spec.depth = 2;
        cfg.spec.width = 4;
        cfg.steps = STEPS;
        cfg.images_per_step = IPS;
        cfg.epochs_inner = EPOCHS;
        cfg.real_batch = 32;
        cfg.iterations = 3;
        CHECK(sd_backend_cpu_create(&be, k ? 3 : 1, &err) == 0);
        CHECKF(sd_distiller_create(&d, &cfg, be, &view, NULL, NULL, &err) == 0, "%s", err.msg);
        if (d) {
            CHECK(sd_distiller_run(d, NULL, NULL) == 0);
            CHECK(sd_distiller_get(d, xs[k], ys[k], rho[k]) == 0);
        }
        sd_distiller_destroy(d);
        sd_backend_destroy(be);
    }
    CHECKF(!memcmp(xs[0], xs[1], sizeof xs[0]) && !memcmp(ys[0], ys[1], sizeof ys[0]) &&
               !memcmp(rho[0], rho[1], sizeof rho[0]),
           "batch-norm distillation: 3 threads differ from 1");
    sd_array_data_free(&arr);
    free(x);
}

static int stop_at_3(void *ctx, const sd_progress *p)
{
    (void)ctx;
    return p->iter >= 3;
}

/* 6 iterations straight vs 3 + checkpoint + resume + 3: identical data. */
static void test_resume(const char *dir)
{
    char ckpt[] = "/tmp/sldd-test-ckpt-XXXXXX";
    int fd = mkstemp(ckpt);
    CHECK(fd >= 0);
    close(fd);
    fixture a, b;
    if (setup(&a, dir, NULL, NULL)) {
        CHECK(0);
        return;
    }
    CHECK(sd_distiller_run(a.d, NULL, NULL) == 0);
    size_t nx = 4 * 64, ny = 4 * 3;
    float xa[4 * 64], ya[12], xb[4 * 64], yb[12];
    double ra[4], rb[4];
    CHECK(sd_distiller_get(a.d, xa, ya, ra) == 0);
    teardown(&a);

    if (setup(&b, dir, ckpt, NULL)) {
        CHECK(0);
        return;
    }
    /* stop after 3 iterations by cancelling from the progress callback */
    int rc = sd_distiller_run(b.d, stop_at_3, NULL);
    CHECK(rc == SD_ECANCELED);
    CHECK(sd_distiller_iteration(b.d) == 3);
    teardown(&b);
    if (setup(&b, dir, ckpt, ckpt)) {
        CHECK(0);
        return;
    }
    CHECK(sd_distiller_iteration(b.d) == 3);
    CHECK(sd_distiller_run(b.d, NULL, NULL) == 0);
    CHECK(sd_distiller_get(b.d, xb, yb, rb) == 0);
    CHECK(memcmp(xa, xb, nx * sizeof *xa) == 0);
    CHECK(memcmp(ya, yb, ny * sizeof *ya) == 0);
    CHECK(memcmp(ra, rb, sizeof ra) == 0);
    teardown(&b);
    unlink(ckpt);
}
#endif

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/data";
#ifdef SD_REAL_DOUBLE
    test_fd(dir);
#else
    test_reference(dir);
    test_step_cache(dir);
    test_validation_is_payload();
    test_threads_bn();
    test_resume(dir);
    test_replay_deterministic(dir);
#endif
    return sd_test_finish();
}
