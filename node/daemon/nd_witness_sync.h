/*
 * nd_witness_sync.h - the daemon's side of witnessed audit heads
 * (nd_witness.h): sending this node's head to its peers, and keeping the
 * heads peers send.
 *
 * Sending: a worker thread looks at the audit log once a second and signs
 * a new head at start-up, after witness-every-entries new entries, or when
 * witness-every-seconds have passed with new entries (node.conf; both 0
 * turns sending off).  It POSTs the current head to every peer with an
 * address that has not yet kept it, retrying with the delivery back-off
 * (retry-base-ms, retry-max-ms) after a failure and giving up on a head a
 * peer refused (4xx) until there is a newer one.  At a clean stop, after
 * every other worker has finished, it signs the final head and gives each
 * peer one try.  Sending writes nothing to the audit log (that would move
 * the head it reports); outcomes go to the node's log.
 *
 * Keeping: nd_witness_on_head is the peer protocol's callback for POST
 * /v1/audit-head, run on the network thread with the daemon's connection.
 * It checks the head against the sender's known signing key and the rules
 * of nd_witness_store and answers 200 (kept or already kept), 400
 * (malformed), 403 (a head of another node), 409 (conflicts with a kept
 * head or goes backwards), 422 (bad signature, from the future), 507 (too
 * many kept) or 503; every refusal is logged and audited.
 */
#ifndef ND_WITNESS_SYNC_H
#define ND_WITNESS_SYNC_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "nd_ctx.h"
#include "sn_client.h"
#include "sn_peer.h"

#define ND_WITNESS_PEERS 256

typedef struct nd_witness_peer {
    char id[65];
    int64_t acked_seq;   /* the peer kept our head at this entry */
    int64_t refused_seq; /* the peer refused our head at this entry */
    int attempts;        /* failures in a row */
    int64_t next_ms;     /* not before */
} nd_witness_peer;

typedef struct nd_witness_sync {
    nd_ctx *ctx;
    sqlite3 *loop_db; /* the network thread's connection (nd_witness_on_head) */
    sqlite3 *db;      /* the sender's own */
    sn_client *client;
    pthread_t thread;
    int started;
    pthread_cond_t wake;
    int pending;
    char *head; /* the current signed head, or NULL */
    size_t head_len;
    int64_t head_seq, head_ms;
    nd_witness_peer peers[ND_WITNESS_PEERS];
    size_t n_peers;
} nd_witness_sync;

/* Create the witness table, set up the callback's state and, unless
 * sending is off, start the sender. */
int nd_witness_sync_start(nd_witness_sync *w, nd_ctx *c, sqlite3 *loop_db, sc_error *e) SC_WUR;
/* After nd_ctx_stop and the other workers: stop the sender, send the
 * final head, free everything.  Safe when start failed or never ran. */
void nd_witness_sync_stop(nd_witness_sync *w);

/* POST /v1/audit-head (sn_audit_head_fn); arg is the nd_witness_sync. */
void nd_witness_on_head(void *arg, const sn_audit_head_in *in, sn_response *resp);

#endif
