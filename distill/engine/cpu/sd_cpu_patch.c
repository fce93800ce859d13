/*
 * sd_cpu_patch.c - cutting normalised training/detection patches out of
 * 16-bit images on the CPU (area averaging, then (v - mean)/std).
 * GPU twin: gpu/sg_patch.cu, which does the same exact integer-weighted sums.
 */
#include "sd_cpu_internal.h"

/* Area averaging: output pixel o of a psize -> osize resampling covers the
 * interval [o*psize/osize, (o+1)*psize/osize) of input coordinates.  In units
 * of 1/osize that is [o*psize, (o+1)*psize) and input pixel i covers
 * [i*osize, (i+1)*osize), so every overlap is an exact integer and the mean is
 *   sum_{iy,ix} ovl_y(iy) ovl_x(ix) v(iy,ix) / psize^2,
 * computed exactly in double (all terms are integers below 2^53). */
static int cpu_patch_gather(sd_backend *be, sd_error *err, const uint16_t *pix,
                            const int64_t *img_off, const int32_t *img_w, const int32_t *idx, int n,
                            int psize, int osize, double mean, double std, sd_real *out)
{
    if (n < 0 || psize < 1 || osize < 1 || osize > psize || !(std > 0))
        return CPU_FAIL(err, SD_EINVAL, "cpu patch_gather: bad arguments n=%d psize=%d osize=%d", n,
                        psize, osize);
    const double norm = 1.0 / ((double)psize * psize * 65535.0);
    for (int i = 0; i < n; i++) {
        int im = idx[3 * i], py = idx[3 * i + 1], px = idx[3 * i + 2];
        if (im < 0 || py < 0 || px < 0 || (int64_t)px + psize > img_w[im])
            return CPU_FAIL(err, SD_EINVAL,
                            "cpu patch_gather: patch %d (image %d, y %d, x %d) outside its image",
                            i, im, py, px);
        const uint16_t *base = pix + img_off[im] + (int64_t)py * img_w[im] + px;
        const int64_t stride = img_w[im];
        sd_real *o = out + (size_t)i * osize * osize;
        for (int oy = 0; oy < osize; oy++) {
            long ylo = (long)oy * psize, yhi = ylo + psize;
            for (int ox = 0; ox < osize; ox++) {
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
                o[(size_t)oy * osize + ox] = (sd_real)((acc * norm - mean) / std);
            }
        }
    }
    return SD_OK;
}

void sd_cpu_install_patch(sd_backend *be)
{
    be->patch_gather = cpu_patch_gather;
}
