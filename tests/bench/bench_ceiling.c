/*
 * bench_ceiling.c - FP32 FMA peak and stream-triad bandwidth (see
 * bench_ceiling.h).
 *
 * Peak: each thread runs chains of vector FMAs a = a*b + c on `accs`
 * independent accumulators held in registers, enough to cover the FMA
 * latency times the number of FMA pipes (4 cycles x 2 pipes on current x86
 * cores: 8; 16 are used with AVX-512, 12 with AVX2's 16 registers).  The
 * kernel is picked at run time by __builtin_cpu_supports, each compiled for
 * its instruction set with a target attribute, so one binary measures any
 * x86-64 machine and the project needs no -march flag.  Flops counted:
 * 2 per lane per FMA.
 *
 * Triad: a[i] = b[i] + s c[i] over three arrays of 64 MiB each (far beyond
 * the caches), each thread its own contiguous part, first touched by that
 * thread; 12 bytes per element are counted (STREAM's convention; a cache
 * that reads a line before writing it moves 16).
 */
#include "bench_ceiling.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#endif

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { FMA_ITERS = 20000000 };

#ifdef BENCH_X86
#define F16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define F12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx512f"))) static float fma_avx512(long iters)
{
    const __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
#define DECL(k) __m512 a##k = _mm512_set1_ps((float)(k));
#define STEP(k) a##k = _mm512_fmadd_ps(a##k, b, c);
#define SUM(k)  s = _mm512_add_ps(s, a##k);
    F16(DECL)
    for (long i = 0; i < iters; i++) {
        F16(STEP)
    }
    __m512 s = _mm512_setzero_ps();
    F16(SUM)
    float out[16];
    _mm512_storeu_ps(out, s);
    return out[0] + out[15];
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long iters)
{
    const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
#define DECL(k) __m256 a##k = _mm256_set1_ps((float)(k));
#define STEP(k) a##k = _mm256_fmadd_ps(a##k, b, c);
#define SUM(k)  s = _mm256_add_ps(s, a##k);
    F12(DECL)
    for (long i = 0; i < iters; i++) {
        F12(STEP)
    }
    __m256 s = _mm256_setzero_ps();
    F12(SUM)
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx2"))) static void triad_avx2(float *a, const float *b, const float *c,
                                                       float s, size_t n)
{
    const __m256 sv = _mm256_set1_ps(s);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(a + i, _mm256_add_ps(_mm256_loadu_ps(b + i),
                                              _mm256_mul_ps(sv, _mm256_loadu_ps(c + i))));
    for (; i < n; i++)
        a[i] = b[i] + s * c[i];
}
#endif

/* no FMA: multiply and add (2 flops per lane too), 4 lanes by SSE2 vectors
 * where the compiler makes them, else scalar */
static float fma_plain(long iters)
{
    float a[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 8; k++)
            a[k] = a[k] * 0.9999999f + 1e-7f;
    return a[0] + a[7];
}

static void triad_plain(float *a, const float *b, const float *c, float s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] + s * c[i];
}

typedef struct kernel {
    const char *isa;
    int lanes, accs;
    float (*fma)(long iters);
    void (*triad)(float *a, const float *b, const float *c, float s, size_t n);
} kernel;

static kernel pick(void)
{
    kernel k = {"sse2 (no FMA)", 1, 8, fma_plain, triad_plain};
#ifdef BENCH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        k.triad = triad_avx2;
    if (__builtin_cpu_supports("avx512f")) {
        k.isa = "avx512f";
        k.lanes = 16;
        k.accs = 16;
        k.fma = fma_avx512;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        k.isa = "avx2+fma";
        k.lanes = 8;
        k.accs = 12;
        k.fma = fma_avx2;
    }
#endif
    return k;
}

typedef struct worker {
    const kernel *k;
    pthread_barrier_t *start;
    int what; /* 0 fma, 1 triad init, 2 triad */
    long iters;
    float *a, *b, *c;
    size_t n;
    double t0, t1;
    volatile float sink;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    w->t0 = bench_now();
    if (w->what == 0) {
        w->sink = w->k->fma(w->iters);
    } else if (w->what == 1) {
        for (size_t i = 0; i < w->n; i++) {
            w->a[i] = 0;
            w->b[i] = 1;
            w->c[i] = 2;
        }
    } else {
        w->k->triad(w->a, w->b, w->c, 3.0f, w->n);
    }
    w->t1 = bench_now();
    return NULL;
}

/* Run `what` on T threads at once; the span from the first start to the
 * last finish, or -1 when a thread could not start. */
static double run_threads(const kernel *k, int T, int what, long iters, float *a, float *b,
                          float *c, size_t n)
{
    worker *w = calloc((size_t)T, sizeof *w);
    pthread_t *th = calloc((size_t)T, sizeof *th);
    pthread_barrier_t start;
    double span = -1;
    if (!w || !th || pthread_barrier_init(&start, NULL, (unsigned)T)) {
        free(w);
        free(th);
        return -1;
    }
    int started = 0;
    for (int t = 0; t < T; t++) {
        size_t lo = n * (size_t)t / (size_t)T, hi = n * (size_t)(t + 1) / (size_t)T;
        w[t] = (worker){.k = k, .start = &start, .what = what, .iters = iters, .n = hi - lo};
        if (a) {
            w[t].a = a + lo;
            w[t].b = b + lo;
            w[t].c = c + lo;
        }
        if (t > 0 && pthread_create(&th[t], NULL, work, &w[t]))
            break;
        started = t + 1;
    }
    if (started == T) {
        work(&w[0]);
        double t0 = w[0].t0, t1 = w[0].t1;
        for (int t = 1; t < T; t++) {
            pthread_join(th[t], NULL);
            t0 = w[t].t0 < t0 ? w[t].t0 : t0;
            t1 = w[t].t1 > t1 ? w[t].t1 : t1;
        }
        span = t1 - t0;
    } else { /* release the threads that did start, then give up */
        for (int t = started; t < T; t++)
            w[t].what = 0, w[t].iters = 0;
        if (started > 0)
            work(&w[0]);
        for (int t = 1; t < started; t++)
            pthread_join(th[t], NULL);
    }
    pthread_barrier_destroy(&start);
    free(w);
    free(th);
    return span;
}

int bench_ceiling_measure(bench_ceiling *c, int threads, int reps)
{
    kernel k = pick();
    memset(c, 0, sizeof *c);
    c->isa = k.isa;
    c->lanes = k.lanes;
    c->accs = k.accs;
    c->threads = threads;
    double flops = 2.0 * FMA_ITERS * (double)k.accs * (double)k.lanes;
    for (int r = 0; r < reps; r++) {
        double t1 = run_threads(&k, 1, 0, FMA_ITERS, NULL, NULL, NULL, 0);
        double tn = run_threads(&k, threads, 0, FMA_ITERS, NULL, NULL, NULL, 0);
        if (t1 <= 0 || tn <= 0)
            return -1;
        if (flops / t1 * 1e-9 > c->gflops_one)
            c->gflops_one = flops / t1 * 1e-9;
        if (threads * flops / tn * 1e-9 > c->gflops_all)
            c->gflops_all = threads * flops / tn * 1e-9;
    }
    size_t n = (size_t)1 << 24;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *cc = malloc(n * sizeof *cc);
    int rc = -1;
    if (a && b && cc && run_threads(&k, threads, 1, 0, a, b, cc, n) > 0) {
        rc = 0;
        for (int r = 0; r < reps + 2; r++) {
            double t = run_threads(&k, threads, 2, 0, a, b, cc, n);
            if (t <= 0) {
                rc = -1;
                break;
            }
            if (12.0 * (double)n / t * 1e-9 > c->triad_gbs)
                c->triad_gbs = 12.0 * (double)n / t * 1e-9;
        }
    }
    free(a);
    free(b);
    free(cc);
    return rc;
}
