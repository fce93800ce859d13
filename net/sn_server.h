/*
 * sn_server.h - the node's HTTPS/1.1 server: libevent + OpenSSL, mutual TLS.
 *
 * One event loop on one thread (sn_server_run).  Every connection must
 * complete a TLS 1.3 handshake with a client certificate whose pin maps to
 * a node id (sn_tls.h) before a byte of HTTP is read; handlers see that
 * node id.  The server reads one request per connection and closes it after
 * the response ("Connection: close"): nodes exchange a few bundles, not a
 * stream of small requests, and it keeps every state bounded.
 *
 * Bounds, all configurable: the request head's size and field count, the
 * body size per route (checked against Content-Length before any of the
 * body is read; 413 at once, also to "Expect: 100-continue"), the time from
 * accept to a complete head (covers the TLS handshake and trickling
 * "slowloris" clients), the time from accept to the response written, an
 * idle timeout on every read and write, and the number of connections.
 *
 * Handlers run on the loop thread and must not block for long: verify,
 * store and answer; hand slow work (rebuild, evaluation) to a job.
 */
#ifndef SN_SERVER_H
#define SN_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "sc_error.h"
#include "sn_x509.h"
#include "sn_http.h"
#include "sn_net.h"

#define SN_RESPONSE_EXTRA_HEADERS 512

typedef struct sn_server sn_server;

/* What a handler sees.  Everything points into server memory that is valid
 * only during the handler call. */
typedef struct sn_request {
    const char *method;
    const char *path;
    const char *query;
    const unsigned char *body; /* NULL when body_len is 0 */
    size_t body_len;
    const char *peer_node_id;      /* authenticated by the TLS layer, never empty */
    const unsigned char *peer_pin; /* SC_PIN_LEN bytes */
    const char *peer_addr;         /* "127.0.0.1:53412" */
    const sn_http_head *head;      /* for sn_http_header_get */
} sn_request;

/* What a handler fills in.  Status 0 after the handler means 500. */
typedef struct sn_response {
    int status;
    char content_type[96];
    unsigned char *body; /* owned by the response */
    size_t body_len;
    char extra_headers[SN_RESPONSE_EXTRA_HEADERS]; /* "Name: value\r\n"... */
} sn_response;

/* Set status, content type and a copy of body.  Returns 0 or SC_ENOMEM /
 * SC_EINVAL (the response then becomes a 500). */
int sn_response_set(sn_response *r, int status, const char *content_type, const void *body,
                    size_t body_len);
/* Set status and a text/plain (or the given type) body from a format. */
int sn_response_printf(sn_response *r, int status, const char *content_type, const char *fmt, ...)
    SC_PRINTF(4, 5);
/* Add a header ("Retry-After", "30").  Names must be tokens and values
 * printable without CR/LF; the total is bounded.  Returns 0 or SC_EINVAL. */
int sn_response_add_header(sn_response *r, const char *name, const char *value);

typedef void (*sn_handler_fn)(void *arg, const sn_request *req, sn_response *resp);

/* Events for the daemon's log and audit trail. */
typedef enum sn_event_kind {
    SN_EV_REQUEST,      /* a request was answered (status, method, path) */
    SN_EV_TLS_REFUSED,  /* handshake failed or the peer is not a known node */
    SN_EV_HTTP_REFUSED, /* the server itself answered 4xx/5xx (size, syntax, route) */
    SN_EV_TIMEOUT,      /* a connection ran out of time and was closed */
    SN_EV_BUSY,         /* a connection was dropped at max_connections */
    SN_EV_CLOSED,       /* the peer went away mid-request */
    SN_EV_ERROR         /* an internal failure (allocation, libevent) */
} sn_event_kind;

typedef struct sn_event {
    sn_event_kind kind;
    const char *peer_addr;    /* never NULL */
    const char *peer_node_id; /* NULL before authentication */
    const char *method;       /* NULL before the head was parsed */
    const char *path;
    int status;         /* HTTP status sent, 0 if none */
    const char *reason; /* human-readable, never NULL */
} sn_event;

typedef void (*sn_event_fn)(void *arg, const sn_event *ev);

/* Zero means the default shown. */
typedef struct sn_server_config {
    const char *address;     /* numeric IPv4 or IPv6 address to listen on */
    uint16_t port;           /* 0: pick an ephemeral port (see sn_server_port) */
    SSL_CTX *ssl_ctx;        /* from sn_tls_server_ctx_create; the server takes a reference */
    size_t max_header_bytes; /* request line + header fields: 8192 */
    size_t max_body_bytes;   /* ceiling for every route's cap: 64 MiB */
    int max_connections;     /* open connections at once: 64 */
    int head_timeout_ms;     /* accept -> TLS done and head received: 10000 */
    int request_timeout_ms;  /* accept -> response written: 120000 */
    int io_timeout_ms;       /* no progress on a read or write: 30000 */
    int linger_ms;           /* draining unread input after an error reply: 2000 */
    int shutdown_timeout_ms; /* letting open connections finish on stop: 5000 */
    sn_event_fn on_event;    /* may be NULL */
    void *event_arg;
} sn_server_config;

typedef struct sn_server_stats {
    uint64_t accepted;     /* TCP connections accepted */
    uint64_t active;       /* open now */
    uint64_t busy_dropped; /* closed at once because of max_connections */
    uint64_t tls_refused;  /* handshakes failed or peers refused */
    uint64_t timeouts;     /* closed by one of the timeouts */
    uint64_t requests;     /* requests answered (any status) */
    uint64_t handled;      /* requests that reached a handler */
} sn_server_stats;

/* Bind the listening socket (so the port is known) and set everything up.
 * Nothing is served until sn_server_run. */
int sn_server_create(sn_server **out, const sn_server_config *cfg, sc_error *err) SC_WUR;

/* Register a handler for method + exact path, with the largest body it
 * accepts (0 for none).  Call before sn_server_run. */
int sn_server_route(sn_server *s, const char *method, const char *path, size_t max_body,
                    sn_handler_fn fn, void *arg, sc_error *err) SC_WUR;

/* Call fn(arg) on the loop thread every interval_ms while the loop runs
 * (one tick per server; call before sn_server_run).  The owner's periodic
 * work that must prove the loop is alive: a service manager's watchdog,
 * acting on flags set by signal handlers.  fn must not block. */
int sn_server_set_tick(sn_server *s, int interval_ms, void (*fn)(void *arg), void *arg,
                       sc_error *err) SC_WUR;

/* The port actually bound. */
uint16_t sn_server_port(const sn_server *s);

/* Serve until sn_server_stop; then stop accepting, give open connections
 * up to shutdown_timeout_ms to finish, close the rest, and return 0.  Runs
 * once per server.  Blocks SIGPIPE on this thread while it runs. */
int sn_server_run(sn_server *s, sc_error *err) SC_WUR;

/* Ask the server to stop.  Async-signal-safe and thread-safe (it writes one
 * byte to a pipe), so a SIGTERM handler may call it.  Idempotent. */
void sn_server_stop(sn_server *s);

/* A snapshot of the counters; callable from any thread. */
void sn_server_get_stats(sn_server *s, sn_server_stats *out);

/* Free everything (after sn_server_run returned, or if it never ran). */
void sn_server_destroy(sn_server *s);

#endif
