/*
 * sd_backend.h - the compute backend interface (docs/architecture.md, "Backends").
 *
 * A backend is a table of function pointers plus a context.  The CPU backend
 * (engine/cpu/, one file per op family) is always built and is the
 * reference; the CUDA backend (gpu/, split the same way) implements the same
 * table.  Layer code calls only through this table,
 * never #ifdef on the backend.
 *
 * Conventions, shared by every implementation:
 *  - All tensor pointers are backend memory (host memory for the CPU backend,
 *    device memory for CUDA) holding sd_real, NCHW, densely packed.
 *  - "+=" in a comment means the op ACCUMULATES into its output; the caller
 *    zeroes it first when it wants a plain result.  "=" means overwrite.
 *  - Kernels never allocate.  Ops that need scratch space say so and take a
 *    workspace of the size returned by the matching *_workspace call.
 *  - Every op returns 0 or a negative SD_E* code and, when it fails, always
 *    writes its message into the sd_error its caller passes (err may be
 *    NULL).  The backend keeps no error of its own: calls running at once
 *    (batch shards) each report into their own, and a caller never formats
 *    a message into the one it reads.
 *  - Batch norm uses the biased variance with eps inside the square root:
 *        mean_c = E[x], var_c = E[(x-mean_c)^2], invstd_c = 1/sqrt(var_c+eps)
 *    in every op (forward, backward, tangents) and on every backend.
 *  - Max pooling picks the FIRST maximum in row-major window order (ties are
 *    broken identically by forward, backward and tangents on every backend);
 *    padding cells never win.
 */
#ifndef SD_BACKEND_H
#define SD_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "sd_error.h"
#include "sd_real.h"

/* 2-D convolution geometry (square stride/padding in each axis, no groups). */
typedef struct sd_conv_desc {
    int n;       /* batch */
    int c, h, w; /* input channels and size */
    int k;       /* output channels */
    int r, s;    /* kernel height, width */
    int stride, pad;
    int oh, ow; /* output size: (h + 2*pad - r)/stride + 1, etc. */
} sd_conv_desc;

/* Pooling geometry.  For adaptive pooling only n,c,h,w,oh,ow are used and the
 * window of output cell i is [floor(i*h/oh), ceil((i+1)*h/oh)) (PyTorch's rule). */
typedef struct sd_pool_desc {
    int n, c, h, w;
    int kh, kw, sh, sw, ph, pw;
    int oh, ow;
    int count_include_pad; /* average pooling: divide by the full window */
    int adaptive;          /* average pooling: adaptive windows (see above) */
} sd_pool_desc;

/* Batch-norm geometry: per-channel statistics over n*hw values. */
typedef struct sd_bn_desc {
    int n, c, hw;
    double eps; /* 1e-5 everywhere in this project */
} sd_bn_desc;

/* Batch-mode batch norm split over batch shards (bn_partial, bn_apply): each
 * of the four batch-mode ops is this shard's per-channel sums, then the op's
 * outputs from the sums of all shards joined by sd_bn_join.  Sums per
 * channel, at part[ch * SD_BN_SUMS + k] (host doubles):
 *   FWD:          sum x, sum (x - shard mean)^2   (joined: mean, sum (x - mean)^2)
 *   BWD:          sum gy, sum gy xh
 *   FWD_TANGENT:  sum dx, sum xh dx
 *   BWD_TANGENT:  sum gy, gy xh, dx, xh dx, gy dx, dgy, dgy xh            */
typedef enum sd_bn_op {
    SD_BN_OP_FWD = 0,
    SD_BN_OP_BWD = 1,
    SD_BN_OP_FWD_TANGENT = 2,
    SD_BN_OP_BWD_TANGENT = 3
} sd_bn_op;
#define SD_BN_SUMS 8

/* The buffers of one batch-mode batch-norm op, as in the bn_*_train ops
 * below (NULL tangents mean zero, NULL outputs "not wanted"); FWD's bn_apply
 * writes mean_out and invstd_out, the others read mean and invstd. */
typedef struct sd_bn_bufs {
    const sd_real *x, *dx, *gamma, *beta, *dgamma, *dbeta, *gy, *dgy, *mean, *invstd;
    sd_real *mean_out, *invstd_out;
    sd_real *y, *dy, *gx, *dgx, *ggamma, *gbeta, *dggamma, *dgbeta;
} sd_bn_bufs;

/* Join the per-channel sums of P shards, in shard order 0..P-1, into sums
 * (c * SD_BN_SUMS): count[s] values per channel in shard s (0: skipped).
 * FWD combines (mean, squared deviations) pairwise (Chan et al.); the
 * others add.  One shard gives its own sums back, bit for bit. */
void sd_bn_join(sd_bn_op op, int c, const double *const *parts, const double *count, int P,
                double *sums);

typedef struct sd_backend sd_backend;

struct sd_backend {
    const char *name; /* "cpu" or "cuda" */
    void *ctx;
    /* 1 where backend memory is ordinary host memory (the CPU backend): a
     * caller may then read and write it in place instead of copying through
     * upload/download.  0 for device memory (CUDA). */
    int host_memory;

    void (*destroy)(sd_backend *be);

    /* ---- memory ---- */
    int (*alloc)(sd_backend *be, sd_error *err, size_t bytes, void **out);
    void (*free)(sd_backend *be, void *p); /* accepts NULL */
    int (*upload)(sd_backend *be, sd_error *err, void *dst, const void *host_src, size_t bytes);
    int (*download)(sd_backend *be, sd_error *err, void *host_dst, const void *src, size_t bytes);
    int (*copy)(sd_backend *be, sd_error *err, void *dst, const void *src, size_t bytes);
    int (*zero)(sd_backend *be, sd_error *err, void *p, size_t bytes);
    int (*sync)(sd_backend *be, sd_error *err);

    /* ---- dense linear algebra and vector ops ---- */
    /* C = alpha*op(A)*op(B) + beta*C, row-major; op(A) is m×k, op(B) k×n. */
    int (*gemm)(sd_backend *be, sd_error *err, int trans_a, int trans_b, int m, int n, int k,
                sd_real alpha, const sd_real *a, int lda, const sd_real *b, int ldb, sd_real beta,
                sd_real *c, int ldc);
    int (*axpy)(sd_backend *be, sd_error *err, size_t n, sd_real alpha, const sd_real *x,
                sd_real *y); /* y += alpha x */
    int (*scal)(sd_backend *be, sd_error *err, size_t n, sd_real alpha,
                sd_real *x); /* x *= alpha */
    int (*fill)(sd_backend *be, sd_error *err, size_t n, sd_real value, sd_real *x);
    /* *out = sum x_i*y_i, accumulated in double, result on the host. */
    int (*dot)(sd_backend *be, sd_error *err, size_t n, const sd_real *x, const sd_real *y,
               double *out);
    /* Adam step on p with gradient g and moments m, v (bias-corrected, step t>=1). */
    int (*adam)(sd_backend *be, sd_error *err, size_t n, sd_real *p, const sd_real *g, sd_real *m,
                sd_real *v, double lr, double beta1, double beta2, double eps, int t);

    /* ---- convolution (cross-correlation, as in PyTorch) ---- */
    size_t (*conv_workspace)(sd_backend *be, const sd_conv_desc *d);
    /* y = conv(x, w) + beta*y   (beta is 0 or 1)      x (n,c,h,w) w (k,c,r,s) y (n,k,oh,ow) */
    int (*conv_fwd)(sd_backend *be, sd_error *err, const sd_conv_desc *d, const sd_real *x,
                    const sd_real *w, sd_real beta, sd_real *y, void *ws);
    /* gx += conv_transpose(gy, w) */
    int (*conv_bwd_data)(sd_backend *be, sd_error *err, const sd_conv_desc *d, const sd_real *gy,
                         const sd_real *w, sd_real *gx, void *ws);
    /* gw += correlation of x with gy */
    int (*conv_bwd_filter)(sd_backend *be, sd_error *err, const sd_conv_desc *d, const sd_real *x,
                           const sd_real *gy, sd_real *gw, void *ws);
    /* y (n,c,hw) += b (c) */
    int (*bias_fwd)(sd_backend *be, sd_error *err, int n, int c, int hw, const sd_real *b,
                    sd_real *y);
    /* gb (c) += sum over n,hw of gy */
    int (*bias_bwd)(sd_backend *be, sd_error *err, int n, int c, int hw, const sd_real *gy,
                    sd_real *gb);

    /* ---- activations ---- */
    int (*relu_fwd)(sd_backend *be, sd_error *err, size_t n, const sd_real *x,
                    sd_real *y); /* y = max(x,0) */
    /* out += (x > 0) * d : backward (d = gy) and both tangents (d = dx or dgy) */
    int (*relu_mask)(sd_backend *be, sd_error *err, size_t n, const sd_real *x, const sd_real *d,
                     sd_real *out);
    /* out = 0 + (x > 0) * d: relu_mask on a zeroed out, the same bits (a
     * zero d gives +0), without zeroing out first.  Optional (NULL: the
     * executor zeroes and calls relu_mask; an exec reads it when it is
     * created); the CPU backend has it. */
    int (*relu_mask_set)(sd_backend *be, sd_error *err, size_t n, const sd_real *x,
                         const sd_real *d, sd_real *out);

    /* ---- pooling ---- */
    /* arg: NULL, or n*c*oh*ow int32 of backend memory in which a backend may
     * keep each window's argmax (index within its h*w plane) from maxpool_fwd
     * for later maxpool_bwd / maxpool_gather calls on the SAME x; a backend
     * that recomputes the argmax from x ignores it.  Callers pass the same
     * arg buffer (or NULL) to all three calls of one forward. */
    int (*maxpool_fwd)(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                       sd_real *y, int32_t *arg);
    /* gx += gy scattered to the argmax of each window of x */
    int (*maxpool_bwd)(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                       const int32_t *arg, const sd_real *gy, sd_real *gx);
    /* dy = dx gathered from the argmax of each window of x (tangent) */
    int (*maxpool_gather)(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                          const int32_t *arg, const sd_real *dx, sd_real *dy);
    /* average (or adaptive average) pooling: y = avg(x); it is linear, so the
     * tangent is the same call on the tangent. */
    int (*avgpool_fwd)(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *x,
                       sd_real *y);
    int (*avgpool_bwd)(sd_backend *be, sd_error *err, const sd_pool_desc *d, const sd_real *gy,
                       sd_real *gx); /* gx += */

    /* ---- batch normalisation, batch-statistics mode ----
     * xhat = (x - mean_c) * invstd_c,  y = gamma_c * xhat + beta_c
     * In every bn_* op a NULL tangent input (dx, dgamma, dbeta, dgy) means
     * zero and a NULL accumulated output (gx, ggamma, gbeta, dgx, dggamma,
     * dgbeta) means "not wanted".                                              */
    /* computes mean, invstd (c) from x and writes y */
    int (*bn_fwd_train)(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                        const sd_real *gamma, const sd_real *beta, sd_real *y, sd_real *mean,
                        sd_real *invstd);
    /* gx += dL/dx, ggamma += sum gy*xhat, gbeta += sum gy (statistics differentiated) */
    int (*bn_bwd_train)(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                        const sd_real *gamma, const sd_real *mean, const sd_real *invstd,
                        const sd_real *gy, sd_real *gx, sd_real *ggamma, sd_real *gbeta);
    /* dy = d/de y(x+e dx, gamma+e dgamma, beta+e dbeta) (overwrites dy) */
    int (*bn_fwd_tangent_train)(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                const sd_real *dgamma, const sd_real *dbeta, const sd_real *mean,
                                const sd_real *invstd, sd_real *dy);
    /* tangent of bn_bwd_train along (dx, dgamma, dgy):
     * dgx += d(gx), dggamma += d(ggamma), dgbeta += d(gbeta) */
    int (*bn_bwd_tangent_train)(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                const sd_real *dgamma, const sd_real *mean, const sd_real *invstd,
                                const sd_real *gy, const sd_real *dgy, sd_real *dgx,
                                sd_real *dggamma, sd_real *dgbeta);

    /* optional (NULL where the backend runs no batch shards, see sd_bn_op):
     * bn_partial writes this shard's sums (d->n its samples) to part;
     * bn_apply computes the op's outputs from the joined sums of m values per
     * channel (mean, invstd and y for FWD; dy for FWD_TANGENT; gx, ggamma,
     * gbeta for BWD; dgx, dggamma, dgbeta for BWD_TANGENT). */
    int (*bn_partial)(sd_backend *be, sd_error *err, sd_bn_op op, const sd_bn_desc *d,
                      const sd_bn_bufs *b, double *part);
    int (*bn_apply)(sd_backend *be, sd_error *err, sd_bn_op op, const sd_bn_desc *d,
                    const sd_bn_bufs *b, const double *sums, double m);

    /* ---- batch normalisation, frozen-statistics mode (rmean, rvar constants) ----
     * xhat = (x - rmean_c)/sqrt(rvar_c + eps),  y = gamma_c*xhat + beta_c       */
    int (*bn_fwd_frozen)(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                         const sd_real *gamma, const sd_real *beta, const sd_real *rmean,
                         const sd_real *rvar, sd_real *y);
    int (*bn_bwd_frozen)(sd_backend *be, sd_error *err, const sd_bn_desc *d, const sd_real *x,
                         const sd_real *gamma, const sd_real *rmean, const sd_real *rvar,
                         const sd_real *gy, sd_real *gx, sd_real *ggamma, sd_real *gbeta);
    int (*bn_fwd_tangent_frozen)(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                 const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                 const sd_real *dgamma, const sd_real *dbeta, const sd_real *rmean,
                                 const sd_real *rvar, sd_real *dy);
    int (*bn_bwd_tangent_frozen)(sd_backend *be, sd_error *err, const sd_bn_desc *d,
                                 const sd_real *x, const sd_real *dx, const sd_real *gamma,
                                 const sd_real *dgamma, const sd_real *rmean, const sd_real *rvar,
                                 const sd_real *gy, const sd_real *dgy, sd_real *dgx,
                                 sd_real *dggamma, sd_real *dgbeta);

    /* ---- soft-target cross-entropy over rows of n×k logits z, targets q ----
     * p = softmax(z);  L = -(1/n) sum_i sum_c q_ic log p_ic
     * (q need not sum to one: --label-param raw).  g is dOut/dL upstream. */
    /* writes p (n×k) and *loss (host) */
    int (*sce_fwd)(sd_backend *be, sd_error *err, int n, int k, const sd_real *z, const sd_real *q,
                   sd_real *p, double *loss);
    /* gz += g*(1/n)*(p*sum_c q - q);  gq += g*(-1/n)*log p   (gz or gq may be NULL) */
    int (*sce_bwd)(sd_backend *be, sd_error *err, int n, int k, const sd_real *p, const sd_real *q,
                   double g, sd_real *gz, sd_real *gq);
    /* *dloss = dL along (dz, dq)  (dq may be NULL = 0) */
    int (*sce_fwd_tangent)(sd_backend *be, sd_error *err, int n, int k, const sd_real *p,
                           const sd_real *q, const sd_real *dz, const sd_real *dq, double *dloss);
    /* tangent of sce_bwd along (dz, dq, dg): dgz += d(gz), dgq += d(gq)
     * (dq may be NULL = 0; dgz or dgq may be NULL = not wanted) */
    int (*sce_bwd_tangent)(sd_backend *be, sd_error *err, int n, int k, const sd_real *p,
                           const sd_real *q, const sd_real *dz, const sd_real *dq, double g,
                           double dg, sd_real *dgz, sd_real *dgq);

    /* ---- row softmax (label parameterisation q = softmax(y)) ---- */
    int (*softmax_fwd)(sd_backend *be, sd_error *err, int n, int k, const sd_real *y,
                       sd_real *q); /* = */
    /* gy += q*(gq - <q,gq>) */
    int (*softmax_bwd)(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                       const sd_real *gq, sd_real *gy);
    /* tangent of softmax_bwd along (dy, dgq): dgy += d(gy)  (dy may be NULL = 0) */
    int (*softmax_bwd_tangent)(sd_backend *be, sd_error *err, int n, int k, const sd_real *q,
                               const sd_real *dy, const sd_real *gq, const sd_real *dgq,
                               sd_real *dgy);

    /* ---- data ---- */
    /* Cut n patches out of 16-bit grayscale images held in backend memory and
     * write them normalised: out = (v/65535 - mean)/std, area-averaged from a
     * psize×psize window down to osize×osize (osize <= psize).
     * pix: all images concatenated; img_off[i], img_w[i]: start (in pixels) and
     * width of image i (backend memory); idx: n×3 int32 (image, y, x) of the
     * window's top-left corner (backend memory); out (n,1,osize,osize). */
    int (*patch_gather)(sd_backend *be, sd_error *err, const uint16_t *pix, const int64_t *img_off,
                        const int32_t *img_w, const int32_t *idx, int n, int psize, int osize,
                        double mean, double std, sd_real *out);

    /* ---- optional: concurrency ----
     * Run fn(arg, t) for t = 0..count-1, possibly several at once on the
     * backend's threads; return 0, or the result of the lowest-numbered task
     * that failed.  The tasks may call this backend's operations (never
     * parallel itself) on disjoint memory.  NULL where the operations must
     * not overlap (one CUDA stream); callers then run nothing in parallel. */
    int (*parallel)(sd_backend *be, int count, int (*fn)(void *arg, int t), void *arg);
};

/* Create the CPU backend (always available).  threads <= 0: use the default. */
int sd_backend_cpu_create(sd_backend **out, int threads, sd_error *err) SD_WUR;

/* Backends other than the CPU one live outside distill/ (gpu/ depends on
 * distill/, never the reverse) and register a factory under a name at start-up
 * (the CUDA backend as "cuda"). */
typedef int (*sd_backend_factory)(sd_backend **out, sd_error *err);
int sd_backend_register(const char *name, sd_backend_factory factory);

/* Create a backend by name ("cpu", or a registered one such as "cuda").
 * SD_EUNSUPPORTED with a clear message when the name is not available. */
int sd_backend_create(sd_backend **out, const char *name, sd_error *err) SD_WUR;
void sd_backend_destroy(sd_backend *be); /* accepts NULL */

#endif
