/*
 * sc_util.h - small helpers shared by the crypto library: bounded file
 * reads, durable writes (O_EXCL for secrets, temp + fsync + rename for
 * replaceable files), base64/hex, key fingerprints and a tiny parser for
 * the "key: value" text files kept in a node directory.
 */
#ifndef SC_UTIL_H
#define SC_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"
#include "sb_parse.h"

#define SC_KEY_LEN 32 /* Ed25519 / X25519 public keys, SHA-256 */

/* Read at most max bytes of path into a malloc'ed buffer (NUL-terminated
 * one past *len).  A larger file is SC_EFORMAT before anything is read
 * past the cap.  With secret != 0 the buffer comes from sodium_malloc and
 * must be released with sc_secret_free(buf, len + 1). */
int sc_file_read(const char *path, size_t max, int secret, uint8_t **buf, size_t *len,
                 sc_error *e) SC_WUR;
/* Create path exclusively (O_CREAT|O_EXCL|O_NOFOLLOW) with mode, write,
 * fsync.  Never replaces an existing file. */
int sc_file_create_excl(const char *path, const void *data, size_t len, unsigned mode,
                        sc_error *e) SC_WUR;
/* Replace path atomically: temp file in the same folder, fsync, rename,
 * fsync of the folder. */
int sc_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode,
                         sc_error *e) SC_WUR;
/* Refuse (SC_EPERM) a secret file readable or writable by group/others,
 * or not a regular file. */
int sc_file_check_private(const char *path, sc_error *e) SC_WUR;
void sc_secret_free(void *p, size_t len);

/* Base64 (standard alphabet, padded).  out must hold sc_b64_len(n). */
size_t sc_b64_len(size_t n);
void sc_b64_encode(char *out, const uint8_t *in, size_t n);
/* Decode exactly want bytes; anything else is SC_EFORMAT. */
int sc_b64_decode_exact(uint8_t *out, size_t want, const char *in, size_t inlen,
                        sc_error *e) SC_WUR;
void sc_hex_encode(char *out, const uint8_t *in, size_t n); /* out: 2n+1 */

/* SHA-256 of a public key: the key id used in signatures and headers. */
void sc_key_id(uint8_t out[32], const uint8_t pk[32]);
void sc_sha256(uint8_t out[32], const uint8_t *in, size_t n);

/* "key: value" lines: the base reader (sb_parse.h), which walks text in
 * place and returns 1 with key and value set, 0 at the end, -1 on a
 * malformed line. */
#define sc_kv_next sb_kv_next

/* Join dir and name into out (SC_EINVAL if too long). */
int sc_path_join(char *out, size_t outlen, const char *dir, const char *name, sc_error *e) SC_WUR;
/* mkdir with mode; an existing directory is fine. */
int sc_mkdir(const char *path, unsigned mode, sc_error *e) SC_WUR;

#endif
