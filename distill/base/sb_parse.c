/*
 * sb_parse.c - strict number parsers and the "key: value" line reader (see
 * sb_parse.h).  The only file allowed to call the strto* family.
 */
#include "sb_parse.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Decimal digits of s (at least one, nothing after them) into *v; 0 on
 * success, -1 on anything else or a value above max. */
static int digits(const char *s, unsigned long long max, unsigned long long *v)
{
    unsigned long long x = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (x > (max - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

int sb_parse_i64(const char *s, long long lo, long long hi, long long *out)
{
    unsigned long long u;
    long long v;
    if (!s || !out || lo > hi)
        return SB_EINVAL;
    if (*s == '-') {
        /* |LLONG_MIN| = LLONG_MAX + 1 */
        if (lo >= 0 || digits(s + 1, (unsigned long long)LLONG_MAX + 1, &u))
            return SB_EINVAL;
        v = u == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)u;
    } else {
        if (digits(s, (unsigned long long)LLONG_MAX, &u))
            return SB_EINVAL;
        v = (long long)u;
    }
    if (v < lo || v > hi)
        return SB_EINVAL;
    *out = v;
    return SB_OK;
}

int sb_parse_int(const char *s, int lo, int hi, int *out)
{
    long long v;
    if (!out || sb_parse_i64(s, lo, hi, &v))
        return SB_EINVAL;
    *out = (int)v;
    return SB_OK;
}

int sb_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    if (!s || !out || digits(s, max, &v))
        return SB_EINVAL;
    *out = (uint64_t)v;
    return SB_OK;
}

int sb_parse_double_prefix(const char *s, double *out, const char **end)
{
    if (!s || !out || !end)
        return SB_EINVAL;
    /* strtod also takes blanks, '+', hex, inf and nan: allow only
     * -?digits[.digits][e[+-]digits] */
    const char *p = s;
    if (*p == '-')
        p++;
    if (!(*p >= '0' && *p <= '9') && !(*p == '.' && p[1] >= '0' && p[1] <= '9'))
        return SB_EINVAL;
    if (*p == '0' && (p[1] == 'x' || p[1] == 'X'))
        return SB_EINVAL;
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (e == s || !isfinite(v) || (errno == ERANGE && fabs(v) > 1.0))
        return SB_EINVAL;
    *out = v;
    *end = e;
    return SB_OK;
}

int sb_parse_double(const char *s, double lo, double hi, double *out)
{
    double v;
    const char *end;
    if (!out || sb_parse_double_prefix(s, &v, &end) || *end || !(v >= lo && v <= hi))
        return SB_EINVAL;
    *out = v;
    return SB_OK;
}

int sb_kv_next(char **cursor, char **key, char **value)
{
    char *p = *cursor, *nl, *colon, *end;
    for (;;) {
        if (!p || !*p)
            return 0;
        nl = strchr(p, '\n');
        if (nl)
            *nl = 0;
        /* skip blank lines and comments */
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p && *p != '#')
            break;
        p = nl ? nl + 1 : NULL;
    }
    *cursor = nl ? nl + 1 : p + strlen(p);
    colon = strchr(p, ':');
    if (!colon)
        return -1;
    *colon = 0;
    end = colon;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = 0;
    *key = p;
    p = colon + 1;
    while (*p == ' ' || *p == '\t')
        p++;
    end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = 0;
    *value = p;
    return 1;
}
