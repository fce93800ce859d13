/*
 * nd_ctx.h - what every part of a running node shares: its configuration,
 * keys and trust store, the log, the stop flag and the wake-ups between
 * the worker threads.  Owned by nd_daemon; the workers only borrow it.
 *
 * Threads: the network loop (peer protocol, on the main thread), the admin
 * API (an acceptor and a small pool of workers), the outbound worker
 * (sealing and delivery), the inbound worker (rebuild and evaluation of
 * received bundles), the job runner (distillation) and the witness sender
 * (nd_witness_sync.h).  Each opens its own database connection.
 */
#ifndef ND_CTX_H
#define ND_CTX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "nd_config.h"
#include "nd_log.h"
#include "nd_metrics.h"
#include "sc_error.h"
#include "sc_keys.h"
#include "sc_store.h"

/* The node.conf settings that SIGHUP reloads (nd_service.h).  While the
 * node runs they are read with nd_ctx_settings, never from cfg directly:
 * a reload may be writing them. */
typedef struct nd_settings {
    nd_privacy_policy privacy;
    char privacy_thresholds[256];
    char distill[2048];
    int64_t retry_base_ms, retry_max_ms;
    int64_t witness_every_entries, witness_every_seconds;
    nd_rebuild_limits rebuild;
    double max_epsilon, epsilon_delta; /* the privacy budget (nd_ledger.h) */
} nd_settings;

typedef struct nd_ctx {
    nd_config cfg;
    char self_id[65];
    sc_node_keys *keys;
    sc_trust_store *trust;
    FILE *log; /* stderr or the --log file */
    int log_owned;
    nd_log_format log_format; /* --log-format (nd_log.h) */
    pthread_mutex_t log_mu;
    atomic_int stopping;
    /* wake-ups: a worker sleeps on its condition until it has work */
    pthread_mutex_t mu;
    pthread_cond_t wake_out, wake_in, wake_jobs;
    int pending_out, pending_in, pending_jobs;
    nd_metrics metrics;     /* counters for GET /v1/metrics (nd_metrics.h) */
    pthread_mutex_t cfg_mu; /* over cfg's nd_settings fields */
    int listen_port_bound;  /* the peer listener's port, set before the workers start */
} nd_ctx;

int nd_ctx_init(nd_ctx *c, const char *node_dir, const char *log_path, sc_error *e) SC_WUR;
void nd_ctx_destroy(nd_ctx *c);

void nd_log(nd_ctx *c, const char *level, const char *fmt, ...) SC_PRINTF(3, 4);
/* The same with fields (nd_log_line's kv: key, value, ..., NULL): JSON
 * lines carry them as "fields", text lines as key=value after the text. */
void nd_log_kv(nd_ctx *c, const char *level, const char *const *kv, const char *fmt, ...)
    SC_PRINTF(4, 5);

/* A consistent copy of the reloadable settings. */
void nd_ctx_settings(nd_ctx *c, nd_settings *out);
/* Take the reloadable settings of a freshly loaded config. */
void nd_ctx_settings_set(nd_ctx *c, const nd_config *from);

/* Wake a worker; safe from any thread (not from a signal handler). */
void nd_wake(nd_ctx *c, pthread_cond_t *cond, int *pending);
/* Sleep until woken, stopping, or timeout_ms passed; clears *pending. */
void nd_wait(nd_ctx *c, pthread_cond_t *cond, int *pending, int64_t timeout_ms);
/* Ask everything to stop and wake every worker. */
void nd_ctx_stop(nd_ctx *c);

/*
 * Test hook for the crash tests: when the environment variable
 * SLDD_TEST_HOLD names `point` (a comma-separated list), create
 * NODE/hold.<point> and wait there until the process is killed or asked to
 * stop.  Lets a test kill -9 (or SIGTERM) a node at an exact point without
 * any timing.  Does nothing otherwise.
 */
void nd_test_hold(nd_ctx *c, const char *point);

#endif
