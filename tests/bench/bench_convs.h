/*
 * bench_convs.h - the convolution layers the CPU benchmarks measure (the
 * gastric ConvNet-BN of docs/experiments.md and ResNet18 at 64x64) and the
 * executor's batch-shard rule, shared by bench_roofline and bench_conv_dnnl
 * so both measure exactly the same shapes.  Benchmark code, not part of the
 * engine.
 */
#ifndef BENCH_CONVS_H
#define BENCH_CONVS_H

#include <stddef.h>

#include "sd_backend.h"

enum { BENCH_MAXP = 8 };

typedef struct bench_conv_layer {
    const char *label;
    sd_conv_desc d; /* oh, ow filled in */
} bench_conv_layer;

extern const bench_conv_layer bench_conv_layers[];
extern const int bench_conv_layer_count;

/* The number of batch shards the executor cuts n samples into
 * (P = min(8, n/4), at least 1; sd_exec_run.c), and shard s's size. */
int bench_conv_shards(int n);
int bench_conv_shard_n(int n, int P, int s);

/* n floats of a fixed pattern in [-0.5, 0.5) (`seed` shifts it), never
 * NULL: exits on allocation failure (benchmark programs only). */
float *bench_fvec(size_t n, unsigned seed);

/* The automatically chosen path of each pass of d on be, "fwd/data/filter"
 * (one name when all three agree), into buf. */
const char *bench_conv_auto_paths(sd_backend *be, const sd_conv_desc *d, char *buf, size_t n);

/* qsort comparator for doubles (best and median of the rounds). */
int bench_cmp_double(const void *a, const void *b);

#endif
