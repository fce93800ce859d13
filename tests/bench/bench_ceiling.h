/*
 * bench_ceiling.h - what this machine's processor can do at most: FP32 FMA
 * throughput (one core and all cores) and memory bandwidth (stream triad).
 * Shared by bench_peak (prints them) and bench_roofline (relates each
 * convolution to them).  Benchmark code, not part of the engine.
 */
#ifndef BENCH_CEILING_H
#define BENCH_CEILING_H

typedef struct bench_ceiling {
    const char *isa;   /* the FMA kernel that ran: "avx512f", "avx2+fma", "sse2 (no FMA)" */
    int lanes, accs;   /* FP32 lanes per vector, independent accumulators per thread */
    double gflops_one; /* FP32 GFLOP/s, one thread */
    double gflops_all; /* all `threads` threads at once, in total */
    double triad_gbs;  /* stream triad a = b + s c, GB/s of 12 bytes per element */
    int threads;
} bench_ceiling;

/* Measure with `threads` threads (>= 1): best of `reps` repetitions each
 * (the machine may be shared; the best is the least disturbed). */
int bench_ceiling_measure(bench_ceiling *c, int threads, int reps);

double bench_now(void);

#endif
