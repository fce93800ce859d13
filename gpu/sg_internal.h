/*
 * sg_internal.h - state and helpers shared by the CUDA backend's files.
 *
 * One sg_ctx per backend object: the device, one stream that every operation
 * is queued on (so operations are ordered exactly as they are called), the
 * cuDNN and cuBLAS handles bound to that stream, the convolution plan cache
 * and a scratch area allocated once at creation for the two-stage
 * deterministic reductions (kernels never allocate).
 *
 * Error handling: every CUDA, cuDNN and cuBLAS call goes through one of the
 * SG_CK_* macros, which record "file:line: call: library message" in the
 * calling operation's sd_error (named err in every operation and helper)
 * and return SD_EBACKEND from the calling operation.
 */
#ifndef SG_INTERNAL_H
#define SG_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <pthread.h>

extern "C" {
#include "sd_backend.h"
}

#ifdef SD_REAL_DOUBLE
#error "the CUDA backend is float32 only; build it against the float engine"
#endif

/* One planned convolution shape: descriptors and the algorithm of each pass. */
typedef struct sg_conv_plan {
    sd_conv_desc d;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    size_t ws_fwd, ws_data, ws_filter;
    int requested; /* conv_workspace was asked for this exact shape */
    int own_ws;    /* runs on the backend's own workspace (see sg_conv.cu) */
} sg_conv_plan;

/* Scratch layout (doubles): partial sums, per-channel coefficients, scalars. */
#define SG_SCRATCH_PART    (3u << 20) /* 3 Mi doubles of partial sums */
#define SG_SCRATCH_COEF    (1u << 20) /* per-channel coefficients */
#define SG_SCRATCH_SMALL   1024u      /* final scalars */
#define SG_SCRATCH_DOUBLES (SG_SCRATCH_PART + SG_SCRATCH_COEF + SG_SCRATCH_SMALL)

typedef struct sg_ctx {
    int device;
    int deterministic;
    int timed_search; /* choose convolution algorithms by timing (cudnnFind*) */
    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    pthread_mutex_t lock; /* guards the plan cache */
    sg_conv_plan *plans;
    int n_plans, cap_plans;
    size_t ws_limit; /* largest convolution workspace a plan may ask for */
    void *own_ws;    /* fallback workspace for unplanned batch sizes */
    size_t own_ws_size;
    double *scratch; /* device, SG_SCRATCH_DOUBLES */
    double *host;    /* pinned host, SG_SCRATCH_SMALL doubles */
    char device_name[256];
    int cc_major, cc_minor, sm_count;
} sg_ctx;

static inline sg_ctx *sg_ctx_of(sd_backend *be)
{
    return (sg_ctx *)be->ctx;
}
static inline double *sg_part(sg_ctx *c)
{
    return c->scratch;
}
static inline double *sg_coef(sg_ctx *c)
{
    return c->scratch + SG_SCRATCH_PART;
}
static inline double *sg_small(sg_ctx *c)
{
    return c->scratch + SG_SCRATCH_PART + SG_SCRATCH_COEF;
}

/* Record an error of a library call in err (may be NULL); returns SD_EBACKEND. */
int sg_fail(sd_error *err, const char *file, int line, const char *call, const char *what);
/* Record an argument error; returns SD_EINVAL (or the code given). */
int sg_fail_code(sd_error *err, int code, const char *op, const char *what);

#define SG_CK_CUDA(be, call)                                                           \
    do {                                                                               \
        cudaError_t sg_e_ = (call);                                                    \
        if (sg_e_ != cudaSuccess)                                                      \
            return sg_fail(err, __FILE__, __LINE__, #call, cudaGetErrorString(sg_e_)); \
    } while (0)

#define SG_CK_CUDNN(be, call)                                                           \
    do {                                                                                \
        cudnnStatus_t sg_s_ = (call);                                                   \
        if (sg_s_ != CUDNN_STATUS_SUCCESS)                                              \
            return sg_fail(err, __FILE__, __LINE__, #call, cudnnGetErrorString(sg_s_)); \
    } while (0)

#define SG_CK_CUBLAS(be, call)                                                            \
    do {                                                                                  \
        cublasStatus_t sg_b_ = (call);                                                    \
        if (sg_b_ != CUBLAS_STATUS_SUCCESS)                                               \
            return sg_fail(err, __FILE__, __LINE__, #call, cublasGetStatusString(sg_b_)); \
    } while (0)

/* After every kernel launch: catches bad launch configurations at once
 * (faults inside a kernel surface at the next synchronising call). */
#define SG_CK_LAUNCH(be) SG_CK_CUDA(be, cudaGetLastError())

/* Pass on a non-zero status from a helper. */
#define SG_TRY(call)         \
    do {                     \
        int sg_rc_ = (call); \
        if (sg_rc_)          \
            return sg_rc_;   \
    } while (0)

/* On entry to every operation: make the backend's device current for the
 * calling thread (a backend may be driven from a thread other than the one
 * that created it), and drop a non-sticky error that a library call may
 * have left behind, so that SG_CK_LAUNCH reports only our own launches.
 * (Sticky errors, such as a fault in an earlier kernel, stay and surface.) */
#define SG_ENTER(be)                                          \
    do {                                                      \
        SG_CK_CUDA(be, cudaSetDevice(sg_ctx_of(be)->device)); \
        (void)cudaGetLastError();                             \
    } while (0)

#define SG_THREADS    256
#define SG_MAX_BLOCKS 8192u

static inline unsigned sg_blocks(size_t n)
{
    size_t b = (n + SG_THREADS - 1) / SG_THREADS;
    if (b > SG_MAX_BLOCKS)
        b = SG_MAX_BLOCKS;
    return b ? (unsigned)b : 1u;
}

/* Copy `count` doubles of device scratch to the pinned host buffer and wait. */
int sg_fetch_small(sd_backend *be, sd_error *err, const double *dev, int count, double *out);

/* Per-file installers: each sets the table entries it implements. */
void sg_install_conv(sd_backend *be);
void sg_install_elem(sd_backend *be);
void sg_install_pool(sd_backend *be);
void sg_install_bn(sd_backend *be);
void sg_install_sce(sd_backend *be);
void sg_install_patch(sd_backend *be);

/* Convolution plan cache teardown (sg_conv.cu). */
void sg_conv_cache_clear(sg_ctx *c);

#endif
