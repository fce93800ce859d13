/*
 * nd_buf.c - bounded growing buffers and JSON text helpers (see nd_buf.h).
 */
#include "nd_buf.h"
#include "sb_parse.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nd_buf_init(nd_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max ? max : ND_BUF_DEFAULT_MAX;
}

void nd_buf_free(nd_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void nd_buf_reset(nd_buf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data)
        b->data[0] = 0;
}

static int reserve(nd_buf *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (extra > b->max || b->len + extra + 1 > b->max) {
        b->failed = 1;
        return -1;
    }
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    if (cap > b->max)
        cap = b->max;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void nd_buf_add(nd_buf *b, const void *p, size_t n)
{
    if (reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void nd_buf_str(nd_buf *b, const char *s)
{
    nd_buf_add(b, s, strlen(s));
}

void nd_buf_printf(nd_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[512];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        nd_buf_add(b, small, (size_t)n);
        return;
    }
    if (reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 when it is not one. */
static size_t utf8_len(const unsigned char *p)
{
    size_t n = p[0] < 0x80             ? 1
               : (p[0] & 0xe0) == 0xc0 ? 2
               : (p[0] & 0xf0) == 0xe0 ? 3
               : (p[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
    if (!n || (n == 2 && p[0] < 0xc2) || (n == 4 && p[0] > 0xf4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0)))
        return 0; /* overlong, surrogates */
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90)))
        return 0;
    return n;
}

void nd_buf_json_str(nd_buf *b, const char *s)
{
    if (!s) {
        nd_buf_str(b, "null");
        return;
    }
    nd_buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (!n) {
            nd_buf_str(b, "\\ufffd"); /* JSON text is UTF-8: a stray byte becomes U+FFFD */
            p++;
        } else if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            nd_buf_add(b, esc, 2);
            p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            nd_buf_printf(b, "\\u%04x", *p);
            p++;
        } else {
            nd_buf_add(b, p, n);
            p += n;
        }
    }
    nd_buf_add(b, "\"", 1);
}

void nd_buf_json_num(nd_buf *b, double v)
{
    if (isfinite(v))
        nd_buf_printf(b, "%.17g", v);
    else
        nd_buf_str(b, "null");
}

void nd_buf_json_fig(nd_buf *b, const char *key, double v)
{
    nd_buf_json_str(b, key);
    if (isfinite(v))
        nd_buf_printf(b, ":%.6g", v);
    else
        nd_buf_str(b, ":null");
}

char *nd_buf_take(nd_buf *b, size_t *len)
{
    if (b->failed) {
        nd_buf_free(b);
        return NULL;
    }
    if (!b->data && reserve(b, 0) == 0)
        b->data[0] = 0;
    char *p = b->data;
    if (len)
        *len = b->len;
    memset(b, 0, sizeof *b);
    return p;
}

void nd_hex(char *out, const uint8_t *p, size_t n)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int nd_unhex(uint8_t *out, size_t n, const char *hex)
{
    if (!hex || strlen(hex) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
        if (a < 0 || b < 0)
            return -1;
        out[i] = (uint8_t)(a << 4 | b);
    }
    return 0;
}

int nd_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    return sb_parse_i64(s, lo, hi, out) ? -1 : 0;
}
