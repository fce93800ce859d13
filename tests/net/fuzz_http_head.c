/*
 * fuzz_http_head.c - fuzz harness for the HTTP/1.1 request-head parser
 * (net/sn_http.c), the first code that sees a peer's bytes after TLS.
 *
 * The harness cuts its input the way the server does (at the first empty
 * line, capped at 8 KiB) and checks the parser's promises: no crash or
 * out-of-bounds access (ASan/UBSan), every refusal has a status in the set
 * the server knows and a reason, and an accepted head has sane fields.
 *
 * With SLDD_FUZZ=ON (clang) it is a libFuzzer binary.  Otherwise a small
 * main runs a fixed number of deterministic mutations of a few seed heads,
 * so every build (including the sanitizer build) exercises it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sn_http.h"

#define HEAD_CAP 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t head_end(const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (d[i] != '\n')
            continue;
        if (i + 1 < n && d[i + 1] == '\n')
            return i + 2;
        if (i + 2 < n && d[i + 1] == '\r' && d[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static int known_status(int rc)
{
    return rc == 0 || rc == 400 || rc == 414 || rc == 417 || rc == 431 || rc == 501 || rc == 505;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[HEAD_CAP + 1];
    sn_http_head h;
    size_t end = head_end(data, size < HEAD_CAP ? size : HEAD_CAP);
    int rc;

    if (!end)
        return 0; /* the server would still be waiting, or answer 431 */
    memcpy(buf, data, end);
    rc = sn_http_parse_head(buf, end, &h);
    if (!known_status(rc) || (rc && !h.reason))
        abort();
    if (rc)
        return 0;
    if (!h.method || !h.path || !h.query || h.path[0] != '/' || h.content_length < -1 ||
        h.n_headers > SN_HTTP_MAX_HEADERS || strlen(h.method) > SN_HTTP_METHOD_MAX)
        abort();
    for (size_t i = 0; i < h.n_headers; i++) {
        const char *name = h.headers[i].name, *value = h.headers[i].value;
        if (!name || !*name || !value || strpbrk(name, " \t\r\n:") || strpbrk(value, "\r\n"))
            abort();
        if (sn_http_header_get(&h, name) == NULL)
            abort();
    }
    return 0;
}

#ifndef SN_FUZZ_LIBFUZZER
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    /* xorshift64*: deterministic, so a failure reproduces */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

int main(void)
{
    static const char *seeds[] = {
        "GET /v1/health HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /v1/bundles?x=1 HTTP/1.1\r\nHost: node-a:8443\r\nContent-Length: 12\r\n"
        "Content-Type: application/vnd.sldd.bundle\r\nExpect: 100-continue\r\n\r\n",
        "GET / HTTP/1.0\n\n",
    };
    static const char specials[] = "\r\n:\t \0/?%HTTP1.0-";
    static uint8_t buf[HEAD_CAP];
    const int rounds = 200000;

    for (int r = 0; r < rounds; r++) {
        const char *seed = seeds[rnd() % (sizeof seeds / sizeof seeds[0])];
        size_t n = strlen(seed), edits = 1 + rnd() % 6;
        memcpy(buf, seed, n);
        for (size_t k = 0; k < edits; k++) {
            size_t at = n ? rnd() % n : 0;
            uint8_t c =
                (rnd() & 1) ? (uint8_t)specials[rnd() % (sizeof specials - 1)] : (uint8_t)rnd();
            switch (rnd() % 4) {
            case 0: /* replace */
                if (n)
                    buf[at] = c;
                break;
            case 1: /* insert */
                if (n < sizeof buf - 1) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = c;
                    n++;
                }
                break;
            case 2: /* delete */
                if (n) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
                break;
            default: /* repeat a chunk, to grow lines and header counts */
                if (n && n * 2 < sizeof buf) {
                    size_t len = 1 + rnd() % (n - at);
                    memmove(buf + at + len, buf + at, n - at);
                    n += len;
                }
                break;
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("%d mutated heads parsed\n", rounds);
    return 0;
}
#endif
