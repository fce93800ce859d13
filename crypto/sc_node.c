/*
 * sc_node.c - node directory creation, node.conf and the sequence counter
 * (see sc_node.h).
 */
#include "sc_node.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "sc_keys.h"
#include "sc_util.h"
#include "sp_check.h"

void sc_node_config_default(sc_node_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_bundle_bytes = (size_t)64 << 20;
    c->parse_budget_bytes = (size_t)256 << 20;
    c->clock_skew_seconds = 300;
    c->min_admin_approvals = 1;
    c->bundle_ttl_seconds = 30 * 86400;
}

int sc_node_init(const char *node_dir, const char *id, sc_error *e)
{
    char path[4200], conf[1024];
    sc_node_keys *k = NULL;
    sc_node_config c;
    int rc, n;
    if (!sp_valid_id(id))
        return sc_error_set(e, SC_EINVAL,
                            "'%s' is not a valid node id (1-64 of A-Z a-z 0-9 . _ -)", id);
    if ((rc = sc_mkdir(node_dir, 0700, e)))
        return rc;
    if ((rc = sc_path_join(path, sizeof path, node_dir, "node.conf", e)))
        return rc;
    if (access(path, F_OK) == 0)
        return sc_error_set(e, SC_EEXIST, "%s already holds a node", node_dir);
    sc_node_config_default(&c);
    n = snprintf(conf, sizeof conf,
                 "# SLDD node configuration\n"
                 "id: %s\n"
                 "max-bundle-bytes: %zu\n"
                 "parse-budget-bytes: %zu\n"
                 "clock-skew-seconds: %" PRId64 "\n"
                 "min-admin-approvals: %zu\n"
                 "bundle-ttl-seconds: %" PRId64 "\n",
                 id, c.max_bundle_bytes, c.parse_budget_bytes, c.clock_skew_seconds,
                 c.min_admin_approvals, c.bundle_ttl_seconds);
    if ((rc = sc_node_keys_generate(&k, e)))
        return rc;
    /* keys first: a half-made node has no node.conf and can be re-made */
    rc = sc_node_keys_save(k, node_dir, id, e);
    sc_node_keys_destroy(k);
    if (rc)
        return rc;
    if ((rc = sc_path_join(path, sizeof path, node_dir, "admins", e)) ||
        (rc = sc_mkdir(path, 0700, e)) ||
        (rc = sc_path_join(path, sizeof path, node_dir, "peers", e)) ||
        (rc = sc_mkdir(path, 0700, e)) ||
        (rc = sc_path_join(path, sizeof path, node_dir, "node.conf", e)))
        return rc;
    return sc_file_create_excl(path, conf, (size_t)n, 0600, e);
}

static int parse_u64(const char *v, uint64_t max, uint64_t *out)
{
    return sb_parse_u64(v, max, out) ? -1 : 0;
}

int sc_node_config_load(const char *node_dir, sc_node_config *c, sc_error *e)
{
    char path[4200], *cur, *key, *val;
    uint8_t *buf;
    size_t len;
    int r, rc;
    sc_node_config_default(c);
    if ((rc = sc_path_join(path, sizeof path, node_dir, "node.conf", e)))
        return rc;
    if ((rc = sc_file_read(path, 65536, 0, &buf, &len, e)))
        return rc == SC_ENOTFOUND
                   ? sc_error_set(e, rc, "%s is not a node directory (no node.conf); run sldd init",
                                  node_dir)
                   : rc;
    cur = (char *)buf;
    rc = 0;
    while (!rc && (r = sc_kv_next(&cur, &key, &val)) == 1) {
        uint64_t x = 0;
        if (!strcmp(key, "id")) {
            if (!sp_valid_id(val))
                rc = sc_error_set(e, SC_EFORMAT, "%s: bad id", path);
            else
                memcpy(c->id, val, strlen(val) + 1);
        } else if (!strcmp(key, "max-bundle-bytes")) {
            if (parse_u64(val, (uint64_t)1 << 40, &x) || x < 1024)
                rc = sc_error_set(e, SC_EFORMAT, "%s: bad %s", path, key);
            c->max_bundle_bytes = (size_t)x;
        } else if (!strcmp(key, "parse-budget-bytes")) {
            if (parse_u64(val, (uint64_t)1 << 42, &x) || x < 65536)
                rc = sc_error_set(e, SC_EFORMAT, "%s: bad %s", path, key);
            c->parse_budget_bytes = (size_t)x;
        } else if (!strcmp(key, "clock-skew-seconds")) {
            if (parse_u64(val, 86400, &x))
                rc = sc_error_set(e, SC_EFORMAT, "%s: bad %s", path, key);
            c->clock_skew_seconds = (int64_t)x;
        } else if (!strcmp(key, "min-admin-approvals")) {
            /* approval cannot be configured away: every reader of node.conf
             * (CLI seal and open, the daemon's send and receive) gets >= 1 */
            if (parse_u64(val, 32, &x))
                rc = sc_error_set(e, SC_EFORMAT, "%s: bad %s", path, key);
            else if (x < 1)
                rc = sc_error_set(e, SC_EFORMAT,
                                  "%s: min-admin-approvals must be at least 1 (got %s): a bundle "
                                  "is never sealed or accepted without an admin's approval",
                                  path, val);
            c->min_admin_approvals = (size_t)x;
        } else if (!strcmp(key, "bundle-ttl-seconds")) {
            if (parse_u64(val, (uint64_t)10 * 366 * 86400, &x) || x < 60)
                rc = sc_error_set(e, SC_EFORMAT, "%s: bad %s", path, key);
            c->bundle_ttl_seconds = (int64_t)x;
        }
        /* unknown keys belong to other parts of the node (daemon, net) */
    }
    if (!rc && r < 0)
        rc = sc_error_set(e, SC_EFORMAT, "%s: malformed line", path);
    if (!rc && !c->id[0])
        rc = sc_error_set(e, SC_EFORMAT, "%s: no id", path);
    free(buf);
    return rc;
}

int sc_node_sequence_next(const char *node_dir, uint64_t *seq, sc_error *e)
{
    char path[4200], buf[32];
    uint64_t cur = 0;
    ssize_t n;
    int fd, rc = 0;
    if ((rc = sc_path_join(path, sizeof path, node_dir, "sequence", e)))
        return rc;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX)) {
        close(fd);
        return sc_error_set(e, SC_EIO, "%s: lock: %s", path, strerror(errno));
    }
    n = pread(fd, buf, sizeof buf - 1, 0);
    if (n < 0) {
        rc = sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
    } else {
        buf[n] = 0;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
            buf[--n] = 0;
        if (n > 0 && parse_u64(buf, UINT64_MAX - 1, &cur))
            rc = sc_error_set(e, SC_EFORMAT, "%s: not a number", path);
    }
    if (!rc) {
        int len = snprintf(buf, sizeof buf, "%" PRIu64 "\n", cur + 1);
        if (ftruncate(fd, 0) || pwrite(fd, buf, (size_t)len, 0) != len || fsync(fd))
            rc = sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
        else
            *seq = cur + 1;
    }
    close(fd); /* releases the lock */
    return rc;
}

int sc_node_open(const char *node_dir, unsigned flags, sc_node **out, sc_error *e)
{
    sc_node *n;
    char path[4200];
    int rc;
    *out = NULL;
    if (strlen(node_dir) >= sizeof n->dir)
        return sc_error_set(e, SC_EINVAL, "node directory path too long");
    n = calloc(1, sizeof *n);
    if (!n)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    memcpy(n->dir, node_dir, strlen(node_dir) + 1);
    if ((rc = sc_node_config_load(node_dir, &n->cfg, e)) ||
        ((flags & SC_NODE_KEYS) && (rc = sc_node_keys_load(node_dir, &n->keys, e))) ||
        (rc = sc_trust_store_open_files(node_dir, n->cfg.id, &n->trust, e)))
        goto fail;
    if (flags & SC_NODE_REPLAY) {
        if ((rc = sc_path_join(path, sizeof path, node_dir, "replay.log", e)) ||
            (rc = sc_replay_store_open_file(path, &n->replay, e)))
            goto fail;
    }
    *out = n;
    return 0;
fail:
    sc_node_close(n);
    return rc;
}

void sc_node_close(sc_node *n)
{
    if (!n)
        return;
    sc_node_keys_destroy(n->keys);
    sc_trust_store_destroy(n->trust);
    sc_replay_store_destroy(n->replay);
    free(n);
}
