/*
 * nd_buf.h - a growing text/byte buffer with a hard maximum, and the few
 * JSON and text helpers the admin API needs to render answers.
 *
 * Appending past the maximum (or failing to allocate) sets `failed`; every
 * later append is a no-op, so callers build a whole answer and check once.
 */
#ifndef ND_BUF_H
#define ND_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"

#define ND_BUF_DEFAULT_MAX ((size_t)16 << 20)

typedef struct nd_buf {
    char *data; /* NUL-terminated while not failed */
    size_t len, cap, max;
    int failed;
} nd_buf;

void nd_buf_init(nd_buf *b, size_t max); /* max 0: ND_BUF_DEFAULT_MAX */
void nd_buf_free(nd_buf *b);
void nd_buf_reset(nd_buf *b);
void nd_buf_add(nd_buf *b, const void *p, size_t n);
void nd_buf_str(nd_buf *b, const char *s);
void nd_buf_printf(nd_buf *b, const char *fmt, ...) SC_PRINTF(2, 3);
/* A JSON string literal (quotes included) with every control character,
 * quote and backslash escaped; NULL becomes null. */
void nd_buf_json_str(nd_buf *b, const char *s);
/* A JSON number, or null when v is not finite. */
void nd_buf_json_num(nd_buf *b, double v);
/* "key":v for a figure of a result (a metric, a loss), with 6 significant
 * digits; "key":null when it is undefined (not finite), never nan, inf or a
 * made-up 0: NaN and Infinity are not JSON. */
void nd_buf_json_fig(nd_buf *b, const char *key, double v);
/* Take the data (malloc'ed) out of b; NULL when failed. */
char *nd_buf_take(nd_buf *b, size_t *len);

/* Lowercase hex of n bytes into out (2n+1). */
void nd_hex(char *out, const uint8_t *p, size_t n);
/* Parse exactly 2n hex digits; 0 or -1. */
int nd_unhex(uint8_t *out, size_t n, const char *hex);

/* A whole decimal integer in [lo, hi]: the base parser sb_parse_i64 (no
 * trailing text, no '+', no overflow, a '-' only where lo < 0); 0 or -1
 * (also for NULL). */
int nd_parse_int(const char *s, long long lo, long long hi, long long *out);

#endif
