/*
 * sc_util.c - file, encoding and hashing helpers (see sc_util.h).
 */
#include "sc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sc_file_read(const char *path, size_t max, int secret, uint8_t **buf, size_t *len, sc_error *e)
{
    struct stat st;
    uint8_t *p;
    size_t n = 0, cap;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *buf = NULL;
    *len = 0;
    if (fd < 0)
        return sc_error_set(e, errno == ENOENT ? SC_ENOTFOUND : SC_EIO, "%s: %s", path,
                            strerror(errno));
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return sc_error_set(e, SC_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return sc_error_set(e, SC_EREFUSE_SIZE, "%s: %lld bytes, larger than the cap of %zu", path,
                            (long long)st.st_size, max);
    }
    /* st_size is a hint only; read up to max + 1 to notice growth. */
    cap = (size_t)st.st_size + 1;
    p = secret ? sodium_malloc(cap) : malloc(cap);
    if (!p) {
        close(fd);
        return sc_error_set(e, SC_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        ssize_t r = read(fd, p + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            close(fd);
            if (secret)
                sc_secret_free(p, cap);
            else
                free(p);
            return sc_error_set(e, SC_EIO, "%s: %s", path, strerror(err));
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap) { /* file grew: ends up refused or re-read by caller */
            close(fd);
            if (secret)
                sc_secret_free(p, cap);
            else
                free(p);
            return sc_error_set(e, SC_EIO, "%s: changed while being read", path);
        }
    }
    close(fd);
    p[n] = 0;
    *buf = p;
    *len = n;
    return 0;
}

void sc_secret_free(void *p, size_t len)
{
    if (!p)
        return;
    sodium_memzero(p, len);
    sodium_free(p);
}

static int write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int fd, rc;
    if (!slash) {
        memcpy(dir, ".", 2);
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir)
            return -1;
        memcpy(dir, path, n ? n : 1);
        dir[n ? n : 1] = 0;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

int sc_file_create_excl(const char *path, const void *data, size_t len, unsigned mode, sc_error *e)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        return sc_error_set(e, errno == EEXIST ? SC_EEXIST : SC_EIO, "%s: %s", path,
                            strerror(errno));
    /* the umask may have loosened nothing, but make the mode exact */
    if (fchmod(fd, (mode_t)mode) || write_all(fd, data, len) || fsync(fd)) {
        int err = errno;
        close(fd);
        unlink(path);
        return sc_error_set(e, SC_EIO, "%s: %s", path, strerror(err));
    }
    if (close(fd)) {
        unlink(path);
        return sc_error_set(e, SC_EIO, "%s: close failed", path);
    }
    if (fsync_dir_of(path))
        return sc_error_set(e, SC_EIO, "%s: fsync of folder failed", path);
    return 0;
}

int sc_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode, sc_error *e)
{
    char tmp[4200];
    uint8_t rnd[6];
    char hex[13];
    int rc;
    randombytes_buf(rnd, sizeof rnd);
    sc_hex_encode(hex, rnd, sizeof rnd);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-%s", path, hex) >= sizeof tmp)
        return sc_error_set(e, SC_EINVAL, "path too long: %s", path);
    rc = sc_file_create_excl(tmp, data, len, mode, e);
    if (rc)
        return rc;
    if (rename(tmp, path)) {
        int err = errno;
        unlink(tmp);
        return sc_error_set(e, SC_EIO, "rename to %s: %s", path, strerror(err));
    }
    if (fsync_dir_of(path))
        return sc_error_set(e, SC_EIO, "%s: fsync of folder failed", path);
    return 0;
}

int sc_file_check_private(const char *path, sc_error *e)
{
    struct stat st;
    if (lstat(path, &st))
        return sc_error_set(e, errno == ENOENT ? SC_ENOTFOUND : SC_EIO, "%s: %s", path,
                            strerror(errno));
    if (!S_ISREG(st.st_mode))
        return sc_error_set(e, SC_EPERM, "%s: not a regular file", path);
    if (st.st_mode & 077)
        return sc_error_set(e, SC_EPERM,
                            "%s: permissions %03o are too open (want 0600); fix with chmod 600",
                            path, (unsigned)(st.st_mode & 0777));
    return 0;
}

size_t sc_b64_len(size_t n)
{
    return sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
}

void sc_b64_encode(char *out, const uint8_t *in, size_t n)
{
    sodium_bin2base64(out, sc_b64_len(n), in, n, sodium_base64_VARIANT_ORIGINAL);
}

int sc_b64_decode_exact(uint8_t *out, size_t want, const char *in, size_t inlen, sc_error *e)
{
    size_t got = 0;
    const char *end = NULL;
    if (sodium_base642bin(out, want, in, inlen, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL) ||
        got != want || end != in + inlen)
        return sc_error_set(e, SC_EFORMAT, "bad base64 (want %zu bytes)", want);
    return 0;
}

void sc_hex_encode(char *out, const uint8_t *in, size_t n)
{
    sodium_bin2hex(out, 2 * n + 1, in, n);
}

void sc_sha256(uint8_t out[32], const uint8_t *in, size_t n)
{
    /* crypto_hash_sha256 cannot fail for in-memory input */
    (void)crypto_hash_sha256(out, in, n);
}

void sc_key_id(uint8_t out[32], const uint8_t pk[32])
{
    sc_sha256(out, pk, 32);
}

int sc_path_join(char *out, size_t outlen, const char *dir, const char *name, sc_error *e)
{
    if ((size_t)snprintf(out, outlen, "%s/%s", dir, name) >= outlen)
        return sc_error_set(e, SC_EINVAL, "path too long: %s/%s", dir, name);
    return 0;
}

int sc_mkdir(const char *path, unsigned mode, sc_error *e)
{
    struct stat st;
    if (mkdir(path, (mode_t)mode) == 0)
        return 0;
    if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    return sc_error_set(e, SC_EIO, "mkdir %s: %s", path, strerror(errno));
}
