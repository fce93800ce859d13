/*
 * sc_keys.c - node and admin key pairs and their files (see sc_keys.h).
 *
 * Secret files are parsed inside guarded memory: the file is read into a
 * sodium_malloc buffer, base64 is decoded straight into the guarded key
 * buffer, and every intermediate is wiped before it is freed.
 */
#include "sc_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "sc_util.h"

#define KEY_FILE_MAX       4096
#define SALT_LEN           crypto_pwhash_SALTBYTES
#define ADMIN_MEMLIMIT_MAX ((size_t)1 << 30) /* refuse files asking for more */

void sc_fingerprint_text(char out[64], const uint8_t pk[32])
{
    uint8_t h[32];
    char b64[64];
    size_t n;
    sc_key_id(h, pk);
    sc_b64_encode(b64, h, sizeof h);
    n = strlen(b64);
    while (n && b64[n - 1] == '=')
        b64[--n] = 0;
    snprintf(out, 64, "SHA256:%s", b64);
}

int sc_node_keys_generate(sc_node_keys **out, sc_error *e)
{
    sc_node_keys *k;
    *out = NULL;
    if (sodium_init() < 0)
        return sc_error_set(e, SC_ECRYPTO, "libsodium failed to initialise");
    k = calloc(1, sizeof *k);
    if (!k)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    k->sign_sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    k->enc_sk = sodium_malloc(crypto_box_SECRETKEYBYTES);
    if (!k->sign_sk || !k->enc_sk) {
        sc_node_keys_destroy(k);
        return sc_error_set(e, SC_ENOMEM, "out of guarded memory");
    }
    if (crypto_sign_keypair(k->sign_pk, k->sign_sk) || crypto_box_keypair(k->enc_pk, k->enc_sk)) {
        sc_node_keys_destroy(k);
        return sc_error_set(e, SC_ECRYPTO, "key generation failed");
    }
    *out = k;
    return 0;
}

int sc_node_keys_from_seed(const uint8_t seed[32], sc_node_keys **out, sc_error *e)
{
    uint8_t s2[32];
    sc_node_keys *k;
    int rc = sc_node_keys_generate(&k, e);
    if (rc)
        return rc;
    /* separate seeds for the two pairs: they must never share key material */
    sc_sha256(s2, seed, 32);
    if (crypto_sign_seed_keypair(k->sign_pk, k->sign_sk, seed) ||
        crypto_box_seed_keypair(k->enc_pk, k->enc_sk, s2)) {
        sc_node_keys_destroy(k);
        return sc_error_set(e, SC_ECRYPTO, "seeded key generation failed");
    }
    sodium_memzero(s2, sizeof s2);
    *out = k;
    return 0;
}

void sc_node_keys_destroy(sc_node_keys *k)
{
    if (!k)
        return;
    sc_secret_free(k->sign_sk, crypto_sign_SECRETKEYBYTES);
    sc_secret_free(k->enc_sk, crypto_box_SECRETKEYBYTES);
    free(k);
}

/* Write a secret key file built in guarded memory. */
static int write_secret_file(const char *path, const char *kind, const char *id_key, const char *id,
                             const uint8_t *pk, const uint8_t *sk, size_t sklen, sc_error *e)
{
    size_t cap = 512 + sc_b64_len(sklen);
    char *buf = sodium_malloc(cap), *skb = sodium_malloc(sc_b64_len(sklen));
    char pkb[64];
    int n, rc;
    if (!buf || !skb) {
        sc_secret_free(buf, cap);
        sc_secret_free(skb, sc_b64_len(sklen));
        return sc_error_set(e, SC_ENOMEM, "out of guarded memory");
    }
    sc_b64_encode(pkb, pk, 32);
    sc_b64_encode(skb, sk, sklen);
    n = snprintf(buf, cap, "sldd-secret-key: v1\nkind: %s\n%s: %s\npublic: %s\nsecret: %s\n", kind,
                 id_key, id, pkb, skb);
    if (n < 0 || (size_t)n >= cap)
        rc = sc_error_set(e, SC_EINVAL, "key file too long");
    else
        rc = sc_file_create_excl(path, buf, (size_t)n, 0600, e);
    sc_secret_free(buf, cap);
    sc_secret_free(skb, sc_b64_len(sklen));
    return rc;
}

static int write_public_file(const char *path, const char *kind, const char *id_key, const char *id,
                             const uint8_t *pk, sc_error *e)
{
    char buf[512], pkb[64], fp[64];
    int n;
    sc_b64_encode(pkb, pk, 32);
    sc_fingerprint_text(fp, pk);
    n = snprintf(buf, sizeof buf,
                 "sldd-public-key: v1\nkind: %s\n%s: %s\npublic: %s\nfingerprint: %s\n", kind,
                 id_key, id, pkb, fp);
    if (n < 0 || (size_t)n >= sizeof buf)
        return sc_error_set(e, SC_EINVAL, "public key file too long");
    return sc_file_write_atomic(path, buf, (size_t)n, 0644, e);
}

int sc_node_keys_save(const sc_node_keys *k, const char *node_dir, const char *node_id, sc_error *e)
{
    char dir[4096], path[4200];
    int rc;
    if ((rc = sc_path_join(dir, sizeof dir, node_dir, "keys", e)) || (rc = sc_mkdir(dir, 0700, e)))
        return rc;
    if ((rc = sc_path_join(path, sizeof path, dir, "sign.key", e)) ||
        (rc = write_secret_file(path, "node-sign-ed25519", "node", node_id, k->sign_pk, k->sign_sk,
                                crypto_sign_SECRETKEYBYTES, e)))
        return rc;
    if ((rc = sc_path_join(path, sizeof path, dir, "enc.key", e)) ||
        (rc = write_secret_file(path, "node-enc-x25519", "node", node_id, k->enc_pk, k->enc_sk,
                                crypto_box_SECRETKEYBYTES, e)))
        return rc;
    if ((rc = sc_path_join(path, sizeof path, dir, "sign.pub", e)) ||
        (rc = write_public_file(path, "node-sign-ed25519", "node", node_id, k->sign_pk, e)))
        return rc;
    if ((rc = sc_path_join(path, sizeof path, dir, "enc.pub", e)) ||
        (rc = write_public_file(path, "node-enc-x25519", "node", node_id, k->enc_pk, e)))
        return rc;
    return 0;
}

/* Parse a key file in place.  Fills pk (if "public" present) and decodes
 * "secret" into sk (guarded, sklen bytes) when sk != NULL.  kind must
 * match. */
static int parse_key_file(char *text, const char *path, const char *kind, uint8_t pk[32],
                          uint8_t *sk, size_t sklen, sc_error *e)
{
    char *cur = text, *key, *val;
    int r, have_kind = 0, have_pk = 0, have_sk = 0;
    while ((r = sc_kv_next(&cur, &key, &val)) == 1) {
        if (!strcmp(key, "kind")) {
            if (strcmp(val, kind))
                return sc_error_set(e, SC_EFORMAT, "%s: kind %s, want %s", path, val, kind);
            have_kind = 1;
        } else if (!strcmp(key, "public")) {
            if (sc_b64_decode_exact(pk, 32, val, strlen(val), e))
                return sc_error_wrap(e, "%s: public", path);
            have_pk = 1;
        } else if (!strcmp(key, "secret") && sk) {
            if (sc_b64_decode_exact(sk, sklen, val, strlen(val), e))
                return sc_error_wrap(e, "%s: secret", path);
            have_sk = 1;
        }
    }
    if (r < 0)
        return sc_error_set(e, SC_EFORMAT, "%s: malformed line", path);
    if (!have_kind || !have_pk || (sk && !have_sk))
        return sc_error_set(e, SC_EFORMAT, "%s: missing kind, public or secret", path);
    return 0;
}

static int load_secret(const char *node_dir, const char *name, const char *kind, uint8_t pk[32],
                       uint8_t *sk, size_t sklen, sc_error *e)
{
    char path[4200];
    uint8_t *buf;
    size_t len;
    int rc;
    if ((rc = snprintf(path, sizeof path, "%s/keys/%s", node_dir, name)) < 0 ||
        (size_t)rc >= sizeof path)
        return sc_error_set(e, SC_EINVAL, "path too long");
    if ((rc = sc_file_check_private(path, e)) ||
        (rc = sc_file_read(path, KEY_FILE_MAX, 1, &buf, &len, e)))
        return rc;
    rc = parse_key_file((char *)buf, path, kind, pk, sk, sklen, e);
    sc_secret_free(buf, len + 1);
    return rc;
}

int sc_node_keys_load(const char *node_dir, sc_node_keys **out, sc_error *e)
{
    sc_node_keys *k;
    uint8_t chk[32];
    int rc;
    *out = NULL;
    if (sodium_init() < 0)
        return sc_error_set(e, SC_ECRYPTO, "libsodium failed to initialise");
    k = calloc(1, sizeof *k);
    if (!k)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    k->sign_sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    k->enc_sk = sodium_malloc(crypto_box_SECRETKEYBYTES);
    if (!k->sign_sk || !k->enc_sk) {
        sc_node_keys_destroy(k);
        return sc_error_set(e, SC_ENOMEM, "out of guarded memory");
    }
    if ((rc = load_secret(node_dir, "sign.key", "node-sign-ed25519", k->sign_pk, k->sign_sk,
                          crypto_sign_SECRETKEYBYTES, e)) ||
        (rc = load_secret(node_dir, "enc.key", "node-enc-x25519", k->enc_pk, k->enc_sk,
                          crypto_box_SECRETKEYBYTES, e))) {
        sc_node_keys_destroy(k);
        return rc;
    }
    /* The secret halves must match the public keys they claim. */
    if (crypto_sign_ed25519_sk_to_pk(chk, k->sign_sk) || sodium_memcmp(chk, k->sign_pk, 32)) {
        sc_node_keys_destroy(k);
        return sc_error_set(e, SC_EFORMAT, "%s/keys/sign.key: secret does not match public key",
                            node_dir);
    }
    if (crypto_scalarmult_base(chk, k->enc_sk) || sodium_memcmp(chk, k->enc_pk, 32)) {
        sc_node_keys_destroy(k);
        return sc_error_set(e, SC_EFORMAT, "%s/keys/enc.key: secret does not match public key",
                            node_dir);
    }
    *out = k;
    return 0;
}

static int load_public(const char *path, const char *kind, uint8_t pk[32], sc_error *e)
{
    uint8_t *buf;
    size_t len;
    int rc = sc_file_read(path, KEY_FILE_MAX, 0, &buf, &len, e);
    if (rc)
        return rc;
    rc = parse_key_file((char *)buf, path, kind, pk, NULL, 0, e);
    free(buf);
    return rc;
}

int sc_node_keys_load_public(const char *node_dir, uint8_t sign_pk[32], uint8_t enc_pk[32],
                             sc_error *e)
{
    char path[4200];
    int rc;
    if ((size_t)snprintf(path, sizeof path, "%s/keys/sign.pub", node_dir) >= sizeof path)
        return sc_error_set(e, SC_EINVAL, "path too long");
    if ((rc = load_public(path, "node-sign-ed25519", sign_pk, e)))
        return rc;
    snprintf(path, sizeof path, "%s/keys/enc.pub", node_dir);
    return load_public(path, "node-enc-x25519", enc_pk, e);
}

static int kdf_limits(sc_kdf_strength s, unsigned long long *ops, size_t *mem)
{
    switch (s) {
    case SC_KDF_INTERACTIVE:
        *ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
        *mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
        return 0;
    case SC_KDF_MODERATE:
        *ops = crypto_pwhash_OPSLIMIT_MODERATE;
        *mem = crypto_pwhash_MEMLIMIT_MODERATE;
        return 0;
    case SC_KDF_SENSITIVE:
        *ops = crypto_pwhash_OPSLIMIT_SENSITIVE;
        *mem = crypto_pwhash_MEMLIMIT_SENSITIVE;
        return 0;
    }
    return -1;
}

static int admin_path(char *out, size_t outlen, const char *node_dir, const char *name,
                      const char *ext, sc_error *e)
{
    if ((size_t)snprintf(out, outlen, "%s/admins/%s.%s", node_dir, name, ext) >= outlen)
        return sc_error_set(e, SC_EINVAL, "path too long");
    return 0;
}

int sc_admin_key_create(const char *node_dir, const char *node_id, const char *name,
                        const char *pass, size_t passlen, sc_kdf_strength strength, uint8_t pk[32],
                        sc_error *e)
{
    unsigned long long ops;
    size_t mem, cap = 2048;
    uint8_t salt[SALT_LEN], nonce[crypto_secretbox_NONCEBYTES];
    uint8_t boxed[crypto_secretbox_MACBYTES + crypto_sign_SECRETKEYBYTES];
    uint8_t *sk = NULL, *key = NULL;
    char *buf = NULL, dir[4200], path[4200], pkb[64], saltb[64], nonceb[64], boxb[160];
    int n, rc;

    if (sodium_init() < 0)
        return sc_error_set(e, SC_ECRYPTO, "libsodium failed to initialise");
    if (kdf_limits(strength, &ops, &mem))
        return sc_error_set(e, SC_EINVAL, "unknown KDF strength");
    if ((size_t)snprintf(dir, sizeof dir, "%s/admins", node_dir) >= sizeof dir)
        return sc_error_set(e, SC_EINVAL, "path too long");
    if ((rc = sc_mkdir(dir, 0700, e)) ||
        (rc = admin_path(path, sizeof path, node_dir, name, "key", e)))
        return rc;
    if (access(path, F_OK) == 0)
        return sc_error_set(e, SC_EEXIST, "%s exists; an admin key is never overwritten", path);
    sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    key = sodium_malloc(crypto_secretbox_KEYBYTES);
    buf = sodium_malloc(cap);
    if (!sk || !key || !buf) {
        rc = sc_error_set(e, SC_ENOMEM, "out of guarded memory");
        goto out;
    }
    if (crypto_sign_keypair(pk, sk)) {
        rc = sc_error_set(e, SC_ECRYPTO, "key generation failed");
        goto out;
    }
    randombytes_buf(salt, sizeof salt);
    randombytes_buf(nonce, sizeof nonce);
    if (crypto_pwhash(key, crypto_secretbox_KEYBYTES, pass, passlen, salt, ops, mem,
                      crypto_pwhash_ALG_ARGON2ID13)) {
        rc = sc_error_set(e, SC_ENOMEM, "Argon2id needs %zu MiB and could not get it", mem >> 20);
        goto out;
    }
    if (crypto_secretbox_easy(boxed, sk, crypto_sign_SECRETKEYBYTES, nonce, key)) {
        rc = sc_error_set(e, SC_ECRYPTO, "secretbox failed");
        goto out;
    }
    sc_b64_encode(pkb, pk, 32);
    sc_b64_encode(saltb, salt, sizeof salt);
    sc_b64_encode(nonceb, nonce, sizeof nonce);
    sc_b64_encode(boxb, boxed, sizeof boxed);
    n = snprintf(buf, cap,
                 "sldd-secret-key: v1\nkind: admin-ed25519-argon2id\nname: %s\nnode: %s\n"
                 "public: %s\nkdf: argon2id13\nkdf-opslimit: %llu\nkdf-memlimit: %zu\n"
                 "salt: %s\nnonce: %s\nbox: %s\n",
                 name, node_id, pkb, ops, mem, saltb, nonceb, boxb);
    if (n < 0 || (size_t)n >= cap) {
        rc = sc_error_set(e, SC_EINVAL, "key file too long");
        goto out;
    }
    if ((rc = sc_file_create_excl(path, buf, (size_t)n, 0600, e)))
        goto out;
    if ((rc = admin_path(path, sizeof path, node_dir, name, "pub", e)))
        goto out;
    {
        char pbuf[512], fp[64];
        sc_fingerprint_text(fp, pk);
        n = snprintf(pbuf, sizeof pbuf,
                     "sldd-public-key: v1\nkind: admin-ed25519\nname: %s\nnode: %s\npublic: %s\n"
                     "fingerprint: %s\n",
                     name, node_id, pkb, fp);
        if (n < 0 || (size_t)n >= sizeof pbuf)
            rc = sc_error_set(e, SC_EINVAL, "public key file too long");
        else
            rc = sc_file_write_atomic(path, pbuf, (size_t)n, 0644, e);
    }
out:
    sc_secret_free(sk, crypto_sign_SECRETKEYBYTES);
    sc_secret_free(key, crypto_secretbox_KEYBYTES);
    sc_secret_free(buf, cap);
    sodium_memzero(boxed, sizeof boxed);
    return rc;
}

void sc_admin_key_destroy(sc_admin_key *k)
{
    if (!k)
        return;
    sc_secret_free(k->sk, crypto_sign_SECRETKEYBYTES);
    free(k);
}

static int copy_id(char dst[65], const char *src)
{
    size_t n = strlen(src);
    if (n == 0 || n > 64)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

int sc_admin_key_from_seed(const char *name, const char *node, const uint8_t seed[32],
                           sc_admin_key **out, sc_error *e)
{
    sc_admin_key *k;
    *out = NULL;
    if (sodium_init() < 0)
        return sc_error_set(e, SC_ECRYPTO, "libsodium failed to initialise");
    k = calloc(1, sizeof *k);
    if (!k || !(k->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES))) {
        free(k);
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    }
    if (copy_id(k->name, name) || copy_id(k->node, node)) {
        sc_admin_key_destroy(k);
        return sc_error_set(e, SC_EINVAL, "bad admin or node name");
    }
    if (crypto_sign_seed_keypair(k->pk, k->sk, seed)) {
        sc_admin_key_destroy(k);
        return sc_error_set(e, SC_ECRYPTO, "seeded key generation failed");
    }
    *out = k;
    return 0;
}

int sc_admin_key_load(const char *node_dir, const char *name, const char *pass, size_t passlen,
                      sc_admin_key **out, sc_error *e)
{
    char path[4200], *cur, *key, *val;
    uint8_t *buf = NULL, *dkey = NULL;
    uint8_t salt[SALT_LEN], nonce[crypto_secretbox_NONCEBYTES], chk[32];
    uint8_t boxed[crypto_secretbox_MACBYTES + crypto_sign_SECRETKEYBYTES];
    unsigned long long ops = 0;
    size_t len, mem = 0;
    int r, rc, seen = 0;
    sc_admin_key *k = NULL;

    *out = NULL;
    if (sodium_init() < 0)
        return sc_error_set(e, SC_ECRYPTO, "libsodium failed to initialise");
    if ((rc = admin_path(path, sizeof path, node_dir, name, "key", e)) ||
        (rc = sc_file_check_private(path, e)) ||
        (rc = sc_file_read(path, KEY_FILE_MAX, 1, &buf, &len, e)))
        return rc;
    k = calloc(1, sizeof *k);
    dkey = sodium_malloc(crypto_secretbox_KEYBYTES);
    if (!k || !dkey || !(k->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES))) {
        rc = sc_error_set(e, SC_ENOMEM, "out of memory");
        goto out;
    }
    cur = (char *)buf;
    while ((r = sc_kv_next(&cur, &key, &val)) == 1) {
        size_t vl = strlen(val);
        rc = 0;
        if (!strcmp(key, "kind")) {
            if (strcmp(val, "admin-ed25519-argon2id"))
                rc = sc_error_set(e, SC_EFORMAT, "kind %s is not an admin key", val);
            seen |= 1;
        } else if (!strcmp(key, "name")) {
            if (copy_id(k->name, val))
                rc = sc_error_set(e, SC_EFORMAT, "bad name");
            seen |= 2;
        } else if (!strcmp(key, "node")) {
            if (copy_id(k->node, val))
                rc = sc_error_set(e, SC_EFORMAT, "bad node");
            seen |= 4;
        } else if (!strcmp(key, "public")) {
            rc = sc_b64_decode_exact(k->pk, 32, val, vl, e);
            seen |= 8;
        } else if (!strcmp(key, "kdf")) {
            if (strcmp(val, "argon2id13"))
                rc = sc_error_set(e, SC_EFORMAT, "unknown kdf %s", val);
            seen |= 16;
        } else if (!strcmp(key, "kdf-opslimit")) {
            uint64_t x = 0;
            if (sb_parse_u64(val, UINT64_MAX, &x))
                rc = sc_error_set(e, SC_EFORMAT, "bad %s", key);
            ops = x;
            seen |= 32;
        } else if (!strcmp(key, "kdf-memlimit")) {
            uint64_t x = 0;
            if (sb_parse_u64(val, SIZE_MAX, &x))
                rc = sc_error_set(e, SC_EFORMAT, "bad %s", key);
            mem = (size_t)x;
            seen |= 64;
        } else if (!strcmp(key, "salt")) {
            rc = sc_b64_decode_exact(salt, sizeof salt, val, vl, e);
            seen |= 128;
        } else if (!strcmp(key, "nonce")) {
            rc = sc_b64_decode_exact(nonce, sizeof nonce, val, vl, e);
            seen |= 256;
        } else if (!strcmp(key, "box")) {
            rc = sc_b64_decode_exact(boxed, sizeof boxed, val, vl, e);
            seen |= 512;
        }
        if (rc) {
            sc_error_wrap(e, "%s: %s", path, key);
            goto out;
        }
    }
    if (r < 0 || seen != 1023) {
        rc = sc_error_set(e, SC_EFORMAT, "%s: malformed or incomplete admin key file", path);
        goto out;
    }
    /* A key file must not be able to make us burn unbounded CPU or memory. */
    if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > 4ull * crypto_pwhash_OPSLIMIT_SENSITIVE ||
        mem < crypto_pwhash_MEMLIMIT_MIN || mem > ADMIN_MEMLIMIT_MAX) {
        rc = sc_error_set(e, SC_EFORMAT, "%s: KDF limits out of range", path);
        goto out;
    }
    if (crypto_pwhash(dkey, crypto_secretbox_KEYBYTES, pass, passlen, salt, ops, mem,
                      crypto_pwhash_ALG_ARGON2ID13)) {
        rc = sc_error_set(e, SC_ENOMEM, "Argon2id needs %zu MiB and could not get it", mem >> 20);
        goto out;
    }
    if (crypto_secretbox_open_easy(k->sk, boxed, sizeof boxed, nonce, dkey)) {
        rc = sc_error_set(e, SC_EPASS, "%s: wrong passphrase (or damaged key file)", path);
        goto out;
    }
    if (crypto_sign_ed25519_sk_to_pk(chk, k->sk) || sodium_memcmp(chk, k->pk, 32)) {
        rc = sc_error_set(e, SC_EFORMAT, "%s: secret does not match public key", path);
        goto out;
    }
    *out = k;
    k = NULL;
    rc = 0;
out:
    sc_admin_key_destroy(k);
    sc_secret_free(dkey, crypto_secretbox_KEYBYTES);
    sc_secret_free(buf, len + 1);
    sodium_memzero(boxed, sizeof boxed);
    return rc;
}

int sc_admin_pub_load(const char *node_dir, const char *name, uint8_t pk[32], sc_error *e)
{
    char path[4200];
    int rc = admin_path(path, sizeof path, node_dir, name, "pub", e);
    return rc ? rc : load_public(path, "admin-ed25519", pk, e);
}

/* Read one line from fd into guarded buf (cap bytes), without the newline. */
static int read_line_fd(int fd, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0 || c == '\n')
            break;
        if (n + 1 >= cap)
            return -1;
        buf[n++] = c;
    }
    if (n && buf[n - 1] == '\r')
        n--;
    buf[n] = 0;
    *len = n;
    return 0;
}

static int tty_prompt(const char *prompt, char *buf, size_t cap, size_t *len)
{
    struct termios old, quiet;
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC), rc, echo_off = 0;
    if (fd < 0)
        return -1;
    /* Echo goes off (dropping typeahead) before the prompt appears, so
     * nothing typed after the prompt is lost or shown. */
    if (tcgetattr(fd, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        echo_off = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
    }
    if (write(fd, prompt, strlen(prompt)) < 0)
        rc = -1;
    else
        rc = read_line_fd(fd, buf, cap, len);
    if (echo_off)
        (void)tcsetattr(fd, TCSADRAIN, &old);
    if (write(fd, "\n", 1) < 0)
        rc = -1;
    close(fd);
    return rc;
}

int sc_passphrase_get(const char *passfile, const char *prompt, int confirm, char **pass,
                      size_t *len, sc_error *e)
{
    const size_t cap = 1024;
    char *buf, *again = NULL;
    const char *env;
    size_t n = 0, n2 = 0;
    int rc = 0;
    *pass = NULL;
    *len = 0;
    if (sodium_init() < 0)
        return sc_error_set(e, SC_ECRYPTO, "libsodium failed to initialise");
    buf = sodium_malloc(cap);
    if (!buf)
        return sc_error_set(e, SC_ENOMEM, "out of guarded memory");
    if (passfile) {
        int fd = open(passfile, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0) {
            rc = sc_error_set(e, SC_EIO, "%s: %s", passfile, strerror(errno));
        } else {
            /* a file others can read has leaked the key already; a pipe
             * (--passphrase-file <(...)) is the caller's own */
            if (fstat(fd, &st))
                rc = sc_error_set(e, SC_EIO, "%s: %s", passfile, strerror(errno));
            else if (S_ISREG(st.st_mode) && (st.st_mode & 077))
                rc = sc_error_set(e, SC_EPERM,
                                  "passphrase file %s is open to others (mode %03o): "
                                  "chmod 600 %s",
                                  passfile, (unsigned)(st.st_mode & 0777), passfile);
            else if (read_line_fd(fd, buf, cap, &n))
                rc = sc_error_set(e, SC_EIO, "%s: unreadable or line too long", passfile);
            close(fd);
        }
    } else if ((env = getenv("SLDD_PASSPHRASE")) != NULL) {
        n = strlen(env);
        if (n >= cap)
            rc = sc_error_set(e, SC_EINVAL, "SLDD_PASSPHRASE is too long");
        else
            memcpy(buf, env, n + 1);
    } else {
        if (tty_prompt(prompt, buf, cap, &n))
            rc = sc_error_set(
                e, SC_EIO, "no passphrase: use --passphrase-file, SLDD_PASSPHRASE or a terminal");
        else if (confirm) {
            again = sodium_malloc(cap);
            if (!again)
                rc = sc_error_set(e, SC_ENOMEM, "out of guarded memory");
            else if (tty_prompt("again: ", again, cap, &n2) || n2 != n ||
                     sodium_memcmp(again, buf, n))
                rc = sc_error_set(e, SC_EPASS, "the passphrases differ");
        }
    }
    sc_secret_free(again, cap);
    if (!rc && confirm && n < 8)
        rc = sc_error_set(e, SC_EPASS, "passphrase too short (at least 8 characters)");
    if (!rc && n == 0)
        rc = sc_error_set(e, SC_EPASS, "empty passphrase");
    if (rc) {
        sc_secret_free(buf, cap);
        return rc;
    }
    *pass = buf;
    *len = n;
    return 0;
}

/* ------------------------------------------------------------ rotation */

static int keys_path(char *out, size_t cap, const char *node_dir, const char *name, sc_error *e)
{
    int n = snprintf(out, cap, "%s/keys/%s", node_dir, name);
    if (n < 0 || (size_t)n >= cap)
        return sc_error_set(e, SC_EINVAL, "path too long");
    return 0;
}

int sc_node_sign_prev_load(const char *node_dir, uint8_t pk[32], uint8_t **sk, int64_t *until,
                           sc_error *e)
{
    char path[4200];
    uint8_t *buf = NULL, *s = NULL;
    size_t len;
    long long t;
    int rc;
    if (sk)
        *sk = NULL;
    if ((rc = keys_path(path, sizeof path, node_dir, "sign-prev.until", e)))
        return rc;
    rc = sc_file_read(path, 256, 0, &buf, &len, NULL);
    if (rc == SC_ENOTFOUND)
        return SC_ENOTFOUND; /* no rotation: not worth a message */
    if (rc)
        return sc_error_set(e, rc, "%s: cannot be read", path);
    if (len && buf[len - 1] == '\n')
        buf[len - 1] = 0;
    rc = sb_parse_i64((const char *)buf, 0, INT64_MAX, &t);
    free(buf);
    if (rc)
        return sc_error_set(e, SC_EFORMAT, "%s: not a time in unix seconds", path);
    *until = (int64_t)t;
    if (!sk) {
        if ((rc = keys_path(path, sizeof path, node_dir, "sign-prev.pub", e)))
            return rc;
        return load_public(path, "node-sign-ed25519", pk, e);
    }
    if (!(s = sodium_malloc(crypto_sign_SECRETKEYBYTES)))
        return sc_error_set(e, SC_ENOMEM, "out of guarded memory");
    if ((rc = load_secret(node_dir, "sign-prev.key", "node-sign-ed25519", pk, s,
                          crypto_sign_SECRETKEYBYTES, e))) {
        sodium_free(s);
        return rc;
    }
    *sk = s;
    return 0;
}

int sc_node_sign_rotate(const char *node_dir, const char *node_id, int64_t until, int64_t now,
                        uint8_t new_pk[32], sc_error *e)
{
    static const char *const names[] = {"sign.key",       "sign.pub",      "sign-prev.key",
                                        "sign-prev.pub",  "sign-next.key", "sign-next.pub",
                                        "sign-prev.until"};
    char p[7][4200], text[64];
    uint8_t pk[32], *sk = NULL;
    int64_t old_until;
    int rc, n;
    if (until <= now)
        return sc_error_set(e, SC_EINVAL, "the overlap must end in the future");
    for (int i = 0; i < 7; i++)
        if ((rc = keys_path(p[i], sizeof p[i], node_dir, names[i], e)))
            return rc;
    rc = sc_node_sign_prev_load(node_dir, pk, NULL, &old_until, e);
    if (rc == 0 && old_until > now)
        return sc_error_set(e, SC_EEXIST,
                            "the previous signing key is still in its overlap (until %lld): "
                            "rotate again after it",
                            (long long)old_until);
    if (rc && rc != SC_ENOTFOUND)
        return rc;
    if (sodium_init() < 0 || !(sk = sodium_malloc(crypto_sign_SECRETKEYBYTES)))
        return sc_error_set(e, SC_ENOMEM, "out of guarded memory");
    if (crypto_sign_keypair(new_pk, sk)) {
        sodium_free(sk);
        return sc_error_set(e, SC_ECRYPTO, "crypto_sign_keypair failed");
    }
    /* the next pair first (O_EXCL), then the moves; an old previous pair is
     * past its overlap and goes */
    (void)unlink(p[4]);
    (void)unlink(p[5]);
    rc = write_secret_file(p[4], "node-sign-ed25519", "node", node_id, new_pk, sk,
                           crypto_sign_SECRETKEYBYTES, e);
    sodium_free(sk);
    if (rc || (rc = write_public_file(p[5], "node-sign-ed25519", "node", node_id, new_pk, e)))
        return rc;
    n = snprintf(text, sizeof text, "%lld\n", (long long)until);
    if ((unlink(p[2]) && errno != ENOENT) || (unlink(p[3]) && errno != ENOENT) ||
        rename(p[0], p[2]) || rename(p[1], p[3]) || rename(p[4], p[0]) || rename(p[5], p[1]))
        return sc_error_set(e, SC_EIO, "moving the signing keys in %s/keys: %s", node_dir,
                            strerror(errno));
    return sc_file_write_atomic(p[6], text, (size_t)n, 0644, e);
}
