/*
 * sd_import.h - a data set folder (sd_dataset.h layout) made from any
 * folder of grayscale PNGs and a labels CSV, with a declared task
 * (sd_task.h) and, when asked, a seeded stratified validation / test split.
 *
 * The CSV has a header naming a file column (file, filename, image, path
 * or id), a label column (label or class) and optionally a split column;
 * other columns are ignored.  Files are relative to the image folder
 * (sub-folders allowed; no absolute paths, no "..", regular files inside
 * it only).  Labels are class names (any case) or numbers 0..K-1, also as
 * "1.0"; split names train / val / test in any case ("validation" too), an
 * empty split meaning train.  The class names are --classes in that order,
 * or the distinct names sorted, or class0..classK-1 for numbers.
 *
 * With val_fraction (test_fraction) each class's training images are
 * shuffled with the seed (splitmix64 Fisher-Yates) and round(n * fraction)
 * of them move to val (test); the fractions, seed and counts are kept in the
 * task's split record, which prepared.json carries.
 */
#ifndef SD_IMPORT_H
#define SD_IMPORT_H

#include <stdint.h>

#include "sd_task.h"

typedef struct sd_import_opts {
    const char *images;             /* folder of PNGs */
    const char *labels;             /* the CSV */
    const char *masks;              /* optional folder of masks, same relative names */
    const char *out_dir;            /* the data set folder to write */
    const char *task_name;          /* NULL: "images" */
    const char *const *class_names; /* NULL: from the labels */
    int n_class_names;
    const char *outside; /* region-outside class name (needs masks), or NULL */
    double val_fraction, test_fraction;
    uint64_t seed;
} sd_import_opts;

typedef struct sd_import_report {
    int images, with_mask;
    sd_task task;
} sd_import_report;

int sd_import_folder(const sd_import_opts *o, sd_import_report *r, sd_error *err) SD_WUR;

#endif
