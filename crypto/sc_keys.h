/*
 * sc_keys.h - key pairs and key files of a node and its admins.
 *
 * A node has two separate key pairs: Ed25519 for signing (statements,
 * envelopes) and X25519 for receiving sealed content keys.  Secret halves
 * live in sodium_malloc guarded memory, are wiped when destroyed, and sit
 * on disk in files of mode 0600 created with O_EXCL (never overwritten).
 * An admin key is an Ed25519 pair whose secret half is encrypted with a
 * passphrase (Argon2id + XSalsa20-Poly1305 secretbox).  File formats are in
 * docs/keys.md.
 */
#ifndef SC_KEYS_H
#define SC_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"

#define SC_SIGN_SK_LEN 64
#define SC_SIG_LEN     64

typedef struct sc_node_keys {
    uint8_t sign_pk[32];
    uint8_t enc_pk[32];
    uint8_t *sign_sk; /* 64 bytes, guarded */
    uint8_t *enc_sk;  /* 32 bytes, guarded */
} sc_node_keys;

typedef struct sc_admin_key {
    char name[65];
    char node[65]; /* the node this admin approves for */
    uint8_t pk[32];
    uint8_t *sk; /* 64 bytes, guarded */
} sc_admin_key;

/* Argon2id cost of an admin key file. */
typedef enum sc_kdf_strength {
    SC_KDF_INTERACTIVE = 0, /* 64 MiB, for tests and low-end machines */
    SC_KDF_MODERATE = 1,    /* 256 MiB, the default */
    SC_KDF_SENSITIVE = 2    /* 1 GiB */
} sc_kdf_strength;

int sc_node_keys_generate(sc_node_keys **out, sc_error *e) SC_WUR;
/* Both pairs derived from a 32-byte seed (tests, fuzzing, reproducible
 * fixtures); never used for real nodes. */
int sc_node_keys_from_seed(const uint8_t seed[32], sc_node_keys **out, sc_error *e) SC_WUR;
/* Write keys/sign.key, keys/enc.key (0600, O_EXCL) and the .pub files
 * into node_dir/keys (created 0700). */
int sc_node_keys_save(const sc_node_keys *k, const char *node_dir, const char *node_id,
                      sc_error *e) SC_WUR;
/* Load both pairs; refuses secret files readable by others (SC_EPERM) and
 * secret halves that do not match their public keys. */
int sc_node_keys_load(const char *node_dir, sc_node_keys **out, sc_error *e) SC_WUR;
/* Public halves only (from the .pub files). */
int sc_node_keys_load_public(const char *node_dir, uint8_t sign_pk[32], uint8_t enc_pk[32],
                             sc_error *e) SC_WUR;
void sc_node_keys_destroy(sc_node_keys *k);

/*
 * Signing-key rotation with an overlap.  rotate makes a new Ed25519 pair
 * (keys/sign.key, sign.pub); the old pair becomes keys/sign-prev.key and
 * sign-prev.pub and keys/sign-prev.until holds `until` (unix seconds): until
 * then the contact card names the old key beside the new one, signed by
 * both, so a peer holding the old card takes the new key from it and
 * accepts bundles signed by either; after it, only the new key.  Refused
 * (SC_EEXIST) while a previous key is still in its overlap.
 */
int sc_node_sign_rotate(const char *node_dir, const char *node_id, int64_t until, int64_t now,
                        uint8_t new_pk[32], sc_error *e) SC_WUR;
/* The previous signing key and the end of its overlap; SC_ENOTFOUND
 * (without a message) when the node never rotated.  With sk the secret
 * half too (guarded memory: sodium_free). */
int sc_node_sign_prev_load(const char *node_dir, uint8_t pk[32], uint8_t **sk, int64_t *until,
                           sc_error *e) SC_WUR;

/* Make admin `name` for node `node_id`: admins/NAME.key (encrypted, 0600,
 * O_EXCL) and admins/NAME.pub.  The public key is returned in pk. */
int sc_admin_key_create(const char *node_dir, const char *node_id, const char *name,
                        const char *pass, size_t passlen, sc_kdf_strength strength, uint8_t pk[32],
                        sc_error *e) SC_WUR;
/* Decrypt admin `name`'s key; SC_EPASS for a wrong passphrase. */
int sc_admin_key_load(const char *node_dir, const char *name, const char *pass, size_t passlen,
                      sc_admin_key **out, sc_error *e) SC_WUR;
/* Public key of admin `name` (admins/NAME.pub). */
int sc_admin_pub_load(const char *node_dir, const char *name, uint8_t pk[32], sc_error *e) SC_WUR;
/* An admin key in memory from a seed (tests, fuzzing). */
int sc_admin_key_from_seed(const char *name, const char *node, const uint8_t seed[32],
                           sc_admin_key **out, sc_error *e) SC_WUR;
void sc_admin_key_destroy(sc_admin_key *k);

/* Passphrase for an admin key, from (in order) passfile if given, the
 * environment variable SLDD_PASSPHRASE, or a prompt on /dev/tty without
 * echo (asked twice when confirm).  A passfile that is a regular file
 * open to group or others is refused (SC_EPERM, naming it and chmod 600).
 * The result is NUL-terminated guarded memory; release it with
 * sc_secret_free(*pass, *len + 1). */
int sc_passphrase_get(const char *passfile, const char *prompt, int confirm, char **pass,
                      size_t *len, sc_error *e) SC_WUR;

/* Fingerprint text of a public key: "SHA256:<base64 without padding>". */
void sc_fingerprint_text(char out[64], const uint8_t pk[32]);

#endif
