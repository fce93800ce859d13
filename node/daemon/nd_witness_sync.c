/*
 * nd_witness_sync.c - sending this node's audit head to its peers and
 * keeping theirs (see nd_witness_sync.h).
 */
#include "nd_witness_sync.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "nd_audit.h"
#include "nd_state.h"
#include "nd_witness.h"

#define TICK_MS         1000
#define FINAL_BUDGET_MS 15000 /* the final head: one try per peer within this */

static int sending_on(nd_ctx *c)
{
    nd_settings s;
    nd_ctx_settings(c, &s);
    return s.witness_every_entries > 0 || s.witness_every_seconds > 0;
}

/* ---------------------------------------------------------------- keeping */

static void refuse(nd_witness_sync *w, const sn_audit_head_in *in, sn_response *resp, int status,
                   const char *why)
{
    nd_ctx *c = w->ctx;
    sc_error e = {0, ""};
    char detail[700], actor[80];
    snprintf(detail, sizeof detail, "audit head from %s (%zu bytes): %s",
             in->peer_addr ? in->peer_addr : "?", in->body_len, why);
    snprintf(actor, sizeof actor, "peer:%s", in->sender_node_id);
    nd_metrics_refusal(&c->metrics, "audit-head");
    nd_log(c, "warn", "refused an audit head of %s: %s", in->sender_node_id, detail);
    nd_audit_entry en = {actor, "refusal", "", "", in->sender_node_id, "refused", detail};
    if (nd_audit_append(w->loop_db, &en, NULL, &e) || nd_audit_anchor(w->loop_db, c->cfg.dir, &e))
        nd_log(c, "error", "audit: %s", e.msg);
    if (sn_response_printf(resp, status, NULL, "%d %s: %s\n", status, sn_http_reason_phrase(status),
                           why) != 0)
        resp->status = status;
}

void nd_witness_on_head(void *arg, const sn_audit_head_in *in, sn_response *resp)
{
    nd_witness_sync *w = arg;
    nd_ctx *c = w->ctx;
    sc_error e = {0, ""};
    nd_witness_result res;
    sc_peer p;
    if (c->trust->peer_get(c->trust, in->sender_node_id, &p, &e)) {
        refuse(w, in, resp, 403, "the sender's signing key is not known");
        return;
    }
    int rc =
        nd_witness_store(w->loop_db, in->sender_node_id, p.sign_pk, (const char *)in->body,
                         in->body_len, nd_now_unix(), c->cfg.base.clock_skew_seconds, &res, &e);
    /* during the sender's signing-key rotation, its previous key */
    if (rc == SC_EREFUSE_NODE_SIG && p.prev_until > nd_now_unix())
        rc =
            nd_witness_store(w->loop_db, in->sender_node_id, p.prev_sign_pk, (const char *)in->body,
                             in->body_len, nd_now_unix(), c->cfg.base.clock_skew_seconds, &res, &e);
    switch (rc) {
    case 0: break;
    case SC_EFORMAT: refuse(w, in, resp, 400, e.msg); return;
    case SC_EPERM: refuse(w, in, resp, 403, e.msg); return;
    case SC_EREFUSE_NODE_SIG:
    case SC_EREFUSE_FUTURE: refuse(w, in, resp, 422, e.msg); return;
    default:
        nd_log(c, "error", "keeping an audit head of %s: %s", in->sender_node_id, e.msg);
        if (sn_response_printf(resp, 503, NULL, "503 Service Unavailable: try later\n") != 0 ||
            sn_response_add_header(resp, "Retry-After", "30") != 0)
            resp->status = 503;
        return;
    }
    if (res.verdict == ND_WITNESS_CONFLICT || res.verdict == ND_WITNESS_BACKWARDS) {
        refuse(w, in, resp, 409, res.reason);
        return;
    }
    if (res.verdict == ND_WITNESS_FULL) {
        refuse(w, in, resp, 507, res.reason);
        return;
    }
    int dup = res.verdict == ND_WITNESS_DUPLICATE;
    if (!dup)
        nd_log(c, "info", "kept the audit head of %s at entry %" PRId64, res.head.node,
               res.head.seq);
    if (sn_response_printf(resp, 200, NULL, "%s the audit head of %s at entry %" PRId64 "\n",
                           dup ? "already kept" : "kept", res.head.node, res.head.seq) != 0)
        resp->status = 500;
}

/* ---------------------------------------------------------------- sending */

static nd_witness_peer *peer_state(nd_witness_sync *w, const char *id)
{
    for (size_t i = 0; i < w->n_peers; i++)
        if (!strcmp(w->peers[i].id, id))
            return &w->peers[i];
    if (w->n_peers == ND_WITNESS_PEERS)
        return NULL;
    nd_witness_peer *p = &w->peers[w->n_peers++];
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    return p;
}

static void send_one(nd_witness_sync *w, nd_witness_peer *p, const char *url, const char *pins)
{
    nd_ctx *c = w->ctx;
    sc_error e = {0, ""};
    sn_client_response resp;
    sn_delivery out;
    int rc = sn_peer_send_audit_head(w->client, url, pins, w->head, w->head_len, &resp, &out, &e);
    const char *body = resp.body ? (const char *)resp.body : "";
    int blen = (int)(resp.body_len > 300 ? 300 : resp.body_len);
    if (out == SN_DELIVERED) {
        p->acked_seq = w->head_seq;
        p->attempts = 0;
        nd_log(c, "info", "audit head at entry %" PRId64 " witnessed by %s", w->head_seq, p->id);
    } else if (out == SN_REFUSED) {
        p->refused_seq = w->head_seq;
        nd_log(c, "warn",
               "%s refused to witness the audit head at entry %" PRId64 ": HTTP %ld %.*s", p->id,
               w->head_seq, resp.status, blen, body);
    } else {
        nd_settings s;
        nd_ctx_settings(c, &s);
        p->attempts++;
        p->next_ms = nd_now_ms() + nd_backoff_ms(s.retry_base_ms, s.retry_max_ms, p->attempts,
                                                 randombytes_uniform(1000000) / 1e6);
        if (p->attempts == 1)
            nd_log(c, "info", "audit head not sent to %s yet: %s", p->id,
                   rc ? e.msg : "the peer answered 5xx or 429");
    }
    sn_client_response_free(&resp);
}

/* The current head to every peer with an address that still needs it.
 * final: ignore back-off, one try each within FINAL_BUDGET_MS. */
static void send_all(nd_witness_sync *w, int final)
{
    nd_ctx *c = w->ctx;
    sc_error e = {0, ""};
    sqlite3_stmt *st;
    int64_t start = nd_now_ms();
    if (!w->head)
        return;
    if (nd_db_prepare(w->db, &st, &e, "SELECT id, url, pins FROM peers ORDER BY id", "")) {
        nd_log(c, "error", "witness: %s", e.msg);
        return;
    }
    while (nd_db_step(st, &e) == 1) {
        if (!final && atomic_load(&c->stopping))
            break;
        if (final && nd_now_ms() - start > FINAL_BUDGET_MS) {
            nd_log(c, "warn", "final audit head: out of time; remaining peers not told");
            break;
        }
        char url[ND_URL_MAX], pins[ND_PINS_MAX];
        sc_peer known;
        nd_witness_peer *p = peer_state(w, nd_col_text(st, 0));
        if (!p || p->acked_seq >= w->head_seq || p->refused_seq == w->head_seq ||
            (!final && nd_now_ms() < p->next_ms) ||
            c->trust->peer_get(c->trust, p->id, &known, NULL))
            continue;
        snprintf(url, sizeof url, "%s", nd_col_text(st, 1));
        snprintf(pins, sizeof pins, "%s", nd_col_text(st, 2));
        if (!*url || !*pins)
            continue;
        send_one(w, p, url, pins);
    }
    nd_db_finalize(st);
}

/* Sign the current head when it is due (always when force and it moved). */
static void maybe_sign(nd_witness_sync *w, int force)
{
    nd_ctx *c = w->ctx;
    sc_error e = {0, ""};
    nd_audit_head h;
    int64_t now_ms = nd_now_ms();
    if (nd_audit_head_current(w->db, c->self_id, nd_now_unix(), &h, &e)) {
        nd_log(c, "error", "witness: reading the audit head: %s", e.msg);
        return;
    }
    if (h.seq == 0 || h.seq == w->head_seq)
        return;
    nd_settings set;
    nd_ctx_settings(c, &set);
    int64_t n = set.witness_every_entries, s = set.witness_every_seconds;
    int due = force || !w->head || (n > 0 && h.seq - w->head_seq >= n) ||
              (s > 0 && now_ms - w->head_ms >= s * 1000);
    if (!due)
        return;
    char *text = NULL;
    size_t len = 0;
    if (nd_audit_head_sign(&h, c->keys->sign_sk, &text, &len, &e)) {
        nd_log(c, "error", "witness: signing the audit head: %s", e.msg);
        return;
    }
    free(w->head);
    w->head = text;
    w->head_len = len;
    w->head_seq = h.seq;
    w->head_ms = now_ms;
}

static void *witness_main(void *arg)
{
    nd_witness_sync *w = arg;
    nd_ctx *c = w->ctx;
    while (!atomic_load(&c->stopping)) {
        maybe_sign(w, 0);
        send_all(w, 0);
        nd_wait(c, &w->wake, &w->pending, TICK_MS);
    }
    return NULL;
}

int nd_witness_sync_start(nd_witness_sync *w, nd_ctx *c, sqlite3 *loop_db, sc_error *e)
{
    int rc;
    memset(w, 0, sizeof *w);
    w->ctx = c;
    w->loop_db = loop_db;
    if ((rc = nd_witness_schema(loop_db, e)))
        return rc;
    if (!sending_on(c)) {
        nd_log(c, "info", "witness: sending the audit head to peers is off");
        return 0;
    }
    sn_client_config cc;
    memset(&cc, 0, sizeof cc);
    cc.cert_file = c->cfg.tls_cert;
    cc.key_file = c->cfg.tls_key;
    cc.ca_file = c->cfg.tls_ca;
    cc.connect_timeout_ms = 5000;
    cc.total_timeout_ms = 15000;
    cc.max_response_bytes = 4096;
    if ((rc = sn_client_create(&w->client, &cc, e)))
        return rc;
    if ((rc = nd_db_open(c->cfg.dir, 0, &w->db, e)))
        goto fail;
    if (pthread_cond_init(&w->wake, NULL)) {
        rc = sc_error_set(e, SC_ENOMEM, "witness: pthread_cond_init failed");
        goto fail;
    }
    if (pthread_create(&w->thread, NULL, witness_main, w)) {
        pthread_cond_destroy(&w->wake);
        rc = sc_error_set(e, SC_ENOMEM, "cannot start the witness sender");
        goto fail;
    }
    w->started = 1;
    return 0;
fail:
    nd_db_close(w->db);
    sn_client_destroy(w->client);
    w->db = NULL;
    w->client = NULL;
    return rc;
}

void nd_witness_sync_stop(nd_witness_sync *w)
{
    if (!w->started)
        return;
    nd_wake(w->ctx, &w->wake, &w->pending);
    pthread_join(w->thread, NULL);
    w->started = 0;
    maybe_sign(w, 1);
    send_all(w, 1);
    pthread_cond_destroy(&w->wake);
    nd_db_close(w->db);
    sn_client_destroy(w->client);
    free(w->head);
    w->db = NULL;
    w->client = NULL;
    w->head = NULL;
}
