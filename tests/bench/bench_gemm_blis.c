/*
 * bench_gemm_blis.c - BLIS against OpenBLAS on the single-threaded SGEMMs
 * the CPU convolutions issue (docs/benchmarks.md, "BLIS against OpenBLAS").
 * Built only where Debian's libblis-serial-dev is installed.  libblis
 * exports cblas_* too, so it is not linked: it is opened with RTLD_LOCAL
 * (its symbols stay out of the global scope) and called through its own
 * bli_sgemm, while CBLAS calls reach OpenBLAS, which is linked.
 * Not a test: prints a markdown table.
 */
#include <blis.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_ceiling.h"

/* OpenBLAS's own (its cblas.h is shadowed by BLIS's on the include path;
 * the declarations of cblas_sgemm are the standard ones either way) */
char *openblas_get_corename(void);

typedef void (*bli_sgemm_fn)(trans_t, trans_t, dim_t, dim_t, dim_t, float *, float *, inc_t, inc_t,
                             float *, inc_t, inc_t, float *, float *, inc_t, inc_t);

typedef struct shape {
    const char *label;
    int ta, tb, m, n, k;
} shape;

static const shape shapes[] = {
    {"gastric conv1 fwd", 0, 0, 16, 1024, 9},
    {"gastric conv2 fwd", 0, 0, 16, 256, 144},
    {"gastric conv2 bwd-data", 1, 0, 144, 256, 16},
    {"gastric conv2 bwd-filter", 0, 1, 16, 144, 256},
    {"gastric conv3 fwd", 0, 0, 16, 64, 144},
    {"ResNet18 conv1 fwd", 0, 0, 64, 1024, 49},
    {"ResNet18 layer1 fwd", 0, 0, 64, 256, 576},
    {"ResNet18 layer1 bwd-data", 1, 0, 576, 256, 64},
    {"ResNet18 layer1 bwd-filter", 0, 1, 64, 576, 256},
    {"ResNet18 layer2 batch fwd", 0, 0, 128, 256, 1152},
    {"ResNet18 layer3 batch fwd", 0, 0, 256, 64, 2304},
    {"ResNet18 layer3 bwd-filter", 0, 1, 256, 2304, 64},
    {"128x8192x1152", 0, 0, 128, 8192, 1152},
};

static float *fvec(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(i % 7) * 0.1f;
    return p;
}

int main(void)
{
    void *lib = dlopen(SLDD_BLIS_SO, RTLD_NOW | RTLD_LOCAL);
    bli_sgemm_fn blis_sgemm = lib ? (bli_sgemm_fn)(uintptr_t)dlsym(lib, "bli_sgemm") : NULL;
    if (!blis_sgemm) {
        fprintf(stderr, "bench_gemm_blis: %s\n", dlerror());
        return 1;
    }
    printf("| product | op MxNxK | OpenBLAS %s GFLOP/s | BLIS GFLOP/s | BLIS / OpenBLAS |\n"
           "|---|---|---|---|---|\n",
           openblas_get_corename());
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
        float *a = fvec((size_t)s->m * s->k), *b = fvec((size_t)s->k * s->n),
              *c = fvec((size_t)s->m * s->n), one = 1;
        double flops = 2.0 * s->m * s->n * s->k, best[2] = {1e30, 1e30};
        int reps = (int)(2e9 / flops) + 3;
        for (int r = 0; r < 5; r++) {
            double t0 = bench_now();
            for (int q = 0; q < reps; q++)
                cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                            s->tb ? CblasTrans : CblasNoTrans, s->m, s->n, s->k, 1, a, lda, b, ldb,
                            1, c, s->n);
            double t1 = bench_now();
            for (int q = 0; q < reps; q++)
                blis_sgemm(s->ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                           s->tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, s->m, s->n, s->k, &one, a,
                           lda, 1, b, ldb, 1, &one, c, s->n, 1);
            double t2 = bench_now();
            best[0] = (t1 - t0) / reps < best[0] ? (t1 - t0) / reps : best[0];
            best[1] = (t2 - t1) / reps < best[1] ? (t2 - t1) / reps : best[1];
        }
        printf("| %s | %c%c %dx%dx%d | %.1f | %.1f | %.2f |\n", s->label, s->ta ? 'T' : 'N',
               s->tb ? 'T' : 'N', s->m, s->n, s->k, flops / best[0] * 1e-9, flops / best[1] * 1e-9,
               best[0] / best[1]);
        free(a);
        free(b);
        free(c);
    }
    dlclose(lib);
    return 0;
}
