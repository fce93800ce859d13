/*
 * test_dataset.c - datasets on disk, the patch index and patch cutting:
 *  - the paper's geometry (2048x2048, 299/50 -> 35x35 = 1,225 patches);
 *  - the 1 % / 85 % labelling rules at their exact boundaries, and against a
 *    brute-force count on an overlapping grid;
 *  - normalisation statistics against a brute-force sum;
 *  - the host patch cutter against an independent fractional-area reference
 *    and bit for bit against the CPU backend's patch_gather;
 *  - every refused input with its message;
 *  - prepared.json round trip; IDX files (gzip and plain) and Fashion-MNIST;
 *    folders of PNGs with a label CSV.
 * Built in float32 and float64.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../sd_test.h"
#include "data_testutil.h"
#include "sd_backend.h"
#include "sd_dataset.h"
#include "sd_file.h"
#include "sd_imageset.h"
#include "sd_png.h"

#ifdef SD_REAL_DOUBLE
#define CUT_TOL 1e-12
#else
#define CUT_TOL 2e-6
#endif

static int has(const char *msg, const char *needle)
{
    return strstr(msg, needle) != NULL;
}

/* ---- building datasets ---- */

static void mk(const char *dir, const char *sub)
{
    char p[600];
    snprintf(p, sizeof p, "%s%s%s", dir, sub ? "/" : "", sub ? sub : "");
    mkdir(p, 0755);
}

static void put_png8(const char *dir, const char *sub, const char *id, const uint8_t *px, int w,
                     int h)
{
    char p[600];
    sd_error e = {0};
    snprintf(p, sizeof p, "%s/%s/%s.png", dir, sub, id);
    if (sd_png_write(p, px, w, h, 1, &e))
        fprintf(stderr, "setup: %s\n", e.msg);
}

static void put_csv(const char *dir, const char *text)
{
    char p[600];
    snprintf(p, sizeof p, "%s/labels.csv", dir);
    tu_write_text(p, text);
}

/* A small valid dataset: a (train, 1), b (train, 0), c (val, 0), d (test, 1);
 * 24x24 images, c has no mask (allowed outside train). */
static void make_small(const char *dir)
{
    mk(dir, NULL);
    mk(dir, "images");
    mk(dir, "masks");
    uint8_t img[24 * 24], m[24 * 24];
    for (int i = 0; i < 24 * 24; i++) {
        img[i] = (uint8_t)(i * 5);
        m[i] = (i % 24) >= 12 ? 255 : 0;
    }
    const char *ids[4] = {"a", "b", "c", "d"};
    for (int k = 0; k < 4; k++) {
        put_png8(dir, "images", ids[k], img, 24, 24);
        if (k != 2)
            put_png8(dir, "masks", ids[k], m, 24, 24);
    }
    put_csv(dir, "id,label,split\na,1,train\nb,0,train\nc,0,val\nd,1,test\n");
}

/* ---- the paper's geometry ---- */

static void test_paper_geometry(void)
{
    CHECK(sd_patch_grid_dim(2048, 299, 50) == 35);
    CHECK(sd_patch_grid_dim(299, 299, 50) == 1);
    CHECK(sd_patch_grid_dim(298, 299, 50) == 0);
    CHECK(sd_patch_grid_dim(349, 299, 50) == 2);
    CHECK(sd_patch_grid_dim(348, 299, 50) == 1);

    char dir[512];
    tu_path(dir, sizeof dir, "paper");
    mk(dir, NULL);
    mk(dir, "images");
    mk(dir, "masks");
    enum { S = 2048 };
    uint8_t *img = malloc((size_t)S * S), *m = malloc((size_t)S * S);
    /* the right half is stomach */
    for (size_t i = 0; i < (size_t)S * S; i++) {
        img[i] = (uint8_t)((i % S) / 8);
        m[i] = (i % S) >= S / 2 ? 255 : 0;
    }
    put_png8(dir, "images", "p0", img, S, S);
    put_png8(dir, "masks", "p0", m, S, S);
    put_png8(dir, "images", "v0", img, S, S);
    put_png8(dir, "images", "t0", img, S, S);
    put_csv(dir, "id,label,split\np0,1,train\nv0,0,val\nt0,1,test\n");
    sd_error e = {0};
    sd_dataset *ds = NULL;
    CHECK(sd_dataset_open(&ds, dir, SD_LOAD_TRAIN, &e) == 0);
    if (!ds) {
        fprintf(stderr, "%s\n", e.msg);
        free(img);
        free(m);
        return;
    }
    CHECK(ds->total_pixels == (int64_t)S * S); /* only the train image is kept */
    CHECK(sd_dataset_pixels(ds, 1) == NULL);
    sd_patch_index ix;
    CHECK(sd_patch_index_build(&ix, ds, SD_SPLIT_TRAIN, 299, 50, &e) == 0);
    CHECK(ix.grid_total == 1225);
    CHECK((int64_t)ix.n + ix.discarded == 1225);
    /* by hand: x0 = 50 g.  Inside fraction = (x0 + 299 - 1024)/299 clipped.
     * I: x0 + 299 - 1024 < 2.99 -> x0 <= 727 -> g = 0..14 (15 columns);
     * P: overlap > 254.15 -> x0 > 979.15 -> g = 20..34 (15 columns, incl.
     * g = 21.. fully inside); g = 15..19 discarded (5 columns). */
    CHECK(ix.count[SD_CLASS_I] == 15 * 35);
    CHECK(ix.count[SD_CLASS_P] == 15 * 35);
    CHECK(ix.count[SD_CLASS_N] == 0);
    CHECK(ix.discarded == 5 * 35);
    sd_patch_index_free(&ix);
    sd_dataset_destroy(ds);
    free(img);
    free(m);
}

/* ---- the 1 % / 85 % rules at their boundaries ---- */

static void test_label_rules(void)
{
    /* area 400: < 1 % means inside < 4; > 85 % means inside > 340 */
    CHECK(sd_patch_label(0, 400, 0) == SD_CLASS_I);
    CHECK(sd_patch_label(3, 400, 1) == SD_CLASS_I);
    CHECK(sd_patch_label(4, 400, 1) == -1);
    CHECK(sd_patch_label(340, 400, 1) == -1);
    CHECK(sd_patch_label(341, 400, 0) == SD_CLASS_N);
    CHECK(sd_patch_label(341, 400, 1) == SD_CLASS_P);
    CHECK(sd_patch_label(400, 400, 1) == SD_CLASS_P);
    /* area 89401 (299^2): 894.01 and 75990.85 */
    CHECK(sd_patch_label(894, 89401, 0) == SD_CLASS_I);
    CHECK(sd_patch_label(895, 89401, 0) == -1);
    CHECK(sd_patch_label(75990, 89401, 0) == -1);
    CHECK(sd_patch_label(75991, 89401, 0) == SD_CLASS_N);

    /* A 200x200 mask cut into a 10x10 grid of 20x20 cells (stride 20); cell
     * k holds counts[k % 8] stomach pixels. */
    static const int counts[8] = {0, 3, 4, 5, 339, 340, 341, 400};
    static const int expect[8] = {SD_CLASS_I, SD_CLASS_I, -1, -1, -1, -1, SD_CLASS_P, SD_CLASS_P};
    enum { S = 200 };
    static uint8_t img[S * S], m[S * S];
    memset(m, 0, sizeof m);
    for (int i = 0; i < S * S; i++)
        img[i] = (uint8_t)(i * 31 >> 3);
    for (int k = 0; k < 100; k++) {
        int cy = k / 10 * 20, cx = k % 10 * 20, c = counts[k % 8];
        for (int j = 0; j < c; j++)
            m[(cy + j / 20) * S + cx + j % 20] = 255;
    }
    char dir[512];
    tu_path(dir, sizeof dir, "rules");
    mk(dir, NULL);
    mk(dir, "images");
    mk(dir, "masks");
    put_png8(dir, "images", "x", img, S, S);
    put_png8(dir, "masks", "x", m, S, S);
    put_png8(dir, "images", "v", img, S, S);
    put_png8(dir, "images", "t", img, S, S);
    put_csv(dir, "id,label,split\nx,1,train\nv,0,val\nt,0,test\n");
    sd_error e = {0};
    sd_dataset *ds = NULL;
    CHECK(sd_dataset_open(&ds, dir, SD_LOAD_TRAIN, &e) == 0);
    if (!ds)
        return;
    sd_patch_index ix;
    CHECK(sd_patch_index_build(&ix, ds, SD_SPLIT_TRAIN, 20, 20, &e) == 0);
    CHECK(ix.grid_total == 100);
    size_t j = 0;
    int ok = 1, kept[3] = {0, 0, 0}, disc = 0;
    for (int k = 0; k < 100; k++) {
        int want = expect[k % 8];
        if (want < 0) {
            disc++;
            continue;
        }
        kept[want]++;
        ok &= j < ix.n && ix.p[j].label == want && ix.p[j].y == k / 10 * 20 &&
              ix.p[j].x == k % 10 * 20 && ix.p[j].img == 0;
        j++;
    }
    CHECK(ok && j == ix.n);
    CHECK(ix.count[0] == kept[0] && ix.count[1] == 0 && ix.count[2] == kept[2]);
    CHECK(ix.discarded == disc);
    sd_patch_index_free(&ix);

    /* overlapping grid (psize 20, stride 7) against a brute-force count,
     * and the normalisation statistics against a brute-force sum */
    CHECK(sd_patch_index_build(&ix, ds, SD_SPLIT_TRAIN, 20, 7, &e) == 0);
    int g = sd_patch_grid_dim(S, 20, 7);
    CHECK(ix.grid_total == g * g);
    const uint16_t *pix = sd_dataset_pixels(ds, 0);
    const uint8_t *mk8 = sd_dataset_mask(ds, 0);
    j = 0;
    ok = 1;
    double s1 = 0, s2 = 0, npx = 0;
    for (int gy = 0; gy < g; gy++)
        for (int gx = 0; gx < g; gx++) {
            int in = 0;
            for (int y = 0; y < 20; y++)
                for (int x = 0; x < 20; x++)
                    in += mk8[(gy * 7 + y) * S + gx * 7 + x];
            int want = sd_patch_label(in, 400, 1);
            if (want < 0)
                continue;
            ok &= j < ix.n && ix.p[j].label == want && ix.p[j].y == gy * 7 && ix.p[j].x == gx * 7;
            j++;
            for (int y = 0; y < 20; y++)
                for (int x = 0; x < 20; x++) {
                    double v = pix[(gy * 7 + y) * S + gx * 7 + x] / 65535.0;
                    s1 += v;
                    s2 += v * v;
                    npx++;
                }
        }
    CHECK(ok && j == ix.n);
    double mean = s1 / npx, sd = sqrt(s2 / npx - mean * mean);
    CHECKF(fabs(ix.mean - mean) < 1e-12 && fabs(ix.std - sd) < 1e-9,
           "mean %.15g/%.15g std %.15g/%.15g", ix.mean, mean, ix.std, sd);
    sd_patch_index_free(&ix);
    sd_dataset_destroy(ds);
}

/* ---- patch cutting ---- */

/* Independent reference: fractional overlaps in double. */
static double ref_cell(const uint16_t *src, int w, int psize, int osize, int oy, int ox)
{
    double s = (double)psize / osize, acc = 0;
    for (int y = 0; y < psize; y++) {
        double wy = fmin(y + 1, (oy + 1) * s) - fmax(y, oy * s);
        if (wy <= 0)
            continue;
        for (int x = 0; x < psize; x++) {
            double wx = fmin(x + 1, (ox + 1) * s) - fmax(x, ox * s);
            if (wx > 0)
                acc += wy * wx * src[(size_t)y * w + x];
        }
    }
    return acc / (s * s) / 65535.0;
}

static void test_cut(void)
{
    enum { W = 331, H = 310 };
    static uint16_t pix[W * H + 64 * 64];
    uint32_t r = 12345;
    for (int i = 0; i < W * H + 64 * 64; i++) {
        r = r * 1103515245u + 12345u;
        pix[i] = (uint16_t)(r >> 16);
    }
    /* two images: W x H at offset 0, 64x64 after it */
    const int64_t off[2] = {0, W * H};
    const int32_t wid[2] = {W, 64};
    const double mean = 0.41, sd = 0.27;
    struct {
        int psize, osize, img, y, x;
    } cases[] = {
        {299, 64, 0, 3, 17}, {299, 64, 0, 11, 32}, {20, 7, 1, 40, 5},  {10, 10, 1, 0, 0},
        {9, 4, 0, 100, 200}, {64, 64, 1, 0, 0},    {17, 1, 1, 30, 30},
    };
    sd_error e = {0};
    sd_backend *be = NULL;
    int have_be = sd_backend_cpu_create(&be, 1, &e) == 0;
    CHECK(have_be);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int ps = cases[c].psize, os = cases[c].osize;
        int32_t idx[3] = {cases[c].img, cases[c].y, cases[c].x};
        sd_real *out = malloc((size_t)os * os * sizeof *out);
        sd_real *out2 = malloc((size_t)os * os * sizeof *out2);
        CHECK(sd_patch_cut(pix, off, wid, idx, 1, ps, os, mean, sd, out, &e) == 0);
        const uint16_t *src = pix + off[idx[0]] + (int64_t)idx[1] * wid[idx[0]] + idx[2];
        double maxerr = 0;
        for (int oy = 0; oy < os; oy++)
            for (int ox = 0; ox < os; ox++) {
                double want = (ref_cell(src, wid[idx[0]], ps, os, oy, ox) - mean) / sd;
                maxerr = fmax(maxerr, fabs(out[oy * os + ox] - want));
            }
        CHECKF(maxerr < CUT_TOL, "case %zu (%d->%d): max error %g", c, ps, os, maxerr);
        /* the single-image cutter agrees exactly */
        int iw = wid[idx[0]], ih = idx[0] ? 64 : H;
        CHECK(sd_patch_cut_image(pix + off[idx[0]], iw, ih, &idx[1], &idx[2], 1, ps, os, mean, sd,
                                 out2, &e) == 0);
        CHECK(!memcmp(out, out2, (size_t)os * os * sizeof *out));
        /* and the CPU backend's patch_gather agrees bit for bit */
        if (have_be) {
            CHECK(be->patch_gather(be, NULL, pix, off, wid, idx, 1, ps, os, mean, sd, out2) == 0);
            CHECKF(!memcmp(out, out2, (size_t)os * os * sizeof *out),
                   "case %zu differs from patch_gather", c);
        }
        free(out);
        free(out2);
    }
    sd_backend_destroy(be);
    sd_real tmp[4];
    int32_t idx[3] = {0, 0, 0};
    CHECK(sd_patch_cut(pix, off, wid, idx, 1, 4, 5, mean, sd, tmp, &e) == SD_EINVAL);
    CHECK(sd_patch_cut(pix, off, wid, idx, 1, 4, 2, mean, 0, tmp, &e) == SD_EINVAL);
    int32_t ys = 300, xs = 0;
    CHECK(sd_patch_cut_image(pix, W, H, &ys, &xs, 1, 20, 2, mean, sd, tmp, &e) == SD_EINVAL);
    CHECK(has(e.msg, "outside"));
}

/* ---- the small dataset, 16-bit images and the index-based cutter ---- */

static void test_small(void)
{
    char dir[512];
    tu_path(dir, sizeof dir, "small");
    make_small(dir);
    /* b is 16-bit */
    uint16_t b16[24 * 24];
    for (int i = 0; i < 24 * 24; i++)
        b16[i] = (uint16_t)(i * 113);
    char p[600];
    snprintf(p, sizeof p, "%s/images/b.png", dir);
    sd_error e = {0};
    CHECK(sd_png_write_gray16(p, b16, 24, 24, &e) == 0);
    sd_dataset *ds = NULL;
    CHECK(sd_dataset_open(&ds, dir, SD_LOAD_ALL, &e) == 0);
    if (!ds) {
        fprintf(stderr, "%s\n", e.msg);
        return;
    }
    CHECK(ds->n == 4 && !ds->synthetic);
    CHECK(ds->img[1].bit_depth == 16 && ds->img[0].bit_depth == 8);
    CHECK(sd_dataset_pixels(ds, 1)[100] == 100 * 113);
    CHECK(sd_dataset_pixels(ds, 0)[3] == 15 * 257);
    CHECK(ds->img[2].has_mask == 0 && sd_dataset_mask(ds, 2) == NULL);
    CHECK(sd_dataset_mask(ds, 0)[12] == 1 && sd_dataset_mask(ds, 0)[11] == 0);
    int64_t off[4];
    int32_t wid[4];
    sd_dataset_tables(ds, off, wid);
    CHECK(off[0] == 0 && off[1] == 576 && off[3] == 3 * 576 && wid[2] == 24);
    sd_patch_index ix;
    /* 8x8 patches, stride 4: columns x0 = 0,4 are I (x0+8 <= 12); x0 = 8 is
     * half in -> discarded; x0 = 12, 16 are inside -> P for a, N for b */
    CHECK(sd_patch_index_build(&ix, ds, SD_SPLIT_TRAIN, 8, 4, &e) == 0);
    CHECK(ix.grid_total == 2 * 25);
    CHECK(ix.count[0] == 2 * 10 && ix.count[1] == 10 && ix.count[2] == 10 && ix.discarded == 10);
    sd_real *out = malloc(ix.n * 4 * sizeof *out);
    CHECK(sd_patch_cut_index(ds, &ix, 0, (int)ix.n, 2, out, &e) == 0);
    CHECK(sd_patch_cut_index(ds, &ix, 1, (int)ix.n, 2, out, &e) == SD_EINVAL);
    free(out);
    sd_patch_index_free(&ix);
    /* the val split has no masks: an empty index, not an error */
    CHECK(sd_patch_index_build(&ix, ds, SD_SPLIT_VAL, 8, 4, &e) == 0 && ix.n == 0);
    sd_patch_index_free(&ix);
    CHECK(sd_dataset_verify(ds, SD_LOAD_ALL, &e) == 0);
    sd_dataset_destroy(ds);

    /* not loaded split: no index */
    CHECK(sd_dataset_open(&ds, dir, SD_LOAD_TEST, &e) == 0);
    CHECK(sd_patch_index_build(&ix, ds, SD_SPLIT_TRAIN, 8, 4, &e) == SD_EINVAL);
    CHECK(has(e.msg, "not loaded"));
    /* a truncated image in a split that is not loaded is found by verify */
    snprintf(p, sizeof p, "%s/images/a.png", dir);
    long full = tu_file_size(p);
    CHECK(tu_truncate(p, full - 20) == 0);
    CHECK(sd_dataset_verify(ds, SD_LOAD_ALL, &e) == SD_EFORMAT);
    CHECK(has(e.msg, "images/a.png") && has(e.msg, "truncated"));
    sd_dataset_destroy(ds);
}

/* ---- refused inputs ---- */

typedef void (*breaker)(const char *dir);

static void expect_open_fails(const char *name, breaker brk, unsigned load, const char *want1,
                              const char *want2)
{
    char dir[512];
    tu_path(dir, sizeof dir, name);
    make_small(dir);
    brk(dir);
    sd_dataset *ds = (sd_dataset *)1;
    sd_error e = {0};
    int rc = sd_dataset_open(&ds, dir, load, &e);
    CHECKF(rc < 0, "%s: accepted", name);
    CHECK(ds == NULL);
    CHECKF(has(e.msg, want1) && (!want2 || has(e.msg, want2)), "%s: message '%s' lacks '%s' / '%s'",
           name, e.msg, want1, want2 ? want2 : "");
}

static void br_no_csv(const char *d)
{
    char p[600];
    snprintf(p, sizeof p, "%s/labels.csv", d);
    remove(p);
}
static void br_no_split_col(const char *d)
{
    put_csv(d, "id,label\na,1\n");
}
static void br_label(const char *d)
{
    put_csv(d, "id,label,split\na,1,train\nb,2,train\nc,0,val\nd,1,test\n");
}
static void br_label_text(const char *d)
{
    put_csv(d, "id,label,split\na,yes,train\n");
}
static void br_split(const char *d)
{
    put_csv(d, "id,label,split\na,1,training\n");
}
static void br_dup(const char *d)
{
    put_csv(d, "id,label,split\na,1,train\nb,0,train\nc,0,val\nd,1,test\na,0,test\n");
}
static void br_empty_split(const char *d)
{
    put_csv(d, "id,label,split\na,1,train\nb,0,train\nc,0,val\n");
}
static void br_empty_csv(const char *d)
{
    put_csv(d, "");
}
static void br_few_fields(const char *d)
{
    put_csv(d, "id,label,split\na,1\n");
}
static void br_bad_id(const char *d)
{
    put_csv(d, "id,label,split\n../a,1,train\n");
}
static void br_quote(const char *d)
{
    put_csv(d, "id,label,split\n\"a,1,train\n");
}
static void br_missing_img(const char *d)
{
    char p[600];
    snprintf(p, sizeof p, "%s/images/c.png", d);
    remove(p);
}
static void br_missing_mask(const char *d)
{
    char p[600];
    snprintf(p, sizeof p, "%s/masks/b.png", d);
    remove(p);
}
static void br_size(const char *d)
{
    uint8_t m[10 * 12] = {0};
    put_png8(d, "masks", "a", m, 10, 12);
}
static void br_colour(const char *d)
{
    char p[600];
    uint8_t rgb[24 * 24 * 3] = {0};
    sd_error e = {0};
    snprintf(p, sizeof p, "%s/images/d.png", d);
    if (sd_png_write(p, rgb, 24, 24, 3, &e))
        fprintf(stderr, "%s\n", e.msg);
}
static void br_colour_mask(const char *d)
{
    char p[600];
    uint8_t idx[24 * 24] = {0};
    snprintf(p, sizeof p, "%s/masks/a.png", d);
    tu_write_png_raw(p, 24, 24, PNG_COLOR_TYPE_PALETTE, 8, 0, idx, 24);
}
static void br_trunc(const char *d)
{
    char p[600];
    snprintf(p, sizeof p, "%s/images/b.png", d);
    tu_truncate(p, tu_file_size(p) - 30);
}
static void br_trunc_mask(const char *d)
{
    char p[600];
    snprintf(p, sizeof p, "%s/masks/a.png", d);
    tu_truncate(p, tu_file_size(p) - 30);
}
static void br_not_png(const char *d)
{
    char p[600];
    snprintf(p, sizeof p, "%s/images/a.png", d);
    tu_write_text(p, "GIF89a...");
}

static void test_refused(void)
{
    expect_open_fails("e1", br_no_csv, SD_LOAD_ALL, "labels.csv: cannot open", NULL);
    expect_open_fails("e2", br_no_split_col, SD_LOAD_ALL, "line 1: header has no 'split' column",
                      NULL);
    expect_open_fails("e3", br_label, SD_LOAD_ALL,
                      "labels.csv line 3: label '2' for 'b' is not 0 or 1", NULL);
    expect_open_fails("e4", br_label_text, SD_LOAD_ALL, "label 'yes'", NULL);
    expect_open_fails("e5", br_split, SD_LOAD_ALL,
                      "split 'training' for 'a' is not train, val or test", NULL);
    expect_open_fails("e6", br_dup, SD_LOAD_ALL, "line 6: duplicate id 'a' (first on line 2)",
                      NULL);
    expect_open_fails("e7", br_empty_split, SD_LOAD_ALL, "no images in split 'test'", NULL);
    expect_open_fails("e8", br_empty_csv, SD_LOAD_ALL, "empty file", NULL);
    expect_open_fails("e9", br_few_fields, SD_LOAD_ALL, "line 2: 2 fields, expected at least 3",
                      NULL);
    expect_open_fails("e10", br_bad_id, SD_LOAD_ALL, "line 2: bad id '../a'", NULL);
    expect_open_fails("e11", br_quote, SD_LOAD_ALL, "unterminated quoted field", NULL);
    expect_open_fails("e12", br_missing_img, SD_LOAD_ALL, "images/c.png: missing",
                      "labels.csv line 4");
    expect_open_fails("e13", br_missing_mask, SD_LOAD_ALL,
                      "masks/b.png: missing; train images need a stomach mask", NULL);
    expect_open_fails("e14", br_size, SD_LOAD_ALL, "masks/a.png: mask is 10x12 but the image",
                      "is 24x24");
    expect_open_fails("e15", br_colour, 0, "images/d.png: RGB colour image", NULL);
    expect_open_fails("e16", br_colour_mask, 0, "masks/a.png: palette", NULL);
    expect_open_fails("e17", br_trunc, SD_LOAD_TRAIN, "images/b.png", "file is truncated");
    expect_open_fails("e18", br_trunc_mask, SD_LOAD_TRAIN, "masks/a.png", "truncated");
    expect_open_fails("e19", br_not_png, SD_LOAD_ALL, "images/a.png: not a PNG file", NULL);

    sd_dataset *ds = NULL;
    sd_error e = {0};
    char dir[512];
    tu_path(dir, sizeof dir, "no-such-dir");
    CHECK(sd_dataset_open(&ds, dir, SD_LOAD_ALL, &e) == SD_EIO && has(e.msg, "no such dataset"));

    /* tolerated: BOM, CRLF, quotes, spaces, blank lines, extra columns in
     * any order, a mask for a test image, a trailing slash on the dir */
    tu_path(dir, sizeof dir, "ok");
    make_small(dir);
    put_csv(dir, "\xEF\xBB\xBF"
                 "patient_name,split,ID,label\r\n"
                 "\"Doe, Jane\",train, a ,\"1\"\r\n\r\n"
                 "x,train,b,0\r\nsecret,val,c,0\r\n  ,test,d,1");
    char dir2[520];
    snprintf(dir2, sizeof dir2, "%s/", dir);
    CHECK(sd_dataset_open(&ds, dir2, SD_LOAD_ALL, &e) == 0);
    if (ds) {
        CHECK(ds->n == 4 && !strcmp(ds->img[0].id, "a") && ds->img[0].label == 1);
        CHECK(ds->img[3].split == SD_SPLIT_TEST && ds->img[3].has_mask);
        CHECK(ds->img[2].csv_line == 5);
        CHECK(!strcmp(ds->dir, dir));
    }
    sd_dataset_destroy(ds);
    sd_dataset_destroy(NULL);
}

/* ---- prepared.json ---- */

static void test_prepared(void)
{
    sd_prepared p = {0}, q;
    p.version = 1;
    p.psize = 299;
    p.stride = 50;
    p.osize = 64;
    p.mean = 0.123456789012345678;
    p.std = 1.0 / 3;
    p.synthetic = 1;
    for (int s = 0; s < 3; s++) {
        p.images[s][0] = 10 + s;
        p.images[s][1] = 20 + s;
        for (int c = 0; c < 3; c++)
            p.patches[s][c] = 1000000000000LL + 100 * s + c;
        p.discarded[s] = 7 + s;
    }
    memset(p.labels_sha256, 'a', 64);
    p.labels_sha256[64] = 0;
    char path[512];
    sd_error e = {0};
    tu_path(path, sizeof path, "prepared.json");
    CHECK(sd_prepared_write(path, &p, &e) == 0);
    CHECK(sd_prepared_read(path, &q, &e) == 0);
    CHECK(q.version == 1 && q.psize == 299 && q.stride == 50 && q.osize == 64 && q.synthetic);
    CHECK(q.mean == p.mean && q.std == p.std); /* %.17g round-trips */
    CHECK(q.patches[2][1] == p.patches[2][1] && q.discarded[1] == 8 && q.images[2][1] == 22);
    CHECK(!strcmp(q.labels_sha256, p.labels_sha256));

    /* the object `prepare --json` prints is the file, byte for byte */
    char *mem = NULL, *file = NULL;
    size_t mlen = 0;
    FILE *ms = open_memstream(&mem, &mlen);
    CHECK(ms != NULL);
    if (ms) {
        sd_prepared_write_json(ms, &p);
        fclose(ms);
        FILE *f = fopen(path, "rb");
        file = calloc(1, mlen + 2);
        CHECK(f && file && fread(file, 1, mlen + 1, f) == mlen && !memcmp(file, mem, mlen));
        if (f)
            fclose(f);
    }
    free(mem);
    free(file);

    /* atomic: a failed write leaves the old file and no temporary */
    char tmp[700], bad[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);
    CHECK(mkdir(tmp, 0700) == 0); /* the temporary cannot be created */
    p.psize = 77;
    CHECK(sd_prepared_write(path, &p, &e) == SD_EIO && has(e.msg, "cannot create"));
    CHECK(sd_prepared_read(path, &q, &e) == 0 && q.psize == 299);
    CHECK(rmdir(tmp) == 0);
    tu_path(bad, sizeof bad, "no-such-dir/task-dir");
    sd_task t;
    sd_task_gastric(&t);
    CHECK(sd_task_write_dir(&t, bad, &e) == SD_EIO && has(e.msg, "task.json.tmp"));
    tu_path(bad, sizeof bad, "");
    CHECK(sd_task_write_dir(&t, bad, &e) == 0);
    CHECK(sd_task_read_dir(&t, bad, &e) == 0 && sd_task_is_gastric(&t));
    snprintf(tmp, sizeof tmp, "%s/task.json.tmp", bad);
    CHECK(access(tmp, F_OK) != 0);

    tu_write_text(path, "{\"format\": \"sldd-prepared\", \"version\": 1, \"patch\": 299}");
    CHECK(sd_prepared_read(path, &q, &e) == SD_EFORMAT && has(e.msg, "\"stride\""));
    tu_write_text(path, "{\"hello\": 1}");
    CHECK(sd_prepared_read(path, &q, &e) == SD_EFORMAT && has(e.msg, "not a prepared-index file"));
    tu_write_text(path, "{\"format\": \"sldd-prepared\", \"version\": [1,");
    CHECK(sd_prepared_read(path, &q, &e) == SD_EFORMAT);
}

/* ---- IDX, Fashion-MNIST, PNG folders ---- */

static void write_idx(const char *path, int gz, const uint8_t *bytes, size_t n, size_t cut)
{
    if (gz) {
        gzFile g = gzopen(path, "wb");
        gzwrite(g, bytes, (unsigned)(n - cut));
        gzclose(g);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(bytes, 1, n - cut, f);
        fclose(f);
    }
}

static void test_idx(void)
{
    uint8_t buf[16 + 3 * 4];
    const uint8_t hdr[16] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2};
    memcpy(buf, hdr, 16);
    for (int i = 0; i < 12; i++)
        buf[16 + i] = (uint8_t)(i * 20);
    char path[512];
    sd_error e = {0};
    uint8_t *data = NULL;
    int nd = 0, dims[4];
    for (int gz = 0; gz < 2; gz++) {
        tu_path(path, sizeof path, gz ? "x.idx.gz" : "x.idx");
        write_idx(path, gz, buf, sizeof buf, 0);
        CHECK(sd_idx_read(path, &data, &nd, dims, &e) == 0);
        CHECK(nd == 3 && dims[0] == 3 && dims[1] == 2 && dims[2] == 2);
        CHECK(data && data[11] == 220);
        free(data);
        write_idx(path, gz, buf, sizeof buf, 5);
        CHECK(sd_idx_read(path, &data, &nd, dims, &e) == SD_EFORMAT && has(e.msg, "truncated"));
        CHECK(data == NULL);
    }
    buf[2] = 0x0D; /* float data */
    tu_path(path, sizeof path, "f.idx");
    write_idx(path, 0, buf, sizeof buf, 0);
    CHECK(sd_idx_read(path, &data, &nd, dims, &e) == SD_EFORMAT && has(e.msg, "element type"));
    tu_path(path, sizeof path, "text.idx");
    tu_write_text(path, "hello world");
    CHECK(sd_idx_read(path, &data, &nd, dims, &e) == SD_EFORMAT && has(e.msg, "bad magic"));
    tu_path(path, sizeof path, "none.idx");
    CHECK(sd_idx_read(path, &data, &nd, dims, &e) == SD_EIO);

    /* Fashion-MNIST from the Debian package, when installed */
    char probe[600];
    snprintf(probe, sizeof probe, "%s/t10k-images-idx3-ubyte.gz", SD_FMNIST_DIR);
    if (access(probe, R_OK) != 0) {
        printf("fashion-mnist not installed: its checks are skipped\n");
        return;
    }
    sd_imageset te, va;
    CHECK(sd_fmnist_load(&te, NULL, SD_FMNIST_TEST, 0, &e) == 0);
    CHECK(te.n == 10000 && te.h == 28 && te.w == 28 && te.c == 1 && te.classes == 10);
    int hist[10] = {0}, ok = 1;
    for (int i = 0; i < te.n; i++)
        ok &= te.y[i] >= 0 && te.y[i] < 10 && ++hist[te.y[i]] > 0;
    CHECK(ok && hist[0] == 1000 && hist[9] == 1000);
    double lo = (0 - SD_FMNIST_MEAN) / SD_FMNIST_STD, hi = (1 - SD_FMNIST_MEAN) / SD_FMNIST_STD;
    double mn = 1e9, mx = -1e9, s = 0;
    for (size_t i = 0; i < (size_t)te.n * 784; i++) {
        mn = fmin(mn, te.x[i]);
        mx = fmax(mx, te.x[i]);
        s += te.x[i];
    }
    CHECK(fabs(mn - lo) < 1e-5 && fabs(mx - hi) < 1e-5);
    CHECK(fabs(s / (te.n * 784.0)) < 0.05); /* test set is close to the train statistics */
    sd_imageset_free(&te);
    /* validation = the last 5,000 training images */
    CHECK(sd_fmnist_load(&va, NULL, SD_FMNIST_VAL, 0, &e) == 0);
    CHECK(va.n == 5000);
    char tp[600];
    snprintf(tp, sizeof tp, "%s/train-images-idx3-ubyte.gz", SD_FMNIST_DIR);
    CHECK(sd_idx_read(tp, &data, &nd, dims, &e) == 0);
    if (data) {
        CHECK(dims[0] == 60000);
        ok = 1;
        for (int p = 0; p < 784; p++)
            ok &= fabs(va.x[p] - (data[55000 * 784 + p] / 255.0 - SD_FMNIST_MEAN) / SD_FMNIST_STD) <
                  1e-5;
        CHECK(ok);
        /* the documented constants are the training file's statistics */
        double a = 0, b = 0;
        for (size_t i = 0; i < (size_t)60000 * 784; i++) {
            double v = data[i] / 255.0;
            a += v;
            b += v * v;
        }
        double m = a / (60000.0 * 784), sd = sqrt(b / (60000.0 * 784) - m * m);
        CHECKF(fabs(m - SD_FMNIST_MEAN) < 1e-4 && fabs(sd - SD_FMNIST_STD) < 1e-4, "%.5f %.5f", m,
               sd);
        free(data);
    }
    sd_imageset_free(&va);
    sd_imageset tr;
    CHECK(sd_fmnist_load(&tr, NULL, SD_FMNIST_TRAIN, 100, &e) == 0 && tr.n == 100);
    sd_imageset_free(&tr);
}

static void test_png_folder(void)
{
    char dir[512], csv[600], p[700];
    tu_path(dir, sizeof dir, "folder");
    mk(dir, NULL);
    mk(dir, "sub");
    sd_error e = {0};
    uint8_t img[6 * 5];
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 30; i++)
            img[i] = (uint8_t)(i * 8 + k * 10);
        snprintf(p, sizeof p, "%s/sub/%d.png", dir, k);
        CHECK(sd_png_write(p, img, 6, 5, 1, &e) == 0);
    }
    snprintf(csv, sizeof csv, "%s/labels.csv", dir);
    tu_write_text(csv, "label,file,extra\n2,sub/0.png,x\n0,sub/1.png,y\n1,sub/2.png,z\n");
    sd_imageset s;
    CHECK(sd_imageset_load_png(&s, dir, csv, -1, -1, &e) == 0);
    CHECK(s.n == 3 && s.h == 5 && s.w == 6 && s.classes == 3 && s.y[0] == 2);
    double a = 0, b = 0;
    for (int i = 0; i < 90; i++) {
        a += s.x[i];
        b += (double)s.x[i] * s.x[i];
    }
    CHECK(fabs(a / 90) < 1e-5 && fabs(b / 90 - 1) < 1e-4);
    sd_imageset_free(&s);
    CHECK(sd_imageset_load_png(&s, dir, csv, 0.5, 0.25, &e) == 0);
    CHECK(fabs(s.x[0] - (0 - 0.5) / 0.25) < 1e-6 && s.mean == 0.5);
    sd_imageset_free(&s);
    /* different sizes, colour, escaping paths, bad labels */
    uint8_t big[7 * 5] = {0};
    snprintf(p, sizeof p, "%s/sub/big.png", dir);
    CHECK(sd_png_write(p, big, 7, 5, 1, &e) == 0);
    tu_write_text(csv, "file,label\nsub/0.png,0\nsub/big.png,1\n");
    CHECK(sd_imageset_load_png(&s, dir, csv, -1, -1, &e) == SD_EFORMAT && has(e.msg, "big.png") &&
          has(e.msg, "7x5"));
    tu_write_text(csv, "file,label\n../x.png,0\n");
    CHECK(sd_imageset_load_png(&s, dir, csv, -1, -1, &e) == SD_EFORMAT && has(e.msg, "relative"));
    tu_write_text(csv, "file,label\nsub/0.png,-1\n");
    CHECK(sd_imageset_load_png(&s, dir, csv, -1, -1, &e) == SD_EFORMAT && has(e.msg, "label '-1'"));
    tu_write_text(csv, "name,label\n");
    CHECK(sd_imageset_load_png(&s, dir, csv, -1, -1, &e) == SD_EFORMAT && has(e.msg, "'file'"));
    tu_write_text(csv, "file,label\n");
    CHECK(sd_imageset_load_png(&s, dir, csv, -1, -1, &e) == SD_EFORMAT && has(e.msg, "no images"));
    uint8_t rgb[6 * 5 * 3] = {0};
    snprintf(p, sizeof p, "%s/sub/rgb.png", dir);
    CHECK(sd_png_write(p, rgb, 6, 5, 3, &e) == 0);
    tu_write_text(csv, "file,label\nsub/rgb.png,0\n");
    CHECK(sd_imageset_load_png(&s, dir, csv, -1, -1, &e) == SD_EFORMAT && has(e.msg, "RGB colour"));
    /* a FIFO or a directory named like an image is refused at once (the
     * FIFO used to block the reader), a link out of the folder too */
    snprintf(p, sizeof p, "%s/sub/fifo.png", dir);
    CHECK(mkfifo(p, 0600) == 0);
    tu_write_text(csv, "file,label\nsub/fifo.png,0\n");
    CHECK(sd_imageset_load_png(&s, dir, csv, -1, -1, &e) == SD_EFORMAT &&
          has(e.msg, "is a FIFO (named pipe), not a regular file"));
    mk(dir, "sub/dir.png");
    tu_write_text(csv, "file,label\nsub/dir.png,0\n");
    CHECK(sd_imageset_load_png(&s, dir, csv, -1, -1, &e) == SD_EFORMAT &&
          has(e.msg, "is a directory"));
    char out[700];
    snprintf(out, sizeof out, "%s/../outside.png", dir);
    CHECK(sd_png_write(out, img, 6, 5, 1, &e) == 0);
    snprintf(p, sizeof p, "%s/sub/link.png", dir);
    CHECK(symlink(out, p) == 0);
    tu_write_text(csv, "file,label\nsub/link.png,0\n");
    CHECK(sd_imageset_load_png(&s, dir, csv, -1, -1, &e) == SD_EFORMAT &&
          has(e.msg, "outside the data folder"));
    snprintf(p, sizeof p, "%s/sub/inside.png", dir);
    CHECK(symlink("0.png", p) == 0);
    tu_write_text(csv, "file,label\nsub/inside.png,0\nsub/1.png,1\n");
    CHECK(sd_imageset_load_png(&s, dir, csv, -1, -1, &e) == 0 && s.n == 2);
    sd_imageset_free(&s);
    /* sd_file_open itself: regular files only; the root bounds links */
    FILE *f = NULL;
    char *root = NULL;
    CHECK(sd_file_root(dir, &root, &e) == 0);
    snprintf(p, sizeof p, "%s/sub/fifo.png", dir);
    CHECK(sd_file_open(p, NULL, &f, &e) == SD_EFORMAT && !f && has(e.msg, "FIFO"));
    snprintf(p, sizeof p, "%s/sub/link.png", dir);
    CHECK(sd_file_open(p, NULL, &f, &e) == 0 && f);
    if (f)
        fclose(f);
    f = NULL;
    CHECK(sd_file_open(p, root, &f, &e) == SD_EFORMAT && !f && has(e.msg, "outside.png"));
    snprintf(p, sizeof p, "%s/sub/inside.png", dir);
    CHECK(sd_file_open(p, root, &f, &e) == 0 && f);
    if (f)
        fclose(f);
    CHECK(sd_file_open("/dev/null", NULL, &f, &e) == SD_EFORMAT && has(e.msg, "character device"));
    free(root);
}

int main(void)
{
    tu_scratch("dataset");
    test_paper_geometry();
    test_label_rules();
    test_cut();
    test_small();
    test_refused();
    test_prepared();
    test_idx();
    test_png_folder();
    return sd_test_finish();
}
