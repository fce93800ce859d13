/*
 * sb_parse.h - the number and "key: value" parsers every library uses.
 *
 * All number parsing in the tree goes through these (scripts/check-source
 * refuses strtol and friends elsewhere).  They read the WHOLE string: no
 * leading or trailing blanks, no trailing garbage, no empty string, no '+',
 * a '-' only where the range allows negatives (so "-1" never turns into a
 * huge unsigned value), decimal only, and a value outside [lo, hi] is an
 * error rather than a clamp.  On failure they return SB_EINVAL and leave
 * *out untouched.
 */
#ifndef SB_PARSE_H
#define SB_PARSE_H

#include <limits.h> /* the bounds callers pass */
#include <stdint.h>

#include "sb_error.h"

/* Signed decimal integer in [lo, hi]. */
int sb_parse_i64(const char *s, long long lo, long long hi, long long *out) SB_WUR;
/* int in [lo, hi]. */
int sb_parse_int(const char *s, int lo, int hi, int *out) SB_WUR;
/* Unsigned decimal integer in [0, max] (no sign accepted at all). */
int sb_parse_u64(const char *s, uint64_t max, uint64_t *out) SB_WUR;
/* Finite decimal floating-point number (as strtod reads it, e.g. "1e-3",
 * "0.5"; no hex, inf or nan) in [lo, hi]. */
int sb_parse_double(const char *s, double lo, double hi, double *out) SB_WUR;
/* The same number, but reading a prefix: *end is set past it (for numbers
 * embedded in other text, e.g. a JSON value).  No leading blanks. */
int sb_parse_double_prefix(const char *s, double *out, const char **end) SB_WUR;

/* "key: value" lines (node.conf, key files, receipts).  Walks text that it
 * modifies in place: blank lines and lines starting with '#' (after blanks)
 * are skipped; key and value are trimmed of blanks.  Returns 1 with *key and
 * *value set, 0 at the end, -1 for a line without ':' (the cursor has moved
 * past it). */
int sb_kv_next(char **cursor, char **key, char **value);

#endif
