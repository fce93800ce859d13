/*
 * nd_lifecycle.h - the states of a bundle and of a job, the transitions
 * allowed between them (one table each), and the one function through
 * which every state change of the node is written.
 *
 * Outbound (this node's own bundles):
 *
 *   (job done) -> pending -> approved -> queued -> delivered
 *                    |                      \---> failed
 *                    \-----> rejected
 *
 * Inbound (bundles received from peers):
 *
 *   (received) -> stored -> available
 *                    \----> import-failed
 *
 * Jobs: (submitted) -> queued -> running -> done | failed | canceled,
 * queued -> canceled, and running -> queued when the daemon stops or
 * restarts under a running job (it resumes from its checkpoint).
 *
 * Deliveries (one per bundle and recipient): (sealed) -> queued ->
 * delivered | refused | expired, or (could not be sealed) -> refused.  Their
 * rows carry attempts, errors and receipts besides the state, so their
 * writers (nd_approval.c, nd_delivery.c) write them and take the names and
 * the allowed moves from here.
 *
 * The names are those stored in bundles.state, jobs.state and
 * deliveries.state (and shown by
 * the CLI and the admin API); the schema's CHECK constraints (nd_state.c)
 * list the same names, and the unit tests hold the two together.
 *
 * A move writes, as one unit, the new state, updated_unix (for jobs
 * started_unix / finished_unix) and, for bundles, one audit entry saying
 * who moved it and why.  It joins the caller's transaction when one is
 * open (so the move commits or rolls back with the change it belongs to:
 * the approvals of a decision, the evaluation of an import) and otherwise
 * runs in a transaction of its own.  A move whose row is not in the
 * expected state changes nothing and fails, so two writers racing for the
 * same row cannot both win.
 */
#ifndef ND_LIFECYCLE_H
#define ND_LIFECYCLE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"

typedef enum nd_bstate {
    ND_BUNDLE_NONE = 0, /* not a state: the row does not exist yet */
    /* outbound */
    ND_BUNDLE_PENDING,
    ND_BUNDLE_APPROVED,
    ND_BUNDLE_REJECTED,
    ND_BUNDLE_QUEUED,
    ND_BUNDLE_DELIVERED,
    ND_BUNDLE_FAILED,
    /* inbound */
    ND_BUNDLE_STORED,
    ND_BUNDLE_AVAILABLE,
    ND_BUNDLE_IMPORT_FAILED,
    ND_BUNDLE_STATE_COUNT
} nd_bstate;

typedef enum nd_jstate {
    ND_JOB_NONE = 0, /* not a state: the row does not exist yet */
    ND_JOB_QUEUED,
    ND_JOB_RUNNING,
    ND_JOB_DONE,
    ND_JOB_FAILED,
    ND_JOB_CANCELED,
    ND_JOB_STATE_COUNT
} nd_jstate;

/* A delivery: one bundle to one recipient (nd_approval.c makes it,
 * nd_delivery.c ends it). */
typedef enum nd_dstate {
    ND_DELIVERY_NONE = 0,
    ND_DELIVERY_QUEUED,
    ND_DELIVERY_DELIVERED,
    ND_DELIVERY_REFUSED,
    ND_DELIVERY_EXPIRED,
    ND_DELIVERY_STATE_COUNT
} nd_dstate;

/* One allowed transition (from NONE: the state a new row is created in). */
typedef struct nd_transition {
    int from, to;
} nd_transition;

/* The stored name ("pending", "import-failed", ...); "" for NONE and for
 * values out of range. */
const char *nd_bundle_state_name(nd_bstate s);
const char *nd_job_state_name(nd_jstate s);
const char *nd_delivery_state_name(nd_dstate s);
/* The state of a stored name; NONE when the name is unknown. */
nd_bstate nd_bundle_state_parse(const char *name);
nd_jstate nd_job_state_parse(const char *name);
nd_dstate nd_delivery_state_parse(const char *name);
/* "out" or "in": the direction of bundles that can be in state s. */
const char *nd_bundle_state_direction(nd_bstate s);

/* The transition tables, for tests and documentation. */
size_t nd_bundle_transitions(const nd_transition **table);
size_t nd_job_transitions(const nd_transition **table);
size_t nd_delivery_transitions(const nd_transition **table);
int nd_bundle_move_allowed(nd_bstate from, nd_bstate to);
int nd_job_move_allowed(nd_jstate from, nd_jstate to);
int nd_delivery_move_allowed(nd_dstate from, nd_dstate to);

/* Why a bundle moves: the audit entry of the move.  NULL fields take the
 * defaults actor "node", action "state", peer "", outcome the new state's
 * name and detail "FROM -> TO".  note, when not NULL, replaces bundles.note
 * (the reason of a failed import). */
typedef struct nd_lifecycle_why {
    const char *actor, *action, *peer, *outcome, *detail, *note;
} nd_lifecycle_why;

/*
 * Move bundle bid from state `from` to state `to`: SC_EINVAL when the table
 * has no such transition or the bundle is not in `from` (its state is then
 * named in e), SC_ENOTFOUND when there is no such bundle, SC_EIO for a
 * database failure.  Writes state, updated_unix (and note) and the audit
 * entry; inside the caller's transaction when one is open (the caller
 * rolls back on failure), else in its own.  The caller re-anchors the audit
 * log (nd_audit_anchor) after its commit, as after any audit append.
 */
int nd_lifecycle_move(sqlite3 *db, const char *bid, nd_bstate from, nd_bstate to,
                      const nd_lifecycle_why *why, sc_error *e) SC_WUR;

/* Record the creation of bundle bid, which the caller has just inserted
 * with state nd_bundle_state_name(to): checks NONE -> to is in the table
 * and the row is there in that state, and writes the audit entry (same
 * transaction rules as nd_lifecycle_move). */
int nd_lifecycle_enter(sqlite3 *db, const char *bid, nd_bstate to, const nd_lifecycle_why *why,
                       sc_error *e) SC_WUR;

/*
 * Move the delivery of bid to peer from `from` to `to` (same refusals and
 * transaction rules as nd_lifecycle_move), with error as its last_error and
 * one audit entry (defaults: actor "node", action "send", outcome the new
 * state's name).  Used where a person ends a delivery (a removed peer's
 * queued deliveries become refused, "canceled: ..."); the delivery worker
 * writes its own rows with their attempts and receipts (nd_delivery.c).
 */
int nd_delivery_move(sqlite3 *db, const char *bid, const char *peer, nd_dstate from, nd_dstate to,
                     const char *error, const nd_lifecycle_why *why, sc_error *e) SC_WUR;

/*
 * Move job id from `from` to `to` (same refusals as nd_lifecycle_move).
 * Sets started_unix on the first move to running and finished_unix on a
 * move to done, failed or canceled; text, when not NULL, becomes the job's
 * error (failed, canceled) or note (queued).  Jobs are not bundles: no
 * audit entry.  Same transaction rules as nd_lifecycle_move.
 */
int nd_job_move(sqlite3 *db, int64_t id, nd_jstate from, nd_jstate to, const char *text,
                sc_error *e) SC_WUR;
/* Move every job in `from` to `to` (start-up recovery); *moved (may be
 * NULL) gets how many. */
int nd_job_move_every(sqlite3 *db, nd_jstate from, nd_jstate to, const char *text, int *moved,
                      sc_error *e) SC_WUR;

#endif
