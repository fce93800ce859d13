/*
 * nd_dash_api.c - the dashboard's /api/ routes (see nd_dash.h):
 *
 *   GET  /api/challenge        a fresh sign-in challenge and this node's id
 *   POST /api/login            "admin:", "challenge:", "signature:" lines
 *   GET  /api/session          the signed-in admin and the CSRF token ({"admin":null}
 *                              when not signed in)
 *   POST /api/logout
 *   GET  /api/v1/...           the admin API's read routes (nd_admin_api.h)
 *   POST /api/v1/bundles/ID/decision, POST /api/v1/bundles/ID/resend[?peer=P],
 *   POST /api/v1/jobs/N/cancel
 *   POST /api/v1/inbound/ID/detect                      a PNG: detection (nd_dash_detect.c)
 *   GET  /api/v1/bundles/ID/grid.png, .../privacy.png   the daemon's pictures
 *   GET  /api/v1/bundles/ID/payload                     the stored payload bytes
 *
 * Everything but the first two needs the session cookie (401 otherwise);
 * every POST needs the session's CSRF token in X-CSRF-Token and no sign of
 * another origin (403 otherwise).  Sign-ins, refused ones included, go to
 * the audit log.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "nd_audit.h"
#include "nd_dash_int.h"
#include "nd_objects.h"
#include "nd_state.h"
#include "sc_util.h"

#define COOKIE      "sldd_dash"
#define PICTURE_MAX (32u << 20)

static const char *header(struct evhttp_request *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r), name);
}

/* The session token from the Cookie header (into tok), or NULL. */
static const char *cookie_token(struct evhttp_request *r, char tok[65])
{
    const char *c = header(r, "Cookie");
    for (const char *p = c; p && (p = strstr(p, COOKIE "=")) != NULL; p++) {
        if (p != c && p[-1] != ' ' && p[-1] != ';')
            continue;
        p += sizeof COOKIE;
        size_t n = strspn(p, "0123456789abcdef");
        if (n != 64)
            return NULL;
        memcpy(tok, p, 64);
        tok[64] = 0;
        return tok;
    }
    return NULL;
}

/* A state change must come from this dashboard's own page: when the
 * browser says where the request comes from (Origin, Sec-Fetch-Site), it
 * must be this origin. */
static int same_origin(nd_dash *d, struct evhttp_request *r)
{
    const char *site = header(r, "Sec-Fetch-Site"), *origin = header(r, "Origin");
    const char *host = header(r, "Host");
    char want[300];
    if (site && strcmp(site, "same-origin"))
        return 0;
    if (!origin)
        return 1;
    if (!host)
        return 0;
    snprintf(want, sizeof want, "%s://%s", d->ssl ? "https" : "http", host);
    return !strcmp(origin, want);
}

static void send_buf(nd_dash *d, struct evhttp_request *r, int status, const char *type, nd_buf *b)
{
    if (b->failed)
        nd_dash_text(d, r, 500, "answer too large");
    else
        nd_dash_send(d, r, status, type, b->data, b->len);
}

/* The request body as a NUL-terminated copy (free()), or NULL. */
static char *body_text(struct evhttp_request *r, size_t max)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r);
    size_t n = evbuffer_get_length(in);
    char *s = n <= max ? malloc(n + 1) : NULL;
    if (s && evbuffer_copyout(in, s, n) != (ev_ssize_t)n) {
        free(s);
        return NULL;
    }
    if (s)
        s[n] = 0;
    return s;
}

static void audit_login(nd_dash *d, const char *admin, const char *outcome, const char *detail)
{
    char actor[96];
    sc_error e = {0, ""};
    if (strcmp(outcome, "ok")) {
        int64_t minute = nd_now_unix() / 60;
        if (minute != d->refused_minute) {
            d->refused_minute = minute;
            d->refused_in_minute = 0;
        }
        if (++d->refused_in_minute > ND_DASH_REFUSALS_AUDITED) {
            if (d->refused_in_minute == ND_DASH_REFUSALS_AUDITED + 1)
                nd_log(d->c, "warn",
                       "dashboard: more than %d refused sign-ins this minute; "
                       "the rest of them are logged, not audited",
                       ND_DASH_REFUSALS_AUDITED);
            return;
        }
    }
    snprintf(actor, sizeof actor, "admin:%.64s", admin[0] ? admin : "?");
    nd_audit_entry en = {actor, "dashboard-login", "", "", "", outcome, detail};
    if (nd_audit_append(d->db, &en, NULL, &e) || nd_audit_anchor(d->db, d->c->cfg.dir, &e))
        nd_log(d->c, "error", "audit: %s", e.msg);
}

static void session_json(nd_dash *d, struct evhttp_request *r, const nd_dash_session *s)
{
    nd_buf b;
    nd_buf_init(&b, 4096);
    nd_buf_str(&b, "{\"node\":");
    nd_buf_json_str(&b, d->c->self_id);
    nd_buf_str(&b, ",\"admin\":");
    nd_buf_json_str(&b, s->admin);
    nd_buf_printf(&b, ",\"csrf\":\"%s\",\"idle_seconds\":%d}\n", s->csrf, d->sessions.idle_seconds);
    send_buf(d, r, 200, "application/json", &b);
    nd_buf_free(&b);
}

static void r_challenge(nd_dash *d, struct evhttp_request *r)
{
    char hex[65];
    nd_buf b;
    nd_dash_challenge_new(&d->sessions, nd_now_unix(), hex);
    nd_buf_init(&b, 4096);
    nd_buf_str(&b, "{\"node\":");
    nd_buf_json_str(&b, d->c->self_id);
    nd_buf_printf(&b, ",\"challenge\":\"%s\",\"type\":\"%s\"}\n", hex, ND_DASH_LOGIN_TYPE);
    send_buf(d, r, 200, "application/json", &b);
    nd_buf_free(&b);
}

static void r_login(nd_dash *d, struct evhttp_request *r)
{
    char admin[65] = "", ch[65] = "", sig[129] = "", detail[300];
    char *text = body_text(r, 4096), *cur = text, *k, *v;
    sc_error e = {0, ""};
    sc_peer self;
    nd_dash_session *s;
    int kv;
    if (!text) {
        nd_dash_text(d, r, 400, "body: 'admin:', 'challenge:' and 'signature:' lines");
        return;
    }
    while ((kv = sc_kv_next(&cur, &k, &v)) == 1) {
        char *dst = !strcmp(k, "admin")       ? admin
                    : !strcmp(k, "challenge") ? ch
                    : !strcmp(k, "signature") ? sig
                                              : NULL;
        size_t cap = dst == admin ? sizeof admin : dst == ch ? sizeof ch : sizeof sig;
        if (dst && strlen(v) < cap)
            memcpy(dst, v, strlen(v) + 1);
    }
    free(text);
    /* the name goes into the log and the audit log: letters, digits, . _ - */
    if (admin[strspn(admin, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")])
        admin[0] = 0;
    if (kv < 0 || !admin[0] || !ch[0] || !sig[0]) {
        nd_dash_text(d, r, 400,
                     "body: 'admin:' (letters, digits, '.', '_', '-'), 'challenge:' and "
                     "'signature:' lines");
        return;
    }
    if (d->c->trust->peer_get(d->c->trust, d->c->self_id, &self, &e) ||
        nd_dash_login(&d->sessions, &self, admin, ch, sig, nd_now_unix(), &s, &e)) {
        snprintf(detail, sizeof detail, "dashboard sign-in refused: %s", e.msg);
        audit_login(d, admin, "refused", detail);
        nd_log(d->c, "warn", "%s", detail);
        nd_dash_text(d, r, e.code == SC_EPERM ? 403 : 500, e.msg);
        return;
    }
    char cookie[200];
    snprintf(cookie, sizeof cookie, COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict%s", s->token,
             d->ssl ? "; Secure" : "");
    if (evhttp_add_header(evhttp_request_get_output_headers(r), "Set-Cookie", cookie)) {
        nd_dash_text(d, r, 500, "headers");
        return;
    }
    audit_login(d, admin, "ok", "dashboard sign-in by signed challenge");
    nd_log(d->c, "info", "dashboard: admin %s signed in", admin);
    session_json(d, r, s);
}

/* The stored payload bytes of bundle id (either direction). */
static void send_payload(nd_dash *d, struct evhttp_request *r, const char *id)
{
    char obj[65];
    int found = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    sc_error e = {0, ""};
    if (nd_db_text(d->db, obj, sizeof obj, &found, &e,
                   "SELECT payload_sha256 FROM bundles WHERE id=?", "t", id) ||
        !found) {
        nd_dash_text(d, r, found ? 500 : 404, found ? e.msg : "no such bundle");
        return;
    }
    if (nd_object_get(d->c->cfg.dir, obj, d->c->cfg.base.max_bundle_bytes, &buf, &len, &e)) {
        nd_dash_text(d, r, 500, e.msg);
        return;
    }
    nd_dash_send(d, r, 200, "application/octet-stream", buf, len);
    free(buf);
}

/* GET .../bundles/ID/grid.png or privacy.png, the pictures the daemon drew
 * for an outbound bundle, or .../payload, the payload bytes of any bundle
 * (the inbound page decodes its images from them).  1 when the path was
 * one of these. */
static int r_bundle_file(nd_dash *d, struct evhttp_request *r, const char *path)
{
    static const char *const names[] = {"/grid.png", "/privacy.png", "/payload"};
    char idp[40], id[33], file[ND_PATH_MAX + 128];
    sc_error e = {0, ""};
    int which = -1;
    if (strncmp(path, "/v1/bundles/", 12))
        return 0;
    const char *rest = path + 12, *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : 0;
    for (int i = 0; i < 3 && slash; i++)
        if (!strcmp(slash, names[i]))
            which = i;
    if (which < 0)
        return 0;
    if (n == 0 || n >= sizeof idp) {
        nd_dash_text(d, r, 404, "no such bundle");
        return 1;
    }
    memcpy(idp, rest, n);
    idp[n] = 0;
    if (nd_bundle_resolve(d->db, idp, id, &e)) {
        nd_dash_text(d, r, e.code == SC_ENOTFOUND ? 404 : 400, e.msg);
        return 1;
    }
    if (which == 2) {
        send_payload(d, r, id);
        return 1;
    }
    snprintf(file, sizeof file, "%s/bundles/%s%s", d->c->cfg.dir, id, names[which]);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (sc_file_read(file, PICTURE_MAX, 0, &buf, &len, &e)) {
        nd_dash_text(d, r, 404, "no picture for this bundle");
        return 1;
    }
    nd_dash_send(d, r, 200, "image/png", buf, len);
    free(buf);
    return 1;
}

/* Only the admin API's read routes, a decision, a re-send of a refused
 * delivery and a job cancel. */
static int allowed(enum evhttp_cmd_type m, const char *path)
{
    size_t n = strlen(path);
    if (m == EVHTTP_REQ_GET)
        return 1;
    if (m != EVHTTP_REQ_POST)
        return 0;
    return (!strncmp(path, "/v1/bundles/", 12) && n > 21 && !strcmp(path + n - 9, "/decision")) ||
           (!strncmp(path, "/v1/bundles/", 12) && n > 19 && !strcmp(path + n - 7, "/resend")) ||
           (!strncmp(path, "/v1/jobs/", 9) && n > 16 && !strcmp(path + n - 7, "/cancel"));
}

/* A reason given with a decision: not part of what the admin signs (the
 * Approval has no such field), so it is recorded beside the decision in
 * the audit log, as said by the signed-in admin. */
static void audit_reason(nd_dash *d, const nd_dash_session *s, const char *path, const char *query)
{
    struct evkeyvalq kv;
    char idp[40], id[33], why[404];
    sc_error e = {0, ""};
    if (!query || strncmp(path, "/v1/bundles/", 12))
        return;
    const char *rest = path + 12, *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : 0;
    if (n == 0 || n >= sizeof idp)
        return;
    TAILQ_INIT(&kv);
    if (evhttp_parse_query_str(query, &kv) == 0) {
        const char *v = evhttp_find_header(&kv, "reason");
        memcpy(idp, rest, n);
        idp[n] = 0;
        if (v && v[0] && nd_bundle_resolve(d->db, idp, id, &e) == 0) {
            char actor[80];
            size_t i = 0;
            for (; v[i] && i < sizeof why - 4; i++)
                why[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
            memcpy(why + i, v[i] ? "..." : "", v[i] ? 4 : 1);
            snprintf(actor, sizeof actor, "admin:%s", s->admin);
            nd_audit_entry en = {actor, "decision-reason", id, "", "", "noted", why};
            if (nd_audit_append(d->db, &en, NULL, &e) || nd_audit_anchor(d->db, d->c->cfg.dir, &e))
                nd_log(d->c, "error", "audit: %s", e.msg);
        }
    }
    evhttp_clear_headers(&kv);
}

static void r_admin(nd_dash *d, struct evhttp_request *r, const nd_dash_session *s,
                    const char *path, const char *query)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(r);
    struct evbuffer *in = evhttp_request_get_input_buffer(r);
    size_t len = evbuffer_get_length(in);
    const uint8_t *body = len ? evbuffer_pullup(in, -1) : NULL;
    const char *type;
    nd_buf b;
    if (!allowed(m, path)) {
        nd_dash_text(d, r, 405, "not available from the dashboard");
        return;
    }
    if (len && !body) {
        nd_dash_text(d, r, 500, "out of memory");
        return;
    }
    if (m == EVHTTP_REQ_GET && r_bundle_file(d, r, path))
        return;
    nd_buf_init(&b, d->c->cfg.base.max_bundle_bytes + 65536);
    int json = !(query && strstr(query, "format=text"));
    char who[96];
    snprintf(who, sizeof who, "dashboard:%s", s->admin);
    int status = nd_admin_handle(d->admin, d->db, who, m == EVHTTP_REQ_POST ? "POST" : "GET", path,
                                 query, body, len, json, &type, &b);
    if (status == 200 && m == EVHTTP_REQ_POST)
        audit_reason(d, s, path, query);
    send_buf(d, r, status, type, &b);
    nd_buf_free(&b);
}

void nd_dash_api(nd_dash *d, struct evhttp_request *r, const char *path, const char *query)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(r);
    char tok[65];
    if (m == EVHTTP_REQ_GET && !strcmp(path, "/challenge")) {
        r_challenge(d, r);
        return;
    }
    if (m == EVHTTP_REQ_POST && !strcmp(path, "/login")) {
        if (!same_origin(d, r))
            nd_dash_text(d, r, 403, "refused: not from this dashboard's origin");
        else
            r_login(d, r);
        return;
    }
    /* the page's background refresh says so, and does not count as use */
    const char *bg = header(r, "X-Background");
    nd_dash_session *s = nd_dash_session_find(&d->sessions, cookie_token(r, tok), nd_now_unix(),
                                              !(bg && !strcmp(bg, "1")));
    if (!s && m == EVHTTP_REQ_GET && !strcmp(path, "/session")) {
        nd_dash_send(d, r, 200, "application/json", "{\"admin\":null}\n", 15);
        return;
    }
    if (!s) {
        nd_dash_text(d, r, 401, "not signed in, or the session expired; sign in again");
        return;
    }
    if (m == EVHTTP_REQ_POST &&
        (!same_origin(d, r) || !nd_dash_csrf_ok(s, header(r, "X-CSRF-Token")))) {
        nd_log(d->c, "warn", "dashboard: %s %s refused (CSRF token or origin)", s->admin, path);
        nd_dash_text(d, r, 403, "refused: missing or wrong CSRF token, or another origin");
        return;
    }
    if (!strcmp(path, "/session") && m == EVHTTP_REQ_GET)
        session_json(d, r, s);
    else if (!strcmp(path, "/logout") && m == EVHTTP_REQ_POST) {
        nd_dash_session_end(s);
        nd_dash_text(d, r, 200, "signed out");
    } else if (m == EVHTTP_REQ_POST && nd_dash_detect(d, r, s, path)) {
        /* answered: detection on an uploaded image */
    } else if (!strncmp(path, "/v1/", 4))
        r_admin(d, r, s, path, query);
    else
        nd_dash_text(d, r, 404, "no such route");
}
