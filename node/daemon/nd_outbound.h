/*
 * nd_outbound.h - the outbound lifecycle (docs/design.md, "Lifecycle") after a distillation
 * job has made a node-signed bundle:
 *
 *   pending (approval) -> approved | rejected -> queued (sealed per
 *   recipient) -> delivered (signed receipt) | failed (refused, expired)
 *
 * nd_outbound_decide() takes an admin's decision - the statement with the
 * admin's signature over an Approval naming SHA-256 of the payload bytes -
 * checks it against the stored payload and this node's admin keys and
 * records it.  nd_outbound_release() is THE gate: the only code that makes
 * envelopes, and it seals only a bundle whose state is approved and whose
 * stored statement carries a valid node signature and enough valid admin
 * approvals for exactly the stored payload (sc_statement_verify, then
 * sc_seal_statement checks again).  The delivery worker sends nothing but
 * envelopes the gate recorded, in sequence order per peer, retries with
 * jittered exponential back-off and stores each peer's signed receipt.
 */
#ifndef ND_OUTBOUND_H
#define ND_OUTBOUND_H

#include <pthread.h>
#include <sqlite3.h>

#include "nd_ctx.h"
#include "sn_client.h"

typedef struct nd_outbound {
    nd_ctx *ctx;
    pthread_t thread;
    int started;
    sqlite3 *db;
    sn_client *client;
    uint64_t rng;
} nd_outbound;

int nd_outbound_start(nd_outbound *o, nd_ctx *ctx, sc_error *e) SC_WUR;
void nd_outbound_join(nd_outbound *o);

typedef struct nd_decision_result {
    int rejected;       /* a valid rejection was recorded */
    int approved;       /* the bundle is now approved (enough admins) */
    size_t n_admins;    /* distinct valid approvals */
    size_t need;        /* approvals required */
    char admins[256];   /* names, comma-separated */
} nd_decision_result;

/* Record the decision carried by statement st (from the admin API).
 * SC_EINVAL / SC_EPERM / SC_ENOTFOUND with a reason when it is refused. */
int nd_outbound_decide(nd_ctx *c, sqlite3 *db, const char *bundle_id, const uint8_t *st,
                       size_t len, nd_decision_result *res, sc_error *e) SC_WUR;

/* The release gate: seal an approved bundle for each recipient and queue
 * the deliveries. */
int nd_outbound_release(nd_ctx *c, sqlite3 *db, const char *bundle_id, sc_error *e) SC_WUR;

#endif
