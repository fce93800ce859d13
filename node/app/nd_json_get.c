/*
 * nd_json_get.c - member lookup in the admin API's JSON answers (see
 * nd_json_get.h), through the base JSON reader (sb_json.h).
 */
#include "nd_json_get.h"

#include <string.h>

#include "sb_json.h"

int nd_json_get(const char *json, const char *key, char *out, size_t outlen)
{
    const char *v = sb_json_find(json, key);
    if (!v || outlen == 0)
        return 0;
    if (*v == '"') {
        /* a cut string is still returned, as the caller's buffer allows */
        (void)sb_json_string(v, out, outlen);
        return 1;
    }
    const char *end = sb_json_skip(v);
    if (!end)
        return 0;
    size_t n = (size_t)(end - v) < outlen - 1 ? (size_t)(end - v) : outlen - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    return 1;
}

double nd_json_num(const char *json, const char *key, double def)
{
    double x;
    return sb_json_number(sb_json_find(json, key), &x) ? def : x;
}
