/*
 * sg_reduce.cuh - deterministic reductions used by several kernels.
 *
 * Floating-point sums depend on their order, and atomics make the order
 * depend on scheduling.  Every reduction here therefore runs in two stages
 * with a fixed shape: stage one splits the data into chunks whose number and
 * bounds depend only on the tensor's shape (never on the GPU or on timing),
 * each block sums its chunk in double with a fixed tree and writes one
 * partial; stage two adds the partials of each result in index order.  The
 * same inputs thus give the same bits on every run and every GPU.
 *
 * Per-channel reductions (batch norm, bias gradient) see an NCHW tensor as
 * c channels of m = n*hw values; the functor gets the flat element index and
 * the channel and adds its NS terms into acc[].
 */
#ifndef SG_REDUCE_CUH
#define SG_REDUCE_CUH

#include "sg_internal.h"

#define SG_RED_THREADS    256
#define SG_RED_CHUNK_MIN  4096u /* elements per block at least */
#define SG_RED_MAX_CHUNKS 256u

/* Fixed-order block reduction of NS doubles per thread; result in sh[k][0]. */
template <int NS>
__device__ inline void sg_block_sum(double (*sh)[SG_RED_THREADS], const double *acc)
{
    const int t = threadIdx.x;
#pragma unroll
    for (int k = 0; k < NS; k++)
        sh[k][t] = acc[k];
    __syncthreads();
    for (int off = SG_RED_THREADS / 2; off > 0; off >>= 1) {
        if (t < off) {
#pragma unroll
            for (int k = 0; k < NS; k++)
                sh[k][t] += sh[k][t + off];
        }
        __syncthreads();
    }
}

/* Stage one: block (ch, p) sums chunk p of channel ch. */
template <int NS, class F>
__global__ void __launch_bounds__(SG_RED_THREADS)
    sg_chan_partial_kernel(F f, unsigned c, unsigned hw, unsigned m, unsigned chunk, unsigned P,
                           double *part)
{
    __shared__ double sh[NS][SG_RED_THREADS];
    const unsigned ch = blockIdx.x, p = blockIdx.y;
    const unsigned beg = p * chunk;
    const unsigned end = (m - beg) < chunk ? m : beg + chunk;
    double acc[NS];
#pragma unroll
    for (int k = 0; k < NS; k++)
        acc[k] = 0.0;
    /* walk i = s*hw + j without a division per element: a step of
     * SG_RED_THREADS is ss samples and sj (< hw) values, plus one carry */
    unsigned i = beg + threadIdx.x;
    unsigned s = i / hw, j = i - s * hw;
    const unsigned ss = SG_RED_THREADS / hw, sj = SG_RED_THREADS - ss * hw;
    for (; i < end; i += SG_RED_THREADS) {
        f(((size_t)s * c + ch) * hw + j, ch, acc);
        j += sj;
        s += ss;
        if (j >= hw) {
            j -= hw;
            s++;
        }
    }
    sg_block_sum<NS>(sh, acc);
    if (threadIdx.x == 0) {
#pragma unroll
        for (int k = 0; k < NS; k++)
            part[((size_t)ch * P + p) * NS + k] = sh[k][0];
    }
}

/* Stage two: one thread per channel adds its P partials in order and hands
 * the NS totals to g(ch, tot). */
template <int NS, class G>
__global__ void sg_chan_final_kernel(G g, unsigned c, unsigned P, const double *part)
{
    const unsigned ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c)
        return;
    double tot[NS];
#pragma unroll
    for (int k = 0; k < NS; k++)
        tot[k] = 0.0;
    for (unsigned p = 0; p < P; p++) {
#pragma unroll
        for (int k = 0; k < NS; k++)
            tot[k] += part[((size_t)ch * P + p) * NS + k];
    }
    g(ch, tot);
}

/* Chunking of one channel's m values: depends on shapes only. */
static inline void sg_chan_chunks(unsigned c, unsigned m, int ns, unsigned *chunk, unsigned *P)
{
    unsigned want = (m + SG_RED_CHUNK_MIN - 1) / SG_RED_CHUNK_MIN;
    unsigned cap = (unsigned)(SG_SCRATCH_PART / ((size_t)c * (size_t)ns));
    if (want > SG_RED_MAX_CHUNKS)
        want = SG_RED_MAX_CHUNKS;
    if (want > cap)
        want = cap;
    if (want < 1)
        want = 1;
    unsigned ch = (m + want - 1) / want;
    if (ch < 1)
        ch = 1;
    *chunk = ch;
    *P = (m + ch - 1) / ch;
    if (*P < 1)
        *P = 1;
}

/* Run a per-channel reduction: f adds NS terms per element, g consumes the
 * per-channel totals.  n*hw must fit in 32 bits (checked). */
template <int NS, class F, class G>
static int sg_chan_reduce(sd_backend *be, sd_error *err, const char *op, int n, int c, int hw, F f,
                          G g)
{
    sg_ctx *cx = sg_ctx_of(be);
    const unsigned long long m64 = (unsigned long long)n * (unsigned long long)hw;
    if (n < 0 || c <= 0 || hw < 0)
        return sg_fail_code(err, SD_EINVAL, op, "bad shape");
    if (m64 >= (1ull << 31))
        return sg_fail_code(err, SD_EUNSUPPORTED, op, "more than 2^31 values per channel");
    if ((size_t)c * NS > SG_SCRATCH_PART || (size_t)c * 8 > SG_SCRATCH_COEF)
        return sg_fail_code(err, SD_EUNSUPPORTED, op, "too many channels for the scratch area");
    unsigned chunk, P;
    const unsigned m = (unsigned)m64;
    sg_chan_chunks((unsigned)c, m, NS, &chunk, &P);
    if (P > 65535u)
        return sg_fail_code(err, SD_EUNSUPPORTED, op, "too many chunks");
    if (m > 0) {
        sg_chan_partial_kernel<NS, F><<<dim3((unsigned)c, P), SG_RED_THREADS, 0, cx->stream>>>(
            f, (unsigned)c, (unsigned)hw, m, chunk, P, sg_part(cx));
        SG_CK_LAUNCH(be);
    } else {
        SG_CK_CUDA(
            be, cudaMemsetAsync(sg_part(cx), 0, sizeof(double) * (size_t)c * P * NS, cx->stream));
    }
    sg_chan_final_kernel<NS, G>
        <<<(unsigned)((c + 127) / 128), 128, 0, cx->stream>>>(g, (unsigned)c, P, sg_part(cx));
    SG_CK_LAUNCH(be);
    return 0;
}

/* Elementwise pass over an NCHW tensor with its channel index: f(idx, ch).
 * The channel (idx / hw) % c is tracked incrementally along the grid-stride
 * loop (a stride is sp planes and sj < hw values, plus a carry), so there is
 * no division per element.  32-bit indices when the tensor allows it. */
template <class I, class F>
__global__ void sg_chan_apply_kernel(F f, I total, unsigned c, unsigned hw)
{
    const I G = (I)gridDim.x * blockDim.x;
    I idx = (I)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total)
        return;
    const I plane = idx / hw, sp = G / hw;
    unsigned j = (unsigned)(idx - plane * hw), ch = (unsigned)(plane % c);
    const unsigned sj = (unsigned)(G - sp * hw), sc = (unsigned)(sp % c);
    for (; idx < total; idx += G) {
        f((size_t)idx, ch);
        j += sj;
        ch += sc;
        if (j >= hw) {
            j -= hw;
            ch++;
        }
        if (ch >= c)
            ch -= c;
    }
}

template <class F>
static int sg_chan_apply(sd_backend *be, sd_error *err, int n, int c, int hw, F f)
{
    sg_ctx *cx = sg_ctx_of(be);
    const size_t total = (size_t)n * (size_t)c * (size_t)hw;
    if (total == 0)
        return 0;
    if (total < (1ull << 31)) /* idx + grid stride stays below 2^32 */
        sg_chan_apply_kernel<unsigned, F><<<sg_blocks(total), SG_THREADS, 0, cx->stream>>>(
            f, (unsigned)total, (unsigned)c, (unsigned)hw);
    else
        sg_chan_apply_kernel<unsigned long long, F>
            <<<sg_blocks(total), SG_THREADS, 0, cx->stream>>>(f, (unsigned long long)total,
                                                              (unsigned)c, (unsigned)hw);
    SG_CK_LAUNCH(be);
    return 0;
}

/* Flat sum of `count` doubles produced by f(i) (i < count), stage one into
 * part[], stage two into *dst = sum / div (device).  Fixed grid: depends on
 * count only. */
template <class F>
__global__ void __launch_bounds__(SG_RED_THREADS)
    sg_flat_partial_kernel(F f, size_t count, double *part)
{
    __shared__ double sh[1][SG_RED_THREADS];
    double acc[1] = {0.0};
    for (size_t i = (size_t)blockIdx.x * SG_RED_THREADS + threadIdx.x; i < count;
         i += (size_t)gridDim.x * SG_RED_THREADS)
        acc[0] += f(i);
    sg_block_sum<1>(sh, acc);
    if (threadIdx.x == 0)
        part[blockIdx.x] = sh[0][0];
}

/* One block: thread t adds partials t, t+256, ... in order, then a fixed tree. */
static __global__ void __launch_bounds__(SG_RED_THREADS)
    sg_flat_final_kernel(const double *part, unsigned nb, double div, double *dst)
{
    __shared__ double sh[1][SG_RED_THREADS];
    double acc[1] = {0.0};
    for (unsigned i = threadIdx.x; i < nb; i += SG_RED_THREADS)
        acc[0] += part[i];
    sg_block_sum<1>(sh, acc);
    if (threadIdx.x == 0)
        *dst = sh[0][0] / div;
}

#define SG_FLAT_MAX_BLOCKS 1024u

template <class F>
static int sg_flat_sum(sd_backend *be, sd_error *err, size_t count, F f, double div, double *dst)
{
    sg_ctx *cx = sg_ctx_of(be);
    size_t nb = (count + 8 * SG_RED_THREADS - 1) / (8 * SG_RED_THREADS);
    if (nb > SG_FLAT_MAX_BLOCKS)
        nb = SG_FLAT_MAX_BLOCKS;
    if (nb < 1)
        nb = 1;
    sg_flat_partial_kernel<F>
        <<<(unsigned)nb, SG_RED_THREADS, 0, cx->stream>>>(f, count, sg_part(cx));
    SG_CK_LAUNCH(be);
    sg_flat_final_kernel<<<1, SG_RED_THREADS, 0, cx->stream>>>(sg_part(cx), (unsigned)nb, div, dst);
    SG_CK_LAUNCH(be);
    return 0;
}

#endif
