/*
 * test_node_state.c - the node's state pieces without a daemon: the audit
 * chain and every kind of tampering `sldd audit verify` must find, signed
 * receipts, the content-addressed object store, the SQLite replay store,
 * node.conf parsing, the delivery back-off, the JSON helpers, and the
 * audit entry of a detection (named by the model's task).
 */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nd_audit.h"
#include "nd_buf.h"
#include "nd_config.h"
#include "nd_detect.h"
#include "nd_json_get.h"
#include "nd_objects.h"
#include "nd_receipt.h"
#include "nd_state.h"
#include "sc_keys.h"
#include "nd_node.h"
#include "sc_util.h"
#include "sd_test.h"

static char root[256];

static void make_dir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", root, name);
    CHECK(mkdir(out, 0700) == 0);
}

static int append(sqlite3 *db, const char *action, const char *detail)
{
    nd_audit_entry en = {"node", action, "00112233445566778899aabbccddeeff", "", "peer-x",
                         "ok",   detail};
    sc_error e = {0, ""};
    return nd_audit_append(db, &en, NULL, &e);
}

static int verify_problems(sqlite3 *db, const char *dir)
{
    nd_audit_report rep;
    sc_error e = {0, ""};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int rc = nd_audit_verify(db, dir, &rep, f, &e);
    fclose(f);
    if (getenv("ND_TEST_VERBOSE"))
        fprintf(stderr, "%s", text);
    free(text);
    return rc ? -1 : rep.problems;
}

/* a fresh node directory with n audit entries and its anchor */
static sqlite3 *fresh_log(const char *name, char *dir, size_t len, int n)
{
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    make_dir(dir, len, name);
    CHECK(nd_db_open(dir, 1, &db, &e) == 0);
    for (int i = 0; i < n; i++) {
        char d[64];
        snprintf(d, sizeof d, "entry number %d\nwith a second line", i + 1);
        CHECK(append(db, i % 2 ? "send" : "approval", d) == 0);
    }
    CHECK(nd_audit_anchor(db, dir, &e) == 0);
    return db;
}

static void test_audit(void)
{
    char dir[300];
    sc_error e = {0, ""};
    sqlite3 *db = fresh_log("audit-ok", dir, sizeof dir, 6);
    CHECK(verify_problems(db, dir) == 0);
    /* appends inside a transaction roll back with it */
    CHECK(nd_db_begin(db, &e) == 0);
    CHECK(append(db, "import", "rolled back") == 0);
    nd_db_rollback(db);
    CHECK(verify_problems(db, dir) == 0);
    int64_t n = 0;
    CHECK(nd_db_int(db, &n, NULL, &e, "SELECT COUNT(*) FROM audit", "") == 0 && n == 6);
    nd_buf b;
    nd_buf_init(&b, 0);
    CHECK(nd_audit_render(db, &b, 1, 2, NULL, &e) == 0 && !b.failed);
    CHECK(b.data && strstr(b.data, "\"seq\":5") && strstr(b.data, "\"seq\":6") &&
          !strstr(b.data, "\"seq\":4"));
    nd_buf_free(&b);
    nd_db_close(db);

    /* a changed field */
    db = fresh_log("audit-changed", dir, sizeof dir, 6);
    CHECK(nd_db_exec(db, "UPDATE audit SET outcome='refused' WHERE seq=3", &e) == 0);
    CHECK(verify_problems(db, dir) > 0);
    nd_db_close(db);
    /* a changed field with its own hash recomputed: the next link breaks */
    db = fresh_log("audit-rehash", dir, sizeof dir, 6);
    {
        sqlite3_stmt *st;
        CHECK(nd_db_prepare(db, &st, &e,
                            "SELECT time_unix,actor,action,bundle_id,payload_sha256,peer,detail,"
                            "prev_hash FROM audit WHERE seq=3",
                            "") == 0);
        CHECK(nd_db_step(st, &e) == 1);
        nd_buf c;
        nd_buf_init(&c, 0);
        nd_audit_canonical(&c, 3, nd_col_int(st, 0), nd_col_text(st, 1), nd_col_text(st, 2),
                           nd_col_text(st, 3), nd_col_text(st, 4), nd_col_text(st, 5), "refused",
                           nd_col_text(st, 6), nd_col_text(st, 7));
        uint8_t h[32];
        char hex[65];
        sc_sha256(h, (const uint8_t *)c.data, c.len);
        nd_hex(hex, h, 32);
        nd_buf_free(&c);
        nd_db_finalize(st);
        CHECK(nd_db_run(db, &e, "UPDATE audit SET outcome='refused', hash=? WHERE seq=3", "t",
                        hex) == 0);
    }
    CHECK(verify_problems(db, dir) > 0);
    nd_db_close(db);
    /* a removed entry in the middle */
    db = fresh_log("audit-removed", dir, sizeof dir, 6);
    CHECK(nd_db_exec(db, "DELETE FROM audit WHERE seq=4", &e) == 0);
    CHECK(verify_problems(db, dir) > 0);
    nd_db_close(db);
    /* removed and renumbered so that the sequence has no gap */
    db = fresh_log("audit-renumbered", dir, sizeof dir, 6);
    CHECK(nd_db_exec(db, "DELETE FROM audit WHERE seq=4; UPDATE audit SET seq=seq-1 WHERE seq>4",
                     &e) == 0);
    CHECK(verify_problems(db, dir) > 0);
    nd_db_close(db);
    /* two entries swapped (contents exchanged between positions) */
    db = fresh_log("audit-reordered", dir, sizeof dir, 6);
    CHECK(nd_db_exec(db,
                     "UPDATE audit SET seq=-2 WHERE seq=2; UPDATE audit SET seq=2 WHERE seq=5; "
                     "UPDATE audit SET seq=5 WHERE seq=-2",
                     &e) == 0);
    CHECK(verify_problems(db, dir) > 0);
    nd_db_close(db);
    /* the last entry removed: only the anchor can tell */
    db = fresh_log("audit-truncated", dir, sizeof dir, 6);
    CHECK(nd_db_exec(db, "DELETE FROM audit WHERE seq=6", &e) == 0);
    CHECK(verify_problems(db, dir) > 0);
    CHECK(verify_problems(db, NULL) == 0); /* without the anchor it looks intact */
    nd_db_close(db);
    /* a fresh entry after a verified log keeps it intact, anchor follows */
    db = fresh_log("audit-grow", dir, sizeof dir, 2);
    CHECK(append(db, "import", "later") == 0);
    CHECK(verify_problems(db, dir) == 0);
    CHECK(nd_audit_anchor(db, dir, &e) == 0);
    CHECK(verify_problems(db, dir) == 0);
    nd_db_close(db);
}

static void test_receipt(void)
{
    sc_node_keys *k = NULL, *other = NULL;
    sc_error e = {0, ""};
    uint8_t seed[32] = {1}, seed2[32] = {2};
    CHECK(sc_node_keys_from_seed(seed, &k, &e) == 0);
    CHECK(sc_node_keys_from_seed(seed2, &other, &e) == 0);
    nd_receipt r, got;
    memset(&r, 0, sizeof r);
    snprintf(r.receiver, sizeof r.receiver, "hospital-b");
    snprintf(r.sender, sizeof r.sender, "hospital-a");
    for (int i = 0; i < 16; i++)
        r.bundle_id[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 32; i++) {
        r.payload_sha256[i] = (uint8_t)i;
        r.envelope_sha256[i] = (uint8_t)(255 - i);
    }
    r.sequence = 42;
    r.received_unix = 1700000000;
    char *text = NULL;
    size_t len = 0;
    CHECK(nd_receipt_make(&r, k, &text, &len, &e) == 0);
    CHECK(nd_receipt_verify(text, len, k->sign_pk, &got, &e) == 0);
    CHECK(!strcmp(got.receiver, "hospital-b") && !strcmp(got.sender, "hospital-a") &&
          got.sequence == 42 && !memcmp(got.bundle_id, r.bundle_id, 16) &&
          !memcmp(got.payload_sha256, r.payload_sha256, 32) &&
          !memcmp(got.envelope_sha256, r.envelope_sha256, 32) && got.received_unix == 1700000000);
    /* another node's key, and any changed byte, fail */
    CHECK(nd_receipt_verify(text, len, other->sign_pk, &got, &e) != 0);
    char *p = strstr(text, "sequence: 42");
    CHECK(p != NULL);
    if (p) {
        p[11] = '3';
        CHECK(nd_receipt_verify(text, len, k->sign_pk, &got, &e) != 0);
        p[11] = '2';
    }
    CHECK(nd_receipt_verify(text, len - 10, k->sign_pk, &got, &e) != 0);
    free(text);
    sc_node_keys_destroy(k);
    sc_node_keys_destroy(other);
}

static void test_objects(void)
{
    char dir[300], name[65], path[600];
    sc_error e = {0, ""};
    uint8_t data[1000], *out = NULL;
    size_t len = 0;
    make_dir(dir, sizeof dir, "objects");
    for (int i = 0; i < 1000; i++)
        data[i] = (uint8_t)(i * 31);
    CHECK(nd_object_put(dir, data, sizeof data, name, &e) == 0);
    CHECK(nd_object_put(dir, data, sizeof data, name, &e) == 0); /* idempotent */
    CHECK(nd_object_get(dir, name, 4096, &out, &len, &e) == 0 && len == 1000 &&
          !memcmp(out, data, 1000));
    free(out);
    CHECK(nd_object_check(dir, name, &e) == 0);
    /* damage it */
    CHECK(nd_object_path(dir, name, path, sizeof path, &e) == 0);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        fseek(f, 10, SEEK_SET);
        fputc(0x55 ^ data[10], f);
        fclose(f);
    }
    CHECK(nd_object_check(dir, name, &e) == SC_EFORMAT);
    CHECK(nd_object_check(dir,
                          "00000000000000000000000000000000000000000000000000000000000000"
                          "00",
                          &e) == SC_ENOTFOUND);
    CHECK(nd_object_check(dir, "../etc/passwd", &e) == SC_EINVAL);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
}

static void test_replay(void)
{
    char dir[300];
    sqlite3 *db = NULL;
    sc_replay_store *rs = NULL;
    sc_error e = {0, ""};
    uint8_t id1[16] = {1}, id2[16] = {2}, id3[16] = {3};
    make_dir(dir, sizeof dir, "replay");
    CHECK(nd_db_open(dir, 1, &db, &e) == 0);
    CHECK(nd_replay_store_db(db, &rs, &e) == 0);
    CHECK(rs->check(rs, "a", id1, 5, &e) == 0);
    CHECK(rs->record(rs, "a", id1, 5, &e) == 0);
    CHECK(rs->check(rs, "a", id1, 6, &e) == SC_EREFUSE_REPLAY_ID);
    CHECK(rs->check(rs, "b", id1, 1, &e) == SC_EREFUSE_REPLAY_ID);
    CHECK(rs->check(rs, "a", id2, 5, &e) == SC_EREFUSE_REPLAY_SEQ);
    CHECK(rs->check(rs, "a", id2, 4, &e) == SC_EREFUSE_REPLAY_SEQ);
    CHECK(rs->check(rs, "a", id2, 6, &e) == 0);
    CHECK(rs->check(rs, "b", id3, 1, &e) == 0);
    /* recorded inside a rolled-back transaction: forgotten */
    CHECK(nd_db_begin(db, &e) == 0);
    CHECK(rs->record(rs, "a", id2, 6, &e) == 0);
    nd_db_rollback(db);
    CHECK(rs->check(rs, "a", id2, 6, &e) == 0);
    sc_replay_store_destroy(rs);
    /* it survives reopening */
    nd_db_close(db);
    db = NULL;
    CHECK(nd_db_open(dir, 0, &db, &e) == 0);
    CHECK(nd_replay_store_db(db, &rs, &e) == 0);
    CHECK(rs->check(rs, "a", id1, 9, &e) == SC_EREFUSE_REPLAY_ID);
    sc_replay_store_destroy(rs);
    CHECK(nd_db_integrity(db, &e) == 0);
    int64_t v = 0;
    char mode[16] = "";
    CHECK(nd_db_text(db, mode, sizeof mode, NULL, &e, "PRAGMA journal_mode", "") == 0 &&
          !strcmp(mode, "wal"));
    CHECK(nd_db_int(db, &v, NULL, &e, "PRAGMA synchronous", "") == 0 && v == 2); /* FULL */
    /* bind counts are checked */
    CHECK(nd_db_run(db, &e, "SELECT ?", "tt", "a", "b") == SC_EINVAL);
    nd_db_close(db);
}

/* One replay store: what the file-based CLI accepts (nd_node_open with
 * ND_NODE_REPLAY) lands in state.db, where the daemon looks; a node's old
 * replay.log is migrated into it once, and a malformed one refuses. */
static void test_replay_one_store(void)
{
    char dir[300], path[400];
    sc_error e = {0, ""};
    nd_node *n = NULL;
    sqlite3 *db = NULL;
    sc_replay_store *rs = NULL;
    uint8_t idl[16] = {0xaa}, idn[16] = {0xbb};
    snprintf(dir, sizeof dir, "%s/onestore", root);
    CHECKF(nd_node_init(dir, "node-a", &e) == 0, "%s", e.msg);
    snprintf(path, sizeof path, "%s/replay.log", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f, "node-b 7 aa000000000000000000000000000000\nnode-b 8 torn");
        fclose(f);
    }
    CHECKF(nd_node_open(dir, ND_NODE_REPLAY, &n, &e) == 0, "%s", e.msg);
    if (n) {
        CHECK(n->replay->check(n->replay, "node-b", idl, 9, &e) == SC_EREFUSE_REPLAY_ID);
        CHECK(n->replay->check(n->replay, "node-b", idn, 7, &e) == SC_EREFUSE_REPLAY_SEQ);
        CHECK(n->replay->record(n->replay, "node-b", idn, 9, &e) == 0);
    }
    nd_node_close(n);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/replay.log.migrated", dir);
    CHECK(access(path, F_OK) == 0);
    /* the daemon's view of the same node sees both */
    CHECK(nd_db_open(dir, 0, &db, &e) == 0);
    CHECK(nd_replay_store_db(db, &rs, &e) == 0);
    if (rs) {
        CHECK(rs->check(rs, "node-b", idl, 10, &e) == SC_EREFUSE_REPLAY_ID);
        CHECK(rs->check(rs, "node-b", idn, 10, &e) == SC_EREFUSE_REPLAY_ID);
    }
    sc_replay_store_destroy(rs);
    nd_db_close(db);
    /* a malformed log is not half-migrated */
    snprintf(path, sizeof path, "%s/replay.log", dir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f, "node-c 1 cc000000000000000000000000000000\nnode-c x y\n");
        fclose(f);
    }
    n = NULL;
    CHECK(nd_node_open(dir, ND_NODE_REPLAY, &n, &e) == SC_EFORMAT);
    CHECK(n == NULL);
    CHECK(access(path, F_OK) == 0);
    CHECK(nd_db_open(dir, 0, &db, &e) == 0);
    int64_t cnt = -1;
    CHECK(nd_db_int(db, &cnt, NULL, &e, "SELECT COUNT(*) FROM replay WHERE sender='node-c'", "") ==
              0 &&
          cnt == 0);
    nd_db_close(db);
}

static void test_config(void)
{
    char dir[300], id[] = "node-x";
    nd_config c;
    sc_error e = {0, ""};
    snprintf(dir, sizeof dir, "%s/conf", root);
    CHECK(nd_node_init(dir, id, &e) == 0);
    CHECK(nd_config_load(dir, &c, &e) == 0);
    CHECK(!strcmp(c.listen_addr, "127.0.0.1") && c.listen_port == 8443 &&
          c.privacy == ND_PRIVACY_BLOCK && c.n_peers == 0);
    CHECK(nd_config_append(dir,
                           "listen: [::1]:0\ndata: data/set\npeer: node-y https://127.0.0.1:9 "
                           "sha256//K1vZDMFupuwDTCcf3unksnrcUbb2Agh/19kB6V17AGU=\n"
                           "privacy-policy: require\nretry-base-ms: 100\nretry-max-ms: 50\n",
                           &e) == 0);
    CHECK(nd_config_load(dir, &c, &e) == 0);
    CHECK(!strcmp(c.listen_addr, "::1") && c.listen_port == 0);
    CHECK(c.n_peers == 1 && !strcmp(c.peers[0].id, "node-y"));
    CHECK(c.privacy == ND_PRIVACY_REQUIRE && c.retry_base_ms == 100 && c.retry_max_ms == 100);
    CHECK(strstr(c.data, "/conf/data/set") != NULL);
    CHECK(nd_config_append(dir, "peer: node-z http://x sha256//abc\n", &e) == 0);
    CHECK(nd_config_load(dir, &c, &e) == SC_EFORMAT);
}

static void test_backoff(void)
{
    /* exponential, capped, jitter within [d/2, d] */
    CHECK(nd_backoff_ms(1000, 60000, 0, 0.0) == 500);
    CHECK(nd_backoff_ms(1000, 60000, 0, 0.999999) <= 1000);
    CHECK(nd_backoff_ms(1000, 60000, 3, 0.0) == 4000);
    CHECK(nd_backoff_ms(1000, 60000, 30, 0.5) >= 30000 &&
          nd_backoff_ms(1000, 60000, 30, 0.5) <= 60000);
    CHECK(nd_backoff_ms(1000, 60000, 1000, 1.0) <= 60000);
    for (int a = 0; a < 40; a++) {
        int64_t lo = nd_backoff_ms(200, 5000, a, 0), hi = nd_backoff_ms(200, 5000, a, 0.99);
        CHECK(lo >= 100 && hi <= 5000 && lo <= hi);
    }
}

static void test_json(void)
{
    nd_buf b;
    char v[64];
    nd_buf_init(&b, 0);
    nd_buf_str(&b, "{\"a\":");
    nd_buf_json_str(&b, "x\"y\\z\n\x01");
    nd_buf_str(&b, ",\"n\":");
    nd_buf_json_num(&b, 0.25);
    nd_buf_str(&b, ",\"m\":");
    nd_buf_json_num(&b, NAN);
    nd_buf_str(&b, "}");
    CHECK(!b.failed &&
          !strcmp(b.data, "{\"a\":\"x\\\"y\\\\z\\u000a\\u0001\",\"n\":0.25,\"m\":null}"));
    /* the reader undoes the writer's escapes: a round trip */
    CHECK(nd_json_get(b.data, "a", v, sizeof v) && !strcmp(v, "x\"y\\z\n\x01"));
    CHECK(nd_json_num(b.data, "n", -1) == 0.25 && nd_json_num(b.data, "m", -1) == -1 &&
          nd_json_num(b.data, "zz", -2) == -2);
    /* JSON text is UTF-8: valid sequences pass, anything else is U+FFFD
     * (a stray byte, a cut sequence, an overlong form, a surrogate) */
    nd_buf_reset(&b);
    nd_buf_json_str(&b, "\xc3\xa9\xe2\x82\xac|\xff|\xc3|\xc0\xaf|\xed\xa0\x80|\xf0\x9f\x98\x80");
    CHECK(!b.failed && !strcmp(b.data, "\"\xc3\xa9\xe2\x82\xac|\\ufffd|\\ufffd|\\ufffd\\ufffd|"
                                       "\\ufffd\\ufffd\\ufffd|\xf0\x9f\x98\x80\""));
    nd_buf_free(&b);
    /* the hard maximum */
    nd_buf_init(&b, 16);
    nd_buf_str(&b, "0123456789");
    CHECK(!b.failed);
    nd_buf_str(&b, "0123456789");
    CHECK(b.failed && nd_buf_take(&b, NULL) == NULL);
    uint8_t x[3];
    CHECK(nd_unhex(x, 3, "0aFf10") == 0 && x[0] == 10 && x[1] == 255 && x[2] == 16);
    CHECK(nd_unhex(x, 3, "0aFf1") != 0 && nd_unhex(x, 3, "0aFg10") != 0);
}

/* state.db and its -wal/-shm are the owner's only, whatever the umask */
static void test_db_mode(void)
{
    char dir[300], path[400];
    sc_error e = {0, ""};
    sqlite3 *db = NULL;
    make_dir(dir, sizeof dir, "db-mode");
    mode_t old = umask(022);
    CHECK(nd_db_open(dir, 1, &db, &e) == 0);
    umask(old);
    CHECK(append(db, "approval", "one entry, so the WAL exists") == 0);
    const char *files[] = {"state.db", "state.db-wal", "state.db-shm"};
    for (int i = 0; i < 3; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        CHECKF(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "%s is %o", files[i],
               (unsigned)(st.st_mode & 0777));
    }
    nd_db_close(db);
}

/* A detection's audit entry names the decision and the patch counts with
 * the model's task: the gastric words for a gastric model (as always), the
 * task's class names for another. */
static void test_detection_audit(void)
{
    char dir[300], img[400], detail[1200] = "";
    sc_error e = {0, ""};
    sd_error err = {0};
    sqlite3 *db = NULL;
    make_dir(dir, sizeof dir, "detect");
    CHECK(nd_db_open(dir, 1, &db, &e) == 0);
    nd_db_close(db);
    snprintf(img, sizeof img, "%s/film 1.png", dir);
    FILE *f = fopen(img, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("not really a picture", f);
        fclose(f);
    }
    const char *names[] = {"cat", "dog", "emu"};
    sd_task pets;
    CHECK(sd_task_make(&pets, "pets", 3, names, NULL, &err) == 0);
    int num[SD_TASK_MAX_CLASSES] = {1, 0, 3};
    CHECKF(nd_detection_audit(dir, "00112233445566778899aabbccddeeff", img, &pets, 2, 0.75, num,
                              "tester", &err) == 0,
           "%s", err.msg);
    int gnum[SD_TASK_MAX_CLASSES] = {2, 1, 3};
    CHECKF(nd_detection_audit(dir, "00112233445566778899aabbccddeeff", img, NULL,
                              SD_DETECT_POSITIVE, 0.75, gnum, "tester", &err) == 0,
           "%s", err.msg);
    CHECK(nd_db_open(dir, 0, &db, &e) == 0);
    CHECK(nd_db_text(db, detail, sizeof detail, NULL, &e,
                     "SELECT group_concat(detail, '|') FROM audit WHERE action='detection'",
                     "") == 0);
    nd_db_close(db);
    CHECKF(strstr(detail, "film 1.png (sha256 ") &&
               strstr(detail, "): emu, r 0.7500, patches cat 1 "
                              "dog 0 emu 3|"),
           "%s", detail);
    CHECKF(strstr(detail, "): gastritis, r 0.7500, patches I 2 N 1 P 3"), "%s", detail);
    CHECK(!strcmp(nd_decision_name(&pets, -1), "undetermined"));
    CHECK(!strcmp(nd_decision_name(NULL, SD_DETECT_NEGATIVE), "non-gastritis"));
    char counts[64];
    nd_patch_counts_text(&pets, num, counts, 8); /* truncated, still terminated */
    CHECK(!strcmp(counts, "cat 1 d"));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    snprintf(root, sizeof root, "/tmp/sldd-test-node-state-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_audit();
    test_receipt();
    test_objects();
    test_replay();
    test_replay_one_store();
    test_config();
    test_backoff();
    test_json();
    test_db_mode();
    test_detection_audit();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (!sd_test_failed_ && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return sd_test_finish();
}
