/*
 * sd_cpu_backend.c - the CPU backend object: creation, memory, GEMM, threads.
 * GPU twin: gpu/sg_backend.cu.  The other sd_cpu_*.c files install the
 * remaining operations into the same table (sd_cpu_internal.h lists the
 * pairs).
 *
 * This is the reference implementation (docs/design.md, "Engine"): the CUDA backend is
 * checked against it, and the float64 build of these same files
 * (sldd_distill64, SD_REAL_DOUBLE) is what the finite-difference tests run.
 * So it favours clear, exactly specified arithmetic:
 *  - every reduction (dot, bias gradient, batch-norm statistics, softmax rows,
 *    losses) is accumulated in double in a fixed sequential order, so results
 *    do not depend on thread count or timing;
 *  - dense products go through CBLAS (OpenBLAS), single-threaded: a threaded
 *    OpenBLAS GEMM was measured to round differently from a single-threaded
 *    one, so the backend sets OpenBLAS to one thread;
 *  - the parallelism is coarse: be->parallel runs independent tasks (the
 *    executor's batch shards, sd_exec_run.c) on the engine's task pool
 *    (sd_pool.h) of threads-1 workers plus the caller, and sd_cpu_for splits
 *    the samples of a large im2col convolution and the channels of a large
 *    batch norm.  Which task computes what never changes a result, so
 *    results do not depend on the thread count.
 */
#include "sd_cpu_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void cpu_destroy(sd_backend *be);

int sd_cpu_is(const sd_backend *be)
{
    return be && be->destroy == cpu_destroy;
}

/* ------------------------------------------------------------------------ */
/* threads (be->parallel, sd_cpu_for)                                       */
/* ------------------------------------------------------------------------ */

typedef struct cpu_par_job {
    int (*fn)(void *, int);
    void *arg;
} cpu_par_job;

static int cpu_par_task(void *arg, int t, sd_error *err)
{
    (void)err; /* the backend's own error holds the message */
    cpu_par_job *j = arg;
    return j->fn(j->arg, t);
}

static int cpu_parallel(sd_backend *be, int count, int (*fn)(void *, int), void *arg)
{
    cpu_par_job j = {fn, arg};
    return sd_pool_run(((cpu_ctx *)be->ctx)->pool, count, cpu_par_task, &j, NULL);
}

/* Below this many multiply-adds a loop is not worth waking the workers. */
#define CPU_FOR_MIN_WORK ((size_t)1 << 20)

typedef struct cpu_for_job {
    void (*body)(void *ctx, int t, int lo, int hi);
    void *ctx;
    int count, chunks;
} cpu_for_job;

static int cpu_for_task(void *arg, int t, sd_error *err)
{
    (void)err;
    cpu_for_job *j = arg;
    int lo = (int)((long long)t * j->count / j->chunks);
    int hi = (int)((long long)(t + 1) * j->count / j->chunks);
    if (hi > lo)
        j->body(j->ctx, t, lo, hi);
    return 0;
}

void sd_cpu_for(sd_backend *be, int count, size_t work, int max_chunks,
                void (*body)(void *ctx, int t, int lo, int hi), void *ctx)
{
    cpu_ctx *c = be->ctx;
    int chunks = c->threads < count ? c->threads : count;
    if (chunks > max_chunks)
        chunks = max_chunks;
    if (!c->pool || chunks < 2 || work < CPU_FOR_MIN_WORK || sd_pool_in_task()) {
        body(ctx, 0, 0, count);
        return;
    }
    cpu_for_job j = {body, ctx, count, chunks};
    (void)sd_pool_run(c->pool, chunks, cpu_for_task, &j, NULL); /* the tasks cannot fail */
}

/* ------------------------------------------------------------------------ */
/* memory                                                                   */
/* ------------------------------------------------------------------------ */

static int cpu_alloc(sd_backend *be, sd_error *err, size_t bytes, void **out)
{
    void *p = NULL;
    /* round up so that vectorised loops may touch whole cache lines, and so
     * that a zero-byte request still returns a unique, freeable pointer */
    size_t sz = bytes ? (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN : CPU_ALIGN;
    if (sz < bytes || posix_memalign(&p, CPU_ALIGN, sz) != 0) {
        *out = NULL;
        return CPU_FAIL(err, SD_ENOMEM, "cpu: cannot allocate %zu bytes", bytes);
    }
    *out = p;
    return SD_OK;
}

static void cpu_free(sd_backend *be, void *p)
{
    (void)be;
    free(p);
}

static int cpu_upload(sd_backend *be, sd_error *err, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        memmove(dst, src, bytes);
    return SD_OK;
}

static int cpu_download(sd_backend *be, sd_error *err, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        memmove(dst, src, bytes);
    return SD_OK;
}

static int cpu_copy(sd_backend *be, sd_error *err, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes && dst != src)
        memmove(dst, src, bytes);
    return SD_OK;
}

static int cpu_zero(sd_backend *be, sd_error *err, void *p, size_t bytes)
{
    (void)be;
    if (bytes)
        memset(p, 0, bytes);
    return SD_OK;
}

static int cpu_sync(sd_backend *be, sd_error *err)
{
    (void)be;
    return SD_OK;
}

/* ------------------------------------------------------------------------ */
/* GEMM (blas_gemm: sd_cpu_internal.h)                                      */
/* ------------------------------------------------------------------------ */

static int cpu_gemm(sd_backend *be, sd_error *err, int ta, int tb, int m, int n, int k,
                    sd_real alpha, const sd_real *a, int lda, const sd_real *b, int ldb,
                    sd_real beta, sd_real *c, int ldc)
{
    int acols = ta ? m : k, bcols = tb ? k : n;
    if (m < 0 || n < 0 || k < 0 || lda < (acols > 1 ? acols : 1) || ldb < (bcols > 1 ? bcols : 1) ||
        ldc < (n > 1 ? n : 1))
        return CPU_FAIL(err, SD_EINVAL,
                        "cpu gemm: bad shape m=%d n=%d k=%d lda=%d ldb=%d ldc=%d (ta=%d tb=%d)", m,
                        n, k, lda, ldb, ldc, ta, tb);
    blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return SD_OK;
}

/* ------------------------------------------------------------------------ */
/* construction                                                             */
/* ------------------------------------------------------------------------ */

const char *sd_backend_cpu_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

const char *sd_backend_cpu_blas_suggest(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    /* kernel sets older than Haswell: what OpenBLAS picks for an unknown CPU */
    static const char *const generic[] = {"Prescott", "Katmai",      "Coppermine", "Northwood",
                                          "Banias",   "Core2",       "Penryn",     "Dunnington",
                                          "Nehalem",  "Sandybridge", "Atom"};
    const char *core = sd_backend_cpu_blas_core();
    int is_generic = 0;
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        if (strcmp(core, generic[i]) == 0)
            is_generic = 1;
    if (!is_generic || getenv("OPENBLAS_CORETYPE")) /* recognised, or chosen by the user */
        return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}

static void cpu_destroy(sd_backend *be)
{
    if (!be)
        return;
    cpu_ctx *ctx = be->ctx;
    if (ctx) {
        sd_pool_destroy(ctx->pool);
        sd_cpu_dnnl_destroy(ctx->dnnl);
    }
    free(ctx);
    free(be);
}

/* OpenBLAS's own thread count as the process started (before any backend
 * set it to 1): the default number of threads. */
static pthread_once_t blas_threads_once = PTHREAD_ONCE_INIT;
static int blas_threads_default = 1;

static void read_blas_threads(void)
{
    int n = openblas_get_num_threads();
    blas_threads_default = n > 0 ? n : 1;
}

int sd_backend_cpu_create(sd_backend **out, int threads, sd_error *err)
{
    if (!out)
        return sd_error_set(err, SD_EINVAL, "sd_backend_cpu_create: out is NULL");
    *out = NULL;
    sd_backend *be = calloc(1, sizeof *be);
    cpu_ctx *ctx = calloc(1, sizeof *ctx);
    if (!be || !ctx) {
        free(be);
        free(ctx);
        return sd_error_set(err, SD_ENOMEM, "cpu backend: out of memory");
    }
    /* The thread count: the argument, else OpenBLAS's (OPENBLAS_NUM_THREADS,
     * else one per core).  OpenBLAS itself then runs single-threaded: a
     * threaded GEMM does not always add in the order of a single-threaded
     * one (measured: ConvNet-BN gradients differ in the last bits between 1
     * and 2 OpenBLAS threads), and results must not depend on the thread
     * count.  The threads work through the pool instead (shards, sd_cpu_for). */
    pthread_once(&blas_threads_once, read_blas_threads);
    ctx->threads = threads > 0 ? threads : blas_threads_default;
    openblas_set_num_threads(1);
    if (ctx->threads > 1) {
        int rc = sd_pool_create(&ctx->pool, ctx->threads - 1, err);
        if (rc) {
            free(ctx);
            free(be);
            return rc;
        }
    }

    be->name = "cpu";
    be->ctx = ctx;
    be->host_memory = 1;
    be->destroy = cpu_destroy;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_upload;
    be->download = cpu_download;
    be->copy = cpu_copy;
    be->zero = cpu_zero;
    be->sync = cpu_sync;
    be->gemm = cpu_gemm;
    sd_cpu_install_conv(be);
    sd_cpu_install_elem(be);
    sd_cpu_install_pool(be);
    sd_cpu_install_bn(be);
    sd_cpu_install_sce(be);
    sd_cpu_install_patch(be);
    be->parallel = cpu_parallel;
    *out = be;
    return SD_OK;
}
