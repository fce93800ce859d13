/*
 * bench_roofline.c - the convolutions of the gastric ConvNet-BN and of
 * ResNet18 at 64x64 against this machine's ceiling (bench_ceiling.c).
 *
 * Each layer runs as the executor runs it: its batch cut into batch shards
 * (P = min(8, n/4), sd_exec_run.c), the shards as tasks of be->parallel on
 * the backend's threads, each shard's convolution single-threaded with its
 * own buffers and workspace, on the path the backend picks automatically.
 * For forward, backward-data and backward-filter it prints GFLOP/s (2 M N K
 * useful flops of the whole batch per call), the fraction of the FP32 peak of
 * all threads measured in the same run, and the arithmetic intensity:
 * flops over the compulsory traffic 4 (x + y + P w) bytes (each tensor
 * once; the per-shard weights once per shard).  Roof = min(peak, AI x triad
 * bandwidth); a layer whose AI x bandwidth is under the peak is memory-bound
 * by this roofline.  Not a test: prints markdown for docs/benchmarks.md.
 *
 *   bench_roofline [rounds [threads [peak-gflops triad-gbs]]]
 * best and median of the timed calls of each pass (0.2 s of untimed calls
 * first, then at least `rounds` calls and at least 0.5 s); with the last two the ceiling is taken
 * as given (bench_peak on a quiet machine) instead of measured in this run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_ceiling.h"
#include "bench_convs.h"
#include "sb_parse.h"
#include "sd_backend.h"
#include "sd_backend_cpu.h"

#ifdef SD_REAL_DOUBLE
#error "bench_roofline measures the float32 engine (sldd_distill)"
#endif

typedef struct shard {
    sd_conv_desc d;
    float *x, *w, *y, *gx, *gw;
    void *ws;
} shard;

typedef struct layer_job {
    sd_backend *be;
    shard s[BENCH_MAXP];
    int op;
    sd_error err[BENCH_MAXP];
} layer_job;

static int task(void *arg, int t)
{
    layer_job *j = arg;
    shard *s = &j->s[t];
    sd_backend *be = j->be;
    switch (j->op) {
    case 0: return be->conv_fwd(be, &j->err[t], &s->d, s->x, s->w, 0, s->y, s->ws);
    case 1: return be->conv_bwd_data(be, &j->err[t], &s->d, s->y, s->w, s->gx, s->ws);
    default: return be->conv_bwd_filter(be, &j->err[t], &s->d, s->x, s->y, s->gw, s->ws);
    }
}

static int rounds = 15;

static void bench_layer(sd_backend *be, const bench_ceiling *c, const char *label, sd_conv_desc d)
{
    int P = bench_conv_shards(d.n);
    layer_job *j = calloc(1, sizeof *j);
    if (!j)
        exit(1);
    j->be = be;
    for (int s = 0; s < P; s++) {
        shard *sh = &j->s[s];
        sh->d = d;
        sh->d.n = bench_conv_shard_n(d.n, P, s);
        size_t nx = (size_t)sh->d.n * d.c * d.h * d.w, nw = (size_t)d.k * d.c * d.r * d.s,
               ny = (size_t)sh->d.n * d.k * d.oh * d.ow;
        sh->x = bench_fvec(nx, 0), sh->w = bench_fvec(nw, 0), sh->y = bench_fvec(ny, 0);
        sh->gx = bench_fvec(nx, 0), sh->gw = bench_fvec(nw, 0);
        size_t wsb = be->conv_workspace(be, &sh->d);
        sh->ws = malloc(wsb ? wsb : 1);
    }
    double M = d.k, N = (double)d.n * d.oh * d.ow, K = (double)d.c * d.r * d.s;
    double flops = 2 * M * N * K;
    double bytes = 4.0 * ((double)d.n * d.c * d.h * d.w + (double)d.n * d.k * d.oh * d.ow +
                          (double)P * d.k * d.c * d.r * d.s);
    double ai = flops / bytes, roof = ai * c->triad_gbs;
    /* each pass: calls for WARM_S first (both cores awake and at speed,
     * caches and oneDNN's kernels warm), then at least `rounds` timed calls
     * and at least TIMED_S of them (a call takes 0.05-5 ms) */
    enum { MAXR = 20000 };
    const double WARM_S = 0.2, TIMED_S = 0.5;
    int cap = rounds > MAXR ? rounds : MAXR;
    double best[3], med[3], *t = malloc((size_t)cap * sizeof *t);
    if (!t)
        exit(1);
    for (int op = 0; op < 3; op++) {
        j->op = op;
        int nr = 0;
        for (double w0 = bench_now(), t_first = 0;;) {
            double t0 = bench_now();
            if (be->parallel(be, P, task, j)) {
                fprintf(stderr, "%s: %s\n", label, j->err[0].msg);
                exit(1);
            }
            double t1 = bench_now();
            if (t1 - w0 < WARM_S)
                continue;
            if (!t_first)
                t_first = t0;
            t[nr++] = t1 - t0;
            if (nr == cap || (nr >= rounds && t1 - t_first >= TIMED_S))
                break;
        }
        qsort(t, (size_t)nr, sizeof *t, bench_cmp_double);
        best[op] = flops / t[0] * 1e-9;
        med[op] = flops / t[nr / 2] * 1e-9;
    }
    char paths[64];
    printf("| %s | n%d c%d %dx%d k%d %dx%d/%d | %d | %s | %.1f | %.0f |", label, d.n, d.c, d.h, d.w,
           d.k, d.r, d.s, d.stride, P, bench_conv_auto_paths(be, &j->s[0].d, paths, sizeof paths),
           ai, roof < c->gflops_all ? roof : c->gflops_all);
    for (int op = 0; op < 3; op++)
        printf(" %.0f (%.0f) %.0f %% |", best[op], med[op], 100 * best[op] / c->gflops_all);
    printf(" %s |\n", roof < c->gflops_all ? "memory" : "compute");
    for (int s = 0; s < P; s++) {
        shard *sh = &j->s[s];
        free(sh->x), free(sh->w), free(sh->y), free(sh->gx), free(sh->gw), free(sh->ws);
    }
    free(t);
    free(j);
}

int main(int argc, char **argv)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = online > 0 ? (int)online : 1;
    int peak = 0, bw = 0;
    if ((argc > 1 && sb_parse_int(argv[1], 1, 100000, &rounds)) ||
        (argc > 2 && sb_parse_int(argv[2], 1, 1024, &threads)) ||
        (argc > 4 &&
         (sb_parse_int(argv[3], 1, 1000000, &peak) || sb_parse_int(argv[4], 1, 1000000, &bw)))) {
        fprintf(stderr, "usage: bench_roofline [ROUNDS [THREADS [PEAK_GFLOPS TRIAD_GBS]]]\n");
        return 2;
    }
    bench_ceiling c = {.isa = "given", .threads = threads};
    c.gflops_all = peak;
    c.gflops_one = (double)peak / threads;
    c.triad_gbs = bw;
    sd_backend *be = NULL;
    sd_error err = {0};
    if ((!peak && bench_ceiling_measure(&c, threads, 5)) ||
        sd_backend_cpu_create(&be, threads, &err)) {
        fprintf(stderr, "bench_roofline: %s\n", err.msg[0] ? err.msg : "ceiling not measured");
        return 1;
    }
    printf("ceiling (%s, %d threads): FP32 %.0f GFLOP/s (per thread %.0f), triad %.1f GB/s; "
           "OpenBLAS kernels %s\n\n",
           c.isa, threads, c.gflops_all, c.gflops_one, c.triad_gbs, sd_backend_cpu_blas_core());
    printf("| layer | shape (n c hxw k rxs/stride) | shards | path | AI (flop/B) | roof GFLOP/s | "
           "forward GFLOP/s best (median) %% of peak | backward-data | backward-filter | "
           "bound |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < bench_conv_layer_count; i++)
        bench_layer(be, &c, bench_conv_layers[i].label, bench_conv_layers[i].d);
    sd_backend_destroy(be);
    return 0;
}
