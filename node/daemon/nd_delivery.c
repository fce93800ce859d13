/*
 * nd_delivery.c - the delivery worker: back-off, receipts, settling (see
 * nd_delivery.h).
 */
#include "nd_delivery.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "nd_approval.h"
#include "nd_audit.h"
#include "nd_log.h"
#include "nd_lifecycle.h"
#include "nd_objects.h"
#include "nd_receipt.h"
#include "nd_state.h"
#include "sc_util.h"
#include "sn_peer.h"

typedef struct due {
    char bid[33], peer[65], env_obj[65], payload_sha256[65];
    int attempts;
    int64_t sequence, expires;
} due;

int nd_delivery_settle(sqlite3 *db, const char *bid, sc_error *e)
{
    char state[32] = "";
    int64_t v;
    int queued, failed, found;
    int rc = nd_db_int(db, &v, &queued, e,
                       "SELECT 1 FROM deliveries WHERE bundle_id=? AND state='queued' LIMIT 1", "t",
                       bid);
    if (rc || queued)
        return rc;
    /* already settled: nothing moves */
    if ((rc = nd_db_text(db, state, sizeof state, &found, e, "SELECT state FROM bundles WHERE id=?",
                         "t", bid)) ||
        !found || nd_bundle_state_parse(state) != ND_BUNDLE_QUEUED)
        return rc;
    if ((rc = nd_db_int(db, &v, &failed, e,
                        "SELECT 1 FROM deliveries WHERE bundle_id=? AND state<>'delivered' LIMIT 1",
                        "t", bid)))
        return rc;
    nd_lifecycle_why why = {NULL,
                            NULL,
                            NULL,
                            NULL,
                            failed ? "not delivered to every recipient"
                                   : "delivered to every recipient",
                            NULL};
    return nd_lifecycle_move(db, bid, ND_BUNDLE_QUEUED,
                             failed ? ND_BUNDLE_FAILED : ND_BUNDLE_DELIVERED, &why, e);
}

static int finish(nd_delivery *o, const due *d, nd_dstate to, const char *error,
                  const char *receipt, size_t rlen, const char *detail)
{
    nd_ctx *c = o->ctx;
    sc_error e = {0, ""};
    const char *state = nd_delivery_state_name(to);
    int delivered = to == ND_DELIVERY_DELIVERED;
    nd_audit_entry send = {
        "node", "send", d->bid, d->payload_sha256, d->peer, delivered ? "ok" : state, detail};
    nd_audit_entry rec = {"node",
                          "receipt",
                          d->bid,
                          d->payload_sha256,
                          d->peer,
                          "ok",
                          "signed receipt verified and stored"};
    int rc = nd_delivery_move_allowed(ND_DELIVERY_QUEUED, to) ? 0 : SC_EINVAL;
    if (rc)
        sc_error_set(&e, rc, "queued -> %s is not a move of a delivery", state);
    if (rc || (rc = nd_db_begin(o->db, &e)) ||
        (rc = nd_db_run(o->db, &e,
                        "UPDATE deliveries SET state=?, attempts=attempts+1, last_error=?, "
                        "receipt=?, delivered_unix=? WHERE bundle_id=? AND peer=? AND state=?",
                        "ttbitt"
                        "t",
                        state, error ? error : "", (const void *)receipt, rlen,
                        delivered ? nd_now_unix() : (int64_t)0, d->bid, d->peer,
                        nd_delivery_state_name(ND_DELIVERY_QUEUED))) ||
        (sqlite3_changes(o->db) != 1 &&
         (rc = sc_error_set(&e, SC_EINVAL, "the delivery is no longer queued"))) ||
        (rc = nd_audit_append(o->db, &send, NULL, &e)) ||
        (delivered && (rc = nd_audit_append(o->db, &rec, NULL, &e))) ||
        (rc = nd_delivery_settle(o->db, d->bid, &e)) || (rc = nd_db_commit(o->db, &e))) {
        nd_db_rollback(o->db);
        nd_log(c, "error", "recording delivery of %.12s to %s: %s", d->bid, d->peer, e.msg);
        return rc;
    }
    if (nd_audit_anchor(o->db, c->cfg.dir, &e))
        nd_log(c, "error", "audit anchor: %s", e.msg);
    return 0;
}

static int retry_later(nd_delivery *o, const due *d, const char *why)
{
    nd_ctx *c = o->ctx;
    sc_error e = {0, ""};
    double u = (double)randombytes_random() / 4294967296.0;
    nd_settings s;
    nd_ctx_settings(c, &s);
    int64_t wait = nd_backoff_ms(s.retry_base_ms, s.retry_max_ms, d->attempts, u);
    nd_log(c, "info", "delivery of %.12s to %s failed (attempt %d): %s; next try in %.1f s", d->bid,
           d->peer, d->attempts + 1, why, (double)wait / 1000.0);
    int rc = nd_db_run(o->db, &e,
                       "UPDATE deliveries SET attempts=attempts+1, next_ms=?, last_error=? "
                       "WHERE bundle_id=? AND peer=? AND state='queued'",
                       "itt"
                       "t",
                       nd_now_ms() + wait, why, d->bid, d->peer);
    if (rc)
        nd_log(c, "error", "recording a retry: %s", e.msg);
    return rc;
}

static void deliver(nd_delivery *o, const due *d)
{
    nd_ctx *c = o->ctx;
    sc_error e = {0, ""};
    char url[ND_URL_MAX] = "", pins[ND_PINS_MAX] = "", why[600], detail[400];
    uint8_t *env = NULL, eh[32];
    size_t elen = 0;
    int found = 0;
    if (nd_now_unix() > d->expires) {
        finish(o, d, ND_DELIVERY_EXPIRED, "the bundle expired before it could be delivered", NULL,
               0, "expired before delivery");
        return;
    }
    if (nd_db_text(o->db, url, sizeof url, &found, &e, "SELECT url FROM peers WHERE id=?", "t",
                   d->peer) ||
        !found ||
        nd_db_text(o->db, pins, sizeof pins, &found, &e, "SELECT pins FROM peers WHERE id=?", "t",
                   d->peer)) {
        retry_later(o, d, found ? e.msg : "no address or TLS pin known for this peer");
        return;
    }
    if (nd_object_get(c->cfg.dir, d->env_obj, c->cfg.base.max_bundle_bytes, &env, &elen, &e)) {
        retry_later(o, d, e.msg);
        return;
    }
    sc_sha256(eh, env, elen);
    nd_test_hold(c, "deliver-before");
    sn_client_response resp;
    sn_delivery outcome;
    int rc = sn_peer_deliver(o->client, url, pins, env, elen, &resp, &outcome, &e);
    free(env);
    if (rc == 0) { /* answered: the envelope went out over a pinned connection */
        nd_metrics_bytes(&c->metrics, elen, 0);
        nd_metrics_contact(&c->metrics, d->peer);
    }
    if (outcome == SN_DELIVERED) {
        sc_peer p;
        nd_receipt r;
        char bid[33], ph[65];
        sc_error re = {0, ""};
        if (c->trust->peer_get(c->trust, d->peer, &p, &re) ||
            (nd_receipt_verify((const char *)resp.body, resp.body_len, p.sign_pk, &r, &re) &&
             /* a peer rotating its signing key may sign with the previous
              * one until its overlap ends (docs/keys.md) */
             (p.prev_until <= nd_now_unix() ||
              nd_receipt_verify((const char *)resp.body, resp.body_len, p.prev_sign_pk, &r,
                                &re)))) {
            snprintf(why, sizeof why, "bad receipt: %s", re.msg);
            retry_later(o, d, why);
        } else {
            nd_hex(bid, r.bundle_id, 16);
            nd_hex(ph, r.payload_sha256, 32);
            if (strcmp(r.receiver, d->peer) || strcmp(r.sender, c->self_id) ||
                strcmp(bid, d->bid) || strcmp(ph, d->payload_sha256) ||
                memcmp(r.envelope_sha256, eh, 32)) {
                retry_later(o, d, "receipt names another bundle, sender, receiver or envelope");
            } else {
                nd_test_hold(c, "deliver-after-receipt");
                snprintf(detail, sizeof detail, "delivered %zu-byte envelope to %s (attempt %d)",
                         elen, url, d->attempts + 1);
                if (finish(o, d, ND_DELIVERY_DELIVERED, NULL, (const char *)resp.body,
                           resp.body_len, detail) == 0)
                    nd_log(c, "info", "bundle %.12s delivered to %s; receipt verified", d->bid,
                           d->peer);
            }
        }
    } else if (outcome == SN_REFUSED) {
        snprintf(why, sizeof why, "HTTP %ld: %.*s", resp.status,
                 (int)(resp.body_len > 300 ? 300 : resp.body_len),
                 resp.body ? (char *)resp.body : "");
        for (char *p = why; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        snprintf(detail, sizeof detail, "refused by %s: %.300s", d->peer, why);
        nd_log(c, "warn", "bundle %.12s refused by %s: %s", d->bid, d->peer, why);
        finish(o, d, ND_DELIVERY_REFUSED, why, NULL, 0, detail);
    } else {
        if (rc)
            snprintf(why, sizeof why, "%s", e.msg);
        else
            snprintf(why, sizeof why, "HTTP %ld", resp.status);
        retry_later(o, d, why);
    }
    sn_client_response_free(&resp);
}

static void release_approved(nd_delivery *o)
{
    nd_ctx *c = o->ctx;
    sc_error e = {0, ""};
    char bid[65];
    int found = 0;
    for (int guard = 0; guard < 64 && !atomic_load(&c->stopping); guard++) {
        if (nd_db_text(o->db, bid, sizeof bid, &found, &e,
                       "SELECT id FROM bundles WHERE direction='out' AND state='approved' "
                       "ORDER BY sequence LIMIT 1",
                       "") ||
            !found)
            return;
        if (nd_approval_release(c, o->db, bid, &e)) {
            nd_log(c, "error", "releasing %.12s: %s", bid, e.msg);
            return;
        }
    }
}

/* Deliver what is due; returns the milliseconds until the next attempt. */
static int64_t deliver_due(nd_delivery *o)
{
    nd_ctx *c = o->ctx;
    sc_error e = {0, ""};
    sqlite3_stmt *st;
    due list[32];
    int n = 0;
    int64_t now = nd_now_ms(), next = 5000;
    /* per peer only the lowest queued sequence is eligible: receivers accept
     * increasing sequence numbers only */
    if (nd_db_prepare(o->db, &st, &e,
                      "SELECT d.bundle_id,d.peer,d.envelope_obj,d.attempts,d.sequence,d.next_ms,"
                      "b.payload_sha256,b.expires_unix FROM deliveries d JOIN bundles b ON "
                      "b.id=d.bundle_id WHERE d.state='queued' AND NOT EXISTS (SELECT 1 FROM "
                      "deliveries x WHERE x.peer=d.peer AND x.state='queued' AND "
                      "x.sequence<d.sequence) ORDER BY d.next_ms LIMIT 32",
                      "")) {
        nd_log(c, "error", "delivery: %s", e.msg);
        return next;
    }
    while (n < 32 && nd_db_step(st, &e) == 1) {
        int64_t at = nd_col_int(st, 5);
        if (at > now) {
            if (at - now < next)
                next = at - now;
            continue;
        }
        due *d = &list[n++];
        snprintf(d->bid, sizeof d->bid, "%s", nd_col_text(st, 0));
        snprintf(d->peer, sizeof d->peer, "%s", nd_col_text(st, 1));
        snprintf(d->env_obj, sizeof d->env_obj, "%s", nd_col_text(st, 2));
        d->attempts = sqlite3_column_int(st, 3);
        d->sequence = nd_col_int(st, 4);
        snprintf(d->payload_sha256, sizeof d->payload_sha256, "%s", nd_col_text(st, 6));
        d->expires = nd_col_int(st, 7);
    }
    nd_db_finalize(st);
    for (int i = 0; i < n && !atomic_load(&c->stopping); i++)
        deliver(o, &list[i]);
    return n ? 0 : next;
}

/* ---------------------------------------------------------------- re-send */

typedef struct refused_row {
    char peer[65], env_obj[65], error[200];
} refused_row;

/* The refused deliveries of bid (to peer only, when given) into out[]. */
static int refused_rows(sqlite3 *db, const char *bid, const char *peer, refused_row *out,
                        size_t max, size_t *n, sc_error *e)
{
    sqlite3_stmt *st;
    int rc = nd_db_prepare(db, &st, e,
                           "SELECT peer,envelope_obj,last_error FROM deliveries WHERE "
                           "bundle_id=? AND state='refused' AND (?='' OR peer=?) ORDER BY peer",
                           "ttt", bid, peer ? peer : "", peer ? peer : "");
    *n = 0;
    if (rc)
        return rc;
    while (*n < max && (rc = nd_db_step(st, e)) == 1) {
        refused_row *r = &out[(*n)++];
        snprintf(r->peer, sizeof r->peer, "%s", nd_col_text(st, 0));
        snprintf(r->env_obj, sizeof r->env_obj, "%s", nd_col_text(st, 1));
        snprintf(r->error, sizeof r->error, "%s", nd_col_text(st, 2));
        rc = 0;
    }
    nd_db_finalize(st);
    return rc < 0 ? rc : 0;
}

/* One refused delivery queued again with its envelope as sealed, unless
 * the peer can no longer take it. */
static int resend_one(nd_ctx *c, sqlite3 *db, const char *bid, int64_t seq, const refused_row *r,
                      const char *who, sc_error *e)
{
    int64_t later;
    int found, rc;
    char detail[400];
    if (strlen(r->env_obj) != 64)
        return sc_error_set(e, SC_EPERM,
                            "no envelope was ever sealed for %s (%.150s): there are no approved "
                            "bytes to re-send; run a new distillation job",
                            r->peer, r->error);
    if ((rc = nd_object_check(c->cfg.dir, r->env_obj, e)))
        return rc;
    /* the receiver accepts increasing sequence numbers only */
    if ((rc = nd_db_int(db, &later, &found, e,
                        "SELECT sequence FROM deliveries WHERE peer=? AND state='delivered' AND "
                        "sequence>? ORDER BY sequence DESC LIMIT 1",
                        "ti", r->peer, seq)))
        return rc;
    if (found)
        return sc_error_set(e, SC_EPERM,
                            "%s has since accepted a later bundle (sequence %" PRId64
                            ") and would refuse this one (sequence %" PRId64
                            ") as a replay; run a new distillation job",
                            r->peer, later, seq);
    snprintf(detail, sizeof detail,
             "re-send to %.64s of the envelope sealed at approval (sha256 %.16s...); refused "
             "before: %.199s",
             r->peer, r->env_obj, r->error);
    nd_lifecycle_why why = {who, "resend", r->peer, "queued", detail, NULL};
    if ((rc = nd_delivery_move(db, bid, r->peer, ND_DELIVERY_REFUSED, ND_DELIVERY_QUEUED, "", &why,
                               e)))
        return rc;
    return nd_db_run(db, e,
                     "UPDATE deliveries SET attempts=0, next_ms=0 WHERE bundle_id=? AND peer=?",
                     "tt", bid, r->peer);
}

int nd_delivery_resend(nd_ctx *c, sqlite3 *db, const char *bid, const char *peer, const char *who,
                       nd_resend_result *res, sc_error *e)
{
    refused_row rows[64];
    char state[32] = "";
    int64_t seq = 0, expires = 0;
    size_t n = 0;
    int found = 0, rc;
    memset(res, 0, sizeof *res);
    if ((rc = nd_db_begin(db, e)))
        return rc;
    if ((rc = nd_db_text(db, state, sizeof state, &found, e,
                         "SELECT state FROM bundles WHERE id=? AND direction='out'", "t", bid)) ||
        (!found && (rc = sc_error_set(e, SC_ENOTFOUND, "no outbound bundle %s", bid))) ||
        (rc =
             nd_db_int(db, &seq, &found, e, "SELECT sequence FROM bundles WHERE id=?", "t", bid)) ||
        (rc = nd_db_int(db, &expires, &found, e, "SELECT expires_unix FROM bundles WHERE id=?", "t",
                        bid)))
        goto out;
    nd_bstate bs = nd_bundle_state_parse(state);
    if (bs != ND_BUNDLE_QUEUED && bs != ND_BUNDLE_FAILED) {
        rc = sc_error_set(e, SC_EINVAL,
                          "bundle %.12s is %s: only a refused delivery of a sent "
                          "bundle can be re-sent",
                          bid, state);
        goto out;
    }
    if (nd_now_unix() > expires) {
        rc = sc_error_set(e, SC_EPERM,
                          "bundle %.12s has expired: it cannot be re-sent; run a new "
                          "distillation job",
                          bid);
        goto out;
    }
    if ((rc = nd_approval_may_resend(c, db, bid, e)) ||
        (rc = refused_rows(db, bid, peer, rows, sizeof rows / sizeof rows[0], &n, e)))
        goto out;
    if (!n) {
        rc = sc_error_set(e, SC_EINVAL, "bundle %.12s has no refused delivery%s%s to re-send", bid,
                          peer ? " to " : "", peer ? peer : "");
        goto out;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        /* without a peer named, every refused delivery that has an envelope */
        if (!peer && strlen(rows[i].env_obj) != 64)
            continue;
        if (!(rc = resend_one(c, db, bid, seq, &rows[i], who, e))) {
            size_t o = strlen(res->peers);
            snprintf(res->peers + o, sizeof res->peers - o, "%s%s", res->n ? "," : "",
                     rows[i].peer);
            res->n++;
        }
    }
    if (!rc && !res->n)
        rc = sc_error_set(e, SC_EPERM,
                          "no envelope was ever sealed for the refused recipients "
                          "of %.12s: there are no approved bytes to re-send",
                          bid);
    if (!rc && bs == ND_BUNDLE_FAILED) {
        nd_lifecycle_why why = {who, "resend", NULL, "queued", "failed -> queued (re-send)", NULL};
        rc = nd_lifecycle_move(db, bid, ND_BUNDLE_FAILED, ND_BUNDLE_QUEUED, &why, e);
    }
out:
    if ((rc = nd_approval_tx_end(c, db, rc, e)))
        return rc;
    nd_log(c, "info", "bundle %.12s re-sent to %s by %s", bid, res->peers, who);
    nd_wake(c, &c->wake_out, &c->pending_out);
    return 0;
}

static void *delivery_main(void *arg)
{
    nd_delivery *o = arg;
    nd_ctx *c = o->ctx;
    while (!atomic_load(&c->stopping)) {
        release_approved(o);
        int64_t wait = deliver_due(o);
        int64_t rwait = nd_roster_push(c, o->db, o->client, &o->roster);
        if (rwait < wait)
            wait = rwait;
        if (wait > 0)
            nd_wait(c, &c->wake_out, &c->pending_out, wait < 10 ? 10 : wait);
    }
    return NULL;
}

int nd_delivery_start(nd_delivery *o, nd_ctx *c, sc_error *e)
{
    int rc;
    memset(o, 0, sizeof *o);
    o->ctx = c;
    sn_client_config cc;
    memset(&cc, 0, sizeof cc);
    cc.cert_file = c->cfg.tls_cert;
    cc.key_file = c->cfg.tls_key;
    cc.ca_file = c->cfg.tls_ca;
    cc.connect_timeout_ms = 10000;
    cc.total_timeout_ms = 120000;
    cc.max_response_bytes = 65536;
    if ((rc = sn_client_create(&o->client, &cc, e)))
        return rc;
    if ((rc = nd_db_open(c->cfg.dir, 0, &o->db, e))) {
        sn_client_destroy(o->client);
        return rc;
    }
    if (pthread_create(&o->thread, NULL, delivery_main, o)) {
        nd_db_close(o->db);
        sn_client_destroy(o->client);
        return sc_error_set(e, SC_ENOMEM, "cannot start the delivery worker");
    }
    o->started = 1;
    return 0;
}

void nd_delivery_join(nd_delivery *o)
{
    if (o->started)
        pthread_join(o->thread, NULL);
    o->started = 0;
    nd_db_close(o->db);
    sn_client_destroy(o->client);
    o->db = NULL;
    o->client = NULL;
}
