/*
 * nd_objects.h - content-addressed files in NODE/objects/.
 *
 * Payloads, signed statements and sealed envelopes are stored as
 * objects/<sha256 hex> (mode 0600), written with temp file + fsync +
 * rename + fsync of the folder, so a crash leaves either the whole file or
 * none (plus a stray temp file that the startup check removes).  Writing
 * the same bytes twice is a no-op, which makes retried imports idempotent.
 * Reading checks the hash again.
 */
#ifndef ND_OBJECTS_H
#define ND_OBJECTS_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"

#define ND_OBJECTS_DIR "objects"

/* Store data; name_out (65 bytes) gets its hex SHA-256. */
int nd_object_put(const char *node_dir, const uint8_t *data, size_t len, char name_out[65],
                  sc_error *e) SC_WUR;
/* Read object `name` (at most max bytes) and check its hash; SC_EFORMAT
 * when the content no longer matches its name. */
int nd_object_get(const char *node_dir, const char *name, size_t max, uint8_t **out, size_t *len,
                  sc_error *e) SC_WUR;
/* Path of object `name`. */
int nd_object_path(const char *node_dir, const char *name, char *out, size_t outlen,
                   sc_error *e) SC_WUR;
/* 0 if present and intact, SC_ENOTFOUND if missing, SC_EFORMAT if damaged. */
int nd_object_check(const char *node_dir, const char *name, sc_error *e) SC_WUR;

#endif
