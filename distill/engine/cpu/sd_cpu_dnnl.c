/*
 * sd_cpu_dnnl.c - the `dnnl` convolution path of the CPU backend: oneDNN's
 * direct f32 convolutions on the layouts oneDNN prefers.
 *
 * Built into the float32 engine when CMake finds oneDNN (SLDD_DNNL,
 * SD_HAVE_DNNL); the float64 engine never has it (oneDNN has no f64
 * convolutions) and there every entry below is a stub that says so.  The
 * automatic rule (sd_cpu_conv.c, per pass) picks it for layers with 16 or
 * more input channels and for few-channel layers with 5x5 or larger kernels,
 * where oneDNN can run in the process
 * (dn_probe: not under a sandbox that denies W^X memory) (docs/cpu-backend.md).
 *
 * Each call takes NCHW/OIHW in and out, like every other path: the two
 * inputs are reordered into oneDNN's layouts (format_tag any) in the
 * caller's workspace, the convolution runs, and its output is reordered back
 * into the caller's tensor, with a sum post-op where the op accumulates
 * (conv_fwd with beta 1, both backward passes: "+=").  The forward output
 * with beta 0 in a plain layout is written in place.
 *
 * Owns the backend's cache of primitives (struct sd_cpu_dnnl in cpu_ctx):
 * one entry per (shape, pass), created on first use under a process-wide
 * lock, never changed afterwards and freed in cpu_destroy; executions run
 * outside the lock, concurrently on the pool's threads (primitives are
 * const when executed; each call has its own stream, memory objects and a
 * user-mode scratchpad allocated for the call, whose size is only known
 * once the primitive exists, so it is not part of conv_workspace).
 *
 * Threads: Debian's oneDNN runs on OpenMP and sizes its work by the calling
 * thread's omp_get_max_threads().  Every entry here first sets the calling
 * thread's OpenMP thread count to 1, so each call runs on its caller's thread
 * alone, as the other paths do: oneDNN's own threading splits the weight
 * gradient's reduction and would make its bits depend on the thread count
 * (docs/benchmarks.md, "oneDNN against the engine's convolutions").
 */
#include "sd_cpu_internal.h"

#if defined(SD_HAVE_DNNL) && !defined(SD_REAL_DOUBLE)

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { T_X, T_W, T_Y }; /* x (n,c,h,w), w (k,c,r,s), y (n,k,oh,ow) */

/* per pass: the tensors of its two inputs and of its output, their
 * execution arguments and the queries of oneDNN's descriptors for them */
static const int pass_tensor[SD_CPU_DNNL_NPASS][3] = {
    {T_X, T_W, T_Y}, {T_Y, T_W, T_X}, {T_X, T_Y, T_W}};
static const int pass_arg[SD_CPU_DNNL_NPASS][3] = {
    {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
    {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC},
    {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS}};
static const dnnl_query_t pass_query[SD_CPU_DNNL_NPASS][3] = {
    {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md},
    {dnnl_query_diff_dst_md, dnnl_query_weights_md, dnnl_query_diff_src_md},
    {dnnl_query_src_md, dnnl_query_diff_dst_md, dnnl_query_diff_weights_md}};
static const char *const pass_name[SD_CPU_DNNL_NPASS] = {"conv_fwd", "conv_bwd_data",
                                                         "conv_bwd_filter"};

/* One (shape, pass): immutable once in the list. */
typedef struct dn_entry {
    sd_conv_desc d;
    int pass;
    dnnl_primitive_t conv;
    dnnl_memory_desc_t plain[3], md[3]; /* NCHW/OIHW and oneDNN's, per argument */
    dnnl_primitive_t to_dnnl[2];        /* inputs plain -> md; NULL where md is plain */
    dnnl_primitive_t out_set, out_add;  /* output md -> plain, "=" and "+="; NULL if plain */
    int out_is_plain;
    dnnl_memory_desc_t scratch_md;
    size_t scratch; /* bytes of the convolution's scratchpad */
    struct dn_entry *next;
} dn_entry;

struct sd_cpu_dnnl {
    dnnl_engine_t eng;
    dn_entry *head;
};

/* Creation of the cache and of its entries, in every backend. */
static pthread_mutex_t dn_lock = PTHREAD_MUTEX_INITIALIZER;

#define DN_ALIGN_ELEMS (CPU_ALIGN / sizeof(float))

/* Whether oneDNN can run in this process, tried once: its kernels are
 * generated at run time and mapped executable, which a sandbox that denies
 * W^X changes refuses (systemd's MemoryDenyWriteExecute=yes, the packaged
 * unit's setting, or prctl PR_SET_MDWE): primitive creation then fails, and
 * the path applies nowhere, so the automatic choice keeps the engine's own
 * paths (docs/cpu-backend.md). */
static pthread_once_t dn_probe_once = PTHREAD_ONCE_INIT;
static int dn_usable;
static char dn_why[sizeof((sd_error *)0)->msg];

static int dn_entry_create(dn_entry **out, dnnl_engine_t eng, const sd_conv_desc *d, int pass,
                           sd_error *err);
static void dn_entry_free(dn_entry *e);

static void dn_probe(void)
{
    const sd_conv_desc d = {.n = 1,
                            .c = 16,
                            .h = 8,
                            .w = 8,
                            .k = 16,
                            .r = 3,
                            .s = 3,
                            .stride = 1,
                            .pad = 1,
                            .oh = 8,
                            .ow = 8};
    dnnl_engine_t eng = NULL;
    dn_entry *e = NULL;
    sd_error err = {0};
    omp_set_num_threads(1);
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) {
        snprintf(dn_why, sizeof dn_why, "oneDNN's CPU engine could not be created");
        return;
    }
    if (dn_entry_create(&e, eng, &d, SD_CPU_DNNL_FWD, &err) == SD_OK) {
        dn_usable = 1;
        dn_entry_free(e);
    } else {
        snprintf(dn_why, sizeof dn_why, "%s", err.msg);
    }
    (void)dnnl_engine_destroy(eng); /* frees memory: cannot fail usefully */
}

int sd_cpu_dnnl_available(void)
{
    pthread_once(&dn_probe_once, dn_probe);
    return dn_usable;
}

const char *sd_cpu_dnnl_unusable_reason(void)
{
    return sd_cpu_dnnl_available() ? NULL : dn_why;
}

static size_t round_up(size_t v, size_t m)
{
    return (v + m - 1) / m * m;
}

/* Elements of tensor t in a layout that pads its channels to blocks of 16
 * (oneDNN's f32 layouts block channels by 8 or 16 on x86), rounded up to
 * whole cache lines: the part of the workspace that holds it.  Entries whose
 * layouts need more are refused at creation (dn_entry_create). */
static size_t dn_tensor_elems(const sd_conv_desc *d, int t)
{
    size_t c16 = round_up((size_t)d->c, 16), k16 = round_up((size_t)d->k, 16), e;
    if (t == T_X)
        e = (size_t)d->n * c16 * d->h * d->w;
    else if (t == T_W)
        e = k16 * c16 * d->r * d->s;
    else
        e = (size_t)d->n * k16 * d->oh * d->ow;
    return round_up(e, DN_ALIGN_ELEMS);
}

size_t sd_cpu_dnnl_ws_elems(const sd_conv_desc *d)
{
    /* the three tensors of any pass; linear in n, so non-decreasing */
    return dn_tensor_elems(d, T_X) + dn_tensor_elems(d, T_W) + dn_tensor_elems(d, T_Y) +
           DN_ALIGN_ELEMS; /* the caller's buffer may start off a cache line */
}

static int dn_fail(sd_error *err, dnnl_status_t st, const char *what, const sd_conv_desc *d)
{
    return CPU_FAIL(err, SD_EBACKEND,
                    "cpu conv (dnnl): %s failed (oneDNN status %d) for n=%d c=%d h=%d w=%d k=%d "
                    "r=%d s=%d stride=%d pad=%d",
                    what, (int)st, d->n, d->c, d->h, d->w, d->k, d->r, d->s, d->stride, d->pad);
}

/* Record the first failure in rc (a dnnl_status_t call, named by itself). */
#define DN_TRY(call)                          \
    do {                                      \
        dnnl_status_t st_ = (call);           \
        if (st_ != dnnl_success && !rc)       \
            rc = dn_fail(err, st_, #call, d); \
    } while (0)

static int dn_tensor_md(dnnl_memory_desc_t *md, const sd_conv_desc *d, int t, int any,
                        sd_error *err)
{
    int rc = SD_OK;
    const int64_t v[3][4] = {
        {d->n, d->c, d->h, d->w}, {d->k, d->c, d->r, d->s}, {d->n, d->k, d->oh, d->ow}};
    dnnl_dims_t dims = {v[t][0], v[t][1], v[t][2], v[t][3]};
    DN_TRY(dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32,
                                        any        ? dnnl_format_tag_any
                                        : t == T_W ? dnnl_oihw
                                                   : dnnl_nchw));
    return rc;
}

/* The convolution's primitive descriptor for pass on d, layouts left to
 * oneDNN, user-mode scratchpad; the backward passes take the forward one as
 * their hint (hint NULL: this is the forward one). */
static int dn_conv_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, const sd_conv_desc *d, int pass,
                      const_dnnl_primitive_desc_t hint, sd_error *err)
{
    int rc = SD_OK;
    dnnl_memory_desc_t x, w, y;
    *pd = NULL;
    if ((rc = dn_tensor_md(&x, d, T_X, 1, err)) || (rc = dn_tensor_md(&w, d, T_W, 1, err)) ||
        (rc = dn_tensor_md(&y, d, T_Y, 1, err)))
        return rc;
    dnnl_dims_t st = {d->stride, d->stride}, pad = {d->pad, d->pad};
    dnnl_convolution_desc_t cd;
    if (pass == SD_CPU_DNNL_FWD)
        DN_TRY(dnnl_convolution_forward_desc_init(
            &cd, dnnl_forward_training, dnnl_convolution_direct, &x, &w, NULL, &y, st, pad, pad));
    else if (pass == SD_CPU_DNNL_BWD_DATA)
        DN_TRY(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &x, &w, &y,
                                                        st, pad, pad));
    else
        DN_TRY(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &x, &w,
                                                           NULL, &y, st, pad, pad));
    if (rc)
        return rc;
    dnnl_primitive_attr_t attr = NULL;
    DN_TRY(dnnl_primitive_attr_create(&attr));
    if (!rc)
        DN_TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (!rc)
        DN_TRY(dnnl_primitive_desc_create(pd, &cd, attr, eng, hint));
    if (attr)
        DN_TRY(dnnl_primitive_attr_destroy(attr));
    return rc;
}

/* A reorder from -> to (with "+=" where add), user-mode scratchpad, which
 * plain copies do not need: one that would is refused. */
static int dn_reorder(dnnl_primitive_t *out, dnnl_engine_t eng, const dnnl_memory_desc_t *from,
                      const dnnl_memory_desc_t *to, int add, const sd_conv_desc *d, sd_error *err)
{
    int rc = SD_OK;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    DN_TRY(dnnl_primitive_attr_create(&attr));
    if (!rc)
        DN_TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (!rc && add) {
        DN_TRY(dnnl_post_ops_create(&po));
        if (!rc)
            DN_TRY(dnnl_post_ops_append_sum(po, 1.0f));
        if (!rc)
            DN_TRY(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    if (!rc)
        DN_TRY(dnnl_reorder_primitive_desc_create(&rpd, from, eng, to, eng, attr));
    if (!rc) {
        const dnnl_memory_desc_t *smd =
            dnnl_primitive_desc_query_md(rpd, dnnl_query_scratchpad_md, 0);
        if (smd && dnnl_memory_desc_get_size(smd) > 0)
            rc = CPU_FAIL(err, SD_EBACKEND, "cpu conv (dnnl): a layout reorder needs scratch");
    }
    if (!rc)
        DN_TRY(dnnl_primitive_create(out, rpd));
    if (rpd)
        DN_TRY(dnnl_primitive_desc_destroy(rpd));
    if (po)
        DN_TRY(dnnl_post_ops_destroy(po));
    if (attr)
        DN_TRY(dnnl_primitive_attr_destroy(attr));
    return rc;
}

static void dn_entry_free(dn_entry *e)
{
    if (!e)
        return;
    dnnl_primitive_t p[5] = {e->conv, e->to_dnnl[0], e->to_dnnl[1], e->out_set, e->out_add};
    for (int i = 0; i < 5; i++)
        if (p[i])
            (void)dnnl_primitive_destroy(p[i]); /* frees memory: cannot fail usefully */
    free(e);
}

/* The primitives of (d, pass) and their descriptors. */
static int dn_entry_create(dn_entry **out, dnnl_engine_t eng, const sd_conv_desc *d, int pass,
                           sd_error *err)
{
    int rc = SD_OK;
    dn_entry *e = calloc(1, sizeof *e);
    dnnl_primitive_desc_t fwd = NULL, pd = NULL;
    if (!e)
        return CPU_FAIL(err, SD_ENOMEM, "cpu conv (dnnl): out of memory");
    e->d = *d;
    e->pass = pass;
    rc = dn_conv_pd(&fwd, eng, d, SD_CPU_DNNL_FWD, NULL, err);
    if (!rc && pass != SD_CPU_DNNL_FWD)
        rc = dn_conv_pd(&pd, eng, d, pass, fwd, err);
    const_dnnl_primitive_desc_t use = pass == SD_CPU_DNNL_FWD ? fwd : pd;
    for (int a = 0; a < 3 && !rc; a++) {
        int t = pass_tensor[pass][a];
        const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(use, pass_query[pass][a], 0);
        if (!want) {
            rc = CPU_FAIL(err, SD_EBACKEND, "cpu conv (dnnl): no layout for argument %d of %s", a,
                          pass_name[pass]);
            break;
        }
        e->md[a] = *want;
        if ((rc = dn_tensor_md(&e->plain[a], d, t, 0, err)))
            break;
        if (dnnl_memory_desc_get_size(want) > dn_tensor_elems(d, t) * sizeof(float)) {
            rc = CPU_FAIL(err, SD_EBACKEND,
                          "cpu conv (dnnl): oneDNN's layout of argument %d of %s (%zu bytes) "
                          "exceeds the workspace's bound",
                          a, pass_name[pass], dnnl_memory_desc_get_size(want));
            break;
        }
        int plain = dnnl_memory_desc_equal(want, &e->plain[a]);
        if (a < 2 && !plain)
            rc = dn_reorder(&e->to_dnnl[a], eng, &e->plain[a], want, 0, d, err);
        if (a == 2) {
            e->out_is_plain = plain;
            if (!plain && pass == SD_CPU_DNNL_FWD)
                rc = dn_reorder(&e->out_set, eng, want, &e->plain[a], 0, d, err);
            if (!rc)
                rc = dn_reorder(&e->out_add, eng, want, &e->plain[a], 1, d, err);
        }
    }
    if (!rc) {
        const dnnl_memory_desc_t *smd =
            dnnl_primitive_desc_query_md(use, dnnl_query_scratchpad_md, 0);
        if (smd) {
            e->scratch_md = *smd;
            e->scratch = dnnl_memory_desc_get_size(smd);
        }
        DN_TRY(dnnl_primitive_create(&e->conv, use));
    }
    if (pd)
        DN_TRY(dnnl_primitive_desc_destroy(pd));
    if (fwd)
        DN_TRY(dnnl_primitive_desc_destroy(fwd));
    if (rc) {
        dn_entry_free(e);
        return rc;
    }
    *out = e;
    return SD_OK;
}

static int desc_equal(const sd_conv_desc *a, const sd_conv_desc *b)
{
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w && a->k == b->k &&
           a->r == b->r && a->s == b->s && a->stride == b->stride && a->pad == b->pad &&
           a->oh == b->oh && a->ow == b->ow;
}

/* The cached entry of (d, pass), created (with the cache and its engine)
 * on first use. */
static int dn_lookup(cpu_ctx *ctx, const sd_conv_desc *d, int pass, const dn_entry **out,
                     sd_error *err)
{
    int rc = SD_OK;
    pthread_mutex_lock(&dn_lock);
    if (!ctx->dnnl && !(ctx->dnnl = calloc(1, sizeof *ctx->dnnl)))
        rc = CPU_FAIL(err, SD_ENOMEM, "cpu conv (dnnl): out of memory");
    struct sd_cpu_dnnl *dn = ctx->dnnl;
    if (!rc && !dn->eng)
        DN_TRY(dnnl_engine_create(&dn->eng, dnnl_cpu, 0));
    dn_entry *e = NULL;
    for (e = rc ? NULL : dn->head; e; e = e->next)
        if (e->pass == pass && desc_equal(&e->d, d))
            break;
    if (!rc && !e && !(rc = dn_entry_create(&e, dn->eng, d, pass, err))) {
        e->next = dn->head;
        dn->head = e;
    }
    pthread_mutex_unlock(&dn_lock);
    *out = e;
    return rc;
}

/* Run primitive p with n arguments on the call's stream s (in order: a
 * CPU stream executes each primitive before the next starts). */
static int dn_exec(dnnl_stream_t s, dnnl_primitive_t p, int n, const dnnl_exec_arg_t *args,
                   const sd_conv_desc *d, sd_error *err)
{
    int rc = SD_OK;
    DN_TRY(dnnl_primitive_execute(p, s, n, args));
    return rc;
}

/* Memory objects of one call: [0..2] the arguments in oneDNN's layouts,
 * [3..5] the caller's NCHW/OIHW tensors, [6] the scratchpad. */
enum { DN_NMEM = 7 };

static int dn_mem(dnnl_memory_t *m, dnnl_engine_t eng, const dnnl_memory_desc_t *md, void *p,
                  const sd_conv_desc *d, sd_error *err)
{
    int rc = SD_OK;
    DN_TRY(dnnl_memory_create(m, md, eng, p));
    return rc;
}

/* The convolution of one call and the reorders around it, on one stream of
 * the call's own. */
static int dn_run(const dn_entry *e, dnnl_engine_t eng, dnnl_memory_t *m, int add,
                  const sd_conv_desc *d, sd_error *err)
{
    int rc = SD_OK;
    dnnl_stream_t s = NULL;
    DN_TRY(dnnl_stream_create(&s, eng, dnnl_stream_default_flags));
    for (int a = 0; a < 2 && !rc; a++)
        if (e->to_dnnl[a]) {
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, m[3 + a]}, {DNNL_ARG_TO, m[a]}};
            rc = dn_exec(s, e->to_dnnl[a], 2, ra, d, err);
        }
    dnnl_exec_arg_t args[4];
    int n = 0;
    for (int a = 0; a < 3; a++)
        args[n++] = (dnnl_exec_arg_t){pass_arg[e->pass][a], m[a]};
    if (m[6])
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, m[6]};
    if (!rc)
        rc = dn_exec(s, e->conv, n, args, d, err);
    if (!rc && m[2] != m[5]) {
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, m[2]}, {DNNL_ARG_TO, m[5]}};
        rc = dn_exec(s, add ? e->out_add : e->out_set, 2, ra, d, err);
    }
    if (!rc)
        DN_TRY(dnnl_stream_wait(s));
    if (s)
        DN_TRY(dnnl_stream_destroy(s));
    return rc;
}

int sd_cpu_dnnl_conv(sd_backend *be, sd_error *err, int pass, const sd_conv_desc *d,
                     const sd_real *a, const sd_real *b, sd_real beta, sd_real *out, void *ws)
{
    if (d->n == 0) /* nothing to compute, and "+=" of nothing */
        return SD_OK;
    omp_set_num_threads(1); /* this thread's oneDNN calls: on this thread alone */
    cpu_ctx *ctx = be->ctx;
    const dn_entry *e = NULL;
    int rc = dn_lookup(ctx, d, pass, &e, err);
    if (rc)
        return rc;
    dnnl_engine_t eng = ctx->dnnl->eng;
    /* "=" only for the forward pass with beta 0; the rest accumulate */
    int add = pass != SD_CPU_DNNL_FWD || beta != 0;
    float *buf = (float *)round_up((uintptr_t)ws, CPU_ALIGN);
    void *user[3] = {(void *)a, (void *)b, out}, *scratch = NULL;
    dnnl_memory_t m[DN_NMEM] = {0};
    for (int i = 0; i < 3 && !rc; i++) {
        int t = pass_tensor[pass][i];
        rc = dn_mem(&m[3 + i], eng, &e->plain[i], user[i], d, err);
        if (rc)
            break;
        if ((i < 2 && !e->to_dnnl[i]) || (i == 2 && e->out_is_plain && !add))
            m[i] = m[3 + i]; /* oneDNN uses the caller's tensor itself */
        else
            rc = dn_mem(&m[i], eng, &e->md[i], buf, d, err);
        buf += dn_tensor_elems(d, t);
    }
    if (!rc && e->scratch > 0) {
        size_t sz = round_up(e->scratch, CPU_ALIGN);
        if (posix_memalign(&scratch, CPU_ALIGN, sz) != 0) {
            scratch = NULL;
            rc = CPU_FAIL(err, SD_ENOMEM, "cpu conv (dnnl): cannot allocate %zu bytes of scratch",
                          sz);
        } else {
            rc = dn_mem(&m[6], eng, &e->scratch_md, scratch, d, err);
        }
    }
    if (!rc)
        rc = dn_run(e, eng, m, add, d, err);
    for (int i = 0; i < DN_NMEM; i++)
        if (m[i] && (i >= 3 || m[i] != m[3 + i]))
            DN_TRY(dnnl_memory_destroy(m[i]));
    free(scratch);
    return rc;
}

void sd_cpu_dnnl_destroy(struct sd_cpu_dnnl *dn)
{
    if (!dn)
        return;
    while (dn->head) {
        dn_entry *e = dn->head;
        dn->head = e->next;
        dn_entry_free(e);
    }
    if (dn->eng)
        (void)dnnl_engine_destroy(dn->eng); /* frees memory: nothing to report to */
    free(dn);
}

#else /* no oneDNN in this build: the path does not apply anywhere */

int sd_cpu_dnnl_available(void)
{
    return 0;
}

const char *sd_cpu_dnnl_unusable_reason(void)
{
    return "this build has no oneDNN";
}

size_t sd_cpu_dnnl_ws_elems(const sd_conv_desc *d)
{
    (void)d;
    return 0;
}

int sd_cpu_dnnl_conv(sd_backend *be, sd_error *err, int pass, const sd_conv_desc *d,
                     const sd_real *a, const sd_real *b, sd_real beta, sd_real *out, void *ws)
{
    (void)be, (void)pass, (void)d, (void)a, (void)b, (void)beta, (void)out, (void)ws;
    return CPU_FAIL(err, SD_EBACKEND, "cpu conv: this build has no oneDNN (dnnl) path");
}

void sd_cpu_dnnl_destroy(struct sd_cpu_dnnl *dn)
{
    (void)dn;
}

#endif
