/*
 * sb_json.h - a small reader for the JSON this project writes and reads
 * back (admin API answers, prepared-index files): no allocation, no tree,
 * it walks NUL-terminated text in place.
 *
 * A value pointer (const char *) points at the first character of a value.
 * Nesting deeper than SB_JSON_MAX_DEPTH, an unterminated string and any
 * other malformed or truncated text make the walkers return NULL rather
 * than read past the end.
 */
#ifndef SB_JSON_H
#define SB_JSON_H

#include <stddef.h>

#include "sb_error.h"

#define SB_JSON_MAX_DEPTH 32

/* Step over the value at s (after blanks); the character after it, or NULL
 * when malformed. */
const char *sb_json_skip(const char *s);
/* The value of member key among the own members of the object at obj (not
 * those of nested objects), or NULL. */
const char *sb_json_member(const char *obj, const char *key);
/* The value of the first member named key found reading forward from s, at
 * any depth (s may point anywhere in a document, e.g. at a member), or NULL.
 * Text inside string values never matches. */
const char *sb_json_find(const char *s, const char *key);
/* The string value at v, unescaped (\" \\ \/ \b \f \n \r \t and \uXXXX,
 * surrogate pairs included, as UTF-8), into out.  out always holds the text
 * (cut to outlen - 1 bytes); SB_EINVAL when v is no complete string or the
 * text was cut. */
int sb_json_string(const char *v, char *out, size_t outlen);
/* The number value at v (SB_EINVAL for anything else, null included). */
int sb_json_number(const char *v, double *out);
/* 1 when the value at v is the literal null. */
int sb_json_is_null(const char *v);

#endif
