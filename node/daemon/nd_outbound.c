/*
 * nd_outbound.c - admin decisions, the release gate and delivery with
 * back-off and receipts (see nd_outbound.h).
 */
#include "nd_outbound.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "nd_audit.h"
#include "nd_buf.h"
#include "nd_objects.h"
#include "nd_receipt.h"
#include "nd_state.h"
#include "sc_envelope.h"
#include "sc_sign.h"
#include "sc_util.h"
#include "sn_peer.h"
#include "sp_budget.h"

#define MAX_RECIPIENTS 64

typedef struct out_row {
    char direction[8], state[24], payload_sha256[65], statement_obj[65], approved_obj[65];
    char audience[1024], privacy[64];
    int64_t sequence, expires;
} out_row;

static int load_row(sqlite3 *db, const char *bid, out_row *r, sc_error *e)
{
    sqlite3_stmt *st;
    int rc;
    memset(r, 0, sizeof *r);
    if ((rc = nd_db_prepare(db, &st, e,
                            "SELECT direction,state,payload_sha256,statement_obj,"
                            "COALESCE(approved_obj,''),audience,privacy_verdict,sequence,"
                            "expires_unix FROM bundles WHERE id=?",
                            "t", bid)))
        return rc;
    rc = nd_db_step(st, e);
    if (rc == 1) {
        snprintf(r->direction, sizeof r->direction, "%s", nd_col_text(st, 0));
        snprintf(r->state, sizeof r->state, "%s", nd_col_text(st, 1));
        snprintf(r->payload_sha256, sizeof r->payload_sha256, "%s", nd_col_text(st, 2));
        snprintf(r->statement_obj, sizeof r->statement_obj, "%s", nd_col_text(st, 3));
        snprintf(r->approved_obj, sizeof r->approved_obj, "%s", nd_col_text(st, 4));
        snprintf(r->audience, sizeof r->audience, "%s", nd_col_text(st, 5));
        snprintf(r->privacy, sizeof r->privacy, "%s", nd_col_text(st, 6));
        r->sequence = nd_col_int(st, 7);
        r->expires = nd_col_int(st, 8);
        rc = 0;
    } else if (rc == 0) {
        rc = sc_error_set(e, SC_ENOTFOUND, "no bundle %s", bid);
    }
    nd_db_finalize(st);
    return rc;
}

/* Commit the open transaction when rc is 0 (and anchor the audit log it
 * wrote to), roll it back otherwise; rc, or the commit's error. */
static int end_transaction(nd_ctx *c, sqlite3 *db, int rc, sc_error *e)
{
    if (rc) {
        nd_db_rollback(db);
        return rc;
    }
    if ((rc = nd_db_commit(db, e)))
        return rc;
    sc_error ae = {0, ""};
    if (nd_audit_anchor(db, c->cfg.dir, &ae))
        nd_log(c, "error", "audit anchor: %s", ae.msg);
    return 0;
}

static size_t need_admins(const nd_ctx *c)
{
    /* nothing leaves without at least one approval, whatever node.conf says */
    return c->cfg.base.min_admin_approvals > 0 ? c->cfg.base.min_admin_approvals : 1;
}

/* ---------------------------------------------------------------- decisions */

typedef struct decision {
    char admin[65];
    int decision;
    int64_t time;
} decision;

/* The admin decisions in st that are valid for this node and payload. */
static size_t valid_decisions(const Sldd__V1__Statement *st, const sc_peer *self,
                              const uint8_t hash[32], decision *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < st->n_signatures && n < max; i++) {
        const Sldd__V1__Signature *s = st->signatures[i];
        if (s->role != SLDD__V1__SIGNER_ROLE__SIGNER_ROLE_ADMIN || s->sig.len != 64 ||
            !s->approval.len)
            continue;
        const sc_admin_pub *pub = NULL;
        for (size_t k = 0; k < self->n_admins; k++)
            if (!strcmp(self->admins[k].name, s->signer_id))
                pub = &self->admins[k];
        if (!pub)
            continue;
        uint8_t kid[32];
        sc_key_id(kid, pub->pk);
        if (s->key_id.len != 32 || memcmp(kid, s->key_id.data, 32) ||
            sc_pae_verify(s->sig.data, SC_TYPE_APPROVAL, s->approval.data, s->approval.len,
                          pub->pk))
            continue;
        Sldd__V1__Approval *ap =
            sldd__v1__approval__unpack(NULL, s->approval.len, s->approval.data);
        if (!ap)
            continue;
        int ok = ap->payload_sha256.len == 32 && !memcmp(ap->payload_sha256.data, hash, 32) &&
                 ap->node_id && !strcmp(ap->node_id, self->id) && ap->admin_id &&
                 !strcmp(ap->admin_id, pub->name) &&
                 (ap->decision == SLDD__V1__DECISION__DECISION_APPROVE ||
                  ap->decision == SLDD__V1__DECISION__DECISION_REJECT);
        if (ok) {
            int dup = 0;
            for (size_t k = 0; k < n; k++)
                dup |= !strcmp(out[k].admin, pub->name) && out[k].decision == (int)ap->decision;
            if (!dup) {
                snprintf(out[n].admin, sizeof out[n].admin, "%s", pub->name);
                out[n].decision = ap->decision;
                out[n].time = ap->time_unix;
                n++;
            }
        }
        sldd__v1__approval__free_unpacked(ap, NULL);
    }
    return n;
}

int nd_outbound_decide(nd_ctx *c, sqlite3 *db, const char *bid, const uint8_t *stb, size_t len,
                       nd_decision_result *res, sc_error *e)
{
    out_row row;
    sp_budget bud;
    Sldd__V1__Statement *st = NULL;
    sc_peer self;
    decision dec[SC_MAX_ADMINS_PER_NODE];
    uint8_t hash[32];
    char hex[65], obj[65] = "";
    int rc;
    memset(res, 0, sizeof *res);
    res->need = need_admins(c);
    if ((rc = load_row(db, bid, &row, e)))
        return rc;
    if (strcmp(row.direction, "out"))
        return sc_error_set(e, SC_EINVAL, "bundle %.12s was received from a peer; only this "
                                          "node's own bundles are approved here", bid);
    if (strcmp(row.state, "pending"))
        return sc_error_set(e, SC_EINVAL, "bundle %.12s is %s, not pending approval", bid,
                            row.state);
    sp_budget_init(&bud, len + 65536);
    if ((rc = sc_statement_parse(stb, len, &bud, &st, e)))
        return rc;
    sc_sha256(hash, st->payload.data, st->payload.len);
    nd_hex(hex, hash, 32);
    if (strcmp(hex, row.payload_sha256)) {
        rc = sc_error_set(e, SC_EINVAL, "the decision is for payload %.16s..., bundle %.12s is "
                                        "payload %.16s...",
                          hex, bid, row.payload_sha256);
        goto out;
    }
    if ((rc = c->trust->peer_get(c->trust, c->self_id, &self, e)))
        goto out;
    size_t nd = valid_decisions(st, &self, hash, dec, SC_MAX_ADMINS_PER_NODE);
    size_t n_app = 0, n_rej = 0;
    for (size_t i = 0; i < nd; i++) {
        if (dec[i].decision == SLDD__V1__DECISION__DECISION_REJECT)
            n_rej++;
        else
            n_app++;
        size_t o = strlen(res->admins);
        snprintf(res->admins + o, sizeof res->admins - o, "%s%s", o ? "," : "", dec[i].admin);
    }
    if (!nd) {
        rc = sc_error_set(e, SC_EPERM, "no valid decision by an admin of node %s in the statement",
                          c->self_id);
        goto out;
    }
    res->n_admins = n_app;
    res->rejected = n_rej > 0;
    if (!n_rej && n_app >= res->need) {
        /* the privacy policy of node.conf can forbid the release */
        if ((c->cfg.privacy == ND_PRIVACY_BLOCK && !strcmp(row.privacy, "block")) ||
            (c->cfg.privacy == ND_PRIVACY_REQUIRE && strcmp(row.privacy, "pass") &&
             strcmp(row.privacy, "warn"))) {
            rc = sc_error_set(e, SC_EPERM,
                              "privacy policy '%s' forbids releasing a bundle whose privacy audit "
                              "verdict is '%s'",
                              nd_privacy_policy_name(c->cfg.privacy),
                              row.privacy[0] ? row.privacy : "none");
            goto out;
        }
        /* receivers accept sequence numbers in increasing order only */
        int64_t later;
        int found;
        if ((rc = nd_db_int(db, &later, &found, e,
                            "SELECT sequence FROM bundles WHERE direction='out' AND sequence>? "
                            "AND state IN ('approved','queued','delivered','failed') LIMIT 1",
                            "i", row.sequence)))
            goto out;
        if (found) {
            rc = sc_error_set(e, SC_EINVAL,
                              "a later bundle (sequence %" PRId64 ") was already released; "
                              "receivers would refuse this one (sequence %" PRId64
                              ") as a replay. Run a new distillation job instead.",
                              later, row.sequence);
            goto out;
        }
        sc_verify_result vr;
        if ((rc = sc_statement_verify(st, &self, res->need, &vr, e)))
            goto out;
        res->approved = 1;
    }
    if (!n_rej && (rc = nd_object_put(c->cfg.dir, stb, len, obj, e)))
        goto out;
    if ((rc = nd_db_begin(db, e)))
        goto out;
    int64_t now = nd_now_unix();
    for (size_t i = 0; i < nd && !rc; i++) {
        int rej = dec[i].decision == SLDD__V1__DECISION__DECISION_REJECT;
        int64_t seen = 0;
        int found = 0;
        rc = nd_db_int(db, &seen, &found, e,
                       "SELECT 1 FROM approvals WHERE bundle_id=? AND admin=? AND decision=?",
                       "ttt", bid, dec[i].admin, rej ? "reject" : "approve");
        if (rc || found)
            continue;
        char actor[96], detail[200];
        snprintf(actor, sizeof actor, "admin:%.64s", dec[i].admin);
        if (rej)
            snprintf(detail, sizeof detail, "rejected; nothing will be sent");
        else
            snprintf(detail, sizeof detail, "approval %zu of %zu needed, signed at %" PRId64, n_app,
                     res->need, dec[i].time);
        nd_audit_entry en = {actor, rej ? "rejection" : "approval", bid, row.payload_sha256, "",
                             rej ? "rejected" : (res->approved ? "approved" : "partial"), detail};
        rc = nd_db_run(db, e,
                       "INSERT OR REPLACE INTO approvals(bundle_id,admin,decision,payload_sha256,"
                       "time_unix) VALUES(?,?,?,?,?)",
                       "tttti", bid, dec[i].admin,
                       rej ? "reject" : "approve", row.payload_sha256, now);
        if (!rc)
            rc = nd_audit_append(db, &en, NULL, e);
    }
    if (!rc)
        rc = nd_db_run(db, e,
                       "UPDATE bundles SET state=?, approved_obj=COALESCE(?,approved_obj), "
                       "updated_unix=? WHERE id=? AND state='pending'",
                       "ttit", n_rej ? "rejected" : res->approved ? "approved" : "pending",
                       obj[0] ? obj : NULL, now, bid);
    rc = end_transaction(c, db, rc, e);
    if (!rc) {
        nd_log(c, "info", "bundle %.12s %s by %s", bid,
               n_rej ? "REJECTED" : res->approved ? "APPROVED" : "partly approved", res->admins);
        if (res->approved)
            nd_wake(c, &c->wake_out, &c->pending_out);
    }
out:
    protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(&bud));
    return rc;
}

/* ---------------------------------------------------------------- the gate */

static int settle_bundle(sqlite3 *db, const char *bid, sc_error *e);

int nd_outbound_release(nd_ctx *c, sqlite3 *db, const char *bid, sc_error *e)
{
    out_row row;
    uint8_t *stb = NULL, hash[32];
    size_t len = 0;
    sp_budget bud;
    Sldd__V1__Statement *st = NULL;
    sc_peer self;
    sc_verify_result vr;
    char hex[65];
    char *recips[MAX_RECIPIENTS], objs[MAX_RECIPIENTS][65], errs[MAX_RECIPIENTS][200];
    size_t sizes[MAX_RECIPIENTS], n = 0;
    int rc;
    if ((rc = load_row(db, bid, &row, e)))
        return rc;
    if (strcmp(row.direction, "out") || strcmp(row.state, "approved") || !row.approved_obj[0])
        return sc_error_set(e, SC_EPERM, "bundle %.12s is not approved (%s): nothing is sealed",
                            bid, row.state);
    if ((rc = nd_object_get(c->cfg.dir, row.approved_obj, c->cfg.base.max_bundle_bytes, &stb,
                            &len, e)))
        return rc;
    sp_budget_init(&bud, len + 65536);
    if ((rc = sc_statement_parse(stb, len, &bud, &st, e)))
        goto out;
    sc_sha256(hash, st->payload.data, st->payload.len);
    nd_hex(hex, hash, 32);
    if (strcmp(hex, row.payload_sha256)) {
        rc = sc_error_set(e, SC_EPERM, "approved statement of %.12s carries other payload bytes",
                          bid);
        goto out;
    }
    if ((rc = c->trust->peer_get(c->trust, c->self_id, &self, e)) ||
        (rc = sc_statement_verify(st, &self, need_admins(c), &vr, e)))
        goto out;
    int64_t now = nd_now_unix();
    for (char *save = NULL, *p = strtok_r(row.audience, ",", &save); p && n < MAX_RECIPIENTS;
         p = strtok_r(NULL, ",", &save)) {
        uint8_t *env = NULL;
        size_t elen = 0;
        sc_error se = {0, ""};
        recips[n] = p;
        objs[n][0] = errs[n][0] = 0;
        sizes[n] = 0;
        if (sc_seal_statement(stb, len, c->self_id, c->keys, c->trust, p, need_admins(c), now, &env,
                              &elen, &se) ||
            nd_object_put(c->cfg.dir, env, elen, objs[n], &se))
            snprintf(errs[n], sizeof errs[n], "%s", se.msg);
        sizes[n] = elen;
        free(env);
        n++;
    }
    if ((rc = nd_db_begin(db, e)))
        goto out;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = nd_db_run(db, e,
                       "INSERT OR IGNORE INTO deliveries(bundle_id,peer,sequence,state,"
                       "envelope_obj,envelope_size,last_error) VALUES(?,?,?,?,?,?,?)",
                       "ttittit", bid, recips[i], row.sequence,
                       errs[i][0] ? "refused" : "queued", objs[i], (int64_t)sizes[i], errs[i]);
        if (!rc && errs[i][0]) {
            char detail[300];
            snprintf(detail, sizeof detail, "not sealed for %s: %.250s", recips[i], errs[i]);
            nd_audit_entry en = {"node", "send", bid, row.payload_sha256, recips[i], "refused",
                                 detail};
            rc = nd_audit_append(db, &en, NULL, e);
        }
    }
    if (!rc)
        rc = nd_db_run(db, e,
                       "UPDATE bundles SET state='queued', updated_unix=? WHERE id=? AND "
                       "state='approved'",
                       "it", now, bid);
    if (!rc) /* every recipient may have failed already */
        rc = settle_bundle(db, bid, e);
    rc = end_transaction(c, db, rc, e);
    if (!rc) {
        for (size_t i = 0; i < n; i++)
            if (errs[i][0])
                nd_log(c, "warn", "bundle %.12s cannot be sealed for %s: %s", bid, recips[i],
                       errs[i]);
        nd_log(c, "info", "bundle %.12s sealed for %zu recipient(s) and queued", bid, n);
    }
out:
    if (st)
        protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(&bud));
    free(stb);
    return rc;
}

/* ---------------------------------------------------------------- delivery */

typedef struct due {
    char bid[33], peer[65], env_obj[65], payload_sha256[65];
    int attempts;
    int64_t sequence, expires;
} due;

/* After a delivery reached a final state: the bundle is done when nothing
 * is queued any more. */
static int settle_bundle(sqlite3 *db, const char *bid, sc_error *e)
{
    int64_t v;
    int queued, failed;
    int rc = nd_db_int(db, &v, &queued, e,
                       "SELECT 1 FROM deliveries WHERE bundle_id=? AND state='queued' LIMIT 1", "t",
                       bid);
    if (rc || queued)
        return rc;
    if ((rc = nd_db_int(db, &v, &failed, e,
                        "SELECT 1 FROM deliveries WHERE bundle_id=? AND state<>'delivered' LIMIT 1",
                        "t", bid)))
        return rc;
    return nd_db_run(db, e, "UPDATE bundles SET state=?, updated_unix=? WHERE id=?", "tit",
                     failed ? "failed" : "delivered", nd_now_unix(), bid);
}

static int finish(nd_outbound *o, const due *d, const char *state, const char *error,
                  const char *receipt, size_t rlen, const char *detail)
{
    nd_ctx *c = o->ctx;
    sc_error e = {0, ""};
    int delivered = !strcmp(state, "delivered");
    nd_audit_entry send = {"node", "send", d->bid, d->payload_sha256, d->peer,
                           delivered ? "ok" : state, detail};
    nd_audit_entry rec = {"node", "receipt", d->bid, d->payload_sha256, d->peer, "ok",
                          "signed receipt verified and stored"};
    int rc;
    if ((rc = nd_db_begin(o->db, &e)) ||
        (rc = nd_db_run(o->db, &e,
                        "UPDATE deliveries SET state=?, attempts=attempts+1, last_error=?, "
                        "receipt=?, delivered_unix=? WHERE bundle_id=? AND peer=? AND "
                        "state='queued'",
                        "ttbitt", state, error ? error : "",
                        (const void *)receipt, rlen, delivered ? nd_now_unix() : (int64_t)0,
                        d->bid, d->peer)) ||
        (rc = nd_audit_append(o->db, &send, NULL, &e)) ||
        (delivered && (rc = nd_audit_append(o->db, &rec, NULL, &e))) ||
        (rc = settle_bundle(o->db, d->bid, &e)) || (rc = nd_db_commit(o->db, &e))) {
        nd_db_rollback(o->db);
        nd_log(c, "error", "recording delivery of %.12s to %s: %s", d->bid, d->peer, e.msg);
        return rc;
    }
    if (nd_audit_anchor(o->db, c->cfg.dir, &e))
        nd_log(c, "error", "audit anchor: %s", e.msg);
    return 0;
}

static int retry_later(nd_outbound *o, const due *d, const char *why)
{
    nd_ctx *c = o->ctx;
    sc_error e = {0, ""};
    double u = (double)randombytes_random() / 4294967296.0;
    int64_t wait = nd_backoff_ms(c->cfg.retry_base_ms, c->cfg.retry_max_ms, d->attempts, u);
    nd_log(c, "info", "delivery of %.12s to %s failed (attempt %d): %s; next try in %.1f s",
           d->bid, d->peer, d->attempts + 1, why, (double)wait / 1000.0);
    int rc = nd_db_run(o->db, &e,
                       "UPDATE deliveries SET attempts=attempts+1, next_ms=?, last_error=? "
                       "WHERE bundle_id=? AND peer=? AND state='queued'",
                       "itt" "t", nd_now_ms() + wait, why, d->bid, d->peer);
    if (rc)
        nd_log(c, "error", "recording a retry: %s", e.msg);
    return rc;
}

static void deliver(nd_outbound *o, const due *d)
{
    nd_ctx *c = o->ctx;
    sc_error e = {0, ""};
    char url[ND_URL_MAX] = "", pins[ND_PINS_MAX] = "", why[600], detail[400];
    uint8_t *env = NULL, eh[32];
    size_t elen = 0;
    int found = 0;
    if (nd_now_unix() > d->expires) {
        finish(o, d, "expired", "the bundle expired before it could be delivered", NULL, 0,
               "expired before delivery");
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
    if (outcome == SN_DELIVERED) {
        sc_peer p;
        nd_receipt r;
        char bid[33], ph[65];
        sc_error re = {0, ""};
        if (c->trust->peer_get(c->trust, d->peer, &p, &re) ||
            nd_receipt_verify((const char *)resp.body, resp.body_len, p.sign_pk, &r, &re)) {
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
                if (finish(o, d, "delivered", NULL, (const char *)resp.body, resp.body_len,
                           detail) == 0)
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
        finish(o, d, "refused", why, NULL, 0, detail);
    } else {
        if (rc)
            snprintf(why, sizeof why, "%s", e.msg);
        else
            snprintf(why, sizeof why, "HTTP %ld", resp.status);
        retry_later(o, d, why);
    }
    sn_client_response_free(&resp);
}

static void release_approved(nd_outbound *o)
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
        if (nd_outbound_release(c, o->db, bid, &e)) {
            nd_log(c, "error", "releasing %.12s: %s", bid, e.msg);
            return;
        }
    }
}

/* Deliver what is due; returns the milliseconds until the next attempt. */
static int64_t deliver_due(nd_outbound *o)
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

static void *outbound_main(void *arg)
{
    nd_outbound *o = arg;
    nd_ctx *c = o->ctx;
    while (!atomic_load(&c->stopping)) {
        release_approved(o);
        int64_t wait = deliver_due(o);
        if (wait > 0)
            nd_wait(c, &c->wake_out, &c->pending_out, wait < 10 ? 10 : wait);
    }
    return NULL;
}

int nd_outbound_start(nd_outbound *o, nd_ctx *c, sc_error *e)
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
    if (pthread_create(&o->thread, NULL, outbound_main, o)) {
        nd_db_close(o->db);
        sn_client_destroy(o->client);
        return sc_error_set(e, SC_ENOMEM, "cannot start the outbound worker");
    }
    o->started = 1;
    return 0;
}

void nd_outbound_join(nd_outbound *o)
{
    if (o->started)
        pthread_join(o->thread, NULL);
    o->started = 0;
    nd_db_close(o->db);
    sn_client_destroy(o->client);
    o->db = NULL;
    o->client = NULL;
}
