/*
 * sc_node.h - the node directory: layout, config file and the outbound
 * sequence counter.  The daemon will move state into SQLite; the key files
 * and node.conf stay here.  Layout and file formats: docs/keys.md.
 */
#ifndef SC_NODE_H
#define SC_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"
#include "sc_keys.h"
#include "sc_store.h"

typedef struct sc_node_config {
    char id[65];
    size_t max_bundle_bytes;     /* size cap before parsing (64 MiB) */
    size_t parse_budget_bytes;   /* memory for parsing one payload (256 MiB) */
    int64_t clock_skew_seconds;  /* allowance for "from the future" (300) */
    size_t min_admin_approvals;  /* distinct admins a bundle needs (1; never 0) */
    int64_t bundle_ttl_seconds;  /* default lifetime of a new bundle (30 days) */
} sc_node_config;

void sc_node_config_default(sc_node_config *c);
/* Create node_dir (0700) with keys, node.conf, admins/ and peers/.
 * Refuses (SC_EEXIST) when node_dir already holds a node. */
int sc_node_init(const char *node_dir, const char *id, sc_error *e) SC_WUR;
int sc_node_config_load(const char *node_dir, sc_node_config *c, sc_error *e) SC_WUR;
/* Next outbound sequence number (1, 2, ...), durable before returning;
 * safe against concurrent callers (flock). */
int sc_node_sequence_next(const char *node_dir, uint64_t *seq, sc_error *e) SC_WUR;

/* An open node directory: what the CLI commands and the daemon need. */
typedef struct sc_node {
    char dir[4096];
    sc_node_config cfg;
    sc_node_keys *keys;       /* with SC_NODE_KEYS, else NULL */
    sc_trust_store *trust;    /* always */
    sc_replay_store *replay;  /* with SC_NODE_REPLAY, else NULL */
} sc_node;

enum { SC_NODE_KEYS = 1, SC_NODE_REPLAY = 2 };

int sc_node_open(const char *node_dir, unsigned flags, sc_node **out, sc_error *e) SC_WUR;
void sc_node_close(sc_node *n);

#endif
