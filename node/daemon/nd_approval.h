/*
 * nd_approval.h - admin decisions on this node's own bundles and the
 * release gate (docs/design.md and docs/node.md, "Lifecycle"):
 *
 *   pending (approval) -> approved | rejected;  approved -> queued
 *
 * nd_approval_decide() takes an admin's decision - the statement with the
 * admin's signature over an Approval naming SHA-256 of the payload bytes -
 * checks it against the stored payload and this node's admin keys and
 * records it; an approval that would release the bundle is refused while a
 * recipient has not acknowledged a roster naming every approving admin
 * (nd_roster.h), so nothing is sealed that the peer would refuse.
 * nd_approval_release() is THE gate: the only code that makes
 * envelopes, and it seals only a bundle whose state is approved and whose
 * stored statement carries a valid node signature and enough valid admin
 * approvals for exactly the stored payload (sc_statement_verify, then
 * sc_seal_statement checks again).  What it queues is sent by the delivery
 * worker (nd_delivery.h).
 */
#ifndef ND_APPROVAL_H
#define ND_APPROVAL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "nd_ctx.h"

typedef struct nd_decision_result {
    int rejected;     /* a valid rejection was recorded */
    int approved;     /* the bundle is now approved (enough admins) */
    size_t n_admins;  /* distinct valid approvals */
    size_t need;      /* approvals required */
    char admins[256]; /* names, comma-separated */
} nd_decision_result;

/* Record the decision carried by statement st (from the admin API).
 * SC_EINVAL / SC_EPERM / SC_ENOTFOUND with a reason when it is refused. */
int nd_approval_decide(nd_ctx *c, sqlite3 *db, const char *bundle_id, const uint8_t *st, size_t len,
                       nd_decision_result *res, sc_error *e) SC_WUR;
/* The same, saying in the audit entries who sent it (the OS user of the
 * admin API's client, may be NULL) beside the admin whose key signed, and
 * why a rejection was made (may be NULL). */
int nd_approval_decide_by(nd_ctx *c, sqlite3 *db, const char *bundle_id, const uint8_t *st,
                          size_t len, const char *who, const char *reason, nd_decision_result *res,
                          sc_error *e) SC_WUR;

/* The release gate: seal an approved bundle for each recipient and queue
 * the deliveries. */
int nd_approval_release(nd_ctx *c, sqlite3 *db, const char *bundle_id, sc_error *e) SC_WUR;

/* Commit the open transaction when rc is 0 (and anchor the audit log it
 * wrote to), roll it back otherwise; rc, or the commit's error. */
int nd_approval_tx_end(nd_ctx *c, sqlite3 *db, int rc, sc_error *e) SC_WUR;

/* May an approved bundle's sealed envelopes be sent again (nd_delivery.h,
 * re-send)?  node.conf's privacy policy and budget as they are now must
 * still allow the release: a re-send never gets round a policy tightened
 * since the approval.  SC_EPERM with the reason when not. */
int nd_approval_may_resend(nd_ctx *c, sqlite3 *db, const char *bundle_id, sc_error *e) SC_WUR;

#endif
