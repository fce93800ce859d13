/*
 * nd_admin_api.h - the local admin API of a running node, used by the CLI
 * (and usable with `curl --unix-socket`).
 *
 * HTTP/1.1 over a unix socket NODE/admin.sock (mode 0600, inside the 0700
 * node directory), one request per connection.  Authentication: the
 * kernel's peer credentials (SO_PEERCRED) - only the user the daemon runs
 * as (or root) is served; anyone else is answered 403 and logged.  Requests
 * are bounded (8 KiB head, body up to the bundle size cap).  Every
 * connection has a deadline: its whole request (head and body) must arrive
 * within ND_ADMIN_DEADLINE_MS of its acceptance, and its answer must be
 * taken within as long again once it is ready; a client that trickles bytes
 * is cut off at the deadline.  Routes (JSON unless ?format=text):
 *
 *   GET  /v1/status
 *   GET  /v1/health                 (200 serving, 503 stopping or database failing)
 *   GET  /v1/metrics                (Prometheus text format 0.0.4, nd_metrics.h)
 *   POST /v1/stop                   (a clean stop, as SIGTERM)
 *   GET  /v1/bundles                GET /v1/bundles/ID
 *   GET  /v1/bundles/ID/statement   (the statement an admin signs)
 *   POST /v1/bundles/ID/decision    (the statement with the admin's decision)
 *   POST /v1/bundles/ID/resend[?peer=NAME]  (a refused delivery, same envelope)
 *   GET  /v1/jobs                   GET /v1/jobs/N
 *   POST /v1/jobs                   ("to: A,B" and "options: ..." lines)
 *   POST /v1/jobs/N/cancel          GET /v1/jobs/N/curves (loss, ROC: nd_job_curves.h)
 *   GET  /v1/peers
 *   POST /v1/peers                  ("id:", "url:", "pins:" lines)
 *   GET  /v1/audit[?limit=N&bundle=ID]   GET /v1/audit/verify
 *
 * Connections are served concurrently by a fixed pool of ND_ADMIN_WORKERS
 * threads, each with its own database connection (handlers share nothing
 * else but the context, whose shared parts are locked or atomic).  At most
 * ND_ADMIN_MAX_CONN connections are open (being served or waiting for a
 * worker); one more is answered 503 at once, as is a connection whose
 * deadline passed while it waited.
 */
#ifndef ND_ADMIN_API_H
#define ND_ADMIN_API_H

#include <pthread.h>
#include <sqlite3.h>

#include "nd_buf.h"
#include "nd_ctx.h"
#include "nd_jobs.h"

#define ND_ADMIN_SOCKET      "admin.sock"
#define ND_ADMIN_WORKERS     8
#define ND_ADMIN_MAX_CONN    32
#define ND_ADMIN_DEADLINE_MS 10000

struct nd_admin;

typedef struct nd_admin_worker {
    struct nd_admin *a;
    sqlite3 *db; /* this worker's own connection */
    pthread_t thread;
    int started;
} nd_admin_worker;

typedef struct nd_admin {
    nd_ctx *ctx;
    nd_jobs *jobs;
    int lfd;
    int stop_pipe[2]; /* written once at stop; never drained */
    pthread_t thread; /* the acceptor */
    int started;
    /* the queue of accepted connections, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sync_init, stopping;
    int q_fd[ND_ADMIN_MAX_CONN];
    int64_t q_deadline[ND_ADMIN_MAX_CONN]; /* CLOCK_MONOTONIC ms */
    unsigned q_uid[ND_ADMIN_MAX_CONN];     /* the client's SO_PEERCRED, for the audit */
    int q_pid[ND_ADMIN_MAX_CONN];
    int q_head, q_len;
    int active; /* queued or being served */
    nd_admin_worker workers[ND_ADMIN_WORKERS];
    char path[ND_PATH_MAX];
    int64_t started_unix;
    int port;
} nd_admin;

/* Bind NODE/admin.sock (replacing a stale one) and start serving. */
int nd_admin_start(nd_admin *a, nd_ctx *c, nd_jobs *jobs, int port, sc_error *e) SC_WUR;
/* Stop, join and remove the socket. */
void nd_admin_stop(nd_admin *a);

/* Answer one request through the routes above, on the caller's thread and
 * database connection (the dashboard, nd_dash.h, after its own session
 * checks): the body goes to *out (an initialised buffer), the content type
 * to *type; returns the HTTP status.  `who` names the person for the audit
 * log (the dashboard: "dashboard:ADMIN", the admin signed in). */
int nd_admin_handle(nd_admin *a, sqlite3 *db, const char *who, const char *method, const char *path,
                    const char *query, const uint8_t *body, size_t len, int json, const char **type,
                    nd_buf *out);

/* Write a peer's address and pins into the peers table (API and CLI). */
int nd_peer_set(sqlite3 *db, const char *id, const char *url, const char *pins, const char *source,
                sc_error *e) SC_WUR;

#endif
