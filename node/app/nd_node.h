/*
 * nd_node.h - the node directory: layout, config file, the outbound
 * sequence counter, and an open node for the file-based CLI commands.  Its
 * replay store is the daemon's (the replay table of NODE/state.db), so a
 * bundle accepted by `bundle open` is a replay for `sldd serve` and the
 * other way round.  Layout and file formats: docs/keys.md.
 */
#ifndef ND_NODE_H
#define ND_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"
#include "sc_keys.h"
#include "sc_store.h"
#include "nd_state.h"

typedef struct nd_node_config {
    char id[65];
    size_t max_bundle_bytes;    /* size cap before parsing (64 MiB) */
    size_t parse_budget_bytes;  /* memory for parsing one payload (256 MiB) */
    int64_t clock_skew_seconds; /* allowance for "from the future" (300) */
    size_t min_admin_approvals; /* distinct admins a bundle needs (1; never 0) */
    int64_t bundle_ttl_seconds; /* default lifetime of a new bundle (30 days) */
} nd_node_config;

void nd_node_config_default(nd_node_config *c);
/* Create node_dir (0700) with keys, node.conf, admins/ and peers/.
 * Refuses (SC_EEXIST) when node_dir already holds a node. */
int nd_node_init(const char *node_dir, const char *id, sc_error *e) SC_WUR;
int nd_node_config_load(const char *node_dir, nd_node_config *c, sc_error *e) SC_WUR;
/* Next outbound sequence number (1, 2, ...), durable before returning;
 * safe against concurrent callers (flock). */
int nd_node_sequence_next(const char *node_dir, uint64_t *seq, sc_error *e) SC_WUR;

/* An open node directory: what the CLI commands and the daemon need. */
typedef struct nd_node {
    char dir[4096];
    nd_node_config cfg;
    sc_node_keys *keys;      /* with ND_NODE_KEYS, else NULL */
    sc_trust_store *trust;   /* always */
    sc_replay_store *replay; /* with ND_NODE_REPLAY, else NULL: over db */
    sqlite3 *db;             /* NODE/state.db, with ND_NODE_REPLAY */
} nd_node;

enum { ND_NODE_KEYS = 1, ND_NODE_REPLAY = 2 };

int nd_node_open(const char *node_dir, unsigned flags, nd_node **out, sc_error *e) SC_WUR;
void nd_node_close(nd_node *n);

#endif
