/*
 * sd_imageset.c - Fashion-MNIST (IDX files, gzip or plain, via zlib) and
 * folders of PNGs as normalised in-memory tensors (see sd_imageset.h).
 * A PNG folder is read like a gastric data set: regular files inside the
 * folder only (sd_file.h), pixels bounded from each header before it is
 * decoded (the SD_DATASET_MAX_* defaults).
 */
#include "sd_imageset.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include "sd_csv.h"
#include "sd_dataset.h"
#include "sd_file.h"
#include "sd_png.h"
#include "sb_parse.h"

#define IDX_MAX_BYTES ((size_t)1 << 30)

void sd_imageset_free(sd_imageset *s)
{
    if (!s)
        return;
    free(s->x);
    free(s->y);
    memset(s, 0, sizeof *s);
}

/* gzread until len bytes or EOF; returns bytes read or -1. */
static long long gz_read_all(gzFile g, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        size_t chunk = len - got > (1u << 30) ? (1u << 30) : len - got;
        int r = gzread(g, (char *)buf + got, (unsigned)chunk);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long long)got;
}

int sd_idx_read(const char *path, uint8_t **data, int *ndim, int dims[4], sd_error *err)
{
    *data = NULL;
    /* gzopen reads plain files transparently as well. */
    gzFile g = gzopen(path, "rb");
    if (!g)
        return sd_error_set(err, SD_EIO, "%s: cannot open: %s", path,
                            errno ? strerror(errno) : "zlib error");
    unsigned char hdr[4];
    long long r = gz_read_all(g, hdr, 4);
    int rc = 0;
    if (r != 4 || hdr[0] != 0 || hdr[1] != 0) {
        rc = sd_error_set(err, SD_EFORMAT, "%s: not an IDX file (bad magic number)", path);
        goto out;
    }
    if (hdr[2] != 0x08) {
        rc = sd_error_set(err, SD_EFORMAT,
                          "%s: IDX element type 0x%02x; only unsigned bytes"
                          " (0x08) are supported",
                          path, hdr[2]);
        goto out;
    }
    int nd = hdr[3];
    if (nd < 1 || nd > 4) {
        rc = sd_error_set(err, SD_EFORMAT, "%s: IDX file with %d dimensions (1..4 supported)", path,
                          nd);
        goto out;
    }
    size_t total = 1;
    for (int i = 0; i < nd; i++) {
        unsigned char b[4];
        if (gz_read_all(g, b, 4) != 4) {
            rc = sd_error_set(err, SD_EFORMAT, "%s: truncated IDX header", path);
            goto out;
        }
        uint32_t d = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (d == 0 || d > INT_MAX || total > IDX_MAX_BYTES / d) {
            rc = sd_error_set(err, SD_EFORMAT, "%s: IDX dimension %u out of range", path, d);
            goto out;
        }
        dims[i] = (int)d;
        total *= d;
    }
    *ndim = nd;
    *data = malloc(total);
    if (!*data) {
        rc = sd_error_set(err, SD_ENOMEM, "%s: out of memory (%zu bytes)", path, total);
        goto out;
    }
    r = gz_read_all(g, *data, total);
    if (r < 0) {
        int zerr = 0;
        const char *m = gzerror(g, &zerr);
        rc = sd_error_set(err, SD_EFORMAT, "%s: corrupt compressed data: %s", path,
                          m ? m : "zlib error");
    } else if ((size_t)r != total) {
        rc = sd_error_set(err, SD_EFORMAT, "%s: truncated: %lld of %zu data bytes", path, r, total);
    }
out:
    if (gzclose(g) != Z_OK && !rc)
        rc = sd_error_set(err, SD_EFORMAT, "%s: corrupt compressed data (gzip trailer)", path);
    if (rc) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

/* dir/name.gz if it exists, else dir/name. */
static void fmnist_path(char *buf, size_t n, const char *dir, const char *name)
{
    snprintf(buf, n, "%s/%s.gz", dir, name);
    if (access(buf, R_OK) != 0)
        snprintf(buf, n, "%s/%s", dir, name);
}

int sd_fmnist_load(sd_imageset *out, const char *dir, int part, int limit, sd_error *err)
{
    memset(out, 0, sizeof *out);
    if (part < SD_FMNIST_TRAIN || part > SD_FMNIST_TEST)
        return sd_error_set(err, SD_EINVAL, "fashion-mnist: unknown part %d", part);
    if (!dir)
        dir = SD_FMNIST_DIR;
    const char *stem = part == SD_FMNIST_TEST ? "t10k" : "train";
    char ipath[4096], lpath[4096], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", stem);
    fmnist_path(ipath, sizeof ipath, dir, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", stem);
    fmnist_path(lpath, sizeof lpath, dir, name);
    if (access(ipath, R_OK) != 0)
        return sd_error_set(
            err, SD_EIO, "%s: not found; install the Debian package dataset-fashion-mnist", ipath);
    uint8_t *img = NULL, *lab = NULL;
    int nd = 0, dims[4] = {0}, lnd = 0, ldims[4] = {0};
    int rc = sd_idx_read(ipath, &img, &nd, dims, err);
    if (!rc)
        rc = sd_idx_read(lpath, &lab, &lnd, ldims, err);
    if (!rc && (nd != 3 || lnd != 1 || ldims[0] != dims[0]))
        rc = sd_error_set(err, SD_EFORMAT, "%s / %s: image and label files do not match", ipath,
                          lpath);
    /* The validation set is the last 5,000 images of the training file (the
     * split used by the dataset-distillation literature's Keras/TF loaders);
     * training uses the first 55,000. */
    int first = 0, count = 0;
    if (!rc) {
        if (part == SD_FMNIST_TEST) {
            count = dims[0];
        } else if (dims[0] <= 5000) {
            rc = sd_error_set(err, SD_EFORMAT, "%s: only %d images, need more than 5000", ipath,
                              dims[0]);
        } else if (part == SD_FMNIST_TRAIN) {
            count = dims[0] - 5000;
        } else {
            first = dims[0] - 5000;
            count = 5000;
        }
    }
    if (!rc && limit > 0 && limit < count)
        count = limit;
    size_t hw = (size_t)dims[1] * (size_t)dims[2];
    if (!rc) {
        out->x = malloc((size_t)count * hw * sizeof *out->x);
        out->y = malloc((size_t)count * sizeof *out->y);
        if (!out->x || !out->y)
            rc = sd_error_set(err, SD_ENOMEM, "fashion-mnist: out of memory");
    }
    if (!rc) {
        out->n = count;
        out->c = 1;
        out->h = dims[1];
        out->w = dims[2];
        out->classes = 10;
        out->mean = SD_FMNIST_MEAN;
        out->std = SD_FMNIST_STD;
        double inv = 1.0 / (255.0 * SD_FMNIST_STD), off = SD_FMNIST_MEAN / SD_FMNIST_STD;
        for (int i = 0; i < count; i++) {
            const uint8_t *src = img + (size_t)(first + i) * hw;
            for (size_t p = 0; p < hw; p++)
                out->x[(size_t)i * hw + p] = (sd_real)(src[p] * inv - off);
            out->y[i] = lab[first + i];
            if (lab[first + i] > 9) {
                rc = sd_error_set(err, SD_EFORMAT, "%s: label %d at %d is not 0..9", lpath,
                                  lab[first + i], first + i);
                break;
            }
        }
    }
    free(img);
    free(lab);
    if (rc)
        sd_imageset_free(out);
    return rc;
}

static int safe_relpath(const char *p)
{
    if (!*p || p[0] == '/')
        return 0;
    for (const char *s = p; *s; s++)
        if (s[0] == '.' && s[1] == '.' && (s == p || s[-1] == '/') && (s[2] == '/' || !s[2]))
            return 0;
    return 1;
}

/* Open path inside root, check what its header declares against the
 * per-image and total pixel limits, then decode it. */
static int read_bounded(const char *root, const char *path, int64_t *total, uint16_t **pix, int *w,
                        int *h, sd_error *err)
{
    FILE *fp = NULL;
    sd_png_info pi;
    int rc = sd_file_open(path, root, &fp, err);
    if (rc)
        return rc;
    rc = sd_png_read_info_file(fp, path, &pi, err);
    int64_t n = rc ? 0 : (int64_t)pi.width * pi.height;
    if (!rc && n > SD_DATASET_MAX_IMAGE_PIXELS)
        rc = sd_error_set(err, SD_EFORMAT,
                          "%s: declares %dx%d pixels, more than one image may "
                          "hold (%lld)",
                          path, pi.width, pi.height, (long long)SD_DATASET_MAX_IMAGE_PIXELS);
    else if (!rc && (*total += n) > SD_DATASET_MAX_PIXELS)
        rc = sd_error_set(err, SD_EFORMAT,
                          "%s: the images so far declare %lld pixels, more "
                          "than an image set may hold (%lld)",
                          path, (long long)*total, (long long)SD_DATASET_MAX_PIXELS);
    if (!rc && fseek(fp, 0, SEEK_SET))
        rc = sd_error_set(err, SD_EIO, "%s: cannot seek: %s", path, strerror(errno));
    if (!rc)
        rc = sd_png_read_gray16_file(fp, path, pix, w, h, NULL, err);
    fclose(fp);
    return rc;
}

int sd_imageset_load_png(sd_imageset *out, const char *dir, const char *csv_path, double mean,
                         double std, sd_error *err)
{
    memset(out, 0, sizeof *out);
    sd_csv c;
    int rc = sd_csv_open(&c, csv_path, err);
    if (rc)
        return rc;
    char *f[SD_CSV_MAX_FIELDS];
    int nf = 0, line = 0, col_file = -1, col_label = -1, need = 0, cap = 0;
    size_t hw = 0;
    double s1 = 0, s2 = 0;
    uint16_t *pix = NULL;
    char *root = NULL;
    int64_t total = 0;
    if ((rc = sd_file_root(dir, &root, err)))
        goto fail;
    rc = sd_csv_next(&c, f, &nf, &line, err);
    if (rc == 0)
        rc =
            sd_error_set(err, SD_EFORMAT, "%s: empty file; expected a header file,label", csv_path);
    if (rc < 0)
        goto fail;
    for (int i = 0; i < nf; i++) {
        if (!strcasecmp(f[i], "file") && col_file < 0)
            col_file = i;
        else if (!strcasecmp(f[i], "label") && col_label < 0)
            col_label = i;
    }
    if (col_file < 0 || col_label < 0) {
        rc = sd_error_set(err, SD_EFORMAT,
                          "%s line %d: header has no '%s' column (need"
                          " file,label)",
                          csv_path, line, col_file < 0 ? "file" : "label");
        goto fail;
    }
    need = (col_file > col_label ? col_file : col_label) + 1;
    while ((rc = sd_csv_next(&c, f, &nf, &line, err)) == 1) {
        if (nf < need) {
            rc = sd_error_set(err, SD_EFORMAT, "%s line %d: %d fields, expected at least %d",
                              csv_path, line, nf, need);
            goto fail;
        }
        int lab;
        if (sb_parse_int(f[col_label], 0, 999, &lab)) {
            rc = sd_error_set(err, SD_EFORMAT,
                              "%s line %d: label '%.40s' is not an integer"
                              " 0..999",
                              csv_path, line, f[col_label]);
            goto fail;
        }
        if (!safe_relpath(f[col_file])) {
            rc = sd_error_set(err, SD_EFORMAT,
                              "%s line %d: file '%.200s' must be a relative"
                              " path inside %s",
                              csv_path, line, f[col_file], dir);
            goto fail;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, f[col_file]);
        int w = 0, h = 0;
        rc = read_bounded(root, path, &total, &pix, &w, &h, err);
        if (rc)
            goto fail;
        if (out->n == 0) {
            out->h = h;
            out->w = w;
            out->c = 1;
            hw = (size_t)w * (size_t)h;
        } else if (w != out->w || h != out->h) {
            rc = sd_error_set(err, SD_EFORMAT, "%s: image is %dx%d but earlier images are %dx%d",
                              path, w, h, out->w, out->h);
            goto fail;
        }
        if (out->n == cap) {
            cap = cap ? 2 * cap : 64;
            sd_real *nx = realloc(out->x, (size_t)cap * hw * sizeof *nx);
            if (nx)
                out->x = nx;
            int32_t *ny = realloc(out->y, (size_t)cap * sizeof *ny);
            if (ny)
                out->y = ny;
            if (!nx || !ny) {
                rc = sd_error_set(err, SD_ENOMEM, "%s: out of memory", csv_path);
                goto fail;
            }
        }
        /* keep [0,1] values for now; standardised once mean/std are known */
        sd_real *dst = out->x + (size_t)out->n * hw;
        for (size_t p = 0; p < hw; p++) {
            double v = pix[p] / 65535.0;
            dst[p] = (sd_real)v;
            s1 += v;
            s2 += v * v;
        }
        free(pix);
        pix = NULL;
        out->y[out->n++] = (int32_t)lab;
        if (lab + 1 > out->classes)
            out->classes = (int)lab + 1;
    }
    if (rc < 0)
        goto fail;
    if (out->n == 0) {
        rc = sd_error_set(err, SD_EFORMAT, "%s: no images listed", csv_path);
        goto fail;
    }
    if (mean < 0 || std < 0) {
        double n = (double)out->n * (double)hw;
        mean = s1 / n;
        double var = s2 / n - mean * mean;
        std = var > 1e-24 ? sqrt(var) : 1.0;
    }
    if (!(std > 0)) {
        rc = sd_error_set(err, SD_EINVAL, "image set: std %g must be positive", std);
        goto fail;
    }
    out->mean = mean;
    out->std = std;
    for (size_t p = 0; p < (size_t)out->n * hw; p++)
        out->x[p] = (sd_real)((out->x[p] - mean) / std);
    sd_csv_close(&c);
    free(root);
    return 0;
fail:
    free(pix);
    free(root);
    sd_csv_close(&c);
    sd_imageset_free(out);
    return rc ? rc : SD_EFORMAT;
}
