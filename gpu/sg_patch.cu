/*
 * sg_patch.cu - cutting normalised training/detection patches on the GPU.
 *
 * The full 16-bit images are uploaded once (docs/design.md, "Data"); each batch only
 * uploads its n×3 (image, y, x) index and this kernel cuts, area-averages and
 * normalises the patches in place on the device.  The arithmetic is the CPU
 * reference's exactly: output pixel o of a psize -> osize resampling covers
 * [o*psize, (o+1)*psize) in units of 1/osize and input pixel i covers
 * [i*osize, (i+1)*osize), so every overlap weight is an integer and the
 * weighted sum is exact in double; out = (sum/(psize^2*65535) - mean)/std.
 *
 * A patch whose window leaves its image horizontally (or has a negative
 * coordinate) is not read; the lowest such patch index is reported as
 * SD_EINVAL after the kernel, which costs one small synchronising copy per
 * call.  Like the CPU backend, the image height is not known here, so the
 * caller's index must keep windows inside the image vertically.
 */
#include "sg_internal.h"

#include <limits.h>
#include <string.h>

__global__ void sg_patch_kernel(const uint16_t *pix, const int64_t *img_off, const int32_t *img_w,
                                const int32_t *idx, int n, int psize, int osize, double norm,
                                double mean, double std, float *out, int *bad)
{
    const size_t per = (size_t)osize * osize, total = (size_t)n * per;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(t / per);
        int r = (int)(t - (size_t)i * per), oy = r / osize, ox = r - oy * osize;
        int im = idx[3 * i], py = idx[3 * i + 1], px = idx[3 * i + 2];
        if (im < 0 || py < 0 || px < 0 || (int64_t)px + psize > img_w[im]) {
            atomicMin(bad, i);
            out[t] = 0.0f;
            continue;
        }
        const int64_t stride = img_w[im];
        const uint16_t *base = pix + img_off[im] + (int64_t)py * stride + px;
        long ylo = (long)oy * psize, yhi = ylo + psize;
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
        out[t] = (float)((acc * norm - mean) / std);
    }
}

static int sg_patch_gather(sd_backend *be, sd_error *err, const uint16_t *pix,
                           const int64_t *img_off, const int32_t *img_w, const int32_t *idx, int n,
                           int psize, int osize, double mean, double std, sd_real *out)
{
    if (n < 0 || psize < 1 || osize < 1 || osize > psize || !(std > 0))
        return sd_error_set(err, SD_EINVAL,
                            "cuda patch_gather: bad arguments n=%d psize=%d osize=%d", n, psize,
                            osize);
    if (n == 0)
        return 0;
    SG_ENTER(be);
    sg_ctx *c = sg_ctx_of(be);
    int *bad = (int *)(sg_small(c) + 8);
    const double norm = 1.0 / ((double)psize * psize * 65535.0);
    const size_t total = (size_t)n * osize * osize;
    /* 0x7f bytes: a large positive sentinel for "no bad patch" */
    SG_CK_CUDA(be, cudaMemsetAsync(bad, 0x7f, sizeof(int), c->stream));
    sg_patch_kernel<<<sg_blocks(total), SG_THREADS, 0, c->stream>>>(
        pix, img_off, img_w, idx, n, psize, osize, norm, mean, std, out, bad);
    SG_CK_LAUNCH(be);
    SG_CK_CUDA(be, cudaMemcpyAsync(c->host, bad, sizeof(int), cudaMemcpyDeviceToHost, c->stream));
    SG_CK_CUDA(be, cudaStreamSynchronize(c->stream));
    int first;
    memcpy(&first, c->host, sizeof first);
    if (first < n)
        return sd_error_set(err, SD_EINVAL, "cuda patch_gather: patch %d lies outside its image",
                            first);
    return 0;
}

void sg_install_patch(sd_backend *be)
{
    be->patch_gather = sg_patch_gather;
}
