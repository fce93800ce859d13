/*
 * sn_server_req.c - the request side of the server (see sn_server.h): the
 * response API handlers fill in, reading the head (size-bounded, parsed by
 * sn_http.c), routing by exact path and method (404, 405 with Allow),
 * Content-Length against the route's body cap before any of the body is
 * read (411, 413), and calling the handler once the body is complete.
 * Route registration lives here too.  The connection's plumbing (TLS,
 * timers, writing, lingering) is sn_server.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sn_server_int.h"

/* ---- responses ---- */

/* ---- responses ---- */

int sn_response_set(sn_response *r, int status, const char *content_type, const void *body,
                    size_t body_len)
{
    unsigned char *copy = NULL;
    if (!r)
        return SC_EINVAL;
    if (content_type &&
        (strlen(content_type) >= sizeof r->content_type || strpbrk(content_type, "\r\n")))
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

int sn_response_printf(sn_response *r, int status, const char *content_type, const char *fmt, ...)
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
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-'))
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
    sn_conn_emit(c, SN_EV_HTTP_REFUSED, status, "%s", reason);
    sn_conn_send(c, status, "text/plain; charset=utf-8", (const unsigned char *)body, (size_t)n,
                 extra);
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
        sn_conn_emit(c, SN_EV_ERROR, 0, "evbuffer_pullup failed");
        sn_conn_free(c);
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
        sn_conn_emit(c, SN_EV_ERROR, 0, "out of memory for the request head");
        sn_conn_free(c);
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
        size_t used = 7;
        if (!path_match) {
            send_error(c, 404, NULL, "no such endpoint %s", c->head.path);
            return -1;
        }
        for (size_t i = 0; i < s->n_routes; i++) {
            if (strcmp(s->routes[i].path, c->head.path) != 0)
                continue;
            if (used + strlen(s->routes[i].method) + 8 < sizeof allow)
                used += (size_t)snprintf(allow + used, sizeof allow - used, "%s%s",
                                         used > 7 ? ", " : "", s->routes[i].method);
        }
        snprintf(allow + used, sizeof allow - used, "\r\n");
        send_error(c, 405, allow, "%s is not allowed on %s", c->head.method, c->head.path);
        return -1;
    }
    if (c->head.content_length < 0 && method_has_body(c->head.method)) {
        send_error(c, 411, NULL, "%s needs a Content-Length", c->head.method);
        return -1;
    }
    if (c->head.content_length > 0 &&
        (unsigned long long)c->head.content_length > c->route->max_body) {
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
            sn_conn_emit(c, SN_EV_ERROR, 0, "out of memory for a %zu-byte body", c->body_len);
            sn_conn_free(c);
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
        sn_conn_emit(c, SN_EV_ERROR, 500, "handler for %s %s set no valid status", r->method,
                     r->path);
        sn_conn_send(c, 500, "text/plain; charset=utf-8",
                     (const unsigned char *)"500 Internal Server Error\n", 26, NULL);
        return;
    }
    sn_conn_emit(c, SN_EV_REQUEST, resp.status,
                 "%s %s from %s: %d (%zu-byte request, %zu-byte reply)", r->method, r->path,
                 c->peer.node_id, resp.status, c->body_len, resp.body_len);
    sn_conn_send(c, resp.status, resp.content_type, resp.body, resp.body_len, resp.extra_headers);
    response_release(&resp);
}

void sn_conn_process_input(sn_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    switch (c->state) {
    case ST_HANDSHAKE:
    case ST_RESPOND:
    case ST_LINGER: return; /* not yet / no longer reading */
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
                sn_conn_emit(c, SN_EV_ERROR, 0, "cannot queue 100 Continue");
                sn_conn_free(c);
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

int sn_server_route(sn_server *s, const char *method, const char *path, size_t max_body,
                    sn_handler_fn fn, void *arg, sc_error *err)
{
    sn_route *r;
    size_t mlen;
    if (!s || !method || !path || !fn)
        return sc_error_set(err, SC_EINVAL, "route: missing argument");
    mlen = strlen(method);
    if (mlen == 0 || mlen > SN_HTTP_METHOD_MAX ||
        strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != mlen)
        return sc_error_set(err, SC_EINVAL, "route: bad method '%s'", method);
    if (path[0] != '/' || strlen(path) >= SN_ROUTE_PATH_MAX || strpbrk(path, "? \t\r\n"))
        return sc_error_set(err, SC_EINVAL, "route: bad path '%s'", path);
    if (max_body > s->cfg.max_body_bytes)
        return sc_error_set(err, SC_EINVAL, "route: body cap %zu above the server's %zu", max_body,
                            s->cfg.max_body_bytes);
    if (s->ran)
        return sc_error_set(err, SC_EINVAL, "route: server already running");
    for (size_t i = 0; i < s->n_routes; i++)
        if (!strcmp(s->routes[i].method, method) && !strcmp(s->routes[i].path, path))
            return sc_error_set(err, SC_EEXIST, "route: %s %s registered twice", method, path);
    if (s->n_routes == SN_MAX_ROUTES)
        return sc_error_set(err, SC_EINVAL, "route: more than %d routes", SN_MAX_ROUTES);
    r = &s->routes[s->n_routes++];
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", path);
    r->max_body = max_body;
    r->fn = fn;
    r->arg = arg;
    return 0;
}
