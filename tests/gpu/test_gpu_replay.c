/*
 * test_gpu_replay.c - a distillation run on one backend, replayed on the
 * other, must give the same patch predictions (>= 99.9 % agree; docs/design.md).
 *
 * On a small synthetic gastric data set (written to a temporary folder):
 *   1. distil on CUDA (ConvNet-BN, SLDD(3)), replay on CUDA and on the CPU,
 *      predict every validation and test patch with theta_bn: agreement;
 *   2. the reverse: distil on the CPU, replay on both.
 * Exits 77 (skipped) without a usable CUDA device, unless SLDD_REQUIRE_GPU=1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../sd_test.h"
#include "sd_dataset.h"
#include "sd_distill.h"
#include "sd_synth.h"
#include "sg_backend.h"

typedef struct patches {
    const sd_dataset *ds;
    const sd_patch_index *ix;
    int osize;
    double mean, std;
    int64_t *off;
    int32_t *w;
    int32_t *tri;
    sd_real *host;
    int cap;
} patches;

static int fetch(void *ctx, sd_backend *be, const int64_t *idx, int n, sd_real *x, int *labels,
                 sd_error *err)
{
    patches *p = ctx;
    if (n > p->cap) {
        free(p->tri);
        free(p->host);
        p->tri = malloc((size_t)n * 3 * sizeof *p->tri);
        p->host = malloc((size_t)n * (size_t)p->osize * (size_t)p->osize * sizeof *p->host);
        p->cap = n;
        if (!p->tri || !p->host)
            return sd_error_set(err, SD_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        const sd_patch *q = &p->ix->p[idx[i]];
        p->tri[3 * i] = q->img;
        p->tri[3 * i + 1] = q->y;
        p->tri[3 * i + 2] = q->x;
        if (labels)
            labels[i] = q->label;
    }
    int rc = sd_patch_cut(p->ds->pix, p->off, p->w, p->tri, n, p->ix->psize, p->osize, p->mean,
                          p->std, p->host, err);
    if (rc)
        return rc;
    rc = be->upload(be, err, x, p->host,
                    (size_t)n * (size_t)p->osize * (size_t)p->osize * sizeof(sd_real));
    return rc ? sd_error_wrap_code(err, rc, "upload") : SD_OK;
}

static void view_of(sd_data_view *v, patches *p)
{
    memset(v, 0, sizeof *v);
    v->count = (int64_t)p->ix->n;
    v->c = 1;
    v->h = v->w = p->osize;
    v->classes = 3;
    v->fetch = fetch;
    v->ctx = p;
}

/* predictions of a replayed payload on every patch of `data` */
static int predict_all(const sd_distilled *d, sd_backend *be, const sd_data_view *data, int *pred,
                       double *acc)
{
    sd_error err = {0};
    sd_model *m = NULL;
    sd_real *theta = NULL;
    if (sd_replay(d, be, &m, &theta, &err)) {
        fprintf(stderr, "replay on %s: %s\n", be->name, err.msg);
        return -1;
    }
    int rc = sd_evaluate(m, be, theta, d->theta_bn, data, 0, acc, NULL, pred, &err);
    if (rc)
        fprintf(stderr, "evaluate on %s: %s\n", be->name, err.msg);
    be->free(be, theta);
    sd_model_destroy(m);
    return rc;
}

static void round_trip(sd_backend *train_be, sd_backend *other, const sd_data_view *train,
                       const sd_data_view *val, int iterations)
{
    sd_error err = {0};
    sd_distill_config cfg;
    sd_distill_config_defaults(&cfg);
    snprintf(cfg.spec.arch, sizeof cfg.spec.arch, "convnet");
    cfg.spec.bn = 1;
    cfg.spec.depth = 2;
    cfg.spec.width = 16;
    cfg.images_per_step = 3;
    cfg.real_batch = 128;
    cfg.iterations = iterations;
    cfg.bn_export_batches = 4;
    sd_distiller *d = NULL;
    sd_distilled res = {0};
    if (sd_distiller_create(&d, &cfg, train_be, train, NULL, NULL, &err)) {
        fprintf(stderr, "distiller: %s\n", err.msg);
        CHECK(0);
        return;
    }
    CHECKF(sd_distiller_run(d, NULL, NULL) == 0, "%s", sd_distiller_error(d)->msg);
    CHECKF(sd_distiller_export(d, &res) == 0, "%s", sd_distiller_error(d)->msg);
    sd_distiller_destroy(d);
    int64_t n = val->count;
    int *pa = calloc((size_t)n, sizeof *pa), *pb = calloc((size_t)n, sizeof *pb);
    double acc_a = 0, acc_b = 0;
    if (pa && pb && !predict_all(&res, train_be, val, pa, &acc_a) &&
        !predict_all(&res, other, val, pb, &acc_b)) {
        int64_t same = 0;
        for (int64_t i = 0; i < n; i++)
            same += pa[i] == pb[i];
        double agree = (double)same / (double)n;
        printf("distilled on %-4s (%d iterations): accuracy %.4f there, %.4f replayed on %s; "
               "patch agreement %.5f over %lld patches\n",
               train_be->name, iterations, acc_a, acc_b, other->name, agree, (long long)n);
        CHECKF(agree >= 0.999, "agreement %.5f", agree);
        CHECK(acc_a > 0.5); /* it learned something */
    } else {
        CHECK(0);
    }
    free(pa);
    free(pb);
    sd_distilled_free(&res);
}

int main(void)
{
    sd_error err = {0};
    sd_backend *cpu = NULL, *gpu = NULL;
    int rc = sg_backend_cuda_create(&gpu, 0, 1, &err);
    if (rc) {
        const char *req = getenv("SLDD_REQUIRE_GPU");
        fprintf(stderr, "no CUDA device: %s\n", err.msg);
        return req && *req == '1' ? 1 : SD_TEST_SKIP;
    }
    CHECK(sd_backend_cpu_create(&cpu, 0, &err) == 0);
    char dir[] = "/tmp/sldd-gpu-replay-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    sd_synth_dataset_opts so = {.out_dir = dir,
                                .count = 24,
                                .size = 256,
                                .seed = 5,
                                .gastritis_fraction = 0.5,
                                .split = {0.6, 0.2, 0.2},
                                .force = 1};
    sd_dataset *ds = NULL;
    sd_patch_index ix_train = {0}, ix_val = {0};
    if (sd_synth_dataset_write(&so, &err) || sd_dataset_open(&ds, dir, SD_LOAD_ALL, &err) ||
        sd_patch_index_build(&ix_train, ds, SD_SPLIT_TRAIN, 32, 8, &err) ||
        sd_patch_index_build(&ix_val, ds, SD_SPLIT_VAL, 32, 8, &err)) {
        fprintf(stderr, "data: %s\n", err.msg);
        CHECK(0);
        return sd_test_finish();
    }
    int64_t *off = malloc((size_t)ds->n * sizeof *off);
    int32_t *w = malloc((size_t)ds->n * sizeof *w);
    sd_dataset_tables(ds, off, w);
    patches pt = {ds, &ix_train, 32, ix_train.mean, ix_train.std, off, w, NULL, NULL, 0};
    patches pv = {ds, &ix_val, 32, ix_train.mean, ix_train.std, off, w, NULL, NULL, 0};
    sd_data_view vt, vv;
    view_of(&vt, &pt);
    view_of(&vv, &pv);
    round_trip(gpu, cpu, &vt, &vv, 150);
    round_trip(cpu, gpu, &vt, &vv, 40);
    free(pt.tri);
    free(pt.host);
    free(pv.tri);
    free(pv.host);
    free(off);
    free(w);
    sd_patch_index_free(&ix_train);
    sd_patch_index_free(&ix_val);
    sd_dataset_destroy(ds);
    sd_backend_destroy(cpu);
    sd_backend_destroy(gpu);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return sd_test_finish();
}
