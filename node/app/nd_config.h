/*
 * nd_config.h - what `sldd serve` reads from NODE/node.conf beyond the keys
 * the crypto library owns (id, size caps, clock skew, approvals, TTL):
 * listen address, TLS files, peers' addresses and pins, the local data
 * set, the privacy policy, default distillation options, delivery
 * back-off and how often the audit head is sent to peers to witness, and the rebuild policy of
 * received models (nd_rebuild.h).  Relative paths are taken from the node directory.  The keys
 * are listed in docs/node.md.
 */
#ifndef ND_CONFIG_H
#define ND_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "nd_rebuild.h"
#include "sc_error.h"
#include "nd_node.h"

#define ND_MAX_PEERS 64
#define ND_PATH_MAX  4200
#define ND_URL_MAX   512
#define ND_PINS_MAX  256

typedef enum nd_privacy_policy {
    ND_PRIVACY_OFF = 0,    /* the audit is shown, never blocks */
    ND_PRIVACY_BLOCK = 1,  /* a "block" verdict cannot be approved (default) */
    ND_PRIVACY_REQUIRE = 2 /* only "pass" or "warn" can be approved */
} nd_privacy_policy;

typedef struct nd_peer_addr {
    char id[65];
    char url[ND_URL_MAX];   /* https://host:port */
    char pins[ND_PINS_MAX]; /* one or more pins, ';'-separated (curl form) */
} nd_peer_addr;

typedef struct nd_config {
    nd_node_config base;
    char dir[ND_PATH_MAX];
    char listen_addr[64];
    int listen_port; /* 0: ephemeral (written to NODE/serve.json) */
    char tls_cert[ND_PATH_MAX], tls_key[ND_PATH_MAX], tls_ca[ND_PATH_MAX];
    char data[ND_PATH_MAX]; /* prepared gastric data set, "" for none */
    nd_privacy_policy privacy;
    char privacy_thresholds[256]; /* sd_privacy_policy_parse text, "" = defaults */
    double max_epsilon;           /* privacy budget per training record (nd_ledger.h); 0 = none */
    double epsilon_delta;         /* the delta it is stated at (default 1e-5) */
    char distill[2048];           /* default options of distillation jobs */
    char device[16];              /* compute backend: cpu, cuda */
    int64_t retry_base_ms, retry_max_ms;
    int max_connections;
    int64_t witness_every_entries; /* sign and send the audit head after N entries (0: no) */
    int64_t witness_every_seconds; /* ... or after S seconds with new entries (0: no) */
    nd_rebuild_limits rebuild;     /* what a received model may cost to rebuild */
    size_t n_peers;
    nd_peer_addr peers[ND_MAX_PEERS];
} nd_config;

int nd_config_load(const char *node_dir, nd_config *c, sc_error *e) SC_WUR;
/* Append "key: value" lines to NODE/node.conf (fsync'd). */
int nd_config_append(const char *node_dir, const char *lines, sc_error *e) SC_WUR;
const char *nd_privacy_policy_name(nd_privacy_policy p);

/* The back-off before attempt n+1 after n failed attempts: exponential from
 * base, capped at max, with "equal jitter" (half fixed, half random) drawn
 * from u in [0, 1). */
int64_t nd_backoff_ms(int64_t base, int64_t max, int attempts, double u);

#endif
