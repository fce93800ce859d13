/*
 * sn_http.c - strict HTTP/1.1 request-head parser (see sn_http.h).
 *
 * Strict on purpose: the only clients are other nodes (libcurl), the
 * operator's tools and tests, so every ambiguity that has historically let
 * requests be read two ways (duplicate Content-Length, Transfer-Encoding,
 * obs-fold, whitespace before the colon, stray CR) is refused instead of
 * interpreted.
 */
#include "sn_http.h"

#include <string.h>
#include <strings.h>

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int fail(sn_http_head *h, int status, const char *reason)
{
    h->reason = reason;
    return status;
}

/* Cut the next line out of [*p, end): NUL-terminate it in place (replacing
 * the CR or LF) and advance *p past the LF.  Returns NULL when there is no
 * LF or the line holds a stray CR or a NUL. */
static char *next_line(char **p, char *end, int *bad)
{
    char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    char *e;
    *bad = 0;
    if (!nl)
        return NULL;
    e = nl;
    if (e > s && e[-1] == '\r')
        e--;
    if (memchr(s, '\r', (size_t)(e - s)) || memchr(s, '\0', (size_t)(e - s))) {
        *bad = 1;
        return NULL;
    }
    *e = '\0';
    *p = nl + 1;
    return s;
}

static int parse_request_line(char *line, sn_http_head *h)
{
    char *sp1 = strchr(line, ' '), *sp2, *version, *q;
    size_t mlen, tlen;

    if (!sp1)
        return fail(h, 400, "malformed request line");
    mlen = (size_t)(sp1 - line);
    if (mlen == 0 || mlen > SN_HTTP_METHOD_MAX)
        return fail(h, 400, "bad method");
    for (size_t i = 0; i < mlen; i++)
        if (line[i] < 'A' || line[i] > 'Z')
            return fail(h, 400, "bad method");
    *sp1 = '\0';
    h->method = line;

    sp2 = strchr(sp1 + 1, ' ');
    if (!sp2)
        return fail(h, 400, "malformed request line");
    tlen = (size_t)(sp2 - (sp1 + 1));
    if (tlen == 0)
        return fail(h, 400, "empty request target");
    if (tlen > SN_HTTP_TARGET_MAX)
        return fail(h, 414, "request target too long");
    if (sp1[1] != '/')
        return fail(h, 400, "request target is not an absolute path");
    for (char *c = sp1 + 1; c < sp2; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            return fail(h, 400, "bad character in request target");
    *sp2 = '\0';
    h->path = sp1 + 1;
    q = strchr(sp1 + 1, '?');
    if (q) {
        *q = '\0';
        h->query = q + 1;
    } else {
        h->query = "";
    }

    version = sp2 + 1;
    if (!strcmp(version, "HTTP/1.1"))
        h->minor_version = 1;
    else if (!strcmp(version, "HTTP/1.0"))
        h->minor_version = 0;
    else if (!strncmp(version, "HTTP/", 5) && version[5] >= '0' && version[5] <= '9' &&
             version[6] == '.' && version[7] >= '0' && version[7] <= '9' && !version[8])
        return fail(h, 505, "HTTP version not supported");
    else
        return fail(h, 400, "malformed request line");
    return 0;
}

static int parse_content_length(const char *v, long long *out)
{
    long long n = 0;
    size_t len = strlen(v);
    if (len == 0 || len > 18) /* 18 digits cannot overflow a long long */
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (v[i] - '0');
    }
    *out = n;
    return 0;
}

int sn_http_parse_head(char *buf, size_t len, sn_http_head *h)
{
    char *p = buf, *end = buf + len, *line;
    int bad, rc, n_host = 0, done = 0;

    memset(h, 0, sizeof *h);
    h->content_length = -1;
    h->query = "";
    if (!buf || len == 0)
        return fail(h, 400, "empty request");
    buf[len] = '\0';

    line = next_line(&p, end, &bad);
    if (!line)
        return fail(h, 400, bad ? "stray CR or NUL in request line" : "incomplete request head");
    rc = parse_request_line(line, h);
    if (rc)
        return rc;

    while (p < end) {
        char *colon, *name, *value, *vend;
        line = next_line(&p, end, &bad);
        if (!line)
            return fail(h, 400, bad ? "stray CR or NUL in header" : "incomplete request head");
        if (!*line) {
            done = 1;
            break;
        }
        if (*line == ' ' || *line == '\t')
            return fail(h, 400, "obsolete header line folding");
        if (h->n_headers == SN_HTTP_MAX_HEADERS)
            return fail(h, 431, "too many header fields");
        colon = strchr(line, ':');
        if (!colon || colon == line)
            return fail(h, 400, "malformed header field");
        for (char *c = line; c < colon; c++)
            if (!is_tchar((unsigned char)*c))
                return fail(h, 400, "bad character in header name");
        *colon = '\0';
        name = line;
        value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        vend = value + strlen(value);
        while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        *vend = '\0';
        for (char *c = value; *c; c++) {
            unsigned char u = (unsigned char)*c;
            if ((u < 0x20 && u != '\t') || u == 0x7f)
                return fail(h, 400, "control character in header value");
        }
        h->headers[h->n_headers].name = name;
        h->headers[h->n_headers].value = value;
        h->n_headers++;

        if (!strcasecmp(name, "Content-Length")) {
            if (h->content_length >= 0)
                return fail(h, 400, "more than one Content-Length");
            if (parse_content_length(value, &h->content_length) != 0) {
                h->content_length = -1;
                return fail(h, 400, "bad Content-Length");
            }
        } else if (!strcasecmp(name, "Transfer-Encoding")) {
            return fail(h, 501, "transfer codings (chunked) are not supported");
        } else if (!strcasecmp(name, "Host")) {
            n_host++;
        } else if (!strcasecmp(name, "Expect")) {
            if (strcasecmp(value, "100-continue") != 0)
                return fail(h, 417, "unsupported expectation");
            h->expect_continue = 1;
        }
    }
    if (!done)
        return fail(h, 400, "incomplete request head");
    if (p != end)
        return fail(h, 400, "data after the request head");
    if (h->minor_version == 1 && n_host != 1)
        return fail(h, 400, n_host ? "more than one Host" : "missing Host");
    return 0;
}

const char *sn_http_header_get(const sn_http_head *h, const char *name)
{
    for (size_t i = 0; i < h->n_headers; i++)
        if (!strcasecmp(h->headers[i].name, name))
            return h->headers[i].value;
    return NULL;
}

const char *sn_http_reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}
