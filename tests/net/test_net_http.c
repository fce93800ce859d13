/*
 * test_net_http.c - the HTTP/1.1 request-head parser (net/sn_http.c).
 *
 * A table of heads with the status each must get: the accepted forms the
 * node's clients send, and each ambiguity the parser refuses rather than
 * interprets (duplicate Content-Length, Transfer-Encoding, obs-fold, stray
 * CR, whitespace before the colon, missing or repeated Host).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sd_test.h"
#include "sn_http.h"

static int parse(const char *text, sn_http_head *h)
{
    size_t n = strlen(text);
    char *buf = malloc(n + 1);
    int rc;
    if (!buf)
        return -1;
    memcpy(buf, text, n);
    rc = sn_http_parse_head(buf, n, h);
    /* h points into buf; the callers below only look at scalars or copy
     * strings out before the next parse, so keep buf alive until then. */
    static char *last;
    free(last);
    last = buf;
    return rc;
}

typedef struct head_case {
    const char *text;
    int status;
} head_case;

static const head_case cases[] = {
    {"GET /v1/health HTTP/1.1\r\nHost: a\r\n\r\n", 0},
    {"GET /v1/health HTTP/1.1\nHost: a\n\n", 0},
    {"GET /v1/health HTTP/1.0\r\n\r\n", 0},
    {"POST /v1/bundles HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", 0},
    {"POST /v1/bundles?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0},
    {"GET /v1/health HTTP/1.1\r\n\r\n", 400},                       /* no Host */
    {"GET /v1/health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400}, /* two Hosts */
    {"GET /v1/health HTTP/2.0\r\nHost: a\r\n\r\n", 505},
    {"GET /v1/health HTTQ/1.1\r\nHost: a\r\n\r\n", 400},
    {"GET /v1/health\r\nHost: a\r\n\r\n", 400}, /* HTTP/0.9 */
    {"get /v1/health HTTP/1.1\r\nHost: a\r\n\r\n", 400},
    {"GET  /v1/health HTTP/1.1\r\nHost: a\r\n\r\n", 400},        /* double SP */
    {"GET http://x/v1/health HTTP/1.1\r\nHost: a\r\n\r\n", 400}, /* absolute form */
    {"GET /v1/he\x01lth HTTP/1.1\r\nHost: a\r\n\r\n", 400},
    {"POST /v1/bundles HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400},
    {"POST /v1/bundles HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", 400},
    {"POST /v1/bundles HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\n", 400},
    {"POST /v1/bundles HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789\r\n\r\n",
     400}, /* 19 digits */
    {"POST /v1/bundles HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
    {"POST /v1/bundles HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
     0},
    {"POST /v1/bundles HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417},
    {"GET /v1/health HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400},
    {"GET /v1/health HTTP/1.1\r\nHost : a\r\n\r\n", 400},   /* space before : */
    {"GET /v1/health HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400}, /* stray CR */
    {"GET /v1/health HTTP/1.1\r\nHost: a\r\nX-A: \x7f\r\n\r\n", 400},
    {"GET /v1/health HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400},
    {"GET /v1/health HTTP/1.1\r\nHost: a\r\n: empty-name\r\n\r\n", 400},
    {"GET /v1/health HTTP/1.1\r\nHost: a\r\n", 400}, /* no empty line */
    {"GET /v1/health HTTP/1.1\r\nHost: a\r\n\r\nextra", 400},
    {"\r\nGET /v1/health HTTP/1.1\r\nHost: a\r\n\r\n", 400},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sn_http_head h;
        int rc = parse(cases[i].text, &h);
        CHECKF(rc == cases[i].status, "case %zu: got %d want %d (%s)", i, rc, cases[i].status,
               rc ? h.reason : "ok");
        if (rc)
            CHECK(h.reason != NULL);
    }
}

static void test_fields(void)
{
    sn_http_head h;
    int rc = parse("POST /v1/bundles?id=7 HTTP/1.1\r\nHost:  node-a:8443  \r\n"
                   "content-length: 42\r\nX-Empty:\r\nexpect: 100-Continue\r\n\r\n",
                   &h);
    CHECK(rc == 0);
    if (rc)
        return;
    CHECK(!strcmp(h.method, "POST"));
    CHECK(!strcmp(h.path, "/v1/bundles"));
    CHECK(!strcmp(h.query, "id=7"));
    CHECK(h.minor_version == 1);
    CHECK(h.content_length == 42);
    CHECK(h.expect_continue == 1);
    CHECK(h.n_headers == 4);
    CHECK(sn_http_header_get(&h, "HOST") && !strcmp(sn_http_header_get(&h, "HOST"), "node-a:8443"));
    CHECK(sn_http_header_get(&h, "x-empty") && !strcmp(sn_http_header_get(&h, "x-empty"), ""));
    CHECK(sn_http_header_get(&h, "missing") == NULL);

    rc = parse("GET /v1/health HTTP/1.1\r\nHost: a\r\n\r\n", &h);
    CHECK(rc == 0 && h.content_length == -1 && !strcmp(h.query, "") && !h.expect_continue);
}

static void test_limits(void)
{
    char buf[8192], target[SN_HTTP_TARGET_MAX + 2];
    sn_http_head h;
    size_t n = 0;
    int rc;

    /* Field count limit: 431. */
    n += (size_t)snprintf(buf + n, sizeof buf - n, "GET /v1/health HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < SN_HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "X-%d: v\r\n", i);
    snprintf(buf + n, sizeof buf - n, "\r\n");
    rc = parse(buf, &h);
    CHECKF(rc == 431, "got %d", rc);

    /* Target length limit: 414. */
    memset(target, 'a', sizeof target - 1);
    target[0] = '/';
    target[sizeof target - 1] = '\0';
    snprintf(buf, sizeof buf, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", target);
    rc = parse(buf, &h);
    CHECKF(rc == 414, "got %d", rc);
    target[SN_HTTP_TARGET_MAX] = '\0';
    snprintf(buf, sizeof buf, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", target);
    rc = parse(buf, &h);
    CHECKF(rc == 0, "got %d", rc);

    /* An embedded NUL is refused, not taken as the end of a string. */
    {
        static const char with_nul[] = "GET /v1/health HTTP/1.1\r\nHost: a\0b\r\n\r\n";
        char copy[sizeof with_nul];
        memcpy(copy, with_nul, sizeof with_nul);
        rc = sn_http_parse_head(copy, sizeof with_nul - 1, &h);
        CHECKF(rc == 400, "got %d", rc);
    }
    CHECK(!strcmp(sn_http_reason_phrase(413), "Payload Too Large"));
    CHECK(!strcmp(sn_http_reason_phrase(299), "Unknown"));
}

int main(void)
{
    test_table();
    test_fields();
    test_limits();
    return sd_test_finish();
}
