/*
 * sc_store.c - file-backed trust and replay stores (see sc_store.h).
 *
 * Everything is read at open: a node knows tens of peers and accepts a
 * bundle now and then, so linear scans are fine until the daemon's SQLite
 * store replaces these.
 */
#include "sc_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sc_keys.h"
#include "sc_util.h"
#include "sp_check.h"

#define PEER_FILE_MAX   65536
#define REPLAY_FILE_MAX ((size_t)64 << 20)

/* ------------------------------------------------------------ peer text */

int sc_peer_format(const sc_peer *p, char **out, sc_error *e)
{
    size_t cap = 512 + p->n_admins * 160, n;
    char *buf = malloc(cap), sb[64], eb[64], fs[64], fe[64];
    *out = NULL;
    if (!buf)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    sc_b64_encode(sb, p->sign_pk, 32);
    sc_b64_encode(eb, p->enc_pk, 32);
    sc_fingerprint_text(fs, p->sign_pk);
    sc_fingerprint_text(fe, p->enc_pk);
    n = (size_t)snprintf(buf, cap,
                         "sldd-peer: v1\nid: %s\nsign: %s\nenc: %s\n"
                         "# sign fingerprint %s\n# enc fingerprint %s\n",
                         p->id, sb, eb, fs, fe);
    if (p->prev_until > 0 && n < cap) {
        char pb[64];
        sc_b64_encode(pb, p->prev_sign_pk, 32);
        n += (size_t)snprintf(buf + n, cap - n, "sign-previous: %s %lld\n", pb,
                              (long long)p->prev_until);
    }
    if (p->card_time > 0 && n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "card-not-before: %lld\n", (long long)p->card_time);
    for (size_t i = 0; i < p->n_admins && n < cap; i++) {
        char ab[64];
        sc_b64_encode(ab, p->admins[i].pk, 32);
        n += (size_t)snprintf(buf + n, cap - n, "admin: %s %s\n", p->admins[i].name, ab);
    }
    if (n >= cap) {
        free(buf);
        return sc_error_set(e, SC_EINVAL, "peer record too long");
    }
    *out = buf;
    return 0;
}

int sc_peer_parse(char *text, sc_peer *out, sc_error *e)
{
    char *cur = text, *key, *val;
    int r, have = 0;
    memset(out, 0, sizeof *out);
    while ((r = sc_kv_next(&cur, &key, &val)) == 1) {
        if (!strcmp(key, "sldd-peer")) {
            if (strcmp(val, "v1"))
                return sc_error_set(e, SC_EFORMAT, "peer record version %s unknown", val);
            have |= 1;
        } else if (!strcmp(key, "id")) {
            if (!sp_valid_id(val))
                return sc_error_set(e, SC_EFORMAT, "peer id '%s' is not a valid node id", val);
            memcpy(out->id, val, strlen(val) + 1);
            have |= 2;
        } else if (!strcmp(key, "sign")) {
            if (sc_b64_decode_exact(out->sign_pk, 32, val, strlen(val), e))
                return sc_error_wrap(e, "peer sign key");
            have |= 4;
        } else if (!strcmp(key, "enc")) {
            if (sc_b64_decode_exact(out->enc_pk, 32, val, strlen(val), e))
                return sc_error_wrap(e, "peer enc key");
            have |= 8;
        } else if (!strcmp(key, "sign-previous")) {
            char *sp = strchr(val, ' ');
            long long t;
            if (!sp)
                return sc_error_set(e, SC_EFORMAT, "sign-previous line needs 'KEY UNTIL'");
            *sp++ = 0;
            if (sc_b64_decode_exact(out->prev_sign_pk, 32, val, strlen(val), e))
                return sc_error_wrap(e, "peer previous sign key");
            if (sb_parse_i64(sp, 1, INT64_MAX, &t))
                return sc_error_set(e, SC_EFORMAT, "sign-previous: bad time '%s'", sp);
            out->prev_until = (int64_t)t;
        } else if (!strcmp(key, "card-not-before")) {
            long long t;
            if (sb_parse_i64(val, 1, INT64_MAX, &t))
                return sc_error_set(e, SC_EFORMAT, "card-not-before: bad time '%s'", val);
            out->card_time = (int64_t)t;
        } else if (!strcmp(key, "admin")) {
            char *sp = strchr(val, ' ');
            sc_admin_pub *a;
            if (out->n_admins == SC_MAX_ADMINS_PER_NODE)
                return sc_error_set(e, SC_EFORMAT, "more than %d admins", SC_MAX_ADMINS_PER_NODE);
            if (!sp)
                return sc_error_set(e, SC_EFORMAT, "admin line needs 'NAME KEY'");
            *sp++ = 0;
            while (*sp == ' ')
                sp++;
            a = &out->admins[out->n_admins];
            if (!sp_valid_id(val))
                return sc_error_set(e, SC_EFORMAT, "admin name '%s' is not valid", val);
            memcpy(a->name, val, strlen(val) + 1);
            if (sc_b64_decode_exact(a->pk, 32, sp, strlen(sp), e))
                return sc_error_wrap(e, "admin %s key", a->name);
            out->n_admins++;
        }
        /* other keys are ignored so that later versions can add comments */
    }
    if (r < 0)
        return sc_error_set(e, SC_EFORMAT, "malformed peer record line");
    if (have != 15)
        return sc_error_set(e, SC_EFORMAT, "peer record needs sldd-peer, id, sign and enc");
    return 0;
}

const uint8_t *sc_peer_sign_key(const sc_peer *p, const uint8_t kid[32], int64_t now, int *expired)
{
    uint8_t k[32];
    if (expired)
        *expired = 0;
    sc_key_id(k, p->sign_pk);
    if (!memcmp(k, kid, 32))
        return p->sign_pk;
    if (p->prev_until <= 0)
        return NULL;
    sc_key_id(k, p->prev_sign_pk);
    if (memcmp(k, kid, 32))
        return NULL;
    if (now < p->prev_until)
        return p->prev_sign_pk;
    if (expired)
        *expired = 1;
    return NULL;
}

/* ------------------------------------------------------------ trust store */

typedef struct file_trust {
    char dir[4096];
    char self[65];
} file_trust;

static int self_record(file_trust *t, sc_peer *out, sc_error *e)
{
    char path[4200];
    DIR *d;
    struct dirent *de;
    int rc;
    memset(out, 0, sizeof *out);
    memcpy(out->id, t->self, sizeof out->id);
    if ((rc = sc_node_keys_load_public(t->dir, out->sign_pk, out->enc_pk, e)))
        return rc;
    /* this node's previous signing key, while its overlap lasts */
    rc = sc_node_sign_prev_load(t->dir, out->prev_sign_pk, NULL, &out->prev_until, e);
    if (rc && rc != SC_ENOTFOUND)
        return rc;
    if (rc || out->prev_until <= (int64_t)time(NULL)) {
        out->prev_until = 0;
        memset(out->prev_sign_pk, 0, 32);
    }
    snprintf(path, sizeof path, "%s/admins", t->dir);
    d = opendir(path);
    if (!d)
        return 0; /* no admins yet */
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        char name[65];
        if (n < 5 || n - 4 > 64 || strcmp(de->d_name + n - 4, ".pub"))
            continue;
        memcpy(name, de->d_name, n - 4);
        name[n - 4] = 0;
        if (!sp_valid_id(name) || out->n_admins == SC_MAX_ADMINS_PER_NODE)
            continue;
        if (sc_admin_pub_load(t->dir, name, out->admins[out->n_admins].pk, e)) {
            closedir(d);
            return e ? e->code : SC_EFORMAT;
        }
        memcpy(out->admins[out->n_admins].name, name, n - 3);
        out->n_admins++;
    }
    closedir(d);
    return 0;
}

#define REMOVED_TAG "# removed: "

/* SC_ENOTFOUND for a peer without a record, saying who removed it when
 * peers/ID.removed tells */
static int removed_or_unknown(file_trust *t, const char *id, sc_error *e)
{
    char path[4200];
    uint8_t *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/peers/%s.removed", t->dir, id);
    if (sc_file_read(path, PEER_FILE_MAX, 0, &buf, &len, NULL) == 0) {
        char *why = (char *)buf + strlen(REMOVED_TAG), *nl = strchr((char *)buf, '\n');
        int ok = !strncmp((char *)buf, REMOVED_TAG, strlen(REMOVED_TAG)) && nl;
        if (ok)
            *nl = 0;
        sc_error_set(e, SC_ENOTFOUND, "node '%s' was removed as a peer (%.300s)", id,
                     ok ? why : "no reason recorded");
        free(buf);
        return SC_ENOTFOUND;
    }
    return sc_error_set(e, SC_ENOTFOUND, "node '%s' is not a known peer", id);
}

static int ft_peer_get(sc_trust_store *s, const char *id, sc_peer *out, sc_error *e)
{
    file_trust *t = s->ctx;
    char path[4200];
    uint8_t *buf;
    size_t len;
    int rc;
    if (!sp_valid_id(id))
        return sc_error_set(e, SC_ENOTFOUND, "'%s' is not a valid node id", id);
    if (!strcmp(id, t->self))
        return self_record(t, out, e);
    snprintf(path, sizeof path, "%s/peers/%s.peer", t->dir, id);
    rc = sc_file_read(path, PEER_FILE_MAX, 0, &buf, &len, e);
    if (rc == SC_ENOTFOUND)
        return removed_or_unknown(t, id, e);
    if (rc)
        return rc;
    rc = sc_peer_parse((char *)buf, out, e);
    free(buf);
    if (rc)
        return sc_error_wrap(e, "%s", path);
    if (strcmp(out->id, id))
        return sc_error_set(e, SC_EFORMAT, "%s: records node '%s'", path, out->id);
    return 0;
}

static int ft_peer_put(sc_trust_store *s, const sc_peer *p, sc_error *e)
{
    file_trust *t = s->ctx;
    char path[4200], *text;
    int rc;
    if (!sp_valid_id(p->id))
        return sc_error_set(e, SC_EINVAL, "'%s' is not a valid node id", p->id);
    if (!strcmp(p->id, t->self))
        return sc_error_set(e, SC_EINVAL, "'%s' is this node, not a peer", p->id);
    snprintf(path, sizeof path, "%s/peers", t->dir);
    if ((rc = sc_mkdir(path, 0700, e)))
        return rc;
    snprintf(path, sizeof path, "%s/peers/%s.peer", t->dir, p->id);
    if ((rc = sc_peer_format(p, &text, e)))
        return rc;
    rc = sc_file_write_atomic(path, text, strlen(text), 0644, e);
    free(text);
    if (rc)
        return rc;
    /* added again: no longer removed */
    snprintf(path, sizeof path, "%s/peers/%s.removed", t->dir, p->id);
    if (unlink(path) && errno != ENOENT)
        return sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

static int ft_peer_remove(sc_trust_store *s, const char *id, const char *why, sc_error *e)
{
    file_trust *t = s->ctx;
    char path[4200], gone[4200];
    uint8_t *buf;
    size_t len;
    int rc;
    if (!sp_valid_id(id) || !strcmp(id, t->self))
        return sc_error_set(e, SC_EINVAL, "'%s' is not a peer", id);
    if (strchr(why, '\n') || strlen(why) > 300)
        return sc_error_set(e, SC_EINVAL, "removal reason: one line of at most 300 bytes");
    snprintf(path, sizeof path, "%s/peers/%s.peer", t->dir, id);
    snprintf(gone, sizeof gone, "%s/peers/%s.removed", t->dir, id);
    rc = sc_file_read(path, PEER_FILE_MAX, 0, &buf, &len, e);
    if (rc == SC_ENOTFOUND)
        return removed_or_unknown(t, id, e);
    if (rc)
        return rc;
    /* the tombstone keeps the last record beside who removed it */
    size_t cap = strlen(REMOVED_TAG) + strlen(why) + 2 + len;
    char *text = malloc(cap);
    if (!text) {
        free(buf);
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    }
    int n = snprintf(text, cap, "%s%s\n%s", REMOVED_TAG, why, (char *)buf);
    free(buf);
    rc = sc_file_write_atomic(gone, text, (size_t)n, 0644, e);
    free(text);
    if (rc)
        return rc;
    if (unlink(path))
        return sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

static int ft_peer_list(sc_trust_store *s, sc_peer **out, size_t *n, sc_error *e)
{
    file_trust *t = s->ctx;
    char path[4200];
    DIR *d;
    struct dirent *de;
    sc_peer *arr = NULL;
    size_t cnt = 0, cap = 0;
    *out = NULL;
    *n = 0;
    snprintf(path, sizeof path, "%s/peers", t->dir);
    d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        char id[65];
        int rc;
        if (l < 6 || l - 5 > 64 || strcmp(de->d_name + l - 5, ".peer"))
            continue;
        memcpy(id, de->d_name, l - 5);
        id[l - 5] = 0;
        if (cnt == cap) {
            sc_peer *na = realloc(arr, (cap = cap ? 2 * cap : 8) * sizeof *arr);
            if (!na) {
                free(arr);
                closedir(d);
                return sc_error_set(e, SC_ENOMEM, "out of memory");
            }
            arr = na;
        }
        if ((rc = ft_peer_get(s, id, &arr[cnt], e))) {
            free(arr);
            closedir(d);
            return rc;
        }
        cnt++;
    }
    closedir(d);
    *out = arr;
    *n = cnt;
    return 0;
}

static void ft_destroy(sc_trust_store *s)
{
    free(s->ctx);
    free(s);
}

int sc_trust_store_open_files(const char *node_dir, const char *self_id, sc_trust_store **out,
                              sc_error *e)
{
    sc_trust_store *s;
    file_trust *t;
    *out = NULL;
    if (strlen(node_dir) >= sizeof t->dir || !sp_valid_id(self_id))
        return sc_error_set(e, SC_EINVAL, "bad node directory or id");
    s = calloc(1, sizeof *s);
    t = calloc(1, sizeof *t);
    if (!s || !t) {
        free(s);
        free(t);
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    }
    memcpy(t->dir, node_dir, strlen(node_dir) + 1);
    memcpy(t->self, self_id, strlen(self_id) + 1);
    s->ctx = t;
    s->peer_get = ft_peer_get;
    s->peer_put = ft_peer_put;
    s->peer_remove = ft_peer_remove;
    s->peer_list = ft_peer_list;
    s->destroy = ft_destroy;
    *out = s;
    return 0;
}

typedef struct mem_trust {
    sc_peer *v;
    size_t n;
} mem_trust;

static int mt_peer_get(sc_trust_store *s, const char *id, sc_peer *out, sc_error *e)
{
    mem_trust *t = s->ctx;
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].id, id)) {
            *out = t->v[i];
            return 0;
        }
    return sc_error_set(e, SC_ENOTFOUND, "node '%.64s' is not a known peer", id);
}

static int mt_peer_put(sc_trust_store *s, const sc_peer *p, sc_error *e)
{
    mem_trust *t = s->ctx;
    sc_peer *nv;
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].id, p->id)) {
            t->v[i] = *p;
            return 0;
        }
    nv = realloc(t->v, (t->n + 1) * sizeof *nv);
    if (!nv)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    t->v = nv;
    t->v[t->n++] = *p;
    return 0;
}

static int mt_peer_remove(sc_trust_store *s, const char *id, const char *why, sc_error *e)
{
    mem_trust *t = s->ctx;
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].id, id)) {
            t->v[i] = t->v[--t->n];
            return 0;
        }
    (void)why;
    return sc_error_set(e, SC_ENOTFOUND, "node '%.64s' is not a known peer", id);
}

static int mt_peer_list(sc_trust_store *s, sc_peer **out, size_t *n, sc_error *e)
{
    mem_trust *t = s->ctx;
    *out = malloc((t->n ? t->n : 1) * sizeof **out);
    if (!*out)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    if (t->n)
        memcpy(*out, t->v, t->n * sizeof **out);
    *n = t->n;
    return 0;
}

static void mt_destroy(sc_trust_store *s)
{
    mem_trust *t = s->ctx;
    free(t->v);
    free(t);
    free(s);
}

int sc_trust_store_memory(sc_trust_store **out, sc_error *e)
{
    sc_trust_store *s = calloc(1, sizeof *s);
    mem_trust *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!s || !t) {
        free(s);
        free(t);
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    }
    s->ctx = t;
    s->peer_get = mt_peer_get;
    s->peer_put = mt_peer_put;
    s->peer_remove = mt_peer_remove;
    s->peer_list = mt_peer_list;
    s->destroy = mt_destroy;
    *out = s;
    return 0;
}

void sc_trust_store_destroy(sc_trust_store *s)
{
    if (s)
        s->destroy(s);
}

/* ------------------------------------------------------------ replay store */

typedef struct replay_entry {
    char sender[65];
    uint8_t id[16];
    uint64_t seq;
} replay_entry;

typedef struct file_replay {
    char path[4096];
    replay_entry *v;
    size_t n, cap;
} file_replay;

static int fr_push(file_replay *r, const char *sender, const uint8_t id[16], uint64_t seq)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? 2 * r->cap : 64;
        replay_entry *nv = realloc(r->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        r->v = nv;
        r->cap = nc;
    }
    snprintf(r->v[r->n].sender, sizeof r->v[r->n].sender, "%s", sender);
    memcpy(r->v[r->n].id, id, 16);
    r->v[r->n].seq = seq;
    r->n++;
    return 0;
}

static int fr_check(sc_replay_store *s, const char *sender, const uint8_t id[16], uint64_t seq,
                    sc_error *e)
{
    file_replay *r = s->ctx;
    uint64_t last = 0;
    int have = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (!memcmp(r->v[i].id, id, 16)) {
            char hex[33];
            sc_hex_encode(hex, id, 16);
            return sc_error_set(e, SC_EREFUSE_REPLAY_ID,
                                "bundle id %s was already accepted (from %s, sequence %" PRIu64 ")",
                                hex, r->v[i].sender, r->v[i].seq);
        }
        if (!strcmp(r->v[i].sender, sender) && (!have || r->v[i].seq > last)) {
            last = r->v[i].seq;
            have = 1;
        }
    }
    if (have && seq <= last)
        return sc_error_set(e, SC_EREFUSE_REPLAY_SEQ,
                            "sequence %" PRIu64 " from %s is not above the last accepted (%" PRIu64
                            ")",
                            seq, sender, last);
    return 0;
}

static int fr_record(sc_replay_store *s, const char *sender, const uint8_t id[16], uint64_t seq,
                     sc_error *e)
{
    file_replay *r = s->ctx;
    char line[160], hex[33];
    int fd, n;
    if (!sp_valid_id(sender))
        return sc_error_set(e, SC_EINVAL, "bad sender id");
    if (!r->path[0]) /* memory store */
        goto remember;
    sc_hex_encode(hex, id, 16);
    n = snprintf(line, sizeof line, "%s %" PRIu64 " %s\n", sender, seq, hex);
    fd = open(r->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return sc_error_set(e, SC_EIO, "%s: %s", r->path, strerror(errno));
    if (write(fd, line, (size_t)n) != n || fsync(fd)) {
        int err = errno;
        close(fd);
        return sc_error_set(e, SC_EIO, "%s: %s", r->path, strerror(err));
    }
    close(fd);
remember:
    if (fr_push(r, sender, id, seq))
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    return 0;
}

static void fr_destroy(sc_replay_store *s)
{
    file_replay *r = s->ctx;
    free(r->v);
    free(r);
    free(s);
}

int sc_replay_store_open_file(const char *path, sc_replay_store **out, sc_error *e)
{
    sc_replay_store *s = calloc(1, sizeof *s);
    file_replay *r = calloc(1, sizeof *r);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;
    *out = NULL;
    if (!s || !r) {
        free(s);
        free(r);
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    }
    s->ctx = r;
    s->check = fr_check;
    s->record = fr_record;
    s->destroy = fr_destroy;
    if (strlen(path) >= sizeof r->path) {
        fr_destroy(s);
        return sc_error_set(e, SC_EINVAL, "path too long");
    }
    memcpy(r->path, path, strlen(path) + 1);
    rc = sc_file_read(path, REPLAY_FILE_MAX, 0, &buf, &len, e);
    if (rc && rc != SC_ENOTFOUND) {
        fr_destroy(s);
        return rc;
    }
    if (!rc) {
        char *line = (char *)buf, *nl;
        for (; *line; line = nl + 1) {
            char sender[65], hex[33];
            unsigned long long seq;
            uint8_t id[16];
            size_t bl;
            nl = strchr(line, '\n');
            if (!nl) /* a torn last line from a crash: ignore it */
                break;
            *nl = 0;
            if (sscanf(line, "%64s %llu %32s", sender, &seq, hex) != 3 ||
                sodium_hex2bin(id, 16, hex, 32, NULL, &bl, NULL) || bl != 16 ||
                fr_push(r, sender, id, (uint64_t)seq)) {
                free(buf);
                fr_destroy(s);
                return sc_error_set(e, SC_EFORMAT, "%s: malformed line", path);
            }
        }
        free(buf);
    }
    *out = s;
    return 0;
}

int sc_replay_store_memory(sc_replay_store **out, sc_error *e)
{
    sc_replay_store *s = calloc(1, sizeof *s);
    file_replay *r = calloc(1, sizeof *r);
    *out = NULL;
    if (!s || !r) {
        free(s);
        free(r);
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    }
    s->ctx = r;
    s->check = fr_check;
    s->record = fr_record;
    s->destroy = fr_destroy;
    *out = s;
    return 0;
}

void sc_replay_store_destroy(sc_replay_store *s)
{
    if (s)
        s->destroy(s);
}
