/*
 * test_base.c - the base library (distill/base/, sldd_base):
 *  - the strict number parsers: overflow at each bound, trailing garbage,
 *    empty, signs ('+', '-' where the range has no negatives, "-0"),
 *    blanks before and after, doubles that strtod would take (hex, inf,
 *    nan, leading blanks) refused;
 *  - the "key: value" line reader: comments, blanks, CRLF, a line without
 *    a colon;
 *  - the JSON reader: nested objects and arrays, own members versus nested
 *    ones, escapes (\uXXXX and surrogate pairs), keys inside string values
 *    not matched, truncated text, the depth limit;
 *  - errors: the codes are distinct, wrapping cuts at the buffer, a wrap
 *    whose argument points into the message itself, wrap_code on an empty
 *    message and on NULL, and sd_error/sc_error being the same type.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../sd_test.h"
#include "sb_error.h"
#include "sb_json.h"
#include "sb_parse.h"
#include "sd_error.h"

static void test_ints(void)
{
    long long v = 42;
    CHECK(sb_parse_i64("0", 0, 10, &v) == 0 && v == 0);
    CHECK(sb_parse_i64("007", 0, 10, &v) == 0 && v == 7);
    CHECK(sb_parse_i64("-5", -10, 10, &v) == 0 && v == -5);
    CHECK(sb_parse_i64("9223372036854775807", LLONG_MIN, LLONG_MAX, &v) == 0 && v == LLONG_MAX);
    CHECK(sb_parse_i64("-9223372036854775808", LLONG_MIN, LLONG_MAX, &v) == 0 && v == LLONG_MIN);
    v = 42;
    /* overflow, one past each bound */
    CHECK(sb_parse_i64("9223372036854775808", LLONG_MIN, LLONG_MAX, &v) == SB_EINVAL);
    CHECK(sb_parse_i64("-9223372036854775809", LLONG_MIN, LLONG_MAX, &v) == SB_EINVAL);
    CHECK(sb_parse_i64("99999999999999999999999", LLONG_MIN, LLONG_MAX, &v) == SB_EINVAL);
    /* range is an error, not a clamp */
    CHECK(sb_parse_i64("11", 0, 10, &v) == SB_EINVAL);
    CHECK(sb_parse_i64("-1", 0, 10, &v) == SB_EINVAL);
    /* no sign surprises: '+', '-' with a non-negative range, "-0" there */
    CHECK(sb_parse_i64("+5", 0, 10, &v) == SB_EINVAL);
    CHECK(sb_parse_i64("-0", 0, 10, &v) == SB_EINVAL);
    CHECK(sb_parse_i64("-", -10, 10, &v) == SB_EINVAL);
    CHECK(sb_parse_i64("--1", -10, 10, &v) == SB_EINVAL);
    /* whole string: empty, blanks, garbage, other bases */
    CHECK(sb_parse_i64("", 0, 10, &v) == SB_EINVAL);
    CHECK(sb_parse_i64(NULL, 0, 10, &v) == SB_EINVAL);
    CHECK(sb_parse_i64(" 5", 0, 10, &v) == SB_EINVAL);
    CHECK(sb_parse_i64("5 ", 0, 10, &v) == SB_EINVAL);
    CHECK(sb_parse_i64("5\n", 0, 10, &v) == SB_EINVAL);
    CHECK(sb_parse_i64("5x", 0, 10, &v) == SB_EINVAL);
    CHECK(sb_parse_i64("0x5", 0, 10, &v) == SB_EINVAL);
    CHECK(sb_parse_i64("1e3", 0, 10000, &v) == SB_EINVAL);
    CHECK(v == 42); /* untouched by every failure */

    int i = 3;
    CHECK(sb_parse_int("2147483647", INT_MIN, INT_MAX, &i) == 0 && i == INT_MAX);
    CHECK(sb_parse_int("2147483648", INT_MIN, INT_MAX, &i) == SB_EINVAL && i == INT_MAX);
    CHECK(sb_parse_int("-2147483648", INT_MIN, INT_MAX, &i) == 0 && i == INT_MIN);

    uint64_t u = 9;
    CHECK(sb_parse_u64("18446744073709551615", UINT64_MAX, &u) == 0 && u == UINT64_MAX);
    CHECK(sb_parse_u64("18446744073709551616", UINT64_MAX, &u) == SB_EINVAL);
    CHECK(sb_parse_u64("-1", UINT64_MAX, &u) == SB_EINVAL); /* strtoull gives 2^64-1 */
    CHECK(sb_parse_u64("+1", UINT64_MAX, &u) == SB_EINVAL);
    CHECK(sb_parse_u64("101", 100, &u) == SB_EINVAL && u == UINT64_MAX);
}

static void test_doubles(void)
{
    double d = 7;
    CHECK(sb_parse_double("0.5", 0, 1, &d) == 0 && d == 0.5);
    CHECK(sb_parse_double("-1e-3", -1, 1, &d) == 0 && d == -1e-3);
    CHECK(sb_parse_double(".25", 0, 1, &d) == 0 && d == 0.25);
    CHECK(sb_parse_double("3", 0, 10, &d) == 0 && d == 3);
    d = 7;
    CHECK(sb_parse_double("1e999", -INFINITY, INFINITY, &d) == SB_EINVAL);
    CHECK(sb_parse_double("inf", -INFINITY, INFINITY, &d) == SB_EINVAL);
    CHECK(sb_parse_double("nan", -INFINITY, INFINITY, &d) == SB_EINVAL);
    CHECK(sb_parse_double("0x10", 0, 100, &d) == SB_EINVAL);
    CHECK(sb_parse_double(" 1", 0, 10, &d) == SB_EINVAL);
    CHECK(sb_parse_double("+1", 0, 10, &d) == SB_EINVAL);
    CHECK(sb_parse_double("1 ", 0, 10, &d) == SB_EINVAL);
    CHECK(sb_parse_double("1.5x", 0, 10, &d) == SB_EINVAL);
    CHECK(sb_parse_double("", 0, 10, &d) == SB_EINVAL);
    CHECK(sb_parse_double("-", 0, 10, &d) == SB_EINVAL);
    CHECK(sb_parse_double("11", 0, 10, &d) == SB_EINVAL);
    CHECK(d == 7);
    const char *end;
    CHECK(sb_parse_double_prefix("2.5,", &d, &end) == 0 && d == 2.5 && *end == ',');
}

static void test_kv(void)
{
    char text[] = "# a comment\n\n  id : node-a \r\nempty:\n  # indented comment\nbad line\n"
                  "url: https://x:1/a\n";
    char *cur = text, *k, *v;
    CHECK(sb_kv_next(&cur, &k, &v) == 1 && !strcmp(k, "id") && !strcmp(v, "node-a"));
    CHECK(sb_kv_next(&cur, &k, &v) == 1 && !strcmp(k, "empty") && !strcmp(v, ""));
    CHECK(sb_kv_next(&cur, &k, &v) == -1);
    /* the value keeps its own colons */
    CHECK(sb_kv_next(&cur, &k, &v) == 1 && !strcmp(k, "url") && !strcmp(v, "https://x:1/a"));
    CHECK(sb_kv_next(&cur, &k, &v) == 0);
}

static void test_json(void)
{
    const char *doc =
        "{\"a\": 1, \"note\": \"x \\\"b\\\": 9\", \"o\": {\"b\": [1, {\"c\": -2.5e1}],"
        " \"s\": \"q\\u00e9\\ud83d\\ude00\\n\"}, \"b\": 3, \"n\": null}";
    char out[64];
    double d = 0;
    CHECK(sb_json_skip(doc) && *sb_json_skip(doc) == '\0');
    /* own members only: "b" of the top object is 3, not the nested one */
    CHECK(sb_json_number(sb_json_member(doc, "b"), &d) == 0 && d == 3);
    CHECK(sb_json_member(doc, "c") == NULL);
    /* first match at any depth, in document order; text inside a string
     * value ("b\": 9") never matches */
    const char *b = sb_json_find(doc, "b");
    CHECK(b && *b == '[');
    CHECK(sb_json_number(sb_json_find(doc, "c"), &d) == 0 && d == -25);
    /* from the middle of a document, as after a strstr */
    CHECK(sb_json_number(sb_json_find(strstr(doc, "\"o\":"), "c"), &d) == 0 && d == -25);
    CHECK(sb_json_string(sb_json_find(doc, "note"), out, sizeof out) == 0 &&
          !strcmp(out, "x \"b\": 9"));
    CHECK(sb_json_string(sb_json_find(doc, "s"), out, sizeof out) == 0 &&
          !strcmp(out, "q\xc3\xa9\xf0\x9f\x98\x80\n"));
    CHECK(sb_json_is_null(sb_json_member(doc, "n")));
    CHECK(sb_json_number(sb_json_member(doc, "n"), &d) == SB_EINVAL);
    /* cut strings say so and still hold the cut text */
    char small[4];
    CHECK(sb_json_string(sb_json_find(doc, "note"), small, sizeof small) == SB_EINVAL &&
          !strcmp(small, "x \""));
    /* bad escapes */
    CHECK(sb_json_string("\"\\x\"", out, sizeof out) == SB_EINVAL);
    CHECK(sb_json_string("\"\\ud800\"", out, sizeof out) == SB_EINVAL); /* lone surrogate */
    CHECK(sb_json_string("\"\\u0000\"", out, sizeof out) == SB_EINVAL);
    CHECK(sb_json_string("\"\\u12", out, sizeof out) == SB_EINVAL);
    /* truncated documents */
    CHECK(sb_json_skip("{\"a\": [1, 2") == NULL);
    CHECK(sb_json_skip("{\"a\": \"open") == NULL);
    CHECK(sb_json_skip("{\"a\" 1}") == NULL);
    CHECK(sb_json_member("{\"a\": 1, \"b\"", "b") == NULL);
    CHECK(sb_json_find("{\"a\": \"unterminated, \"b\": 2", "b") == NULL);
    CHECK(sb_json_string("\"abc", out, sizeof out) == SB_EINVAL);
    CHECK(sb_json_number("1.5x", &d) == SB_EINVAL);
    /* the depth limit: 32 levels pass, 34 do not */
    char deep[128];
    int k = 0;
    for (int i = 0; i < 33; i++)
        deep[k++] = '[';
    for (int i = 0; i < 33; i++)
        deep[k++] = ']';
    deep[k] = '\0';
    CHECK(sb_json_skip(deep) != NULL);
    k = 0;
    for (int i = 0; i < 34; i++)
        deep[k++] = '[';
    deep[k++] = '{';
    deep[k++] = '"';
    deep[k++] = 'x';
    deep[k++] = '"';
    deep[k++] = ':';
    deep[k++] = '1';
    deep[k++] = '}';
    for (int i = 0; i < 34; i++)
        deep[k++] = ']';
    deep[k] = '\0';
    CHECK(sb_json_skip(deep) == NULL);
    CHECK(sb_json_find(deep, "x") == NULL);
}

static void test_errors(void)
{
    /* one code space: the engine's and crypto's own codes differ */
    static const int codes[] = {
        SB_EINVAL,       SB_ENOMEM,    SB_EIO,   SB_EFORMAT,      SD_EBACKEND,
        SD_EUNSUPPORTED, SD_ECANCELED, SD_EHASH, SC_ECRYPTO,      SC_EEXIST,
        SC_ENOTFOUND,    SC_EPASS,     SC_EPERM, SC_EREFUSE_SIZE, SC_EREFUSE_SEMANTIC};
    size_t nc = sizeof codes / sizeof codes[0];
    int distinct = 1;
    for (size_t i = 0; i < nc; i++)
        for (size_t j = i + 1; j < nc; j++)
            distinct &= codes[i] != codes[j] &&
                        strcmp(sb_status_name(codes[i]), sb_status_name(codes[j])) != 0;
    CHECK(distinct);
    CHECK(SD_EINVAL == SC_EINVAL && SD_EIO == SC_EIO);
    CHECK(!strcmp(sb_status_name(SC_EREFUSE_RECIPIENT), "wrong-recipient"));
    CHECK(!strcmp(sb_status_name(12345), "unknown-error"));

    /* sd_error and sc_error are the same type: no copy between layers */
    sd_error e;
    sb_error *same = &e;
    CHECK(sb_error_set(same, SD_EIO, "reading %s", "x.png") == SD_EIO && e.code == SD_EIO);
    CHECK(sb_error_wrap(&e, "dataset %d", 3) == SD_EIO &&
          !strcmp(e.msg, "dataset 3: reading x.png"));

    /* a wrap argument pointing into the message itself */
    sb_error_set(&e, SB_EINVAL, "inner");
    sb_error_wrap(&e, "outer (%s)", e.msg);
    CHECK(!strcmp(e.msg, "outer (inner): inner"));

    /* cut to the buffer, terminated */
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sb_error_set(&e, SB_EINVAL, "%s", big);
    CHECK(strlen(e.msg) == sizeof e.msg - 1);
    sb_error_set(&e, SB_EINVAL, "tail");
    sb_error_wrap(&e, "%s", big); /* the prefix alone is cut to 255 */
    CHECK(strlen(e.msg) == 255 + 2 + 4 && !strcmp(e.msg + 257, "tail"));
    sb_error_set(&e, SB_EINVAL, "%s", big);
    sb_error_wrap(&e, "ctx");
    CHECK(strlen(e.msg) == sizeof e.msg - 1 && !strncmp(e.msg, "ctx: aaa", 8));

    /* wrap_code: no reason yet gives the status name; NULL keeps the code */
    sb_error_clear(&e);
    CHECK(sb_error_wrap_code(&e, SD_EBACKEND, "step %d", 2) == SD_EBACKEND &&
          e.code == SD_EBACKEND && !strcmp(e.msg, "step 2: backend-failure"));
    CHECK(sb_error_wrap_code(NULL, SD_ENOMEM, "x") == SD_ENOMEM);
    CHECK(sb_error_set(NULL, SD_EHASH, "x") == SD_EHASH);
}

int main(void)
{
    test_ints();
    test_doubles();
    test_kv();
    test_json();
    test_errors();
    return sd_test_finish();
}
