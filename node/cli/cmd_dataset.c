/*
 * cmd_dataset.c - `sldd dataset`: make a synthetic gastric data set and
 * prepare a data set for distillation.
 *
 *   sldd dataset synth   --out DIR ...   write phantoms, masks, labels.csv
 *   sldd dataset prepare --data DIR ...  validate, index patches, compute
 *                                        normalisation, write prepared.json
 *
 * The on-disk formats are described in docs/data.md.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "nd_cli_words.h"
#include "nd_dicom_file.h"
#include "sd_dataset.h"
#include "sd_import.h"
#include "sd_synth.h"
#include "sb_parse.h"

static void usage_main(FILE *f)
{
    fprintf(f, "usage: sldd dataset <synth|prepare> [<options>]\n"
               "\n"
               "  synth     write a SYNTHETIC gastric X-ray data set (phantoms, masks, labels)\n"
               "  prepare   validate a data set, index its patches and compute normalisation\n"
               "\n"
               "Run 'sldd dataset <subcommand> --help' for its options.\n");
}

static void usage_synth(FILE *f)
{
    fprintf(f, "usage: sldd dataset synth --out DIR [--count N] [--size PX] [--seed S]\n"
               "                          [--gastritis-fraction F]\n"
               "                          [--split-fractions TRAIN,VAL,TEST] [--threads T]\n"
               "                          [--force]\n"
               "\n"
               "Write N synthetic double-contrast barium stomach phantoms (not patient data)\n"
               "in the data-set layout 'sldd dataset prepare' reads: DIR/images/ID.png,\n"
               "DIR/masks/ID.png, DIR/labels.csv (id,label,split) and DIR/README.txt.\n"
               "\n"
               "  --out DIR                  output directory (created if needed)\n"
               "  --count N                  number of images (default 40)\n"
               "  --size PX                  width = height in pixels, 16..16384 (default 512;\n"
               "                             the paper's images are 2048)\n"
               "  --seed S                   generator seed, 0..2^64-1 (default 1)\n"
               "  --gastritis-fraction F     share of gastritis images, 0..1 (default 0.5)\n"
               "  --split-fractions A,B,C    train,val,test shares (default 0.6,0.2,0.2),\n"
               "                             applied to each label separately\n"
               "  --threads T                worker threads (default: one per CPU)\n"
               "  --force                    overwrite an existing data set in DIR\n");
}

static void usage_prepare(FILE *f)
{
    fprintf(f, "usage: sldd dataset prepare --data DIR [--patch P] [--stride S]\n"
               "                            [--patch-resize R] [--max-pixels N]\n"
               "                            [--max-image-pixels N]\n"
               "                            [--dicom SRC [--dicom-labels CSV]\n"
               "                             [--dicom-masks MDIR] [--mm-per-pixel MM]]\n"
               "                            [--images IDIR --labels CSV [--masks MDIR]\n"
               "                             [--val-fraction F] [--test-fraction F] [--seed S]]\n"
               "                            [--task NAME] [--classes A,B[,...]] [--outside NAME]\n"
               "                            [--json]\n"
               "\n"
               "Validate the data set in DIR (labels.csv, images/, masks/), cut every image\n"
               "into the PxP patch grid with stride S, label the patches of images with\n"
               "masks (stomach < 1%% -> I, > 85%% -> N or P by the image label, otherwise\n"
               "discarded), print the counts, compute the normalisation statistics of the\n"
               "training patches and write DIR/prepared.json for later commands.\n"
               "\n"
               "  --data DIR          the data set\n"
               "  --patch P           patch size in pixels (default 299, as in the paper)\n"
               "  --stride S          grid stride in pixels (default 50)\n"
               "  --patch-resize R    network input size: patches are area-averaged from\n"
               "                      PxP down to RxR (default: P, no resizing)\n"
               "  --max-pixels N      refuse a data set whose PNG headers declare more than N\n"
               "                      pixels in all (default 4294967296 = 2^32), before\n"
               "                      decoding anything\n"
               "  --max-image-pixels N  the same for one image (default 268435456 =\n"
               "                      16384x16384)\n"
               "  --dicom SRC         first make DIR from DICOM files: SRC is a folder of them\n"
               "                      or a list file (one path a line); labels.csv beside them\n"
               "                      (or --dicom-labels) has label, split and file or\n"
               "                      sop_instance_uid; masks/NAME.png beside them (or\n"
               "                      --dicom-masks) as for PNG data sets (docs/dicom.md)\n"
               "  --mm-per-pixel MM   resample every DICOM image to MM millimetres per pixel\n"
               "                      (default: the files' own spacing, which must agree)\n"
               "  --images IDIR       first make DIR from a folder of grayscale PNGs listed in\n"
               "  --labels CSV        CSV (columns file, label, optional split; labels as names\n"
               "                      or numbers such as 1 or 1.0; splits any case, empty =\n"
               "                      train); masks/ optional (--masks MDIR, same file names)\n"
               "  --val-fraction F    move a share F of each class's training images to val\n"
               "  --test-fraction F   ... and F to test (stratified, seeded by --seed, default\n"
               "                      1; the split is recorded in prepared.json)\n"
               "  --task NAME         declare the task (default: gastric, or 'images' with\n"
               "                      --images): its name, image classes (--classes, in order;\n"
               "                      for two classes the second is the positive one) and a\n"
               "                      region-outside patch class (--outside, needs masks)\n"
               "  --json              print prepared.json's object (task, geometry, per-split\n"
               "                      counts, the split made here) on stdout instead of the\n"
               "                      table; other messages go to stderr\n"
               "Without a region-outside class every patch of an image without a mask takes\n"
               "the image's class (whole-image classification with --patch the image size).\n");
}

/* Strict number parsing: the whole argument, in range, or a message. */
static int parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    long long v;
    if (sb_parse_i64(s, LONG_MIN, LONG_MAX, &v)) {
        fprintf(stderr, "sldd dataset %s: %s '%s' is not an integer\n", cmd, opt, s);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "sldd dataset %s: %s %lld is out of range %ld..%ld\n", cmd, opt, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                        double *out)
{
    double v;
    if (sb_parse_double(s, -INFINITY, INFINITY, &v)) {
        fprintf(stderr, "sldd dataset %s: %s '%s' is not a number\n", cmd, opt, s);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "sldd dataset %s: %s %g is out of range %g..%g\n", cmd, opt, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static void progress(void *ctx, int done, int total)
{
    (void)ctx;
    if (done == total || done % (total / 20 + 1) == 0)
        fprintf(stderr, "\r  %d/%d images", done, total);
    if (done == total)
        fputc('\n', stderr);
}

/* --seed: the whole argument, 0..2^64-1. */
static int parse_seed(const char *arg, uint64_t *out)
{
    if (sb_parse_u64(arg, UINT64_MAX, out)) {
        fprintf(stderr, "sldd dataset synth: --seed '%s' is not an integer 0..2^64-1\n", arg);
        return -1;
    }
    return 0;
}

/* --split-fractions TRAIN,VAL,TEST: three non-negative numbers, not all 0. */
static int parse_split_fractions(const char *arg, double split[3])
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", arg);
    int k = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (k == 3 || parse_double("synth", "--split-fractions", tok, 0, 1e6, &split[k]))
            k = 4;
        if (k == 4)
            break;
        k++;
    }
    if (k != 3) {
        fprintf(stderr,
                "sldd dataset synth: --split-fractions '%s' must be three non-negative"
                " numbers TRAIN,VAL,TEST\n",
                arg);
        return -1;
    }
    if (!(split[0] + split[1] + split[2] > 0)) {
        fprintf(stderr, "sldd dataset synth: --split-fractions must not all be zero\n");
        return -1;
    }
    return 0;
}

/* What was written, from the files themselves. */
static void synth_report(const sd_synth_dataset_opts *o)
{
    sd_error err = {0};
    sd_dataset *ds = NULL;
    if (sd_dataset_open(&ds, o->out_dir, 0, &err) == 0) {
        printf("wrote %d SYNTHETIC images of %dx%d pixels to %s (seed %llu)\n", ds->n, o->size,
               o->size, o->out_dir, (unsigned long long)o->seed);
        for (int s = 0; s < SD_SPLIT_COUNT; s++)
            printf("  %-5s %4d non-gastritis  %4d gastritis\n", sd_split_name(s), ds->count[s][0],
                   ds->count[s][1]);
        sd_dataset_destroy(ds);
    } else {
        /* e.g. a split left empty by the chosen fractions */
        printf("wrote %d SYNTHETIC images to %s\n", o->count, o->out_dir);
        fprintf(stderr, "sldd dataset synth: warning: the result will not load: %s\n", err.msg);
    }
}

static int run_synth(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"count", required_argument, 0, 'n'},
                                         {"size", required_argument, 0, 's'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"gastritis-fraction", required_argument, 0, 'g'},
                                         {"split-fractions", required_argument, 0, 'f'},
                                         {"threads", required_argument, 0, 't'},
                                         {"force", no_argument, 0, 'F'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    sd_synth_dataset_opts o = {0};
    o.count = 40;
    o.size = 512;
    o.seed = 1;
    o.gastritis_fraction = 0.5;
    o.split[0] = 0.6;
    o.split[1] = 0.2;
    o.split[2] = 0.2;
    long v;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o.out_dir = optarg; break;
        case 'n':
            if (parse_long("synth", "--count", optarg, 1, 1000000, &v))
                return 2;
            o.count = (int)v;
            break;
        case 's':
            if (parse_long("synth", "--size", optarg, 16, 16384, &v))
                return 2;
            o.size = (int)v;
            break;
        case 'S':
            if (parse_seed(optarg, &o.seed))
                return 2;
            break;
        case 'g':
            if (parse_double("synth", "--gastritis-fraction", optarg, 0, 1, &o.gastritis_fraction))
                return 2;
            break;
        case 'f':
            if (parse_split_fractions(optarg, o.split))
                return 2;
            break;
        case 't':
            if (parse_long("synth", "--threads", optarg, 1, 256, &v))
                return 2;
            o.threads = (int)v;
            break;
        case 'F': o.force = 1; break;
        case 'h': usage_synth(stdout); return 0;
        default:
            fprintf(stderr, "sldd dataset synth: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage_synth(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sldd dataset synth: unexpected argument '%s'\n", argv[optind]);
        usage_synth(stderr);
        return 2;
    }
    if (!o.out_dir || !*o.out_dir) {
        fprintf(stderr, "sldd dataset synth: --out DIR is required\n");
        usage_synth(stderr);
        return 2;
    }
    if (isatty(fileno(stderr))) {
        o.progress = progress;
        fprintf(stderr, "generating %d synthetic %dx%d images in %s\n", o.count, o.size, o.size,
                o.out_dir);
    }
    sd_error err = {0};
    if (sd_synth_dataset_write(&o, &err)) {
        fprintf(stderr, "sldd dataset synth: %s\n", err.msg);
        return 1;
    }
    synth_report(&o);
    return 0;
}

typedef struct split_stats {
    int indexed; /* images with masks */
    int64_t count[SD_TASK_MAX_CLASSES], discarded;
} split_stats;

/* Name every masked image of ix's split that gives no labelled patch at
 * this geometry (each window between 1 % and 85 % stomach, or the image
 * smaller than a patch): it adds nothing to training or to the patch-level
 * figures.  Named by file, never by any value inside it. */
static void warn_unlabelled(const sd_dataset *ds, const sd_patch_index *ix, int split)
{
    enum { SHOWN = 10 };
    int named = 0;
    size_t k = 0;
    for (int i = 0; i < ds->n; i++) {
        const sd_dataset_image *im = &ds->img[i];
        while (k < ix->n && ix->p[k].img < i)
            k++;
        if (im->split != split || !im->has_mask || !im->loaded || (k < ix->n && ix->p[k].img == i))
            continue;
        if (named++ < SHOWN)
            fprintf(stderr,
                    "warning: %s/images/%s.png (%s): no labelled patch with --patch %d "
                    "--stride %d (every window is 1 %% to 85 %% inside the mask, or the image "
                    "is smaller than a patch)\n",
                    ds->dir, im->id, sd_split_name(split), ix->psize, ix->stride);
    }
    if (named > SHOWN)
        fprintf(stderr, "warning: and %d more %s image%s with no labelled patch\n", named - SHOWN,
                sd_split_name(split), named - SHOWN == 1 ? "" : "s");
}

static int index_split(const char *dir, int split, int psize, int stride,
                       const sd_dataset_limits *lim, split_stats *st, sd_patch_index *keep,
                       sd_dataset **keep_ds, sd_error *err)
{
    sd_dataset *ds = NULL;
    int rc = sd_dataset_open_limited(&ds, dir, 1u << split, lim, err);
    if (rc)
        return rc;
    sd_patch_index ix;
    rc = sd_patch_index_build(&ix, ds, split, psize, stride, err);
    if (rc) {
        sd_dataset_destroy(ds);
        return rc;
    }
    warn_unlabelled(ds, &ix, split);
    memset(st, 0, sizeof *st);
    for (int i = 0; i < ds->n; i++)
        st->indexed += ds->img[i].split == split && ds->img[i].has_mask;
    for (int c = 0; c < SD_TASK_MAX_CLASSES; c++)
        st->count[c] = ix.count[c];
    st->discarded = ix.discarded;
    if (keep) {
        *keep = ix;
        *keep_ds = ds;
    } else {
        sd_patch_index_free(&ix);
        sd_dataset_destroy(ds);
    }
    return 0;
}

typedef struct prepare_geometry {
    long psize, stride, osize;
    double mm; /* the images' grid in mm per pixel, 0 unknown (docs/dicom.md) */
} prepare_geometry;

/* --dicom: DIR made from the DICOM files first; either way, DIR's grid. */
static int prepare_dicom(const nd_dicom_import_opts *o, double *mm, FILE *txt)
{
    sd_error err = {0};
    nd_dicom_import_report r;
    int rc = o->src ? nd_dicom_import(o, &r, &err) : nd_dicom_grid_read(o->out_dir, mm, &err);
    if (rc < 0) {
        fprintf(stderr, "sldd dataset prepare: %s\n", err.msg);
        return 1;
    }
    if (o->src) {
        *mm = r.mm;
        fprintf(txt, "DICOM %s: %d object%s, %d image%s (%d with mask)", o->src, r.objects,
                r.objects == 1 ? "" : "s", r.images, r.images == 1 ? "" : "s", r.with_mask);
        if (r.skipped)
            fprintf(txt, ", %d file%s skipped (not DICOM)", r.skipped, r.skipped == 1 ? "" : "s");
        if (r.mm > 0)
            fprintf(txt, "; grid %.4g mm per pixel%s\n", r.mm, o->mm > 0 ? " (resampled)" : "");
        else
            fprintf(txt, "; no pixel spacing: patches are in pixels, not millimetres\n");
    }
    return 0;
}

/* A declared task's classes, rule and split record. */
static void task_print(const sd_task *t)
{
    printf("task %s: image classes", t->name);
    for (int k = 0; k < t->labels; k++)
        printf("%s %s", k ? "," : "", t->label[k]);
    if (t->outside)
        printf("; region-outside class '%s'", t->outside_name);
    printf("\nimage-level rule: %s\n", t->rule_name);
    if (t->split.made)
        printf("split made here: val fraction %g, test fraction %g, seed %llu (stratified by "
               "class)\n",
               t->split.val_fraction, t->split.test_fraction, (unsigned long long)t->split.seed);
    printf("\nsplit  with mask  images per class / patches per class\n");
}

/* One split's line for a declared task: images and patches by class name. */
static void task_split_print(const sd_dataset *ds, int s, const split_stats *st)
{
    const sd_task *t = &ds->task;
    printf("%-6s %9d  images", sd_split_name(s), st->indexed);
    for (int k = 0; k < t->labels; k++)
        printf(" %s %d", t->label[k], ds->count[s][k]);
    printf("; patches");
    for (int c = 0; c < t->classes; c++)
        printf(" %s %lld", t->cls[c], (long long)st->count[c]);
    printf(", discarded %lld\n", (long long)st->discarded);
}

/* The data set's sizes, the patch grid and the per-split counts. */
static void prepare_print(const char *dir, const sd_dataset *ds, const sd_patch_index *ix,
                          const split_stats *st, const prepare_geometry *g)
{
    int minw = INT_MAX, maxw = 0, minh = INT_MAX, maxh = 0;
    for (int i = 0; i < ds->n; i++) {
        const sd_dataset_image *im = &ds->img[i];
        minw = im->w < minw ? im->w : minw;
        maxw = im->w > maxw ? im->w : maxw;
        minh = im->h < minh ? im->h : minh;
        maxh = im->h > maxh ? im->h : maxh;
    }
    printf("data set %s%s: %d images, %dx%d", dir, ds->synthetic ? " (SYNTHETIC)" : "", ds->n, minw,
           minh);
    if (minw != maxw || minh != maxh)
        printf(" to %dx%d", maxw, maxh);
    printf(" pixels\n");
    int gw = sd_patch_grid_dim(maxw, (int)g->psize, (int)g->stride),
        gh = sd_patch_grid_dim(maxh, (int)g->psize, (int)g->stride);
    printf("patches %ldx%ld, stride %ld: %dx%d = %d per %dx%d image; network input %ldx%ld%s\n",
           g->psize, g->psize, g->stride, gh, gw, gh * gw, maxw, maxh, g->osize, g->osize,
           g->osize < g->psize ? " (area-averaged)" : "");
    const sd_task *t = &ds->task;
    if (!sd_task_is_gastric(t))
        task_print(t);
    else
        printf("\n%-6s %15s %10s %10s %10s %10s %10s\n", "split", "images (N/P)", "with mask", "I",
               "N", "P", "discarded");
    for (int s = 0; s < SD_SPLIT_COUNT && sd_task_is_gastric(t); s++) {
        char imgs[32];
        snprintf(imgs, sizeof imgs, "%d/%d", ds->count[s][0], ds->count[s][1]);
        printf("%-6s %15s %10d %10lld %10lld %10lld %10lld\n", sd_split_name(s), imgs,
               st[s].indexed, (long long)st[s].count[0], (long long)st[s].count[1],
               (long long)st[s].count[2], (long long)st[s].discarded);
    }
    for (int s = 0; s < SD_SPLIT_COUNT && !sd_task_is_gastric(t); s++)
        task_split_print(ds, s, &st[s]);
    printf("\nnormalisation (training patches, [0,1] scale): mean %.6f  std %.6f\n", ix->mean,
           ix->std);
}

/* Warn (stderr, with --json too) about images smaller than one patch. */
static void prepare_warn_small(const sd_dataset *ds, const prepare_geometry *g)
{
    int small = 0;
    for (int i = 0; i < ds->n; i++)
        small += ds->img[i].w < g->psize || ds->img[i].h < g->psize;
    if (small)
        fprintf(stderr, "warning: %d image%s smaller than a %ldx%ld patch and give%s no patches\n",
                small, small == 1 ? " is" : "s are", g->psize, g->psize, small == 1 ? "s" : "");
}

/* DIR/prepared.json (its path into path, what it records into *p); 0 or
 * an sd error. */
static int prepare_write(const sd_dataset *ds, const sd_patch_index *ix, const split_stats *st,
                         const prepare_geometry *g, sd_prepared *p, char *path, size_t pathlen,
                         sd_error *err)
{
    memset(p, 0, sizeof *p);
    p->version = 1;
    p->psize = (int)g->psize;
    p->stride = (int)g->stride;
    p->osize = (int)g->osize;
    p->mean = ix->mean;
    p->std = ix->std;
    p->synthetic = ds->synthetic;
    p->mm_per_pixel = g->mm;
    p->task = ds->task;
    for (int s = 0; s < SD_SPLIT_COUNT; s++) {
        for (int k = 0; k < SD_TASK_MAX_CLASSES; k++) {
            p->images[s][k] = ds->count[s][k];
            p->patches[s][k] = st[s].count[k];
        }
        p->discarded[s] = st[s].discarded;
    }
    for (int i = 0; i < 32; i++)
        snprintf(p->labels_sha256 + 2 * i, 3, "%02x", ds->labels_sha256[i]);
    snprintf(path, pathlen, "%s/prepared.json", ds->dir);
    return sd_prepared_write(path, p, err);
}

typedef struct prepare_args {
    const char *dir;
    long psize, stride, osize;
    sd_dataset_limits lim;
    nd_dicom_import_opts dcm;
    sd_import_opts img;
    char classes_buf[400];
    const char *classes[SD_TASK_MAX_CLASSES];
    int json; /* --json: prepared.json's object on stdout, no table */
} prepare_args;

/* The options of the image-folder source and the task (1000..1008). */
static int prepare_task_option(int c, const char *arg, prepare_args *a)
{
    sd_import_opts *o = &a->img;
    switch (c) {
    case 1000: o->images = arg; return 0;
    case 1001: o->labels = arg; return 0;
    case 1002: o->masks = arg; return 0;
    case 1003: return parse_double("prepare", "--val-fraction", arg, 0, 0.9, &o->val_fraction);
    case 1004: return parse_double("prepare", "--test-fraction", arg, 0, 0.9, &o->test_fraction);
    case 1005:
        if (sb_parse_u64(arg, UINT64_MAX, &o->seed)) {
            fprintf(stderr, "sldd dataset prepare: --seed '%s' is not an integer 0..2^64-1\n", arg);
            return -1;
        }
        return 0;
    case 1006: o->task_name = arg; return 0;
    case 1007: {
        char *save = NULL;
        snprintf(a->classes_buf, sizeof a->classes_buf, "%s", arg);
        o->n_class_names = 0;
        for (char *tok = strtok_r(a->classes_buf, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
            if (o->n_class_names == SD_TASK_MAX_CLASSES) {
                fprintf(stderr, "sldd dataset prepare: --classes: at most %d classes\n",
                        SD_TASK_MAX_CLASSES);
                return -1;
            }
            a->classes[o->n_class_names++] = tok;
        }
        o->class_names = a->classes;
        return 0;
    }
    default: o->outside = arg; return 0;
    }
}

/* The image-folder options fit together: -1 to go on, or 2. */
static int prepare_check_images(const prepare_args *a)
{
    if (!a->img.images != !a->img.labels || (a->img.images && a->dcm.src)) {
        fprintf(stderr, "sldd dataset prepare: --images and --labels go together, and not with "
                        "--dicom\n");
        return 2;
    }
    if (!a->img.images && (a->img.masks || a->img.val_fraction > 0 || a->img.test_fraction > 0)) {
        fprintf(
            stderr,
            "sldd dataset prepare: --masks, --val-fraction and --test-fraction need --images\n");
        return 2;
    }
    return -1;
}

/* The options of prepare into a; -1 to go on, or the exit status. */
static int prepare_parse(int argc, char **argv, prepare_args *a)
{
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"patch", required_argument, 0, 'p'},
                                         {"stride", required_argument, 0, 's'},
                                         {"patch-resize", required_argument, 0, 'r'},
                                         {"max-pixels", required_argument, 0, 'M'},
                                         {"max-image-pixels", required_argument, 0, 'I'},
                                         {"dicom", required_argument, 0, 'D'},
                                         {"dicom-labels", required_argument, 0, 'L'},
                                         {"dicom-masks", required_argument, 0, 'K'},
                                         {"mm-per-pixel", required_argument, 0, 'm'},
                                         {"images", required_argument, 0, 1000},
                                         {"labels", required_argument, 0, 1001},
                                         {"masks", required_argument, 0, 1002},
                                         {"val-fraction", required_argument, 0, 1003},
                                         {"test-fraction", required_argument, 0, 1004},
                                         {"seed", required_argument, 0, 1005},
                                         {"task", required_argument, 0, 1006},
                                         {"classes", required_argument, 0, 1007},
                                         {"outside", required_argument, 0, 1008},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long v;
    int c;
    memset(a, 0, sizeof *a);
    a->psize = 299;
    a->stride = 50;
    a->img.seed = 1;
    sd_dataset_limits_default(&a->lim);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a->dir = optarg; break;
        case 'p':
            if (parse_long("prepare", "--patch", optarg, 1, 16384, &v))
                return 2;
            a->psize = v;
            break;
        case 's':
            if (parse_long("prepare", "--stride", optarg, 1, 16384, &v))
                return 2;
            a->stride = v;
            break;
        case 'r':
            if (parse_long("prepare", "--patch-resize", optarg, 1, 16384, &v))
                return 2;
            a->osize = v;
            break;
        case 'M':
        case 'I':
            if (parse_long("prepare", c == 'M' ? "--max-pixels" : "--max-image-pixels", optarg, 1,
                           1L << 40, &v))
                return 2;
            *(c == 'M' ? &a->lim.max_pixels : &a->lim.max_image_pixels) = v;
            break;
        case 'D': a->dcm.src = optarg; break;
        case 'L': a->dcm.labels = optarg; break;
        case 'K': a->dcm.masks = optarg; break;
        case 'm':
            if (parse_double("prepare", "--mm-per-pixel", optarg, 1e-3, 100, &a->dcm.mm))
                return 2;
            break;
        case 'h': usage_prepare(stdout); return 0;
        case 'j': a->json = 1; break;
        case 1000:
        case 1001:
        case 1002:
        case 1003:
        case 1004:
        case 1005:
        case 1006:
        case 1007:
        case 1008:
            if (prepare_task_option(c, optarg, a))
                return 2;
            break;
        default:
            fprintf(stderr, "sldd dataset prepare: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage_prepare(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sldd dataset prepare: unexpected argument '%s'\n", argv[optind]);
        usage_prepare(stderr);
        return 2;
    }
    if (!a->dir || !*a->dir) {
        fprintf(stderr, "sldd dataset prepare: --data DIR is required\n");
        usage_prepare(stderr);
        return 2;
    }
    if (a->osize == 0)
        a->osize = a->psize;
    if (a->osize > a->psize) {
        fprintf(stderr,
                "sldd dataset prepare: --patch-resize %ld is larger than --patch %ld;"
                " patches can only be scaled down\n",
                a->osize, a->psize);
        return 2;
    }

    if (!a->dcm.src && (a->dcm.labels || a->dcm.masks || a->dcm.mm > 0)) {
        fprintf(stderr, "sldd dataset prepare: --dicom-labels, --dicom-masks and --mm-per-pixel "
                        "need --dicom SRC\n");
        return 2;
    }
    a->dcm.out_dir = a->dir;
    a->img.out_dir = a->dir;
    return prepare_check_images(a);
}

/* --images: DIR made from the folder first; --task / --classes on an
 * existing DIR: its task.json written.  0 or 1 (message printed). */
static int prepare_task(prepare_args *a)
{
    sd_error err = {0};
    sd_import_opts *o = &a->img;
    if (o->images) {
        sd_import_report r;
        if (sd_import_folder(o, &r, &err)) {
            fprintf(stderr, "sldd dataset prepare: %s\n", err.msg);
            return 1;
        }
        fprintf(a->json ? stderr : stdout, "images %s: %d image%s (%d with mask) copied into %s\n",
                o->images, r.images, r.images == 1 ? "" : "s", r.with_mask, a->dir);
        return 0;
    }
    if (!o->task_name && !o->class_names && !o->outside)
        return 0;
    sd_task t;
    if (!o->class_names)
        fprintf(stderr, "sldd dataset prepare: --task and --outside need --classes\n");
    else if (sd_task_make(&t, o->task_name ? o->task_name : "images", o->n_class_names,
                          o->class_names, o->outside, &err) ||
             sd_task_write_dir(&t, a->dir, &err))
        fprintf(stderr, "sldd dataset prepare: %s\n", err.msg);
    else
        return 0;
    return 1;
}

static int run_prepare(int argc, char **argv)
{
    prepare_args a;
    int rc = prepare_parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    const char *dir = a.dir;
    long psize = a.psize, stride = a.stride, osize = a.osize;
    sd_dataset_limits lim = a.lim;
    prepare_geometry g = {psize, stride, osize, 0};
    if (prepare_dicom(&a.dcm, &g.mm, a.json ? stderr : stdout) || prepare_task(&a))
        return 1;
    /* The train split stays loaded for the statistics; val and test are
     * loaded one at a time (which also decodes, so catches truncated files)
     * to keep the peak memory to the largest split. */
    sd_error err = {0};
    sd_dataset *ds = NULL;
    sd_patch_index ix;
    split_stats st[SD_SPLIT_COUNT];
    rc = index_split(dir, SD_SPLIT_TRAIN, (int)psize, (int)stride, &lim, &st[0], &ix, &ds, &err);
    for (int s = 1; !rc && s < SD_SPLIT_COUNT; s++)
        rc = index_split(dir, s, (int)psize, (int)stride, &lim, &st[s], NULL, NULL, &err);
    if (rc) {
        fprintf(stderr, "sldd dataset prepare: %s\n", err.msg);
        if (ds) {
            sd_patch_index_free(&ix);
            sd_dataset_destroy(ds);
        }
        return 1;
    }
    if (!a.json)
        prepare_print(dir, ds, &ix, st, &g);
    prepare_warn_small(ds, &g);
    if (ix.n == 0) {
        fprintf(stderr, "sldd dataset prepare: no training patches with --patch %ld --stride %ld\n",
                psize, stride);
        sd_patch_index_free(&ix);
        sd_dataset_destroy(ds);
        return 1;
    }
    for (int k = 0; k < ds->task.classes; k++)
        if (ix.count[k] == 0)
            fprintf(stderr,
                    "warning: no training patches of class %s: distillation and training still "
                    "run, but no model made from this set sees a real %s patch, and 'sldd "
                    "baseline' needs an --images-per-step that is not a multiple of %d\n",
                    ds->task.cls[k], ds->task.cls[k], ds->task.classes);

    char path[4200];
    sd_prepared p;
    rc = prepare_write(ds, &ix, st, &g, &p, path, sizeof path, &err);
    sd_patch_index_free(&ix);
    sd_dataset_destroy(ds);
    if (rc) {
        fprintf(stderr, "sldd dataset prepare: %s\n", err.msg);
        return 1;
    }
    if (a.json) { /* the object just written, so stdout and the file agree */
        sd_prepared_write_json(stdout, &p);
        fprintf(stderr, "wrote %s\n", path);
    } else {
        printf("wrote %s\n", path);
    }
    if (fflush(stdout)) {
        fprintf(stderr, "sldd dataset prepare: writing to stdout: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

int cmd_dataset(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage_main(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "synth"))
        return run_synth(argc - 1, argv + 1);
    if (!strcmp(argv[1], "prepare"))
        return run_prepare(argc - 1, argv + 1);
    static const char *const subs[] = {"synth", "prepare", NULL};
    if (nd_cli_check_word("sldd dataset", "subcommand", argv[1], subs) == 0)
        return 2; /* not reached */
    return 2;
}
