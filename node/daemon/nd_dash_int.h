/*
 * nd_dash_int.h - what the dashboard's server (nd_dash.c) and its API
 * routes (nd_dash_api.c, nd_dash_detect.c) share; not for other modules.
 */
#ifndef ND_DASH_INT_H
#define ND_DASH_INT_H

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <sqlite3.h>

#include "nd_buf.h"
#include "nd_dash.h"
#include "nd_dash_session.h"

struct nd_dash {
    nd_ctx *c;
    nd_admin *admin;
    sqlite3 *db; /* the dashboard thread's own connection */
    struct event_base *base;
    struct evhttp *http;
    struct event *stop_ev;
    SSL_CTX *ssl; /* NULL on loopback */
    int stop_pipe[2];
    pthread_t thread;
    int started;
    int port;
    nd_dash_sessions sessions;
    /* refused sign-ins written to the audit log in the current minute */
    int64_t refused_minute;
    int refused_in_minute;
};

/* Refused sign-ins recorded in the audit log per minute; beyond that they
 * are only logged, so that anyone who can reach the listener cannot grow
 * the audit log at will. */
#define ND_DASH_REFUSALS_AUDITED 10

/* Send status with body (len bytes) of content type `type` and the
 * security headers every answer carries. */
void nd_dash_send(nd_dash *d, struct evhttp_request *r, int status, const char *type,
                  const void *body, size_t len);
/* A text/plain answer. */
void nd_dash_text(nd_dash *d, struct evhttp_request *r, int status, const char *msg);

/* POST /api/v1/inbound/ID/detect (nd_dash_detect.c), after the session
 * and CSRF checks: 1 when path was that route (the answer is sent). */
int nd_dash_detect(nd_dash *d, struct evhttp_request *r, const nd_dash_session *s,
                   const char *path);

/* Everything under /api/ (nd_dash_api.c). */
void nd_dash_api(nd_dash *d, struct evhttp_request *r, const char *path, const char *query);

#endif
