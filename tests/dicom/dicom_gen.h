/*
 * dicom_gen.h - DICOM fixtures made by the tests themselves with DCMTK's
 * API (dicom_gen.cc): any size, frame count, bit depth, sign, photometric,
 * rescale, window, pixel spacing and transfer syntax (compressed ones
 * through DCMTK's own encoders), plus deliberately broken objects, and
 * identifying attributes the de-identification tests plant.  No patient
 * data is ever in the repository.
 */
#ifndef DICOM_GEN_H
#define DICOM_GEN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dicom_gen {
    int w, h, frames;
    int bits_allocated, bits_stored, pixel_rep; /* 16/16/0 when 0 */
    const char *photometric;                    /* "MONOCHROME2" when NULL */
    int rescale;                                /* write slope and intercept */
    double slope, intercept;
    int window; /* write a window */
    double wc, ww;
    const char *voi_function; /* VOI LUT Function, or NULL */
    int spacing_kind;         /* 0 none, 1 Pixel Spacing, 2 Imager Pixel Spacing */
    double spacing[2];        /* rows, columns (mm) */
    /* "explicit" (default), "implicit", "big", "jpeg-lossless", "jpeg-baseline",
     * "jpeg-ls", "rle", "j2k-label" (RLE fragments labelled JPEG 2000) */
    const char *xfer;
    int no_pixels; /* leave Pixel Data out */
    int dicomdir;  /* make it a DICOMDIR */
    /* identity (NULL: harmless defaults) */
    const char *patient_name, *patient_id, *institution, *accession, *private_value;
    const char *sop_uid, *study_uid, *series_uid;
} dicom_gen;

/* Write path from stored values (w*h*frames int32, each masked to
 * bits_stored, two's complement when signed).  0, or -1 with msg. */
int dicom_gen_write(const char *path, const dicom_gen *g, const int32_t *stored, char *msg,
                    size_t msglen);

#ifdef __cplusplus
}
#endif

#endif
