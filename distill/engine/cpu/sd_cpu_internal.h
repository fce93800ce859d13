/*
 * sd_cpu_internal.h - what the files of the CPU backend share (private).
 *
 * The CPU backend is split per op family like the CUDA backend (gpu/), so
 * each pair reads side by side:
 *   sd_cpu_backend.c  <-> gpu/sg_backend.cu  object, memory, GEMM, threads
 *   sd_cpu_conv.c     <-> gpu/sg_conv.cu     convolution
 *   sd_cpu_dnnl.c                            convolution path `dnnl` (oneDNN)
 *   sd_cpu_direct.c                          convolution path `direct`
 *   sd_cpu_elem.c     <-> gpu/sg_elem.cu     vector ops, Adam, bias, ReLU
 *   sd_cpu_pool.c     <-> gpu/sg_pool.cu     max and average pooling
 *   sd_cpu_bn.c       <-> gpu/sg_bn.cu       batch normalisation
 *   sd_cpu_sce.c      <-> gpu/sg_sce.cu      soft-target cross-entropy, softmax
 *   sd_cpu_patch.c    <-> gpu/sg_patch.cu    patch cutting
 * sd_cpu_backend.c creates the table and calls each file's installer, which
 * sets the entries that file implements (as gpu/sg_internal.h does).
 */
#ifndef SD_CPU_INTERNAL_H
#define SD_CPU_INTERNAL_H

#include "sd_backend.h"
#include "sd_backend_cpu.h"
#include "sd_pool.h"

#include <cblas.h>
#include <float.h>

#ifdef SD_REAL_DOUBLE
#define CPU_GEMM      cblas_dgemm
#define CPU_REAL_TINY DBL_MIN
#else
#define CPU_GEMM      cblas_sgemm
#define CPU_REAL_TINY FLT_MIN
#endif

#define CPU_ALIGN 64

typedef struct cpu_ctx {
    int threads;
    sd_cpu_conv_path conv_path; /* forced path, or SD_CPU_CONV_AUTO */
    size_t col_cap;             /* im2col buffer bound, sd_real elements */
    sd_pool *pool;              /* threads-1 workers; NULL with one thread */
    struct sd_cpu_dnnl *dnnl;   /* oneDNN primitives per shape (sd_cpu_dnnl.c); lazy */
} cpu_ctx;

#define CPU_FAIL(err, code, ...) sd_error_set((err), (code), __VA_ARGS__)

/* Unchecked GEMM for internal use (shapes are known to be valid). */
static inline void blas_gemm(int ta, int tb, int m, int n, int k, sd_real alpha, const sd_real *a,
                             int lda, const sd_real *b, int ldb, sd_real beta, sd_real *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        /* BLAS would scale C by beta; do the same without touching A, B */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * c[(size_t)i * ldc + j];
        return;
    }
    CPU_GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
             alpha, a, lda, b, ldb, beta, c, ldc);
}

/* Whether be is a CPU backend (its ctx is a cpu_ctx). */
int sd_cpu_is(const sd_backend *be);

/* Loops whose iterations are independent (samples of a convolution,
 * channels of a batch norm) split over the pool when there is enough work
 * (sd_cpu_backend.c): body(ctx, t, lo, hi) runs iterations [lo, hi) as chunk
 * t (t < threads and t < max_chunks, for per-chunk scratch).  Each iteration
 * computes exactly what it computes in the sequential loop, so the bits do
 * not depend on the split. */
void sd_cpu_for(sd_backend *be, int count, size_t work, int max_chunks,
                void (*body)(void *ctx, int t, int lo, int hi), void *ctx);

/* The `direct` convolution path (sd_cpu_direct.c): forward (y = conv +
 * beta*y), backward-data (gx += ...) and backward-filter (gw += ...) of stride-1 layers whose padding is
 * below the kernel size (sd_cpu_direct_applies); ws holds
 * sd_cpu_direct_ws_elems(d) elements, enough for any pass. */
int sd_cpu_direct_applies(const sd_conv_desc *d);
size_t sd_cpu_direct_ws_elems(const sd_conv_desc *d);
void sd_cpu_direct_fwd(const sd_conv_desc *d, const sd_real *x, const sd_real *w, sd_real beta,
                       sd_real *y, sd_real *ws);
void sd_cpu_direct_bwd_data(const sd_conv_desc *d, const sd_real *gy, const sd_real *w, sd_real *gx,
                            sd_real *ws);
void sd_cpu_direct_bwd_filter(const sd_conv_desc *d, const sd_real *x, const sd_real *gy,
                              sd_real *gw, sd_real *ws);

/* The `dnnl` convolution path (sd_cpu_dnnl.c).  Passes, each with its two
 * inputs a, b and its output out:
 *   FWD         x, w  -> y   (y = conv + beta*y)
 *   BWD_DATA    gy, w -> gx  (gx += ...)
 *   BWD_FILTER  x, gy -> gw  (gw += ...)
 * sd_cpu_dnnl_available: 0 where the build has no oneDNN (always in the
 * float64 engine) or oneDNN cannot generate its kernels in this process
 * (tried once; unusable_reason says why); ws_elems: the workspace (sd_real elements) any pass of d
 * needs, non-decreasing in n; destroy frees the backend's cache (NULL ok). */
enum { SD_CPU_DNNL_FWD, SD_CPU_DNNL_BWD_DATA, SD_CPU_DNNL_BWD_FILTER, SD_CPU_DNNL_NPASS };
int sd_cpu_dnnl_available(void);
const char *sd_cpu_dnnl_unusable_reason(void); /* NULL when available */
size_t sd_cpu_dnnl_ws_elems(const sd_conv_desc *d);
int sd_cpu_dnnl_conv(sd_backend *be, sd_error *err, int pass, const sd_conv_desc *d,
                     const sd_real *a, const sd_real *b, sd_real beta, sd_real *out, void *ws);
void sd_cpu_dnnl_destroy(struct sd_cpu_dnnl *dn);

/* Per-file installers: each sets the table entries it implements. */
void sd_cpu_install_conv(sd_backend *be);
void sd_cpu_install_elem(sd_backend *be);
void sd_cpu_install_pool(sd_backend *be);
void sd_cpu_install_bn(sd_backend *be);
void sd_cpu_install_sce(sd_backend *be);
void sd_cpu_install_patch(sd_backend *be);

#endif
