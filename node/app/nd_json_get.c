/*
 * nd_json_get.c - member lookup in flat JSON objects (see nd_json_get.h).
 */
#include "nd_json_get.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nd_json_get(const char *json, const char *key, char *out, size_t outlen)
{
    char pat[80];
    if (!json || snprintf(pat, sizeof pat, "\"%s\":", key) >= (int)sizeof pat)
        return 0;
    const char *p = strstr(json, pat);
    if (!p || outlen == 0)
        return 0;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    size_t n = 0;
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++) {
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                p++;
            if (n + 1 < outlen)
                out[n++] = *p;
        }
    } else {
        for (; *p && *p != ',' && *p != '}' && *p != '\n' && *p != ']'; p++)
            if (n + 1 < outlen)
                out[n++] = *p;
    }
    out[n] = 0;
    return 1;
}

double nd_json_num(const char *json, const char *key, double def)
{
    char v[64];
    char *end;
    if (!nd_json_get(json, key, v, sizeof v) || !strcmp(v, "null"))
        return def;
    double x = strtod(v, &end);
    return end == v ? def : x;
}
