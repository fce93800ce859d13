/*
 * sd_dataset.h - gastric X-ray datasets on disk, the patch index, host-side
 * patch cutting and the prepared-index file.
 *
 * A dataset (docs/data.md) is a folder
 *     DIR/labels.csv        header naming at least id,label,split
 *     DIR/images/ID.png     8- or 16-bit grayscale, any size
 *     DIR/masks/ID.png      region mask (non-zero = stomach), same size;
 *                           required for train images when the task has a
 *                           region-outside class, optional otherwise
 *     DIR/task.json         the declared task (sd_task.h); absent: gastric
 * label: an image class of the task (gastric: 0 non-gastritis, 1
 * gastritis), by number (also "1.0") or name; split: train, val or test,
 * any case.  Extra CSV columns are ignored and never copied anywhere.
 * Without a region-outside class an image without a mask is whole: every
 * grid patch of it is labelled with its class.
 *
 * The loader validates everything before it keeps anything, with an error
 * naming the file (and CSV line) for each problem.  The pixels of the loaded
 * splits are kept once, in one contiguous uint16 buffer (0..65535 scale) with
 * per-image offsets, so that a backend can upload them in one piece and cut
 * patches on the fly (sd_backend.h patch_gather); patches are never files.
 * Reading is bounded: every file is opened with sd_file_open (regular files
 * only, never following a symbolic link out of DIR, so a FIFO, a directory
 * or a link elsewhere named like an image is refused at once), and the
 * pixels the PNG headers declare are checked against sd_dataset_limits
 * before any pixel is decoded.
 *
 * Other image sets (Fashion-MNIST, PNG folders) are in sd_imageset.h.
 */
#ifndef SD_DATASET_H
#define SD_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "sd_error.h"
#include "sd_real.h"
#include "sd_task.h"

/* ---- splits and classes ---- */

enum { SD_SPLIT_TRAIN = 0, SD_SPLIT_VAL = 1, SD_SPLIT_TEST = 2, SD_SPLIT_COUNT = 3 };
#define SD_LOAD_TRAIN (1u << SD_SPLIT_TRAIN)
#define SD_LOAD_VAL   (1u << SD_SPLIT_VAL)
#define SD_LOAD_TEST  (1u << SD_SPLIT_TEST)
#define SD_LOAD_ALL   (SD_LOAD_TRAIN | SD_LOAD_VAL | SD_LOAD_TEST)

/* Patch classes of the gastric task (paper §3.1); other tasks declare
 * their own (sd_task.h), at most SD_TASK_MAX_CLASSES. */
enum { SD_CLASS_I = 0, SD_CLASS_N = 1, SD_CLASS_P = 2, SD_NUM_CLASSES = 3 };

const char *sd_split_name(int split); /* "train", "val", "test" */
const char *sd_class_name(int cls);   /* "I", "N", "P" */

#define SD_ID_MAX 64 /* ids: 1..63 characters of [A-Za-z0-9._-], not starting with '.' */

typedef struct sd_dataset_image {
    char id[SD_ID_MAX];
    int label;    /* image class 0..task.labels-1 (gastric: 0 or 1) */
    int split;    /* SD_SPLIT_* */
    int csv_line; /* line in labels.csv, for messages */
    int w, h;
    int bit_depth; /* stored bit depth of the image PNG */
    int has_mask;  /* a mask file exists (validated) */
    int loaded;    /* pixels (and mask) are in memory */
    int64_t off;   /* offset of the first pixel in pix / mask (loaded only) */
} sd_dataset_image;

typedef struct sd_dataset {
    char *dir;
    char *root; /* dir's real path: every file read must lie inside */
    int n;      /* images listed in labels.csv */
    sd_dataset_image *img;
    int synthetic;          /* README.txt starts with "SYNTHETIC" */
    unsigned loaded_splits; /* SD_LOAD_* bits passed to open */
    /* Pixels of every loaded image, concatenated; img[i].off indexes both.
     * mask[p] is 1 inside the stomach, 0 outside (0 for images without a
     * mask file). */
    uint16_t *pix;
    uint8_t *mask;
    int64_t total_pixels;
    int count[SD_SPLIT_COUNT][SD_TASK_MAX_CLASSES]; /* images per split and label */
    sd_task task;                    /* DIR/task.json, the gastric task when absent */
    unsigned char labels_sha256[32]; /* of labels.csv as read */
} sd_dataset;

/* Open and validate DIR.  Every image's header (and its mask's) is checked;
 * the images of the splits in load_splits are decoded and kept in memory
 * (which also catches truncated files).  Refused with a message naming the
 * file/line: missing or unreadable labels.csv, a header without id, label
 * or split, a bad id, a label other than 0/1, an unknown split, a duplicate
 * id, an empty split, a missing image, a missing mask for a train image, a
 * colour or palette PNG, an image/mask size mismatch, a corrupt or truncated
 * PNG. */
int sd_dataset_open(sd_dataset **out, const char *dir, unsigned load_splits, sd_error *err) SD_WUR;

/* What the PNG headers of a data set may declare, checked before anything is
 * decoded: a 1 MB PNG can declare 32768x32768 pixels (2 GiB decoded). */
typedef struct sd_dataset_limits {
    int64_t max_pixels;       /* all images listed in labels.csv together */
    int64_t max_image_pixels; /* any one image (its mask is the same size) */
} sd_dataset_limits;

/* 2^32 pixels in all (1,024 images of 2048x2048; 12 GiB with their masks
 * when every split is loaded) and 2^28 per image (16384x16384, the largest
 * `sldd dataset synth` writes). */
#define SD_DATASET_MAX_PIXELS       ((int64_t)1 << 32)
#define SD_DATASET_MAX_IMAGE_PIXELS ((int64_t)1 << 28)

void sd_dataset_limits_default(sd_dataset_limits *lim);

/* sd_dataset_open with limits (NULL: the defaults).  A data set over a
 * limit is refused (SD_EFORMAT) naming the image and the limit. */
int sd_dataset_open_limited(sd_dataset **out, const char *dir, unsigned load_splits,
                            const sd_dataset_limits *lim, sd_error *err) SD_WUR;
void sd_dataset_destroy(sd_dataset *ds); /* accepts NULL */

/* Decode (and discard) every image and mask of the given splits that is not
 * loaded, to catch truncated or corrupt files without keeping them. */
int sd_dataset_verify(const sd_dataset *ds, unsigned splits, sd_error *err) SD_WUR;

/* Pointers to image i's pixels / mask (NULL when not loaded / no mask). */
const uint16_t *sd_dataset_pixels(const sd_dataset *ds, int i);
const uint8_t *sd_dataset_mask(const sd_dataset *ds, int i);

/* Fill off[i] and w[i] (arrays of ds->n) for every image, off = -1 when not
 * loaded: the img_off / img_w tables of sd_patch_cut and patch_gather. */
void sd_dataset_tables(const sd_dataset *ds, int64_t *off, int32_t *w);

/* ---- the patch grid ---- */

/* Number of patch rows/columns of an image: (size - psize)/stride + 1, or 0
 * when the image is smaller than a patch.  2048 with 299/50 gives 35. */
int sd_patch_grid_dim(int size, int psize, int stride);

/* Patch label from its stomach pixel count (paper §3.1): fraction < 1 % ->
 * I; > 85 % -> N (image label 0) or P (image label 1); otherwise -1
 * (discarded).  Exact integer comparisons: 100*inside < area and
 * 100*inside > 85*area. */
int sd_patch_label(int64_t inside, int64_t area, int image_label);
/* The same for any task: with a region-outside class as above (outside ->
 * class 0, inside -> the label's class); without one, a patch more than 85 %
 * inside gets the image's class and every other patch is discarded. */
int sd_patch_label_task(const sd_task *t, int64_t inside, int64_t area, int image_label);

/* ---- the patch index ---- */

typedef struct sd_patch {
    int32_t img, y, x; /* image index in the dataset, top-left corner */
    int32_t label;     /* SD_CLASS_* */
} sd_patch;

typedef struct sd_patch_index {
    int psize, stride;
    size_t n; /* patches kept */
    sd_patch *p;
    int64_t count[SD_TASK_MAX_CLASSES]; /* per patch class of the task */
    int64_t discarded;
    int64_t grid_total; /* all grid positions examined */
    /* Pixel statistics of the kept patches on the [0,1] scale, counting a
     * pixel once per patch that contains it (overlaps included), computed
     * exactly from integral images of v and v^2. */
    double mean, std;
} sd_patch_index;

/* Build the index of the loaded images of one split that have masks
 * (every train image has one).  Patches are ordered by image, then row,
 * then column. */
int sd_patch_index_build(sd_patch_index *ix, const sd_dataset *ds, int split, int psize, int stride,
                         sd_error *err) SD_WUR;
void sd_patch_index_free(sd_patch_index *ix);

/* ---- cutting patches on the host ---- */

/* Cut n patches of psize x psize from 16-bit images, area-average them down
 * to osize x osize (osize <= psize) and normalise:
 *     out = (avg(v)/65535 - mean) / std
 * Output cell (i,j) averages the source window [i*s, (i+1)*s) x [j*s,
 * (j+1)*s), s = psize/osize, weighting each source pixel by the area of its
 * overlap with the window (fractional at the edges); with osize == psize it
 * is a plain copy.  The weighted sums are exact integers in double, so the
 * result is bit-identical to the CPU backend's patch_gather, whose host
 * twin this is; it takes the same arguments:
 * pix, img_off[i], img_w[i], idx = n x (image, y, x); out is (n,1,osize,osize). */
int sd_patch_cut(const uint16_t *pix, const int64_t *img_off, const int32_t *img_w,
                 const int32_t *idx, int n, int psize, int osize, double mean, double std,
                 sd_real *out, sd_error *err) SD_WUR;

/* Convenience: cut patches ix->p[first .. first+n) of a loaded dataset. */
int sd_patch_cut_index(const sd_dataset *ds, const sd_patch_index *ix, size_t first, int n,
                       int osize, sd_real *out, sd_error *err) SD_WUR;

/* Cut patches straight from one image (w x h pixels): n windows with top-left
 * corners ys[k], xs[k]. */
int sd_patch_cut_image(const uint16_t *pix, int w, int h, const int32_t *ys, const int32_t *xs,
                       int n, int psize, int osize, double mean, double std, sd_real *out,
                       sd_error *err) SD_WUR;

/* ---- the prepared-index file (DIR/prepared.json, docs/data.md) ---- */

typedef struct sd_prepared {
    int version; /* 1 */
    int psize, stride, osize;
    double mean, std;
    int synthetic;
    int images[SD_SPLIT_COUNT][SD_TASK_MAX_CLASSES];      /* per image class */
    int64_t patches[SD_SPLIT_COUNT][SD_TASK_MAX_CLASSES]; /* per patch class */
    int64_t discarded[SD_SPLIT_COUNT];
    char labels_sha256[65]; /* hex */
    double mm_per_pixel;    /* the images' physical grid; 0 unknown (PNG sets) */
    sd_task task;           /* absent from older files, or zero here: the gastric task */
} sd_prepared;

/* The prepared.json object (what `sldd dataset prepare --json` prints),
 * and the file itself, written atomically (sd_file_write_atomic). */
void sd_prepared_write_json(FILE *f, const sd_prepared *p);
int sd_prepared_write(const char *path, const sd_prepared *p, sd_error *err) SD_WUR;
int sd_prepared_read(const char *path, sd_prepared *p, sd_error *err) SD_WUR;

#endif
