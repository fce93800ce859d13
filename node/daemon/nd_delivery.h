/*
 * nd_delivery.h - the delivery worker: sends the envelopes the release
 * gate (nd_approval.h) recorded, and nothing else, in sequence order per
 * peer; retries with jittered exponential back-off; verifies and stores
 * each peer's signed receipt; settles the bundle (docs/node.md,
 * "Lifecycle"):
 *
 *   queued -> delivered (every recipient's receipt) | failed (a recipient
 *   refused it, it could not be sealed for one, or it expired)
 *
 * A delivery the peer refused can be queued again by a person
 * (nd_delivery_resend): the same envelope, sealed at approval, bytes and
 * all; see docs/admin.md, "A refused delivery".
 *
 * It also pushes this node's contact card to each peer whose acknowledged
 * admin roster is not ours (nd_roster.h).
 */
#ifndef ND_DELIVERY_H
#define ND_DELIVERY_H

#include <pthread.h>
#include <sqlite3.h>

#include "nd_ctx.h"
#include "nd_roster.h"
#include "sn_client.h"

typedef struct nd_delivery {
    nd_ctx *ctx;
    pthread_t thread;
    int started;
    sqlite3 *db;
    sn_client *client;
    nd_roster_push_state roster; /* pushing our contact card (nd_roster.h) */
} nd_delivery;

/* Start the worker: it releases approved bundles (nd_approval_release) and
 * delivers what is due until the context stops. */
int nd_delivery_start(nd_delivery *o, nd_ctx *ctx, sc_error *e) SC_WUR;
void nd_delivery_join(nd_delivery *o);

/* After a delivery of bid reached a final state (inside the caller's
 * transaction): a queued bundle with nothing left queued becomes delivered
 * (every delivery delivered) or failed. */
int nd_delivery_settle(sqlite3 *db, const char *bid, sc_error *e) SC_WUR;

/* The refused deliveries a re-send queued again. */
typedef struct nd_resend_result {
    size_t n;        /* deliveries queued again */
    char peers[600]; /* their peers, comma-separated */
} nd_resend_result;

/* Queue bid's refused deliveries (to peer only, when not NULL) again, with
 * the envelopes sealed when the bundle was approved, and nothing else: no
 * new seal, no new approval.  Refused (nothing changed) unless the bundle
 * is queued or failed and not expired, node.conf's privacy policy and
 * budget still allow it (nd_approval_may_resend), each envelope is intact,
 * and the peer has not accepted a later sequence number (it would refuse
 * this one as a replay).  A delivery that could not be sealed has no
 * envelope and cannot be re-sent.  One transaction: each delivery
 * refused -> queued with an audit entry `resend` (actor who), the bundle
 * failed -> queued; then the worker is woken. */
int nd_delivery_resend(nd_ctx *c, sqlite3 *db, const char *bid, const char *peer, const char *who,
                       nd_resend_result *res, sc_error *e) SC_WUR;

#endif
