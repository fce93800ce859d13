/*
 * nd_payload.h - the distilled result as a bundle payload (proto Bundle).
 *
 * The engine (distill/) knows nothing of protobuf; this module converts its
 * sd_distilled into the exact payload bytes that are later signed, and back
 * (after the receive checks) for replay, evaluation and detection.
 */
#ifndef ND_PAYLOAD_H
#define ND_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "sd_distill.h"
#include "sd_privacy.h"
#include "sd_task.h"

typedef struct nd_class_count {
    const char *split, *class_name;
    uint64_t images, patches;
} nd_class_count;

typedef struct nd_payload_meta {
    const char *sender; /* node id */
    const char *const *audience;
    size_t n_audience;
    int64_t created_unix, expires_unix;
    uint64_t sequence;
    uint8_t bundle_id[16];
    int encoding; /* Sldd__V1__ImageEncoding; 0 = float32 */
    /* normalisation of the inputs */
    double norm_mean, norm_std;
    int patch_size, patch_stride, patch_resize;
    /* provenance */
    const char *data_source, *backend;
    const nd_class_count *counts;
    size_t n_counts;
    const char *const *hyper_keys, *const *hyper_values;
    size_t n_hyper;
    uint64_t bn_count; /* real samples theta_bn was computed on */
    /* the sender's own validation metrics; NaN: undefined (stored as 0 with
     * its bit in Metrics.undefined) */
    const char *metrics_split;
    double accuracy, sensitivity, specificity, harmonic_mean, auc;
    uint64_t patch_count, image_count;
    /* the privacy audit (NULL: the report says "not-audited") */
    const sd_privacy_report *privacy;
    /* the declared task; NULL for gastric (and Fashion-MNIST), which leaves
     * the bundle exactly as before tasks were declared */
    const sd_task *task;
} nd_payload_meta;

/* Serialise d with meta into a malloc'ed payload (*out, *len).  The result
 * passes sp_bundle_validate().  0, or a status code with the reason in err. */
int nd_payload_build(const sd_distilled *d, const nd_payload_meta *meta, uint8_t **out, size_t *len,
                     sd_error *err);

/* What replay needs from a payload, plus the figures shown to people. */
typedef struct nd_payload_info {
    char sender[72];
    uint64_t sequence;
    uint8_t bundle_id[16];
    double norm_mean, norm_std;
    int patch_size, patch_stride, patch_resize;
    double accuracy, harmonic_mean; /* NaN: undefined or absent */
    int encoding;
    double mm_per_pixel; /* the grid its images were on (hyper "mm_per_pixel"); 0 unknown */
    double dp_epsilon;   /* hyper "dp_epsilon"; NaN when absent */
    sd_task task;        /* the sender's task; the gastric one when absent */
} nd_payload_info;

/* Parse (with a memory budget, refusing unknown fields), validate and
 * convert a payload.  d is filled (free with sd_distilled_free). */
int nd_payload_parse(const uint8_t *buf, size_t len, sd_distilled *d, nd_payload_info *info,
                     sd_error *err);

/* Payloads parsed by this process so far (tests check that detection with a
 * stored theta_opt parses none). */
uint64_t nd_debug_parse_count(void);

/* A whole file of at most max bytes (SD_EIO with err otherwise). */
int nd_file_read(const char *path, size_t max, uint8_t **out, size_t *len, sd_error *err);
/* temp file + fsync + rename; SD_EIO with err */
int nd_file_write_atomic(const char *path, const uint8_t *buf, size_t len, sd_error *err);

#endif
