/*
 * sp_check.h - structural and semantic checks of parsed messages.
 *
 * protobuf-c accepts fields it does not know and keeps them in
 * base.unknown_fields; a bundle from a newer or tampered sender must not
 * carry data this node silently ignores, so sp_message_check_unknown()
 * walks the whole tree.  sp_bundle_validate() is the semantic gate a
 * payload passes before anything uses it: shapes consistent, counts
 * without overflow, floats finite, step sizes and variances positive,
 * enums in range, identifiers and text well formed.  Limits are in
 * docs/bundle-format.md.
 */
#ifndef SP_CHECK_H
#define SP_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "sb_error.h"
#include "sldd.pb-c.h"

#define SP_FORMAT_VERSION 1
#define SP_BUNDLE_ID_LEN  16
#define SP_ID_MAX         64   /* node ids and admin names */
#define SP_TEXT_MAX       256  /* short strings */
#define SP_LONG_TEXT_MAX  4096 /* hyper-parameter values, policy */
#define SP_LIST_MAX       1024 /* audience, counts, hyper-parameters, ... */

/* 0 when no message in the tree rooted at m has unknown fields; otherwise
 * SB_EFORMAT with the path of the first one in e ("Bundle.model: unknown field 99"). */
int sp_message_check_unknown(const ProtobufCMessage *m, sb_error *e);

/* 1 if s is a valid node id or admin name: 1..SP_ID_MAX characters from
 * [A-Za-z0-9._-], not starting with '.' or '-'. */
int sp_valid_id(const char *s);
/* 1 if s is at most max bytes of valid UTF-8 without control characters. */
int sp_valid_text(const char *s, size_t max);

/* Semantic validation of a parsed payload.  0, or SB_EFORMAT with a
 * reason in e. */
int sp_bundle_validate(const Sldd__V1__Bundle *b, sb_error *e);

/* The figures of Metrics and their bits in Metrics.undefined
 * (docs/bundle-format.md). */
enum sp_metric {
    SP_METRIC_ACCURACY = 1u << 0,
    SP_METRIC_SENSITIVITY = 1u << 1,
    SP_METRIC_SPECIFICITY = 1u << 2,
    SP_METRIC_HARMONIC_MEAN = 1u << 3,
    SP_METRIC_AUC = 1u << 4,
    SP_METRIC_ALL = (1u << 5) - 1
};
/* One figure of m (NULL: none) as a reader should see it: NaN when the
 * payload marks it undefined or has no metrics, the stored value otherwise. */
double sp_metric_get(const Sldd__V1__Metrics *m, enum sp_metric which);

/* Counts derived from a payload that passed sp_bundle_validate(). */
typedef struct sp_bundle_dims {
    size_t images;       /* M = S*n */
    size_t image_values; /* D = C*H*W per image */
    size_t labels;       /* S*n*K */
    size_t steps;        /* T = S*E */
} sp_bundle_dims;
/* Fill dims from b; SB_EFORMAT (and a reason in e) if the model or set is missing or a
 * product overflows. */
int sp_bundle_dims_get(const Sldd__V1__Bundle *b, sp_bundle_dims *dims, sb_error *e);

#endif
