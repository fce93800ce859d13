/*
 * nd_audit.c - the hash-chained audit log (see nd_audit.h).
 */
#include "nd_audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <pwd.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <time.h>

#include "nd_state.h"
#include "sc_util.h"
#include "sb_parse.h"

static const char zero_hash[65] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static void field(nd_buf *b, const char *s)
{
    if (!s)
        s = "";
    nd_buf_printf(b, "%zu:", strlen(s));
    nd_buf_str(b, s);
    nd_buf_add(b, "\n", 1);
}

void nd_audit_canonical(nd_buf *b, int64_t seq, int64_t time_unix, const char *actor,
                        const char *action, const char *bundle_id, const char *payload_sha256,
                        const char *peer, const char *outcome, const char *detail,
                        const char *prev_hash_hex)
{
    char num[32];
    nd_buf_str(b, "sldd-audit-v1\n");
    snprintf(num, sizeof num, "%" PRId64, seq);
    field(b, num);
    snprintf(num, sizeof num, "%" PRId64, time_unix);
    field(b, num);
    field(b, actor);
    field(b, action);
    field(b, bundle_id);
    field(b, payload_sha256);
    field(b, peer);
    field(b, outcome);
    field(b, detail);
    field(b, prev_hash_hex);
}

static int entry_hash(char out[65], int64_t seq, int64_t t, const char *actor, const char *action,
                      const char *bid, const char *ph, const char *peer, const char *outcome,
                      const char *detail, const char *prev, sc_error *e)
{
    nd_buf b;
    uint8_t h[32];
    nd_buf_init(&b, (size_t)1 << 20);
    nd_audit_canonical(&b, seq, t, actor, action, bid, ph, peer, outcome, detail, prev);
    if (b.failed) {
        nd_buf_free(&b);
        return sc_error_set(e, SC_ENOMEM, "audit entry too large");
    }
    sc_sha256(h, (const uint8_t *)b.data, b.len);
    nd_hex(out, h, 32);
    nd_buf_free(&b);
    return 0;
}

static void user_name(unsigned long uid, char *out, size_t outlen)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r((uid_t)uid, &pw, buf, sizeof buf, &res) == 0 && res && res->pw_name[0] &&
        strlen(res->pw_name) <= 64 && !strpbrk(res->pw_name, " \n\t"))
        snprintf(out, outlen, "user:%s", res->pw_name);
    else
        snprintf(out, outlen, "user:uid-%lu", uid);
}

void nd_audit_os_actor(char *out, size_t outlen)
{
    user_name((unsigned long)geteuid(), out, outlen);
}

void nd_audit_cred_actor(unsigned uid, int pid, char *out, size_t outlen)
{
    char path[64], text[32] = "", login[96];
    uint64_t lu = 0;
    user_name(uid, out, outlen);
    snprintf(path, sizeof path, "/proc/%d/loginuid", pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    if (!f)
        return;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    if (n && text[n - 1] == '\n')
        text[n - 1] = 0;
    /* 4294967295: no login uid (a service, or auditing off) */
    if (sb_parse_u64(text, 4294967294ULL, &lu) || lu == uid)
        return;
    user_name((unsigned long)lu, login, sizeof login);
    size_t used = strlen(out);
    snprintf(out + used, outlen - used, " (login %s)", login);
}

int nd_audit_append(sqlite3 *db, const nd_audit_entry *en, int64_t *seq_out, sc_error *e)
{
    int own = sqlite3_get_autocommit(db) != 0, rc, found;
    int64_t last = 0, t = nd_now_unix();
    char prev[65], hash[65];
    if (own && (rc = nd_db_begin(db, e)))
        return rc;
    if ((rc = nd_db_int(db, &last, &found, e, "SELECT seq FROM audit ORDER BY seq DESC LIMIT 1",
                        "")))
        goto out;
    if (!found) {
        last = 0;
        memcpy(prev, zero_hash, sizeof prev);
    } else if ((rc = nd_db_text(db, prev, sizeof prev, NULL, e,
                                "SELECT hash FROM audit WHERE seq=?", "i", last))) {
        goto out;
    }
    if ((rc = entry_hash(hash, last + 1, t, en->actor, en->action, en->bundle_id,
                         en->payload_sha256, en->peer, en->outcome, en->detail, prev, e)))
        goto out;
    rc = nd_db_run(db, e,
                   "INSERT INTO audit(seq,time_unix,actor,action,bundle_id,payload_sha256,peer,"
                   "outcome,detail,prev_hash,hash) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                   "iittttttttt", last + 1, t, en->actor ? en->actor : "",
                   en->action ? en->action : "", en->bundle_id ? en->bundle_id : "",
                   en->payload_sha256 ? en->payload_sha256 : "", en->peer ? en->peer : "",
                   en->outcome ? en->outcome : "", en->detail ? en->detail : "", prev, hash);
    if (!rc && seq_out)
        *seq_out = last + 1;
out:
    if (own) {
        if (rc)
            nd_db_rollback(db);
        else
            rc = nd_db_commit(db, e);
    }
    return rc;
}

static int read_anchor(const char *node_dir, int64_t *seq, char hash[65], sc_error *e)
{
    char path[4200];
    uint8_t *buf;
    size_t len;
    int rc;
    if ((rc = sc_path_join(path, sizeof path, node_dir, ND_AUDIT_HEAD_FILE, e)))
        return rc;
    if ((rc = sc_file_read(path, 4096, 0, &buf, &len, e)))
        return rc;
    char *cur = (char *)buf, *k, *v;
    int have = 0, r;
    while ((r = sc_kv_next(&cur, &k, &v)) == 1) {
        if (!strcmp(k, "seq")) {
            long long x;
            if (sb_parse_i64(v, 0, LLONG_MAX, &x))
                break;
            *seq = x;
            have |= 1;
        } else if (!strcmp(k, "hash") && strlen(v) == 64) {
            memcpy(hash, v, 65);
            have |= 2;
        }
    }
    free(buf);
    if (have != 3)
        return sc_error_set(e, SC_EFORMAT, "%s is malformed", path);
    return 0;
}

int nd_audit_anchor(sqlite3 *db, const char *node_dir, sc_error *e)
{
    int64_t seq = 0, aseq = -1;
    char hash[65], ahash[65], path[4200], text[200];
    int found, rc;
    sc_error ignore = {0, ""};
    if ((rc =
             nd_db_int(db, &seq, &found, e, "SELECT seq FROM audit ORDER BY seq DESC LIMIT 1", "")))
        return rc;
    if (!found)
        return 0;
    if ((rc = nd_db_text(db, hash, sizeof hash, NULL, e, "SELECT hash FROM audit WHERE seq=?", "i",
                         seq)))
        return rc;
    if (read_anchor(node_dir, &aseq, ahash, &ignore) == 0 && aseq >= seq)
        return 0;
    if ((rc = sc_path_join(path, sizeof path, node_dir, ND_AUDIT_HEAD_FILE, e)))
        return rc;
    int n = snprintf(text, sizeof text,
                     "# last audit entry; sldd audit verify checks the log against it\n"
                     "seq: %" PRId64 "\nhash: %s\n",
                     seq, hash);
    return sc_file_write_atomic(path, text, (size_t)n, 0600, e);
}

int nd_audit_verify(sqlite3 *db, const char *node_dir, nd_audit_report *rep, FILE *out, sc_error *e)
{
    sqlite3_stmt *st;
    char prev[65], h[65];
    int64_t expect = 1;
    int rc;
    memset(rep, 0, sizeof *rep);
    memcpy(prev, zero_hash, sizeof prev);
    if ((rc = nd_db_prepare(db, &st, e,
                            "SELECT seq,time_unix,actor,action,bundle_id,payload_sha256,peer,"
                            "outcome,detail,prev_hash,hash FROM audit ORDER BY seq",
                            "")))
        return rc;
    while ((rc = nd_db_step(st, e)) == 1) {
        int64_t seq = nd_col_int(st, 0);
        const char *stored_prev = nd_col_text(st, 9), *stored = nd_col_text(st, 10);
        rep->entries++;
        if (seq != expect) {
            rep->problems++;
            if (out) {
                if (seq > expect)
                    fprintf(out, "entries %" PRId64 "..%" PRId64 " are missing (removed)\n", expect,
                            seq - 1);
                else
                    fprintf(out, "entry %" PRId64 ": sequence out of order\n", seq);
            }
        }
        if (strcmp(stored_prev, prev)) {
            rep->problems++;
            if (out)
                fprintf(out,
                        "entry %" PRId64 ": does not follow the entry before it "
                        "(removed or reordered entries)\n",
                        seq);
        }
        if ((rc = entry_hash(h, seq, nd_col_int(st, 1), nd_col_text(st, 2), nd_col_text(st, 3),
                             nd_col_text(st, 4), nd_col_text(st, 5), nd_col_text(st, 6),
                             nd_col_text(st, 7), nd_col_text(st, 8), stored_prev, e)))
            break;
        if (strcmp(h, stored)) {
            rep->problems++;
            if (out)
                fprintf(out, "entry %" PRId64 ": content changed (hash mismatch)\n", seq);
        }
        snprintf(prev, sizeof prev, "%s", stored);
        rep->last_seq = seq;
        expect = seq + 1;
    }
    nd_db_finalize(st);
    if (rc < 0)
        return rc;
    snprintf(rep->last_hash, sizeof rep->last_hash, "%s", rep->entries ? prev : "");
    if (node_dir) {
        int64_t aseq = 0;
        char ahash[65];
        sc_error ae = {0, ""};
        int ar = read_anchor(node_dir, &aseq, ahash, &ae);
        if (ar == 0) {
            rep->anchor_present = 1;
            rep->anchor_seq = aseq;
            if (aseq > rep->last_seq) {
                rep->problems++;
                if (out)
                    fprintf(out,
                            "the anchor (%s) records entry %" PRId64 " but the log ends at %" PRId64
                            " (entries removed from the end)\n",
                            ND_AUDIT_HEAD_FILE, aseq, rep->last_seq);
            } else {
                char hh[65];
                int found;
                if ((rc = nd_db_text(db, hh, sizeof hh, &found, e,
                                     "SELECT hash FROM audit WHERE seq=?", "i", aseq)))
                    return rc;
                if (!found || strcmp(hh, ahash)) {
                    rep->problems++;
                    if (out)
                        fprintf(out, "entry %" PRId64 " differs from the anchor in %s\n", aseq,
                                ND_AUDIT_HEAD_FILE);
                }
            }
        } else if (ar != SC_ENOTFOUND) {
            rep->problems++;
            if (out)
                fprintf(out, "%s\n", ae.msg);
        } else if (rep->entries) {
            if (out)
                fprintf(out,
                        "note: no anchor file (%s); truncation at the end cannot be "
                        "detected\n",
                        ND_AUDIT_HEAD_FILE);
        }
    }
    rep->ok = rep->problems == 0;
    return 0;
}

int nd_audit_render(sqlite3 *db, nd_buf *b, int json, int64_t limit, const char *bundle,
                    sc_error *e)
{
    sqlite3_stmt *st;
    char like[80];
    int rc, first = 1;
    snprintf(like, sizeof like, "%s%%", bundle ? bundle : "");
    if ((rc = nd_db_prepare(db, &st, e,
                            "SELECT * FROM (SELECT seq,time_unix,actor,action,bundle_id,"
                            "payload_sha256,peer,outcome,detail,hash FROM audit "
                            "WHERE bundle_id LIKE ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                            "ti", like, limit > 0 ? limit : (int64_t)-1)))
        return rc;
    if (json)
        nd_buf_str(b, "[");
    while ((rc = nd_db_step(st, e)) == 1) {
        int64_t seq = nd_col_int(st, 0), t = nd_col_int(st, 1);
        if (json) {
            static const char *const names[] = {"seq",  "time", "actor",   "action", "bundle",
                                                "hash", "peer", "outcome", "detail", "entry_hash"};
            nd_buf_str(b, first ? "\n {" : ",\n {");
            for (int c = 0; c < 10; c++) {
                nd_buf_printf(b, "%s\"%s\":", c ? "," : "", names[c]);
                if (c < 2)
                    nd_buf_printf(b, "%" PRId64, c ? t : seq);
                else
                    nd_buf_json_str(b, nd_col_text(st, c));
            }
            nd_buf_str(b, "}");
        } else {
            char tb[32] = "?";
            time_t tt = (time_t)t;
            struct tm tm;
            if (gmtime_r(&tt, &tm))
                strftime(tb, sizeof tb, "%Y-%m-%dT%H:%M:%SZ", &tm);
            const char *bid = nd_col_text(st, 4), *peer = nd_col_text(st, 6);
            nd_buf_printf(b, "%5" PRId64 " %s %-10s %-18s %-8s", seq, tb, nd_col_text(st, 3),
                          nd_col_text(st, 2), nd_col_text(st, 7));
            if (*bid)
                nd_buf_printf(b, " bundle %.12s", bid);
            if (*peer)
                nd_buf_printf(b, " peer %s", peer);
            if (*nd_col_text(st, 8))
                nd_buf_printf(b, " - %s", nd_col_text(st, 8));
            nd_buf_str(b, "\n");
        }
        first = 0;
    }
    nd_db_finalize(st);
    if (json)
        nd_buf_str(b, first ? "]\n" : "\n]\n");
    return rc < 0 ? rc : 0;
}

int nd_audit_record(const char *node_dir, const nd_audit_entry *en, sc_error *e)
{
    sqlite3 *db = NULL;
    int rc = nd_db_open(node_dir, 1, &db, e);
    if (!rc)
        rc = nd_audit_append(db, en, NULL, e);
    if (!rc)
        rc = nd_audit_anchor(db, node_dir, e);
    nd_db_close(db);
    return rc;
}

int nd_audit_record_user(const char *node_dir, const char *action, const char *peer,
                         const char *outcome, const char *detail, sc_error *e)
{
    char actor[96];
    nd_audit_os_actor(actor, sizeof actor);
    nd_audit_entry en = {actor, action, "", "", peer, outcome, detail};
    return nd_audit_record(node_dir, &en, e);
}
