/*
 * nd_dicom_results.h - a detection's results written as DICOM beside its
 * source image (docs/dicom.md, "What is written"): OUT/heatmap-sc.dcm (the
 * heat map as a Secondary Capture) and OUT/report-sr.dcm (TID 1500
 * Comprehensive SR), both under the source's study.  Local only.
 */
#ifndef ND_DICOM_RESULTS_H
#define ND_DICOM_RESULTS_H

#include "nd_dicom.h"
#include "nd_infer.h"
#include "sd_detect.h"

typedef struct nd_dicom_results_opts {
    const char *image;        /* the source DICOM file */
    const char *out_dir;      /* existing folder the two files go to */
    const char *payload_path; /* the model's payload, hashed for provenance (may be NULL) */
    const char *bundle_id;    /* used when there is no payload path (may be NULL) */
    const char *device_uid;   /* the node's Device Observer UID (NULL: a new one) */
} nd_dicom_results_opts;

/* pix (w x h) is the image as detected (on the model's grid). */
int nd_dicom_results_write(const nd_dicom_results_opts *o, const nd_infer *inf, const uint16_t *pix,
                           int w, int h, const sd_detect_result *res, double delta,
                           sd_error *err) SD_WUR;

#endif
