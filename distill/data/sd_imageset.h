/*
 * sd_imageset.h - small labelled image sets held in memory as normalised
 * sd_real tensors: Fashion-MNIST (Debian package dataset-fashion-mnist,
 * used to check the distillation engine against published numbers) and a
 * generic folder of PNG images with a CSV of labels.
 */
#ifndef SD_IMAGESET_H
#define SD_IMAGESET_H

#include <stdint.h>

#include "sd_error.h"
#include "sd_real.h"

typedef struct sd_imageset {
    int n, c, h, w; /* x is (n, c, h, w) */
    int classes;    /* labels are 0..classes-1 */
    sd_real *x;
    int32_t *y;
    double mean, std; /* x = (v - mean)/std with v the pixel on the [0,1] scale */
} sd_imageset;

void sd_imageset_free(sd_imageset *s); /* accepts NULL or a zeroed set */

enum { SD_FMNIST_TRAIN = 0, SD_FMNIST_VAL = 1, SD_FMNIST_TEST = 2 };
#define SD_FMNIST_DIR  "/usr/share/datasets/fashion-mnist"
#define SD_FMNIST_MEAN 0.2860 /* over the 60,000 training images, [0,1] scale */
#define SD_FMNIST_STD  0.3530

/* Fashion-MNIST from the Debian package dataset-fashion-mnist (dir NULL =
 * SD_FMNIST_DIR; the .gz files or uncompressed IDX files).  part:
 * SD_FMNIST_TRAIN = the first 55,000 images of the training file,
 * SD_FMNIST_VAL = its last 5,000, SD_FMNIST_TEST = the 10,000 test images.
 * Normalised with SD_FMNIST_MEAN / SD_FMNIST_STD.  limit > 0 keeps only the
 * first limit images of the part. */
int sd_fmnist_load(sd_imageset *out, const char *dir, int part, int limit, sd_error *err) SD_WUR;

/* Read one IDX file (optionally gzip-compressed): ubyte data only, 1 to 4
 * dimensions.  *data is malloc'ed (caller frees); dims[0..ndim). */
int sd_idx_read(const char *path, uint8_t **data, int *ndim, int dims[4], sd_error *err) SD_WUR;

/* A folder of grayscale PNGs with a CSV "file,label" (header required; file
 * relative to dir; extra columns ignored).  All images must have the same
 * size.  Files are read like a gastric data set's (sd_dataset.h): regular
 * files inside dir only, sizes checked against the SD_DATASET_MAX_* pixel
 * limits from each header before it is decoded.  mean/std < 0: computed from these images ([0,1] scale); otherwise
 * used as given.  classes = 1 + the largest label. */
int sd_imageset_load_png(sd_imageset *out, const char *dir, const char *csv_path, double mean,
                         double std, sd_error *err) SD_WUR;

#endif
