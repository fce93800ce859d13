/*
 * nd_objects.c - the content-addressed file store (see nd_objects.h).
 */
#include "nd_objects.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nd_buf.h"
#include "sc_util.h"

static int valid_name(const char *name)
{
    uint8_t tmp[32];
    return name && nd_unhex(tmp, 32, name) == 0;
}

int nd_object_path(const char *node_dir, const char *name, char *out, size_t outlen, sc_error *e)
{
    if (!valid_name(name))
        return sc_error_set(e, SC_EINVAL, "'%s' is not an object name", name ? name : "");
    if ((size_t)snprintf(out, outlen, "%s/%s/%s", node_dir, ND_OBJECTS_DIR, name) >= outlen)
        return sc_error_set(e, SC_EINVAL, "path too long");
    return 0;
}

int nd_object_put(const char *node_dir, const uint8_t *data, size_t len, char name_out[65],
                  sc_error *e)
{
    char dir[4200], path[4300];
    uint8_t h[32];
    struct stat sb;
    int rc;
    sc_sha256(h, data, len);
    nd_hex(name_out, h, 32);
    if ((rc = sc_path_join(dir, sizeof dir, node_dir, ND_OBJECTS_DIR, e)) ||
        (rc = sc_mkdir(dir, 0700, e)) ||
        (rc = nd_object_path(node_dir, name_out, path, sizeof path, e)))
        return rc;
    /* same name, same size: the same bytes (the hash says so); a damaged
     * copy is caught by nd_object_get and the startup check */
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (size_t)sb.st_size == len)
        return 0;
    return sc_file_write_atomic(path, data, len, 0600, e);
}

int nd_object_get(const char *node_dir, const char *name, size_t max, uint8_t **out, size_t *len,
                  sc_error *e)
{
    char path[4300];
    uint8_t h[32], want[32];
    int rc;
    *out = NULL;
    if ((rc = nd_object_path(node_dir, name, path, sizeof path, e)))
        return rc;
    if ((rc = sc_file_read(path, max, 0, out, len, e)))
        return rc;
    sc_sha256(h, *out, *len);
    if (nd_unhex(want, 32, name) || memcmp(h, want, 32)) {
        free(*out);
        *out = NULL;
        return sc_error_set(e, SC_EFORMAT, "%s is damaged: its content does not match its name",
                            path);
    }
    return 0;
}

int nd_object_check(const char *node_dir, const char *name, sc_error *e)
{
    uint8_t *buf;
    size_t len;
    int rc = nd_object_get(node_dir, name, (size_t)1 << 40, &buf, &len, e);
    free(buf);
    return rc;
}
