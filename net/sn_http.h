/*
 * sn_http.h - a strict, bounded parser for HTTP/1.1 request heads.
 *
 * The server reads the head (request line and header fields, up to the
 * empty line) into one buffer no larger than its header cap and hands it
 * here.  The parser works in place, allocates nothing, and accepts only
 * what a node needs: origin-form targets, Content-Length bodies (no
 * chunked encoding, no obs-fold, one Host).  Anything else gets the status
 * code the server should answer with, and a reason for the log.
 */
#ifndef SN_HTTP_H
#define SN_HTTP_H

#include <stddef.h>

#define SN_HTTP_MAX_HEADERS 32
#define SN_HTTP_METHOD_MAX  15
#define SN_HTTP_TARGET_MAX  1024

typedef struct sn_http_header {
    const char *name;  /* NUL-terminated, as received (compare case-insensitively) */
    const char *value; /* NUL-terminated, surrounding whitespace removed */
} sn_http_header;

typedef struct sn_http_head {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* "/v1/bundles" (without the query) */
    const char *query;        /* after '?', or "" */
    int minor_version;        /* HTTP/1.x */
    long long content_length; /* -1 when absent */
    int expect_continue;      /* "Expect: 100-continue" was sent */
    sn_http_header headers[SN_HTTP_MAX_HEADERS];
    size_t n_headers;
    const char *reason; /* why parsing failed (static string) */
} sn_http_head;

/*
 * Parse the head in buf[0..len), which must end with the empty line
 * ("\r\n\r\n"; a bare "\n" line end is accepted as well) and be followed by
 * one spare byte for a NUL (buf[len] is written).  Returns 0, or the HTTP
 * status to refuse the request with (400, 414, 417, 431, 501, 505) and
 * head->reason.
 */
int sn_http_parse_head(char *buf, size_t len, sn_http_head *head);

/* Value of the first header called name (case-insensitive), or NULL. */
const char *sn_http_header_get(const sn_http_head *head, const char *name);

/* Reason phrase of a status code ("Payload Too Large"); "Unknown" if none. */
const char *sn_http_reason_phrase(int status);

#endif
