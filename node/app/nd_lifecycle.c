/*
 * nd_lifecycle.c - bundle and job states, their transition tables and the
 * moves that write them (see nd_lifecycle.h; docs/node.md, "Lifecycle").
 */
#include "nd_lifecycle.h"

#include <stdio.h>
#include <string.h>

#include "nd_audit.h"
#include "nd_state.h"

static const char *const bundle_names[ND_BUNDLE_STATE_COUNT] = {
    [ND_BUNDLE_NONE] = "",
    [ND_BUNDLE_PENDING] = "pending",
    [ND_BUNDLE_APPROVED] = "approved",
    [ND_BUNDLE_REJECTED] = "rejected",
    [ND_BUNDLE_QUEUED] = "queued",
    [ND_BUNDLE_DELIVERED] = "delivered",
    [ND_BUNDLE_FAILED] = "failed",
    [ND_BUNDLE_STORED] = "stored",
    [ND_BUNDLE_AVAILABLE] = "available",
    [ND_BUNDLE_IMPORT_FAILED] = "import-failed",
};

static const char *const job_names[ND_JOB_STATE_COUNT] = {
    [ND_JOB_NONE] = "",     [ND_JOB_QUEUED] = "queued", [ND_JOB_RUNNING] = "running",
    [ND_JOB_DONE] = "done", [ND_JOB_FAILED] = "failed", [ND_JOB_CANCELED] = "canceled",
};

static const char *const delivery_names[ND_DELIVERY_STATE_COUNT] = {
    [ND_DELIVERY_NONE] = "",
    [ND_DELIVERY_QUEUED] = "queued",
    [ND_DELIVERY_DELIVERED] = "delivered",
    [ND_DELIVERY_REFUSED] = "refused",
    [ND_DELIVERY_EXPIRED] = "expired",
};

/* THE bundle lifecycle.  Who makes each move:
 *   NONE -> pending          a finished distillation job (nd_jobs.c)
 *   pending -> approved      enough valid admin approvals (nd_approval.c)
 *   pending -> rejected      one valid admin rejection (nd_approval.c)
 *   approved -> queued       the release gate sealed it (nd_approval.c)
 *   queued -> delivered      every recipient returned a receipt (nd_delivery.c)
 *   queued -> failed         a recipient refused it, or it expired (nd_delivery.c)
 *   failed -> queued         a person re-sent a refused delivery (nd_delivery_resend)
 *   NONE -> stored           a peer's bundle passed the receive order (nd_inbound.c)
 *   stored -> available      rebuilt (and evaluated) by the import worker (nd_import.c)
 *   stored -> import-failed  the rebuild failed; bundles.note says why (nd_import.c) */
static const nd_transition bundle_table[] = {
    {ND_BUNDLE_NONE, ND_BUNDLE_PENDING},     {ND_BUNDLE_PENDING, ND_BUNDLE_APPROVED},
    {ND_BUNDLE_PENDING, ND_BUNDLE_REJECTED}, {ND_BUNDLE_APPROVED, ND_BUNDLE_QUEUED},
    {ND_BUNDLE_QUEUED, ND_BUNDLE_DELIVERED}, {ND_BUNDLE_QUEUED, ND_BUNDLE_FAILED},
    {ND_BUNDLE_FAILED, ND_BUNDLE_QUEUED},    {ND_BUNDLE_NONE, ND_BUNDLE_STORED},
    {ND_BUNDLE_STORED, ND_BUNDLE_AVAILABLE}, {ND_BUNDLE_STORED, ND_BUNDLE_IMPORT_FAILED},
};

/* THE job lifecycle (nd_jobs.c makes every move). */
static const nd_transition job_table[] = {
    {ND_JOB_NONE, ND_JOB_QUEUED},     /* submitted */
    {ND_JOB_QUEUED, ND_JOB_RUNNING},  /* picked up by the runner */
    {ND_JOB_QUEUED, ND_JOB_CANCELED}, /* canceled before it ran */
    {ND_JOB_RUNNING, ND_JOB_DONE},    /* its bundle is pending approval */
    {ND_JOB_RUNNING, ND_JOB_FAILED},  {ND_JOB_RUNNING, ND_JOB_CANCELED},
    {ND_JOB_RUNNING, ND_JOB_QUEUED}, /* interrupted: resumes from its checkpoint */
};

/* THE delivery lifecycle. */
static const nd_transition delivery_table[] = {
    {ND_DELIVERY_NONE, ND_DELIVERY_QUEUED},      /* sealed by the release gate */
    {ND_DELIVERY_NONE, ND_DELIVERY_REFUSED},     /* could not be sealed for this peer */
    {ND_DELIVERY_QUEUED, ND_DELIVERY_DELIVERED}, /* signed receipt verified */
    {ND_DELIVERY_QUEUED, ND_DELIVERY_REFUSED},   /* the peer refused it (4xx) */
    {ND_DELIVERY_QUEUED, ND_DELIVERY_EXPIRED},   /* expired before it could be sent */
    {ND_DELIVERY_REFUSED, ND_DELIVERY_QUEUED},   /* re-sent, same envelope (nd_delivery.c) */
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *nd_bundle_state_name(nd_bstate s)
{
    return (unsigned)s < ND_BUNDLE_STATE_COUNT ? bundle_names[s] : "";
}

const char *nd_job_state_name(nd_jstate s)
{
    return (unsigned)s < ND_JOB_STATE_COUNT ? job_names[s] : "";
}

const char *nd_delivery_state_name(nd_dstate s)
{
    return (unsigned)s < ND_DELIVERY_STATE_COUNT ? delivery_names[s] : "";
}

nd_bstate nd_bundle_state_parse(const char *name)
{
    for (int s = 1; name && s < ND_BUNDLE_STATE_COUNT; s++)
        if (!strcmp(name, bundle_names[s]))
            return (nd_bstate)s;
    return ND_BUNDLE_NONE;
}

nd_jstate nd_job_state_parse(const char *name)
{
    for (int s = 1; name && s < ND_JOB_STATE_COUNT; s++)
        if (!strcmp(name, job_names[s]))
            return (nd_jstate)s;
    return ND_JOB_NONE;
}

nd_dstate nd_delivery_state_parse(const char *name)
{
    for (int s = 1; name && s < ND_DELIVERY_STATE_COUNT; s++)
        if (!strcmp(name, delivery_names[s]))
            return (nd_dstate)s;
    return ND_DELIVERY_NONE;
}

const char *nd_bundle_state_direction(nd_bstate s)
{
    if (s >= ND_BUNDLE_PENDING && s <= ND_BUNDLE_FAILED)
        return "out";
    if (s >= ND_BUNDLE_STORED && s <= ND_BUNDLE_IMPORT_FAILED)
        return "in";
    return "";
}

size_t nd_bundle_transitions(const nd_transition **table)
{
    *table = bundle_table;
    return COUNT(bundle_table);
}

size_t nd_job_transitions(const nd_transition **table)
{
    *table = job_table;
    return COUNT(job_table);
}

size_t nd_delivery_transitions(const nd_transition **table)
{
    *table = delivery_table;
    return COUNT(delivery_table);
}

static int in_table(const nd_transition *t, size_t n, int from, int to)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].from == from && t[i].to == to)
            return 1;
    return 0;
}

int nd_bundle_move_allowed(nd_bstate from, nd_bstate to)
{
    return in_table(bundle_table, COUNT(bundle_table), (int)from, (int)to);
}

int nd_job_move_allowed(nd_jstate from, nd_jstate to)
{
    return in_table(job_table, COUNT(job_table), (int)from, (int)to);
}

int nd_delivery_move_allowed(nd_dstate from, nd_dstate to)
{
    return in_table(delivery_table, COUNT(delivery_table), (int)from, (int)to);
}

/* ---------------------------------------------------------------- moves */

/* Join the caller's transaction, or open one (*own = 1). */
static int tx_begin(sqlite3 *db, int *own, sc_error *e)
{
    *own = sqlite3_get_autocommit(db) != 0;
    return *own ? nd_db_begin(db, e) : 0;
}

/* End what tx_begin opened; a joined transaction is the caller's to end. */
static int tx_end(sqlite3 *db, int own, int rc, sc_error *e)
{
    if (!own)
        return rc;
    if (rc) {
        nd_db_rollback(db);
        return rc;
    }
    return nd_db_commit(db, e);
}

/* The UPDATE matched no row: say why (no such row, or another state). */
static int not_in(sqlite3 *db, const char *what, const char *table, const char *key,
                  const char *want, sc_error *e)
{
    char sql[96], state[32] = "";
    int found = 0;
    snprintf(sql, sizeof sql, "SELECT state FROM %s WHERE id=?", table);
    int rc = nd_db_text(db, state, sizeof state, &found, e, sql, "t", key);
    if (rc)
        return rc;
    if (!found)
        return sc_error_set(e, SC_ENOTFOUND, "no %s %s", what, key);
    return sc_error_set(e, SC_EINVAL, "%s %.12s is %s, not %s", what, key, state, want);
}

static int bundle_audit(sqlite3 *db, const char *bid, nd_bstate from, nd_bstate to,
                        const nd_lifecycle_why *why, sc_error *e)
{
    static const nd_lifecycle_why none;
    char ph[65] = "", detail[80];
    int rc = nd_db_text(db, ph, sizeof ph, NULL, e, "SELECT payload_sha256 FROM bundles WHERE id=?",
                        "t", bid);
    if (rc)
        return rc;
    if (!why)
        why = &none;
    snprintf(detail, sizeof detail, "%s -> %s", from ? nd_bundle_state_name(from) : "(new)",
             nd_bundle_state_name(to));
    nd_audit_entry en = {why->actor ? why->actor : "node",
                         why->action ? why->action : "state",
                         bid,
                         ph,
                         why->peer ? why->peer : "",
                         why->outcome ? why->outcome : nd_bundle_state_name(to),
                         why->detail ? why->detail : detail};
    return nd_audit_append(db, &en, NULL, e);
}

static int refuse_bundle_move(const char *bid, nd_bstate from, nd_bstate to, sc_error *e)
{
    return sc_error_set(e, SC_EINVAL,
                        "bundle %.12s: %s -> %s is not a move of the bundle "
                        "lifecycle",
                        bid, from ? nd_bundle_state_name(from) : "(new)",
                        to ? nd_bundle_state_name(to) : "(none)");
}

int nd_lifecycle_move(sqlite3 *db, const char *bid, nd_bstate from, nd_bstate to,
                      const nd_lifecycle_why *why, sc_error *e)
{
    int own, rc;
    if (from == ND_BUNDLE_NONE || !nd_bundle_move_allowed(from, to))
        return refuse_bundle_move(bid, from, to, e);
    if ((rc = tx_begin(db, &own, e)))
        return rc;
    rc = nd_db_run(db, e,
                   "UPDATE bundles SET state=?, updated_unix=?, note=COALESCE(?,note) "
                   "WHERE id=? AND state=?",
                   "titt"
                   "t",
                   nd_bundle_state_name(to), nd_now_unix(), why ? why->note : NULL, bid,
                   nd_bundle_state_name(from));
    if (!rc && sqlite3_changes(db) != 1)
        rc = not_in(db, "bundle", "bundles", bid, nd_bundle_state_name(from), e);
    if (!rc)
        rc = bundle_audit(db, bid, from, to, why, e);
    return tx_end(db, own, rc, e);
}

int nd_lifecycle_enter(sqlite3 *db, const char *bid, nd_bstate to, const nd_lifecycle_why *why,
                       sc_error *e)
{
    int own, rc;
    if (!nd_bundle_move_allowed(ND_BUNDLE_NONE, to))
        return refuse_bundle_move(bid, ND_BUNDLE_NONE, to, e);
    if ((rc = tx_begin(db, &own, e)))
        return rc;
    int64_t v;
    int found = 0;
    rc = nd_db_int(db, &v, &found, e, "SELECT 1 FROM bundles WHERE id=? AND state=?", "tt", bid,
                   nd_bundle_state_name(to));
    if (!rc && !found)
        rc = not_in(db, "bundle", "bundles", bid, nd_bundle_state_name(to), e);
    if (!rc)
        rc = bundle_audit(db, bid, ND_BUNDLE_NONE, to, why, e);
    return tx_end(db, own, rc, e);
}

static int job_refuse(int64_t id, nd_jstate from, nd_jstate to, sc_error *e)
{
    return sc_error_set(e, SC_EINVAL, "job %lld: %s -> %s is not a move of the job lifecycle",
                        (long long)id, from ? nd_job_state_name(from) : "(new)",
                        to ? nd_job_state_name(to) : "(none)");
}

/* One UPDATE for both job moves: id 0 selects every job in `from`. */
static int job_update(sqlite3 *db, int64_t id, nd_jstate from, nd_jstate to, const char *text,
                      sc_error *e)
{
    int terminal = to == ND_JOB_DONE || to == ND_JOB_FAILED || to == ND_JOB_CANCELED;
    int64_t now = nd_now_unix();
    return nd_db_run(
        db, e,
        "UPDATE jobs SET state=?,"
        " started_unix=CASE WHEN ? THEN COALESCE(started_unix,?) ELSE started_unix END,"
        " finished_unix=CASE WHEN ? THEN ? ELSE finished_unix END,"
        " error=COALESCE(?,error),"
        /* a finished job drops why it was queued again ("interrupted ...");
         * a DP job's "epsilon ..." stays: it is what the release spent */
        " note=CASE WHEN ? AND note NOT LIKE 'epsilon %' THEN '' ELSE COALESCE(?,note) END"
        " WHERE (?=0 OR id=?) AND state=?",
        "tiiii"
        "tit"
        "iit",
        nd_job_state_name(to), (int64_t)(to == ND_JOB_RUNNING), now, (int64_t)terminal, now,
        to == ND_JOB_FAILED || to == ND_JOB_CANCELED ? text : NULL, (int64_t)(to == ND_JOB_DONE),
        to == ND_JOB_QUEUED ? text : NULL, id, id, nd_job_state_name(from));
}

int nd_job_move(sqlite3 *db, int64_t id, nd_jstate from, nd_jstate to, const char *text,
                sc_error *e)
{
    int own, rc;
    char key[32];
    if (from == ND_JOB_NONE || id <= 0 || !nd_job_move_allowed(from, to))
        return job_refuse(id, from, to, e);
    if ((rc = tx_begin(db, &own, e)))
        return rc;
    rc = job_update(db, id, from, to, text, e);
    snprintf(key, sizeof key, "%lld", (long long)id);
    if (!rc && sqlite3_changes(db) != 1)
        rc = not_in(db, "job", "jobs", key, nd_job_state_name(from), e);
    return tx_end(db, own, rc, e);
}

int nd_job_move_every(sqlite3 *db, nd_jstate from, nd_jstate to, const char *text, int *moved,
                      sc_error *e)
{
    int own, rc;
    if (moved)
        *moved = 0;
    if (from == ND_JOB_NONE || !nd_job_move_allowed(from, to))
        return job_refuse(0, from, to, e);
    if ((rc = tx_begin(db, &own, e)))
        return rc;
    rc = job_update(db, 0, from, to, text, e);
    if (!rc && moved)
        *moved = sqlite3_changes(db);
    return tx_end(db, own, rc, e);
}

int nd_delivery_move(sqlite3 *db, const char *bid, const char *peer, nd_dstate from, nd_dstate to,
                     const char *error, const nd_lifecycle_why *why, sc_error *e)
{
    static const nd_lifecycle_why none;
    int own, rc;
    char ph[65] = "", detail[160];
    if (from == ND_DELIVERY_NONE || !nd_delivery_move_allowed(from, to))
        return sc_error_set(e, SC_EINVAL, "delivery of %.12s to %s: %s -> %s is not a move", bid,
                            peer, nd_delivery_state_name(from), nd_delivery_state_name(to));
    if (!why)
        why = &none;
    if ((rc = tx_begin(db, &own, e)))
        return rc;
    rc = nd_db_run(db, e,
                   "UPDATE deliveries SET state=?, last_error=? WHERE bundle_id=? AND peer=? AND "
                   "state=?",
                   "ttttt", nd_delivery_state_name(to), error ? error : "", bid, peer,
                   nd_delivery_state_name(from));
    if (!rc && sqlite3_changes(db) != 1)
        rc = sc_error_set(e, SC_EINVAL, "delivery of %.12s to %s is no longer %s", bid, peer,
                          nd_delivery_state_name(from));
    if (!rc)
        rc = nd_db_text(db, ph, sizeof ph, NULL, e, "SELECT payload_sha256 FROM bundles WHERE id=?",
                        "t", bid);
    snprintf(detail, sizeof detail, "delivery to %s: %s -> %s", peer, nd_delivery_state_name(from),
             nd_delivery_state_name(to));
    nd_audit_entry en = {why->actor ? why->actor : "node",
                         why->action ? why->action : "send",
                         bid,
                         ph,
                         peer,
                         why->outcome ? why->outcome : nd_delivery_state_name(to),
                         why->detail ? why->detail : detail};
    if (!rc)
        rc = nd_audit_append(db, &en, NULL, e);
    return tx_end(db, own, rc, e);
}
