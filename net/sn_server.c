/*
 * sn_server.c - HTTPS/1.1 server on libevent's OpenSSL bufferevents (see
 * sn_server.h).
 *
 * Each connection walks HANDSHAKE -> HEAD -> BODY -> RESPOND -> LINGER and
 * is freed from any state on error or timeout.  Two timers per connection
 * bound it in time: the head timer (accept to complete head, later reused
 * for lingering) and the request timer (accept to response written); the
 * bufferevent's own read/write timeouts catch a stalled peer in between.
 * This file is the event and TLS plumbing: accepting, the handshake and
 * the peer check, timers, writing the response, lingering, stopping and
 * setting up.  What a request means - reading the head and body, routing,
 * body caps, calling the handler, the response API - is sn_server_req.c;
 * the HTTP syntax itself is sn_http.c.
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

#include "sn_tls.h"
#include "sn_server_int.h"

/* ---- events ---- */

void sn_conn_emit(sn_conn *c, sn_event_kind kind, int status, const char *fmt, ...)
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

void sn_conn_free(sn_conn *c)
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
void sn_conn_send(sn_conn *c, int status, const char *content_type, const unsigned char *body,
                  size_t body_len, const char *extra)
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
        sn_conn_emit(c, SN_EV_ERROR, 0, "cannot queue the response (out of memory)");
        sn_conn_free(c);
        return;
    }
    STAT_ADD(c->srv, requests, 1);
    c->state = ST_RESPOND;
    if (bufferevent_disable(c->bev, EV_READ) != 0 || bufferevent_enable(c->bev, EV_WRITE) != 0) {
        sn_conn_emit(c, SN_EV_ERROR, status, "bufferevent_enable failed");
        sn_conn_free(c);
    }
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
    sn_conn_free(c);
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
        sn_conn_free(c);
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
        sn_conn_free(c);
}

/* ---- callbacks ---- */

static void head_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sn_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->state == ST_LINGER) {
        sn_conn_free(c);
        return;
    }
    STAT_ADD(c->srv, timeouts, 1);
    if (c->state == ST_HANDSHAKE)
        sn_conn_emit(c, SN_EV_TIMEOUT, 0, "TLS handshake not finished within %d ms",
                     c->srv->cfg.head_timeout_ms);
    else
        sn_conn_emit(c, SN_EV_TIMEOUT, 0, "request head not received within %d ms",
                     c->srv->cfg.head_timeout_ms);
    sn_conn_free(c);
}

static void req_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sn_conn *c = arg;
    (void)fd;
    (void)what;
    STAT_ADD(c->srv, timeouts, 1);
    sn_conn_emit(c, SN_EV_TIMEOUT, 0, "request not completed within %d ms",
                 c->srv->cfg.request_timeout_ms);
    sn_conn_free(c);
}

/* Why the handshake failed, for the log: our verify callback's reason if
 * it refused the peer, else OpenSSL's, else the socket's.  Returns 1 when
 * the peer merely went away (closed before or during the handshake without
 * a TLS error of its own): that is not a refusal. */
static int handshake_failure(sn_conn *c, short what, char *out, size_t out_size)
{
    const char *note = sn_tls_refusal(c->ssl);
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
        if (!(ERR_GET_LIB(e) == ERR_LIB_SSL &&
              ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
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
    if (sn_tls_peer_check(c->ssl, &c->peer, &e) != 0) {
        ERR_clear_error();
        STAT_ADD(c->srv, tls_refused, 1);
        sn_conn_emit(c, SN_EV_TLS_REFUSED, 0, "%s", e.msg);
        conn_linger(c, 1);
        return;
    }
    c->authenticated = 1;
    c->state = ST_HEAD;
    sn_conn_process_input(c);
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
        sn_conn_emit(c, SN_EV_TIMEOUT, 0, "no %s progress for %d ms",
                     (what & BEV_EVENT_WRITING) ? "write" : "read", c->srv->cfg.io_timeout_ms);
        sn_conn_free(c);
        return;
    }
    if (!(what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)))
        return;
    if (c->state == ST_HANDSHAKE) {
        char reason[512];
        if (handshake_failure(c, what, reason, sizeof reason)) {
            sn_conn_emit(c, SN_EV_CLOSED, 0, "%s", reason);
        } else {
            /* OpenSSL has sent its alert; let the client read it. */
            STAT_ADD(c->srv, tls_refused, 1);
            sn_conn_emit(c, SN_EV_TLS_REFUSED, 0, "%s", reason);
            conn_linger(c, 0);
            return;
        }
    } else if (c->state == ST_HEAD || c->state == ST_BODY) {
        sn_conn_emit(c, SN_EV_CLOSED, 0,
                     "peer closed the connection before the request was complete");
    } else if (c->state == ST_RESPOND) {
        sn_conn_emit(c, SN_EV_CLOSED, 0, "peer closed the connection before the response was sent");
    }
    sn_conn_free(c);
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
    sn_conn_process_input(arg);
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
        sn_conn_emit(c, SN_EV_BUSY, 0, "connection limit of %d reached", s->cfg.max_connections);
        free(c);
        return;
    }
    c->ssl = SSL_new(s->ssl_ctx);
    if (!c->ssl) {
        sc_error e;
        sc_openssl_error(&e, SC_ECRYPTO, "SSL_new");
        sn_conn_emit(c, SN_EV_ERROR, 0, "%s", e.msg);
        evutil_closesocket(fd);
        free(c);
        return;
    }
    c->bev = bufferevent_openssl_socket_new(s->base, fd, c->ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!c->bev) {
        sn_conn_emit(c, SN_EV_ERROR, 0, "bufferevent_openssl_socket_new failed");
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
        sn_conn_emit(c, SN_EV_ERROR, 0, "evtimer_new failed");
        sn_conn_free(c);
        return;
    }
    ms_to_tv(s->cfg.io_timeout_ms, &tv);
    if (bufferevent_set_timeouts(c->bev, &tv, &tv) != 0) {
        sn_conn_emit(c, SN_EV_ERROR, 0, "bufferevent_set_timeouts failed");
        sn_conn_free(c);
        return;
    }
    ms_to_tv(s->cfg.head_timeout_ms, &tv);
    if (evtimer_add(c->head_timer, &tv) != 0) {
        sn_conn_emit(c, SN_EV_ERROR, 0, "evtimer_add failed");
        sn_conn_free(c);
        return;
    }
    ms_to_tv(s->cfg.request_timeout_ms, &tv);
    if (evtimer_add(c->req_timer, &tv) != 0 || bufferevent_enable(c->bev, EV_READ) != 0) {
        sn_conn_emit(c, SN_EV_ERROR, 0, "evtimer_add/bufferevent_enable failed");
        sn_conn_free(c);
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
    sn_conn_emit(&fake, SN_EV_ERROR, 0, "accept failed: %s", strerror(e));
}

/* ---- stopping ---- */

static void close_all(sn_server *s)
{
    while (s->conns)
        sn_conn_free(s->conns);
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
    snprintf(s->address, sizeof s->address, "%s", cfg->address);
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

uint16_t sn_server_port(const sn_server *s)
{
    return s ? s->port : 0;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    sn_server *s = arg;
    (void)fd;
    (void)what;
    s->tick_fn(s->tick_arg);
}

int sn_server_set_tick(sn_server *s, int interval_ms, void (*fn)(void *arg), void *arg,
                       sc_error *err)
{
    if (!s || !fn || interval_ms <= 0 || s->tick_ev || s->ran)
        return sc_error_set(err, SC_EINVAL, "server: one tick, set before the loop runs");
    struct timeval tv = {interval_ms / 1000, (interval_ms % 1000) * 1000};
    s->tick_fn = fn;
    s->tick_arg = arg;
    s->tick_ev = event_new(s->base, -1, EV_PERSIST, tick_cb, s);
    if (!s->tick_ev || event_add(s->tick_ev, &tv) != 0)
        return sc_error_set(err, SC_ENOMEM, "server: cannot add the tick timer");
    return 0;
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
    if (s->tick_ev)
        event_free(s->tick_ev);
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