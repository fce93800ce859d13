/*
 * nd_inbound.h - the inbound lifecycle (docs/design.md, "Lifecycle"):
 *   received -> verified -> stored -> rebuilt (theta_opt) -> evaluated on
 *   local labelled data -> available for detection; or refused.
 *
 * nd_inbound_on_bundle (nd_inbound.c) is the peer protocol's callback for
 * POST /v1/bundles, run on the network thread: it answers a retransmission
 * (the same bytes as a bundle already stored from that sender) with the
 * receipt it gave the first time, refuses other bytes under a known bundle
 * id with 409 and an audit entry, runs the full receive order
 * (sc_receive), checks that the bundle's sender is the node the TLS layer
 * authenticated, stores the statement and payload as objects, records the
 * bundle, its replay entry, its receipt and an audit entry in one
 * transaction, and answers with the signed receipt.  A refusal is logged,
 * audited and stores nothing else.
 *
 * The import worker (nd_import.c) then rebuilds theta_opt from each stored
 * bundle (Algorithm 2), evaluates it on the local data set, and records the
 * evaluation, the state change and the audit entry in one transaction, so a
 * crash at any point leads to exactly one import after restart.
 */
#ifndef ND_INBOUND_H
#define ND_INBOUND_H

#include <pthread.h>
#include <sqlite3.h>

#include "nd_ctx.h"
#include "nd_data.h"
#include "sc_store.h"
#include "sn_peer.h"

typedef struct nd_inbound {
    nd_ctx *ctx;
    sqlite3 *db;             /* network thread's connection */
    sc_replay_store *replay; /* over db */
    /* import worker */
    pthread_t thread;
    int started;
    sqlite3 *wdb;
    sd_backend *be;
    nd_data data;
    int data_state; /* 0 not tried, 1 open, -1 unavailable */
} nd_inbound;

/* db is the network thread's connection (owned by the caller). */
int nd_inbound_init(nd_inbound *in, nd_ctx *ctx, sqlite3 *db, sc_error *e) SC_WUR;
void nd_inbound_destroy(nd_inbound *in);
/* sn_bundle_fn: arg is the nd_inbound. */
void nd_inbound_on_bundle(void *arg, const sn_bundle_in *b, sn_response *resp);

/* Start / join the import worker. */
int nd_import_start(nd_inbound *in, sc_error *e) SC_WUR;
void nd_import_join(nd_inbound *in);

/* HTTP status for a receive refusal code. */
int nd_refusal_status(int code);

#endif
