/*
 * nd_state.c - SQLite state store: pragmas, schema and checked helpers
 * (see nd_state.h; the tables are described in docs/node.md).
 */
#include "nd_state.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "nd_buf.h"
#include "nd_lifecycle.h"
#include "sc_util.h"

#define BUSY_TIMEOUT_MS 30000

/* The tables that carry a state are written as macros of their name: the
 * schema makes them under their own name, the migration from version 1
 * under a temporary one (SQLite cannot add a CHECK to a table).  The state
 * names are those of nd_lifecycle.h; test_lifecycle holds the two
 * together. */
#define BUNDLES_DDL(name)                                                               \
    "CREATE TABLE IF NOT EXISTS " name "("                                              \
    " id TEXT PRIMARY KEY," /* hex of the 16-byte bundle id */                          \
    " direction TEXT NOT NULL CHECK(direction IN ('out','in')),"                        \
    " sender TEXT NOT NULL,"                                                            \
    " sequence INTEGER NOT NULL,"                                                       \
    " state TEXT NOT NULL CHECK((direction='out' AND state IN ('pending','approved',"   \
    "'rejected','queued','delivered','failed')) OR (direction='in' AND state IN "       \
    "('stored','available','import-failed'))),"                                         \
    " payload_sha256 TEXT NOT NULL,"                                                    \
    " payload_size INTEGER NOT NULL,"                                                   \
    " statement_obj TEXT NOT NULL," /* node-signed (out) / as received (in) */          \
    " approved_obj TEXT,"           /* out: with the admin approvals */                 \
    " audience TEXT NOT NULL DEFAULT '',"                                               \
    " job_id INTEGER,"                                                                  \
    " created_unix INTEGER NOT NULL,"                                                   \
    " expires_unix INTEGER NOT NULL,"                                                   \
    " updated_unix INTEGER NOT NULL,"                                                   \
    " accuracy REAL, sen REAL, spe REAL, hm REAL, auc REAL," /* sender's own metrics */ \
    " privacy_verdict TEXT NOT NULL DEFAULT '',"                                        \
    " grid_path TEXT NOT NULL DEFAULT '',"                                              \
    " privacy_path TEXT NOT NULL DEFAULT '',"                                           \
    " envelope_sha256 TEXT," /* in: envelope as received */                             \
    " receipt BLOB,"         /* in: the receipt we issued */                            \
    " note TEXT NOT NULL DEFAULT '');"

#define DELIVERIES_DDL(name)                                                           \
    "CREATE TABLE IF NOT EXISTS " name "("                                             \
    " bundle_id TEXT NOT NULL REFERENCES bundles(id),"                                 \
    " peer TEXT NOT NULL,"                                                             \
    " sequence INTEGER NOT NULL,"                                                      \
    " state TEXT NOT NULL CHECK(state IN ('queued','delivered','refused','expired'))," \
    " envelope_obj TEXT NOT NULL,"                                                     \
    " envelope_size INTEGER NOT NULL,"                                                 \
    " attempts INTEGER NOT NULL DEFAULT 0,"                                            \
    " next_ms INTEGER NOT NULL DEFAULT 0,"                                             \
    " last_error TEXT NOT NULL DEFAULT '',"                                            \
    " receipt BLOB,"                                                                   \
    " delivered_unix INTEGER,"                                                         \
    " PRIMARY KEY(bundle_id, peer));"

#define JOBS_DDL(name)                                                         \
    "CREATE TABLE IF NOT EXISTS " name "("                                     \
    " id INTEGER PRIMARY KEY,"                                                 \
    " kind TEXT NOT NULL,"                                                     \
    " state TEXT NOT NULL CHECK(state IN ('queued','running','done','failed'," \
    "'canceled')),"                                                            \
    " options TEXT NOT NULL DEFAULT '',"                                       \
    " audience TEXT NOT NULL DEFAULT '',"                                      \
    " created_unix INTEGER NOT NULL,"                                          \
    " started_unix INTEGER, finished_unix INTEGER,"                            \
    " iter INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,"      \
    " loss REAL, val_acc REAL, val_hm REAL, eta REAL, seconds REAL,"           \
    " bundle_id TEXT,"                                                         \
    " error TEXT NOT NULL DEFAULT '',"                                         \
    " note TEXT NOT NULL DEFAULT '');"

static const char *const schema_sql = BUNDLES_DDL(
    "bundles") "CREATE INDEX IF NOT EXISTS bundles_state ON bundles(direction, "
               "state);" DELIVERIES_DDL(
                   "deliveries") "CREATE TABLE IF NOT EXISTS approvals("
                                 " id INTEGER PRIMARY KEY,"
                                 " bundle_id TEXT NOT NULL REFERENCES bundles(id),"
                                 " admin TEXT NOT NULL,"
                                 " decision TEXT NOT NULL,"
                                 " payload_sha256 TEXT NOT NULL,"
                                 " time_unix INTEGER NOT NULL,"
                                 " UNIQUE(bundle_id, admin));"
                                 "CREATE TABLE IF NOT EXISTS evaluations("
                                 " bundle_id TEXT PRIMARY KEY REFERENCES bundles(id),"
                                 " data_source TEXT NOT NULL,"
                                 " split TEXT NOT NULL,"
                                 " accuracy REAL, sen REAL, spe REAL, hm REAL, auc "
                                 "REAL,"
                                 " images INTEGER, patches INTEGER,"
                                 " note TEXT NOT NULL DEFAULT '',"
                                 " time_unix INTEGER NOT NULL);"
                                 "CREATE TABLE IF NOT EXISTS theta_opt(" /* since version 2 */
                                 " bundle_id TEXT PRIMARY KEY REFERENCES bundles(id),"
                                 " weights_sha256 TEXT NOT NULL," /* weights file in objects/ */
                                 " payload_sha256 TEXT NOT NULL," /* the payload it was replayed from */
                                 " device TEXT NOT NULL,"         /* backend that replayed it */
                                 " time_unix INTEGER NOT NULL);"
                                 "CREATE TABLE IF NOT EXISTS ledger(" /* since version 3 */
                                 " bundle_id TEXT PRIMARY KEY REFERENCES bundles(id),"
                                 " state TEXT NOT NULL CHECK(state IN ('pending','spent','void')),"
                                 " dp INTEGER NOT NULL CHECK(dp IN (0,1)),"
                                 " epsilon REAL, delta REAL, sigma REAL, q REAL,"
                                 " iterations INTEGER NOT NULL,"
                                 " rdp BLOB," /* SD_RDP_NORDERS doubles; NULL without DP */
                                 " records INTEGER NOT NULL,"
                                 " unit TEXT NOT NULL,"
                                 " data_source TEXT NOT NULL,"
                                 " accountant TEXT NOT NULL,"
                                 " time_unix INTEGER NOT NULL);"
                                 "CREATE TABLE IF NOT EXISTS ledger_records("
                                 " record BLOB NOT NULL,"
                                 " bundle_id TEXT NOT NULL REFERENCES ledger(bundle_id),"
                                 " PRIMARY KEY(record, bundle_id)) WITHOUT ROWID;"
                                 "CREATE INDEX IF NOT EXISTS ledger_records_bundle "
                                 "ON ledger_records(bundle_id);" JOBS_DDL(
                                     "jobs") "CREATE TABLE IF NOT EXISTS peers("
                                             " id TEXT PRIMARY KEY,"
                                             " url TEXT NOT NULL,"
                                             " pins TEXT NOT NULL," /* curl form, ';'-separated */
                                             " source TEXT NOT NULL,"
                                             " updated_unix INTEGER NOT NULL);"
                                             "CREATE TABLE IF NOT EXISTS replay("
                                             " bundle_id TEXT PRIMARY KEY,"
                                             " sender TEXT NOT NULL,"
                                             " sequence INTEGER NOT NULL,"
                                             " time_unix INTEGER NOT NULL);"
                                             "CREATE INDEX IF NOT EXISTS replay_sender "
                                             "ON replay(sender, sequence);"
                                             "CREATE TABLE IF NOT EXISTS audit("
                                             " seq INTEGER PRIMARY KEY,"
                                             " time_unix INTEGER NOT NULL,"
                                             " actor TEXT NOT NULL,"
                                             " action TEXT NOT NULL,"
                                             " bundle_id TEXT NOT NULL,"
                                             " payload_sha256 TEXT NOT NULL,"
                                             " peer TEXT NOT NULL,"
                                             " outcome TEXT NOT NULL,"
                                             " detail TEXT NOT NULL,"
                                             " prev_hash TEXT NOT NULL,"
                                             " hash TEXT NOT NULL);";

/* Version 4: what each peer knows of this node's admins (nd_roster.h);
 * apart from schema_sql, which is at the length C compilers must take. */
static const char *const schema_v4_sql = "CREATE TABLE IF NOT EXISTS peer_roster("
                                         " peer TEXT PRIMARY KEY,"
                                         " roster_sha256 TEXT NOT NULL," /* '': baseline */
                                         " admins TEXT NOT NULL,"        /* NAME:B64KEY,... */
                                         " acked_unix INTEGER NOT NULL);";

/* Version 1 -> 2: the state CHECKs.  Each table is rebuilt under a
 * temporary name, its rows copied (a row whose state is not a lifecycle
 * state fails the copy and the whole migration), the old table dropped and
 * the new one renamed; schema_sql then recreates the dropped index.  The
 * column lists are those of version 1, in the same order. */
static const char *const migrate_v2_sql = BUNDLES_DDL(
    "bundles_v2") "INSERT INTO bundles_v2 SELECT * FROM bundles;"
                  "DROP TABLE bundles;"
                  "ALTER TABLE bundles_v2 RENAME TO bundles;" DELIVERIES_DDL(
                      "deliveries_v2") "INSERT INTO deliveries_v2 SELECT * FROM deliveries;"
                                       "DROP TABLE deliveries;"
                                       "ALTER TABLE deliveries_v2 RENAME TO deliveries;" JOBS_DDL(
                                           "jobs_v2") "INSERT INTO jobs_v2 SELECT * FROM jobs;"
                                                      "DROP TABLE jobs;"
                                                      "ALTER TABLE jobs_v2 RENAME TO jobs;";

static int db_fail(sqlite3 *db, sc_error *e, const char *what)
{
    return sc_error_set(e, SC_EIO, "database: %s: %s", what, db ? sqlite3_errmsg(db) : "no handle");
}

int nd_db_exec(sqlite3 *db, const char *sql, sc_error *e)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = sc_error_set(e, SC_EIO, "database: %s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

int nd_db_begin(sqlite3 *db, sc_error *e)
{
    return nd_db_exec(db, "BEGIN IMMEDIATE", e);
}

int nd_db_commit(sqlite3 *db, sc_error *e)
{
    int rc = nd_db_exec(db, "COMMIT", e);
    if (rc)
        nd_db_rollback(db);
    return rc;
}

void nd_db_rollback(sqlite3 *db)
{
    if (db && !sqlite3_get_autocommit(db)) {
        char *msg = NULL;
        /* a failed rollback leaves the transaction to be rolled back when the
         * connection closes; nothing more can be done here */
        if (sqlite3_exec(db, "ROLLBACK", NULL, NULL, &msg) != SQLITE_OK)
            sqlite3_free(msg);
    }
}

static int bind_all(sqlite3 *db, sqlite3_stmt *st, const char *types, va_list ap, sc_error *e)
{
    int i = 1, rc = SQLITE_OK;
    if ((size_t)sqlite3_bind_parameter_count(st) != strlen(types ? types : ""))
        return sc_error_set(e, SC_EINVAL, "database: %d parameters, %zu values (%.60s...)",
                            sqlite3_bind_parameter_count(st), strlen(types ? types : ""),
                            sqlite3_sql(st));
    for (const char *t = types ? types : ""; *t; t++, i++) {
        switch (*t) {
        case 't': {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
            break;
        }
        case 'i': rc = sqlite3_bind_int64(st, i, (sqlite3_int64)va_arg(ap, int64_t)); break;
        case 'd': {
            double v = va_arg(ap, double);
            rc = isfinite(v) ? sqlite3_bind_double(st, i, v) : sqlite3_bind_null(st, i);
            break;
        }
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            if (n > (size_t)0x7fffffff)
                return sc_error_set(e, SC_EINVAL, "database: blob too large");
            rc = p ? sqlite3_bind_blob(st, i, p, (int)n, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(st, i);
            break;
        }
        case 'n': rc = sqlite3_bind_null(st, i); break;
        default: return sc_error_set(e, SC_EINVAL, "database: bad bind type '%c'", *t);
        }
        if (rc != SQLITE_OK)
            return db_fail(db, e, "bind");
    }
    return 0;
}

static int vprepare(sqlite3 *db, sqlite3_stmt **st, sc_error *e, const char *sql, const char *types,
                    va_list ap)
{
    *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
        int rc =
            sc_error_set(e, SC_EIO, "database: prepare: %s (%.60s...)", sqlite3_errmsg(db), sql);
        sqlite3_finalize(*st);
        *st = NULL;
        return rc;
    }
    int rc = bind_all(db, *st, types, ap, e);
    if (rc) {
        sqlite3_finalize(*st);
        *st = NULL;
    }
    return rc;
}

int nd_db_prepare(sqlite3 *db, sqlite3_stmt **st, sc_error *e, const char *sql, const char *types,
                  ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = vprepare(db, st, e, sql, types, ap);
    va_end(ap);
    return rc;
}

int nd_db_step(sqlite3_stmt *st, sc_error *e)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return db_fail(sqlite3_db_handle(st), e, "step");
}

void nd_db_finalize(sqlite3_stmt *st)
{
    /* sqlite3_finalize repeats the last step's error, which was reported */
    (void)sqlite3_finalize(st);
}

int nd_db_run(sqlite3 *db, sc_error *e, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, types);
    int rc = vprepare(db, &st, e, sql, types, ap);
    va_end(ap);
    if (rc)
        return rc;
    while ((rc = nd_db_step(st, e)) == 1)
        ;
    nd_db_finalize(st);
    return rc;
}

/* Prepare sql and step once.  1: a row is there (the caller reads it and
 * finalizes *st); 0: none, with found given (*found = 0); else an error
 * (SC_ENOTFOUND for no row when found is NULL), *st finalized. */
static int first_row(sqlite3 *db, sqlite3_stmt **st, int *found, sc_error *e, const char *sql,
                     const char *types, va_list ap)
{
    int rc = vprepare(db, st, e, sql, types, ap);
    if (rc)
        return rc;
    rc = nd_db_step(*st, e);
    if (found)
        *found = rc == 1;
    if (rc == 0 && !found)
        rc = sc_error_set(e, SC_ENOTFOUND, "database: no row");
    if (rc != 1) {
        nd_db_finalize(*st);
        *st = NULL;
    }
    return rc;
}

int nd_db_int(sqlite3 *db, int64_t *out, int *found, sc_error *e, const char *sql,
              const char *types, ...)
{
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, types);
    int rc = first_row(db, &st, found, e, sql, types, ap);
    va_end(ap);
    if (rc != 1)
        return rc;
    *out = nd_col_int(st, 0);
    nd_db_finalize(st);
    return 0;
}

int nd_db_text(sqlite3 *db, char *out, size_t outlen, int *found, sc_error *e, const char *sql,
               const char *types, ...)
{
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, types);
    int rc = first_row(db, &st, found, e, sql, types, ap);
    va_end(ap);
    if (rc != 1)
        return rc;
    snprintf(out, outlen, "%s", nd_col_text(st, 0));
    nd_db_finalize(st);
    return 0;
}

int64_t nd_col_int(sqlite3_stmt *st, int col)
{
    return (int64_t)sqlite3_column_int64(st, col);
}

const char *nd_col_text(sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    return s ? (const char *)s : "";
}

double nd_col_double(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return NAN;
    return sqlite3_column_double(st, col);
}

static int state_known(const char *table, const char *direction, const char *state)
{
    if (!strcmp(table, "jobs"))
        return nd_job_state_parse(state) != ND_JOB_NONE;
    if (!strcmp(table, "deliveries"))
        return nd_delivery_state_parse(state) != ND_DELIVERY_NONE;
    nd_bstate s = nd_bundle_state_parse(state);
    return s != ND_BUNDLE_NONE && !strcmp(nd_bundle_state_direction(s), direction);
}

/* Every state of a version-1 database is one of the lifecycle's: the row
 * that is not is named (the CHECK of the copy would only show its own
 * expression). */
static int v1_states_known(sqlite3 *db, sc_error *e)
{
    static const char *const q[3][2] = {
        {"bundles", "SELECT id, direction, state FROM bundles"},
        {"jobs", "SELECT id, '', state FROM jobs"},
        {"deliveries", "SELECT bundle_id || ' to ' || peer, '', state FROM deliveries"},
    };
    int rc = 0;
    for (int t = 0; t < 3 && !rc; t++) {
        sqlite3_stmt *st;
        if ((rc = nd_db_prepare(db, &st, e, q[t][1], "")))
            break;
        while ((rc = nd_db_step(st, e)) == 1)
            if (!state_known(q[t][0], nd_col_text(st, 1), nd_col_text(st, 2))) {
                rc = sc_error_set(e, SC_EFORMAT,
                                  "%s row %.80s has state '%.40s', which is not a state of the "
                                  "lifecycle (docs/node.md, Lifecycle)",
                                  q[t][0], nd_col_text(st, 0), nd_col_text(st, 2));
                break;
            }
        nd_db_finalize(st);
    }
    return rc;
}

/* PRAGMA foreign_key_check finds no row. */
static int foreign_keys_hold(sqlite3 *db, sc_error *e)
{
    char table[64] = "";
    int found = 0;
    int rc = nd_db_text(db, table, sizeof table, &found, e, "PRAGMA foreign_key_check", "");
    if (!rc && found)
        rc = sc_error_set(e, SC_EFORMAT, "database: a row of %s refers to a missing row", table);
    return rc;
}

/* Bring a database below ND_SCHEMA_VERSION up to it in one transaction: a
 * new one gets schema_sql, one of version 1 is migrated first (states
 * outside the lifecycle refuse the migration and leave the database as it
 * was).  The version is read again under the write lock: another process
 * may have upgraded it meanwhile.  Foreign keys are off while tables are
 * rebuilt (dropping bundles would otherwise trip the references to it) and
 * checked before the commit; the pragma cannot change inside a
 * transaction, hence around it. */
static int schema_upgrade(sqlite3 *db, sc_error *e)
{
    char set[64];
    int64_t ver = 0;
    int rc;
    snprintf(set, sizeof set, "PRAGMA user_version=%d", ND_SCHEMA_VERSION);
    if ((rc = nd_db_exec(db, "PRAGMA foreign_keys=OFF", e)))
        return rc;
    if ((rc = nd_db_begin(db, e)) || (rc = nd_db_int(db, &ver, NULL, e, "PRAGMA user_version", "")))
        goto out;
    if (ver == 1 && ((rc = v1_states_known(db, e)) || (rc = nd_db_exec(db, migrate_v2_sql, e)))) {
        sc_error_wrap(e, "migrating the state database from version 1 to %d", ND_SCHEMA_VERSION);
        goto out;
    }
    if (ver < ND_SCHEMA_VERSION &&
        ((rc = nd_db_exec(db, schema_sql, e)) || (rc = nd_db_exec(db, schema_v4_sql, e)) ||
         (rc = foreign_keys_hold(db, e)) || (rc = nd_db_exec(db, set, e))))
        goto out;
    rc = nd_db_commit(db, e);
out:
    if (rc)
        nd_db_rollback(db);
    sc_error fe = {0, ""};
    int frc = nd_db_exec(db, "PRAGMA foreign_keys=ON", &fe);
    if (!rc && frc)
        rc = sc_error_set(e, frc, "%s", fe.msg);
    return rc;
}

int nd_db_open(const char *node_dir, int create, sqlite3 **out, sc_error *e)
{
    char path[4200];
    sqlite3 *db = NULL;
    int rc;
    *out = NULL;
    if ((rc = sc_path_join(path, sizeof path, node_dir, ND_DB_FILE, e)))
        return rc;
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX |
                SQLITE_OPEN_PRIVATECACHE;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        rc = sc_error_set(e, db ? SC_EIO : SC_ENOMEM, "database %s: %s", path,
                          db ? sqlite3_errmsg(db) : "out of memory");
        if (!create && db && sqlite3_errcode(db) == SQLITE_CANTOPEN)
            rc = sc_error_set(e, SC_ENOTFOUND, "%s has no state database (start 'sldd serve')",
                              node_dir);
        sqlite3_close(db);
        return rc;
    }
    /* owner only, whatever the umask: SQLite gives the -wal and -shm files
     * the database file's mode */
    if (create && chmod(path, 0600) != 0) {
        rc = sc_error_set(e, SC_EIO, "database %s: chmod 0600: %s", path, strerror(errno));
        sqlite3_close(db);
        return rc;
    }
    if (sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS) != SQLITE_OK ||
        sqlite3_extended_result_codes(db, 1) != SQLITE_OK) {
        rc = db_fail(db, e, "configure");
        sqlite3_close(db);
        return rc;
    }
    /* WAL survives crashes with synchronous=FULL as well as a rollback
     * journal does, and lets readers (CLI, API) run beside the writer. */
    if ((rc = nd_db_exec(db, "PRAGMA journal_mode=WAL", e)) ||
        (rc = nd_db_exec(db, "PRAGMA synchronous=FULL", e)) ||
        (rc = nd_db_exec(db, "PRAGMA foreign_keys=ON", e))) {
        sqlite3_close(db);
        return rc;
    }
    int64_t ver = 0;
    if ((rc = nd_db_int(db, &ver, NULL, e, "PRAGMA user_version", ""))) {
        sqlite3_close(db);
        return rc;
    }
    if (ver > ND_SCHEMA_VERSION) {
        sqlite3_close(db);
        return sc_error_set(e, SC_EFORMAT,
                            "%s has schema version %lld; this sldd knows up to %d (newer sldd?)",
                            path, (long long)ver, ND_SCHEMA_VERSION);
    }
    if (ver < ND_SCHEMA_VERSION && (rc = schema_upgrade(db, e))) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

void nd_db_close(sqlite3 *db)
{
    if (!db)
        return;
    nd_db_rollback(db);
    /* with every statement finalized this cannot be SQLITE_BUSY */
    if (sqlite3_close(db) != SQLITE_OK)
        (void)sqlite3_close_v2(db);
}

int nd_db_integrity(sqlite3 *db, sc_error *e)
{
    sqlite3_stmt *st;
    int rc = nd_db_prepare(db, &st, e, "PRAGMA integrity_check(5)", "");
    if (rc)
        return rc;
    nd_buf b;
    nd_buf_init(&b, 400);
    int ok = 0;
    while ((rc = nd_db_step(st, e)) == 1) {
        const char *s = nd_col_text(st, 0);
        if (!strcmp(s, "ok"))
            ok = 1;
        else
            nd_buf_printf(&b, "%s%s", b.len ? "; " : "", s);
    }
    nd_db_finalize(st);
    if (!rc && !ok)
        rc = sc_error_set(e, SC_EFORMAT, "integrity check failed: %s",
                          b.data && !b.failed ? b.data : "(no detail)");
    nd_buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- replay */

static int rp_check(sc_replay_store *s, const char *sender, const uint8_t id[16], uint64_t seq,
                    sc_error *e)
{
    sqlite3 *db = s->ctx;
    char hex[33];
    int64_t v;
    int found, rc;
    nd_hex(hex, id, 16);
    if ((rc = nd_db_int(db, &v, &found, e, "SELECT 1 FROM replay WHERE bundle_id=?", "t", hex)))
        return rc;
    if (found)
        return sc_error_set(e, SC_EREFUSE_REPLAY_ID, "bundle %s was accepted before", hex);
    if ((rc = nd_db_int(db, &v, &found, e,
                        "SELECT sequence FROM replay WHERE sender=? "
                        "ORDER BY sequence DESC LIMIT 1",
                        "t", sender)))
        return rc;
    if (found && (uint64_t)v >= seq)
        return sc_error_set(e, SC_EREFUSE_REPLAY_SEQ,
                            "sequence %llu from %s is not above the last accepted (%lld)",
                            (unsigned long long)seq, sender, (long long)v);
    return 0;
}

static int rp_record(sc_replay_store *s, const char *sender, const uint8_t id[16], uint64_t seq,
                     sc_error *e)
{
    char hex[33];
    nd_hex(hex, id, 16);
    if (seq > (uint64_t)INT64_MAX)
        return sc_error_set(e, SC_EINVAL, "sequence out of range");
    return nd_db_run(s->ctx, e,
                     "INSERT INTO replay(bundle_id,sender,sequence,time_unix) "
                     "VALUES(?,?,?,?)",
                     "ttii", hex, sender, (int64_t)seq, nd_now_unix());
}

static void rp_destroy(sc_replay_store *s)
{
    free(s);
}

int nd_replay_store_db(sqlite3 *db, sc_replay_store **out, sc_error *e)
{
    sc_replay_store *s = calloc(1, sizeof *s);
    if (!s)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    s->ctx = db;
    s->check = rp_check;
    s->record = rp_record;
    s->destroy = rp_destroy;
    *out = s;
    return 0;
}

int64_t nd_now_unix(void)
{
    return (int64_t)time(NULL);
}

int64_t nd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int nd_bundle_resolve(sqlite3 *db, const char *prefix, char id[33], sc_error *e)
{
    sqlite3_stmt *st;
    char like[64];
    int rc, n = 0;
    size_t len = strlen(prefix);
    if (len < 4 || len > 32 || strspn(prefix, "0123456789abcdef") != len)
        return sc_error_set(e, SC_EINVAL, "'%s' is not a bundle id (4 to 32 lowercase hex digits)",
                            prefix);
    snprintf(like, sizeof like, "%s%%", prefix);
    if ((rc = nd_db_prepare(db, &st, e, "SELECT id FROM bundles WHERE id LIKE ? LIMIT 2", "t",
                            like)))
        return rc;
    while ((rc = nd_db_step(st, e)) == 1)
        if (n++ == 0)
            snprintf(id, 33, "%s", nd_col_text(st, 0));
    nd_db_finalize(st);
    if (rc < 0)
        return rc;
    if (n == 0)
        return sc_error_set(e, SC_ENOTFOUND, "no bundle %s", prefix);
    if (n > 1)
        return sc_error_set(e, SC_EEXIST, "bundle id prefix %s is ambiguous", prefix);
    return 0;
}
