/*
 * nd_dicom.h - DICOM images in and out, as the node sees them (docs/dicom.md).
 *
 * A thin C interface over DCMTK's C++ API (nd_dicom_read.cc,
 * nd_dicom_write.cc): the rest of the node is C and never sees a DCMTK type.
 * Reading takes the bytes of one DICOM file (the caller opens it with the
 * data set's rules, sd_file.h) and gives one frame as the engine's image: a
 * row-major uint16 array on the 0..65535 display scale, 0 = dark, exactly
 * what the PNG path (sd_png.h) gives, so everything after it is shared.
 *
 * Display values follow the standard's pipeline, with the policy stated in
 * docs/dicom.md: stored values (Bits Stored, High Bit, Pixel Representation,
 * decoded by DCMTK for uncompressed, JPEG baseline/extended/lossless,
 * JPEG-LS and RLE syntaxes; every other syntax refused) -> Rescale Slope /
 * Intercept -> VOI: the file's first window (LINEAR, LINEAR_EXACT or SIGMOID)
 * or, without one, the frame's min..max -> MONOCHROME1 inverted.
 *
 * No attribute value that could identify anyone ever leaves this module in
 * a message: errors name the file (the caller's path) and technical facts
 * (transfer syntax, bit depths, photometric name from a fixed list).  The
 * only identifying value handed out is the SOP Instance UID, to
 * nd_dicom_local_id, which keeps nothing but a salted hash of it.
 */
#ifndef ND_DICOM_H
#define ND_DICOM_H

#include <stddef.h>
#include <stdint.h>

#include "sd_error.h"
#include "sd_task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds checked before any pixel is decoded. */
#define ND_DICOM_MAX_BYTES        ((size_t)1 << 30) /* one file */
#define ND_DICOM_MAX_FRAME_PIXELS ((int64_t)1 << 28)
#define ND_DICOM_MAX_FRAMES       4096

enum { ND_DICOM_SPACING_NONE = 0, ND_DICOM_SPACING_PIXEL = 1, ND_DICOM_SPACING_IMAGER = 2 };
enum { ND_DICOM_VOI_WINDOW = 1, ND_DICOM_VOI_MINMAX = 2 };
enum { ND_DICOM_VOI_LINEAR = 0, ND_DICOM_VOI_LINEAR_EXACT = 1, ND_DICOM_VOI_SIGMOID = 2 };

/* What one object says about its pixels (no identifying value). */
typedef struct nd_dicom_info {
    int w, h, frames;
    int bits_allocated, bits_stored, high_bit, pixel_rep;
    int monochrome1; /* 1: MONOCHROME1 (displayed inverted) */
    double slope, intercept;
    double spacing[2]; /* mm between rows, between columns; 0 when absent */
    int spacing_kind;  /* ND_DICOM_SPACING_* */
    int voi;           /* ND_DICOM_VOI_WINDOW or _MINMAX, for the frame read */
    int voi_function;  /* ND_DICOM_VOI_LINEAR.. (window only) */
    double wc, ww;     /* the window used (minmax: min and max) */
    char xfer[80];     /* transfer syntax name, as DCMTK calls it */
} nd_dicom_info;

/* 1 when this build reads and writes DICOM (DCMTK was found). */
int nd_dicom_available(void);

/* Does buf look like a DICOM file ("DICM" after the 128-byte preamble)? */
int nd_dicom_sniff(const uint8_t *buf, size_t len);

/* Parse the object in buf (len bytes; name is for messages) and describe
 * it without decoding pixels.  Refused (SD_EFORMAT, message naming the file
 * and why): not DICOM or truncated, a DICOMDIR, no pixel data, float pixel
 * data, colour (samples per pixel != 1 or photometric other than
 * MONOCHROME1/2), a Modality LUT Sequence, dimensions of 0 or over
 * ND_DICOM_MAX_FRAME_PIXELS / ND_DICOM_MAX_FRAMES, a transfer syntax DCMTK
 * cannot decode here (JPEG 2000, MPEG, HEVC, ...). */
int nd_dicom_probe(const uint8_t *buf, size_t len, const char *name, nd_dicom_info *info,
                   sd_error *err) SD_WUR;

/* Decode frame (0-based) of the object in buf into a malloc'ed w*h array of
 * display values (*pix, free with free()); info is filled as by probe, with
 * voi/wc/ww of this frame. */
int nd_dicom_read_frame(const uint8_t *buf, size_t len, const char *name, int frame, uint16_t **pix,
                        nd_dicom_info *info, sd_error *err) SD_WUR;

/* The modality values (after rescale) to display values, the VOI and
 * inversion step of the pipeline above, on n values: exposed for tests. */
void nd_dicom_voi_apply(const double *mod, size_t n, const nd_dicom_info *info, uint16_t *out);

/* A local id for the object: "dcm-" and the first 24 hex digits of
 * SHA-256(salt || SOP Instance UID), written to id (at least 29 bytes).  The
 * UID itself is wiped after hashing.  An object without a SOP Instance UID
 * is refused. */
int nd_dicom_local_id(const uint8_t *buf, size_t len, const char *name, const uint8_t *salt,
                      size_t saltlen, char *id, size_t idlen, sd_error *err) SD_WUR;

/* Which of keys[0..n) (labels-CSV keys) is this object's SOP Instance UID:
 * *index gets it, or -1 when none is.  Compared inside, so the UID never
 * leaves this module.  0, or an SD_E code with err. */
int nd_dicom_uid_find(const uint8_t *buf, size_t len, const char *name, const char *const *keys,
                      int n, int *index, sd_error *err) SD_WUR;

/* ---- results as DICOM (nd_dicom_write.cc) ---- */

/* What a detection found and where its model came from.  Strings may be
 * NULL or empty (left out of the report). */
typedef struct nd_dicom_findings {
    double r;                     /* NaN: undetermined */
    double delta;                 /* the decision threshold */
    int decision;                 /* 1 positive, 0 negative, -1 undetermined (SD_DETECT_*); another
                     task's image class */
    int num[SD_TASK_MAX_CLASSES]; /* patches I, N, P (another task: its patch classes) */
    const sd_task *task;          /* NULL: gastric; else the model's task, whose names,
                                     rule and classes the report uses */
    const char *bundle_sha256, *sender, *model, *theta0;
    double epsilon;         /* NaN when the model has no privacy guarantee */
    const char *device_uid; /* the node's Device Observer UID (NULL: a new one) */
} nd_dicom_findings;

/* For the source object in src: the heat map rgb (w x h x 3, 8-bit) as a
 * Secondary Capture at sc_path and the findings as a TID 1500 Comprehensive
 * SR at sr_path (either path may be NULL), each with new UIDs, the Patient
 * and Study modules of the source and a reference to it.  Local only: both
 * carry the patient's identity. */
int nd_dicom_write_results(const uint8_t *src, size_t srclen, const char *srcname,
                           const uint8_t *rgb, int w, int h, const nd_dicom_findings *f,
                           const char *sc_path, const char *sr_path, sd_error *err) SD_WUR;

#ifdef __cplusplus
}
#endif

#endif
