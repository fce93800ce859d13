/*
 * nd_dash.c - the dashboard's listener, thread and static assets (see
 * nd_dash.h); its /api/ routes are in nd_dash_api.c.
 */
#define _GNU_SOURCE /* pipe2 */
#include "nd_dash.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nd_dash_assets.h"
#include "nd_dash_int.h"
#include "nd_state.h"
#include "sb_parse.h"
#include "sn_x509.h"

/* No inline script or style, nothing from another host; WebAssembly
 * (libsodium) needs 'wasm-unsafe-eval', which allows compiling wasm, not
 * eval of script. */
#define ND_DASH_CSP                                                                \
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " \
    "img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "     \
    "form-action 'none'; frame-ancestors 'none'"

int nd_dash_parse_listen(const char *s, char *host, size_t cap, int *port, int *loopback,
                         sc_error *e)
{
    const char *ps, *h = s; /* the port's digits, the host */
    size_t hl;
    long long p;
    if (s[0] && strspn(s, "0123456789") == strlen(s)) { /* PORT alone: loopback */
        h = "127.0.0.1";
        hl = strlen(h);
        ps = s;
    } else if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return sc_error_set(e, SC_EINVAL, "--dashboard '%s': use [IPV6]:PORT", s);
        h = s + 1;
        hl = (size_t)(close - h);
        ps = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return sc_error_set(e, SC_EINVAL, "--dashboard '%s': use ADDR:PORT", s);
        hl = (size_t)(colon - s);
        ps = colon + 1;
    }
    if (hl == 0 || hl >= cap || sb_parse_i64(ps, 0, 65535, &p))
        return sc_error_set(e, SC_EINVAL, "--dashboard '%s': use ADDR:PORT (port 0 to 65535)", s);
    memcpy(host, h, hl);
    host[hl] = 0;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        *loopback = (ntohl(a4.s_addr) >> 24) == 127;
    else if (inet_pton(AF_INET6, host, &a6) == 1)
        *loopback = IN6_IS_ADDR_LOOPBACK(&a6);
    else
        return sc_error_set(e, SC_EINVAL, "--dashboard '%s': '%s' is not a numeric address", s,
                            host);
    *port = (int)p;
    return 0;
}

/* ---------------------------------------------------------------- answers */

void nd_dash_send(nd_dash *d, struct evhttp_request *r, int status, const char *type,
                  const void *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r);
    struct evbuffer *b = evbuffer_new();
    if (!b || (len && evbuffer_add(b, body, len))) {
        if (b)
            evbuffer_free(b);
        evhttp_send_error(r, 500, "out of memory");
        return;
    }
    if (evhttp_add_header(h, "Content-Type", type) ||
        evhttp_add_header(h, "Content-Security-Policy", ND_DASH_CSP) ||
        evhttp_add_header(h, "X-Content-Type-Options", "nosniff") ||
        evhttp_add_header(h, "X-Frame-Options", "DENY") ||
        evhttp_add_header(h, "Referrer-Policy", "no-referrer") ||
        evhttp_add_header(h, "Cross-Origin-Opener-Policy", "same-origin") ||
        evhttp_add_header(h, "Cross-Origin-Resource-Policy", "same-origin") ||
        evhttp_add_header(h, "Cache-Control", "no-store") ||
        (d->ssl && evhttp_add_header(h, "Strict-Transport-Security", "max-age=31536000"))) {
        evbuffer_free(b);
        evhttp_send_error(r, 500, "headers");
        return;
    }
    evhttp_send_reply(r, status, NULL, b);
    evbuffer_free(b);
}

void nd_dash_text(nd_dash *d, struct evhttp_request *r, int status, const char *msg)
{
    nd_dash_send(d, r, status, "text/plain; charset=utf-8", msg, strlen(msg));
}

int nd_dash_host_ok(const char *host)
{
    char name[64];
    size_t n;
    if (!host || !host[0])
        return 0;
    if (host[0] == '[') { /* [IPv6]:port */
        const char *close = strchr(host, ']');
        if (!close || (close[1] && close[1] != ':'))
            return 0;
        n = (size_t)(close - host - 1);
        host++;
    } else {
        const char *colon = strchr(host, ':');
        n = colon ? (size_t)(colon - host) : strlen(host);
    }
    if (n == 0 || n >= sizeof name)
        return 0;
    memcpy(name, host, n);
    name[n] = 0;
    struct in_addr a4;
    struct in6_addr a6;
    return !strcmp(name, "localhost") || inet_pton(AF_INET, name, &a4) == 1 ||
           inet_pton(AF_INET6, name, &a6) == 1;
}

static void on_request(struct evhttp_request *r, void *arg)
{
    nd_dash *d = arg;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(r);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    const char *query = u ? evhttp_uri_get_query(u) : NULL;
    enum evhttp_cmd_type m = evhttp_request_get_command(r);
    if (!path || path[0] != '/') {
        nd_dash_text(d, r, 400, "bad request path");
        return;
    }
    /* plain HTTP on loopback: a page of another site that made its name
     * resolve to this machine (DNS rebinding) is not served */
    if (!d->ssl &&
        !nd_dash_host_ok(evhttp_find_header(evhttp_request_get_input_headers(r), "Host"))) {
        nd_dash_text(d, r, 421,
                     "the dashboard answers to its address (127.0.0.1:PORT), not a name");
        return;
    }
    if (!strncmp(path, "/api/", 5)) {
        nd_dash_api(d, r, path + 4, query);
        return;
    }
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        nd_dash_text(d, r, 405, "GET only");
        return;
    }
    if (!strcmp(path, "/favicon.ico")) {
        nd_dash_send(d, r, 204, "image/x-icon", NULL, 0); /* none: nothing to fetch */
        return;
    }
    if (!strcmp(path, "/"))
        path = "/index.html";
    for (size_t i = 0; i < nd_dash_n_assets; i++)
        if (!strcmp(nd_dash_assets[i].path, path)) {
            nd_dash_send(d, r, 200, nd_dash_assets[i].type, nd_dash_assets[i].data,
                         nd_dash_assets[i].len);
            return;
        }
    nd_dash_text(d, r, 404, "no such page");
}

/* ---------------------------------------------------------------- TLS */

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
    nd_dash *d = arg;
    SSL *ssl = SSL_new(d->ssl);
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        SSL_free(ssl);
    return bev;
}

/* Server-only TLS (browsers present no client certificate) with the node's
 * certificate and key. */
static int tls_ctx(nd_dash *d, sc_error *e)
{
    const char *cert = d->c->cfg.tls_cert, *key = d->c->cfg.tls_key;
    if (!cert[0] || !key[0])
        return sc_error_set(e, SC_EINVAL,
                            "the dashboard on a non-loopback address needs TLS: node.conf "
                            "tls-cert and tls-key ('sldd init --tls' makes them)");
    if (!(d->ssl = SSL_CTX_new(TLS_server_method())))
        return sc_openssl_error(e, SC_ECRYPTO, "dashboard SSL_CTX_new");
    if (!SSL_CTX_set_min_proto_version(d->ssl, TLS1_2_VERSION) ||
        SSL_CTX_use_certificate_chain_file(d->ssl, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(d->ssl, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(d->ssl) != 1)
        return sc_openssl_error(e, SC_ECRYPTO, "dashboard TLS certificate and key");
    return 0;
}

/* ---------------------------------------------------------------- thread */

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    nd_dash *d = arg;
    event_base_loopbreak(d->base);
}

static void *dash_main(void *arg)
{
    nd_dash *d = arg;
    if (event_base_dispatch(d->base) < 0)
        nd_log(d->c, "error", "dashboard: event loop failed");
    return NULL;
}

static int bind_http(nd_dash *d, const char *host, int port, sc_error *e)
{
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(d->http, host, (uint16_t)port);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (!bs)
        return sc_error_set(e, SC_EIO, "dashboard: cannot listen on %s port %d: %s", host, port,
                            strerror(errno));
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl))
        return sc_error_set(e, SC_EIO, "dashboard: getsockname: %s", strerror(errno));
    d->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static int setup(nd_dash *d, const nd_dash_config *cfg, sc_error *e)
{
    char host[64];
    int port, loopback, rc;
    if ((rc = nd_dash_parse_listen(cfg->listen, host, sizeof host, &port, &loopback, e)))
        return rc;
    if (!loopback && (rc = tls_ctx(d, e)))
        return rc;
    if ((rc = nd_db_open(d->c->cfg.dir, 0, &d->db, e)))
        return rc;
    if (pipe2(d->stop_pipe, O_CLOEXEC))
        return sc_error_set(e, SC_EIO, "dashboard: pipe: %s", strerror(errno));
    if (!(d->base = event_base_new()) || !(d->http = evhttp_new(d->base)) ||
        !(d->stop_ev = event_new(d->base, d->stop_pipe[0], EV_READ, on_stop, d)) ||
        event_add(d->stop_ev, NULL))
        return sc_error_set(e, SC_ENOMEM, "dashboard: libevent set-up failed");
    evhttp_set_max_headers_size(d->http, 16384);
    evhttp_set_max_body_size(d->http, (ev_ssize_t)d->c->cfg.base.max_bundle_bytes + 65536);
    evhttp_set_timeout(d->http, 30);
    evhttp_set_allowed_methods(d->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(d->http, on_request, d);
    if (d->ssl)
        evhttp_set_bevcb(d->http, tls_bev, d);
    if ((rc = bind_http(d, host, port, e)))
        return rc;
    nd_log(d->c, "info", "dashboard on %s://%s%s%s:%d/ (%s)", d->ssl ? "https" : "http",
           strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", d->port,
           d->ssl ? "TLS with the node's certificate" : "loopback only, plain HTTP");
    return 0;
}

int nd_dash_start(nd_dash **out, nd_ctx *c, nd_admin *admin, const nd_dash_config *cfg, sc_error *e)
{
    int rc;
    *out = NULL;
    if (!cfg || !cfg->listen || !cfg->listen[0])
        return 0;
    nd_dash *d = calloc(1, sizeof *d);
    if (!d)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    d->c = c;
    d->admin = admin;
    d->stop_pipe[0] = d->stop_pipe[1] = -1;
    nd_dash_sessions_init(&d->sessions, cfg->idle_seconds);
    if ((rc = setup(d, cfg, e))) {
        nd_dash_stop(d);
        return rc;
    }
    if (pthread_create(&d->thread, NULL, dash_main, d)) {
        nd_dash_stop(d);
        return sc_error_set(e, SC_EIO, "dashboard: cannot start its thread");
    }
    d->started = 1;
    *out = d;
    return 0;
}

int nd_dash_port(const nd_dash *d)
{
    return d ? d->port : 0;
}

void nd_dash_stop(nd_dash *d)
{
    if (!d)
        return;
    if (d->started) {
        ssize_t w = write(d->stop_pipe[1], "x", 1);
        (void)w; /* a full pipe already holds a stop */
        pthread_join(d->thread, NULL);
    }
    if (d->http)
        evhttp_free(d->http);
    if (d->stop_ev)
        event_free(d->stop_ev);
    if (d->base)
        event_base_free(d->base);
    if (d->ssl)
        SSL_CTX_free(d->ssl);
    for (int i = 0; i < 2; i++)
        if (d->stop_pipe[i] >= 0)
            close(d->stop_pipe[i]);
    nd_db_close(d->db);
    sodium_memzero(&d->sessions, sizeof d->sessions);
    free(d);
}
