/*
 * bench_conv_dnnl.c - oneDNN's f32 convolutions against the engine's on the
 * layers bench_roofline measures (bench_convs.c), to decide whether the CPU
 * backend should hand some shapes to oneDNN (docs/benchmarks.md, "oneDNN
 * against the engine's convolutions").  Independent of the engine's own
 * `dnnl` path (engine/cpu/sd_cpu_dnnl.c, forced only): this program calls
 * oneDNN itself.  Built only where libdnnl-dev is installed.
 *
 * Each layer runs as the executor runs it: the batch cut into P =
 * min(8, n/4) shards, the shards as tasks of the engine's be->parallel on 1
 * and on 2 pool threads, each shard's convolution one single-threaded call
 * (the engine's with its own workspace; oneDNN's with its own stream,
 * primitive and user-mode scratchpad).  For forward, backward-data and
 * backward-weights the same rounds time, one after the other: the engine on
 * its automatic path; oneDNN on plain NCHW/OIHW memory; oneDNN on the
 * layouts it picks itself (format_tag any), its inputs already reordered;
 * and those reorders alone: the activations into oneDNN's layouts and its
 * output back to NCHW/OIHW in every shard, the weights (which the shards
 * share in the engine) once per pass, in shard 0's task.  Best and median
 * of the rounds; GFLOP/s count 2 M N K flops of the whole batch (padding
 * taps included, which direct kernels skip); the peak is bench_ceiling's.
 * Convolutions are "direct" (oneDNN's Winograd would change the numerics).
 *
 * Threads: Debian's libdnnl 2.6 is built with OpenMP (DNNL_CPU_RUNTIME OMP;
 * libdnnl.so links libgomp).  oneDNN sizes its work by the calling thread's
 * omp_get_max_threads(), which libgomp keeps per thread, so the program
 * calls omp_set_num_threads(1) in the main thread before creating any
 * primitive and in each pool thread before each oneDNN call: every call then
 * runs on its caller's thread alone, like the engine's shard.  In this
 * sharded mode the results cannot depend on the pool's thread count (each
 * shard computes the same thing wherever it runs); the program checks that
 * the 1- and 2-thread runs give the same bits.  Separately, it runs each
 * layer's whole batch as one oneDNN call with 1 and with 2 OpenMP threads
 * (oneDNN's own parallelism) and says whether those bits agree.  Measured
 * (docs/benchmarks.md): the sharded bits are the same with 1 and 2 pool
 * threads; with its own OpenMP threads oneDNN keeps the bits of forward and
 * backward-data but changes the weight gradient's on most layers (it splits
 * that reduction over the threads), so only the sharded mode keeps results
 * independent of the thread count.
 *
 * Correctness: both oneDNN layouts are compared with the engine on the same
 * data; the figure is max |oneDNN - engine| / max |engine| over the pass's
 * whole output (every shard's; the weight gradient per shard).
 *
 *   bench_conv_dnnl [rounds [peak-gflops-1-thread peak-gflops-2-threads]]
 * without the peaks they are measured in this run.  Prints markdown for
 * docs/benchmarks.md; exits 1 when the bits depend on the pool's thread
 * count or oneDNN and the engine differ by more than 1e-4 (CTest runs one
 * round as bench.conv_dnnl: speed is not asserted, agreement is).
 */
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_ceiling.h"
#include "bench_convs.h"
#include "sb_parse.h"
#include "sd_backend_cpu.h"

#ifdef SD_REAL_DOUBLE
#error "bench_conv_dnnl measures the float32 engine (sldd_distill)"
#endif

#define DN(call) dn_check((call), #call, __LINE__)

static void dn_check(dnnl_status_t st, const char *what, int line)
{
    if (st != dnnl_success) {
        fprintf(stderr, "bench_conv_dnnl.c:%d: %s: %s\n", line, what, dnnl_status2str(st));
        exit(1);
    }
}

enum { NPASS = 3, NLAYOUT = 2 };
enum { M_ENGINE, M_PLAIN, M_BLOCKED, M_REORDER, NMODE };
enum { T_X, T_W, T_Y }; /* input (n,c,h,w), weights (k,c,r,s), output (n,k,oh,ow) */

static const char *const pass_name[NPASS] = {"forward", "backward-data", "backward-weights"};
static const char *const layout_name[NLAYOUT] = {"nchw", "blocked"};
/* per pass: the tensors of its two inputs and of its output, their
 * execution arguments and the queries for their memory descriptors */
static const int pass_tensor[NPASS][3] = {{T_X, T_W, T_Y}, {T_Y, T_W, T_X}, {T_X, T_Y, T_W}};
static const int pass_arg[NPASS][3] = {{DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
                                       {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC},
                                       {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS}};
static const dnnl_query_t pass_query[NPASS][3] = {
    {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md},
    {dnnl_query_diff_dst_md, dnnl_query_weights_md, dnnl_query_diff_src_md},
    {dnnl_query_src_md, dnnl_query_diff_dst_md, dnnl_query_diff_weights_md}};

typedef struct dn_call { /* one pass in one layout for one shard */
    dnnl_primitive_t conv;
    dnnl_memory_t mem[4];        /* the two inputs, the output, the scratchpad (or NULL) */
    dnnl_memory_t user[3];       /* NCHW/OIHW memory where mem[a] is in another layout */
    dnnl_primitive_t reorder[3]; /* inputs user -> mem, output mem -> user; NULL: none */
    char impl[40];
} dn_call;

typedef struct shard {
    sd_conv_desc d;
    float *t[3];                    /* x, w, gy (all inputs, NCHW/OIHW) */
    float *out[NLAYOUT + 1][NPASS]; /* y, gx, gw of [0] the engine, [1] nchw, [2] blocked */
    void *ws;
    dnnl_stream_t stream;
    dn_call call[NLAYOUT][NPASS];
} shard;

typedef struct layer_job {
    sd_backend *be;
    int P, pass, mode;
    shard s[BENCH_MAXP];
    sd_error err[BENCH_MAXP];
} layer_job;

static int rounds = 7;

/* oneDNN against the engine, relative to the output's largest magnitude:
 * the float32 PyTorch checks' bound (tests/distill/test_model.c) */
#define REL_TOL 1e-4
enum { BITS_DIFFER = 1, DISAGREE = 2 };

static void tensor_dims(const sd_conv_desc *d, int t, dnnl_dims_t dims)
{
    const int v[3][4] = {
        {d->n, d->c, d->h, d->w}, {d->k, d->c, d->r, d->s}, {d->n, d->k, d->oh, d->ow}};
    for (int i = 0; i < 4; i++)
        dims[i] = v[t][i];
}

static size_t tensor_size(const sd_conv_desc *d, int t)
{
    dnnl_dims_t dims;
    tensor_dims(d, t, dims);
    return (size_t)(dims[0] * dims[1] * dims[2] * dims[3]);
}

static void tensor_md(dnnl_memory_desc_t *md, const sd_conv_desc *d, int t, int any)
{
    dnnl_dims_t dims;
    tensor_dims(d, t, dims);
    DN(dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32,
                                    any        ? dnnl_format_tag_any
                                    : t == T_W ? dnnl_oihw
                                               : dnnl_nchw));
}

/* The primitive descriptor of `pass` on d (any: oneDNN picks the layouts),
 * user-mode scratchpad; backward passes take the forward one as hint. */
static dnnl_primitive_desc_t conv_pd(dnnl_engine_t eng, const sd_conv_desc *d, int pass, int any,
                                     const_dnnl_primitive_desc_t hint)
{
    dnnl_memory_desc_t x, w, y;
    tensor_md(&x, d, T_X, any);
    tensor_md(&w, d, T_W, any);
    tensor_md(&y, d, T_Y, any);
    dnnl_dims_t st = {d->stride, d->stride}, pad = {d->pad, d->pad};
    dnnl_convolution_desc_t cd;
    if (pass == 0)
        DN(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct,
                                              &x, &w, NULL, &y, st, pad, pad));
    else if (pass == 1)
        DN(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &x, &w, &y, st,
                                                    pad, pad));
    else
        DN(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &x, &w, NULL,
                                                       &y, st, pad, pad));
    dnnl_primitive_attr_t attr;
    dnnl_primitive_desc_t pd;
    DN(dnnl_primitive_attr_create(&attr));
    DN(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    DN(dnnl_primitive_desc_create(&pd, &cd, attr, eng, hint));
    DN(dnnl_primitive_attr_destroy(attr));
    return pd;
}

/* Memory, reorders and the primitive of pd on the NCHW/OIHW buffers buf
 * (the two inputs, the output). */
static void call_init(dn_call *c, dnnl_engine_t eng, const_dnnl_primitive_desc_t pd, int pass,
                      const sd_conv_desc *d, float *const buf[3])
{
    const char *impl = NULL;
    DN(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, (void *)&impl));
    snprintf(c->impl, sizeof c->impl, "%s", impl ? impl : "?");
    for (int a = 0; a < 3; a++) {
        dnnl_memory_desc_t plain;
        tensor_md(&plain, d, pass_tensor[pass][a], 0);
        const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, pass_query[pass][a], 0);
        if (!want) {
            fprintf(stderr, "bench_conv_dnnl: no memory descriptor for argument %d\n", a);
            exit(1);
        }
        if (dnnl_memory_desc_equal(want, &plain)) {
            DN(dnnl_memory_create(&c->mem[a], &plain, eng, buf[a]));
            continue;
        }
        dnnl_primitive_desc_t rpd;
        DN(dnnl_memory_create(&c->user[a], &plain, eng, buf[a]));
        DN(dnnl_memory_create(&c->mem[a], want, eng, DNNL_MEMORY_ALLOCATE));
        if (a < 2)
            DN(dnnl_reorder_primitive_desc_create(&rpd, &plain, eng, want, eng, NULL));
        else
            DN(dnnl_reorder_primitive_desc_create(&rpd, want, eng, &plain, eng, NULL));
        DN(dnnl_primitive_create(&c->reorder[a], rpd));
        DN(dnnl_primitive_desc_destroy(rpd));
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (smd && dnnl_memory_desc_get_size(smd) > 0)
        DN(dnnl_memory_create(&c->mem[3], smd, eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_primitive_create(&c->conv, pd));
}

static void call_destroy(dn_call *c)
{
    for (int a = 0; a < 4; a++)
        if (c->mem[a])
            DN(dnnl_memory_destroy(c->mem[a]));
    for (int a = 0; a < 3; a++) {
        if (c->user[a])
            DN(dnnl_memory_destroy(c->user[a]));
        if (c->reorder[a])
            DN(dnnl_primitive_destroy(c->reorder[a]));
    }
    if (c->conv)
        DN(dnnl_primitive_destroy(c->conv));
}

static void call_run(const dn_call *c, int pass, dnnl_stream_t s)
{
    dnnl_exec_arg_t args[4];
    int n = 0;
    for (int a = 0; a < 3; a++)
        args[n++] = (dnnl_exec_arg_t){pass_arg[pass][a], c->mem[a]};
    if (c->mem[3])
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, c->mem[3]};
    DN(dnnl_primitive_execute(c->conv, s, n, args));
    DN(dnnl_stream_wait(s));
}

/* The inputs into oneDNN's layouts (the weights only where `weights`) and,
 * where `output`, the last output back to NCHW/OIHW. */
static void call_reorder(const dn_call *c, int pass, dnnl_stream_t s, int weights, int output)
{
    for (int a = 0; a < 3; a++) {
        if (!c->reorder[a] || (a == 2 && !output) ||
            (a < 2 && pass_tensor[pass][a] == T_W && !weights))
            continue;
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a < 2 ? c->user[a] : c->mem[a]},
                                   {DNNL_ARG_TO, a < 2 ? c->mem[a] : c->user[a]}};
        DN(dnnl_primitive_execute(c->reorder[a], s, 2, args));
    }
    DN(dnnl_stream_wait(s));
}

/* Shard number s of size d: its data (the weights the same in every shard,
 * the activations differing), engine workspace of wsb bytes, and oneDNN's
 * calls of every pass in both layouts, created under the calling thread's
 * OpenMP thread count, their inputs already in oneDNN's layouts. */
static void shard_init(shard *sh, dnnl_engine_t eng, const sd_conv_desc *d, int s, size_t wsb)
{
    memset(sh, 0, sizeof *sh);
    sh->d = *d;
    for (int t = 0; t < 3; t++)
        sh->t[t] = bench_fvec(tensor_size(d, t), 101u * (unsigned)t + (t == T_W ? 0 : 7u * s));
    for (int o = 0; o <= NLAYOUT; o++)
        for (int p = 0; p < NPASS; p++)
            sh->out[o][p] = bench_fvec(tensor_size(d, pass_tensor[p][2]), 0);
    sh->ws = malloc(wsb ? wsb : 1);
    if (!sh->ws)
        exit(1);
    DN(dnnl_stream_create(&sh->stream, eng, dnnl_stream_default_flags));
    for (int l = 0; l < NLAYOUT; l++) {
        dnnl_primitive_desc_t fwd = conv_pd(eng, d, 0, l, NULL);
        for (int p = 0; p < NPASS; p++) {
            dnnl_primitive_desc_t pd = p ? conv_pd(eng, d, p, l, fwd) : fwd;
            float *const buf[3] = {sh->t[pass_tensor[p][0]], sh->t[pass_tensor[p][1]],
                                   sh->out[1 + l][p]};
            call_init(&sh->call[l][p], eng, pd, p, d, buf);
            if (p)
                DN(dnnl_primitive_desc_destroy(pd));
            if (l)
                call_reorder(&sh->call[l][p], p, sh->stream, 1, 0);
        }
        DN(dnnl_primitive_desc_destroy(fwd));
    }
}

static void shard_free(shard *sh)
{
    for (int l = 0; l < NLAYOUT; l++)
        for (int p = 0; p < NPASS; p++)
            call_destroy(&sh->call[l][p]);
    if (sh->stream)
        DN(dnnl_stream_destroy(sh->stream));
    for (int t = 0; t < 3; t++)
        free(sh->t[t]);
    for (int o = 0; o <= NLAYOUT; o++)
        for (int p = 0; p < NPASS; p++)
            free(sh->out[o][p]);
    free(sh->ws);
}

static int task(void *arg, int t)
{
    layer_job *j = arg;
    shard *s = &j->s[t];
    sd_backend *be = j->be;
    const float *x = s->t[T_X], *w = s->t[T_W], *gy = s->t[T_Y];
    if (j->mode == M_ENGINE) {
        switch (j->pass) {
        case 0: return be->conv_fwd(be, &j->err[t], &s->d, x, w, 0, s->out[0][0], s->ws);
        case 1: return be->conv_bwd_data(be, &j->err[t], &s->d, gy, w, s->out[0][1], s->ws);
        default: return be->conv_bwd_filter(be, &j->err[t], &s->d, x, gy, s->out[0][2], s->ws);
        }
    }
    omp_set_num_threads(1);   /* this pool thread's oneDNN calls: single-threaded */
    if (j->mode == M_REORDER) /* the shards share the weights: reordered once */
        call_reorder(&s->call[1][j->pass], j->pass, s->stream, t == 0, 1);
    else
        call_run(&s->call[j->mode - M_PLAIN][j->pass], j->pass, s->stream);
    return 0;
}

static void run(layer_job *j, int mode)
{
    j->mode = mode;
    if (j->be->parallel(j->be, j->P, task, j)) {
        for (int s = 0; s < j->P; s++)
            if (j->err[s].msg[0])
                fprintf(stderr, "bench_conv_dnnl: %s\n", j->err[s].msg);
        exit(1);
    }
}

/* max |out[o] - out[0]| / max |out[0]| over every shard's output of pass */
static double max_rel(const layer_job *j, int pass, int o)
{
    double num = 0, den = 0;
    for (int s = 0; s < j->P; s++) {
        const shard *sh = &j->s[s];
        size_t n = tensor_size(&sh->d, pass_tensor[pass][2]);
        for (size_t i = 0; i < n; i++) {
            double e = fabs((double)sh->out[o][pass][i] - sh->out[0][pass][i]);
            num = e <= num ? num : e; /* a NaN (never written) wins */
            den = fabs(sh->out[0][pass][i]) > den ? fabs(sh->out[0][pass][i]) : den;
        }
    }
    return den > 0 ? num / den : num;
}

/* FNV-1a over the bytes of every shard's output o of pass */
static uint64_t out_hash(const shard *sh, int P, int pass, int o)
{
    uint64_t h = 1469598103934665603u;
    for (int s = 0; s < P; s++) {
        const unsigned char *b = (const unsigned char *)sh[s].out[o][pass];
        size_t n = tensor_size(&sh[s].d, pass_tensor[pass][2]) * sizeof(float);
        for (size_t i = 0; i < n; i++)
            h = (h ^ b[i]) * 1099511628211u;
    }
    return h;
}

typedef struct timing {
    double best[NMODE], med[NMODE]; /* seconds per call of the whole batch */
    uint64_t hash[NLAYOUT];         /* oneDNN's outputs after the rounds */
} timing;

/* Every mode of `pass`, interleaved within each round (one warm-up). */
static void time_pass(layer_job *j, int pass, timing *tm)
{
    double *t = malloc((size_t)NMODE * (size_t)rounds * sizeof *t);
    if (!t)
        exit(1);
    j->pass = pass;
    for (int r = -1; r < rounds; r++)
        for (int m = 0; m < NMODE; m++) {
            double t0 = bench_now();
            run(j, m);
            if (r >= 0)
                t[m * rounds + r] = bench_now() - t0;
        }
    for (int m = 0; m < NMODE; m++) {
        qsort(t + m * rounds, (size_t)rounds, sizeof *t, bench_cmp_double);
        tm->best[m] = t[m * rounds];
        tm->med[m] = t[m * rounds + rounds / 2];
    }
    for (int l = 0; l < NLAYOUT; l++)
        tm->hash[l] = out_hash(j->s, j->P, pass, 1 + l);
    free(t);
}

/* Run every pass once on every path and compare oneDNN with the engine. */
static void check_layer(layer_job *j, double rel[NPASS][NLAYOUT])
{
    for (int p = 0; p < NPASS; p++) {
        j->pass = p;
        for (int s = 0; s < j->P; s++) {
            size_t n = tensor_size(&j->s[s].d, pass_tensor[p][2]);
            /* the engine's backward passes accumulate; oneDNN's must write all */
            memset(j->s[s].out[0][p], 0, n * sizeof(float));
            for (size_t i = 0; i < n; i++)
                j->s[s].out[1][p][i] = j->s[s].out[2][p][i] = NAN;
        }
        run(j, M_ENGINE);
        run(j, M_PLAIN);
        run(j, M_BLOCKED);
        run(j, M_REORDER);
        for (int l = 0; l < NLAYOUT; l++)
            rel[p][l] = max_rel(j, p, 1 + l);
    }
}

static void print_row(const layer_job *j, const char *label, double flops, int p, int l, double rel,
                      timing tm[2][NPASS], const bench_ceiling *c)
{
    const dn_call *call = &j->s[0].call[l][p];
    printf("| %s | %s | %s: %s | %.1e |", label, pass_name[p], layout_name[l], call->impl, rel);
    for (int T = 0; T < 2; T++) {
        const timing *m = &tm[T][p];
        int o = M_PLAIN + l;
        double peak = T ? c->gflops_all : c->gflops_one;
        printf(" %.0f (%.0f) | %.0f (%.0f) %.0f %% | %.2f (%.2f) |",
               flops / m->best[M_ENGINE] * 1e-9, flops / m->med[M_ENGINE] * 1e-9,
               flops / m->best[o] * 1e-9, flops / m->med[o] * 1e-9,
               100 * flops / m->best[o] * 1e-9 / peak, m->best[M_ENGINE] / m->best[o],
               m->med[M_ENGINE] / m->med[o]);
    }
    const timing *m = &tm[0][p];
    if (l == 0)
        printf(" - |\n");
    else
        printf(" %.3f, %.2f |\n", m->best[M_REORDER] * 1e3,
               m->best[M_ENGINE] / (m->best[M_BLOCKED] + m->best[M_REORDER]));
}

/* One layer: the engine against oneDNN, 1 and 2 pool threads.  Returns 0,
 * or BITS_DIFFER when oneDNN's bits depended on the pool's thread count,
 * plus DISAGREE when oneDNN and the engine differ by more than REL_TOL. */
static int bench_layer(sd_backend *be[2], dnnl_engine_t eng, const bench_ceiling *c,
                       const bench_conv_layer *layer)
{
    const sd_conv_desc *d = &layer->d;
    layer_job *j = calloc(1, sizeof *j);
    if (!j)
        exit(1);
    j->P = bench_conv_shards(d->n);
    for (int s = 0; s < j->P; s++) {
        sd_conv_desc sd = *d;
        sd.n = bench_conv_shard_n(d->n, j->P, s);
        size_t w0 = be[0]->conv_workspace(be[0], &sd), w1 = be[1]->conv_workspace(be[1], &sd);
        shard_init(&j->s[s], eng, &sd, s, w0 > w1 ? w0 : w1);
    }
    double rel[NPASS][NLAYOUT];
    j->be = be[1];
    check_layer(j, rel);
    timing tm[2][NPASS];
    for (int T = 0; T < 2; T++) {
        j->be = be[T];
        for (int p = 0; p < NPASS; p++)
            time_pass(j, p, &tm[T][p]);
    }
    char label[160], paths[64];
    snprintf(label, sizeof label, "%s (%s, %d shards)", layer->label,
             bench_conv_auto_paths(be[1], &j->s[0].d, paths, sizeof paths), j->P);
    double flops = 2.0 * d->k * ((double)d->n * d->oh * d->ow) * ((double)d->c * d->r * d->s);
    int differ = 0;
    for (int p = 0; p < NPASS; p++)
        for (int l = 0; l < NLAYOUT; l++) {
            print_row(j, label, flops, p, l, rel[p][l], tm, c);
            differ |= tm[0][p].hash[l] != tm[1][p].hash[l] ? BITS_DIFFER : 0;
            differ |= rel[p][l] <= REL_TOL ? 0 : DISAGREE; /* NaN too */
        }
    for (int s = 0; s < j->P; s++)
        shard_free(&j->s[s]);
    free(j);
    return differ;
}

/* The whole batch of d as one oneDNN call per pass with `nthr` OpenMP
 * threads: output hashes and (2 threads or more) best seconds per call,
 * convolution only. */
static void whole_batch(dnnl_engine_t eng, const sd_conv_desc *d, int nthr,
                        uint64_t hash[NLAYOUT][NPASS], double best[NLAYOUT][NPASS])
{
    omp_set_num_threads(nthr);
    shard sh;
    shard_init(&sh, eng, d, 0, 0);
    for (int l = 0; l < NLAYOUT; l++)
        for (int p = 0; p < NPASS; p++) {
            const dn_call *call = &sh.call[l][p];
            best[l][p] = 1e30;
            for (int r = -1; r < (nthr > 1 ? rounds : 0); r++) {
                double t0 = bench_now();
                call_run(call, p, sh.stream);
                double dt = bench_now() - t0;
                best[l][p] = r >= 0 && dt < best[l][p] ? dt : best[l][p];
            }
            call_reorder(call, p, sh.stream, 0, 1);
            hash[l][p] = out_hash(&sh, 1, p, 1 + l);
        }
    shard_free(&sh);
    omp_set_num_threads(1);
}

static void omp_table(dnnl_engine_t eng)
{
    printf("\n| layer | same bits with 1 and 2 OpenMP threads: nchw fwd / bwd-data / bwd-weights "
           "| blocked | whole batch, 2 OpenMP threads, GFLOP/s: nchw fwd / bwd-data / "
           "bwd-weights | blocked |\n|---|---|---|---|---|\n");
    for (int i = 0; i < bench_conv_layer_count; i++) {
        const sd_conv_desc *d = &bench_conv_layers[i].d;
        uint64_t h[2][NLAYOUT][NPASS];
        double best[2][NLAYOUT][NPASS];
        whole_batch(eng, d, 1, h[0], best[0]);
        whole_batch(eng, d, 2, h[1], best[1]);
        double flops = 2.0 * d->k * ((double)d->n * d->oh * d->ow) * ((double)d->c * d->r * d->s);
        printf("| %s |", bench_conv_layers[i].label);
        for (int l = 0; l < NLAYOUT; l++)
            printf(" %s / %s / %s |", h[0][l][0] == h[1][l][0] ? "yes" : "no",
                   h[0][l][1] == h[1][l][1] ? "yes" : "no",
                   h[0][l][2] == h[1][l][2] ? "yes" : "no");
        for (int l = 0; l < NLAYOUT; l++)
            printf(" %.0f / %.0f / %.0f |", flops / best[1][l][0] * 1e-9,
                   flops / best[1][l][1] * 1e-9, flops / best[1][l][2] * 1e-9);
        printf("\n");
    }
}

static void print_load(const char *when)
{
    char buf[128] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            snprintf(buf, sizeof buf, "?\n");
        fclose(f);
    }
    printf("load average %s: %s", when, buf);
}

int main(int argc, char **argv)
{
    int peak1 = 0, peak2 = 0;
    if ((argc > 1 && sb_parse_int(argv[1], 1, 100000, &rounds)) ||
        (argc > 3 && (sb_parse_int(argv[2], 1, 1000000, &peak1) ||
                      sb_parse_int(argv[3], 1, 1000000, &peak2)))) {
        fprintf(stderr, "usage: bench_conv_dnnl [ROUNDS [PEAK_GFLOPS_1T PEAK_GFLOPS_2T]]\n");
        return 2;
    }
    omp_set_num_threads(1); /* before any primitive exists: see the header */
    bench_ceiling c = {.isa = "given", .threads = 2, .gflops_one = peak1, .gflops_all = peak2};
    sd_backend *be[2] = {NULL, NULL};
    sd_error err = {0};
    if ((!peak1 && bench_ceiling_measure(&c, 2, 5)) || sd_backend_cpu_create(&be[0], 1, &err) ||
        sd_backend_cpu_create(&be[1], 2, &err)) {
        fprintf(stderr, "bench_conv_dnnl: %s\n", err.msg[0] ? err.msg : "ceiling not measured");
        sd_backend_destroy(be[0]);
        return 1;
    }
    dnnl_engine_t eng;
    DN(dnnl_engine_create(&eng, dnnl_cpu, 0));
    const dnnl_version_t *v = dnnl_version();
    printf("oneDNN %d.%d.%d, CPU runtime %s, ISA %s; ceiling (%s): FP32 %.0f GFLOP/s on 1 "
           "thread, %.0f on 2; OpenBLAS kernels %s; best (median) of %d rounds\n",
           v->major, v->minor, v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other",
           dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()), c.isa, c.gflops_one, c.gflops_all,
           sd_backend_cpu_blas_core(), rounds);
    print_load("before");
    printf("\n| layer (engine path, shards) | pass | oneDNN layout: kernel | max rel. diff | "
           "1 thread: engine GFLOP/s | oneDNN GFLOP/s, %% of peak | oneDNN / engine | "
           "2 threads: engine | oneDNN, %% of peak | oneDNN / engine | 1 thread: reorders ms, "
           "engine / (oneDNN + reorders) |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    int differ = 0;
    for (int i = 0; i < bench_conv_layer_count; i++)
        differ |= bench_layer(be, eng, &c, &bench_conv_layers[i]);
    printf("\nsharded oneDNN, bits with 1 and 2 pool threads: %s; oneDNN and the engine %s %.0e\n",
           differ & BITS_DIFFER ? "DIFFER" : "same",
           differ & DISAGREE ? "DISAGREE beyond" : "agree within", REL_TOL);
    omp_table(eng);
    print_load("after");
    DN(dnnl_engine_destroy(eng));
    sd_backend_destroy(be[0]);
    sd_backend_destroy(be[1]);
    return differ ? 1 : 0;
}
