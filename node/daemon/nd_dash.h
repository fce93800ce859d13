/*
 * nd_dash.h - the dashboard: the approval desk in a browser
 * (docs/dashboard.md), served by `sldd serve --dashboard ADDR:PORT`.
 *
 * Its own HTTP listener (libevent's evhttp on the dashboard's own event
 * loop and thread, so a slow page never holds up the peer protocol), plain
 * HTTP on a loopback address only, HTTPS with the node's TLS certificate
 * (node.conf tls-cert, tls-key) on any other; a non-loopback address
 * without them is refused at start.  Everything it serves comes from the
 * binary (nd_dash_assets.h) or from the admin API's routes, which it calls
 * in-process (nd_admin_handle) once a request passed the session checks
 * of nd_dash_session.h: reads need a signed-in admin (401), state changes
 * also the session's CSRF token and a same-origin request (403).  The
 * daemon never receives an admin's key or passphrase: the page signs in
 * and signs decisions in the browser.
 */
#ifndef ND_DASH_H
#define ND_DASH_H

#include "nd_admin_api.h"
#include "nd_ctx.h"
#include "sc_error.h"

typedef struct nd_dash_config {
    const char *listen; /* "127.0.0.1:8080", "[::1]:8080"; NULL or "": no dashboard */
    int idle_seconds;   /* session idle expiry; 0: ND_DASH_IDLE_DEFAULT */
} nd_dash_config;

typedef struct nd_dash nd_dash;

/* Parse ADDR:PORT (numeric IPv4, or IPv6 in brackets; port 0 picks one;
 * PORT alone means 127.0.0.1:PORT)
 * into host (cap bytes) and *port; *loopback is 1 for 127.0.0.0/8 and ::1.
 * 0, or SC_EINVAL with the reason. */
int nd_dash_parse_listen(const char *s, char *host, size_t cap, int *port, int *loopback,
                         sc_error *e) SC_WUR;

/* 1 when a Host header names an address (IPv4, [IPv6]) or localhost, with
 * or without a port: what a loopback dashboard answers to. */
int nd_dash_host_ok(const char *host);

/* Bind and start serving on the dashboard's thread.  admin gives the
 * routes (started before).  *out is NULL when cfg asks for no dashboard. */
int nd_dash_start(nd_dash **out, nd_ctx *c, nd_admin *admin, const nd_dash_config *cfg,
                  sc_error *e) SC_WUR;

/* The port bound (for port 0). */
int nd_dash_port(const nd_dash *d);

/* Stop, join, free; NULL is fine. */
void nd_dash_stop(nd_dash *d);

#endif
