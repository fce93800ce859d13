/*
 * bench_conv.c - measures the CPU backend's convolution paths (float32).
 *
 * For a few shapes that matter here (the ConvNet's 3x3 layers at 64x64 and
 * 32x32 with 128 channels, the first layers of ResNet18 at 64x64, a 1x1
 * GoogLeNet-style reduction), it times forward, backward-data and
 * backward-filter on every path that applies, and a plain SGEMM of the same
 * size as the im2col product (M = k, N = n*oh*ow, K = c*r*s) as the
 * reference for what BLAS alone reaches on this machine.  Rates are GFLOP/s
 * of 2*M*N*K useful flops per call.  The items of one shape are timed round
 * robin for several rounds and each keeps its best time, so that a busy
 * machine slows all of them alike rather than whichever ran during a burst.
 *
 * Every path includes the forced `dnnl` path where the build has oneDNN
 * (its layout reorders counted in each call; docs/cpu-backend.md).
 * Not a test: it prints a markdown table for docs/benchmarks.md
 * ("CPU convolution paths") and exits 0.
 * Usage: bench_conv [min-rounds [threads [shards]]]   (backend threads; 0:
 * the default).  With "shards": the layers of the distillation models
 * instead, at the size of one batch shard, each pass bold where the automatic
 * choice takes that path ("CPU convolution paths, per pass").
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_convs.h"
#include "sd_backend.h"
#include "sd_backend_cpu.h"
#include "sb_parse.h"

#ifdef SD_REAL_DOUBLE
#error "bench_conv measures the float32 engine (sldd_distill)"
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int rounds = 8; /* minimum timing rounds; each item's best time is kept */

typedef int (*bench_fn)(void *arg);

static double time_once(bench_fn fn, void *arg)
{
    double t0 = now();
    if (fn(arg))
        return -1;
    return now() - t0;
}

typedef struct job {
    sd_backend *be;
    sd_conv_desc d;
    float *x, *w, *y, *gx, *gw, *a, *b, *c;
    void *ws;
    int op; /* 0 fwd, 1 bwd data, 2 bwd filter, 3 sgemm */
    sd_error err;
} job;

static int run_job(void *arg)
{
    job *j = arg;
    switch (j->op) {
    case 0: return j->be->conv_fwd(j->be, &j->err, &j->d, j->x, j->w, 0, j->y, j->ws);
    case 1: return j->be->conv_bwd_data(j->be, &j->err, &j->d, j->y, j->w, j->gx, j->ws);
    case 2: return j->be->conv_bwd_filter(j->be, &j->err, &j->d, j->x, j->y, j->gw, j->ws);
    default: {
        int m = j->d.k, n = j->d.n * j->d.oh * j->d.ow, k = j->d.c * j->d.r * j->d.s;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, j->a, k, j->b, n, 0,
                    j->c, n);
        return 0;
    }
    }
}

static float *fvec(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

static void bench_shape(sd_backend *be, const char *label, sd_conv_desc d)
{
    d.oh = (d.h + 2 * d.pad - d.r) / d.stride + 1;
    d.ow = (d.w + 2 * d.pad - d.s) / d.stride + 1;
    size_t nx = (size_t)d.n * d.c * d.h * d.w, nw = (size_t)d.k * d.c * d.r * d.s,
           ny = (size_t)d.n * d.k * d.oh * d.ow;
    size_t M = (size_t)d.k, N = (size_t)d.n * d.oh * d.ow, K = (size_t)d.c * d.r * d.s;
    double flops = 2.0 * (double)M * (double)N * (double)K;
    job j = {.be = be, .d = d};
    j.x = fvec(nx);
    j.w = fvec(nw);
    j.y = fvec(ny);
    j.gx = fvec(nx);
    j.gw = fvec(nw);
    j.a = fvec(M * K);
    j.b = fvec(K * N);
    j.c = fvec(M * N);
    sd_backend_cpu_set_conv_path(be, SD_CPU_CONV_AUTO);
    sd_cpu_conv_path autop[3];
    for (int pass = 0; pass < 3; pass++)
        autop[pass] = sd_backend_cpu_conv_path(be, &d, (sd_cpu_conv_pass)pass);
    /* item 0: sgemm; items 1 + 3*(p-1) + op: path p, op */
    enum { NITEM = 1 + 3 * (SD_CPU_CONV_PATH_COUNT - 1) };
    double best[NITEM];
    void *wsp[SD_CPU_CONV_PATH_COUNT] = {0};
    for (int i = 0; i < NITEM; i++)
        best[i] = 1e30;
    for (int p = SD_CPU_CONV_IM2COL; p < SD_CPU_CONV_PATH_COUNT; p++)
        if (sd_cpu_conv_path_applies((sd_cpu_conv_path)p, &d)) {
            sd_backend_cpu_set_conv_path(be, (sd_cpu_conv_path)p);
            size_t wsb = be->conv_workspace(be, &d);
            wsp[p] = malloc(wsb ? wsb : 1);
        }
    /* round -1 warms up and sizes the run: at least `rounds` rounds, more
     * (up to about 4 s per shape) for quick shapes */
    int nround = rounds;
    double t_start = now();
    for (int r = -1; r < nround; r++) {
        if (r == 0) {
            double tr = now() - t_start;
            int want = (int)(4.0 / (tr > 1e-6 ? tr : 1e-6));
            nround = want > rounds ? (want < 400 ? want : 400) : rounds;
        }
        j.op = 3;
        double t = time_once(run_job, &j);
        if (r >= 0 && t < best[0])
            best[0] = t;
        for (int p = SD_CPU_CONV_IM2COL; p < SD_CPU_CONV_PATH_COUNT; p++) {
            if (!wsp[p])
                continue;
            sd_backend_cpu_set_conv_path(be, (sd_cpu_conv_path)p);
            j.ws = wsp[p];
            for (int op = 0; op < 3; op++) {
                j.op = op;
                t = time_once(run_job, &j);
                if (t < 0) {
                    fprintf(stderr, "%s: %s\n", label, j.err.msg);
                    exit(1);
                }
                int it = 1 + 3 * (p - 1) + op;
                if (r >= 0 && t < best[it])
                    best[it] = t;
            }
        }
    }
    printf("| %s | n%d c%d %dx%d k%d %dx%d/%d p%d | %zux%zux%zu | %.0f |", label, d.n, d.c, d.h,
           d.w, d.k, d.r, d.s, d.stride, d.pad, M, N, K, flops / best[0] * 1e-9);
    for (int p = SD_CPU_CONV_IM2COL; p < SD_CPU_CONV_PATH_COUNT; p++) {
        if (!wsp[p]) {
            printf(" – |");
            continue;
        }
        const double *b3 = best + 1 + 3 * (p - 1);
        printf(" ");
        for (int op = 0; op < 3; op++) { /* bold: the automatic choice for that pass */
            const char *em = p == (int)autop[op] ? "**" : "";
            printf("%s%s%.0f%s", op ? " / " : "", em, flops / b3[op] * 1e-9, em);
        }
        printf(" |");
        free(wsp[p]);
    }
    printf("\n");
    sd_backend_cpu_set_conv_path(be, SD_CPU_CONV_AUTO);
    free(j.x), free(j.w), free(j.y), free(j.gx), free(j.gw), free(j.a), free(j.b), free(j.c);
}

int main(int argc, char **argv)
{
    int threads = 0, shards = argc > 3 && !strcmp(argv[3], "shards");
    if ((argc > 1 && sb_parse_int(argv[1], 1, INT_MAX, &rounds)) ||
        (argc > 2 && sb_parse_int(argv[2], 0, 4096, &threads)) || (argc > 3 && !shards)) {
        fprintf(stderr, "usage: bench_conv [ROUNDS [THREADS [shards]]]\n");
        return 2;
    }
    sd_backend *be = NULL;
    sd_error err = {0};
    if (sd_backend_cpu_create(&be, threads, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const char *sug = sd_backend_cpu_blas_suggest();
    printf("OpenBLAS kernels: %s%s%s; backend threads: %d (0: default; OpenBLAS itself runs "
           "single-threaded); GFLOP/s as forward / backward-data / backward-filter; bold = "
           "automatic choice\n\n",
           sd_backend_cpu_blas_core(), sug ? ", OPENBLAS_CORETYPE suggested: " : "", sug ? sug : "",
           threads);
    printf("| layer | shape (n c hxw k rxs/stride pad) | reference SGEMM MxNxK | SGEMM |");
    for (int p = SD_CPU_CONV_IM2COL; p < SD_CPU_CONV_PATH_COUNT; p++)
        printf(" %s |", sd_cpu_conv_path_name((sd_cpu_conv_path)p));
    printf("\n|---|---|---|---|");
    for (int p = SD_CPU_CONV_IM2COL; p < SD_CPU_CONV_PATH_COUNT; p++)
        printf("---|");
    printf("\n");
    const int n = 8;
    /* the layers of the distillation models at the size of one batch shard
     * (the executor's P = min(8, n/4) shards: 32 of a real batch of 256, 5
     * and 1 of the synthetic steps; the gastric and ResNet18 layers of
     * bench_convs.c at their shard size): the measurements behind the
     * per-pass automatic choice */
    static const struct {
        const char *label;
        sd_conv_desc d;
    } shard_shapes[] = {
        {"LeNet conv1 1->6 5x5 at 28x28", {32, 1, 28, 28, 6, 5, 5, 1, 2, 0, 0}},
        {"LeNet conv2 6->16 5x5 at 14x14", {32, 6, 14, 14, 16, 5, 5, 1, 0, 0, 0}},
        {"LeNet conv1, 5 images", {5, 1, 28, 28, 6, 5, 5, 1, 2, 0, 0}},
        {"LeNet conv2, 5 images", {5, 6, 14, 14, 16, 5, 5, 1, 0, 0, 0}},
        {"ConvNet-BN 28x28 conv1 1->32", {32, 1, 28, 28, 32, 3, 3, 1, 1, 0, 0}},
        {"ConvNet-BN 28x28 conv2 32->32 at 14x14", {32, 32, 14, 14, 32, 3, 3, 1, 1, 0, 0}},
        {"ConvNet-BN 28x28 conv3 32->32 at 7x7", {32, 32, 7, 7, 32, 3, 3, 1, 1, 0, 0}},
        {"ConvNet-BN 28x28 conv1, 1 image", {1, 1, 28, 28, 32, 3, 3, 1, 1, 0, 0}},
        {"ConvNet-BN 28x28 conv3, 1 image", {1, 32, 7, 7, 32, 3, 3, 1, 1, 0, 0}},
    };
    if (shards) {
        for (size_t i = 0; i < sizeof shard_shapes / sizeof *shard_shapes; i++)
            bench_shape(be, shard_shapes[i].label, shard_shapes[i].d);
        for (int i = 0; i < bench_conv_layer_count; i++) {
            sd_conv_desc d = bench_conv_layers[i].d;
            d.n = bench_conv_shard_n(d.n, bench_conv_shards(d.n), 0);
            bench_shape(be, bench_conv_layers[i].label, d);
        }
        sd_backend_destroy(be);
        return 0;
    }
    bench_shape(be, "ConvNet conv1 (1->128) 64x64",
                (sd_conv_desc){n, 1, 64, 64, 128, 3, 3, 1, 1, 0, 0});
    bench_shape(be, "ConvNet 3x3 128->128 at 64x64",
                (sd_conv_desc){n, 128, 64, 64, 128, 3, 3, 1, 1, 0, 0});
    bench_shape(be, "ConvNet 3x3 128->128 at 32x32",
                (sd_conv_desc){n, 128, 32, 32, 128, 3, 3, 1, 1, 0, 0});
    bench_shape(be, "ConvNet 3x3 128->128 at 16x16",
                (sd_conv_desc){n, 128, 16, 16, 128, 3, 3, 1, 1, 0, 0});
    bench_shape(be, "ConvNet 3x3 128->128 at 8x8",
                (sd_conv_desc){n, 128, 8, 8, 128, 3, 3, 1, 1, 0, 0});
    bench_shape(be, "VGG 3x3 512->512 at 4x4", (sd_conv_desc){n, 512, 4, 4, 512, 3, 3, 1, 1, 0, 0});
    bench_shape(be, "ConvNet 3x3 128->128 at 32x32, n=1",
                (sd_conv_desc){1, 128, 32, 32, 128, 3, 3, 1, 1, 0, 0});
    bench_shape(be, "ResNet18 conv1 7x7/2 (1->64) at 64x64",
                (sd_conv_desc){n, 1, 64, 64, 64, 7, 7, 2, 3, 0, 0});
    bench_shape(be, "ResNet18 layer1 3x3 64->64 at 16x16",
                (sd_conv_desc){n, 64, 16, 16, 64, 3, 3, 1, 1, 0, 0});
    bench_shape(be, "ResNet18 layer2.0 3x3/2 64->128 16->8",
                (sd_conv_desc){n, 64, 16, 16, 128, 3, 3, 2, 1, 0, 0});
    bench_shape(be, "ResNet18 layer2 downsample 1x1/2 64->128",
                (sd_conv_desc){n, 64, 16, 16, 128, 1, 1, 2, 0, 0, 0});
    bench_shape(be, "GoogLeNet-style 1x1 192->64 at 16x16",
                (sd_conv_desc){n, 192, 16, 16, 64, 1, 1, 1, 0, 0, 0});
    sd_backend_destroy(be);
    return 0;
}
