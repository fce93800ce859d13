/*
 * sd_backend_cpu.c - the CPU backend: every op of sd_backend.h on host memory.
 *
 * This is the reference implementation (DESIGN §2, §5): the CUDA backend is
 * checked against it, and the float64 build of this same file (sldd_distill64,
 * SD_REAL_DOUBLE) is what the finite-difference tests run.  So it favours
 * clear, exactly specified arithmetic:
 *  - every reduction (dot, bias gradient, batch-norm statistics, softmax rows,
 *    losses) is accumulated in double in a fixed sequential order, so results
 *    do not depend on thread count or timing;
 *  - dense products go through CBLAS (OpenBLAS), single-threaded: a threaded
 *    OpenBLAS GEMM was measured to round differently from a single-threaded
 *    one, so the backend sets OpenBLAS to one thread;
 *  - the parallelism is coarse: be->parallel runs independent tasks (the
 *    executor's batch shards, sd_model.c) on a pool of threads-1 workers
 *    plus the caller, and cpu_for splits the samples of a large im2col
 *    convolution and the channels of a large batch norm.  Which task
 *    computes what never changes a result, so results do not depend on the
 *    thread count.
 *
 * Convolution has several paths (see sd_backend_cpu.h).  The automatic choice
 * per shape (conv_path_auto below) comes from tests/bench/bench_conv.c.
 */
#include "sd_backend.h"
#include "sd_backend_cpu.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef SD_REAL_DOUBLE
#define CPU_GEMM cblas_dgemm
#define CPU_REAL_TINY DBL_MIN
#else
#define CPU_GEMM cblas_sgemm
#define CPU_REAL_TINY FLT_MIN
#endif

#define CPU_ALIGN 64

/* Workers for be->parallel: they sleep on `start` until a new job
 * generation, claim tasks one at a time under the mutex, and the caller (who
 * claims tasks too) waits on `done` until every task has finished. */
typedef struct cpu_pool {
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    pthread_t *th;
    int nth, stop;
    unsigned long gen;
    int (*fn)(void *, int);
    void *arg;
    int count, next, finished;
    int fail_task, fail_rc;
} cpu_pool;

typedef struct cpu_ctx {
    int threads;
    sd_cpu_conv_path conv_path; /* forced path, or SD_CPU_CONV_AUTO */
    size_t col_cap;             /* im2col buffer bound, sd_real elements */
    cpu_pool *pool;             /* NULL with one thread */
} cpu_ctx;

#define CPU_FAIL(err, code, ...) sd_error_set((err), (code), __VA_ARGS__)

static void cpu_destroy(sd_backend *be);

/* ------------------------------------------------------------------------ */
/* task pool (be->parallel)                                                 */
/* ------------------------------------------------------------------------ */

/* Set while this thread runs a task: operations called from a task run
 * sequentially (no nested parallel regions). */
static _Thread_local int cpu_in_task;

/* Claim and run tasks of the current job; called and returns with mu held. */
static void pool_work(cpu_pool *p)
{
    while (p->next < p->count) {
        int t = p->next++;
        int (*fn)(void *, int) = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        cpu_in_task = 1;
        int rc = fn(arg, t);
        cpu_in_task = 0;
        pthread_mutex_lock(&p->mu);
        if (rc && (p->fail_task < 0 || t < p->fail_task)) {
            p->fail_task = t;
            p->fail_rc = rc;
        }
        if (++p->finished == p->count)
            pthread_cond_signal(&p->done);
    }
}

static void *pool_main(void *arg)
{
    cpu_pool *p = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->start, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        pool_work(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pool_destroy(cpu_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nth; i++)
        pthread_join(p->th[i], NULL);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->th);
    free(p);
}

static int pool_create(cpu_pool **out, int workers, sd_error *err)
{
    *out = NULL;
    cpu_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->th = calloc((size_t)workers, sizeof *p->th))) {
        free(p);
        return sd_error_set(err, SD_ENOMEM, "cpu backend: out of memory");
    }
    if (pthread_mutex_init(&p->mu, NULL)) {
        free(p->th);
        free(p);
        return sd_error_set(err, SD_EBACKEND, "cpu backend: pthread_mutex_init failed");
    }
    if (pthread_cond_init(&p->start, NULL)) {
        pthread_mutex_destroy(&p->mu);
        free(p->th);
        free(p);
        return sd_error_set(err, SD_EBACKEND, "cpu backend: pthread_cond_init failed");
    }
    if (pthread_cond_init(&p->done, NULL)) {
        pthread_cond_destroy(&p->start);
        pthread_mutex_destroy(&p->mu);
        free(p->th);
        free(p);
        return sd_error_set(err, SD_EBACKEND, "cpu backend: pthread_cond_init failed");
    }
    for (; p->nth < workers; p->nth++)
        if (pthread_create(&p->th[p->nth], NULL, pool_main, p)) {
            pool_destroy(p);
            return sd_error_set(err, SD_EBACKEND, "cpu backend: cannot start worker thread %d",
                                p->nth + 1);
        }
    *out = p;
    return SD_OK;
}

static int cpu_parallel(sd_backend *be, int count, int (*fn)(void *, int), void *arg)
{
    cpu_ctx *ctx = be->ctx;
    cpu_pool *p = ctx->pool;
    if (!p || count <= 1 || cpu_in_task) {
        for (int t = 0; t < count; t++) {
            int rc = fn(arg, t);
            if (rc)
                return rc;
        }
        return SD_OK;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->count = count;
    p->next = 0;
    p->finished = 0;
    p->fail_task = -1;
    p->fail_rc = 0;
    p->gen++;
    pthread_cond_broadcast(&p->start);
    pool_work(p);
    while (p->finished < p->count)
        pthread_cond_wait(&p->done, &p->mu);
    int rc = p->fail_rc;
    p->count = 0;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Loops whose iterations are independent (samples of a convolution,
 * channels of a batch norm) split over the pool when there is enough work:
 * body(ctx, t, lo, hi) runs iterations [lo, hi) as chunk t (t < threads and
 * t < max_chunks, for per-chunk scratch).  Each iteration computes exactly what it computes in
 * the sequential loop, so the bits do not depend on the split. */
#define CPU_FOR_MIN_WORK ((size_t)1 << 20)

typedef struct cpu_for_job {
    void (*body)(void *ctx, int t, int lo, int hi);
    void *ctx;
    int count, chunks;
} cpu_for_job;

static int cpu_for_task(void *arg, int t)
{
    cpu_for_job *j = arg;
    int lo = (int)((long long)t * j->count / j->chunks);
    int hi = (int)((long long)(t + 1) * j->count / j->chunks);
    if (hi > lo)
        j->body(j->ctx, t, lo, hi);
    return 0;
}

static void cpu_for(sd_backend *be, int count, size_t work, int max_chunks,
                    void (*body)(void *ctx, int t, int lo, int hi), void *ctx)
{
    cpu_ctx *c = be->ctx;
    int chunks = c->threads < count ? c->threads : count;
    if (chunks > max_chunks)
        chunks = max_chunks;
    if (!c->pool || chunks < 2 || work < CPU_FOR_MIN_WORK || cpu_in_task) {
        body(ctx, 0, 0, count);
        return;
    }
    cpu_for_job j = {body, ctx, count, chunks};
    (void)cpu_parallel(be, chunks, cpu_for_task, &j); /* the tasks cannot fail */
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
/* dense linear algebra and vector ops                                      */
/* ------------------------------------------------------------------------ */

/* Unchecked GEMM for internal use (shapes are known to be valid). */
static void blas_gemm(int ta, int tb, int m, int n, int k, sd_real alpha, const sd_real *a,
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
    CPU_GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
             n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static int cpu_gemm(sd_backend *be, sd_error *err, int ta, int tb, int m, int n, int k, sd_real alpha,
                    const sd_real *a, int lda, const sd_real *b, int ldb, sd_real beta,
                    sd_real *c, int ldc)
{
    int acols = ta ? m : k, bcols = tb ? k : n;
    if (m < 0 || n < 0 || k < 0 || lda < (acols > 1 ? acols : 1) ||
        ldb < (bcols > 1 ? bcols : 1) || ldc < (n > 1 ? n : 1))
        return CPU_FAIL(err, SD_EINVAL,
                        "cpu gemm: bad shape m=%d n=%d k=%d lda=%d ldb=%d ldc=%d (ta=%d tb=%d)",
                        m, n, k, lda, ldb, ldc, ta, tb);
    blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return SD_OK;
}

static int cpu_axpy(sd_backend *be, sd_error *err, size_t n, sd_real alpha, const sd_real *x, sd_real *y)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
    return SD_OK;
}

static int cpu_scal(sd_backend *be, sd_error *err, size_t n, sd_real alpha, sd_real *x)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        x[i] *= alpha;
    return SD_OK;
}

static int cpu_fill(sd_backend *be, sd_error *err, size_t n, sd_real value, sd_real *x)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        x[i] = value;
    return SD_OK;
}

static int cpu_dot(sd_backend *be, sd_error *err, size_t n, const sd_real *x, const sd_real *y, double *out)
{
    (void)be;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)y[i];
    *out = s;
    return SD_OK;
}

/* Adam (Kingma & Ba) in PyTorch's arithmetic:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 * which is lr * mhat / (sqrt(vhat) + eps) with the bias-corrected moments. */
static int cpu_adam(sd_backend *be, sd_error *err, size_t n, sd_real *p, const sd_real *g, sd_real *m,
                    sd_real *v, double lr, double beta1, double beta2, double eps, int t)
{
    if (t < 1 || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps >= 0))
        return CPU_FAIL(err, SD_EINVAL, "cpu adam: bad hyper-parameters (t=%d b1=%g b2=%g eps=%g)",
                        t, beta1, beta2, eps);
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    double step = lr / bc1, sbc2 = sqrt(bc2);
    for (size_t i = 0; i < n; i++) {
        double gi = g[i];
        double mi = beta1 * (double)m[i] + (1.0 - beta1) * gi;
        double vi = beta2 * (double)v[i] + (1.0 - beta2) * gi * gi;
        m[i] = (sd_real)mi;
        v[i] = (sd_real)vi;
        p[i] = (sd_real)((double)p[i] - step * mi / (sqrt(vi) / sbc2 + eps));
    }
    return SD_OK;
}

/* ------------------------------------------------------------------------ */
/* convolution                                                              */
/* ------------------------------------------------------------------------ */

static int conv_desc_ok(const sd_conv_desc *d)
{
    if (d->n < 0 || d->c < 1 || d->h < 1 || d->w < 1 || d->k < 1 || d->r < 1 || d->s < 1 ||
        d->stride < 1 || d->pad < 0)
        return 0;
    if (d->h + 2 * d->pad < d->r || d->w + 2 * d->pad < d->s)
        return 0;
    return d->oh == (d->h + 2 * d->pad - d->r) / d->stride + 1 &&
           d->ow == (d->w + 2 * d->pad - d->s) / d->stride + 1;
}

int sd_cpu_conv_path_applies(sd_cpu_conv_path path, const sd_conv_desc *d)
{
    switch (path) {
    case SD_CPU_CONV_IM2COL:
    case SD_CPU_CONV_IM2COL_BATCH:
        return 1;
    case SD_CPU_CONV_GEMM1X1:
        return d->r == 1 && d->s == 1 && d->stride == 1 && d->pad == 0;
    case SD_CPU_CONV_SHIFT:
        return d->stride == 1;
    default:
        return 0;
    }
}

const char *sd_cpu_conv_path_name(sd_cpu_conv_path path)
{
    switch (path) {
    case SD_CPU_CONV_AUTO: return "auto";
    case SD_CPU_CONV_IM2COL: return "im2col";
    case SD_CPU_CONV_IM2COL_BATCH: return "im2col-batch";
    case SD_CPU_CONV_GEMM1X1: return "gemm1x1";
    case SD_CPU_CONV_SHIFT: return "shift";
    default: return "?";
    }
}

/* Columns one wide GEMM of the batched im2col path aims for: small feature
 * maps (16x16 and below) make per-sample GEMMs too thin for BLAS to reach
 * its speed, so several samples share one product. */
#define CONV_BATCH_COLS 2048

/* Default bound (sd_real elements) for the im2col buffer.  Large maps (a
 * 299x299 patch through VGG's first layers would need 200 MB per sample) are
 * done in blocks of output rows instead; typical shapes here (64x64 and below)
 * fit in one block. */
#define CONV_COL_CAP ((size_t)1 << 23)

static int conv_batch_samples(const sd_conv_desc *d, size_t cap)
{
    size_t hw = (size_t)d->oh * d->ow, per = ((size_t)d->c * d->r * d->s + (size_t)d->k) * hw;
    size_t nb = (CONV_BATCH_COLS + hw - 1) / hw;
    if (nb > (size_t)d->n)
        nb = (size_t)d->n;
    if (nb * per > cap)
        nb = cap / per;
    return nb < 1 ? 1 : (int)nb;
}

/* Output rows per block of the per-sample im2col path. */
static int conv_row_block(const sd_conv_desc *d, size_t cap)
{
    size_t row = (size_t)d->c * d->r * d->s * d->ow;
    size_t rb = cap / (row ? row : 1);
    if (rb > (size_t)d->oh)
        rb = (size_t)d->oh;
    return rb < 1 ? 1 : (int)rb;
}

/* The automatic choice, from the measurements in docs/benchmarks.md:
 *  - 1x1, stride 1, no padding: the input already is the GEMM operand;
 *  - tiny output maps (8x8 and below) with a deep reduction (c*r*s >= 256):
 *    a per-sample GEMM is too thin, batch several samples into one;
 *  - otherwise one im2col+GEMM per sample (at 16x16, and for the 1x1 stride-2
 *    downsample, batching measured slower: the copies cost more than the
 *    wider GEMM gains).
 * The shift path is kept as a tested alternative; it was not consistently
 * faster than im2col at any measured shape. */
static sd_cpu_conv_path conv_path_auto(const sd_conv_desc *d, size_t cap)
{
    if (sd_cpu_conv_path_applies(SD_CPU_CONV_GEMM1X1, d))
        return SD_CPU_CONV_GEMM1X1;
    if ((long)d->oh * d->ow <= 64 && (long)d->c * d->r * d->s >= 256 && d->n > 1 &&
        conv_batch_samples(d, cap) > 1)
        return SD_CPU_CONV_IM2COL_BATCH;
    return SD_CPU_CONV_IM2COL;
}

static sd_cpu_conv_path conv_path_for(sd_backend *be, const sd_conv_desc *d)
{
    cpu_ctx *ctx = be->ctx;
    sd_cpu_conv_path p = ctx->conv_path;
    if (p == SD_CPU_CONV_AUTO)
        return conv_path_auto(d, ctx->col_cap);
    return sd_cpu_conv_path_applies(p, d) ? p : SD_CPU_CONV_IM2COL;
}

sd_cpu_conv_path sd_backend_cpu_conv_path(sd_backend *be, const sd_conv_desc *d)
{
    return conv_path_for(be, d);
}

int sd_backend_cpu_set_conv_path(sd_backend *be, sd_cpu_conv_path path)
{
    if (!be || be->destroy != cpu_destroy || path < 0 || path >= SD_CPU_CONV_PATH_COUNT)
        return SD_EINVAL;
    ((cpu_ctx *)be->ctx)->conv_path = path;
    return SD_OK;
}

int sd_backend_cpu_set_col_cap(sd_backend *be, size_t elems)
{
    if (!be || be->destroy != cpu_destroy)
        return SD_EINVAL;
    ((cpu_ctx *)be->ctx)->col_cap = elems ? elems : CONV_COL_CAP;
    return SD_OK;
}

/* Workspace, in sd_real elements, of each path. */
static size_t conv_ws_elems(sd_cpu_conv_path p, const sd_conv_desc *d, size_t cap)
{
    size_t crs = (size_t)d->c * d->r * d->s, ohw = (size_t)d->oh * d->ow;
    switch (p) {
    case SD_CPU_CONV_GEMM1X1:
        return 0;
    case SD_CPU_CONV_IM2COL_BATCH: {
        size_t nb = (size_t)conv_batch_samples(d, cap);
        /* columns of nb samples, and the wide GEMM result / gathered gy */
        return (crs + (size_t)d->k) * nb * ohw;
    }
    case SD_CPU_CONV_SHIFT: {
        size_t hp = (size_t)d->h + 2 * (size_t)d->pad, wp = (size_t)d->w + 2 * (size_t)d->pad;
        size_t cs = hp * wp + (size_t)d->s;
        return (size_t)d->c * cs + (size_t)d->k * d->oh * wp +
               (size_t)d->r * d->s * d->k * d->c;
    }
    case SD_CPU_CONV_IM2COL:
    default:
        return crs * (size_t)conv_row_block(d, cap) * (size_t)d->ow;
    }
}

/* Chunks of the per-sample im2col path run at once (conv_fwd and
 * conv_bwd_data over samples), each with its own columns: as many as there
 * are threads, within CONV_COL_CAP elements of workspace in all. */
static int conv_chunks(sd_backend *be, const sd_conv_desc *d)
{
    cpu_ctx *c = be->ctx;
    if (!c->pool || conv_path_for(be, d) != SD_CPU_CONV_IM2COL)
        return 1;
    size_t one = conv_ws_elems(SD_CPU_CONV_IM2COL, d, c->col_cap);
    size_t fit = one ? CONV_COL_CAP / one : 1;
    return fit < 1 ? 1 : fit < (size_t)c->threads ? (int)fit : c->threads;
}

static size_t cpu_conv_workspace(sd_backend *be, const sd_conv_desc *d)
{
    if (!conv_desc_ok(d))
        return 0;
    return conv_ws_elems(conv_path_for(be, d), d, ((cpu_ctx *)be->ctx)->col_cap) *
           (size_t)conv_chunks(be, d) * sizeof(sd_real);
}

/* conv_fwd / conv_bwd_data of the im2col path over samples [lo, hi), with
 * chunk t's columns */
typedef struct conv_job {
    const sd_conv_desc *d;
    size_t cap, one;
    const sd_real *in, *w;
    sd_real beta, *out, *ws;
    int bwd_data;
} conv_job;

static void conv_fwd_im2col(const sd_conv_desc *d, size_t cap, const sd_real *x,
                            const sd_real *w, sd_real beta, sd_real *y, sd_real *col);
static void conv_bwd_data_im2col(const sd_conv_desc *d, size_t cap, const sd_real *gy,
                                 const sd_real *w, sd_real *gx, sd_real *col);

static void conv_chunk(void *arg, int t, int lo, int hi)
{
    const conv_job *j = arg;
    sd_conv_desc s = *j->d;
    s.n = hi - lo;
    size_t chw = (size_t)s.c * s.h * s.w, kohw = (size_t)s.k * s.oh * s.ow;
    sd_real *col = j->ws + (size_t)t * j->one;
    if (j->bwd_data)
        conv_bwd_data_im2col(&s, j->cap, j->in + (size_t)lo * kohw, j->w,
                             j->out + (size_t)lo * chw, col);
    else
        conv_fwd_im2col(&s, j->cap, j->in + (size_t)lo * chw, j->w, j->beta,
                        j->out + (size_t)lo * kohw, col);
}

static void conv_im2col_par(sd_backend *be, const sd_conv_desc *d, int bwd_data,
                            const sd_real *in, const sd_real *w, sd_real beta, sd_real *out,
                            void *ws)
{
    size_t cap = ((cpu_ctx *)be->ctx)->col_cap;
    conv_job j = {d, cap, conv_ws_elems(SD_CPU_CONV_IM2COL, d, cap), in, w, beta, out, ws,
                  bwd_data};
    size_t work = (size_t)d->n * d->k * d->c * d->r * d->s * d->oh * d->ow;
    cpu_for(be, d->n, work, conv_chunks(be, d), conv_chunk, &j);
}

/* Range of output positions o (0 <= o < on) whose input coordinate
 * o*stride - pad + t lies inside [0, in): [*lo, *hi). */
static void conv_valid_range(int on, int in, int stride, int pad, int t, int *lo, int *hi)
{
    int a = pad - t; /* need o*stride >= a */
    int l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int b = in + pad - t; /* need o*stride < b */
    int h = b <= 0 ? 0 : (b - 1) / stride + 1;
    if (h > on)
        h = on;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* col (c*r*s rows, row stride ldcol) = im2col of output rows [oy0, oy1) of
 * one sample x (c,h,w); column (oy - oy0)*ow + ox. */
static void im2col(const sd_conv_desc *d, const sd_real *x, int oy0, int oy1, sd_real *col,
                   size_t ldcol)
{
    const int ow = d->ow, st = d->stride;
    for (int c = 0; c < d->c; c++) {
        const sd_real *xc = x + (size_t)c * d->h * d->w;
        for (int i = 0; i < d->r; i++) {
            int ylo, yhi;
            conv_valid_range(d->oh, d->h, st, d->pad, i, &ylo, &yhi);
            for (int j = 0; j < d->s; j++) {
                int xlo, xhi;
                conv_valid_range(ow, d->w, st, d->pad, j, &xlo, &xhi);
                sd_real *dst = col + ((size_t)(c * d->r + i) * d->s + j) * ldcol;
                for (int oy = oy0; oy < oy1; oy++) {
                    sd_real *drow = dst + (size_t)(oy - oy0) * ow;
                    if (oy < ylo || oy >= yhi) {
                        memset(drow, 0, sizeof(sd_real) * (size_t)ow);
                        continue;
                    }
                    const sd_real *srow = xc + (size_t)(oy * st - d->pad + i) * d->w;
                    for (int ox = 0; ox < xlo; ox++)
                        drow[ox] = 0;
                    if (st == 1) {
                        /* rows of small maps are short: a plain loop (which
                         * the vectoriser handles) beats a memcpy call */
                        const sd_real *sp = srow + xlo - d->pad + j;
                        int len = xhi - xlo;
                        if (len >= 64)
                            memcpy(drow + xlo, sp, sizeof(sd_real) * (size_t)len);
                        else
                            for (int q = 0; q < len; q++)
                                drow[xlo + q] = sp[q];
                    } else {
                        for (int ox = xlo; ox < xhi; ox++)
                            drow[ox] = srow[ox * st - d->pad + j];
                    }
                    for (int ox = xhi; ox < ow; ox++)
                        drow[ox] = 0;
                }
            }
        }
    }
}

/* gx (c,h,w) += col2im(col) for output rows [oy0, oy1): the adjoint of im2col. */
static void col2im_add(const sd_conv_desc *d, const sd_real *col, int oy0, int oy1,
                       size_t ldcol, sd_real *gx)
{
    const int ow = d->ow, st = d->stride;
    for (int c = 0; c < d->c; c++) {
        sd_real *gc = gx + (size_t)c * d->h * d->w;
        for (int i = 0; i < d->r; i++) {
            int ylo, yhi;
            conv_valid_range(d->oh, d->h, st, d->pad, i, &ylo, &yhi);
            if (ylo < oy0)
                ylo = oy0;
            if (yhi > oy1)
                yhi = oy1;
            for (int j = 0; j < d->s; j++) {
                int xlo, xhi;
                conv_valid_range(ow, d->w, st, d->pad, j, &xlo, &xhi);
                const sd_real *src = col + ((size_t)(c * d->r + i) * d->s + j) * ldcol;
                for (int oy = ylo; oy < yhi; oy++) {
                    const sd_real *srow = src + (size_t)(oy - oy0) * ow;
                    sd_real *grow = gc + (size_t)(oy * st - d->pad + i) * d->w - d->pad + j;
                    for (int ox = xlo; ox < xhi; ox++)
                        grow[ox * st] += srow[ox];
                }
            }
        }
    }
}

/* ---- im2col, one sample at a time, in blocks of output rows ---- */

static void conv_fwd_im2col(const sd_conv_desc *d, size_t cap, const sd_real *x,
                            const sd_real *w, sd_real beta, sd_real *y, sd_real *col)
{
    const int crs = d->c * d->r * d->s, ohw = d->oh * d->ow, rb = conv_row_block(d, cap);
    const size_t chw = (size_t)d->c * d->h * d->w, kohw = (size_t)d->k * ohw;
    for (int n = 0; n < d->n; n++)
        for (int oy0 = 0; oy0 < d->oh; oy0 += rb) {
            int oy1 = oy0 + rb < d->oh ? oy0 + rb : d->oh, cols = (oy1 - oy0) * d->ow;
            im2col(d, x + (size_t)n * chw, oy0, oy1, col, (size_t)cols);
            blas_gemm(0, 0, d->k, cols, crs, 1, w, crs, col, cols, beta,
                      y + (size_t)n * kohw + (size_t)oy0 * d->ow, ohw);
        }
}

static void conv_bwd_data_im2col(const sd_conv_desc *d, size_t cap, const sd_real *gy,
                                 const sd_real *w, sd_real *gx, sd_real *col)
{
    const int crs = d->c * d->r * d->s, ohw = d->oh * d->ow, rb = conv_row_block(d, cap);
    const size_t chw = (size_t)d->c * d->h * d->w, kohw = (size_t)d->k * ohw;
    for (int n = 0; n < d->n; n++)
        for (int oy0 = 0; oy0 < d->oh; oy0 += rb) {
            int oy1 = oy0 + rb < d->oh ? oy0 + rb : d->oh, cols = (oy1 - oy0) * d->ow;
            blas_gemm(1, 0, crs, cols, d->k, 1, w, crs,
                      gy + (size_t)n * kohw + (size_t)oy0 * d->ow, ohw, 0, col, cols);
            col2im_add(d, col, oy0, oy1, (size_t)cols, gx + (size_t)n * chw);
        }
}

static void conv_bwd_filter_im2col(const sd_conv_desc *d, size_t cap, const sd_real *x,
                                   const sd_real *gy, sd_real *gw, sd_real *col)
{
    const int crs = d->c * d->r * d->s, ohw = d->oh * d->ow, rb = conv_row_block(d, cap);
    const size_t chw = (size_t)d->c * d->h * d->w, kohw = (size_t)d->k * ohw;
    for (int n = 0; n < d->n; n++)
        for (int oy0 = 0; oy0 < d->oh; oy0 += rb) {
            int oy1 = oy0 + rb < d->oh ? oy0 + rb : d->oh, cols = (oy1 - oy0) * d->ow;
            im2col(d, x + (size_t)n * chw, oy0, oy1, col, (size_t)cols);
            blas_gemm(0, 1, d->k, crs, cols, 1, gy + (size_t)n * kohw + (size_t)oy0 * d->ow, ohw,
                      col, cols, 1, gw, crs);
        }
}

/* ---- batched im2col: nb samples side by side in one wide GEMM ----
 * col (crs, b*ohw) holds the columns of samples n0..n0+b-1; the product
 * (k, b*ohw) is not NCHW, so it goes through tmp (k, b*ohw) and is copied. */

/* tmp (k, b*ohw) = gy of samples n0..n0+b-1 side by side */
static void gather_gy(const sd_conv_desc *d, const sd_real *gy, int n0, int b, sd_real *tmp)
{
    const size_t ohw = (size_t)d->oh * d->ow, ld = (size_t)b * ohw;
    for (int j = 0; j < b; j++)
        for (int k = 0; k < d->k; k++)
            memcpy(tmp + (size_t)k * ld + (size_t)j * ohw,
                   gy + ((size_t)(n0 + j) * d->k + k) * ohw, sizeof(sd_real) * ohw);
}

static void conv_fwd_batch(const sd_conv_desc *d, size_t cap, const sd_real *x,
                           const sd_real *w, sd_real beta, sd_real *y, sd_real *ws)
{
    const int crs = d->c * d->r * d->s, ohw = d->oh * d->ow, nb = conv_batch_samples(d, cap);
    const size_t chw = (size_t)d->c * d->h * d->w, kohw = (size_t)d->k * ohw;
    for (int n0 = 0; n0 < d->n; n0 += nb) {
        int b = d->n - n0 < nb ? d->n - n0 : nb;
        size_t ld = (size_t)b * ohw;
        sd_real *col = ws, *tmp = ws + (size_t)crs * ld;
        for (int j = 0; j < b; j++)
            im2col(d, x + (size_t)(n0 + j) * chw, 0, d->oh, col + (size_t)j * ohw, ld);
        blas_gemm(0, 0, d->k, (int)ld, crs, 1, w, crs, col, (int)ld, 0, tmp, (int)ld);
        for (int j = 0; j < b; j++) {
            sd_real *yn = y + (size_t)(n0 + j) * kohw;
            for (int k = 0; k < d->k; k++) {
                const sd_real *t = tmp + (size_t)k * ld + (size_t)j * ohw;
                sd_real *yk = yn + (size_t)k * ohw;
                if (beta == 0)
                    memcpy(yk, t, sizeof(sd_real) * (size_t)ohw);
                else
                    for (int p = 0; p < ohw; p++)
                        yk[p] = t[p] + beta * yk[p];
            }
        }
    }
}

static void conv_bwd_data_batch(const sd_conv_desc *d, size_t cap, const sd_real *gy,
                                const sd_real *w, sd_real *gx, sd_real *ws)
{
    const int crs = d->c * d->r * d->s, ohw = d->oh * d->ow, nb = conv_batch_samples(d, cap);
    const size_t chw = (size_t)d->c * d->h * d->w;
    for (int n0 = 0; n0 < d->n; n0 += nb) {
        int b = d->n - n0 < nb ? d->n - n0 : nb;
        size_t ld = (size_t)b * ohw;
        sd_real *col = ws, *tmp = ws + (size_t)crs * ld;
        gather_gy(d, gy, n0, b, tmp);
        blas_gemm(1, 0, crs, (int)ld, d->k, 1, w, crs, tmp, (int)ld, 0, col, (int)ld);
        for (int j = 0; j < b; j++)
            col2im_add(d, col + (size_t)j * ohw, 0, d->oh, ld, gx + (size_t)(n0 + j) * chw);
    }
}

static void conv_bwd_filter_batch(const sd_conv_desc *d, size_t cap, const sd_real *x,
                                  const sd_real *gy, sd_real *gw, sd_real *ws)
{
    const int crs = d->c * d->r * d->s, ohw = d->oh * d->ow, nb = conv_batch_samples(d, cap);
    const size_t chw = (size_t)d->c * d->h * d->w;
    for (int n0 = 0; n0 < d->n; n0 += nb) {
        int b = d->n - n0 < nb ? d->n - n0 : nb;
        size_t ld = (size_t)b * ohw;
        sd_real *col = ws, *tmp = ws + (size_t)crs * ld;
        for (int j = 0; j < b; j++)
            im2col(d, x + (size_t)(n0 + j) * chw, 0, d->oh, col + (size_t)j * ohw, ld);
        gather_gy(d, gy, n0, b, tmp);
        blas_gemm(0, 1, d->k, crs, (int)ld, 1, tmp, (int)ld, col, (int)ld, 1, gw, crs);
    }
}

/* ---- 1x1, stride 1, no padding: x (c, hw) is already the GEMM operand ---- */

static void conv_fwd_1x1(const sd_conv_desc *d, const sd_real *x, const sd_real *w, sd_real beta,
                         sd_real *y)
{
    const int hw = d->h * d->w;
    for (int n = 0; n < d->n; n++)
        blas_gemm(0, 0, d->k, hw, d->c, 1, w, d->c, x + (size_t)n * d->c * hw, hw, beta,
                  y + (size_t)n * d->k * hw, hw);
}

static void conv_bwd_data_1x1(const sd_conv_desc *d, const sd_real *gy, const sd_real *w,
                              sd_real *gx)
{
    const int hw = d->h * d->w;
    for (int n = 0; n < d->n; n++)
        blas_gemm(1, 0, d->c, hw, d->k, 1, w, d->c, gy + (size_t)n * d->k * hw, hw, 1,
                  gx + (size_t)n * d->c * hw, hw);
}

static void conv_bwd_filter_1x1(const sd_conv_desc *d, const sd_real *x, const sd_real *gy,
                                sd_real *gw)
{
    const int hw = d->h * d->w;
    for (int n = 0; n < d->n; n++)
        blas_gemm(0, 1, d->k, d->c, hw, 1, gy + (size_t)n * d->k * hw, hw,
                  x + (size_t)n * d->c * hw, hw, 1, gw, d->c);
}

/* ---- shift path (stride 1) ----
 * With the input zero-padded to hp x wp (channel stride cs = hp*wp + s), the
 * output computed on a "wide" oh x wp grid is, for every tap (i,j),
 *   ywide (k, oh*wp) += W_ij (k,c) * xpad[:, i*wp + j ...] (c, oh*wp; ld cs)
 * because a shift by i*wp + j of the flattened padded image is exactly the
 * input seen by tap (i,j); columns ox >= ow of the wide grid read across row
 * ends and are discarded.  The extra s elements per channel keep every read
 * and write of a tap inside its own channel (no two GEMM rows alias). */

typedef struct shift_geom {
    size_t hp, wp, cs, wide; /* padded size, channel stride, oh*wp */
} shift_geom;

static shift_geom shift_geometry(const sd_conv_desc *d)
{
    shift_geom g;
    g.hp = (size_t)d->h + 2 * (size_t)d->pad;
    g.wp = (size_t)d->w + 2 * (size_t)d->pad;
    g.cs = g.hp * g.wp + (size_t)d->s;
    g.wide = (size_t)d->oh * g.wp;
    return g;
}

static void shift_pad(const sd_conv_desc *d, const shift_geom *g, const sd_real *x, sd_real *xp)
{
    memset(xp, 0, sizeof(sd_real) * (size_t)d->c * g->cs);
    for (int c = 0; c < d->c; c++)
        for (int y = 0; y < d->h; y++)
            memcpy(xp + (size_t)c * g->cs + (size_t)(y + d->pad) * g->wp + d->pad,
                   x + ((size_t)c * d->h + y) * d->w, sizeof(sd_real) * (size_t)d->w);
}

/* wperm[(i*s+j)][k][c] = w[k][c][i][j] */
static void shift_permute_w(const sd_conv_desc *d, const sd_real *w, sd_real *wp)
{
    const size_t rs = (size_t)d->r * d->s, kc = (size_t)d->k * d->c;
    for (int k = 0; k < d->k; k++)
        for (int c = 0; c < d->c; c++)
            for (size_t t = 0; t < rs; t++)
                wp[t * kc + (size_t)k * d->c + c] = w[((size_t)k * d->c + c) * rs + t];
}

/* wide (k, oh*wp) = gy of one sample, zero in the discarded columns */
static void shift_widen(const sd_conv_desc *d, const shift_geom *g, const sd_real *gy,
                        sd_real *wide)
{
    for (int k = 0; k < d->k; k++)
        for (int y = 0; y < d->oh; y++) {
            sd_real *dst = wide + (size_t)k * g->wide + (size_t)y * g->wp;
            memcpy(dst, gy + ((size_t)k * d->oh + y) * d->ow, sizeof(sd_real) * (size_t)d->ow);
            for (size_t x = (size_t)d->ow; x < g->wp; x++)
                dst[x] = 0;
        }
}

static void conv_fwd_shift(const sd_conv_desc *d, const sd_real *x, const sd_real *w,
                           sd_real beta, sd_real *y, sd_real *ws)
{
    shift_geom g = shift_geometry(d);
    const size_t kc = (size_t)d->k * d->c, ohw = (size_t)d->oh * d->ow;
    sd_real *xp = ws, *wide = xp + (size_t)d->c * g.cs, *wperm = wide + (size_t)d->k * g.wide;
    shift_permute_w(d, w, wperm);
    for (int n = 0; n < d->n; n++) {
        shift_pad(d, &g, x + (size_t)n * d->c * d->h * d->w, xp);
        for (int i = 0; i < d->r; i++)
            for (int j = 0; j < d->s; j++) {
                size_t t = (size_t)i * d->s + j;
                blas_gemm(0, 0, d->k, (int)g.wide, d->c, 1, wperm + t * kc, d->c,
                          xp + (size_t)i * g.wp + j, (int)g.cs, t == 0 ? 0 : 1, wide,
                          (int)g.wide);
            }
        sd_real *yn = y + (size_t)n * d->k * ohw;
        for (int k = 0; k < d->k; k++)
            for (int oy = 0; oy < d->oh; oy++) {
                const sd_real *src = wide + (size_t)k * g.wide + (size_t)oy * g.wp;
                sd_real *dst = yn + (size_t)k * ohw + (size_t)oy * d->ow;
                for (int ox = 0; ox < d->ow; ox++)
                    dst[ox] = beta == 0 ? src[ox] : src[ox] + beta * dst[ox];
            }
    }
}

static void conv_bwd_data_shift(const sd_conv_desc *d, const sd_real *gy, const sd_real *w,
                                sd_real *gx, sd_real *ws)
{
    shift_geom g = shift_geometry(d);
    const size_t kc = (size_t)d->k * d->c, ohw = (size_t)d->oh * d->ow;
    sd_real *gxp = ws, *wide = gxp + (size_t)d->c * g.cs, *wperm = wide + (size_t)d->k * g.wide;
    shift_permute_w(d, w, wperm);
    for (int n = 0; n < d->n; n++) {
        shift_widen(d, &g, gy + (size_t)n * d->k * ohw, wide);
        memset(gxp, 0, sizeof(sd_real) * (size_t)d->c * g.cs);
        for (int i = 0; i < d->r; i++)
            for (int j = 0; j < d->s; j++) {
                size_t t = (size_t)i * d->s + j;
                blas_gemm(1, 0, d->c, (int)g.wide, d->k, 1, wperm + t * kc, d->c, wide,
                          (int)g.wide, 1, gxp + (size_t)i * g.wp + j, (int)g.cs);
            }
        sd_real *gxn = gx + (size_t)n * d->c * d->h * d->w;
        for (int c = 0; c < d->c; c++)
            for (int y = 0; y < d->h; y++) {
                const sd_real *src = gxp + (size_t)c * g.cs + (size_t)(y + d->pad) * g.wp + d->pad;
                sd_real *dst = gxn + ((size_t)c * d->h + y) * d->w;
                for (int x = 0; x < d->w; x++)
                    dst[x] += src[x];
            }
    }
}

static void conv_bwd_filter_shift(const sd_conv_desc *d, const sd_real *x, const sd_real *gy,
                                  sd_real *gw, sd_real *ws)
{
    shift_geom g = shift_geometry(d);
    const size_t kc = (size_t)d->k * d->c, ohw = (size_t)d->oh * d->ow;
    const size_t rs = (size_t)d->r * d->s;
    sd_real *xp = ws, *wide = xp + (size_t)d->c * g.cs, *gacc = wide + (size_t)d->k * g.wide;
    memset(gacc, 0, sizeof(sd_real) * rs * kc);
    for (int n = 0; n < d->n; n++) {
        shift_pad(d, &g, x + (size_t)n * d->c * d->h * d->w, xp);
        shift_widen(d, &g, gy + (size_t)n * d->k * ohw, wide);
        for (int i = 0; i < d->r; i++)
            for (int j = 0; j < d->s; j++) {
                size_t t = (size_t)i * d->s + j;
                blas_gemm(0, 1, d->k, d->c, (int)g.wide, 1, wide, (int)g.wide,
                          xp + (size_t)i * g.wp + j, (int)g.cs, 1, gacc + t * kc, d->c);
            }
    }
    for (int k = 0; k < d->k; k++)
        for (int c = 0; c < d->c; c++)
            for (size_t t = 0; t < rs; t++)
                gw[((size_t)k * d->c + c) * rs + t] += gacc[t * kc + (size_t)k * d->c + c];
}

static int conv_check(sd_backend *be, sd_error *err, const sd_conv_desc *d, const void *ws, const char *op)
{
    if (!conv_desc_ok(d))
        return CPU_FAIL(err, SD_EINVAL,
                        "cpu %s: inconsistent geometry n=%d c=%d h=%d w=%d k=%d r=%d s=%d "
                        "stride=%d pad=%d oh=%d ow=%d",
                        op, d->n, d->c, d->h, d->w, d->k, d->r, d->s, d->stride, d->pad, d->oh,
                        d->ow);
    if (!ws && conv_ws_elems(conv_path_for(be, d), d, ((cpu_ctx *)be->ctx)->col_cap) > 0)
        return CPU_FAIL(err, SD_EINVAL, "cpu %s: workspace missing", op);
    return SD_OK;
}

static int cpu_conv_fwd(sd_backend *be, sd_error *err, const sd_conv_desc *d, const sd_real *x,
                        const sd_real *w, sd_real beta, sd_real *y, void *ws)
{
    int rc = conv_check(be, err, d, ws, "conv_fwd");
    if (rc)
        return rc;
    const size_t cap = ((cpu_ctx *)be->ctx)->col_cap;
    switch (conv_path_for(be, d)) {
    case SD_CPU_CONV_GEMM1X1: conv_fwd_1x1(d, x, w, beta, y); break;
    case SD_CPU_CONV_SHIFT: conv_fwd_shift(d, x, w, beta, y, ws); break;
    case SD_CPU_CONV_IM2COL_BATCH: conv_fwd_batch(d, cap, x, w, beta, y, ws); break;
    default: conv_im2col_par(be, d, 0, x, w, beta, y, ws); break;
    }
    return SD_OK;
}

static int cpu_conv_bwd_data(sd_backend *be, sd_error *err, const sd_conv_desc *d, const sd_real *gy,
                             const sd_real *w, sd_real *gx, void *ws)
{
    int rc = conv_check(be, err, d, ws, "conv_bwd_data");
    if (rc)
        return rc;
    const size_t cap = ((cpu_ctx *)be->ctx)->col_cap;
    switch (conv_path_for(be, d)) {
    case SD_CPU_CONV_GEMM1X1: conv_bwd_data_1x1(d, gy, w, gx); break;
    case SD_CPU_CONV_SHIFT: conv_bwd_data_shift(d, gy, w, gx, ws); break;
    case SD_CPU_CONV_IM2COL_BATCH: conv_bwd_data_batch(d, cap, gy, w, gx, ws); break;
    default: conv_im2col_par(be, d, 1, gy, w, 0, gx, ws); break;
    }
    return SD_OK;
}

static int cpu_conv_bwd_filter(sd_backend *be, sd_error *err, const sd_conv_desc *d, const sd_real *x,
                               const sd_real *gy, sd_real *gw, void *ws)
{
    int rc = conv_check(be, err, d, ws, "conv_bwd_filter");
    if (rc)
        return rc;
    const size_t cap = ((cpu_ctx *)be->ctx)->col_cap;
    switch (conv_path_for(be, d)) {
    case SD_CPU_CONV_GEMM1X1: conv_bwd_filter_1x1(d, x, gy, gw); break;
    case SD_CPU_CONV_SHIFT: conv_bwd_filter_shift(d, x, gy, gw, ws); break;
    case SD_CPU_CONV_IM2COL_BATCH: conv_bwd_filter_batch(d, cap, x, gy, gw, ws); break;
    default: conv_bwd_filter_im2col(d, cap, x, gy, gw, ws); break;
    }
    return SD_OK;
}

static int cpu_bias_fwd(sd_backend *be, sd_error *err, int n, int c, int hw, const sd_real *b, sd_real *y)
{
    (void)be;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            sd_real *yc = y + ((size_t)i * c + ch) * hw, bc = b[ch];
            for (int p = 0; p < hw; p++)
                yc[p] += bc;
        }
    return SD_OK;
}

static int cpu_bias_bwd(sd_backend *be, sd_error *err, int n, int c, int hw, const sd_real *gy, sd_real *gb)
{
    (void)be;
    for (int ch = 0; ch < c; ch++) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            const sd_real *g = gy + ((size_t)i * c + ch) * hw;
            for (int p = 0; p < hw; p++)
                s += g[p];
        }
        gb[ch] += (sd_real)s;
    }
    return SD_OK;
}

/* ------------------------------------------------------------------------ */
/* activations                                                              */
/* ------------------------------------------------------------------------ */

/* Both loops are selects, not branches: on data of random sign a branch is
 * mispredicted half the time (~12 ns per element measured, against ~1 ns for
 * the vectorised select).  d is loaded unconditionally so the compiler may
 * if-convert; adding 0 leaves out unchanged. */
static int cpu_relu_fwd(sd_backend *be, sd_error *err, size_t n, const sd_real *x, sd_real *y)
{
    (void)be;
    for (size_t i = 0; i < n; i++) {
        sd_real v = x[i];
        y[i] = v > 0 ? v : 0;
    }
    return SD_OK;
}

static int cpu_relu_mask(sd_backend *be, sd_error *err, size_t n, const sd_real *x, const sd_real *d,
                         sd_real *out)
{
    (void)be;
    for (size_t i = 0; i < n; i++) {
        sd_real dv = d[i];
        out[i] += x[i] > 0 ? dv : 0;
    }
    return SD_OK;
}

/* ------------------------------------------------------------------------ */
/* pooling                                                                  */
/* ------------------------------------------------------------------------ */

static int pool_check(sd_backend *be, sd_error *err, const sd_pool_desc *d, const char *op)
{
    if (d->n < 0 || d->c < 1 || d->h < 1 || d->w < 1 || d->oh < 1 || d->ow < 1 ||
        (!d->adaptive && (d->kh < 1 || d->kw < 1 || d->sh < 1 || d->sw < 1 || d->ph < 0 ||
                          d->pw < 0)))
        return CPU_FAIL(err, SD_EINVAL, "cpu %s: bad pooling geometry", op);
    return SD_OK;
}

/* Index (within one h*w plane) of the first maximum of window (oy,ox) in
 * row-major order; cells outside the input (padding, ceil_mode overhang) are
 * skipped, so they never win.  -1 for a window with no input cell (cannot
 * happen with shapes from sd_layer_finish).  NaN wins, as in PyTorch. */
/* first maximum of four in order, a NaN winning (the rule of maxpool_arg) */
static inline int first_max4(sd_real a, sd_real b, sd_real c, sd_real d)
{
    int k = 0;
    sd_real m = a;
    int t = (b > m) | ((b != b) & (m == m));
    k = t ? 1 : k;
    m = t ? b : m;
    t = (c > m) | ((c != c) & (m == m));
    k = t ? 2 : k;
    m = t ? c : m;
    t = (d > m) | ((d != d) & (m == m));
    return t ? 3 : k;
}

static long maxpool_arg_general(const sd_pool_desc *d, const sd_real *xc, int oy, int ox);

/* The argmax of window (oy, ox): 2x2 windows without padding that lie inside
 * the input (LeNet, VGG and ConvNet pools) are unrolled here, inline in the
 * callers' loops; everything else takes the general scan. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline long maxpool_arg(const sd_pool_desc *d, const sd_real *xc, int oy, int ox)
{
    if (d->kh == 2 && d->kw == 2 && d->ph == 0 && d->pw == 0) {
        int ya = oy * d->sh, xa = ox * d->sw;
        if (ya + 1 < d->h && xa + 1 < d->w) {
            const sd_real *r0 = xc + (size_t)ya * d->w + xa, *r1 = r0 + d->w;
            int k = first_max4(r0[0], r0[1], r1[0], r1[1]);
            return (long)(ya + (k >> 1)) * d->w + xa + (k & 1);
        }
    }
    return maxpool_arg_general(d, xc, oy, ox);
}

static long maxpool_arg_general(const sd_pool_desc *d, const sd_real *xc, int oy, int ox)
{
    int y0 = oy * d->sh - d->ph, x0 = ox * d->sw - d->pw;
    int y1 = y0 + d->kh, x1 = x0 + d->kw;
    if (y0 < 0) y0 = 0;
    if (x0 < 0) x0 = 0;
    if (y1 > d->h) y1 = d->h;
    if (x1 > d->w) x1 = d->w;
    long best = -1;
    sd_real bv = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            sd_real v = xc[(size_t)y * d->w + x];
            if (best < 0 || v > bv || (v != v && bv == bv)) {
                best = (long)y * d->w + x;
                bv = v;
            }
        }
    return best;
}

static int cpu_maxpool_fwd(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x, sd_real *y,
                           int32_t *arg)
{
    int rc = pool_check(be, err, d, "maxpool_fwd");
    if (rc)
        return rc;
    if (arg && (size_t)d->h * d->w > 0x7fffffff)
        arg = NULL; /* an index would not fit: recompute in the backward */
    const size_t hw = (size_t)d->h * d->w, ohw = (size_t)d->oh * d->ow;
    if (d->kh == 2 && d->kw == 2 && d->sh == 2 && d->sw == 2 && d->ph == 0 && d->pw == 0 &&
        2 * d->oh <= d->h && 2 * d->ow <= d->w && arg) {
        /* 2x2/2 windows all inside the input (LeNet, VGG, ConvNet): one
         * straight loop per output row, the rule of maxpool_arg */
        for (size_t pl = 0; pl < (size_t)d->n * d->c; pl++) {
            const sd_real *xc = x + pl * hw;
            for (int oy = 0; oy < d->oh; oy++) {
                const sd_real *r0 = xc + (size_t)(2 * oy) * d->w, *r1 = r0 + d->w;
                sd_real *yr = y + pl * ohw + (size_t)oy * d->ow;
                int32_t *ar = arg + pl * ohw + (size_t)oy * d->ow;
                int32_t base = (int32_t)(2 * oy * d->w);
                for (int ox = 0; ox < d->ow; ox++) {
                    sd_real v[4] = {r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]};
                    int k = first_max4(v[0], v[1], v[2], v[3]);
                    yr[ox] = v[k];
                    ar[ox] = base + (k >> 1) * (int32_t)d->w + 2 * ox + (k & 1);
                }
            }
        }
        return SD_OK;
    }
    for (size_t pl = 0; pl < (size_t)d->n * d->c; pl++) {
        const sd_real *xc = x + pl * hw;
        sd_real *yc = y + pl * ohw;
        int32_t *ac = arg ? arg + pl * ohw : NULL;
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                long a = maxpool_arg(d, xc, oy, ox);
                size_t o = (size_t)oy * d->ow + ox;
                yc[o] = a < 0 ? 0 : xc[a];
                if (ac)
                    ac[o] = (int32_t)a;
            }
    }
    return SD_OK;
}

/* The argmaxes kept by maxpool_fwd are used when given and when the plane
 * is small enough for the forward to have written them. */
static int use_arg(const sd_pool_desc *d, const int32_t *arg)
{
    return arg && (size_t)d->h * d->w <= 0x7fffffff;
}

static int cpu_maxpool_bwd(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                           const int32_t *arg, const sd_real *gy, sd_real *gx)
{
    int rc = pool_check(be, err, d, "maxpool_bwd");
    if (rc)
        return rc;
    const size_t hw = (size_t)d->h * d->w, ohw = (size_t)d->oh * d->ow;
    const size_t planes = (size_t)d->n * d->c;
    if (use_arg(d, arg)) {
        for (size_t pl = 0; pl < planes; pl++) {
            const int32_t *ac = arg + pl * ohw;
            const sd_real *gyc = gy + pl * ohw;
            sd_real *gxc = gx + pl * hw;
            for (size_t o = 0; o < ohw; o++)
                if (ac[o] >= 0)
                    gxc[ac[o]] += gyc[o];
        }
        return SD_OK;
    }
    for (size_t pl = 0; pl < planes; pl++) {
        const sd_real *xc = x + pl * hw, *gyc = gy + pl * ohw;
        sd_real *gxc = gx + pl * hw;
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                long a = maxpool_arg(d, xc, oy, ox);
                if (a >= 0)
                    gxc[a] += gyc[(size_t)oy * d->ow + ox];
            }
    }
    return SD_OK;
}

static int cpu_maxpool_gather(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                              const int32_t *arg, const sd_real *dx, sd_real *dy)
{
    int rc = pool_check(be, err, d, "maxpool_gather");
    if (rc)
        return rc;
    const size_t hw = (size_t)d->h * d->w, ohw = (size_t)d->oh * d->ow;
    const size_t planes = (size_t)d->n * d->c;
    if (use_arg(d, arg)) {
        for (size_t pl = 0; pl < planes; pl++) {
            const int32_t *ac = arg + pl * ohw;
            const sd_real *dxc = dx + pl * hw;
            sd_real *dyc = dy + pl * ohw;
            for (size_t o = 0; o < ohw; o++)
                dyc[o] = ac[o] < 0 ? 0 : dxc[ac[o]];
        }
        return SD_OK;
    }
    for (size_t pl = 0; pl < planes; pl++) {
        const sd_real *xc = x + pl * hw, *dxc = dx + pl * hw;
        sd_real *dyc = dy + pl * ohw;
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                long a = maxpool_arg(d, xc, oy, ox);
                dyc[(size_t)oy * d->ow + ox] = a < 0 ? 0 : dxc[a];
            }
    }
    return SD_OK;
}

/* One axis of an average-pool window: cell o covers input [*lo, *hi) and,
 * for fixed windows, *full cells of the padded input.  Fixed windows follow
 * PyTorch's avg_pool2d: the window is first clipped to the padded input (so a
 * ceil_mode overhang beyond the padding never counts), count_include_pad
 * divides by that size, otherwise by the number of input cells.  Adaptive
 * windows are [floor(o*in/on), ceil((o+1)*in/on)).  Separable, so the row
 * part is computed once per output row. */
static inline void avg_axis(const sd_pool_desc *d, int o, int in, int on, int k, int st, int pad,
                            int *lo, int *hi, int *full)
{
    if (d->adaptive) {
        *lo = (int)(((long)o * in) / on);
        *hi = (int)(((long)(o + 1) * in + on - 1) / on);
        *full = *hi - *lo;
        return;
    }
    int a0 = o * st - pad, a1 = a0 + k;
    if (a1 > in + pad)
        a1 = in + pad;
    *full = a1 - a0;
    *lo = a0 < 0 ? 0 : a0;
    *hi = a1 > in ? in : a1;
}

static inline double avg_div(const sd_pool_desc *d, int yl, int yh, int yf, int xl, int xh,
                             int xf)
{
    if (!d->adaptive && d->count_include_pad)
        return (double)yf * xf;
    return (double)(yh - yl) * (xh - xl);
}

/* 2x2/2 windows without padding, all inside the input (the ConvNet's and
 * VGG-style pools): every window is full, so the divisor is 4 whatever the
 * padding rule. */
static int avg_2x2(const sd_pool_desc *d)
{
    return !d->adaptive && d->kh == 2 && d->kw == 2 && d->sh == 2 && d->sw == 2 && d->ph == 0 &&
           d->pw == 0 && 2 * d->oh <= d->h && 2 * d->ow <= d->w;
}

static int cpu_avgpool_fwd(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x, sd_real *y)
{
    int rc = pool_check(be, err, d, "avgpool_fwd");
    if (rc)
        return rc;
    const size_t hw = (size_t)d->h * d->w, ohw = (size_t)d->oh * d->ow;
    if (avg_2x2(d)) { /* the general loop below, unrolled: same sums, same order */
        for (size_t pl = 0; pl < (size_t)d->n * d->c; pl++)
            for (int oy = 0; oy < d->oh; oy++) {
                const sd_real *r0 = x + pl * hw + (size_t)(2 * oy) * d->w, *r1 = r0 + d->w;
                sd_real *yr = y + pl * ohw + (size_t)oy * d->ow;
                for (int ox = 0; ox < d->ow; ox++) {
                    double s = 0;
                    s += r0[2 * ox];
                    s += r0[2 * ox + 1];
                    s += r1[2 * ox];
                    s += r1[2 * ox + 1];
                    yr[ox] = (sd_real)(s / 4.0);
                }
            }
        return SD_OK;
    }
    for (size_t pl = 0; pl < (size_t)d->n * d->c; pl++) {
        const sd_real *xc = x + pl * hw;
        sd_real *yc = y + pl * ohw;
        for (int oy = 0; oy < d->oh; oy++) {
            int y0, y1, yf;
            avg_axis(d, oy, d->h, d->oh, d->kh, d->sh, d->ph, &y0, &y1, &yf);
            for (int ox = 0; ox < d->ow; ox++) {
                int x0, x1, xf;
                avg_axis(d, ox, d->w, d->ow, d->kw, d->sw, d->pw, &x0, &x1, &xf);
                double div = avg_div(d, y0, y1, yf, x0, x1, xf), s = 0;
                for (int yy = y0; yy < y1; yy++) {
                    const sd_real *row = xc + (size_t)yy * d->w;
                    for (int xx = x0; xx < x1; xx++)
                        s += row[xx];
                }
                yc[(size_t)oy * d->ow + ox] = div > 0 ? (sd_real)(s / div) : 0;
            }
        }
    }
    return SD_OK;
}

static int cpu_avgpool_bwd(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *gy, sd_real *gx)
{
    int rc = pool_check(be, err, d, "avgpool_bwd");
    if (rc)
        return rc;
    const size_t hw = (size_t)d->h * d->w, ohw = (size_t)d->oh * d->ow;
    if (avg_2x2(d)) { /* windows do not overlap: each cell gets one share */
        for (size_t pl = 0; pl < (size_t)d->n * d->c; pl++)
            for (int oy = 0; oy < d->oh; oy++) {
                sd_real *r0 = gx + pl * hw + (size_t)(2 * oy) * d->w, *r1 = r0 + d->w;
                const sd_real *gr = gy + pl * ohw + (size_t)oy * d->ow;
                for (int ox = 0; ox < d->ow; ox++) {
                    sd_real g = (sd_real)(gr[ox] / 4.0);
                    r0[2 * ox] += g;
                    r0[2 * ox + 1] += g;
                    r1[2 * ox] += g;
                    r1[2 * ox + 1] += g;
                }
            }
        return SD_OK;
    }
    for (size_t pl = 0; pl < (size_t)d->n * d->c; pl++) {
        const sd_real *gyc = gy + pl * ohw;
        sd_real *gxc = gx + pl * hw;
        for (int oy = 0; oy < d->oh; oy++) {
            int y0, y1, yf;
            avg_axis(d, oy, d->h, d->oh, d->kh, d->sh, d->ph, &y0, &y1, &yf);
            for (int ox = 0; ox < d->ow; ox++) {
                int x0, x1, xf;
                avg_axis(d, ox, d->w, d->ow, d->kw, d->sw, d->pw, &x0, &x1, &xf);
                double div = avg_div(d, y0, y1, yf, x0, x1, xf);
                if (div <= 0)
                    continue;
                sd_real g = (sd_real)(gyc[(size_t)oy * d->ow + ox] / div);
                for (int yy = y0; yy < y1; yy++) {
                    sd_real *row = gxc + (size_t)yy * d->w;
                    for (int xx = x0; xx < x1; xx++)
                        row[xx] += g;
                }
            }
        }
    }
    return SD_OK;
}

/* ------------------------------------------------------------------------ */
/* batch normalisation                                                      */
/* ------------------------------------------------------------------------ */
/*
 * Notation per channel (m = n*hw values): a = invstd, xh = (x - mean) a,
 * <u> = (1/m) sum u.  In batch mode mean and var are functions of x:
 *   d mean = <dx>,  d var = (2/m) sum (x-mean) dx = (2/a) <xh dx>,
 *   d a = -1/2 (var+eps)^(-3/2) d var = -a^2 <xh dx>,
 *   d xh = a (dx - <dx>) + (x-mean) d a = a (dx - <dx> - xh <xh dx>).
 * Forward:            y = g xh + b
 * Forward tangent:    dy = dg xh + g dxh + db
 * Backward (VJP):     gx = g a (gy - <gy> - xh <gy xh>),
 *                     gg = sum gy xh,  gb = sum gy
 *   (the Jacobian of xh in x is a (I - 11'/m - xh xh'/m), symmetric, hence
 *   the same shape as the tangent).
 * Backward tangent, along (dx, dg, dgy) with A = <gy>, B = <gy xh>:
 *   dA = <dgy>,  dB = <dgy xh> + <gy dxh>
 *      = <dgy xh> + a (<gy dx> - A <dx> - B <xh dx>),
 *   d gx = (dg a + g da)(gy - A - xh B) + g a (dgy - dA - dxh B - xh dB),
 *   d gg = m dB,  d gb = m dA.
 * Frozen mode: mean, var are constants, so a is fixed and
 *   gx = g a gy,  dy = dg xh + g a dx + db,
 *   d gx = dg a gy + g a dgy,  d gg = sum (dgy xh + gy a dx),  d gb = sum dgy.
 * Every per-channel sum is accumulated in double.  In the batch-mode ops the
 * y and gradients use the mean and invstd as stored (rounded to sd_real), so
 * forward and the other entry points see the same numbers.
 * A NULL tangent input means zero and a NULL output means "not wanted".
 */

static int bn_check(sd_backend *be, sd_error *err, const sd_bn_desc *d, const char *op)
{
    if (d->n < 1 || d->c < 1 || d->hw < 1 || !(d->eps > 0))
        return CPU_FAIL(err, SD_EINVAL, "cpu %s: bad geometry n=%d c=%d hw=%d eps=%g", op, d->n,
                        d->c, d->hw, d->eps);
    return SD_OK;
}

#define BN_AT(p, d, i, ch) ((p) + ((size_t)(i) * (d)->c + (ch)) * (d)->hw)

typedef struct bn_job {
    const sd_bn_desc *d;
    const sd_real *x, *gamma, *beta, *mean, *invstd, *gy;
    sd_real *y, *mean_out, *invstd_out, *gx, *ggamma, *gbeta;
} bn_job;

/* channels [lo, hi) of bn_fwd_train */
static void bn_fwd_train_ch(void *arg, int t, int lo, int hi)
{
    const bn_job *j = arg;
    const sd_bn_desc *d = j->d;
    (void)t;
    const double m = (double)d->n * d->hw;
    for (int ch = lo; ch < hi; ch++) {
        double s = 0, v = 0;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(j->x, d, i, ch);
            for (int p = 0; p < d->hw; p++)
                s += xc[p];
        }
        double mu = s / m;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(j->x, d, i, ch);
            for (int p = 0; p < d->hw; p++) {
                double t2 = xc[p] - mu;
                v += t2 * t2;
            }
        }
        j->mean_out[ch] = (sd_real)mu;
        j->invstd_out[ch] = (sd_real)(1.0 / sqrt(v / m + d->eps));
        double mur = j->mean_out[ch], a = j->invstd_out[ch], g = j->gamma[ch], b = j->beta[ch];
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(j->x, d, i, ch);
            sd_real *yc = BN_AT(j->y, d, i, ch);
            for (int p = 0; p < d->hw; p++)
                yc[p] = (sd_real)(g * ((xc[p] - mur) * a) + b);
        }
    }
}

/* Batch norm over channels: each channel's sums are sequential, so the
 * channels may run on different threads (cpu_for) with the same bits. */
static int cpu_bn_fwd_train(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                            const sd_real *gamma, const sd_real *beta, sd_real *y,
                            sd_real *mean, sd_real *invstd)
{
    int rc = bn_check(be, err, d, "bn_fwd_train");
    if (rc)
        return rc;
    bn_job j = {.d = d, .x = x, .gamma = gamma, .beta = beta, .y = y, .mean_out = mean,
                .invstd_out = invstd};
    cpu_for(be, d->c, (size_t)d->n * d->c * d->hw, d->c, bn_fwd_train_ch, &j);
    return SD_OK;
}

/* channels [lo, hi) of bn_bwd_train */
static void bn_bwd_train_ch(void *arg, int t, int lo, int hi)
{
    const bn_job *j = arg;
    const sd_bn_desc *d = j->d;
    (void)t;
    const double m = (double)d->n * d->hw;
    for (int ch = lo; ch < hi; ch++) {
        double mu = j->mean[ch], a = j->invstd[ch], g = j->gamma[ch], sg = 0, sgx = 0;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(j->x, d, i, ch), *gyc = BN_AT(j->gy, d, i, ch);
            for (int p = 0; p < d->hw; p++) {
                sg += gyc[p];
                sgx += gyc[p] * ((xc[p] - mu) * a);
            }
        }
        if (j->gbeta)
            j->gbeta[ch] += (sd_real)sg;
        if (j->ggamma)
            j->ggamma[ch] += (sd_real)sgx;
        if (!j->gx)
            continue;
        double A = sg / m, B = sgx / m, ga = g * a;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(j->x, d, i, ch), *gyc = BN_AT(j->gy, d, i, ch);
            sd_real *gxc = BN_AT(j->gx, d, i, ch);
            for (int p = 0; p < d->hw; p++) {
                double xh = (xc[p] - mu) * a;
                gxc[p] += (sd_real)(ga * (gyc[p] - A - xh * B));
            }
        }
    }
}

static int cpu_bn_bwd_train(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                            const sd_real *gamma, const sd_real *mean, const sd_real *invstd,
                            const sd_real *gy, sd_real *gx, sd_real *ggamma, sd_real *gbeta)
{
    int rc = bn_check(be, err, d, "bn_bwd_train");
    if (rc)
        return rc;
    bn_job j = {.d = d, .x = x, .gamma = gamma, .mean = mean, .invstd = invstd, .gy = gy,
                .gx = gx, .ggamma = ggamma, .gbeta = gbeta};
    cpu_for(be, d->c, (size_t)d->n * d->c * d->hw, d->c, bn_bwd_train_ch, &j);
    return SD_OK;
}

static int cpu_bn_fwd_tangent_train(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                                    const sd_real *dx, const sd_real *gamma,
                                    const sd_real *dgamma, const sd_real *dbeta,
                                    const sd_real *mean, const sd_real *invstd, sd_real *dy)
{
    int rc = bn_check(be, err, d, "bn_fwd_tangent_train");
    if (rc)
        return rc;
    const double m = (double)d->n * d->hw;
    for (int ch = 0; ch < d->c; ch++) {
        double mu = mean[ch], a = invstd[ch], g = gamma[ch];
        double dg = dgamma ? dgamma[ch] : 0, db = dbeta ? dbeta[ch] : 0;
        double sdx = 0, sxdx = 0;
        if (dx)
            for (int i = 0; i < d->n; i++) {
                const sd_real *xc = BN_AT(x, d, i, ch), *dxc = BN_AT(dx, d, i, ch);
                for (int p = 0; p < d->hw; p++) {
                    sdx += dxc[p];
                    sxdx += ((xc[p] - mu) * a) * dxc[p];
                }
            }
        double D = sdx / m, C = sxdx / m;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch);
            const sd_real *dxc = dx ? BN_AT(dx, d, i, ch) : NULL;
            sd_real *dyc = BN_AT(dy, d, i, ch);
            for (int p = 0; p < d->hw; p++) {
                double xh = (xc[p] - mu) * a;
                double dxh = dxc ? a * (dxc[p] - D - xh * C) : 0;
                dyc[p] = (sd_real)(dg * xh + g * dxh + db);
            }
        }
    }
    return SD_OK;
}

static int cpu_bn_bwd_tangent_train(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                                    const sd_real *dx, const sd_real *gamma,
                                    const sd_real *dgamma, const sd_real *mean,
                                    const sd_real *invstd, const sd_real *gy,
                                    const sd_real *dgy, sd_real *dgx, sd_real *dggamma,
                                    sd_real *dgbeta)
{
    int rc = bn_check(be, err, d, "bn_bwd_tangent_train");
    if (rc)
        return rc;
    const double m = (double)d->n * d->hw;
    for (int ch = 0; ch < d->c; ch++) {
        double mu = mean[ch], a = invstd[ch], g = gamma[ch];
        double dg = dgamma ? dgamma[ch] : 0;
        /* sums of gy, gy xh, dx, xh dx, gy dx, dgy, dgy xh */
        double s_gy = 0, s_gyxh = 0, s_dx = 0, s_xhdx = 0, s_gydx = 0, s_dgy = 0, s_dgyxh = 0;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch), *gyc = BN_AT(gy, d, i, ch);
            const sd_real *dxc = dx ? BN_AT(dx, d, i, ch) : NULL;
            const sd_real *dgyc = dgy ? BN_AT(dgy, d, i, ch) : NULL;
            for (int p = 0; p < d->hw; p++) {
                double xh = (xc[p] - mu) * a, gv = gyc[p];
                s_gy += gv;
                s_gyxh += gv * xh;
                if (dxc) {
                    s_dx += dxc[p];
                    s_xhdx += xh * dxc[p];
                    s_gydx += gv * dxc[p];
                }
                if (dgyc) {
                    s_dgy += dgyc[p];
                    s_dgyxh += dgyc[p] * xh;
                }
            }
        }
        double A = s_gy / m, B = s_gyxh / m, D = s_dx / m, C = s_xhdx / m;
        double dA = s_dgy / m;
        double dB = s_dgyxh / m + a * (s_gydx / m - A * D - B * C);
        double da = -a * a * C;
        if (dgbeta)
            dgbeta[ch] += (sd_real)(m * dA);
        if (dggamma)
            dggamma[ch] += (sd_real)(m * dB);
        if (!dgx)
            continue;
        double c1 = dg * a + g * da, ga = g * a;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch), *gyc = BN_AT(gy, d, i, ch);
            const sd_real *dxc = dx ? BN_AT(dx, d, i, ch) : NULL;
            const sd_real *dgyc = dgy ? BN_AT(dgy, d, i, ch) : NULL;
            sd_real *o = BN_AT(dgx, d, i, ch);
            for (int p = 0; p < d->hw; p++) {
                double xh = (xc[p] - mu) * a;
                double dxh = dxc ? a * (dxc[p] - D - xh * C) : 0;
                double dgv = dgyc ? dgyc[p] : 0;
                o[p] += (sd_real)(c1 * (gyc[p] - A - xh * B) +
                                  ga * (dgv - dA - dxh * B - xh * dB));
            }
        }
    }
    return SD_OK;
}

static int cpu_bn_fwd_frozen(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                             const sd_real *gamma, const sd_real *beta, const sd_real *rmean,
                             const sd_real *rvar, sd_real *y)
{
    int rc = bn_check(be, err, d, "bn_fwd_frozen");
    if (rc)
        return rc;
    for (int ch = 0; ch < d->c; ch++) {
        double mu = rmean[ch], a = 1.0 / sqrt((double)rvar[ch] + d->eps), g = gamma[ch],
               b = beta[ch];
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch);
            sd_real *yc = BN_AT(y, d, i, ch);
            for (int p = 0; p < d->hw; p++)
                yc[p] = (sd_real)(g * ((xc[p] - mu) * a) + b);
        }
    }
    return SD_OK;
}

static int cpu_bn_bwd_frozen(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                             const sd_real *gamma, const sd_real *rmean, const sd_real *rvar,
                             const sd_real *gy, sd_real *gx, sd_real *ggamma, sd_real *gbeta)
{
    int rc = bn_check(be, err, d, "bn_bwd_frozen");
    if (rc)
        return rc;
    for (int ch = 0; ch < d->c; ch++) {
        double mu = rmean[ch], a = 1.0 / sqrt((double)rvar[ch] + d->eps), g = gamma[ch];
        double sg = 0, sgx = 0;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch), *gyc = BN_AT(gy, d, i, ch);
            sd_real *gxc = gx ? BN_AT(gx, d, i, ch) : NULL;
            for (int p = 0; p < d->hw; p++) {
                sg += gyc[p];
                sgx += gyc[p] * ((xc[p] - mu) * a);
                if (gxc)
                    gxc[p] += (sd_real)(g * a * gyc[p]);
            }
        }
        if (gbeta)
            gbeta[ch] += (sd_real)sg;
        if (ggamma)
            ggamma[ch] += (sd_real)sgx;
    }
    return SD_OK;
}

static int cpu_bn_fwd_tangent_frozen(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                                     const sd_real *dx, const sd_real *gamma,
                                     const sd_real *dgamma, const sd_real *dbeta,
                                     const sd_real *rmean, const sd_real *rvar, sd_real *dy)
{
    int rc = bn_check(be, err, d, "bn_fwd_tangent_frozen");
    if (rc)
        return rc;
    for (int ch = 0; ch < d->c; ch++) {
        double mu = rmean[ch], a = 1.0 / sqrt((double)rvar[ch] + d->eps), g = gamma[ch];
        double dg = dgamma ? dgamma[ch] : 0, db = dbeta ? dbeta[ch] : 0;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch);
            const sd_real *dxc = dx ? BN_AT(dx, d, i, ch) : NULL;
            sd_real *dyc = BN_AT(dy, d, i, ch);
            for (int p = 0; p < d->hw; p++) {
                double xh = (xc[p] - mu) * a;
                dyc[p] = (sd_real)(dg * xh + (dxc ? g * a * dxc[p] : 0) + db);
            }
        }
    }
    return SD_OK;
}

static int cpu_bn_bwd_tangent_frozen(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                                     const sd_real *dx, const sd_real *gamma,
                                     const sd_real *dgamma, const sd_real *rmean,
                                     const sd_real *rvar, const sd_real *gy, const sd_real *dgy,
                                     sd_real *dgx, sd_real *dggamma, sd_real *dgbeta)
{
    int rc = bn_check(be, err, d, "bn_bwd_tangent_frozen");
    if (rc)
        return rc;
    for (int ch = 0; ch < d->c; ch++) {
        double mu = rmean[ch], a = 1.0 / sqrt((double)rvar[ch] + d->eps), g = gamma[ch];
        double dg = dgamma ? dgamma[ch] : 0, s_dgy = 0, s_gg = 0;
        for (int i = 0; i < d->n; i++) {
            const sd_real *xc = BN_AT(x, d, i, ch), *gyc = BN_AT(gy, d, i, ch);
            const sd_real *dxc = dx ? BN_AT(dx, d, i, ch) : NULL;
            const sd_real *dgyc = dgy ? BN_AT(dgy, d, i, ch) : NULL;
            sd_real *o = dgx ? BN_AT(dgx, d, i, ch) : NULL;
            for (int p = 0; p < d->hw; p++) {
                double xh = (xc[p] - mu) * a, dgv = dgyc ? dgyc[p] : 0;
                s_dgy += dgv;
                s_gg += dgv * xh + (dxc ? gyc[p] * a * dxc[p] : 0);
                if (o)
                    o[p] += (sd_real)(dg * a * gyc[p] + g * a * dgv);
            }
        }
        if (dgbeta)
            dgbeta[ch] += (sd_real)s_dgy;
        if (dggamma)
            dggamma[ch] += (sd_real)s_gg;
    }
    return SD_OK;
}

/* ------------------------------------------------------------------------ */
/* soft-target cross-entropy and row softmax                                */
/* ------------------------------------------------------------------------ */
/*
 * Per row i, S = sum_c q_c, lse = max z + log sum exp(z - max z),
 * log p = z - lse (never log of an underflowed p in the forward).
 *   L      = -(1/n) sum q log p
 *   dL/dz  = (1/n)(p S - q),           dL/dq = -(1/n) log p
 *   dL     = (1/n) sum (p S - q) dz - (1/n) sum dq log p
 * Tangent of the backward along (dz, dq, dg), with dp = p (dz - <p,dz>),
 * d log p = dz - <p,dz>, dS = sum dq:
 *   d gz = dg/n (p S - q) + g/n (dp S + p dS - dq)
 *   d gq = -dg/n log p - g/n (dz - <p,dz>)
 * The backward ops only receive p, so they take log p = log(max(p, tiny)):
 * exact unless p underflowed (|logit gap| > ~87 in float32).
 * Softmax q = softmax(y) has the symmetric Jacobian diag(q) - q q', so
 *   gy = q (gq - <q,gq>)  (also the forward tangent, with gq = dy), and along
 *   (dy, dgq), with dq = q (dy - <q,dy>):
 *   d gy = dq (gq - <q,gq>) + q (dgq - <dq,gq> - <q,dgq>).
 */

static double safe_log(sd_real p)
{
    return log(p > CPU_REAL_TINY ? (double)p : (double)CPU_REAL_TINY);
}

static int cpu_sce_fwd(sd_backend *be, sd_error *err, int n, int k, const sd_real *z, const sd_real *q,
                       sd_real *p, double *loss)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu sce_fwd: bad shape n=%d k=%d", n, k);
    double total = 0;
    for (int i = 0; i < n; i++) {
        const sd_real *zi = z + (size_t)i * k, *qi = q + (size_t)i * k;
        sd_real *pi = p + (size_t)i * k;
        double mx = zi[0], s = 0;
        for (int c = 1; c < k; c++)
            if (zi[c] > mx)
                mx = zi[c];
        for (int c = 0; c < k; c++)
            s += exp(zi[c] - mx);
        double lse = mx + log(s), row = 0;
        for (int c = 0; c < k; c++) {
            double lp = zi[c] - lse;
            pi[c] = (sd_real)exp(lp);
            row += qi[c] * lp;
        }
        total -= row;
    }
    *loss = total / n;
    return SD_OK;
}

static int cpu_sce_bwd(sd_backend *be, sd_error *err, int n, int k, const sd_real *p, const sd_real *q,
                       double g, sd_real *gz, sd_real *gq)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu sce_bwd: bad shape n=%d k=%d", n, k);
    const double gn = g / n;
    for (int i = 0; i < n; i++) {
        const sd_real *pi = p + (size_t)i * k, *qi = q + (size_t)i * k;
        double S = 0;
        for (int c = 0; c < k; c++)
            S += qi[c];
        for (int c = 0; c < k; c++) {
            if (gz)
                gz[(size_t)i * k + c] += (sd_real)(gn * (pi[c] * S - qi[c]));
            if (gq)
                gq[(size_t)i * k + c] += (sd_real)(-gn * safe_log(pi[c]));
        }
    }
    return SD_OK;
}

static int cpu_sce_fwd_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *p, const sd_real *q,
                               const sd_real *dz, const sd_real *dq, double *dloss)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu sce_fwd_tangent: bad shape n=%d k=%d", n, k);
    double total = 0;
    for (int i = 0; i < n; i++) {
        const sd_real *pi = p + (size_t)i * k, *qi = q + (size_t)i * k;
        double S = 0;
        for (int c = 0; c < k; c++)
            S += qi[c];
        for (int c = 0; c < k; c++) {
            if (dz)
                total += (pi[c] * S - qi[c]) * dz[(size_t)i * k + c];
            if (dq)
                total -= dq[(size_t)i * k + c] * safe_log(pi[c]);
        }
    }
    *dloss = total / n;
    return SD_OK;
}

static int cpu_sce_bwd_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *p, const sd_real *q,
                               const sd_real *dz, const sd_real *dq, double g, double dg,
                               sd_real *dgz, sd_real *dgq)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu sce_bwd_tangent: bad shape n=%d k=%d", n, k);
    const double gn = g / n, dgn = dg / n;
    for (int i = 0; i < n; i++) {
        const sd_real *pi = p + (size_t)i * k, *qi = q + (size_t)i * k;
        const sd_real *dzi = dz ? dz + (size_t)i * k : NULL;
        const sd_real *dqi = dq ? dq + (size_t)i * k : NULL;
        double S = 0, dS = 0, pdz = 0;
        for (int c = 0; c < k; c++) {
            S += qi[c];
            if (dqi)
                dS += dqi[c];
            if (dzi)
                pdz += pi[c] * dzi[c];
        }
        for (int c = 0; c < k; c++) {
            double dlp = dzi ? dzi[c] - pdz : 0; /* d log p */
            double dp = pi[c] * dlp, dqc = dqi ? dqi[c] : 0;
            if (dgz)
                dgz[(size_t)i * k + c] +=
                    (sd_real)(dgn * (pi[c] * S - qi[c]) + gn * (dp * S + pi[c] * dS - dqc));
            if (dgq)
                dgq[(size_t)i * k + c] += (sd_real)(-dgn * safe_log(pi[c]) - gn * dlp);
        }
    }
    return SD_OK;
}

static int cpu_softmax_fwd(sd_backend *be, sd_error *err, int n, int k, const sd_real *y, sd_real *q)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu softmax_fwd: bad shape n=%d k=%d", n, k);
    for (int i = 0; i < n; i++) {
        const sd_real *yi = y + (size_t)i * k;
        sd_real *qi = q + (size_t)i * k;
        double mx = yi[0], s = 0;
        for (int c = 1; c < k; c++)
            if (yi[c] > mx)
                mx = yi[c];
        for (int c = 0; c < k; c++)
            s += exp(yi[c] - mx);
        double lse = mx + log(s);
        for (int c = 0; c < k; c++)
            qi[c] = (sd_real)exp(yi[c] - lse);
    }
    return SD_OK;
}

static int cpu_softmax_bwd(sd_backend *be, sd_error *err, int n, int k, const sd_real *q, const sd_real *gq,
                           sd_real *gy)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu softmax_bwd: bad shape n=%d k=%d", n, k);
    for (int i = 0; i < n; i++) {
        const sd_real *qi = q + (size_t)i * k, *gi = gq + (size_t)i * k;
        double s = 0;
        for (int c = 0; c < k; c++)
            s += (double)qi[c] * gi[c];
        for (int c = 0; c < k; c++)
            gy[(size_t)i * k + c] += (sd_real)(qi[c] * (gi[c] - s));
    }
    return SD_OK;
}

static int cpu_softmax_bwd_tangent(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                                   const sd_real *dy, const sd_real *gq, const sd_real *dgq,
                                   sd_real *dgy)
{
    if (n < 1 || k < 1)
        return CPU_FAIL(err, SD_EINVAL, "cpu softmax_bwd_tangent: bad shape n=%d k=%d", n, k);
    for (int i = 0; i < n; i++) {
        const sd_real *qi = q + (size_t)i * k, *gi = gq + (size_t)i * k;
        const sd_real *dyi = dy ? dy + (size_t)i * k : NULL;
        const sd_real *dgi = dgq ? dgq + (size_t)i * k : NULL;
        double qg = 0, qdy = 0, qdg = 0, dqg = 0;
        for (int c = 0; c < k; c++) {
            qg += (double)qi[c] * gi[c];
            if (dyi)
                qdy += (double)qi[c] * dyi[c];
            if (dgi)
                qdg += (double)qi[c] * dgi[c];
        }
        if (dyi)
            for (int c = 0; c < k; c++)
                dqg += qi[c] * (dyi[c] - qdy) * gi[c];
        for (int c = 0; c < k; c++) {
            double dq = dyi ? qi[c] * (dyi[c] - qdy) : 0, dgv = dgi ? dgi[c] : 0;
            dgy[(size_t)i * k + c] += (sd_real)(dq * (gi[c] - qg) + qi[c] * (dgv - dqg - qdg));
        }
    }
    return SD_OK;
}

/* ------------------------------------------------------------------------ */
/* data                                                                     */
/* ------------------------------------------------------------------------ */

/* Area averaging: output pixel o of a psize -> osize resampling covers the
 * interval [o*psize/osize, (o+1)*psize/osize) of input coordinates.  In units
 * of 1/osize that is [o*psize, (o+1)*psize) and input pixel i covers
 * [i*osize, (i+1)*osize), so every overlap is an exact integer and the mean is
 *   sum_{iy,ix} ovl_y(iy) ovl_x(ix) v(iy,ix) / psize^2,
 * computed exactly in double (all terms are integers below 2^53). */
static int cpu_patch_gather(sd_backend *be, sd_error *err, const uint16_t *pix, const int64_t *img_off,
                            const int32_t *img_w, const int32_t *idx, int n, int psize,
                            int osize, double mean, double std, sd_real *out)
{
    if (n < 0 || psize < 1 || osize < 1 || osize > psize || !(std > 0))
        return CPU_FAIL(err, SD_EINVAL, "cpu patch_gather: bad arguments n=%d psize=%d osize=%d",
                        n, psize, osize);
    const double norm = 1.0 / ((double)psize * psize * 65535.0);
    for (int i = 0; i < n; i++) {
        int im = idx[3 * i], py = idx[3 * i + 1], px = idx[3 * i + 2];
        if (im < 0 || py < 0 || px < 0 || (int64_t)px + psize > img_w[im])
            return CPU_FAIL(err, SD_EINVAL,
                            "cpu patch_gather: patch %d (image %d, y %d, x %d) outside its image",
                            i, im, py, px);
        const uint16_t *base = pix + img_off[im] + (int64_t)py * img_w[im] + px;
        const int64_t stride = img_w[im];
        sd_real *o = out + (size_t)i * osize * osize;
        for (int oy = 0; oy < osize; oy++) {
            long ylo = (long)oy * psize, yhi = ylo + psize;
            for (int ox = 0; ox < osize; ox++) {
                long xlo = (long)ox * psize, xhi = xlo + psize;
                double acc = 0;
                for (long iy = ylo / osize; iy * osize < yhi; iy++) {
                    long a = iy * osize > ylo ? iy * osize : ylo;
                    long b = (iy + 1) * osize < yhi ? (iy + 1) * osize : yhi;
                    const uint16_t *row = base + iy * stride;
                    double racc = 0;
                    for (long ix = xlo / osize; ix * osize < xhi; ix++) {
                        long c0 = ix * osize > xlo ? ix * osize : xlo;
                        long c1 = (ix + 1) * osize < xhi ? (ix + 1) * osize : xhi;
                        racc += (double)(c1 - c0) * row[ix];
                    }
                    acc += (double)(b - a) * racc;
                }
                o[(size_t)oy * osize + ox] = (sd_real)((acc * norm - mean) / std);
            }
        }
    }
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
    static const char *const generic[] = {"Prescott", "Katmai", "Coppermine", "Northwood",
                                          "Banias", "Core2", "Penryn", "Dunnington",
                                          "Nehalem", "Sandybridge", "Atom"};
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
    if (ctx)
        pool_destroy(ctx->pool);
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
     * count.  The threads work through the pool instead (shards, cpu_for). */
    pthread_once(&blas_threads_once, read_blas_threads);
    ctx->threads = threads > 0 ? threads : blas_threads_default;
    openblas_set_num_threads(1);
    ctx->conv_path = SD_CPU_CONV_AUTO;
    ctx->col_cap = CONV_COL_CAP;
    if (ctx->threads > 1) {
        int rc = pool_create(&ctx->pool, ctx->threads - 1, err);
        if (rc) {
            free(ctx);
            free(be);
            return rc;
        }
    }

    be->name = "cpu";
    be->ctx = ctx;
    be->destroy = cpu_destroy;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_upload;
    be->download = cpu_download;
    be->copy = cpu_copy;
    be->zero = cpu_zero;
    be->sync = cpu_sync;
    be->gemm = cpu_gemm;
    be->axpy = cpu_axpy;
    be->scal = cpu_scal;
    be->fill = cpu_fill;
    be->dot = cpu_dot;
    be->adam = cpu_adam;
    be->conv_workspace = cpu_conv_workspace;
    be->conv_fwd = cpu_conv_fwd;
    be->conv_bwd_data = cpu_conv_bwd_data;
    be->conv_bwd_filter = cpu_conv_bwd_filter;
    be->bias_fwd = cpu_bias_fwd;
    be->bias_bwd = cpu_bias_bwd;
    be->relu_fwd = cpu_relu_fwd;
    be->relu_mask = cpu_relu_mask;
    be->maxpool_fwd = cpu_maxpool_fwd;
    be->maxpool_bwd = cpu_maxpool_bwd;
    be->maxpool_gather = cpu_maxpool_gather;
    be->avgpool_fwd = cpu_avgpool_fwd;
    be->avgpool_bwd = cpu_avgpool_bwd;
    be->bn_fwd_train = cpu_bn_fwd_train;
    be->bn_bwd_train = cpu_bn_bwd_train;
    be->bn_fwd_tangent_train = cpu_bn_fwd_tangent_train;
    be->bn_bwd_tangent_train = cpu_bn_bwd_tangent_train;
    be->bn_fwd_frozen = cpu_bn_fwd_frozen;
    be->bn_bwd_frozen = cpu_bn_bwd_frozen;
    be->bn_fwd_tangent_frozen = cpu_bn_fwd_tangent_frozen;
    be->bn_bwd_tangent_frozen = cpu_bn_bwd_tangent_frozen;
    be->sce_fwd = cpu_sce_fwd;
    be->sce_bwd = cpu_sce_bwd;
    be->sce_fwd_tangent = cpu_sce_fwd_tangent;
    be->sce_bwd_tangent = cpu_sce_bwd_tangent;
    be->softmax_fwd = cpu_softmax_fwd;
    be->softmax_bwd = cpu_softmax_bwd;
    be->softmax_bwd_tangent = cpu_softmax_bwd_tangent;
    be->patch_gather = cpu_patch_gather;
    be->parallel = cpu_parallel;
    *out = be;
    return SD_OK;
}
