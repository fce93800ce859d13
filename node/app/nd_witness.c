/*
 * nd_witness.c - signed audit heads, the peer's store of them and the
 * check of a log against exported heads (see nd_witness.h).
 */
#include "nd_witness.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nd_buf.h"
#include "nd_state.h"
#include "sc_sign.h"
#include "sc_util.h"
#include "sp_check.h"

#define SIG_LINE_LEN (11 + 88 + 1) /* "signature: " + base64 of 64 bytes + "\n" */

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS witness_heads("
    " node TEXT NOT NULL," /* whose audit log */
    " seq INTEGER NOT NULL,"
    " hash TEXT NOT NULL,"
    " time_unix INTEGER NOT NULL,"     /* signed at, by that node's clock */
    " received_unix INTEGER NOT NULL," /* kept at, by this node's clock */
    " head TEXT NOT NULL,"             /* the signed head exactly as received */
    " PRIMARY KEY(node, seq));";

int nd_witness_schema(sqlite3 *db, sc_error *e)
{
    return nd_db_exec(db, schema_sql, e);
}

static void fmt_time(char out[32], int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    snprintf(out, 32, "%" PRId64, t);
    if (gmtime_r(&tt, &tm))
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int nd_audit_head_current(sqlite3 *db, const char *node, int64_t now, nd_audit_head *h, sc_error *e)
{
    int found = 0, rc;
    memset(h, 0, sizeof *h);
    snprintf(h->node, sizeof h->node, "%s", node);
    h->time_unix = now;
    if ((rc = nd_db_int(db, &h->seq, &found, e, "SELECT MAX(seq) FROM audit WHERE seq>0", "")))
        return rc;
    if (!found || h->seq <= 0) {
        h->seq = 0;
        return 0;
    }
    return nd_db_text(db, h->hash, sizeof h->hash, NULL, e, "SELECT hash FROM audit WHERE seq=?",
                      "i", h->seq);
}

static void head_render(nd_buf *b, const nd_audit_head *h)
{
    nd_buf_printf(
        b, "sldd-audit-head: v1\nnode: %s\nseq: %" PRId64 "\nhash: %s\ntime-unix: %" PRId64 "\n",
        h->node, h->seq, h->hash, h->time_unix);
}

static int hash_valid(const char *v)
{
    return strlen(v) == 64 && strspn(v, "0123456789abcdef") == 64;
}

int nd_audit_head_sign(const nd_audit_head *h, const uint8_t sign_sk[64], char **out, size_t *len,
                       sc_error *e)
{
    uint8_t sig[64];
    char sig64[100];
    nd_buf b;
    int rc;
    *out = NULL;
    if (!sp_valid_id(h->node) || h->seq < 1 || !hash_valid(h->hash) || h->time_unix < 0)
        return sc_error_set(e, SC_EINVAL, "audit head: invalid fields");
    nd_buf_init(&b, ND_AUDIT_HEAD_MAX);
    head_render(&b, h);
    if (b.failed) {
        nd_buf_free(&b);
        return sc_error_set(e, SC_ENOMEM, "audit head too large");
    }
    if ((rc = sc_pae_sign(sig, ND_TYPE_AUDIT_HEAD, (const uint8_t *)b.data, b.len, sign_sk, e))) {
        nd_buf_free(&b);
        return rc;
    }
    sc_b64_encode(sig64, sig, 64);
    nd_buf_printf(&b, "signature: %s\n", sig64);
    *out = nd_buf_take(&b, len);
    return *out ? 0 : sc_error_set(e, SC_ENOMEM, "audit head too large");
}

/* The fields of the signed part (NUL-terminated copy, modified). */
static int head_fields(char *cur, nd_audit_head *h, sc_error *e)
{
    char *k, *v;
    int have = 0, r, bit;
    long long x;
    while ((r = sc_kv_next(&cur, &k, &v)) == 1) {
        if (!strcmp(k, "sldd-audit-head") && !strcmp(v, "v1"))
            bit = 1;
        else if (!strcmp(k, "node") && sp_valid_id(v) && strlen(v) < sizeof h->node)
            bit = 2, snprintf(h->node, sizeof h->node, "%s", v);
        else if (!strcmp(k, "seq") && !nd_parse_int(v, 1, INT64_MAX, &x))
            bit = 4, h->seq = x;
        else if (!strcmp(k, "hash") && hash_valid(v))
            bit = 8, memcpy(h->hash, v, 65);
        else if (!strcmp(k, "time-unix") && !nd_parse_int(v, 0, INT64_MAX, &x))
            bit = 16, h->time_unix = x;
        else
            return sc_error_set(e, SC_EFORMAT, "audit head: bad line '%s'", k);
        if (have & bit)
            return sc_error_set(e, SC_EFORMAT, "audit head: '%s' twice", k);
        have |= bit;
    }
    if (r < 0 || have != 31)
        return sc_error_set(e, SC_EFORMAT, "audit head: incomplete");
    return 0;
}

int nd_audit_head_verify(const char *text, size_t len, const uint8_t pk[32], nd_audit_head *out,
                         sc_error *e)
{
    uint8_t sig[64];
    memset(out, 0, sizeof *out);
    if (len > ND_AUDIT_HEAD_MAX || len <= SIG_LINE_LEN || memchr(text, 0, len))
        return sc_error_set(e, SC_EFORMAT, "audit head: empty, too large or not text");
    size_t signed_len = len - SIG_LINE_LEN;
    const char *sl = text + signed_len;
    if (text[signed_len - 1] != '\n' || memcmp(sl, "signature: ", 11) || text[len - 1] != '\n')
        return sc_error_set(e, SC_EFORMAT, "audit head: no signature line at the end");
    if (sc_b64_decode_exact(sig, 64, sl + 11, 88, e))
        return sc_error_set(e, SC_EFORMAT, "audit head: bad signature encoding");
    char *copy = malloc(signed_len + 1);
    if (!copy)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    memcpy(copy, text, signed_len);
    copy[signed_len] = 0;
    int rc = head_fields(copy, out, e);
    free(copy);
    if (rc)
        return rc;
    nd_buf b;
    nd_buf_init(&b, ND_AUDIT_HEAD_MAX);
    head_render(&b, out);
    int canonical = !b.failed && b.len == signed_len && !memcmp(b.data, text, signed_len);
    nd_buf_free(&b);
    if (!canonical)
        return sc_error_set(e, SC_EFORMAT, "audit head: not in canonical form");
    if (sc_pae_verify(sig, ND_TYPE_AUDIT_HEAD, (const uint8_t *)text, signed_len, pk))
        return sc_error_set(e, SC_EREFUSE_NODE_SIG,
                            "audit head: signature does not verify with the key of %s", out->node);
    return 0;
}

/* ---------------------------------------------------------------- the store */

/* The verdict on h against what is kept of h->node (inside the transaction). */
static int judge(sqlite3 *db, const nd_audit_head *h, nd_witness_result *res, sc_error *e)
{
    char kept[65], when[32];
    int64_t top = 0, top_recv = 0, count = 0;
    int found = 0, rc;
    if ((rc = nd_db_text(db, kept, sizeof kept, &found, e,
                         "SELECT hash FROM witness_heads WHERE node=? AND seq=?", "ti", h->node,
                         h->seq)))
        return rc;
    if (found) {
        int64_t recv = 0;
        if ((rc = nd_db_int(db, &recv, NULL, e,
                            "SELECT received_unix FROM witness_heads WHERE node=? AND seq=?", "ti",
                            h->node, h->seq)))
            return rc;
        fmt_time(when, recv);
        if (!strcmp(kept, h->hash)) {
            res->verdict = ND_WITNESS_DUPLICATE;
            return 0;
        }
        res->verdict = ND_WITNESS_CONFLICT;
        snprintf(res->reason, sizeof res->reason,
                 "entry %" PRId64 " of %s was witnessed at %s with hash %s, now signed with hash "
                 "%s: its log was rewritten",
                 h->seq, h->node, when, kept, h->hash);
        return 0;
    }
    if ((rc = nd_db_int(db, &top, &found, e, "SELECT MAX(seq) FROM witness_heads WHERE node=?", "t",
                        h->node)))
        return rc;
    if (found && top > h->seq) {
        if ((rc = nd_db_int(db, &top_recv, NULL, e,
                            "SELECT received_unix FROM witness_heads WHERE node=? AND seq=?", "ti",
                            h->node, top)))
            return rc;
        fmt_time(when, top_recv);
        res->verdict = ND_WITNESS_BACKWARDS;
        snprintf(res->reason, sizeof res->reason,
                 "head at entry %" PRId64 " goes backwards: entry %" PRId64
                 " of %s was witnessed at %s (log truncated or restored)",
                 h->seq, top, h->node, when);
        return 0;
    }
    if ((rc = nd_db_int(db, &count, NULL, e, "SELECT COUNT(*) FROM witness_heads WHERE node=?", "t",
                        h->node)))
        return rc;
    if (count >= ND_WITNESS_MAX_PER_NODE) {
        res->verdict = ND_WITNESS_FULL;
        snprintf(res->reason, sizeof res->reason,
                 "%d heads of %s are kept already (the most this node keeps)",
                 ND_WITNESS_MAX_PER_NODE, h->node);
        return 0;
    }
    res->verdict = ND_WITNESS_STORED;
    return 0;
}

int nd_witness_store(sqlite3 *db, const char *sender, const uint8_t sender_pk[32], const char *text,
                     size_t len, int64_t now, int64_t skew, nd_witness_result *res, sc_error *e)
{
    int rc;
    memset(res, 0, sizeof *res);
    rc = nd_audit_head_verify(text, len, sender_pk, &res->head, e);
    /* another node's head fails the sender's key too: say which rule */
    if ((rc == 0 || rc == SC_EREFUSE_NODE_SIG) && strcmp(res->head.node, sender))
        return sc_error_set(e, SC_EPERM,
                            "a head of %s sent by %s: a node sends only its own audit head",
                            res->head.node, sender);
    if (rc)
        return rc;
    if (res->head.time_unix > now + skew)
        return sc_error_set(e, SC_EREFUSE_FUTURE,
                            "audit head signed %" PRId64 " s in the future (skew allowed: %" PRId64
                            " s)",
                            res->head.time_unix - now, skew);
    char copy[ND_AUDIT_HEAD_MAX + 1]; /* the body is not NUL-terminated */
    memcpy(copy, text, len);
    copy[len] = 0;
    if ((rc = nd_db_begin(db, e)))
        return rc;
    rc = judge(db, &res->head, res, e);
    if (!rc && res->verdict == ND_WITNESS_STORED)
        rc = nd_db_run(db, e,
                       "INSERT INTO witness_heads(node,seq,hash,time_unix,received_unix,head) "
                       "VALUES(?,?,?,?,?,?)",
                       "titiit", res->head.node, res->head.seq, res->head.hash, res->head.time_unix,
                       now, copy);
    if (rc) {
        nd_db_rollback(db);
        return rc;
    }
    return nd_db_commit(db, e);
}

int nd_witness_export(sqlite3 *db, const char *self_id, const char *node, int64_t now, FILE *out,
                      int64_t *count, sc_error *e)
{
    sqlite3_stmt *st;
    int64_t n = 0;
    int rc;
    if (count)
        *count = 0;
    if (!sp_valid_id(node))
        return sc_error_set(e, SC_EINVAL, "invalid node id");
    if ((rc = nd_db_prepare(db, &st, e,
                            "SELECT received_unix, head FROM witness_heads WHERE node=? "
                            "ORDER BY seq",
                            "t", node)))
        return rc;
    if (fprintf(out,
                "# audit heads of %s witnessed by %s; check them on %s with\n"
                "#   sldd audit verify --dir NODE --witnesses FILE\n"
                "sldd-witnesses: v1\nwitness: %s\nnode: %s\nexported-unix: %" PRId64 "\n",
                node, self_id, node, self_id, node, now) < 0)
        rc = sc_error_set(e, SC_EIO, "cannot write the export");
    while (!rc && (rc = nd_db_step(st, e)) == 1) {
        if (fprintf(out, "\nreceived-unix: %" PRId64 "\n%s", nd_col_int(st, 0),
                    nd_col_text(st, 1)) < 0)
            rc = sc_error_set(e, SC_EIO, "cannot write the export");
        else
            n++, rc = 0;
    }
    nd_db_finalize(st);
    if (count)
        *count = n;
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- the check */

typedef struct check_ctx {
    sqlite3 *db;
    const char *self_id, *name;
    const uint8_t *pk;
    char witness[65];
    int64_t last_seq; /* the local log's last entry */
    nd_witness_report *rep;
    FILE *out;
} check_ctx;

static void say(check_ctx *x, const char *fmt, ...) SC_PRINTF(2, 3);
static void say(check_ctx *x, const char *fmt, ...)
{
    va_list ap;
    if (!x->out)
        return;
    va_start(ap, fmt);
    vfprintf(x->out, fmt, ap);
    va_end(ap);
    fputc('\n', x->out);
}

/* One record: "received-unix: N\n" then the signed head. */
static int check_record(check_ctx *x, int idx, const char *p, size_t n, sc_error *e)
{
    const char *nl = memchr(p, '\n', n);
    char line[64], recv_s[32], sign_s[32], found[65];
    long long recv;
    nd_audit_head h;
    sc_error he = {0, ""};
    int have = 0, rc;
    x->rep->heads++;
    size_t l1 = nl ? (size_t)(nl - p) : 0;
    if (!nl || l1 >= sizeof line || l1 < 16 || memcmp(p, "received-unix: ", 15)) {
        x->rep->unchecked++;
        say(x, "%s record %d: cannot be checked: no 'received-unix:' line", x->name, idx);
        return 0;
    }
    memcpy(line, p + 15, l1 - 15);
    line[l1 - 15] = 0;
    if (nd_parse_int(line, 0, INT64_MAX, &recv)) {
        x->rep->unchecked++;
        say(x, "%s record %d: cannot be checked: bad 'received-unix:' line", x->name, idx);
        return 0;
    }
    rc = nd_audit_head_verify(nl + 1, n - l1 - 1, x->pk, &h, &he);
    if (rc && (rc != SC_EREFUSE_NODE_SIG || !strcmp(h.node, x->self_id))) {
        x->rep->unchecked++;
        say(x, "%s record %d: cannot be checked: %s", x->name, idx,
            rc == SC_EREFUSE_NODE_SIG ? "not signed by this node's key (forged or damaged, "
                                        "or the node's signing key changed)"
                                      : he.msg);
        return 0;
    }
    if (strcmp(h.node, x->self_id)) {
        x->rep->unchecked++;
        say(x, "%s record %d: cannot be checked: a head of %s, not of this node (%s)", x->name, idx,
            h.node, x->self_id);
        return 0;
    }
    fmt_time(recv_s, recv);
    fmt_time(sign_s, h.time_unix);
    if ((rc = nd_db_text(x->db, found, sizeof found, &have, e, "SELECT hash FROM audit WHERE seq=?",
                         "i", h.seq)))
        return rc;
    if (have && !strcmp(found, h.hash)) {
        x->rep->agree++;
        if (h.seq > x->rep->latest_seq) {
            x->rep->latest_seq = h.seq;
            x->rep->latest_received = recv;
            snprintf(x->rep->latest_witness, sizeof x->rep->latest_witness, "%s", x->witness);
        }
        return 0;
    }
    x->rep->contradictions++;
    if (have)
        say(x,
            "witness %s contradicts the log at entry %" PRId64 " (rewritten): expected hash %s "
            "(witnessed at %s, head signed by this node at %s), found hash %s",
            x->witness, h.seq, h.hash, recv_s, sign_s, found);
    else if (h.seq > x->last_seq)
        say(x,
            "witness %s contradicts the log at entry %" PRId64 " (truncated): expected hash %s "
            "(witnessed at %s, head signed by this node at %s), but the log ends at entry %" PRId64,
            x->witness, h.seq, h.hash, recv_s, sign_s, x->last_seq);
    else
        say(x,
            "witness %s contradicts the log at entry %" PRId64 " (removed): expected hash %s "
            "(witnessed at %s, head signed by this node at %s), but the log has no entry %" PRId64,
            x->witness, h.seq, h.hash, recv_s, sign_s, h.seq);
    return 0;
}

/* The header block (up to the first blank line): who witnessed which node. */
static int check_header(check_ctx *x, const char *p, size_t n)
{
    char *copy = malloc(n + 1), *cur, *k, *v;
    int have = 0, r;
    if (!copy)
        return -1;
    memcpy(copy, p, n);
    copy[n] = 0;
    cur = copy;
    while ((r = sc_kv_next(&cur, &k, &v)) == 1) {
        if (!strcmp(k, "sldd-witnesses") && !strcmp(v, "v1"))
            have |= 1;
        else if (!strcmp(k, "witness") && sp_valid_id(v) && strlen(v) < sizeof x->witness)
            have |= 2, snprintf(x->witness, sizeof x->witness, "%s", v);
        else if (!strcmp(k, "node") && sp_valid_id(v))
            have |= 4;
        else if (strcmp(k, "exported-unix"))
            have |= 8;
    }
    free(copy);
    return r == 0 && have == 7 ? 0 : -1;
}

int nd_witness_check(sqlite3 *db, const char *self_id, const uint8_t pk[32], const char *name,
                     const char *text, size_t len, nd_witness_report *rep, FILE *out, sc_error *e)
{
    check_ctx x = {db, self_id, name, pk, "", 0, rep, out};
    const char *p = text, *end = text + len;
    int found = 0, rc, idx = 0;
    if ((rc = nd_db_int(db, &x.last_seq, &found, e, "SELECT MAX(seq) FROM audit", "")))
        return rc;
    if (!found)
        x.last_seq = 0;
    if (memchr(text, 0, len)) {
        rep->unchecked++;
        say(&x, "%s: not a witness export (binary data)", name);
        return 0;
    }
    /* blocks separated by blank lines; the first is the header */
    while (p < end) {
        if (*p == '\n') {
            p++;
            continue;
        }
        const char *q = p;
        while (q < end && !(*q == '\n' && (q + 1 == end || q[1] == '\n')))
            q++;
        size_t n = (size_t)(q - p) + (q < end ? 1 : 0);
        if (idx == 0 && check_header(&x, p, n)) {
            rep->unchecked++;
            say(&x,
                "%s: not a witness export (no 'sldd-witnesses: v1' header with witness "
                "and node)",
                name);
            return 0;
        }
        if (idx > 0 && (rc = check_record(&x, idx, p, n, e)))
            return rc;
        idx++;
        p = q < end ? q + 1 : end;
    }
    if (idx == 0) {
        rep->unchecked++;
        say(&x, "%s: empty", name);
    }
    return 0;
}
