/*
 * sn_server.c - HTTPS/1.1 server on libevent's OpenSSL bufferevents (see
 * sn_server.h).
 *
 * Each connection walks HANDSHAKE -> HEAD -> BODY -> RESPOND -> LINGER and
 * is freed from any state on error or timeout.  Two timers per connection
 * bound it in time: the head timer (accept to complete head, later reused
 * for lingering) and the request timer (accept to response written); the
 * bufferevent's own read/write timeouts catch a stalled peer in between.
 * The HTTP parsing itself is sn_http.c; this file only decides how many
 * bytes to hand it.
 *
 * Lingering: closing a socket with unread input makes the kernel send a
 * reset, and a reset can destroy the response (or the TLS alert saying why
 * a peer was refused) before the client reads it.  So after the last byte
 * is written the TLS layer is freed, the write side shut down, and
 * whatever still arrives is read and dropped until the client closes or
 * linger_ms passes.  Timeouts, the connection limit and internal errors
 * close at once instead.
 *
 * evhttp was the other choice; it was not taken because in libevent 2.1 it
 * has no connection limit, no deadline for a complete head (only an idle
 * timeout, which a client trickling a byte a second never trips) and falls
 * back to a plaintext connection when the TLS bufferevent cannot be made.
 */
#include "sn_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "sc_tls.h"

#define SN_MAX_ROUTES 32
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
    int linger_fd;           /* in LINGER: a dup of the socket, TLS gone */
    struct event *linger_ev;
    size_t linger_bytes;
    char addr[64];
    int authenticated;
    sc_tls_peer peer;
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
    struct event *stop_ev, *drain_timer;
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

#define STAT_ADD(s, field, n)                  \
    do {                                       \
        pthread_mutex_lock(&(s)->stats_lock);  \
        (s)->stats.field += (n);               \
        pthread_mutex_unlock(&(s)->stats_lock);\
    } while (0)

static void process_input(sn_conn *c);

/* ---- responses ---- */

int sn_response_set(sn_response *r, int status, const char *content_type, const void *body,
                    size_t body_len)
{
    unsigned char *copy = NULL;
    if (!r)
        return SC_EINVAL;
    if (content_type && (strlen(content_type) >= sizeof r->content_type ||
                         strpbrk(content_type, "\r\n")))
        return SC_EINVAL;
    if (body_len) {
        if (!body)
            return SC_EINVAL;
        copy = malloc(body_len);
        if (!copy)
            return SC_ENOMEM;
        memcpy(copy, body, body_len);
    }
    free(r->body);
    r->body = copy;
    r->body_len = body_len;
    r->status = status;
    snprintf(r->content_type, sizeof r->content_type, "%s", content_type ? content_type : "");
    return 0;
}

int sn_response_printf(sn_response *r, int status, const char *content_type, const char *fmt,
                       ...)
{
    char buf[2048];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return SC_EINVAL;
    if ((size_t)n >= sizeof buf)
        n = (int)sizeof buf - 1;
    return sn_response_set(r, status, content_type ? content_type : "text/plain; charset=utf-8",
                           buf, (size_t)n);
}

int sn_response_add_header(sn_response *r, const char *name, const char *value)
{
    size_t used, need;
    if (!r || !name || !value || !*name)
        return SC_EINVAL;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c >= '0' && *c <= '9') || *c == '-'))
            return SC_EINVAL;
    for (const char *c = value; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
            return SC_EINVAL;
    used = strlen(r->extra_headers);
    need = strlen(name) + strlen(value) + 4;
    if (used + need >= sizeof r->extra_headers)
        return SC_EINVAL;
    snprintf(r->extra_headers + used, sizeof r->extra_headers - used, "%s: %s\r\n", name, value);
    return 0;
}

static void response_release(sn_response *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

/* ---- events ---- */

static void emit(sn_conn *c, sn_event_kind kind, int status, const char *fmt, ...)
    SC_PRINTF(4, 5);
static void emit(sn_conn *c, sn_event_kind kind, int status, const char *fmt, ...)
{
    sn_server *s = c->srv;
    char reason[512];
    sn_event ev;
    va_list ap;
    if (!s->cfg.on_event)
        return;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.peer_addr = c->addr;
    ev.peer_node_id = c->authenticated ? c->peer.node_id : NULL;
    ev.method = c->head_ok ? c->head.method : NULL;
    ev.path = c->head_ok ? c->head.path : NULL;
    ev.status = status;
    ev.reason = reason;
    s->cfg.on_event(s->cfg.event_arg, &ev);
}

/* ---- connection lifetime ---- */

static void conn_free(sn_conn *c)
{
    sn_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    STAT_ADD(s, active, (uint64_t)-1);
    if (c->head_timer)
        event_free(c->head_timer);
    if (c->req_timer)
        event_free(c->req_timer);
    if (c->bev)
        bufferevent_free(c->bev); /* frees the SSL, closes the socket */
    if (c->linger_ev)
        event_free(c->linger_ev);
    if (c->linger_fd >= 0)
        close(c->linger_fd);
    ERR_clear_error();
    free(c->head_buf);
    free(c);
    if (s->draining && s->n_conns == 0)
        event_base_loopexit(s->base, NULL);
}

static void ms_to_tv(int ms, struct timeval *tv)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}

/* Queue a response and stop reading; write_cb closes once it is sent. */
static void send_response(sn_conn *c, int status, const char *content_type,
                          const unsigned char *body, size_t body_len, const char *extra)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    int ok;
    ok = evbuffer_add_printf(out,
                             "HTTP/1.1 %d %s\r\n"
                             "Content-Length: %zu\r\n"
                             "Connection: close\r\n"
                             "Cache-Control: no-store\r\n"
                             "%s%s%s"
                             "%s"
                             "\r\n",
                             status, sn_http_reason_phrase(status), body_len,
                             content_type && *content_type ? "Content-Type: " : "",
                             content_type && *content_type ? content_type : "",
                             content_type && *content_type ? "\r\n" : "", extra ? extra : "") >= 0;
    if (ok && body_len)
        ok = evbuffer_add(out, body, body_len) == 0;
    if (!ok) {
        emit(c, SN_EV_ERROR, 0, "cannot queue the response (out of memory)");
        conn_free(c);
        return;
    }
    STAT_ADD(c->srv, requests, 1);
    c->state = ST_RESPOND;
    if (bufferevent_disable(c->bev, EV_READ) != 0 || bufferevent_enable(c->bev, EV_WRITE) != 0) {
        emit(c, SN_EV_ERROR, status, "bufferevent_enable failed");
        conn_free(c);
    }
}

/* The server's own refusal: a text body saying why, logged as refused. */
static void send_error(sn_conn *c, int status, const char *extra, const char *fmt, ...)
    SC_PRINTF(4, 5);
static void send_error(sn_conn *c, int status, const char *extra, const char *fmt, ...)
{
    char reason[512], body[600];
    va_list ap;
    int n;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    n = snprintf(body, sizeof body, "%d %s: %s\n", status, sn_http_reason_phrase(status), reason);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof body)
        n = (int)sizeof body - 1;
    emit(c, SN_EV_HTTP_REFUSED, status, "%s", reason);
    send_response(c, status, "text/plain; charset=utf-8", (const unsigned char *)body,
                  (size_t)n, extra);
}

static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
    sn_conn *c = arg;
    char buf[4096];
    (void)what;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            c->linger_bytes += (size_t)n;
            if (c->linger_bytes > c->srv->cfg.max_header_bytes + c->srv->cfg.max_body_bytes)
                break; /* not a client finishing up: stop reading */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        break; /* the client closed (or reset): done */
    }
    conn_free(c);
}

/* Free the TLS layer and drain the socket until the client closes or
 * linger_ms passes (see the top of the file).  tls_close: send close_notify
 * first, so the client can tell a complete response from a cut one. */
static void conn_linger(sn_conn *c, int tls_close)
{
    struct timeval tv;
    int fd = bufferevent_getfd(c->bev);

    if (tls_close)
        SSL_shutdown(c->ssl); /* best effort; the socket closes either way */
    ERR_clear_error();
    c->linger_fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (c->linger_fd < 0) {
        conn_free(c);
        return;
    }
    bufferevent_free(c->bev); /* the dup keeps the socket open */
    c->bev = NULL;
    c->ssl = NULL;
    ERR_clear_error();
    c->state = ST_LINGER;
    evtimer_del(c->req_timer);
    ms_to_tv(c->srv->cfg.linger_ms, &tv);
    c->linger_ev = event_new(c->srv->base, c->linger_fd, EV_READ | EV_PERSIST, linger_cb, c);
    if (shutdown(c->linger_fd, SHUT_WR) != 0 || !c->linger_ev ||
        event_add(c->linger_ev, NULL) != 0 || evtimer_add(c->head_timer, &tv) != 0)
        conn_free(c);
}

/* ---- callbacks ---- */

static void head_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sn_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->state == ST_LINGER) {
        conn_free(c);
        return;
    }
    STAT_ADD(c->srv, timeouts, 1);
    if (c->state == ST_HANDSHAKE)
        emit(c, SN_EV_TIMEOUT, 0, "TLS handshake not finished within %d ms",
             c->srv->cfg.head_timeout_ms);
    else
        emit(c, SN_EV_TIMEOUT, 0, "request head not received within %d ms",
             c->srv->cfg.head_timeout_ms);
    conn_free(c);
}

static void req_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sn_conn *c = arg;
    (void)fd;
    (void)what;
    STAT_ADD(c->srv, timeouts, 1);
    emit(c, SN_EV_TIMEOUT, 0, "request not completed within %d ms",
         c->srv->cfg.request_timeout_ms);
    conn_free(c);
}

/* Why the handshake failed, for the log: our verify callback's reason if
 * it refused the peer, else OpenSSL's, else the socket's.  Returns 1 when
 * the peer merely went away (closed before or during the handshake without
 * a TLS error of its own): that is not a refusal. */
static int handshake_failure(sn_conn *c, short what, char *out, size_t out_size)
{
    const char *note = sc_tls_refusal(c->ssl);
    unsigned long e;
    size_t used = 0;
    int sock_err = EVUTIL_SOCKET_ERROR(), only_eof = 1;

    out[0] = '\0';
    while ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
        char one[200];
        int n;
        /* libevent also queues SSL_get_error() results, which are not
         * error-queue codes (library 0); they add nothing readable. */
        if (ERR_GET_LIB(e) == 0)
            continue;
        if (!(ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
            only_eof = 0;
        if (note || used + 3 >= out_size)
            continue; /* drain */
        ERR_error_string_n(e, one, sizeof one);
        n = snprintf(out + used, out_size - used, "%s%s", used ? "; " : "", one);
        if (n > 0)
            used += (size_t)n < out_size - used ? (size_t)n : out_size - used - 1;
    }
    ERR_clear_error();
    if (note) {
        snprintf(out, out_size, "%s", note);
        return 0;
    }
    if (!used && (what & BEV_EVENT_ERROR) && sock_err) {
        snprintf(out, out_size, "TLS handshake failed: %s", strerror(sock_err));
        return 0;
    }
    if (!used || only_eof) {
        snprintf(out, out_size, "peer closed the connection during the TLS handshake");
        return 1;
    }
    return 0;
}

static void on_connected(sn_conn *c)
{
    sc_error e;
    sc_error_clear(&e);
    if (sc_tls_peer_check(c->ssl, &c->peer, &e) != 0) {
        ERR_clear_error();
        STAT_ADD(c->srv, tls_refused, 1);
        emit(c, SN_EV_TLS_REFUSED, 0, "%s", e.msg);
        conn_linger(c, 1);
        return;
    }
    c->authenticated = 1;
    c->state = ST_HEAD;
    process_input(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    sn_conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == ST_HANDSHAKE)
            on_connected(c);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        STAT_ADD(c->srv, timeouts, 1);
        emit(c, SN_EV_TIMEOUT, 0, "no %s progress for %d ms",
             (what & BEV_EVENT_WRITING) ? "write" : "read", c->srv->cfg.io_timeout_ms);
        conn_free(c);
        return;
    }
    if (!(what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)))
        return;
    if (c->state == ST_HANDSHAKE) {
        char reason[512];
        if (handshake_failure(c, what, reason, sizeof reason)) {
            emit(c, SN_EV_CLOSED, 0, "%s", reason);
        } else {
            /* OpenSSL has sent its alert; let the client read it. */
            STAT_ADD(c->srv, tls_refused, 1);
            emit(c, SN_EV_TLS_REFUSED, 0, "%s", reason);
            conn_linger(c, 0);
            return;
        }
    } else if (c->state == ST_HEAD || c->state == ST_BODY) {
        emit(c, SN_EV_CLOSED, 0, "peer closed the connection before the request was complete");
    } else if (c->state == ST_RESPOND) {
        emit(c, SN_EV_CLOSED, 0, "peer closed the connection before the response was sent");
    }
    conn_free(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    sn_conn *c = arg;
    if (c->state == ST_RESPOND && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_linger(c, 1);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process_input(arg);
}

/* ---- request processing ---- */

/* Offset just past the empty line ending the head in data[0..n), or 0. */
static size_t find_head_end(const unsigned char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (data[i] != '\n')
            continue;
        if (i + 1 < n && data[i + 1] == '\n')
            return i + 2;
        if (i + 2 < n && data[i + 1] == '\r' && data[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static int method_has_body(const char *m)
{
    return !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
}

/* Parse the head; on success c->route and c->body_len are set and 0 is
 * returned.  Otherwise a response is already queued and -1 returned. */
static int take_head(sn_conn *c, struct evbuffer *in)
{
    sn_server *s = c->srv;
    size_t cap = s->cfg.max_header_bytes, avail = evbuffer_get_length(in);
    size_t look = avail < cap + 1 ? avail : cap + 1, end;
    unsigned char *data = evbuffer_pullup(in, (ev_ssize_t)look);
    const sn_route *path_match = NULL;
    int rc;

    if (!data && look) {
        emit(c, SN_EV_ERROR, 0, "evbuffer_pullup failed");
        conn_free(c);
        return -1;
    }
    end = data ? find_head_end(data, look) : 0;
    if (!end || end > cap) {
        if (avail > cap) {
            send_error(c, 431, NULL, "request head larger than %zu bytes", cap);
            return -1;
        }
        return 1; /* wait for more */
    }
    c->head_buf = malloc(end + 1);
    if (!c->head_buf) {
        emit(c, SN_EV_ERROR, 0, "out of memory for the request head");
        conn_free(c);
        return -1;
    }
    memcpy(c->head_buf, data, end);
    evbuffer_drain(in, end);
    rc = sn_http_parse_head(c->head_buf, end, &c->head);
    if (rc) {
        send_error(c, rc, NULL, "%s", c->head.reason);
        return -1;
    }
    c->head_ok = 1;
    evtimer_del(c->head_timer);

    for (size_t i = 0; i < s->n_routes; i++) {
        if (strcmp(s->routes[i].path, c->head.path) != 0)
            continue;
        path_match = &s->routes[i];
        if (!strcmp(s->routes[i].method, c->head.method)) {
            c->route = &s->routes[i];
            break;
        }
    }
    if (!c->route) {
        char allow[128] = "Allow: ";
        if (!path_match) {
            send_error(c, 404, NULL, "no such endpoint %s", c->head.path);
            return -1;
        }
        for (size_t i = 0; i < s->n_routes; i++) {
            if (strcmp(s->routes[i].path, c->head.path) != 0)
                continue;
            if (strlen(allow) + strlen(s->routes[i].method) + 8 < sizeof allow) {
                size_t at = strlen(allow);
                snprintf(allow + at, sizeof allow - at, "%s%s", allow[7] ? ", " : "",
                         s->routes[i].method);
            }
        }
        size_t at = strlen(allow);
        snprintf(allow + at, sizeof allow - at, "\r\n");
        send_error(c, 405, allow, "%s is not allowed on %s", c->head.method, c->head.path);
        return -1;
    }
    if (c->head.content_length < 0 && method_has_body(c->head.method)) {
        send_error(c, 411, NULL, "%s needs a Content-Length", c->head.method);
        return -1;
    }
    if (c->head.content_length > 0 && (unsigned long long)c->head.content_length > c->route->max_body) {
        send_error(c, 413, NULL, "body of %lld bytes exceeds the limit of %zu bytes for %s %s",
                   c->head.content_length, c->route->max_body, c->head.method, c->head.path);
        return -1;
    }
    c->body_len = c->head.content_length > 0 ? (size_t)c->head.content_length : 0;
    return 0;
}

static void dispatch(sn_conn *c, struct evbuffer *in)
{
    const sn_route *r = c->route;
    sn_response resp;
    sn_request req;
    unsigned char *body = NULL;

    if (c->body_len) {
        body = evbuffer_pullup(in, (ev_ssize_t)c->body_len);
        if (!body) {
            emit(c, SN_EV_ERROR, 0, "out of memory for a %zu-byte body", c->body_len);
            conn_free(c);
            return;
        }
    }
    memset(&req, 0, sizeof req);
    req.method = c->head.method;
    req.path = c->head.path;
    req.query = c->head.query;
    req.body = body;
    req.body_len = c->body_len;
    req.peer_node_id = c->peer.node_id;
    req.peer_pin = c->peer.pin;
    req.peer_addr = c->addr;
    req.head = &c->head;
    memset(&resp, 0, sizeof resp);
    STAT_ADD(c->srv, handled, 1);
    r->fn(r->arg, &req, &resp);
    evbuffer_drain(in, c->body_len);
    if (resp.status < 100 || resp.status > 599) {
        response_release(&resp);
        emit(c, SN_EV_ERROR, 500, "handler for %s %s set no valid status", r->method, r->path);
        send_response(c, 500, "text/plain; charset=utf-8",
                      (const unsigned char *)"500 Internal Server Error\n", 26, NULL);
        return;
    }
    emit(c, SN_EV_REQUEST, resp.status, "%s %s from %s: %d (%zu-byte request, %zu-byte reply)",
         r->method, r->path, c->peer.node_id, resp.status, c->body_len, resp.body_len);
    send_response(c, resp.status, resp.content_type, resp.body, resp.body_len,
                  resp.extra_headers);
    response_release(&resp);
}

static void process_input(sn_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    switch (c->state) {
    case ST_HANDSHAKE:
    case ST_RESPOND:
    case ST_LINGER:
        return; /* not yet / no longer reading */
    case ST_HEAD: {
        int rc = take_head(c, in);
        if (rc != 0)
            return; /* waiting (1), or answered/closed (-1) */
        c->state = ST_BODY;
        /* Read no further than the body: nothing after it is used. */
        bufferevent_setwatermark(c->bev, EV_READ, 0, c->body_len + 1);
        if (c->head.expect_continue && c->body_len > evbuffer_get_length(in)) {
            struct evbuffer *out = bufferevent_get_output(c->bev);
            if (evbuffer_add_printf(out, "HTTP/1.1 100 Continue\r\n\r\n") < 0) {
                emit(c, SN_EV_ERROR, 0, "cannot queue 100 Continue");
                conn_free(c);
                return;
            }
        }
    }
    /* fall through */
    case ST_BODY:
        if (evbuffer_get_length(in) < c->body_len)
            return;
        dispatch(c, in);
        return;
    }
}

static void format_addr(const struct sockaddr *sa, char *out, size_t out_size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, out_size, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out, out_size, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(out, out_size, "unknown");
    }
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    sn_server *s = arg;
    sn_conn *c;
    struct timeval tv;
    (void)l;
    (void)socklen;

    STAT_ADD(s, accepted, 1);
    c = calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->srv = s;
    c->linger_fd = -1;
    format_addr(sa, c->addr, sizeof c->addr);
    if (s->draining || s->n_conns >= s->cfg.max_connections) {
        /* Closing at once tells the client to come back later; holding the
         * connection would let a flood pin memory and file descriptors. */
        STAT_ADD(s, busy_dropped, 1); /* before the client can see the close */
        evutil_closesocket(fd);
        emit(c, SN_EV_BUSY, 0, "connection limit of %d reached", s->cfg.max_connections);
        free(c);
        return;
    }
    c->ssl = SSL_new(s->ssl_ctx);
    if (!c->ssl) {
        sc_error e;
        sc_openssl_error(&e, SC_ECRYPTO, "SSL_new");
        emit(c, SN_EV_ERROR, 0, "%s", e.msg);
        evutil_closesocket(fd);
        free(c);
        return;
    }
    c->bev = bufferevent_openssl_socket_new(s->base, fd, c->ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!c->bev) {
        emit(c, SN_EV_ERROR, 0, "bufferevent_openssl_socket_new failed");
        SSL_free(c->ssl);
        evutil_closesocket(fd);
        free(c);
        return;
    }
    /* Link first: from here conn_free undoes everything. */
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    STAT_ADD(s, active, 1);

    /* A peer that closes without close_notify has still sent a complete
     * request when Content-Length says so; do not call that an error. */
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, s->cfg.max_header_bytes + 1);
    c->head_timer = evtimer_new(s->base, head_timer_cb, c);
    c->req_timer = evtimer_new(s->base, req_timer_cb, c);
    if (!c->head_timer || !c->req_timer) {
        emit(c, SN_EV_ERROR, 0, "evtimer_new failed");
        conn_free(c);
        return;
    }
    ms_to_tv(s->cfg.io_timeout_ms, &tv);
    if (bufferevent_set_timeouts(c->bev, &tv, &tv) != 0) {
        emit(c, SN_EV_ERROR, 0, "bufferevent_set_timeouts failed");
        conn_free(c);
        return;
    }
    ms_to_tv(s->cfg.head_timeout_ms, &tv);
    if (evtimer_add(c->head_timer, &tv) != 0) {
        emit(c, SN_EV_ERROR, 0, "evtimer_add failed");
        conn_free(c);
        return;
    }
    ms_to_tv(s->cfg.request_timeout_ms, &tv);
    if (evtimer_add(c->req_timer, &tv) != 0 || bufferevent_enable(c->bev, EV_READ) != 0) {
        emit(c, SN_EV_ERROR, 0, "evtimer_add/bufferevent_enable failed");
        conn_free(c);
        return;
    }
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    sn_server *s = arg;
    sn_conn fake;
    int e = EVUTIL_SOCKET_ERROR();
    (void)l;
    memset(&fake, 0, sizeof fake);
    fake.srv = s;
    snprintf(fake.addr, sizeof fake.addr, "listener");
    emit(&fake, SN_EV_ERROR, 0, "accept failed: %s", strerror(e));
}

/* ---- stopping ---- */

static void close_all(sn_server *s)
{
    while (s->conns)
        conn_free(s->conns);
}

static void drain_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sn_server *s = arg;
    (void)fd;
    (void)what;
    close_all(s);
    event_base_loopexit(s->base, NULL);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    sn_server *s = arg;
    char buf[64];
    struct timeval tv;
    (void)what;
    while (read(fd, buf, sizeof buf) > 0)
        ;
    if (s->draining)
        return;
    s->draining = 1;
    if (s->listener) {
        evconnlistener_free(s->listener); /* closes the listening socket */
        s->listener = NULL;
    }
    if (s->n_conns == 0) {
        event_base_loopexit(s->base, NULL);
        return;
    }
    ms_to_tv(s->cfg.shutdown_timeout_ms, &tv);
    if (evtimer_add(s->drain_timer, &tv) != 0) {
        close_all(s);
        event_base_loopexit(s->base, NULL);
    }
}

void sn_server_stop(sn_server *s)
{
    int saved = errno; /* async-signal-safe: keep the interrupted code's errno */
    if (s && s->stop_pipe[1] >= 0) {
        ssize_t n = write(s->stop_pipe[1], "x", 1);
        (void)n; /* a full pipe means a stop is already pending */
    }
    errno = saved;
}

/* ---- setup ---- */

static int parse_listen_addr(const char *address, uint16_t port, struct sockaddr_storage *ss,
                             socklen_t *len)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET, address, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *len = sizeof *in;
        return 0;
    }
    if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof *in6;
        return 0;
    }
    return -1;
}

static void apply_defaults(sn_server_config *c)
{
    if (!c->max_header_bytes)
        c->max_header_bytes = 8192;
    if (!c->max_body_bytes)
        c->max_body_bytes = 64u << 20;
    if (c->max_connections <= 0)
        c->max_connections = 64;
    if (c->head_timeout_ms <= 0)
        c->head_timeout_ms = 10000;
    if (c->request_timeout_ms <= 0)
        c->request_timeout_ms = 120000;
    if (c->io_timeout_ms <= 0)
        c->io_timeout_ms = 30000;
    if (c->linger_ms <= 0)
        c->linger_ms = 2000;
    if (c->shutdown_timeout_ms <= 0)
        c->shutdown_timeout_ms = 5000;
}

int sn_server_create(sn_server **out, const sn_server_config *cfg, sc_error *err)
{
    sn_server *s;
    struct sockaddr_storage ss;
    socklen_t len;
    int rc;

    if (!out || !cfg || !cfg->address || !cfg->ssl_ctx)
        return sc_error_set(err, SC_EINVAL, "server: address and TLS context are required");
    *out = NULL;
    if (strlen(cfg->address) >= INET6_ADDRSTRLEN)
        return sc_error_set(err, SC_EINVAL, "server: bad listen address '%s'", cfg->address);
    if (cfg->max_header_bytes && cfg->max_header_bytes < 256)
        return sc_error_set(err, SC_EINVAL, "server: max_header_bytes below 256");
    rc = sn_global_init(err);
    if (rc)
        return rc;
    s = calloc(1, sizeof *s);
    if (!s)
        return sc_error_set(err, SC_ENOMEM, "server: out of memory");
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    if (pthread_mutex_init(&s->stats_lock, NULL) != 0) {
        free(s);
        return sc_error_set(err, SC_ENOMEM, "server: pthread_mutex_init failed");
    }
    s->cfg = *cfg;
    apply_defaults(&s->cfg);
    memcpy(s->address, cfg->address, strlen(cfg->address) + 1);
    s->cfg.address = s->address;
    if (!SSL_CTX_up_ref(cfg->ssl_ctx)) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "SSL_CTX_up_ref");
        goto fail;
    }
    s->ssl_ctx = cfg->ssl_ctx;
    s->cfg.ssl_ctx = NULL;

    s->base = event_base_new();
    if (!s->base) {
        rc = sc_error_set(err, SC_ENOMEM, "server: event_base_new failed");
        goto fail;
    }
    if (pipe(s->stop_pipe) != 0) {
        s->stop_pipe[0] = s->stop_pipe[1] = -1;
        rc = sc_error_set(err, SC_EIO, "server: pipe: %s", strerror(errno));
        goto fail;
    }
    for (int i = 0; i < 2; i++) {
        /* Non-blocking: a signal handler's write must never block, and the
         * loop drains the read end until empty. */
        if (fcntl(s->stop_pipe[i], F_SETFL, O_NONBLOCK) != 0 ||
            fcntl(s->stop_pipe[i], F_SETFD, FD_CLOEXEC) != 0) {
            rc = sc_error_set(err, SC_EIO, "server: fcntl on the stop pipe: %s", strerror(errno));
            goto fail;
        }
    }
    s->stop_ev = event_new(s->base, s->stop_pipe[0], EV_READ | EV_PERSIST, stop_cb, s);
    s->drain_timer = evtimer_new(s->base, drain_timer_cb, s);
    if (!s->stop_ev || !s->drain_timer || event_add(s->stop_ev, NULL) != 0) {
        rc = sc_error_set(err, SC_ENOMEM, "server: cannot create the stop events");
        goto fail;
    }
    if (parse_listen_addr(cfg->address, cfg->port, &ss, &len) != 0) {
        rc = sc_error_set(err, SC_EINVAL, "server: '%s' is not a numeric IPv4 or IPv6 address",
                          cfg->address);
        goto fail;
    }
    s->listener = evconnlistener_new_bind(
        s->base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        SN_LISTEN_BACKLOG, (struct sockaddr *)&ss, (int)len);
    if (!s->listener) {
        rc = sc_error_set(err, SC_EIO, "server: cannot listen on %s port %u: %s", cfg->address,
                          (unsigned)cfg->port, strerror(EVUTIL_SOCKET_ERROR()));
        goto fail;
    }
    evconnlistener_set_error_cb(s->listener, accept_error_cb);
    len = sizeof ss;
    if (getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&ss, &len) != 0) {
        rc = sc_error_set(err, SC_EIO, "server: getsockname: %s", strerror(errno));
        goto fail;
    }
    s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *out = s;
    return 0;
fail:
    sn_server_destroy(s);
    return rc;
}

int sn_server_route(sn_server *s, const char *method, const char *path, size_t max_body,
                    sn_handler_fn fn, void *arg, sc_error *err)
{
    sn_route *r;
    size_t mlen;
    if (!s || !method || !path || !fn)
        return sc_error_set(err, SC_EINVAL, "route: missing argument");
    mlen = strlen(method);
    if (mlen == 0 || mlen > SN_HTTP_METHOD_MAX || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != mlen)
        return sc_error_set(err, SC_EINVAL, "route: bad method '%s'", method);
    if (path[0] != '/' || strlen(path) >= SN_ROUTE_PATH_MAX || strpbrk(path, "? \t\r\n"))
        return sc_error_set(err, SC_EINVAL, "route: bad path '%s'", path);
    if (max_body > s->cfg.max_body_bytes)
        return sc_error_set(err, SC_EINVAL, "route: body cap %zu above the server's %zu",
                            max_body, s->cfg.max_body_bytes);
    if (s->ran)
        return sc_error_set(err, SC_EINVAL, "route: server already running");
    for (size_t i = 0; i < s->n_routes; i++)
        if (!strcmp(s->routes[i].method, method) && !strcmp(s->routes[i].path, path))
            return sc_error_set(err, SC_EEXIST, "route: %s %s registered twice", method, path);
    if (s->n_routes == SN_MAX_ROUTES)
        return sc_error_set(err, SC_EINVAL, "route: more than %d routes", SN_MAX_ROUTES);
    r = &s->routes[s->n_routes++];
    memcpy(r->method, method, strlen(method) + 1);
    memcpy(r->path, path, strlen(path) + 1);
    r->max_body = max_body;
    r->fn = fn;
    r->arg = arg;
    return 0;
}

uint16_t sn_server_port(const sn_server *s)
{
    return s ? s->port : 0;
}

int sn_server_run(sn_server *s, sc_error *err)
{
    sn_sigpipe_guard guard;
    int rc;
    if (!s)
        return sc_error_set(err, SC_EINVAL, "server: NULL");
    if (s->ran)
        return sc_error_set(err, SC_EINVAL, "server: already ran; create a new one");
    s->ran = 1;
    sn_sigpipe_block(&guard);
    rc = event_base_dispatch(s->base);
    close_all(s);
    ERR_clear_error();
    sn_sigpipe_restore(&guard);
    if (rc < 0)
        return sc_error_set(err, SC_EIO, "server: event loop failed");
    return 0;
}

void sn_server_get_stats(sn_server *s, sn_server_stats *out)
{
    if (!s || !out)
        return;
    pthread_mutex_lock(&s->stats_lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->stats_lock);
}

void sn_server_destroy(sn_server *s)
{
    if (!s)
        return;
    close_all(s);
    if (s->listener)
        evconnlistener_free(s->listener);
    if (s->stop_ev)
        event_free(s->stop_ev);
    if (s->drain_timer)
        event_free(s->drain_timer);
    if (s->base)
        event_base_free(s->base);
    if (s->stop_pipe[0] >= 0)
        close(s->stop_pipe[0]);
    if (s->stop_pipe[1] >= 0)
        close(s->stop_pipe[1]);
    SSL_CTX_free(s->ssl_ctx);
    pthread_mutex_destroy(&s->stats_lock);
    free(s);
}
