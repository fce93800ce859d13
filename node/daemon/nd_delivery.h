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

#endif
