/*
 * nd_json_get.h - read one member out of the JSON the admin API returns
 * (the CLI needs a state or a number, not a JSON tree), on the base JSON
 * reader (sb_json.h): the first member named key in document order, at any
 * depth, from wherever json points; keys inside string values never match;
 * strings come back unescaped.
 */
#ifndef ND_JSON_GET_H
#define ND_JSON_GET_H

#include <stddef.h>

/* Copy the value of "key" (string without quotes, cut to outlen, or the
 * literal text of any other value) into out; 1 found, 0 not. */
int nd_json_get(const char *json, const char *key, char *out, size_t outlen);
/* The number value of "key", or def when absent or null. */
double nd_json_num(const char *json, const char *key, double def);

#endif
