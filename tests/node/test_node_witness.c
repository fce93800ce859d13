/*
 * test_node_witness.c - witnessed audit heads without a daemon: the signed
 * head (round trip, wrong key, any changed byte, non-canonical forms), the
 * peer's store rules (stored, duplicate, conflict, backwards, another
 * node's head, from the future; nothing kept is ever replaced), and the
 * check of a log against an export: an untouched log agrees, a log whose
 * tail was truncated and re-chained with its anchor rewritten - which
 * nd_audit_verify calls intact - contradicts the witnessed heads, and
 * records that cannot be checked are counted as such.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nd_audit.h"
#include "nd_config.h"
#include "nd_state.h"
#include "nd_witness.h"
#include "sc_keys.h"
#include "nd_node.h"
#include "sc_util.h"
#include "sd_test.h"

static char root[256];
static sc_node_keys *ka, *kb;

static sqlite3 *open_db(const char *name, char *dir, size_t len)
{
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    snprintf(dir, len, "%s/%s", root, name);
    CHECK(mkdir(dir, 0700) == 0);
    CHECK(nd_db_open(dir, 1, &db, &e) == 0);
    CHECK(nd_witness_schema(db, &e) == 0);
    return db;
}

static char *signed_head(const char *node, int64_t seq, const char *hash, int64_t t,
                         const sc_node_keys *k, size_t *len)
{
    nd_audit_head h;
    char *text = NULL;
    sc_error e = {0, ""};
    memset(&h, 0, sizeof h);
    snprintf(h.node, sizeof h.node, "%s", node);
    snprintf(h.hash, sizeof h.hash, "%s", hash);
    h.seq = seq;
    h.time_unix = t;
    CHECKF(nd_audit_head_sign(&h, k->sign_sk, &text, len, &e) == 0, "%s", e.msg);
    return text;
}

static const char H1[] = "1111111111111111111111111111111111111111111111111111111111111111";
static const char H2[] = "2222222222222222222222222222222222222222222222222222222222222222";

static void test_head_signature(void)
{
    size_t len = 0;
    char *t = signed_head("node-a", 42, H1, 1700000000, ka, &len);
    nd_audit_head h;
    sc_error e = {0, ""};
    CHECK(t && len < ND_AUDIT_HEAD_MAX && !strncmp(t, "sldd-audit-head: v1\nnode: node-a\n", 33));
    CHECKF(nd_audit_head_verify(t, len, ka->sign_pk, &h, &e) == 0, "%s", e.msg);
    CHECK(h.seq == 42 && !strcmp(h.hash, H1) && !strcmp(h.node, "node-a") &&
          h.time_unix == 1700000000);
    /* another node's key */
    CHECK(nd_audit_head_verify(t, len, kb->sign_pk, &h, &e) == SC_EREFUSE_NODE_SIG);
    /* any changed byte of the signed part or the signature */
    char *m = malloc(len);
    CHECK(m != NULL);
    const char *edits[] = {"seq: 42", "seq: 43", "hash: 1",       "hash: 3",
                           "node-a",  "node-b",  "time-unix: 17", "time-unix: 18"};
    for (size_t i = 0; i < 8; i += 2) {
        memcpy(m, t, len);
        char *at = strstr(m, edits[i]);
        CHECK(at != NULL);
        memcpy(at, edits[i + 1], strlen(edits[i + 1]));
        CHECKF(nd_audit_head_verify(m, len, ka->sign_pk, &h, &e) == SC_EREFUSE_NODE_SIG,
               "edit %s: %s", edits[i + 1], e.msg);
    }
    memcpy(m, t, len);
    char *sig = strstr(m, "signature: ") + 11;
    sig[3] = sig[3] == 'A' ? 'B' : 'A';
    CHECK(nd_audit_head_verify(m, len, ka->sign_pk, &h, &e) == SC_EREFUSE_NODE_SIG);
    free(m);
    /* non-canonical forms are malformed, whatever the signature */
    char buf[1024];
    const char *sigline = strstr(t, "signature: ");
    const char *bad[] = {
        "sldd-audit-head: v1\nnode: node-a\nseq:  42\nhash: %s\ntime-unix: 1700000000\n%s",
        "sldd-audit-head: v1\nseq: 42\nnode: node-a\nhash: %s\ntime-unix: 1700000000\n%s",
        "sldd-audit-head: v1\r\nnode: node-a\nseq: 42\nhash: %s\ntime-unix: 1700000000\n%s",
        "sldd-audit-head: v1\nnode: node-a\nseq: 042\nhash: %s\ntime-unix: 1700000000\n%s",
        "sldd-audit-head: v1\nnode: node-a\nseq: 0\nhash: %s\ntime-unix: 1700000000\n%s",
        "sldd-audit-head: v1\nnode: node-a\nseq: 42\nseq: 42\nhash: %s\ntime-unix: 1\n%s",
        "sldd-audit-head: v2\nnode: node-a\nseq: 42\nhash: %s\ntime-unix: 1700000000\n%s",
        "sldd-audit-head: v1\nnode: node-a\nseq: 42\nhash: %s\ntime-unix: 1700000000\n"
        "# comment\n%s",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int n = snprintf(buf, sizeof buf, bad[i], H1, sigline);
        CHECKF(nd_audit_head_verify(buf, (size_t)n, ka->sign_pk, &h, &e) == SC_EFORMAT,
               "form %zu accepted", i);
    }
    /* upper-case hex, a truncated signature, too large, empty */
    int n = snprintf(buf, sizeof buf, "%.*sA%s", (int)(strstr(t, "hash: ") + 6 - t), t,
                     strstr(t, "hash: ") + 7);
    CHECK(nd_audit_head_verify(buf, (size_t)n, ka->sign_pk, &h, &e) == SC_EFORMAT);
    CHECK(nd_audit_head_verify(t, len - 2, ka->sign_pk, &h, &e) == SC_EFORMAT);
    CHECK(nd_audit_head_verify(t, ND_AUDIT_HEAD_MAX + 1, ka->sign_pk, &h, &e) == SC_EFORMAT);
    CHECK(nd_audit_head_verify("", 0, ka->sign_pk, &h, &e) == SC_EFORMAT);
    free(t);
}

static int store(sqlite3 *db, const char *sender, const sc_node_keys *signer, const uint8_t *pk,
                 const char *node, int64_t seq, const char *hash, int64_t t, nd_witness_result *res)
{
    size_t len = 0;
    sc_error e = {0, ""};
    char *text = signed_head(node, seq, hash, t, signer, &len);
    int rc = nd_witness_store(db, sender, pk, text, len, 1700000100, 300, res, &e);
    free(text);
    return rc;
}

static int64_t kept(sqlite3 *db, const char *where)
{
    char sql[200];
    int64_t n = -1;
    sc_error e = {0, ""};
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM witness_heads WHERE %s", where);
    CHECK(nd_db_int(db, &n, NULL, &e, sql, "") == 0);
    return n;
}

static void test_store_rules(void)
{
    char dir[300];
    sqlite3 *db = open_db("store", dir, sizeof dir);
    nd_witness_result r;
    const uint8_t *pa = ka->sign_pk;
    CHECK(store(db, "node-a", ka, pa, "node-a", 5, H1, 1700000000, &r) == 0 &&
          r.verdict == ND_WITNESS_STORED);
    /* retransmission: nothing changes */
    CHECK(store(db, "node-a", ka, pa, "node-a", 5, H1, 1700000050, &r) == 0 &&
          r.verdict == ND_WITNESS_DUPLICATE);
    CHECK(kept(db, "node='node-a' AND seq=5 AND time_unix=1700000000") == 1);
    /* the same entry with another hash: refused, the first stays */
    CHECK(store(db, "node-a", ka, pa, "node-a", 5, H2, 1700000060, &r) == 0 &&
          r.verdict == ND_WITNESS_CONFLICT);
    CHECK(strstr(r.reason, "entry 5") && strstr(r.reason, H1) && strstr(r.reason, H2));
    CHECK(kept(db, "seq=5 AND hash='"
                   "1111111111111111111111111111111111111111111111111111111111111111'") == 1);
    /* forward is fine, backwards is not */
    CHECK(store(db, "node-a", ka, pa, "node-a", 9, H2, 1700000070, &r) == 0 &&
          r.verdict == ND_WITNESS_STORED);
    CHECK(store(db, "node-a", ka, pa, "node-a", 7, H1, 1700000080, &r) == 0 &&
          r.verdict == ND_WITNESS_BACKWARDS);
    CHECK(strstr(r.reason, "entry 7") && strstr(r.reason, "entry 9"));
    /* another node's head, even correctly signed by it, sent by node-a */
    CHECK(store(db, "node-a", kb, kb->sign_pk, "node-b", 1, H1, 1700000000, &r) == SC_EPERM);
    /* ... checked against the sender's key (a relay): still the same rule */
    CHECK(store(db, "node-a", kb, pa, "node-b", 1, H1, 1700000000, &r) == SC_EPERM);
    /* node-a's head signed by node-b's key */
    CHECK(store(db, "node-a", kb, pa, "node-a", 10, H1, 1700000000, &r) == SC_EREFUSE_NODE_SIG);
    /* beyond the clock skew (now 1700000100, skew 300) */
    CHECK(store(db, "node-a", ka, pa, "node-a", 11, H1, 1700000401, &r) == SC_EREFUSE_FUTURE);
    CHECK(store(db, "node-a", ka, pa, "node-a", 11, H1, 1700000400, &r) == 0 &&
          r.verdict == ND_WITNESS_STORED);
    /* heads of different nodes do not interfere */
    CHECK(store(db, "node-b", kb, kb->sign_pk, "node-b", 2, H2, 1700000000, &r) == 0 &&
          r.verdict == ND_WITNESS_STORED);
    CHECK(kept(db, "node='node-a'") == 3 && kept(db, "node='node-b'") == 1);
    nd_db_close(db);
}

static char *export_text(sqlite3 *db, const char *witness, const char *node, size_t *len)
{
    char *text = NULL;
    int64_t n = -1;
    sc_error e = {0, ""};
    FILE *f = open_memstream(&text, len);
    CHECK(f != NULL);
    CHECKF(nd_witness_export(db, witness, node, 1700000000, f, &n, &e) == 0, "%s", e.msg);
    fclose(f);
    return text;
}

static int check(sqlite3 *db, const char *text, size_t len, nd_witness_report *rep, char **out)
{
    size_t olen = 0;
    sc_error e = {0, ""};
    FILE *f = open_memstream(out, &olen);
    memset(rep, 0, sizeof *rep);
    int rc = nd_witness_check(db, "node-a", ka->sign_pk, "export", text, len, rep, f, &e);
    fclose(f);
    if (getenv("ND_TEST_VERBOSE"))
        fprintf(stderr, "%s", *out);
    return rc;
}

static void head_of(sqlite3 *db, nd_audit_head *h)
{
    sc_error e = {0, ""};
    CHECK(nd_audit_head_current(db, "node-a", 1700000000, h, &e) == 0);
}

static void test_check(void)
{
    char adir[300], bdir[300];
    sqlite3 *a = open_db("check-a", adir, sizeof adir), *b = open_db("check-b", bdir, sizeof bdir);
    sc_error e = {0, ""};
    nd_witness_result r;
    nd_audit_head h4, h6;
    for (int i = 1; i <= 6; i++) {
        nd_audit_entry en = {"node", "approval", "", "", "", "ok", i % 2 ? "odd" : "even"};
        CHECK(nd_audit_append(a, &en, NULL, &e) == 0);
        if (i == 4)
            head_of(a, &h4);
    }
    head_of(a, &h6);
    CHECK(nd_audit_anchor(a, adir, &e) == 0);
    CHECK(h4.seq == 4 && h6.seq == 6);
    /* node-b witnesses the heads at entries 4 and 6 */
    CHECK(store(b, "node-a", ka, ka->sign_pk, "node-a", 4, h4.hash, 1700000000, &r) == 0 &&
          r.verdict == ND_WITNESS_STORED);
    CHECK(store(b, "node-a", ka, ka->sign_pk, "node-a", 6, h6.hash, 1700000000, &r) == 0 &&
          r.verdict == ND_WITNESS_STORED);
    size_t len = 0;
    char *text = export_text(b, "node-b", "node-a", &len), *out = NULL;
    CHECK(text && strstr(text, "sldd-witnesses: v1\nwitness: node-b\nnode: node-a\n"));
    nd_witness_report rep;
    CHECK(check(a, text, len, &rep, &out) == 0);
    CHECK(rep.heads == 2 && rep.agree == 2 && rep.contradictions == 0 && rep.unchecked == 0 &&
          rep.latest_seq == 6 && !strcmp(rep.latest_witness, "node-b"));
    free(out);

    /* truncate to entry 3, re-chain one entry, rewrite audit.head: the chain
     * check alone calls that intact */
    CHECK(nd_db_exec(a, "DELETE FROM audit WHERE seq>3", &e) == 0);
    nd_audit_entry en = {"node", "approval", "", "", "", "ok", "rewritten"};
    CHECK(nd_audit_append(a, &en, NULL, &e) == 0);
    char anchor[400];
    snprintf(anchor, sizeof anchor, "%s/%s", adir, ND_AUDIT_HEAD_FILE);
    CHECK(unlink(anchor) == 0 && nd_audit_anchor(a, adir, &e) == 0);
    nd_audit_report ar;
    CHECK(nd_audit_verify(a, adir, &ar, NULL, &e) == 0 && ar.ok && ar.last_seq == 4);
    nd_audit_head now4;
    head_of(a, &now4);
    CHECK(strcmp(now4.hash, h4.hash) != 0);
    CHECK(check(a, text, len, &rep, &out) == 0);
    CHECK(rep.heads == 2 && rep.agree == 0 && rep.contradictions == 2 && rep.unchecked == 0);
    char want[400];
    snprintf(want, sizeof want,
             "witness node-b contradicts the log at entry 4 (rewritten): expected hash %s",
             h4.hash);
    CHECKF(out && strstr(out, want) && strstr(out, now4.hash), "%s", out);
    snprintf(want, sizeof want,
             "witness node-b contradicts the log at entry 6 (truncated): expected hash %s",
             h6.hash);
    CHECKF(out && strstr(out, want) && strstr(out, "the log ends at entry 4"), "%s", out);
    CHECK(out && strstr(out, "witnessed at 2023-11-14T22:15:00Z"));
    free(out);

    /* records that cannot be checked: a changed hash (signature fails), a
     * head of another node, not an export at all */
    char *bad = malloc(len + 1);
    CHECK(bad != NULL);
    memcpy(bad, text, len + 1);
    char *hp = strstr(bad, "hash: ") + 6;
    *hp = *hp == 'a' ? 'b' : 'a';
    CHECK(check(a, bad, len, &rep, &out) == 0);
    CHECK(rep.heads == 2 && rep.unchecked == 1 && rep.contradictions == 1);
    CHECKF(out && strstr(out, "record 1: cannot be checked") &&
               strstr(out, "not signed by this node's key"),
           "%s", out);
    free(out);
    free(bad);
    CHECK(store(b, "node-b", kb, kb->sign_pk, "node-b", 1, H1, 1700000000, &r) == 0);
    char *other = export_text(b, "node-b", "node-b", &len);
    CHECK(check(a, other, len, &rep, &out) == 0 && rep.unchecked == 1 && rep.agree == 0);
    CHECKF(out && strstr(out, "a head of node-b, not of this node (node-a)"), "%s", out);
    free(out);
    free(other);
    CHECK(check(a, "hello\n", 6, &rep, &out) == 0 && rep.unchecked == 1 && rep.heads == 0);
    CHECK(out && strstr(out, "not a witness export"));
    free(out);
    free(text);
    nd_db_close(a);
    nd_db_close(b);
}

/* node.conf: the two triggers, their defaults and bounds */
static void test_config(void)
{
    char dir[300];
    nd_config c;
    sc_error e = {0, ""};
    snprintf(dir, sizeof dir, "%s/conf", root);
    CHECK(nd_node_init(dir, "node-x", &e) == 0);
    CHECK(nd_config_load(dir, &c, &e) == 0);
    CHECK(c.witness_every_entries == 100 && c.witness_every_seconds == 600);
    CHECK(nd_config_append(dir, "witness-every-entries: 0\nwitness-every-seconds: 30\n", &e) == 0);
    CHECK(nd_config_load(dir, &c, &e) == 0);
    CHECK(c.witness_every_entries == 0 && c.witness_every_seconds == 30);
    CHECK(nd_config_append(dir, "witness-every-seconds: -1\n", &e) == 0);
    CHECK(nd_config_load(dir, &c, &e) == SC_EFORMAT && strstr(e.msg, "witness-every-seconds"));
}

int main(void)
{
    uint8_t seed[32];
    sc_error e = {0, ""};
    if (sodium_init() < 0)
        return 1;
    snprintf(root, sizeof root, "/tmp/sldd-test-node-witness-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    memset(seed, 1, sizeof seed);
    CHECK(sc_node_keys_from_seed(seed, &ka, &e) == 0);
    memset(seed, 2, sizeof seed);
    CHECK(sc_node_keys_from_seed(seed, &kb, &e) == 0);
    test_head_signature();
    test_store_rules();
    test_check();
    test_config();
    sc_node_keys_destroy(ka);
    sc_node_keys_destroy(kb);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (!sd_test_failed_ && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return sd_test_finish();
}
