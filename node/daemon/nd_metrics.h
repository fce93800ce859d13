/*
 * nd_metrics.h - what a running node counts, and its Prometheus text
 * exposition (format 0.0.4) for GET /v1/metrics on the admin socket.
 *
 * Two sources.  The state database gives what survives a restart: jobs by
 * state, bundles by direction and state, deliveries by state and the last
 * delivery error of each peer.  The process counts what the database does
 * not keep in countable form: refusals by reason, bundle bytes sent and
 * received, the last contact with each peer, distillation iterations and
 * their rate, classified patches and their rate, configuration reloads;
 * these start from zero at each start (Prometheus counters may reset;
 * rate() handles it).
 *
 * The counters are updated from every worker thread under one mutex; each
 * update is a few stores.  Names, types and labels: docs/operations.md.
 */
#ifndef ND_METRICS_H
#define ND_METRICS_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "nd_buf.h"
#include "sc_error.h"

#define ND_METRICS_PEERS   64
#define ND_METRICS_REASONS 32

typedef struct nd_metrics {
    pthread_mutex_t mu;
    uint64_t bytes_sent, bytes_received; /* bundle envelopes over the peer protocol */
    struct {
        char peer[65];
        int64_t unix_ms;
    } contact[ND_METRICS_PEERS];
    int n_contact;
    struct {
        char reason[48];
        uint64_t n;
    } refusals[ND_METRICS_REASONS]; /* the last slot collects "other" */
    int n_refusals;
    uint64_t iterations; /* distillation iterations run */
    int64_t job_id, job_it0, job_it, job_t0_ms, job_t_ms;
    uint64_t patches; /* patches classified (import evaluations) */
    double patch_seconds, patch_rate;
    uint64_t reloads, reload_failures;
    int64_t started_unix;
} nd_metrics;

void nd_metrics_init(nd_metrics *m);
void nd_metrics_destroy(nd_metrics *m);

void nd_metrics_bytes(nd_metrics *m, uint64_t sent, uint64_t received);
/* Something was refused; reason is a short token ("tls-handshake",
 * "wrong-recipient", ...). */
void nd_metrics_refusal(nd_metrics *m, const char *reason);
/* An authenticated exchange with peer (either direction). */
void nd_metrics_contact(nd_metrics *m, const char *peer);
/* Distillation job job_id reached iteration iter (called every iteration). */
void nd_metrics_iteration(nd_metrics *m, int64_t job_id, int64_t iter);
/* n patches were classified in seconds. */
void nd_metrics_patches(nd_metrics *m, uint64_t n, double seconds);
void nd_metrics_reload(nd_metrics *m, int ok);

/* The exposition: every metric with HELP and TYPE, label values escaped.
 * node names the node (label of sldd_build_info). */
int nd_metrics_render(nd_metrics *m, sqlite3 *db, const char *node, nd_buf *out,
                      sc_error *e) SC_WUR;

/* What `sldd status` shows of a table: every state of jobs
 * (ND_COUNT_JOBS), outbound or inbound bundles, or deliveries with its
 * count, as a JSON object {"queued":1,...} or text "1 queued, 0 running". */
typedef enum nd_count_kind {
    ND_COUNT_JOBS,
    ND_COUNT_BUNDLES_OUT,
    ND_COUNT_BUNDLES_IN,
    ND_COUNT_DELIVERIES
} nd_count_kind;
int nd_metrics_counts(sqlite3 *db, nd_count_kind kind, int json, nd_buf *out, sc_error *e) SC_WUR;

/* Append s as a Prometheus label value (without the quotes): backslash,
 * double quote and newline escaped. */
void nd_metrics_label(nd_buf *out, const char *s);

#endif
