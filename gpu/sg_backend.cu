/*
 * sg_backend.cu - the CUDA backend object: creation, memory, GEMM, registry.
 *
 * Owns the backend's lifetime (device, stream, cuDNN and cuBLAS handles,
 * scratch), the memory entry points and cuBLAS GEMM; the other sg_*.cu files
 * install the remaining operations into the same table.  All work is queued on
 * the backend's own stream, so operations run in call order; download() and
 * the operations that return a host value (dot, losses) wait for it.
 *
 * TF32 is never used: cuBLAS runs in CUBLAS_DEFAULT_MATH (FP32 products and
 * sums; TF32 would need CUBLAS_TF32_TENSOR_OP_MATH) and cuDNN convolutions in
 * CUDNN_FMA_MATH (see sg_conv.cu), so results stay within FP32 rounding of
 * the CPU backend.
 */
#include "sg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "sb_parse.h"
#include "sg_backend.h"
}

static const char sg_name[] = "cuda";

int sg_fail(sd_error *err, const char *file, int line, const char *call, const char *what)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    return sd_error_set(err, SD_EBACKEND, "%s:%d: %s: %s", base, line, call,
                        what ? what : "unknown error");
}

int sg_fail_code(sd_error *err, int code, const char *op, const char *what)
{
    return sd_error_set(err, code, "cuda %s: %s", op, what);
}

int sg_fetch_small(sd_backend *be, sd_error *err, const double *dev, int count, double *out)
{
    sg_ctx *c = sg_ctx_of(be);
    SG_CK_CUDA(be, cudaMemcpyAsync(c->host, dev, sizeof(double) * (size_t)count,
                                   cudaMemcpyDeviceToHost, c->stream));
    SG_CK_CUDA(be, cudaStreamSynchronize(c->stream));
    memcpy(out, c->host, sizeof(double) * (size_t)count);
    return 0;
}

/* ---- memory ---- */

static int sg_alloc(sd_backend *be, sd_error *err, size_t bytes, void **out)
{
    *out = NULL;
    /* like the CPU backend, a zero-byte request still gets a unique pointer */
    if (bytes == 0)
        bytes = 256;
    SG_ENTER(be);
    cudaError_t e = cudaMalloc(out, bytes);
    if (e != cudaSuccess) {
        *out = NULL;
        (void)cudaGetLastError(); /* an allocation failure is not sticky; clear it */
        return sd_error_set(err, SD_ENOMEM, "cudaMalloc(%zu bytes): %s", bytes,
                            cudaGetErrorString(e));
    }
    return 0;
}

static void sg_free(sd_backend *be, void *p)
{
    if (!p)
        return;
    /* cudaFree waits for the device, so queued work on p finishes first. */
    cudaError_t e = cudaSetDevice(sg_ctx_of(be)->device);
    if (e == cudaSuccess)
        e = cudaFree(p);
    if (e != cudaSuccess)
        sg_fail(NULL, __FILE__, __LINE__, "cudaFree",
                cudaGetErrorString(e)); /* free has no error to report into */
}

/* The host buffer may be reused as soon as upload returns, as on the CPU
 * backend, so the copy is waited for (pinned sources would otherwise be read
 * later). */
static int sg_upload(sd_backend *be, sd_error *err, void *dst, const void *src, size_t bytes)
{
    if (bytes == 0)
        return 0;
    SG_ENTER(be);
    sg_ctx *c = sg_ctx_of(be);
    SG_CK_CUDA(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    SG_CK_CUDA(be, cudaStreamSynchronize(c->stream));
    return 0;
}

static int sg_download(sd_backend *be, sd_error *err, void *dst, const void *src, size_t bytes)
{
    if (bytes == 0)
        return 0;
    SG_ENTER(be);
    sg_ctx *c = sg_ctx_of(be);
    SG_CK_CUDA(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    SG_CK_CUDA(be, cudaStreamSynchronize(c->stream));
    return 0;
}

static int sg_copy(sd_backend *be, sd_error *err, void *dst, const void *src, size_t bytes)
{
    if (bytes == 0 || dst == src)
        return 0;
    SG_ENTER(be);
    SG_CK_CUDA(be,
               cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, sg_ctx_of(be)->stream));
    return 0;
}

static int sg_zero(sd_backend *be, sd_error *err, void *p, size_t bytes)
{
    if (bytes == 0)
        return 0;
    SG_ENTER(be);
    SG_CK_CUDA(be, cudaMemsetAsync(p, 0, bytes, sg_ctx_of(be)->stream));
    return 0;
}

static int sg_sync(sd_backend *be, sd_error *err)
{
    SG_ENTER(be);
    SG_CK_CUDA(be, cudaStreamSynchronize(sg_ctx_of(be)->stream));
    return 0;
}

/* ---- GEMM ----
 * The contract is row-major.  A row-major matrix is its transpose in
 * column-major order, so C = op(A) op(B) (row-major) is computed as
 * C^T = op(B)^T op(A)^T in cuBLAS's column-major terms: swap the operands and
 * the m/n sizes, keep the transpose flags and the leading dimensions. */
static int sg_gemm(sd_backend *be, sd_error *err, int trans_a, int trans_b, int m, int n, int k,
                   sd_real alpha, const sd_real *a, int lda, const sd_real *b, int ldb,
                   sd_real beta, sd_real *c, int ldc)
{
    int acols = trans_a ? m : k, bcols = trans_b ? k : n;
    if (m < 0 || n < 0 || k < 0 || lda < (acols > 1 ? acols : 1) || ldb < (bcols > 1 ? bcols : 1) ||
        ldc < (n > 1 ? n : 1))
        return sd_error_set(
            err, SD_EINVAL,
            "cuda gemm: bad shape m=%d n=%d k=%d lda=%d ldb=%d ldc=%d (ta=%d tb=%d)", m, n, k, lda,
            ldb, ldc, trans_a, trans_b);
    if (m == 0 || n == 0)
        return 0;
    SG_ENTER(be);
    sg_ctx *cx = sg_ctx_of(be);
    const float al = alpha, bt = beta;
    SG_CK_CUBLAS(be, cublasSgemm(cx->cublas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &al, b, ldb, a, lda,
                                 &bt, c, ldc));
    return 0;
}

/* ---- lifetime ---- */

static void sg_destroy(sd_backend *be)
{
    if (!be)
        return;
    sg_ctx *c = sg_ctx_of(be);
    if (c) {
        /* teardown: a failure here has nowhere to be reported (destroy
         * returns nothing), so each step is attempted regardless */
        cudaSetDevice(c->device);
        if (c->stream)
            cudaStreamSynchronize(c->stream);
        sg_conv_cache_clear(c);
        free(c->plans);
        if (c->cublas)
            cublasDestroy(c->cublas);
        if (c->cudnn)
            cudnnDestroy(c->cudnn);
        if (c->scratch)
            cudaFree(c->scratch);
        if (c->own_ws)
            cudaFree(c->own_ws);
        if (c->host)
            cudaFreeHost(c->host);
        if (c->stream)
            cudaStreamDestroy(c->stream);
        pthread_mutex_destroy(&c->lock);
        free(c);
    }
    free(be);
}

static size_t sg_env_ws_limit(void)
{
    const char *s = getenv("SLDD_CUDA_WS_MAX_MB");
    long mb = 1024;
    if (s && *s) {
        long long v;
        if (sb_parse_i64(s, 0, LONG_MAX, &v) == 0)
            mb = (long)v;
    }
    return (size_t)mb << 20;
}

/* Fill c: the steps that can fail, each checked; sg_destroy undoes any part. */
static int sg_ctx_init(sd_backend *be, sd_error *err, sg_ctx *c)
{
    cudaDeviceProp prop;
    SG_CK_CUDA(be, cudaSetDevice(c->device));
    SG_CK_CUDA(be, cudaGetDeviceProperties(&prop, c->device));
    snprintf(c->device_name, sizeof c->device_name, "%s", prop.name);
    c->cc_major = prop.major;
    c->cc_minor = prop.minor;
    c->sm_count = prop.multiProcessorCount;
    SG_CK_CUDA(be, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    SG_CK_CUDNN(be, cudnnCreate(&c->cudnn));
    SG_CK_CUDNN(be, cudnnSetStream(c->cudnn, c->stream));
    SG_CK_CUBLAS(be, cublasCreate(&c->cublas));
    SG_CK_CUBLAS(be, cublasSetStream(c->cublas, c->stream));
    /* FP32 arithmetic only (no TF32 tensor cores); device-side scalars off:
     * alpha/beta come from the host.  Atomics stay disallowed (the default),
     * which keeps cuBLAS results reproducible run to run. */
    SG_CK_CUBLAS(be, cublasSetMathMode(c->cublas, CUBLAS_DEFAULT_MATH));
    SG_CK_CUBLAS(be, cublasSetPointerMode(c->cublas, CUBLAS_POINTER_MODE_HOST));
    SG_CK_CUBLAS(be, cublasSetAtomicsMode(c->cublas, CUBLAS_ATOMICS_NOT_ALLOWED));
    SG_CK_CUDA(be, cudaMalloc((void **)&c->scratch, sizeof(double) * SG_SCRATCH_DOUBLES));
    SG_CK_CUDA(be, cudaMallocHost((void **)&c->host, sizeof(double) * SG_SCRATCH_SMALL));
    c->ws_limit = sg_env_ws_limit();
    return 0;
}

extern "C" int sg_backend_cuda_create(sd_backend **out, int device, int deterministic,
                                      sd_error *err)
{
    if (!out)
        return sd_error_set(err, SD_EINVAL, "sg_backend_cuda_create: out is NULL");
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        (void)cudaGetLastError();
        return sd_error_set(err, SD_EUNSUPPORTED, "no usable CUDA device: %s",
                            e != cudaSuccess ? cudaGetErrorString(e) : "device count is 0");
    }
    if (device < 0 || device >= count)
        return sd_error_set(err, SD_EINVAL, "CUDA device %d does not exist (%d present)", device,
                            count);
    size_t cudnn_ver = cudnnGetVersion();
    if (cudnn_ver / 10000 != CUDNN_MAJOR)
        return sd_error_set(err, SD_EBACKEND,
                            "cuDNN library version %zu does not match the headers (%d.%d.%d)",
                            cudnn_ver, CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL);

    sd_backend *be = (sd_backend *)calloc(1, sizeof *be);
    sg_ctx *c = (sg_ctx *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return sd_error_set(err, SD_ENOMEM, "out of memory creating the CUDA backend");
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(be);
        free(c);
        return sd_error_set(err, SD_ENOMEM, "pthread_mutex_init failed");
    }
    c->device = device;
    c->deterministic = deterministic != SG_MODE_FAST;
    c->timed_search = deterministic != SG_MODE_DETERMINISTIC_HEURISTIC;
    be->name = sg_name;
    be->ctx = c;
    be->destroy = sg_destroy;
    be->alloc = sg_alloc;
    be->free = sg_free;
    be->upload = sg_upload;
    be->download = sg_download;
    be->copy = sg_copy;
    be->zero = sg_zero;
    be->sync = sg_sync;
    be->gemm = sg_gemm;
    sg_install_elem(be);
    sg_install_conv(be);
    sg_install_pool(be);
    sg_install_bn(be);
    sg_install_sce(be);
    sg_install_patch(be);

    int rc = sg_ctx_init(be, err, c);
    if (rc) {
        sd_error_wrap_code(err, rc, "creating the CUDA backend on device %d", device);
        sg_destroy(be);
        return rc;
    }
    *out = be;
    return 0;
}

extern "C" int sg_backend_is_cuda(const sd_backend *be)
{
    return be && be->destroy == sg_destroy;
}

extern "C" void sg_backend_describe(sd_backend *be, char *buf, size_t len)
{
    if (!buf || len == 0)
        return;
    if (!sg_backend_is_cuda(be)) {
        snprintf(buf, len, "not a CUDA backend");
        return;
    }
    sg_ctx *c = sg_ctx_of(be);
    int cublas_ver = 0, rt = 0, drv = 0;
    /* a failed query shows as version 0 in the description */
    if (cublasGetVersion(c->cublas, &cublas_ver) != CUBLAS_STATUS_SUCCESS)
        cublas_ver = 0;
    if (cudaRuntimeGetVersion(&rt) != cudaSuccess)
        rt = 0;
    if (cudaDriverGetVersion(&drv) != cudaSuccess)
        drv = 0;
    size_t dn = cudnnGetVersion();
    snprintf(buf, len,
             "%s (sm_%d%d, %d SMs), CUDA runtime %d.%d, driver %d.%d, cuDNN %zu.%zu.%zu, "
             "cuBLAS %d, %s",
             c->device_name, c->cc_major, c->cc_minor, c->sm_count, rt / 1000, (rt % 1000) / 10,
             drv / 1000, (drv % 1000) / 10, dn / 10000, (dn % 10000) / 100, dn % 100, cublas_ver,
             !c->deterministic ? "fastest algorithms"
             : c->timed_search ? "deterministic (timed choice)"
                               : "deterministic (heuristic choice)");
}

extern "C" const char *sg_build_info(void)
{
#define SG_STR2(x) #x
#define SG_STR(x)  SG_STR2(x)
    return "CUDA " SG_STR(__CUDACC_VER_MAJOR__) "." SG_STR(__CUDACC_VER_MINOR__) ", cuDNN " SG_STR(
        CUDNN_MAJOR) "." SG_STR(CUDNN_MINOR) "." SG_STR(CUDNN_PATCHLEVEL);
}

/* ---- registry ---- */

static int sg_env_int(const char *name, int dflt)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return dflt;
    int v;
    return sb_parse_int(s, INT_MIN, INT_MAX, &v) == 0 ? v : dflt;
}

static int sg_factory(sd_backend **out, sd_error *err)
{
    return sg_backend_cuda_create(out, sg_env_int("SLDD_CUDA_DEVICE", 0),
                                  sg_env_int("SLDD_CUDA_DETERMINISTIC", SG_MODE_DETERMINISTIC),
                                  err);
}

extern "C" int sg_backend_register(void)
{
    return sd_backend_register("cuda", sg_factory);
}
