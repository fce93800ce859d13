/*
 * nd_roster.h - making this node's admins known to its peers (docs/keys.md,
 * "Roster push").
 *
 * A peer checks the admin approvals of our bundles against the admins in
 * the record it holds of us, so an admin added here is unknown there until
 * our current contact card (sc_card.h: keys and admin roster, signed by the
 * node key, rollback-protected by its not-before) reaches it.  Three parts:
 *
 *   - the receiver (nd_roster_on_card, POST /v1/card): takes the card of
 *     the node the TLS layer authenticated when sc_card_check_update allows
 *     it to replace the record on file (same key or a vouched rotation, not
 *     older), keeps the address and TLS pins it has, audits either way;
 *   - the sender (nd_roster_push, run by the delivery worker): pushes a
 *     fresh card to each peer with an address whose acknowledged roster
 *     differs from ours, and records the acknowledgement in peer_roster;
 *   - the gate (nd_roster_check, before an approval is recorded): every
 *     approving admin must be in the roster each recipient acknowledged.
 *
 * peer_roster holds, per peer, the roster digest it acknowledged
 * (nd_card_roster_digest; '' for a baseline) and the admins it lists
 * (NAME:BASE64KEY,...).  `sldd peer add` writes a baseline row: the admins
 * this node had then, assumed to be in the file the peer was given at the
 * same exchange.  A peer with no row at all (added before the roster
 * existed) is not checked.
 */
#ifndef ND_ROSTER_H
#define ND_ROSTER_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "nd_ctx.h"
#include "sc_store.h"
#include "sn_client.h"
#include "sn_peer.h"

#define ND_ROSTER_MAX_PEERS 64

/* The receiver: arg is an nd_roster_srv. */
typedef struct nd_roster_srv {
    nd_ctx *ctx;
    sqlite3 *db; /* the network thread's connection */
} nd_roster_srv;
void nd_roster_on_card(void *arg, const sn_card_in *in, sn_response *resp);

/* The sender's retry state (in memory: a restart pushes at once). */
typedef struct nd_roster_push_state {
    size_t n;
    char peer[ND_ROSTER_MAX_PEERS][65];
    int64_t next_ms[ND_ROSTER_MAX_PEERS];
    int attempts[ND_ROSTER_MAX_PEERS];
} nd_roster_push_state;

/* Push our card where the acknowledged roster differs; returns the
 * milliseconds until a push is due again. */
int64_t nd_roster_push(nd_ctx *c, sqlite3 *db, sn_client *cl, nd_roster_push_state *ps);

/* Before an approval by names[0..n) of bundle bid is recorded: SC_EPERM
 * (with an audit entry and a message naming the admin, the recipient and
 * what to do) when a recipient in audience (comma-separated) has
 * acknowledged a roster without one of them. */
int nd_roster_check(nd_ctx *c, sqlite3 *db, const char *bid, const char *payload_sha256,
                    const char *audience, const sc_peer *self, const char (*names)[65], size_t n,
                    sc_error *e) SC_WUR;

/* `sldd peer add`: the baseline row of peer (the admins of self_id in
 * trust now), unless one exists. */
int nd_roster_baseline(const char *node_dir, sc_trust_store *trust, const char *self_id,
                       const char *peer, sc_error *e) SC_WUR;

#endif
