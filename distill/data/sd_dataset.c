/*
 * sd_dataset.c - dataset loading and validation and the patch index (see
 * sd_dataset.h and docs/data.md); the prepared-index file is sd_prepared.c's,
 * host patch cutting sd_patch_cut.c's.
 *
 * Loading is two passes: first every CSV line and every PNG header is
 * checked (cheap, and most mistakes are caught before any large allocation),
 * then the pixels of the requested splits are decoded in parallel into one
 * contiguous buffer.
 */
#include "sd_dataset.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sd_csv.h"
#include "sd_file.h"
#include "sd_png.h"
#include "sd_pool.h"

#define PATH_MAX_LEN 4096

const char *sd_split_name(int split)
{
    static const char *names[SD_SPLIT_COUNT] = {"train", "val", "test"};
    return split >= 0 && split < SD_SPLIT_COUNT ? names[split] : "?";
}

const char *sd_class_name(int cls)
{
    static const char *names[SD_NUM_CLASSES] = {"I", "N", "P"};
    return cls >= 0 && cls < SD_NUM_CLASSES ? names[cls] : "?";
}

/* ---- paths ---- */

static int image_path(char *buf, const sd_dataset *ds, const char *sub, const char *id)
{
    int n = snprintf(buf, PATH_MAX_LEN, "%s/%s/%s.png", ds->dir, sub, id);
    return n > 0 && n < PATH_MAX_LEN ? 0 : -1;
}

static int valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= SD_ID_MAX || id[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* ---- labels.csv ---- */

static int parse_labels(sd_dataset *ds, const char *csv_path, sd_error *err)
{
    sd_csv c;
    int rc = sd_csv_open_in(&c, csv_path, ds->root, err);
    if (rc)
        return rc;
    unsigned int mdlen = 0;
    if (!EVP_Digest(c.buf, c.len, ds->labels_sha256, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        sd_csv_close(&c);
        return sd_error_set(err, SD_EBACKEND, "%s: SHA-256 failed (OpenSSL)", csv_path);
    }
    char *f[SD_CSV_MAX_FIELDS];
    int nf = 0, line = 0;
    rc = sd_csv_next(&c, f, &nf, &line, err);
    if (rc < 0)
        goto out;
    if (rc == 0) {
        rc = sd_error_set(err, SD_EFORMAT, "%s: empty file; expected a header id,label,split",
                          csv_path);
        goto out;
    }
    int col_id = -1, col_label = -1, col_split = -1;
    for (int i = 0; i < nf; i++) {
        if (!strcasecmp(f[i], "id") && col_id < 0)
            col_id = i;
        else if (!strcasecmp(f[i], "label") && col_label < 0)
            col_label = i;
        else if (!strcasecmp(f[i], "split") && col_split < 0)
            col_split = i;
    }
    if (col_id < 0 || col_label < 0 || col_split < 0) {
        rc = sd_error_set(err, SD_EFORMAT,
                          "%s line %d: header has no '%s' column (need id,label,split)", csv_path,
                          line,
                          col_id < 0      ? "id"
                          : col_label < 0 ? "label"
                                          : "split");
        goto out;
    }
    int need = col_id > col_label ? col_id : col_label;
    need = (need > col_split ? need : col_split) + 1;
    int cap = 0;
    while ((rc = sd_csv_next(&c, f, &nf, &line, err)) == 1) {
        if (nf < need) {
            rc = sd_error_set(err, SD_EFORMAT,
                              "%s line %d: %d field%s, expected at least %d (id,label,split)",
                              csv_path, line, nf, nf == 1 ? "" : "s", need);
            goto out;
        }
        const char *id = f[col_id], *lab = f[col_label], *spl = f[col_split];
        if (!valid_id(id)) {
            rc = sd_error_set(err, SD_EFORMAT,
                              "%s line %d: bad id '%.80s' (1-%d characters of A-Z a-z 0-9 . _ -,"
                              " not starting with '.')",
                              csv_path, line, id, SD_ID_MAX - 1);
            goto out;
        }
        int label = sd_task_parse_label(&ds->task, lab);
        if (label < 0 && sd_task_is_gastric(&ds->task)) {
            rc = sd_error_set(err, SD_EFORMAT, "%s line %d: label '%.40s' for '%s' is not 0 or 1",
                              csv_path, line, lab, id);
            goto out;
        }
        if (label < 0) {
            rc = sd_error_set(err, SD_EFORMAT,
                              "%s line %d: label '%.40s' for '%s' is not a class of task '%s'"
                              " (a class name or 0..%d)",
                              csv_path, line, lab, id, ds->task.name, ds->task.labels - 1);
            goto out;
        }
        int split = -1;
        for (int s = 0; s < SD_SPLIT_COUNT; s++)
            if (!strcasecmp(spl, sd_split_name(s)))
                split = s;
        if (split < 0) {
            rc = sd_error_set(err, SD_EFORMAT,
                              "%s line %d: split '%.40s' for '%s' is not train, val or test",
                              csv_path, line, spl, id);
            goto out;
        }
        if (ds->n == cap) {
            cap = cap ? 2 * cap : 256;
            sd_dataset_image *ni = realloc(ds->img, (size_t)cap * sizeof *ni);
            if (!ni) {
                rc = sd_error_set(err, SD_ENOMEM, "%s: out of memory", csv_path);
                goto out;
            }
            ds->img = ni;
        }
        sd_dataset_image *im = &ds->img[ds->n++];
        memset(im, 0, sizeof *im);
        snprintf(im->id, sizeof im->id, "%s", id);
        im->label = label;
        im->split = split;
        im->csv_line = line;
        im->off = -1;
    }
    if (rc < 0)
        goto out;
    rc = 0;
out:
    sd_csv_close(&c);
    return rc;
}

static int cmp_by_id(const void *a, const void *b, void *ctx)
{
    const sd_dataset_image *img = ctx;
    int ia = *(const int *)a, ib = *(const int *)b;
    int c = strcmp(img[ia].id, img[ib].id);
    return c ? c : (ia > ib) - (ia < ib);
}

/* qsort has no context argument in C11; a tiny merge sort does. */
static void sort_idx(int *v, int *tmp, int n, const sd_dataset_image *img)
{
    if (n < 2)
        return;
    int h = n / 2;
    sort_idx(v, tmp, h, img);
    sort_idx(v + h, tmp, n - h, img);
    int i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = cmp_by_id(&v[i], &v[j], (void *)img) <= 0 ? v[i++] : v[j++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, (size_t)n * sizeof *v);
}

static int check_duplicates(const sd_dataset *ds, const char *csv_path, sd_error *err)
{
    if (ds->n < 2)
        return 0;
    int *idx = malloc((size_t)ds->n * sizeof *idx), *tmp = malloc((size_t)ds->n * sizeof *tmp);
    if (!idx || !tmp) {
        free(idx);
        free(tmp);
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    }
    for (int i = 0; i < ds->n; i++)
        idx[i] = i;
    sort_idx(idx, tmp, ds->n, ds->img);
    int rc = 0;
    for (int k = 1; k < ds->n && !rc; k++) {
        const sd_dataset_image *a = &ds->img[idx[k - 1]], *b = &ds->img[idx[k]];
        if (!strcmp(a->id, b->id))
            rc = sd_error_set(err, SD_EFORMAT, "%s line %d: duplicate id '%s' (first on line %d)",
                              csv_path, b->csv_line, b->id, a->csv_line);
    }
    free(idx);
    free(tmp);
    return rc;
}

/* ---- PNG headers ---- */

static int check_gray_header(const char *path, const sd_png_info *pi, sd_error *err)
{
    if (pi->palette)
        return sd_error_set(err, SD_EFORMAT,
                            "%s: palette (indexed colour) image; only grayscale (8- or 16-bit)"
                            " PNGs are accepted",
                            path);
    if (pi->channels == 2)
        return sd_error_set(err, SD_EFORMAT,
                            "%s: grayscale with alpha image; only grayscale (8- or 16-bit)"
                            " PNGs are accepted",
                            path);
    if (pi->channels != 1)
        return sd_error_set(err, SD_EFORMAT,
                            "%s: %s colour image; only grayscale (8- or 16-bit) PNGs are accepted",
                            path, pi->channels == 4 ? "RGBA" : "RGB");
    return 0;
}

/* Open path inside the data set and read its PNG header. */
static int read_header(const sd_dataset *ds, const char *path, sd_png_info *pi, sd_error *err)
{
    FILE *f = NULL;
    int rc = sd_file_open(path, ds->root, &f, err);
    if (rc)
        return rc;
    rc = sd_png_read_info_file(f, path, pi, err);
    fclose(f);
    return rc ? rc : check_gray_header(path, pi, err);
}

/* The pixel budget, from the headers alone. */
static int check_pixels(const sd_dataset_image *im, const char *path, int64_t *total,
                        const sd_dataset_limits *lim, sd_error *err)
{
    int64_t n = (int64_t)im->w * im->h;
    if (n > lim->max_image_pixels)
        return sd_error_set(err, SD_EFORMAT,
                            "%s: declares %dx%d = %lld pixels, more than one image may hold "
                            "(%lld; --max-image-pixels)",
                            path, im->w, im->h, (long long)n, (long long)lim->max_image_pixels);
    *total += n;
    if (*total > lim->max_pixels)
        return sd_error_set(err, SD_EFORMAT,
                            "%s: the images up to this one (labels.csv line %d) declare %lld "
                            "pixels, more than the data set may hold (%lld; --max-pixels)",
                            path, im->csv_line, (long long)*total, (long long)lim->max_pixels);
    return 0;
}

static int check_headers(sd_dataset *ds, const sd_dataset_limits *lim, sd_error *err)
{
    char path[PATH_MAX_LEN], mpath[PATH_MAX_LEN];
    int64_t total = 0;
    for (int i = 0; i < ds->n; i++) {
        sd_dataset_image *im = &ds->img[i];
        if (image_path(path, ds, "images", im->id) || image_path(mpath, ds, "masks", im->id))
            return sd_error_set(err, SD_EINVAL, "%s: path too long", ds->dir);
        if (access(path, F_OK) != 0)
            return sd_error_set(err, SD_EIO, "%s: missing (listed on labels.csv line %d)", path,
                                im->csv_line);
        sd_png_info pi;
        int rc = read_header(ds, path, &pi, err);
        if (rc)
            return rc;
        im->w = pi.width;
        im->h = pi.height;
        im->bit_depth = pi.bit_depth;
        if ((rc = check_pixels(im, path, &total, lim, err)))
            return rc;
        if (access(mpath, F_OK) != 0) {
            if (im->split == SD_SPLIT_TRAIN && ds->task.outside)
                return sd_error_set(err, SD_EIO,
                                    "%s: missing; train images need a stomach mask (labels.csv"
                                    " line %d)",
                                    mpath, im->csv_line);
            continue;
        }
        sd_png_info mi;
        if ((rc = read_header(ds, mpath, &mi, err)))
            return rc;
        if (mi.width != pi.width || mi.height != pi.height)
            return sd_error_set(err, SD_EFORMAT, "%s: mask is %dx%d but the image %s is %dx%d",
                                mpath, mi.width, mi.height, path, pi.width, pi.height);
        im->has_mask = 1;
    }
    return 0;
}

/* ---- decoding ---- */

typedef struct load_ctx {
    sd_dataset *ds;
    int *todo; /* image indices */
    int keep;  /* store pixels (1) or only decode to verify (0) */
} load_ctx;

/* Decode path (inside the data set) into pix, which holds w*h values. */
static int decode_into(const sd_dataset *ds, const char *path, uint16_t *pix, int w, int h,
                       sd_error *err)
{
    FILE *f = NULL;
    int rc = sd_file_open(path, ds->root, &f, err);
    if (rc)
        return rc;
    rc = sd_png_read_gray16_into_file(f, path, pix, w, h, err);
    fclose(f);
    return rc;
}

static int load_one(void *arg, int k, sd_error *err)
{
    load_ctx *L = arg;
    sd_dataset *ds = L->ds;
    sd_dataset_image *im = &ds->img[L->todo[k]];
    char path[PATH_MAX_LEN];
    size_t npix = (size_t)im->w * (size_t)im->h;
    uint16_t *tmp = NULL;
    int rc = 0;
    if (image_path(path, ds, "images", im->id))
        return sd_error_set(err, SD_EINVAL, "%s: path too long", ds->dir);
    if (L->keep) {
        rc = decode_into(ds, path, ds->pix + im->off, im->w, im->h, err);
    } else {
        tmp = malloc(npix * sizeof *tmp);
        if (!tmp)
            return sd_error_set(err, SD_ENOMEM, "%s: out of memory", path);
        rc = decode_into(ds, path, tmp, im->w, im->h, err);
    }
    if (!rc && L->keep && !im->has_mask && !ds->task.outside)
        memset(ds->mask + im->off, 1, npix); /* a whole image: every pixel is inside */
    if (rc || !im->has_mask) {
        free(tmp);
        return rc;
    }
    if (image_path(path, ds, "masks", im->id)) {
        free(tmp);
        return sd_error_set(err, SD_EINVAL, "%s: path too long", ds->dir);
    }
    if (!tmp) {
        tmp = malloc(npix * sizeof *tmp);
        if (!tmp)
            return sd_error_set(err, SD_ENOMEM, "%s: out of memory", path);
    }
    rc = decode_into(ds, path, tmp, im->w, im->h, err);
    if (!rc && L->keep) {
        uint8_t *m = ds->mask + im->off;
        for (size_t p = 0; p < npix; p++)
            m[p] = tmp[p] != 0;
    }
    free(tmp);
    return rc;
}

static int decode_splits(sd_dataset *ds, unsigned splits, int keep, sd_error *err)
{
    int *todo = malloc((size_t)(ds->n ? ds->n : 1) * sizeof *todo), m = 0;
    if (!todo)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    for (int i = 0; i < ds->n; i++)
        if ((splits >> ds->img[i].split & 1u) && (keep || !ds->img[i].loaded))
            todo[m++] = i;
    load_ctx L = {ds, todo, keep};
    int rc = m ? sd_pool_run_once(0, m, load_one, &L, err) : 0;
    free(todo);
    return rc;
}

static int split_images(const sd_dataset *ds, int s)
{
    int n = 0;
    for (int k = 0; k < ds->task.labels; k++)
        n += ds->count[s][k];
    return n;
}

void sd_dataset_limits_default(sd_dataset_limits *lim)
{
    lim->max_pixels = SD_DATASET_MAX_PIXELS;
    lim->max_image_pixels = SD_DATASET_MAX_IMAGE_PIXELS;
}

int sd_dataset_open(sd_dataset **out, const char *dir, unsigned load_splits, sd_error *err)
{
    return sd_dataset_open_limited(out, dir, load_splits, NULL, err);
}

int sd_dataset_open_limited(sd_dataset **out, const char *dir, unsigned load_splits,
                            const sd_dataset_limits *lim, sd_error *err)
{
    sd_dataset_limits defaults;
    if (!lim) {
        sd_dataset_limits_default(&defaults);
        lim = &defaults;
    }
    *out = NULL;
    struct stat st;
    if (!dir || stat(dir, &st) != 0)
        return sd_error_set(err, SD_EIO, "%s: no such dataset directory", dir ? dir : "(null)");
    if (!S_ISDIR(st.st_mode))
        return sd_error_set(err, SD_EINVAL, "%s: not a directory", dir);
    sd_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    ds->dir = strdup(dir);
    if (!ds->dir) {
        free(ds);
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    }
    /* drop trailing slashes so messages read DIR/images/x.png */
    for (size_t n = strlen(ds->dir); n > 1 && ds->dir[n - 1] == '/'; n--)
        ds->dir[n - 1] = '\0';
    char csv_path[PATH_MAX_LEN];
    snprintf(csv_path, sizeof csv_path, "%s/labels.csv", ds->dir);
    int rc = sd_file_root(ds->dir, &ds->root, err);
    if (!rc)
        rc = sd_task_read_dir(&ds->task, ds->dir, err);
    if (!rc)
        rc = parse_labels(ds, csv_path, err);
    if (!rc)
        rc = check_duplicates(ds, csv_path, err);
    if (!rc) {
        for (int i = 0; i < ds->n; i++)
            ds->count[ds->img[i].split][ds->img[i].label]++;
        for (int s = 0; s < SD_SPLIT_COUNT && !rc; s++)
            if (split_images(ds, s) == 0)
                rc = sd_error_set(err, SD_EFORMAT,
                                  "%s: no images in split '%s' (train, val and test each need"
                                  " at least one)",
                                  csv_path, sd_split_name(s));
    }
    if (!rc)
        rc = check_headers(ds, lim, err);
    if (!rc) {
        char rpath[PATH_MAX_LEN];
        sd_error ignored = {0};
        FILE *f = NULL;
        snprintf(rpath, sizeof rpath, "%s/README.txt", ds->dir);
        if (sd_file_open(rpath, ds->root, &f, &ignored) == 0) {
            char head[16] = {0};
            ds->synthetic = fread(head, 1, 9, f) == 9 && !memcmp(head, "SYNTHETIC", 9);
            fclose(f);
        }
    }
    if (!rc) {
        ds->loaded_splits = load_splits & SD_LOAD_ALL;
        int64_t total = 0;
        for (int i = 0; i < ds->n; i++) {
            sd_dataset_image *im = &ds->img[i];
            if (ds->loaded_splits >> im->split & 1u) {
                im->off = total;
                total += (int64_t)im->w * im->h;
            }
        }
        ds->total_pixels = total;
        if (total > 0) {
            ds->pix = malloc((size_t)total * sizeof *ds->pix);
            ds->mask = calloc((size_t)total, 1);
            if (!ds->pix || !ds->mask)
                rc = sd_error_set(err, SD_ENOMEM,
                                  "out of memory for %lld pixels of images and masks",
                                  (long long)total);
        }
        if (!rc && total > 0)
            rc = decode_splits(ds, ds->loaded_splits, 1, err);
        if (!rc)
            for (int i = 0; i < ds->n; i++)
                ds->img[i].loaded = (ds->loaded_splits >> ds->img[i].split & 1u) != 0;
    }
    if (rc) {
        sd_dataset_destroy(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

void sd_dataset_destroy(sd_dataset *ds)
{
    if (!ds)
        return;
    free(ds->dir);
    free(ds->root);
    free(ds->img);
    free(ds->pix);
    free(ds->mask);
    free(ds);
}

int sd_dataset_verify(const sd_dataset *ds, unsigned splits, sd_error *err)
{
    return decode_splits((sd_dataset *)ds, splits, 0, err);
}

const uint16_t *sd_dataset_pixels(const sd_dataset *ds, int i)
{
    if (!ds || i < 0 || i >= ds->n || !ds->img[i].loaded)
        return NULL;
    return ds->pix + ds->img[i].off;
}

void sd_dataset_tables(const sd_dataset *ds, int64_t *off, int32_t *w)
{
    for (int i = 0; i < ds->n; i++) {
        off[i] = ds->img[i].loaded ? ds->img[i].off : -1;
        w[i] = ds->img[i].w;
    }
}

const uint8_t *sd_dataset_mask(const sd_dataset *ds, int i)
{
    if (!ds || i < 0 || i >= ds->n || !ds->img[i].loaded || !ds->img[i].has_mask)
        return NULL;
    return ds->mask + ds->img[i].off;
}

/* ---- grid and labels ---- */

int sd_patch_grid_dim(int size, int psize, int stride)
{
    if (psize <= 0 || stride <= 0 || size < psize)
        return 0;
    return (size - psize) / stride + 1;
}

int sd_patch_label(int64_t inside, int64_t area, int image_label)
{
    if (inside * 100 < area)
        return SD_CLASS_I;
    if (inside * 100 > area * 85)
        return image_label ? SD_CLASS_P : SD_CLASS_N;
    return -1;
}

int sd_patch_label_task(const sd_task *t, int64_t inside, int64_t area, int image_label)
{
    if (t->outside)
        return inside * 100 < area ? 0 : inside * 100 > area * 85 ? image_label + 1 : -1;
    return inside * 100 > area * 85 ? image_label : -1;
}

/* ---- the index ---- */

typedef struct idx_acc {
    sd_patch_index *ix;
    size_t cap;
    uint64_t s1;           /* sum of v over kept patches (exact) */
    uint64_t s2_hi, s2_lo; /* sum of v^2 split at 2^32, so it cannot overflow */
    uint64_t npix;
} idx_acc;

static int push_patch(idx_acc *A, sd_patch p)
{
    sd_patch_index *ix = A->ix;
    if (ix->n == A->cap) {
        size_t cap = A->cap ? 2 * A->cap : 4096;
        sd_patch *np = realloc(ix->p, cap * sizeof *np);
        if (!np)
            return SD_ENOMEM;
        ix->p = np;
        A->cap = cap;
    }
    ix->p[ix->n++] = p;
    return 0;
}

/* Window sums over the grid with running column sums: for each grid row the
 * per-column sums of rows [y0, y0+psize) are updated by the rows that leave
 * and enter, then prefix sums along x give every window in O(1).  Memory is
 * O(width); the integer sums are exact. */
static int index_image(idx_acc *A, const sd_dataset *ds, int i, sd_error *err)
{
    const sd_dataset_image *im = &ds->img[i];
    sd_patch_index *ix = A->ix;
    int ps = ix->psize, st = ix->stride, w = im->w;
    int gh = sd_patch_grid_dim(im->h, ps, st), gw = sd_patch_grid_dim(im->w, ps, st);
    if (gh == 0 || gw == 0)
        return 0;
    const uint16_t *pix = ds->pix + im->off;
    const uint8_t *msk = ds->mask + im->off;
    uint64_t *c1 = calloc((size_t)w, sizeof *c1), *c2 = calloc((size_t)w, sizeof *c2);
    uint32_t *cm = calloc((size_t)w, sizeof *cm);
    uint64_t *p1 = malloc((size_t)(w + 1) * sizeof *p1), *p2 = malloc((size_t)(w + 1) * sizeof *p2);
    uint64_t *pm = malloc((size_t)(w + 1) * sizeof *pm);
    int rc = 0;
    if (!c1 || !c2 || !cm || !p1 || !p2 || !pm) {
        rc = sd_error_set(err, SD_ENOMEM, "out of memory indexing %s", im->id);
        goto out;
    }
    int lo = 0, hi = 0; /* rows currently summed: [lo, hi) */
    int64_t area = (int64_t)ps * ps;
    for (int gy = 0; gy < gh; gy++) {
        int y0 = gy * st, y1 = y0 + ps;
        if (y0 >= hi) {
            memset(c1, 0, (size_t)w * sizeof *c1);
            memset(c2, 0, (size_t)w * sizeof *c2);
            memset(cm, 0, (size_t)w * sizeof *cm);
            lo = hi = y0;
        }
        for (int y = lo; y < y0; y++) {
            const uint16_t *r = pix + (size_t)y * w;
            const uint8_t *m = msk + (size_t)y * w;
            for (int x = 0; x < w; x++) {
                uint64_t v = r[x];
                c1[x] -= v;
                c2[x] -= v * v;
                cm[x] -= m[x];
            }
        }
        for (int y = hi; y < y1; y++) {
            const uint16_t *r = pix + (size_t)y * w;
            const uint8_t *m = msk + (size_t)y * w;
            for (int x = 0; x < w; x++) {
                uint64_t v = r[x];
                c1[x] += v;
                c2[x] += v * v;
                cm[x] += m[x];
            }
        }
        lo = y0;
        hi = y1;
        p1[0] = p2[0] = pm[0] = 0;
        for (int x = 0; x < w; x++) {
            p1[x + 1] = p1[x] + c1[x];
            p2[x + 1] = p2[x] + c2[x];
            pm[x + 1] = pm[x] + cm[x];
        }
        for (int gx = 0; gx < gw; gx++) {
            int x0 = gx * st;
            int64_t inside = (int64_t)(pm[x0 + ps] - pm[x0]);
            int lab = sd_patch_label_task(&ds->task, inside, area, im->label);
            ix->grid_total++;
            if (lab < 0) {
                ix->discarded++;
                continue;
            }
            sd_patch p = {i, y0, x0, lab};
            if (push_patch(A, p)) {
                rc = sd_error_set(err, SD_ENOMEM, "out of memory for the patch index");
                goto out;
            }
            ix->count[lab]++;
            uint64_t s2 = p2[x0 + ps] - p2[x0];
            A->s1 += p1[x0 + ps] - p1[x0];
            A->s2_hi += s2 >> 32;
            A->s2_lo += s2 & 0xffffffffu;
            A->npix += (uint64_t)area;
        }
    }
out:
    free(c1);
    free(c2);
    free(cm);
    free(p1);
    free(p2);
    free(pm);
    return rc;
}

int sd_patch_index_build(sd_patch_index *ix, const sd_dataset *ds, int split, int psize, int stride,
                         sd_error *err)
{
    memset(ix, 0, sizeof *ix);
    if (!ds || split < 0 || split >= SD_SPLIT_COUNT)
        return sd_error_set(err, SD_EINVAL, "patch index: bad dataset or split");
    if (psize < 1 || stride < 1)
        return sd_error_set(err, SD_EINVAL,
                            "patch index: patch size %d and stride %d must be"
                            " positive",
                            psize, stride);
    if (!(ds->loaded_splits >> split & 1u))
        return sd_error_set(err, SD_EINVAL, "patch index: the %s split was not loaded",
                            sd_split_name(split));
    ix->psize = psize;
    ix->stride = stride;
    idx_acc A = {ix, 0, 0, 0, 0, 0};
    for (int i = 0; i < ds->n; i++) {
        const sd_dataset_image *im = &ds->img[i];
        if (im->split != split || !im->loaded || (!im->has_mask && ds->task.outside))
            continue;
        int rc = index_image(&A, ds, i, err);
        if (rc) {
            sd_patch_index_free(ix);
            return rc;
        }
    }
    if (A.npix > 0) {
        double n = (double)A.npix;
        double s2 = (double)A.s2_hi * 4294967296.0 + (double)A.s2_lo;
        double m = (double)A.s1 / n; /* 0..65535 scale */
        double var = s2 / n - m * m;
        ix->mean = m / 65535.0;
        ix->std = var > 0 ? sqrt(var) / 65535.0 : 0;
    }
    /* A constant set cannot be standardised; dividing by 1 leaves it
     * centred, which is the most useful thing to do with it. */
    if (!(ix->std > 1e-12))
        ix->std = 1.0;
    return 0;
}

void sd_patch_index_free(sd_patch_index *ix)
{
    if (!ix)
        return;
    free(ix->p);
    ix->p = NULL;
    ix->n = 0;
}
