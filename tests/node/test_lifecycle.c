/*
 * test_lifecycle.c - the bundle and job lifecycles of nd_lifecycle.h
 * without a daemon: every allowed move of each table is driven and checked
 * (state, audit entry, timestamps), every other (from, to) pair is refused
 * and changes nothing, the schema's CHECK constraints refuse a raw bad
 * UPDATE, the import states, and the migration of a database made by the
 * version-1 schema.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nd_audit.h"
#include "nd_lifecycle.h"
#include "nd_state.h"
#include "sd_test.h"
#include "node_test.h"

static char root[256];
static int serial;

static int64_t one_int(sqlite3 *db, const char *sql, const char *arg)
{
    int64_t v = -1;
    sc_error e = {0, ""};
    int rc =
        arg ? nd_db_int(db, &v, NULL, &e, sql, "t", arg) : nd_db_int(db, &v, NULL, &e, sql, "");
    CHECKF(rc == 0, "%s: %s", sql, e.msg);
    return v;
}

static void one_text(sqlite3 *db, char *out, size_t len, const char *sql, const char *arg)
{
    sc_error e = {0, ""};
    out[0] = 0;
    CHECKF(nd_db_text(db, out, len, NULL, &e, sql, "t", arg) == 0, "%s: %s", sql, e.msg);
}

/* A bundle row in state s (direction from the state), updated_unix 0. */
static void add_bundle(sqlite3 *db, char id[33], nd_bstate s)
{
    sc_error e = {0, ""};
    char ph[65];
    snprintf(id, 33, "%032x", ++serial);
    snprintf(ph, sizeof ph, "%064x", serial);
    int rc = nd_db_run(db, &e,
                       "INSERT INTO bundles(id,direction,sender,sequence,state,payload_sha256,"
                       "payload_size,statement_obj,created_unix,expires_unix,updated_unix) "
                       "VALUES(?,?,'node-x',?,?,?,10,'obj',1,2,0)",
                       "ttitt", id, nd_bundle_state_direction(s), (int64_t)serial,
                       nd_bundle_state_name(s), ph);
    CHECKF(rc == 0, "insert in %s: %s", nd_bundle_state_name(s), e.msg);
}

static int64_t audit_rows(sqlite3 *db)
{
    return one_int(db, "SELECT COUNT(*) FROM audit", NULL);
}

/* The newest audit entry matches. */
static void check_last_audit(sqlite3 *db, const char *bid, const char *actor, const char *action,
                             const char *outcome, const char *detail)
{
    sqlite3_stmt *st;
    sc_error e = {0, ""};
    CHECK(nd_db_prepare(db, &st, &e,
                        "SELECT a.actor,a.action,a.bundle_id,a.payload_sha256,a.outcome,a.detail,"
                        "b.payload_sha256 FROM audit a JOIN bundles b ON b.id=a.bundle_id "
                        "ORDER BY a.seq DESC LIMIT 1",
                        "") == 0);
    CHECK(nd_db_step(st, &e) == 1);
    CHECKF(!strcmp(nd_col_text(st, 0), actor), "actor %s", nd_col_text(st, 0));
    CHECKF(!strcmp(nd_col_text(st, 1), action), "action %s", nd_col_text(st, 1));
    CHECKF(!strcmp(nd_col_text(st, 2), bid), "bundle %s", nd_col_text(st, 2));
    CHECK(!strcmp(nd_col_text(st, 3), nd_col_text(st, 6)));
    CHECKF(!strcmp(nd_col_text(st, 4), outcome), "outcome %s", nd_col_text(st, 4));
    CHECKF(!strcmp(nd_col_text(st, 5), detail), "detail %s", nd_col_text(st, 5));
    nd_db_finalize(st);
}

static void check_bundle(sqlite3 *db, const char *bid, nd_bstate want, int moved)
{
    char state[32];
    one_text(db, state, sizeof state, "SELECT state FROM bundles WHERE id=?", bid);
    CHECKF(!strcmp(state, nd_bundle_state_name(want)), "%s is %s, want %s", bid, state,
           nd_bundle_state_name(want));
    int64_t up = one_int(db, "SELECT updated_unix FROM bundles WHERE id=?", bid);
    CHECKF(moved ? up >= nd_now_unix() - 5 : up == 0, "updated_unix %lld", (long long)up);
}

/* Every (from, to) pair: the table's moves are made and recorded, the
 * others are refused and change nothing. */
static void test_bundle_table(void)
{
    char dir[300], bid[33], detail[80];
    sqlite3 *db = nt_open_node(root, "bundles", dir, sizeof dir);
    const nd_transition *t;
    size_t n = nd_bundle_transitions(&t), driven = 0, refused = 0;
    CHECK(n == 10);
    for (int from = 0; from < ND_BUNDLE_STATE_COUNT; from++) {
        for (int to = 0; to < ND_BUNDLE_STATE_COUNT; to++) {
            sc_error e = {0, ""};
            int ok = nd_bundle_move_allowed((nd_bstate)from, (nd_bstate)to), rc;
            int64_t before = audit_rows(db);
            add_bundle(db, bid, (nd_bstate)(from ? from : to ? to : ND_BUNDLE_PENDING));
            if (from == ND_BUNDLE_NONE)
                rc = nd_lifecycle_enter(db, bid, (nd_bstate)to, NULL, &e);
            else
                rc = nd_lifecycle_move(db, bid, (nd_bstate)from, (nd_bstate)to, NULL, &e);
            CHECK(sqlite3_get_autocommit(db)); /* its own transaction, ended */
            if (ok) {
                driven++;
                CHECKF(rc == 0, "%d -> %d: %s", from, to, e.msg);
                check_bundle(db, bid, (nd_bstate)to, from != ND_BUNDLE_NONE);
                CHECK(audit_rows(db) == before + 1);
                snprintf(detail, sizeof detail, "%s -> %s",
                         from ? nd_bundle_state_name((nd_bstate)from) : "(new)",
                         nd_bundle_state_name((nd_bstate)to));
                check_last_audit(db, bid, "node", "state", nd_bundle_state_name((nd_bstate)to),
                                 detail);
            } else {
                refused++;
                CHECKF(rc == SC_EINVAL && strstr(e.msg, "not a move"), "%d -> %d: %d %s", from, to,
                       rc, e.msg);
                check_bundle(db, bid, (nd_bstate)(from ? from : to ? to : ND_BUNDLE_PENDING), 0);
                CHECK(audit_rows(db) == before);
            }
        }
    }
    CHECK(driven == n);
    CHECK(refused == (size_t)ND_BUNDLE_STATE_COUNT * ND_BUNDLE_STATE_COUNT - n);
    nd_db_close(db);
}

static void test_bundle_moves(void)
{
    char dir[300], bid[33], note[64];
    sqlite3 *db = nt_open_node(root, "moves", dir, sizeof dir);
    sc_error e = {0, ""};
    /* the caller's audit entry and note */
    add_bundle(db, bid, ND_BUNDLE_PENDING);
    nd_lifecycle_why why = {"admin:alice", "rejection", "peer-y", "rejected", "no", "why not"};
    CHECK(nd_lifecycle_move(db, bid, ND_BUNDLE_PENDING, ND_BUNDLE_REJECTED, &why, &e) == 0);
    check_last_audit(db, bid, "admin:alice", "rejection", "rejected", "no");
    one_text(db, note, sizeof note, "SELECT note FROM bundles WHERE id=?", bid);
    CHECK(!strcmp(note, "why not"));
    /* the row is not where the caller thinks: refused, state named */
    int64_t before = audit_rows(db);
    add_bundle(db, bid, ND_BUNDLE_APPROVED);
    CHECK(nd_lifecycle_move(db, bid, ND_BUNDLE_PENDING, ND_BUNDLE_APPROVED, NULL, &e) == SC_EINVAL);
    CHECKF(strstr(e.msg, "is approved, not pending") != NULL, "%s", e.msg);
    check_bundle(db, bid, ND_BUNDLE_APPROVED, 0);
    CHECK(audit_rows(db) == before);
    CHECK(nd_lifecycle_move(db, "ffffffffffffffffffffffffffffffff", ND_BUNDLE_PENDING,
                            ND_BUNDLE_APPROVED, NULL, &e) == SC_ENOTFOUND);
    CHECK(nd_lifecycle_enter(db, bid, ND_BUNDLE_PENDING, NULL, &e) == SC_EINVAL);
    /* inside the caller's transaction: rolled back with it */
    add_bundle(db, bid, ND_BUNDLE_QUEUED);
    before = audit_rows(db);
    CHECK(nd_db_begin(db, &e) == 0);
    CHECK(nd_lifecycle_move(db, bid, ND_BUNDLE_QUEUED, ND_BUNDLE_DELIVERED, NULL, &e) == 0);
    CHECK(!sqlite3_get_autocommit(db)); /* joined, left open */
    nd_db_rollback(db);
    check_bundle(db, bid, ND_BUNDLE_QUEUED, 0);
    CHECK(audit_rows(db) == before);
    /* a refused move inside the caller's transaction leaves it to the caller */
    CHECK(nd_db_begin(db, &e) == 0);
    CHECK(nd_lifecycle_move(db, bid, ND_BUNDLE_PENDING, ND_BUNDLE_APPROVED, NULL, &e) == SC_EINVAL);
    CHECK(!sqlite3_get_autocommit(db));
    nd_db_rollback(db);
    /* names */
    for (int s = 1; s < ND_BUNDLE_STATE_COUNT; s++)
        CHECK(nd_bundle_state_parse(nd_bundle_state_name((nd_bstate)s)) == (nd_bstate)s);
    CHECK(nd_bundle_state_parse("bogus") == ND_BUNDLE_NONE);
    CHECK(!strcmp(nd_bundle_state_name((nd_bstate)99), ""));
    nd_audit_report rep;
    CHECK(nd_audit_verify(db, NULL, &rep, NULL, &e) == 0 && rep.ok && rep.problems == 0);
    nd_db_close(db);
}

/* c: what the import worker writes, and nothing after a final state. */
static void test_import_states(void)
{
    char dir[300], ok_id[33], bad_id[33], note[128];
    sqlite3 *db = nt_open_node(root, "import", dir, sizeof dir);
    sc_error e = {0, ""};
    add_bundle(db, ok_id, ND_BUNDLE_STORED);
    add_bundle(db, bad_id, ND_BUNDLE_STORED);
    CHECK(nd_lifecycle_enter(db, ok_id, ND_BUNDLE_STORED, NULL, &e) == 0);
    nd_lifecycle_why ok = {"node", "import", "node-x", "ok", "rebuilt theta_opt", ""};
    CHECK(nd_lifecycle_move(db, ok_id, ND_BUNDLE_STORED, ND_BUNDLE_AVAILABLE, &ok, &e) == 0);
    check_bundle(db, ok_id, ND_BUNDLE_AVAILABLE, 1);
    check_last_audit(db, ok_id, "node", "import", "ok", "rebuilt theta_opt");
    nd_lifecycle_why bad = {
        "node", "import", "node-x", "failed", "rebuild failed: payload: bad", "payload: bad"};
    CHECK(nd_lifecycle_move(db, bad_id, ND_BUNDLE_STORED, ND_BUNDLE_IMPORT_FAILED, &bad, &e) == 0);
    check_bundle(db, bad_id, ND_BUNDLE_IMPORT_FAILED, 1);
    one_text(db, note, sizeof note, "SELECT note FROM bundles WHERE id=?", bad_id);
    CHECKF(!strcmp(note, "payload: bad"), "note %s", note);
    check_last_audit(db, bad_id, "node", "import", "failed", "rebuild failed: payload: bad");
    /* a second import of either is refused */
    CHECK(nd_lifecycle_move(db, ok_id, ND_BUNDLE_STORED, ND_BUNDLE_AVAILABLE, &ok, &e) ==
          SC_EINVAL);
    CHECK(nd_lifecycle_move(db, bad_id, ND_BUNDLE_IMPORT_FAILED, ND_BUNDLE_STORED, &ok, &e) ==
          SC_EINVAL);
    nd_db_close(db);
}

/* The schema refuses states outside the lifecycle, whoever writes them. */
static void test_checks(void)
{
    char dir[300], out_id[33], in_id[33], state[32];
    sqlite3 *db = nt_open_node(root, "checks", dir, sizeof dir);
    sc_error e = {0, ""};
    add_bundle(db, out_id, ND_BUNDLE_PENDING);
    add_bundle(db, in_id, ND_BUNDLE_STORED);
    CHECK(nd_db_run(db, &e, "UPDATE bundles SET state='bogus' WHERE id=?", "t", out_id) != 0);
    CHECKF(strstr(e.msg, "CHECK constraint failed") != NULL, "%s", e.msg);
    CHECK(nd_db_run(db, &e, "UPDATE bundles SET state='stored' WHERE id=?", "t", out_id) != 0);
    CHECK(nd_db_run(db, &e, "UPDATE bundles SET state='approved' WHERE id=?", "t", in_id) != 0);
    CHECK(nd_db_run(db, &e, "UPDATE bundles SET state=NULL WHERE id=?", "t", in_id) != 0);
    one_text(db, state, sizeof state, "SELECT state FROM bundles WHERE id=?", out_id);
    CHECK(!strcmp(state, "pending"));
    CHECK(nd_db_run(db, &e,
                    "INSERT INTO jobs(kind,state,created_unix) VALUES('distill','queued',1)",
                    "") == 0);
    CHECK(nd_db_run(db, &e, "UPDATE jobs SET state='paused'", "") != 0);
    /* every delivery state is one the schema takes */
    for (int s = 1; s < ND_DELIVERY_STATE_COUNT; s++) {
        char peer[16];
        snprintf(peer, sizeof peer, "peer-%d", s);
        CHECKF(nd_db_run(db, &e,
                         "INSERT INTO deliveries(bundle_id,peer,sequence,state,envelope_obj,"
                         "envelope_size) VALUES(?,?,1,?,'',0)",
                         "ttt", out_id, peer, nd_delivery_state_name((nd_dstate)s)) == 0,
               "%s", e.msg);
    }
    /* a delivery is made queued or refused and ends from queued only; a
     * refused one may be queued again (a re-send) */
    const nd_transition *t;
    size_t n = nd_delivery_transitions(&t);
    CHECK(n == 6);
    for (int from = 0; from < ND_DELIVERY_STATE_COUNT; from++)
        for (int to = 0; to < ND_DELIVERY_STATE_COUNT; to++)
            CHECK(nd_delivery_move_allowed((nd_dstate)from, (nd_dstate)to) ==
                  ((from == ND_DELIVERY_NONE &&
                    (to == ND_DELIVERY_QUEUED || to == ND_DELIVERY_REFUSED)) ||
                   (from == ND_DELIVERY_QUEUED && to > ND_DELIVERY_QUEUED) ||
                   (from == ND_DELIVERY_REFUSED && to == ND_DELIVERY_QUEUED)));
    CHECK(nd_db_run(db, &e, "UPDATE deliveries SET state='lost'", "") != 0);
    CHECK(one_int(db, "SELECT COUNT(*) FROM deliveries WHERE state='lost'", NULL) == 0);
    nd_db_close(db);
}

static int64_t add_job(sqlite3 *db, nd_jstate s)
{
    sc_error e = {0, ""};
    CHECK(nd_db_run(db, &e, "INSERT INTO jobs(kind,state,created_unix) VALUES('distill',?,1)", "t",
                    nd_job_state_name(s)) == 0);
    return sqlite3_last_insert_rowid(db);
}

static void job_row(sqlite3 *db, int64_t id, char *state, int64_t *started, int64_t *finished,
                    char *error, char *note)
{
    sqlite3_stmt *st;
    sc_error e = {0, ""};
    CHECK(nd_db_prepare(db, &st, &e,
                        "SELECT state,COALESCE(started_unix,-1),COALESCE(finished_unix,-1),error,"
                        "note FROM jobs WHERE id=?",
                        "i", id) == 0);
    CHECK(nd_db_step(st, &e) == 1);
    snprintf(state, 32, "%s", nd_col_text(st, 0));
    *started = nd_col_int(st, 1);
    *finished = nd_col_int(st, 2);
    snprintf(error, 64, "%s", nd_col_text(st, 3));
    snprintf(note, 64, "%s", nd_col_text(st, 4));
    nd_db_finalize(st);
}

/* d: the job table, its timestamps, error and note. */
static void test_jobs(void)
{
    char dir[300], state[32], error[64], note[64];
    sqlite3 *db = nt_open_node(root, "jobs", dir, sizeof dir);
    const nd_transition *t;
    size_t n = nd_job_transitions(&t), driven = 0;
    int64_t started, finished, now = nd_now_unix();
    CHECK(n == 7);
    for (int from = 1; from < ND_JOB_STATE_COUNT; from++) {
        for (int to = 0; to < ND_JOB_STATE_COUNT; to++) {
            sc_error e = {0, ""};
            int64_t id = add_job(db, (nd_jstate)from);
            int rc = nd_job_move(db, id, (nd_jstate)from, (nd_jstate)to, "text", &e);
            job_row(db, id, state, &started, &finished, error, note);
            if (!nd_job_move_allowed((nd_jstate)from, (nd_jstate)to)) {
                CHECKF(rc == SC_EINVAL, "%d -> %d: %d", from, to, rc);
                CHECK(!strcmp(state, nd_job_state_name((nd_jstate)from)) && started == -1 &&
                      finished == -1 && !error[0] && !note[0]);
                continue;
            }
            driven++;
            CHECKF(rc == 0, "%d -> %d: %s", from, to, e.msg);
            CHECK(!strcmp(state, nd_job_state_name((nd_jstate)to)));
            CHECK(to == ND_JOB_RUNNING ? started >= now : started == -1);
            int terminal = to == ND_JOB_DONE || to == ND_JOB_FAILED || to == ND_JOB_CANCELED;
            CHECK(terminal ? finished >= now : finished == -1);
            CHECK(!strcmp(error, to == ND_JOB_FAILED || to == ND_JOB_CANCELED ? "text" : ""));
            CHECK(!strcmp(note, to == ND_JOB_QUEUED ? "text" : ""));
        }
    }
    CHECK(driven + 1 == n); /* all but NONE -> queued, which is the INSERT */
    CHECK(nd_job_move_allowed(ND_JOB_NONE, ND_JOB_QUEUED));
    /* a resumed job keeps its first start time */
    sc_error e = {0, ""};
    int64_t id = add_job(db, ND_JOB_QUEUED);
    CHECK(nd_db_run(db, &e, "UPDATE jobs SET started_unix=5 WHERE id=?", "i", id) == 0);
    CHECK(nd_job_move(db, id, ND_JOB_QUEUED, ND_JOB_RUNNING, NULL, &e) == 0);
    job_row(db, id, state, &started, &finished, error, note);
    CHECK(started == 5);
    /* a job the runner took cannot be canceled as queued */
    CHECK(nd_job_move(db, id, ND_JOB_QUEUED, ND_JOB_CANCELED, NULL, &e) == SC_EINVAL);
    CHECKF(strstr(e.msg, "is running, not queued") != NULL, "%s", e.msg);
    CHECK(nd_job_move(db, 999999, ND_JOB_QUEUED, ND_JOB_RUNNING, NULL, &e) == SC_ENOTFOUND);
    /* start-up recovery: every running job back in the queue */
    int64_t before = one_int(db, "SELECT COUNT(*) FROM jobs WHERE state='running'", NULL);
    int moved = -1;
    CHECK(before >= 2);
    CHECK(nd_job_move_every(db, ND_JOB_RUNNING, ND_JOB_QUEUED, "resumed", &moved, &e) == 0);
    CHECK(moved == (int)before);
    CHECK(one_int(db, "SELECT COUNT(*) FROM jobs WHERE state='running'", NULL) == 0);
    job_row(db, id, state, &started, &finished, error, note);
    CHECK(!strcmp(state, "queued") && !strcmp(note, "resumed"));
    CHECK(nd_job_move_every(db, ND_JOB_DONE, ND_JOB_QUEUED, NULL, &moved, &e) == SC_EINVAL);
    /* the resumed job finishes: it no longer says why it was queued again */
    CHECK(nd_job_move(db, id, ND_JOB_QUEUED, ND_JOB_RUNNING, NULL, &e) == 0);
    job_row(db, id, state, &started, &finished, error, note);
    CHECK(!strcmp(note, "resumed")); /* running again: still says so */
    CHECK(nd_job_move(db, id, ND_JOB_RUNNING, ND_JOB_DONE, NULL, &e) == 0);
    job_row(db, id, state, &started, &finished, error, note);
    CHECKF(!strcmp(state, "done") && !note[0], "a finished job's note: '%s'", note);
    /* a DP job's epsilon stays in its note when it finishes */
    id = add_job(db, ND_JOB_RUNNING);
    CHECK(nd_db_run(db, &e, "UPDATE jobs SET note='epsilon 2.000 (delta 1e-05)' WHERE id=?", "i",
                    id) == 0);
    CHECK(nd_job_move(db, id, ND_JOB_RUNNING, ND_JOB_DONE, NULL, &e) == 0);
    job_row(db, id, state, &started, &finished, error, note);
    CHECKF(!strcmp(note, "epsilon 2.000 (delta 1e-05)"), "a DP job's note: '%s'", note);
    for (int s = 1; s < ND_JOB_STATE_COUNT; s++)
        CHECK(nd_job_state_parse(nd_job_state_name((nd_jstate)s)) == (nd_jstate)s);
    nd_db_close(db);
}

/* The tables with a state as schema version 1 made them (no CHECK). */
static const char *const v1_sql =
    "CREATE TABLE bundles(id TEXT PRIMARY KEY,"
    " direction TEXT NOT NULL CHECK(direction IN ('out','in')), sender TEXT NOT NULL,"
    " sequence INTEGER NOT NULL, state TEXT NOT NULL, payload_sha256 TEXT NOT NULL,"
    " payload_size INTEGER NOT NULL, statement_obj TEXT NOT NULL, approved_obj TEXT,"
    " audience TEXT NOT NULL DEFAULT '', job_id INTEGER, created_unix INTEGER NOT NULL,"
    " expires_unix INTEGER NOT NULL, updated_unix INTEGER NOT NULL,"
    " accuracy REAL, sen REAL, spe REAL, hm REAL, auc REAL,"
    " privacy_verdict TEXT NOT NULL DEFAULT '', grid_path TEXT NOT NULL DEFAULT '',"
    " privacy_path TEXT NOT NULL DEFAULT '', envelope_sha256 TEXT, receipt BLOB,"
    " note TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX bundles_state ON bundles(direction, state);"
    "CREATE TABLE deliveries(bundle_id TEXT NOT NULL REFERENCES bundles(id),"
    " peer TEXT NOT NULL, sequence INTEGER NOT NULL, state TEXT NOT NULL,"
    " envelope_obj TEXT NOT NULL, envelope_size INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT NOT NULL DEFAULT '', receipt BLOB, delivered_unix INTEGER,"
    " PRIMARY KEY(bundle_id, peer));"
    "CREATE TABLE approvals(id INTEGER PRIMARY KEY,"
    " bundle_id TEXT NOT NULL REFERENCES bundles(id), admin TEXT NOT NULL,"
    " decision TEXT NOT NULL, payload_sha256 TEXT NOT NULL, time_unix INTEGER NOT NULL,"
    " UNIQUE(bundle_id, admin));"
    "CREATE TABLE evaluations(bundle_id TEXT PRIMARY KEY REFERENCES bundles(id),"
    " data_source TEXT NOT NULL, split TEXT NOT NULL,"
    " accuracy REAL, sen REAL, spe REAL, hm REAL, auc REAL, images INTEGER, patches INTEGER,"
    " note TEXT NOT NULL DEFAULT '', time_unix INTEGER NOT NULL);"
    "CREATE TABLE jobs(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL,"
    " options TEXT NOT NULL DEFAULT '', audience TEXT NOT NULL DEFAULT '',"
    " created_unix INTEGER NOT NULL, started_unix INTEGER, finished_unix INTEGER,"
    " iter INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,"
    " loss REAL, val_acc REAL, val_hm REAL, eta REAL, seconds REAL, bundle_id TEXT,"
    " error TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE peers(id TEXT PRIMARY KEY, url TEXT NOT NULL, pins TEXT NOT NULL,"
    " source TEXT NOT NULL, updated_unix INTEGER NOT NULL);"
    "CREATE TABLE replay(bundle_id TEXT PRIMARY KEY, sender TEXT NOT NULL,"
    " sequence INTEGER NOT NULL, time_unix INTEGER NOT NULL);"
    "CREATE INDEX replay_sender ON replay(sender, sequence);"
    "CREATE TABLE audit(seq INTEGER PRIMARY KEY, time_unix INTEGER NOT NULL,"
    " actor TEXT NOT NULL, action TEXT NOT NULL, bundle_id TEXT NOT NULL,"
    " payload_sha256 TEXT NOT NULL, peer TEXT NOT NULL, outcome TEXT NOT NULL,"
    " detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
    "INSERT INTO bundles VALUES('aa01','out','node-a',1,'delivered','p1',10,'s1','a1','node-b',"
    " 7,100,200,150,0.5,0.6,0.7,0.8,0.9,'pass','g','pp',NULL,NULL,'n1');"
    "INSERT INTO bundles(id,direction,sender,sequence,state,payload_sha256,payload_size,"
    " statement_obj,created_unix,expires_unix,updated_unix,receipt)"
    " VALUES('bb02','in','node-b',4,'import-failed','p2',20,'s2',100,200,160,x'0102');"
    "INSERT INTO deliveries VALUES('aa01','node-b',1,'delivered','e1',99,2,0,'',x'03',170);"
    "INSERT INTO approvals(bundle_id,admin,decision,payload_sha256,time_unix)"
    " VALUES('aa01','alice','approve','p1',120);"
    "INSERT INTO evaluations(bundle_id,data_source,split,time_unix) VALUES('bb02','d','val',1);"
    "INSERT INTO jobs(id,kind,state,created_unix,bundle_id,note) VALUES(3,'distill','done',5,"
    " 'aa01','ok');"
    "PRAGMA user_version=1;";

static sqlite3 *make_v1(const char *name, char *dir, size_t len, const char *extra)
{
    sqlite3 *raw = NULL;
    char path[400];
    snprintf(dir, len, "%s/%s", root, name);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/%s", dir, ND_DB_FILE);
    CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
    CHECK(sqlite3_exec(raw, v1_sql, NULL, NULL, NULL) == SQLITE_OK);
    if (extra)
        CHECK(sqlite3_exec(raw, extra, NULL, NULL, NULL) == SQLITE_OK);
    return raw;
}

/* every state of the three tables, in row order */
static void states_of(sqlite3 *db, char *out, size_t len)
{
    sc_error e = {0, ""};
    CHECK(nd_db_text(db, out, len, NULL, &e,
                     "SELECT group_concat(state) FROM (SELECT state FROM bundles UNION ALL "
                     "SELECT state FROM jobs UNION ALL SELECT state FROM deliveries)",
                     "") == 0);
}

static void test_migration(void)
{
    char dir[300], text[64];
    sc_error e = {0, ""};
    sqlite3 *db = NULL, *raw = make_v1("v1", dir, sizeof dir, NULL);
    sqlite3_close(raw);
    CHECKF(nd_db_open(dir, 0, &db, &e) == 0, "%s", e.msg);
    if (!db)
        return;
    CHECK(one_int(db, "PRAGMA user_version", NULL) == ND_SCHEMA_VERSION);
    /* every row and value kept */
    CHECK(one_int(db, "SELECT COUNT(*) FROM bundles", NULL) == 2);
    CHECK(one_int(db,
                  "SELECT job_id+created_unix+expires_unix+updated_unix FROM bundles "
                  "WHERE id='aa01'",
                  NULL) == 7 + 100 + 200 + 150);
    one_text(db, text, sizeof text,
             "SELECT state||approved_obj||audience||privacy_verdict||note FROM bundles WHERE id=?",
             "aa01");
    CHECK(!strcmp(text, "delivereda1node-bpassn1"));
    CHECK(one_int(db, "SELECT length(receipt) FROM bundles WHERE id='bb02'", NULL) == 2);
    CHECK(one_int(db, "SELECT attempts+delivered_unix FROM deliveries", NULL) == 172);
    CHECK(one_int(db, "SELECT COUNT(*) FROM approvals", NULL) == 1);
    CHECK(one_int(db, "SELECT COUNT(*) FROM evaluations", NULL) == 1);
    one_text(db, text, sizeof text, "SELECT state||bundle_id||note FROM jobs WHERE id=?", "3");
    CHECK(!strcmp(text, "doneaa01ok"));
    /* the CHECKs and the index are there, the references still hold */
    CHECK(nd_db_run(db, &e, "UPDATE bundles SET state='bogus' WHERE id='aa01'", "") != 0);
    CHECK(nd_db_run(db, &e, "UPDATE jobs SET state='bogus'", "") != 0);
    CHECK(nd_db_run(db, &e, "UPDATE deliveries SET state='bogus'", "") != 0);
    CHECK(one_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE name='bundles_state'", NULL) == 1);
    CHECK(one_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '%_v2'", NULL) == 0);
    CHECK(nd_db_run(db, &e, "DELETE FROM bundles WHERE id='aa01'", "") != 0); /* referenced */
    CHECK(one_int(db, "PRAGMA foreign_keys", NULL) == 1);
    CHECK(nd_db_integrity(db, &e) == 0);
    /* and the lifecycle works on the migrated rows */
    nd_db_close(db);
    db = NULL;
    CHECK(nd_db_open(dir, 0, &db, &e) == 0); /* opening again changes nothing */
    CHECK(one_int(db, "SELECT COUNT(*) FROM bundles", NULL) == 2);
    nd_db_close(db);

    /* a state outside the lifecycle (or of the other direction) refuses the
     * migration, names the row, and leaves the database as it was */
    static const char *const bad[3][2] = {
        {"UPDATE jobs SET state='paused';", "jobs row 3 has state 'paused'"},
        {"UPDATE bundles SET state='pending' WHERE id='bb02';", "bundles row bb02 has state "
                                                                "'pending'"},
        {"UPDATE deliveries SET state='lost';", "deliveries row aa01 to node-b has state 'lost'"},
    };
    for (int k = 0; k < 3; k++) {
        char name[16], path[400], dump[64];
        snprintf(name, sizeof name, "v1-bad%d", k);
        raw = make_v1(name, dir, sizeof dir, bad[k][0]);
        states_of(raw, dump, sizeof dump);
        sqlite3_close(raw);
        db = NULL;
        CHECK(nd_db_open(dir, 0, &db, &e) != 0 && db == NULL);
        CHECKF(strstr(e.msg, "migrating the state database from version 1") &&
                   strstr(e.msg, bad[k][1]),
               "%s", e.msg);
        snprintf(path, sizeof path, "%s/%s", dir, ND_DB_FILE);
        CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
        CHECK(one_int(raw, "PRAGMA user_version", NULL) == 1);
        states_of(raw, text, sizeof text);
        CHECKF(!strcmp(text, dump), "%s / %s", text, dump);
        CHECK(one_int(raw, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '%_v2'", NULL) == 0);
        sqlite3_close(raw);
    }
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    snprintf(root, sizeof root, "/tmp/sldd-test-lifecycle-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_bundle_table();
    test_bundle_moves();
    test_import_states();
    test_checks();
    test_jobs();
    test_migration();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (!sd_test_failed_ && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return sd_test_finish();
}
