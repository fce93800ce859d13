/*
 * nd_dicom_file.h - DICOM files from disk and resampling to one physical
 * grid (nd_dicom_grid.c); reading a whole folder or list of DICOM files
 * into a data set (nd_dicom_import.c).
 */
#ifndef ND_DICOM_FILE_H
#define ND_DICOM_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "nd_dicom.h"

/* Read path (regular file; inside root when root is not NULL) into a
 * malloc'ed buffer of at most ND_DICOM_MAX_BYTES. */
int nd_dicom_file_read(const char *path, const char *root, uint8_t **buf, size_t *len,
                       sd_error *err) SD_WUR;

/* Output size of a w x h image of spacing (rows, columns) mm at mm per
 * pixel; -1 when it would be empty or over 65535. */
int nd_dicom_grid_size(int w, int h, const double spacing[2], double mm, int *ow, int *oh);

/* Area resampling of in (w x h, spacing[0] mm between rows, spacing[1]
 * between columns) to mm per pixel; *out malloc'ed, *ow x *oh. */
int nd_dicom_resample(const uint16_t *in, int w, int h, const double spacing[2], double mm,
                      uint16_t **out, int *ow, int *oh, sd_error *err) SD_WUR;

/* One image for detection: frame of the DICOM file at path, resampled to
 * mm per pixel (0: as stored; an image without spacing is then refused
 * when mm > 0).  *pix malloc'ed (w x h); info describes the source. */
int nd_dicom_load_image(const char *path, int frame, double mm, uint16_t **pix, int *w, int *h,
                        nd_dicom_info *info, sd_error *err) SD_WUR;

/* ---- one image for detection, PNG or DICOM (nd_dicom_image.c) ---- */

typedef struct nd_image {
    uint16_t *pix; /* w x h display values, 0..65535 */
    int w, h, depth;
    int dicom;          /* read from DICOM (info describes it) */
    nd_dicom_info info; /* no identifying value */
} nd_image;

/* Read path, PNG or DICOM by its content (a DICOM object: its first frame,
 * on its stored grid). */
int nd_image_read(const char *path, nd_image *im, sd_error *err) SD_WUR;
/* Put a DICOM image on mm per pixel (the model's grid); note gets a line
 * for people saying what was done (empty for PNG).  An image without
 * spacing is refused when mm > 0; mm 0 keeps the stored pixels. */
int nd_image_to_grid(nd_image *im, double mm, char *note, size_t notelen, sd_error *err) SD_WUR;
void nd_image_free(nd_image *im);

/* ---- a DICOM folder or list as a data set (nd_dicom_import.c) ---- */

typedef struct nd_dicom_import_opts {
    const char *src;     /* a folder of DICOM files, or a list file (one path a line) */
    const char *labels;  /* labels CSV (NULL: labels.csv beside the files) */
    const char *masks;   /* masks folder (NULL: masks/ beside the files, if any) */
    const char *out_dir; /* the data set folder written */
    double mm;           /* grid in mm per pixel; 0: the files' own, which must agree */
} nd_dicom_import_opts;

typedef struct nd_dicom_import_report {
    int objects, images, with_mask, skipped; /* skipped: files in SRC that are not DICOM */
    double mm;                               /* the grid used; 0 unknown (no spacing) */
} nd_dicom_import_report;

/* Write out_dir as a data set (docs/dicom.md).  Refused, with nothing of
 * the data set's labels.csv replaced: a file without a row or a row
 * without a file, an object the reader refuses, images on different grids
 * without mm, a mask of the wrong size, out_dir holding a data set that was
 * not made from DICOM. */
int nd_dicom_import(const nd_dicom_import_opts *o, nd_dicom_import_report *rep,
                    sd_error *err) SD_WUR;

/* The grid recorded in DIR/dicom.json: 0 with *mm (0: unknown), 1 when DIR
 * was not made from DICOM, or an SD_E code. */
int nd_dicom_grid_read(const char *dir, double *mm, sd_error *err);

#endif
