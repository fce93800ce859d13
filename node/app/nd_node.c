/*
 * nd_node.c - node directory creation, node.conf and the sequence counter
 * (see nd_node.h).
 */
#include "nd_node.h"

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

void nd_node_config_default(nd_node_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_bundle_bytes = (size_t)64 << 20;
    c->parse_budget_bytes = (size_t)256 << 20;
    c->clock_skew_seconds = 300;
    c->min_admin_approvals = 1;
    c->bundle_ttl_seconds = 30 * 86400;
}

int nd_node_init(const char *node_dir, const char *id, sc_error *e)
{
    char path[4200], conf[1024];
    sc_node_keys *k = NULL;
    nd_node_config c;
    int rc, n;
    if (!sp_valid_id(id))
        return sc_error_set(e, SC_EINVAL, "'%s' is not a valid node id (1-64 of A-Z a-z 0-9 . _ -)",
                            id);
    if ((rc = sc_mkdir(node_dir, 0700, e)))
        return rc;
    if ((rc = sc_path_join(path, sizeof path, node_dir, "node.conf", e)))
        return rc;
    if (access(path, F_OK) == 0)
        return sc_error_set(e, SC_EEXIST, "%s already holds a node", node_dir);
    nd_node_config_default(&c);
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

int nd_node_config_load(const char *node_dir, nd_node_config *c, sc_error *e)
{
    char path[4200], *cur, *key, *val;
    uint8_t *buf;
    size_t len;
    int r, rc;
    nd_node_config_default(c);
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

int nd_node_sequence_next(const char *node_dir, uint64_t *seq, sc_error *e)
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

/* A node made before the replay store moved into state.db kept the bundles
 * it accepted through `bundle open` in NODE/replay.log ("sender sequence
 * id-hex" lines).  They are copied into the replay table in one transaction
 * and the file renamed replay.log.migrated, so no accepted bundle can be
 * accepted again.  A torn last line (a crash while appending) is skipped, as
 * the file store did; any other malformed line refuses the migration and
 * leaves both stores as they were. */
static int migrate_replay_log(sqlite3 *db, const char *path, sc_error *e)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char done[4300];
    int rc = sc_file_read(path, (size_t)1 << 30, 0, &buf, &len, e);
    if (rc == SC_ENOTFOUND) {
        sc_error_clear(e);
        return 0;
    }
    if (rc)
        return rc;
    if ((rc = nd_db_begin(db, e))) {
        free(buf);
        return rc;
    }
    for (char *line = (char *)buf, *nl; !rc && *line; line = nl + 1) {
        char sender[65], hex[33];
        unsigned long long seq;
        if (!(nl = strchr(line, '\n')))
            break;
        *nl = 0;
        if (sscanf(line, "%64s %llu %32s", sender, &seq, hex) != 3 ||
            strspn(hex, "0123456789abcdef") != 32)
            rc = sc_error_set(e, SC_EFORMAT, "%s: malformed line; nothing migrated", path);
        else
            rc = nd_db_run(db, e,
                           "INSERT OR IGNORE INTO replay(bundle_id,sender,sequence,time_unix) "
                           "VALUES(?,?,?,?)",
                           "ttii", hex, sender, (int64_t)seq, nd_now_unix());
    }
    free(buf);
    if (rc || (rc = nd_db_commit(db, e))) {
        nd_db_rollback(db);
        return rc;
    }
    snprintf(done, sizeof done, "%s.migrated", path);
    if (rename(path, done))
        return sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

int nd_node_open(const char *node_dir, unsigned flags, nd_node **out, sc_error *e)
{
    nd_node *n;
    char path[4200];
    int rc;
    *out = NULL;
    if (strlen(node_dir) >= sizeof n->dir)
        return sc_error_set(e, SC_EINVAL, "node directory path too long");
    n = calloc(1, sizeof *n);
    if (!n)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    memcpy(n->dir, node_dir, strlen(node_dir) + 1);
    if ((rc = nd_node_config_load(node_dir, &n->cfg, e)) ||
        ((flags & ND_NODE_KEYS) && (rc = sc_node_keys_load(node_dir, &n->keys, e))) ||
        (rc = sc_trust_store_open_files(node_dir, n->cfg.id, &n->trust, e)))
        goto fail;
    if (flags & ND_NODE_REPLAY) {
        /* the one replay store, the daemon's: NODE/state.db */
        if ((rc = nd_db_open(node_dir, 1, &n->db, e)) ||
            (rc = sc_path_join(path, sizeof path, node_dir, "replay.log", e)) ||
            (rc = migrate_replay_log(n->db, path, e)) ||
            (rc = nd_replay_store_db(n->db, &n->replay, e)))
            goto fail;
    }
    *out = n;
    return 0;
fail:
    nd_node_close(n);
    return rc;
}

void nd_node_close(nd_node *n)
{
    if (!n)
        return;
    sc_node_keys_destroy(n->keys);
    sc_trust_store_destroy(n->trust);
    sc_replay_store_destroy(n->replay);
    nd_db_close(n->db);
    free(n);
}
