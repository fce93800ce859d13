/*
 * sd_file.c - regular files inside a data folder, and the atomic writer
 * of the files the data commands keep there (see sd_file.h).
 */
#include "sd_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind_name(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO (named pipe)"
           : S_ISSOCK(m) ? "a socket"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
                         : "not a regular file";
}

/* 1 when real lies inside root (or is root itself). */
static int inside(const char *real, const char *root)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/')
        return 1;
    return !strncmp(real, root, n) && (real[n] == '/' || real[n] == '\0');
}

/* The real path of the file open on fd (path as the fallback without /proc). */
static int fd_real_path(int fd, const char *path, char *out, size_t outlen)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, outlen - 1);
    if (n > 0 && (size_t)n < outlen - 1) {
        out[n] = '\0';
        return 0;
    }
    char *r = realpath(path, NULL);
    if (!r || strlen(r) >= outlen) {
        free(r);
        return -1;
    }
    memcpy(out, r, strlen(r) + 1);
    free(r);
    return 0;
}

int sd_file_open(const char *path, const char *root, FILE **out, sd_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return sd_error_set(err, SD_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    char real[PATH_MAX];
    int rc = 0;
    if (fstat(fd, &st))
        rc = sd_error_set(err, SD_EIO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = sd_error_set(err, SD_EFORMAT, "%s: is %s, not a regular file", path,
                          kind_name(st.st_mode));
    else if (root && fd_real_path(fd, path, real, sizeof real))
        rc = sd_error_set(err, SD_EIO, "%s: cannot resolve its real path", path);
    else if (root && !inside(real, root))
        rc = sd_error_set(err, SD_EFORMAT,
                          "%s: leads to %s, outside the data folder %s (symbolic links must "
                          "stay inside it)",
                          path, real, root);
    if (!rc) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
            rc = sd_error_set(err, SD_EIO, "%s: fcntl: %s", path, strerror(errno));
    }
    if (!rc && !(*out = fdopen(fd, "rb")))
        rc = sd_error_set(err, SD_ENOMEM, "%s: cannot open a stream: %s", path, strerror(errno));
    if (rc)
        close(fd);
    return rc;
}

int sd_file_root(const char *dir, char **out, sd_error *err)
{
    *out = realpath(dir, NULL);
    if (!*out)
        return sd_error_set(err, SD_EIO, "%s: cannot resolve: %s", dir, strerror(errno));
    return 0;
}

int sd_file_write_atomic(const char *path, void (*emit)(FILE *f, const void *ctx), const void *ctx,
                         sd_error *err)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return sd_error_set(err, SD_EINVAL, "%s: path too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return sd_error_set(err, SD_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    emit(f, ctx);
    int rc = SD_OK;
    if (fflush(f) != 0 || ferror(f))
        rc = sd_error_set(err, SD_EIO, "%s: write failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && !rc)
        rc = sd_error_set(err, SD_EIO, "%s: close failed: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = sd_error_set(err, SD_EIO, "%s: cannot rename: %s", path, strerror(errno));
    if (rc)
        remove(tmp);
    return rc;
}
