/*
 * nd_state.h - the node's SQLite state store: schema, pragmas and the small
 * checked helpers every other module uses to talk to it.
 *
 * One database per node directory (NODE/state.db) in WAL mode with
 * synchronous=FULL, so a committed transaction survives a crash or power
 * loss.  It holds bundles (both directions), deliveries, approvals,
 * evaluations, jobs, peer addresses and pins, the replay table of accepted
 * bundle ids and the audit log (nd_audit.h).  Each thread and each process
 * opens its own connection; writers use BEGIN IMMEDIATE and wait up to the
 * busy timeout for one another.  Every sqlite3 call is checked and a failure
 * is reported with sqlite's own message.
 */
#ifndef ND_STATE_H
#define ND_STATE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"
#include "sc_store.h"

#define ND_DB_FILE "state.db"
/* 2: CHECK constraints on the states of bundles, deliveries and jobs
 * (nd_lifecycle.h), a version-1 database migrated when opened; the theta_opt
 * table (every table is created IF NOT EXISTS, so opening an older database
 * adds what it lacks and keeps the rest).
 * 3: the privacy ledger (nd_ledger.h: tables ledger and ledger_records).
 * 4: peer_roster, the admin roster each peer has acknowledged (nd_roster.h). */
#define ND_SCHEMA_VERSION 4

/* Open (and with create, make) NODE/state.db: pragmas, schema. */
int nd_db_open(const char *node_dir, int create, sqlite3 **out, sc_error *e) SC_WUR;
void nd_db_close(sqlite3 *db); /* accepts NULL */

int nd_db_exec(sqlite3 *db, const char *sql, sc_error *e) SC_WUR;
/* BEGIN IMMEDIATE: take the write lock now (waits up to the busy timeout). */
int nd_db_begin(sqlite3 *db, sc_error *e) SC_WUR;
int nd_db_commit(sqlite3 *db, sc_error *e) SC_WUR;
/* Roll back if a transaction is open; never fails loudly (logs nothing). */
void nd_db_rollback(sqlite3 *db);

/*
 * Prepare sql and bind its parameters from the variadic list, one per
 * character of types:
 *   't' const char * (NULL binds NULL)     'i' int64_t
 *   'd' double (non-finite binds NULL)     'b' const void *, size_t (blob)
 *   'n' nothing (binds NULL, no argument)
 */
int nd_db_prepare(sqlite3 *db, sqlite3_stmt **st, sc_error *e, const char *sql, const char *types,
                  ...) SC_WUR;
/* 1 for a row, 0 when done, negative on error. */
int nd_db_step(sqlite3_stmt *st, sc_error *e) SC_WUR;
void nd_db_finalize(sqlite3_stmt *st);
/* Prepare, bind, step to the end, finalize. */
int nd_db_run(sqlite3 *db, sc_error *e, const char *sql, const char *types, ...) SC_WUR;
/* A single integer result (first column of the first row); *found 0 when
 * there is no row. found may be NULL (no row is then SC_ENOTFOUND). */
int nd_db_int(sqlite3 *db, int64_t *out, int *found, sc_error *e, const char *sql,
              const char *types, ...) SC_WUR;
/* A single text result copied into out (truncated to outlen). */
int nd_db_text(sqlite3 *db, char *out, size_t outlen, int *found, sc_error *e, const char *sql,
               const char *types, ...) SC_WUR;
/* Column helpers: int64_t (sqlite3_int64 is long long), text never NULL. */
int64_t nd_col_int(sqlite3_stmt *st, int col);
const char *nd_col_text(sqlite3_stmt *st, int col);
double nd_col_double(sqlite3_stmt *st, int col); /* NULL -> NaN */

/* PRAGMA integrity_check; 0 when it says "ok", else SC_EFORMAT and the
 * first problems in e. */
int nd_db_integrity(sqlite3 *db, sc_error *e) SC_WUR;

/* The replay store of the receive path (sc_store.h) over this database:
 * check and record run on db, so a record made inside the caller's
 * transaction commits (or rolls back) with it. */
int nd_replay_store_db(sqlite3 *db, sc_replay_store **out, sc_error *e) SC_WUR;

/* Resolve a bundle id or unique prefix (>= 4 hex digits) into id (33).
 * SC_ENOTFOUND or SC_EEXIST (ambiguous) with a message. */
int nd_bundle_resolve(sqlite3 *db, const char *prefix, char id[33], sc_error *e) SC_WUR;

int64_t nd_now_unix(void);
int64_t nd_now_ms(void);

#endif
