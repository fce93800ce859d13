/*
 * sn_server_int.h - what the two halves of the server share (private to
 * net/): the route table, the connection and server structs, and the few
 * calls one half makes into the other.  sn_server.c owns the event and TLS
 * plumbing, sn_server_req.c the request side (see sn_server.h).
 */
#ifndef SN_SERVER_INT_H
#define SN_SERVER_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "sn_tls.h"
#include "sn_server.h"

#define SN_MAX_ROUTES     32
#define SN_ROUTE_PATH_MAX 128
#define SN_LISTEN_BACKLOG 64

typedef struct sn_route {
    char method[SN_HTTP_METHOD_MAX + 1];
    char path[SN_ROUTE_PATH_MAX];
    size_t max_body;
    sn_handler_fn fn;
    void *arg;
} sn_route;

typedef enum conn_state { ST_HANDSHAKE, ST_HEAD, ST_BODY, ST_RESPOND, ST_LINGER } conn_state;

typedef struct sn_conn {
    sn_server *srv;
    struct sn_conn *prev, *next;
    struct bufferevent *bev; /* owns the SSL and the socket */
    SSL *ssl;
    struct event *head_timer, *req_timer;
    conn_state state;
    int linger_fd; /* in LINGER: a dup of the socket, TLS gone */
    struct event *linger_ev;
    size_t linger_bytes;
    char addr[64];
    int authenticated;
    sn_tls_peer peer;
    char *head_buf;
    int head_ok;
    sn_http_head head;
    const sn_route *route;
    size_t body_len;
} sn_conn;

struct sn_server {
    sn_server_config cfg;
    char address[INET6_ADDRSTRLEN];
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *stop_ev, *drain_timer, *tick_ev;
    void (*tick_fn)(void *arg);
    void *tick_arg;
    int stop_pipe[2];
    SSL_CTX *ssl_ctx;
    uint16_t port;
    sn_route routes[SN_MAX_ROUTES];
    size_t n_routes;
    sn_conn *conns;
    int n_conns;
    int draining, ran;
    pthread_mutex_t stats_lock;
    sn_server_stats stats;
};

#define STAT_ADD(s, field, n)                   \
    do {                                        \
        pthread_mutex_lock(&(s)->stats_lock);   \
        (s)->stats.field += (n);                \
        pthread_mutex_unlock(&(s)->stats_lock); \
    } while (0)

/* An event for the daemon's log (sn_server.h); reason from fmt. */
void sn_conn_emit(sn_conn *c, sn_event_kind kind, int status, const char *fmt, ...) SC_PRINTF(4, 5);
/* Unlink and free a connection, whatever its state. */
void sn_conn_free(sn_conn *c);
/* Queue a response and stop reading; the connection closes (lingering)
 * once it is written.  extra: more header lines, or NULL. */
void sn_conn_send(sn_conn *c, int status, const char *content_type, const unsigned char *body,
                  size_t body_len, const char *extra);
/* Read what the state allows: the head, then the body, then dispatch
 * (sn_server_req.c); called whenever input arrives. */
void sn_conn_process_input(sn_conn *c);

#endif
