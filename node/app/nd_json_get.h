/*
 * nd_json_get.h - read one top-level member out of the small, flat JSON
 * objects the admin API returns (the CLI needs a state or a number, not a
 * JSON library).  Strings with escapes other than \" and \\ are returned
 * as written.
 */
#ifndef ND_JSON_GET_H
#define ND_JSON_GET_H

#include <stddef.h>

/* Copy the value of "key" (string without quotes, or the literal text of a
 * number / null) into out; 1 found, 0 not. */
int nd_json_get(const char *json, const char *key, char *out, size_t outlen);
/* The number value of "key", or def when absent or null. */
double nd_json_num(const char *json, const char *key, double def);

#endif
