/*
 * nd_dicom_grid.c - DICOM files from disk and the physical grid
 * (docs/dicom.md, "One physical grid").
 *
 * A file is read whole into memory through sd_file_open (regular files
 * only, never through a link leading out of the folder, at most
 * ND_DICOM_MAX_BYTES) and handed to the adapter.  Resampling to the data
 * set's millimetres per pixel is by area: each output pixel is the
 * average of the source pixels under it, each weighted by its overlap
 * (the same rule as the patch cutter's resize, sd_dataset.h), done per axis
 * in double precision and rounded half up.  Upsampling by this rule is
 * nearest-neighbour with blended borders; an integer downsampling factor
 * is a plain block average.  Masks are resampled the same way and cut at
 * one half.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nd_dicom_file.h"
#include "sd_file.h"

int nd_dicom_file_read(const char *path, const char *root, uint8_t **buf, size_t *len,
                       sd_error *err)
{
    *buf = NULL;
    *len = 0;
    FILE *f = NULL;
    int rc = sd_file_open(path, root, &f, err);
    if (rc)
        return rc;
    struct stat st;
    uint8_t *b = NULL;
    if (fstat(fileno(f), &st) != 0)
        rc = sd_error_set(err, SD_EIO, "%s: cannot stat: %s", path, strerror(errno));
    else if ((uint64_t)st.st_size > ND_DICOM_MAX_BYTES)
        rc = sd_error_set(err, SD_EFORMAT, "%s: %lld bytes, more than a DICOM file may be (%zu)",
                          path, (long long)st.st_size, ND_DICOM_MAX_BYTES);
    else if (!(b = malloc((size_t)st.st_size + 1)))
        rc = sd_error_set(err, SD_ENOMEM, "%s: out of memory", path);
    else if (fread(b, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        rc = sd_error_set(err, SD_EIO, "%s: read error or file changed while read", path);
    fclose(f);
    if (rc) {
        free(b);
        return rc;
    }
    *buf = b;
    *len = (size_t)st.st_size;
    return 0;
}

/* One axis: n_in samples of spacing s_in to n_out of spacing s_out.  Each
 * output cell covers [j*f, (j+1)*f) source pixels, f = s_out/s_in. */
static void resample_axis(const double *in, int n_in, int stride_in, double *out, int n_out,
                          int stride_out, double f)
{
    for (int j = 0; j < n_out; j++) {
        double a = j * f, b = (j + 1) * f, acc = 0;
        if (b > n_in)
            b = n_in;
        for (int k = (int)floor(a); k < n_in && k < b; k++) {
            double lo = k > a ? k : a, hi = k + 1 < b ? k + 1 : b;
            acc += (hi - lo) * in[(size_t)k * stride_in];
        }
        out[(size_t)j * stride_out] = acc / (b - a);
    }
}

int nd_dicom_grid_size(int w, int h, const double spacing[2], double mm, int *ow, int *oh)
{
    double fw = floor(w * spacing[1] / mm + 1e-9), fh = floor(h * spacing[0] / mm + 1e-9);
    if (!(fw >= 1 && fh >= 1 && fw <= 65535 && fh <= 65535))
        return -1;
    *ow = (int)fw;
    *oh = (int)fh;
    return 0;
}

int nd_dicom_resample(const uint16_t *in, int w, int h, const double spacing[2], double mm,
                      uint16_t **out, int *ow, int *oh, sd_error *err)
{
    *out = NULL;
    if (!(mm > 0) || nd_dicom_grid_size(w, h, spacing, mm, ow, oh))
        return sd_error_set(err, SD_EINVAL,
                            "%dx%d pixels of %.4gx%.4g mm do not resample to %.4g mm per pixel", w,
                            h, spacing[1], spacing[0], mm);
    size_t nw = (size_t)*ow, nh = (size_t)*oh;
    double *src = malloc((size_t)w * h * sizeof *src), *mid = malloc(nw * h * sizeof *mid),
           *dst = malloc(nw * nh * sizeof *dst);
    uint16_t *o = malloc(nw * nh * sizeof *o);
    if (!src || !mid || !dst || !o) {
        free(src), free(mid), free(dst), free(o);
        return sd_error_set(err, SD_ENOMEM, "out of memory resampling");
    }
    for (size_t p = 0; p < (size_t)w * h; p++)
        src[p] = in[p];
    for (int y = 0; y < h; y++)
        resample_axis(src + (size_t)y * w, w, 1, mid + (size_t)y * nw, (int)nw, 1, mm / spacing[1]);
    for (size_t x = 0; x < nw; x++)
        resample_axis(mid + x, h, (int)nw, dst + x, (int)nh, (int)nw, mm / spacing[0]);
    for (size_t p = 0; p < nw * nh; p++) {
        double v = floor(dst[p] + 0.5);
        o[p] = (uint16_t)(v < 0 ? 0 : v > 65535 ? 65535 : v);
    }
    free(src), free(mid), free(dst);
    *out = o;
    return 0;
}

int nd_dicom_load_image(const char *path, int frame, double mm, uint16_t **pix, int *w, int *h,
                        nd_dicom_info *info, sd_error *err)
{
    *pix = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    uint16_t *raw = NULL;
    int rc = nd_dicom_file_read(path, NULL, &buf, &len, err);
    if (!rc)
        rc = nd_dicom_read_frame(buf, len, path, frame, &raw, info, err);
    free(buf);
    if (rc)
        return rc;
    if (mm <= 0) {
        *pix = raw;
        *w = info->w;
        *h = info->h;
        return 0;
    }
    if (info->spacing_kind == ND_DICOM_SPACING_NONE) {
        free(raw);
        return sd_error_set(err, SD_EFORMAT,
                            "%s: no Pixel Spacing or Imager Pixel Spacing, so it cannot be put on "
                            "the model's grid of %.4g mm per pixel",
                            path, mm);
    }
    rc = nd_dicom_resample(raw, info->w, info->h, info->spacing, mm, pix, w, h, err);
    free(raw);
    return rc ? sd_error_wrap(err, "%s", path) : 0;
}
