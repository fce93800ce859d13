/*
 * nd_admin_api.c - the admin API server on NODE/admin.sock (see
 * nd_admin_api.h).
 *
 * One acceptor thread checks each client's credentials and queues the
 * connection; ND_ADMIN_WORKERS workers, each with its own SQLite
 * connection, take connections from the queue and serve one request each.
 * Every wait for a request polls the stop pipe as well, so a stop never
 * waits for a slow client; an answer already computed is still written
 * (within its own deadline).
 */
#define _GNU_SOURCE /* struct ucred, SO_PEERCRED */
#include "nd_admin_api.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "nd_audit.h"
#include "nd_buf.h"
#include "nd_objects.h"
#include "nd_approval.h"
#include "nd_delivery.h"
#include "nd_job_curves.h"
#include "nd_state.h"
#include "nd_views.h"
#include "sc_util.h"
#include "sn_x509.h"
#include "sn_http.h"
#include "sp_check.h"
#include "sb_parse.h"

#define HEAD_MAX 8192

typedef struct req {
    const char *method, *path, *query;
    const uint8_t *body;
    size_t body_len;
    int json;
    const char *who; /* the client's OS user (SO_PEERCRED), for the audit */
} req;

typedef struct resp {
    int status;
    const char *type;
    nd_buf body;
} resp;

static void reply(resp *r, int status, const char *fmt, ...) SC_PRINTF(3, 4);
static void reply(resp *r, int status, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->status = status;
    r->type = "text/plain";
    nd_buf_reset(&r->body);
    nd_buf_str(&r->body, msg);
    nd_buf_str(&r->body, "\n");
}

static int error_status(int code)
{
    return code == SC_ENOTFOUND                                                    ? 404
           : code == SC_EEXIST                                                     ? 409
           : code == SC_EPERM                                                      ? 403
           : code == SC_EINVAL || code == SC_EFORMAT || sc_status_is_refusal(code) ? 400
                                                                                   : 500;
}

static const char *query_get(const char *q, const char *key, char *out, size_t outlen)
{
    size_t kl = strlen(key);
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > kl && !strncmp(p, key, kl) && p[kl] == '=') {
            size_t vl = len - kl - 1;
            if (vl >= outlen)
                vl = outlen - 1;
            memcpy(out, p + kl + 1, vl);
            out[vl] = 0;
            return out;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* "key: value" lines of a small text body */
static int body_field(const req *q, const char *key, char *out, size_t outlen)
{
    char *copy = malloc(q->body_len + 1), *cur, *k, *v;
    int r, found = 0;
    out[0] = 0;
    if (!copy)
        return -1;
    memcpy(copy, q->body ? (const char *)q->body : "", q->body_len);
    copy[q->body_len] = 0;
    cur = copy;
    while ((r = sc_kv_next(&cur, &k, &v)) == 1)
        if (!strcmp(k, key) && strlen(v) < outlen) {
            snprintf(out, outlen, "%s", v);
            found = 1;
        }
    free(copy);
    return r < 0 ? -1 : found;
}

int nd_peer_set(sqlite3 *db, const char *id, const char *url, const char *pins, const char *source,
                sc_error *e)
{
    unsigned char pin[SC_PIN_LEN];
    char tmp[ND_PINS_MAX];
    if (!sp_valid_id(id))
        return sc_error_set(e, SC_EINVAL, "'%s' is not a node id", id);
    if (strncmp(url, "https://", 8) || strlen(url) >= ND_URL_MAX || strchr(url, ' '))
        return sc_error_set(e, SC_EINVAL, "peer URL must be https://HOST:PORT");
    if (!*pins || strlen(pins) >= sizeof tmp)
        return sc_error_set(e, SC_EINVAL, "peer needs one to four TLS pins");
    snprintf(tmp, sizeof tmp, "%s", pins);
    for (char *save = NULL, *p = strtok_r(tmp, ";", &save); p; p = strtok_r(NULL, ";", &save))
        if (sn_x509_pin_parse(p, pin, e))
            return sc_error_wrap(e, "peer %s", id);
    return nd_db_run(db, e,
                     "INSERT INTO peers(id,url,pins,source,updated_unix) VALUES(?,?,?,?,?) "
                     "ON CONFLICT(id) DO UPDATE SET url=excluded.url, pins=excluded.pins, "
                     "source=excluded.source, updated_unix=excluded.updated_unix",
                     "tttti", id, url, pins, source, nd_now_unix());
}

/* ---------------------------------------------------------------- routes */

/* Counts of jobs, bundles and deliveries by state, as JSON members or
 * text lines (nd_metrics_counts). */
static int status_counts(sqlite3 *db, int json, nd_buf *o, sc_error *e)
{
    static const struct {
        nd_count_kind kind;
        const char *key, *label;
    } t[] = {{ND_COUNT_JOBS, "jobs", "jobs             "},
             {ND_COUNT_BUNDLES_OUT, "bundles_out", "bundles made here"},
             {ND_COUNT_BUNDLES_IN, "bundles_in", "bundles received "},
             {ND_COUNT_DELIVERIES, "deliveries", "deliveries       "}};
    int rc;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        nd_buf_printf(o, json ? ",\"%s\":" : "%.0s%s ", t[i].key, t[i].label);
        if ((rc = nd_metrics_counts(db, t[i].kind, json, o, e)))
            return rc;
        nd_buf_str(o, json ? "" : "\n");
    }
    return 0;
}

/* A change a person made through the API, in the audit log (a failure to
 * record it is logged; the change itself is already committed). */
static void api_audit(nd_admin *a, sqlite3 *db, const char *who, const char *action,
                      const char *peer, const char *outcome, const char *detail)
{
    sc_error e = {0, ""};
    nd_audit_entry en = {who, action, "", "", peer, outcome, detail};
    if (nd_audit_append(db, &en, NULL, &e) || nd_audit_anchor(db, a->ctx->cfg.dir, &e))
        nd_log(a->ctx, "error", "audit log: %s", e.msg);
}

/* Decode %XX and '+' in place; -1 for a bad escape or a control
 * character (the text goes into one audit line). */
static int pct_decode(char *s)
{
    char *w = s;
    for (const char *p = s; *p; p++) {
        int c = (unsigned char)*p;
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            char two[3] = {p[1], p[1] ? p[2] : 0, 0};
            uint8_t v;
            if (nd_unhex(&v, 1, two))
                return -1;
            c = v;
            p += 2;
        }
        if (c < 0x20 || c == 0x7f)
            return -1;
        *w++ = (char)c;
    }
    *w = 0;
    return 0;
}

static void r_status(nd_admin *a, sqlite3 *db, const req *q, resp *r)
{
    nd_ctx *c = a->ctx;
    sc_error e = {0, ""};
    int64_t audit = 0, up = nd_now_unix() - a->started_unix;
    nd_settings st;
    nd_ctx_settings(c, &st);
    if (nd_db_int(db, &audit, NULL, &e, "SELECT COUNT(*) FROM audit", "")) {
        reply(r, 500, "%s", e.msg);
        return;
    }
    r->status = 200;
    r->type = q->json ? "application/json" : "text/plain";
    nd_buf *o = &r->body;
    if (q->json) {
        nd_buf_printf(o,
                      "{\"node\":\"%s\",\"running\":true,\"pid\":%ld,\"port\":%d,"
                      "\"started_unix\":%" PRId64 ",\"uptime_seconds\":%" PRId64 ",\"listen\":",
                      c->self_id, (long)getpid(), a->port, a->started_unix, up);
        nd_buf_json_str(o, c->cfg.listen_addr);
        nd_buf_str(o, ",\"admin_socket\":");
        nd_buf_json_str(o, a->path);
        nd_buf_printf(o,
                      ",\"audit_entries\":%" PRId64 ",\"privacy_policy\":\"%s\",\"data\":", audit,
                      nd_privacy_policy_name(st.privacy));
        nd_buf_json_str(o, c->cfg.data);
    } else {
        nd_buf_printf(o,
                      "node %s: running (pid %ld, up %" PRId64 "h%02" PRId64 "m%02" PRId64 "s)\n"
                      "peer listener     %s:%d (mutual TLS 1.3)\n"
                      "admin API         %s\n"
                      "data set          %s\n",
                      c->self_id, (long)getpid(), up / 3600, up / 60 % 60, up % 60,
                      c->cfg.listen_addr, a->port, a->path,
                      c->cfg.data[0] ? c->cfg.data : "(none)");
    }
    if (status_counts(db, q->json, o, &e)) {
        reply(r, 500, "%s", e.msg);
        return;
    }
    if (q->json)
        nd_buf_str(o, "}\n");
    else
        nd_buf_printf(o, "audit entries     %" PRId64 "\nprivacy policy    %s\n", audit,
                      nd_privacy_policy_name(st.privacy));
}

/* Liveness for supervisors and load balancers: the database answers and
 * the node is not stopping. */
static void r_health(nd_admin *a, sqlite3 *db, resp *r)
{
    nd_ctx *c = a->ctx;
    sc_error e = {0, ""};
    int64_t n = 0;
    int db_ok = nd_db_int(db, &n, NULL, &e, "SELECT COUNT(*) FROM sqlite_master", "") == 0;
    int stopping = atomic_load(&c->stopping) != 0;
    r->status = db_ok && !stopping ? 200 : 503;
    r->type = "application/json";
    nd_buf_printf(&r->body,
                  "{\"status\":\"%s\",\"node\":\"%s\",\"pid\":%ld,\"uptime_seconds\":%" PRId64
                  ",\"database\":",
                  stopping ? "stopping"
                  : db_ok  ? "ok"
                           : "failing",
                  c->self_id, (long)getpid(), nd_now_unix() - a->started_unix);
    nd_buf_json_str(&r->body, db_ok ? "ok" : e.msg);
    nd_buf_str(&r->body, "}\n");
}

static void r_metrics(nd_admin *a, sqlite3 *db, resp *r)
{
    sc_error e = {0, ""};
    r->status = 200;
    r->type = "text/plain; version=0.0.4; charset=utf-8";
    if (nd_metrics_render(&a->ctx->metrics, db, a->ctx->self_id, &r->body, &e))
        reply(r, 500, "%s", e.msg);
}

/* `sldd stop`: the same clean stop as SIGTERM (the handler stops the
 * server; everything else follows from there). */
static void r_stop(nd_admin *a, resp *r)
{
    nd_log(a->ctx, "info", "stop requested over the admin API");
    if (kill(getpid(), SIGTERM)) {
        reply(r, 500, "cannot signal the node: %s", strerror(errno));
        return;
    }
    reply(r, 202, "node %s (pid %ld) is stopping", a->ctx->self_id, (long)getpid());
}

static void r_bundles(nd_admin *a, sqlite3 *db, const req *q, resp *r)
{
    sc_error e = {0, ""};
    r->status = 200;
    r->type = q->json ? "application/json" : "text/plain";
    if (nd_view_bundles(db, &r->body, q->json, &e))
        reply(r, 500, "%s", e.msg);
}

/* POST /v1/bundles/ID/resend[?peer=NAME]: a refused delivery queued again
 * with the envelope sealed at approval (nd_delivery_resend). */
static void r_resend(nd_admin *a, sqlite3 *db, const req *q, resp *r, const char *id)
{
    sc_error e = {0, ""};
    nd_resend_result res;
    char peer[80];
    const char *p = query_get(q->query, "peer", peer, sizeof peer);
    if (p && (pct_decode(peer) || !peer[0])) {
        reply(r, 400, "peer: bad percent-encoding or empty");
        return;
    }
    if (nd_delivery_resend(a->ctx, db, id, p, q->who ? q->who : "api", &res, &e)) {
        reply(r, error_status(e.code), "%s", e.msg);
        return;
    }
    reply(r, 200, "bundle %s: re-sending the envelope sealed at approval to %s", id, res.peers);
}

static void r_bundle(nd_admin *a, sqlite3 *db, const req *q, resp *r, const char *idp,
                     const char *rest)
{
    sc_error e = {0, ""};
    char id[33];
    if (nd_bundle_resolve(db, idp, id, &e)) {
        reply(r, error_status(e.code), "%s", e.msg);
        return;
    }
    if (!*rest && !strcmp(q->method, "GET")) {
        r->status = 200;
        r->type = q->json ? "application/json" : "text/plain";
        if (nd_view_bundle(a->ctx, db, id, &r->body, q->json, &e))
            reply(r, error_status(e.code), "%s", e.msg);
        return;
    }
    if (!strcmp(rest, "/statement") && !strcmp(q->method, "GET")) {
        char obj[65];
        int found;
        uint8_t *buf;
        size_t len;
        if (nd_db_text(db, obj, sizeof obj, &found, &e,
                       "SELECT COALESCE(approved_obj, statement_obj) FROM bundles WHERE id=? "
                       "AND direction='out'",
                       "t", id) ||
            !found) {
            reply(r, found ? 500 : 404, "%s", found ? e.msg : "not an outbound bundle");
            return;
        }
        if (nd_object_get(a->ctx->cfg.dir, obj, a->ctx->cfg.base.max_bundle_bytes, &buf, &len,
                          &e)) {
            reply(r, 500, "%s", e.msg);
            return;
        }
        r->status = 200;
        r->type = "application/octet-stream";
        nd_buf_add(&r->body, buf, len);
        free(buf);
        return;
    }
    if (!strcmp(rest, "/decision") && !strcmp(q->method, "POST")) {
        nd_decision_result res;
        char reason[400];
        const char *why = query_get(q->query, "reason", reason, sizeof reason);
        if (why && pct_decode(reason)) {
            reply(r, 400, "reason: bad percent-encoding or not one line");
            return;
        }
        if (nd_approval_decide_by(a->ctx, db, id, q->body, q->body_len, q->who, why, &res, &e)) {
            reply(r, error_status(e.code), "%s", e.msg);
            return;
        }
        if (res.rejected)
            reply(r, 200, "bundle %s REJECTED by %s; it will not be sent", id, res.admins);
        else if (res.approved)
            reply(r, 200, "bundle %s APPROVED by %s (%zu of %zu needed); sealing and sending", id,
                  res.admins, res.n_admins, res.need);
        else
            reply(r, 200, "approval recorded (%s): %zu of %zu needed; still pending", res.admins,
                  res.n_admins, res.need);
        return;
    }
    if (!strcmp(rest, "/resend") && !strcmp(q->method, "POST")) {
        r_resend(a, db, q, r, id);
        return;
    }
    reply(r, 404, "no such route");
}

static void r_jobs(nd_admin *a, sqlite3 *db, const req *q, resp *r, const char *rest)
{
    sc_error e = {0, ""};
    if (!*rest && !strcmp(q->method, "GET")) {
        r->status = 200;
        r->type = q->json ? "application/json" : "text/plain";
        if (nd_view_jobs(db, &r->body, q->json, &e))
            reply(r, 500, "%s", e.msg);
        return;
    }
    if (!*rest && !strcmp(q->method, "POST")) {
        char to[1024], opts[2048];
        int64_t id;
        if (body_field(q, "to", to, sizeof to) < 0 ||
            body_field(q, "options", opts, sizeof opts) < 0) {
            reply(r, 400, "body: 'to:' and 'options:' lines");
            return;
        }
        if (nd_jobs_submit(a->ctx, db, opts, to, &id, &e)) {
            reply(r, error_status(e.code), "%s", e.msg);
            return;
        }
        char detail[700];
        snprintf(detail, sizeof detail, "job %" PRId64 " submitted: to %.200s; options %.400s", id,
                 to, opts);
        api_audit(a, db, q->who, "job", "", "submitted", detail);
        reply(r, 201, "%" PRId64, id);
        return;
    }
    /* /ID[/action]: the digits of ID, then the rest */
    char idtxt[24] = "";
    size_t nd = *rest == '/' ? strspn(rest + 1, "0123456789") : 0;
    const char *end = rest + 1 + nd;
    long long id = 0;
    if (nd < sizeof idtxt)
        memcpy(idtxt, rest + 1, nd);
    if (sb_parse_i64(idtxt, 1, LLONG_MAX, &id)) {
        reply(r, 404, "no such route");
        return;
    }
    if (!*end && !strcmp(q->method, "GET")) {
        r->status = 200;
        r->type = q->json ? "application/json" : "text/plain";
        if (nd_view_job(db, id, &r->body, q->json, &e))
            reply(r, error_status(e.code), "%s", e.msg);
        return;
    }
    if (!strcmp(end, "/curves") && !strcmp(q->method, "GET")) {
        r->status = 200;
        r->type = "application/json";
        if (nd_curves_json(a->ctx->cfg.dir, id, &r->body, &e))
            reply(r, error_status(e.code), "%s", e.msg);
        return;
    }
    if (!strcmp(end, "/cancel") && !strcmp(q->method, "POST")) {
        if (nd_jobs_cancel(a->jobs, db, id, &e)) {
            reply(r, error_status(e.code), "%s", e.msg);
        } else {
            char detail[64];
            snprintf(detail, sizeof detail, "job %lld canceled", id);
            api_audit(a, db, q->who, "job", "", "canceled", detail);
            reply(r, 200, "job %lld canceled", id);
        }
        return;
    }
    reply(r, 404, "no such route");
}

static void r_peers(nd_admin *a, sqlite3 *db, const req *q, resp *r)
{
    sc_error e = {0, ""};
    if (!strcmp(q->method, "GET")) {
        r->status = 200;
        r->type = q->json ? "application/json" : "text/plain";
        if (nd_view_peers(a->ctx, db, &r->body, q->json, &e))
            reply(r, 500, "%s", e.msg);
        return;
    }
    char id[80], url[ND_URL_MAX], pins[ND_PINS_MAX];
    sc_peer p;
    if (body_field(q, "id", id, sizeof id) != 1 || body_field(q, "url", url, sizeof url) != 1 ||
        body_field(q, "pins", pins, sizeof pins) != 1) {
        reply(r, 400, "body: 'id:', 'url:' and 'pins:' lines");
        return;
    }
    if (a->ctx->trust->peer_get(a->ctx->trust, id, &p, &e) || !strcmp(id, a->ctx->self_id)) {
        reply(r, 404, "'%s' is not a known peer; add its keys first (sldd peer add --file)", id);
        return;
    }
    if (nd_peer_set(db, id, url, pins, "admin", &e)) {
        reply(r, error_status(e.code), "%s", e.msg);
        return;
    }
    nd_log(a->ctx, "info", "peer %s is at %s", id, url);
    char detail[ND_URL_MAX + ND_PINS_MAX + 32];
    snprintf(detail, sizeof detail, "address %s, TLS pins %s", url, pins);
    api_audit(a, db, q->who, "peer-change", id, "ok", detail);
    nd_wake(a->ctx, &a->ctx->wake_out, &a->ctx->pending_out);
    reply(r, 200, "peer %s: %s", id, url);
}

static void r_audit(nd_admin *a, sqlite3 *db, const req *q, resp *r, const char *rest)
{
    sc_error e = {0, ""};
    if (!strcmp(rest, "/verify")) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        nd_audit_report rep;
        if (!f) {
            reply(r, 500, "out of memory");
            return;
        }
        int rc = nd_audit_verify(db, a->ctx->cfg.dir, &rep, f, &e);
        fclose(f);
        if (rc) {
            free(text);
            reply(r, 500, "%s", e.msg);
            return;
        }
        r->status = rep.ok ? 200 : 409;
        r->type = "text/plain";
        nd_buf_add(&r->body, text, len);
        nd_buf_printf(&r->body, "%s: %" PRId64 " entries",
                      rep.ok ? "audit log intact" : "AUDIT LOG DAMAGED", rep.entries);
        if (rep.entries)
            nd_buf_printf(&r->body, ", last entry %" PRId64 " hash %s", rep.last_seq,
                          rep.last_hash);
        if (rep.anchor_present)
            nd_buf_printf(&r->body, "; anchor (%s) at entry %" PRId64, ND_AUDIT_HEAD_FILE,
                          rep.anchor_seq);
        nd_buf_str(&r->body, "\n");
        free(text);
        return;
    }
    if (*rest) {
        reply(r, 404, "no such route");
        return;
    }
    char lim[32], bundle[40];
    int64_t limit = 0;
    long long lv = 0;
    if (query_get(q->query, "limit", lim, sizeof lim)) {
        if (sb_parse_i64(lim, 0, LLONG_MAX, &lv)) {
            reply(r, 400, "limit '%s' is not a non-negative integer", lim);
            return;
        }
        limit = lv;
    }
    r->status = 200;
    r->type = q->json ? "application/json" : "text/plain";
    if (nd_audit_render(db, &r->body, q->json, limit,
                        query_get(q->query, "bundle", bundle, sizeof bundle), &e))
        reply(r, 500, "%s", e.msg);
}

static void route(nd_admin *a, sqlite3 *db, const req *q, resp *r)
{
    const char *p = q->path;
    if (!strncmp(p, "/v1/bundles", 11) && (p[11] == 0 || p[11] == '/')) {
        if (!p[11]) {
            if (strcmp(q->method, "GET"))
                reply(r, 405, "GET only");
            else
                r_bundles(a, db, q, r);
            return;
        }
        char idp[40];
        const char *s = p + 12, *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (n == 0 || n >= sizeof idp) {
            reply(r, 404, "no such bundle");
            return;
        }
        memcpy(idp, s, n);
        idp[n] = 0;
        r_bundle(a, db, q, r, idp, slash ? slash : "");
    } else if (!strncmp(p, "/v1/jobs", 8) && (p[8] == 0 || p[8] == '/')) {
        r_jobs(a, db, q, r, p + 8);
    } else if (!strcmp(p, "/v1/peers")) {
        r_peers(a, db, q, r);
    } else if (!strncmp(p, "/v1/audit", 9) && (p[9] == 0 || p[9] == '/')) {
        r_audit(a, db, q, r, p + 9);
    } else if (!strcmp(p, "/v1/status")) {
        r_status(a, db, q, r);
    } else if (!strcmp(p, "/v1/health")) {
        r_health(a, db, r);
    } else if (!strcmp(p, "/v1/metrics")) {
        r_metrics(a, db, r);
    } else if (!strcmp(p, "/v1/stop")) {
        if (strcmp(q->method, "POST"))
            reply(r, 405, "POST only");
        else
            r_stop(a, r);
    } else {
        reply(r, 404, "no such route: %s", p);
    }
}

int nd_admin_handle(nd_admin *a, sqlite3 *db, const char *who, const char *method, const char *path,
                    const char *query, const uint8_t *body, size_t len, int json, const char **type,
                    nd_buf *out)
{
    req q = {method, path, query ? query : "", body, len, json, who};
    resp r;
    r.status = 0;
    r.type = NULL;
    r.body = *out;
    route(a, db, &q, &r);
    if (!r.status)
        reply(&r, 500, "no answer");
    *out = r.body;
    *type = r.type ? r.type : "text/plain";
    return r.status;
}

/* ---------------------------------------------------------------- serving */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for ev on fd until the deadline (monotonic ms); reads also end at
 * the stop, writes do not (an answer whose work is done is still given). */
static int wait_io(nd_admin *a, int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return -1;
        struct pollfd p[2] = {{fd, ev, 0}, {a->stop_pipe[0], POLLIN, 0}};
        int r = poll(p, ev == POLLIN ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || p[1].revents)
            return -1;
        return 0;
    }
}

static int write_all(nd_admin *a, int fd, const void *p, size_t n, int64_t deadline)
{
    const char *s = p;
    while (n) {
        if (wait_io(a, fd, POLLOUT, deadline))
            return -1;
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One recv into buf[*got .. cap) once data is there: 0 read (or nothing yet),
 * 1 the deadline passed (or the node stops), -1 closed or failed. */
static int read_more(nd_admin *a, int fd, char *buf, size_t cap, size_t *got, int64_t deadline)
{
    if (wait_io(a, fd, POLLIN, deadline))
        return 1;
    ssize_t n = recv(fd, buf + *got, cap - *got, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0)
        return -1;
    *got += (size_t)n;
    return 0;
}

/* A short answer that needs no worker: the socket buffer takes it whole. */
static void answer_at_once(int fd, int status, const char *msg)
{
    char hb[512];
    int n = snprintf(hb, sizeof hb,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s\n",
                     status, sn_http_reason_phrase(status), strlen(msg) + 1, msg);
    if (n > 0 && (size_t)n < sizeof hb)
        (void)send(fd, hb, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Read one request (head, then body) until the connection's deadline. */
static void serve_one(nd_admin *a, sqlite3 *db, int fd, int64_t deadline, const char *who)
{
    nd_ctx *c = a->ctx;
    char head[HEAD_MAX + 1];
    size_t got = 0, hlen = 0;
    uint8_t *body = NULL;
    int timed_out = 0, r_io;
    resp r;
    memset(&r, 0, sizeof r);
    nd_buf_init(&r.body, c->cfg.base.max_bundle_bytes + 65536);
    while (!hlen) {
        if (got == HEAD_MAX) {
            reply(&r, 431, "request head too large");
            goto send;
        }
        size_t before = got;
        if ((r_io = read_more(a, fd, head, HEAD_MAX, &got, deadline))) {
            timed_out = r_io > 0;
            goto out;
        }
        for (size_t i = before < 3 ? 3 : before; i < got; i++)
            if (!memcmp(head + i - 3, "\r\n\r\n", 4)) {
                hlen = i + 1;
                break;
            }
    }
    sn_http_head h;
    char saved = head[hlen];
    int st = sn_http_parse_head(head, hlen, &h);
    if (st) {
        reply(&r, st, "%s", h.reason ? h.reason : "bad request");
        goto send;
    }
    size_t blen = h.content_length > 0 ? (size_t)h.content_length : 0;
    if (blen > c->cfg.base.max_bundle_bytes + 65536) {
        reply(&r, 413, "body too large");
        goto send;
    }
    body = malloc(blen + 1);
    if (!body) {
        reply(&r, 500, "out of memory");
        goto send;
    }
    size_t have = got - hlen;
    if (have > blen)
        have = blen;
    if (have) {
        head[hlen] = saved;
        memcpy(body, head + hlen, have);
    }
    while (have < blen)
        if ((r_io = read_more(a, fd, (char *)body, blen, &have, deadline))) {
            timed_out = r_io > 0;
            goto out;
        }
    char fmt[16];
    req q = {h.method, h.path, h.query, body, blen, 1, who};
    if (query_get(h.query, "format", fmt, sizeof fmt) && !strcmp(fmt, "text"))
        q.json = 0;
    r.status = 0;
    route(a, db, &q, &r);
    if (!r.status)
        reply(&r, 500, "no answer");
send:
    if (r.body.failed)
        reply(&r, 500, "answer too large");
    {
        /* the answer gets its own deadline: the work is done, give the
         * client the same time to take it */
        int64_t wdl = mono_ms() + ND_ADMIN_DEADLINE_MS;
        char hb[256];
        int n = snprintf(hb, sizeof hb,
                         "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n",
                         r.status, sn_http_reason_phrase(r.status), r.type ? r.type : "text/plain",
                         r.body.len);
        if (write_all(a, fd, hb, (size_t)n, wdl) == 0 && r.body.len)
            (void)write_all(a, fd, r.body.data, r.body.len, wdl);
    }
out:
    if (timed_out && !atomic_load(&c->stopping))
        nd_log(c, "warn", "admin API: no complete request within %d s; connection closed",
               ND_ADMIN_DEADLINE_MS / 1000);
    free(body);
    nd_buf_free(&r.body);
}

static void *worker_main(void *arg)
{
    nd_admin_worker *w = arg;
    nd_admin *a = w->a;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        while (!a->q_len && !a->stopping)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->stopping) {
            pthread_mutex_unlock(&a->mu);
            break;
        }
        int fd = a->q_fd[a->q_head];
        int64_t deadline = a->q_deadline[a->q_head];
        char who[200];
        nd_audit_cred_actor(a->q_uid[a->q_head], a->q_pid[a->q_head], who, sizeof who);
        a->q_head = (a->q_head + 1) % ND_ADMIN_MAX_CONN;
        a->q_len--;
        pthread_mutex_unlock(&a->mu);
        if (mono_ms() < deadline)
            serve_one(a, w->db, fd, deadline, who);
        else
            answer_at_once(fd, 503, "the admin API is busy; try again");
        close(fd);
        pthread_mutex_lock(&a->mu);
        a->active--;
        pthread_mutex_unlock(&a->mu);
    }
    return NULL;
}

/* Check the client, then queue it for a worker, or answer at once. */
static void admit(nd_admin *a, int fd)
{
    nd_ctx *c = a->ctx;
    struct ucred cred;
    socklen_t cl = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) || cl != sizeof cred ||
        (cred.uid != geteuid() && cred.uid != 0)) {
        nd_log(c, "warn", "admin API: refused a client running as uid %ld", (long)cred.uid);
        answer_at_once(fd, 403, "the admin API serves the user the node runs as");
        close(fd);
        return;
    }
    pthread_mutex_lock(&a->mu);
    int full = a->active >= ND_ADMIN_MAX_CONN;
    if (!full) {
        int slot = (a->q_head + a->q_len) % ND_ADMIN_MAX_CONN;
        a->q_fd[slot] = fd;
        a->q_deadline[slot] = mono_ms() + ND_ADMIN_DEADLINE_MS;
        a->q_uid[slot] = (unsigned)cred.uid;
        a->q_pid[slot] = (int)cred.pid;
        a->q_len++;
        a->active++;
        pthread_cond_signal(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    if (full) {
        nd_log(c, "warn", "admin API: %d connections open; one more refused", ND_ADMIN_MAX_CONN);
        answer_at_once(fd, 503, "the admin API is busy; try again");
        close(fd);
    }
}

static void *admin_main(void *arg)
{
    nd_admin *a = arg;
    for (;;) {
        struct pollfd p[2] = {{a->lfd, POLLIN, 0}, {a->stop_pipe[0], POLLIN, 0}};
        int r = poll(p, 2, -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            admit(a, fd);
    }
    return NULL;
}

static int start_threads(nd_admin *a, sc_error *e)
{
    int rc;
    if (pthread_mutex_init(&a->mu, NULL))
        return sc_error_set(e, SC_ENOMEM, "cannot start the admin API");
    if (pthread_cond_init(&a->cv, NULL)) {
        pthread_mutex_destroy(&a->mu);
        return sc_error_set(e, SC_ENOMEM, "cannot start the admin API");
    }
    a->sync_init = 1;
    for (int i = 0; i < ND_ADMIN_WORKERS; i++) {
        nd_admin_worker *w = &a->workers[i];
        w->a = a;
        if ((rc = nd_db_open(a->ctx->cfg.dir, 0, &w->db, e)))
            return rc;
        if (pthread_create(&w->thread, NULL, worker_main, w))
            return sc_error_set(e, SC_ENOMEM, "cannot start the admin API");
        w->started = 1;
    }
    if (pthread_create(&a->thread, NULL, admin_main, a))
        return sc_error_set(e, SC_ENOMEM, "cannot start the admin API");
    a->started = 1;
    return 0;
}

int nd_admin_start(nd_admin *a, nd_ctx *c, nd_jobs *jobs, int port, sc_error *e)
{
    struct sockaddr_un sa;
    int rc;
    memset(a, 0, sizeof *a);
    a->ctx = c;
    a->jobs = jobs;
    a->lfd = -1;
    a->stop_pipe[0] = a->stop_pipe[1] = -1;
    a->port = port;
    a->started_unix = nd_now_unix();
    if ((rc = sc_path_join(a->path, sizeof a->path, c->cfg.dir, ND_ADMIN_SOCKET, e)))
        return rc;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(a->path) >= sizeof sa.sun_path)
        return sc_error_set(e, SC_EINVAL,
                            "%s: path too long for a unix socket (%zu bytes at most); use a "
                            "shorter node directory path",
                            a->path, sizeof sa.sun_path - 1);
    memcpy(sa.sun_path, a->path, strlen(a->path) + 1);
    /* the daemon holds the node lock, so a socket file left here is stale */
    unlink(a->path);
    a->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    mode_t old = umask(0177); /* the socket file is created 0600 */
    int b = a->lfd >= 0 ? bind(a->lfd, (struct sockaddr *)&sa, sizeof sa) : -1;
    umask(old);
    if (b || listen(a->lfd, 16) || chmod(a->path, 0600) || pipe2(a->stop_pipe, O_CLOEXEC)) {
        rc = sc_error_set(e, SC_EIO, "admin socket %s: %s", a->path, strerror(errno));
        nd_admin_stop(a);
        return rc;
    }
    if ((rc = start_threads(a, e))) {
        nd_admin_stop(a);
        return rc;
    }
    return 0;
}

void nd_admin_stop(nd_admin *a)
{
    if (a->stop_pipe[1] >= 0) {
        char x = 1;
        /* wakes the acceptor and every worker waiting on a client */
        if (write(a->stop_pipe[1], &x, 1) != 1)
            nd_log(a->ctx, "error", "admin API: cannot signal the stop");
    }
    if (a->started)
        pthread_join(a->thread, NULL);
    a->started = 0;
    if (a->sync_init) {
        pthread_mutex_lock(&a->mu);
        a->stopping = 1;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
    for (int i = 0; i < ND_ADMIN_WORKERS; i++) {
        nd_admin_worker *w = &a->workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        w->started = 0;
        nd_db_close(w->db);
        w->db = NULL;
    }
    for (; a->q_len; a->q_len--, a->q_head = (a->q_head + 1) % ND_ADMIN_MAX_CONN)
        close(a->q_fd[a->q_head]);
    if (a->sync_init) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        a->sync_init = 0;
    }
    if (a->lfd >= 0) {
        close(a->lfd);
        unlink(a->path);
    }
    for (int i = 0; i < 2; i++)
        if (a->stop_pipe[i] >= 0)
            close(a->stop_pipe[i]);
    a->lfd = a->stop_pipe[0] = a->stop_pipe[1] = -1;
}
