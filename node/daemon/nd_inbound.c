/*
 * nd_inbound.c - receiving a bundle from a peer: idempotent delivery, the
 * receive order, storage and the signed receipt (see nd_inbound.h).  A
 * repeated delivery is answered from the store only when its bytes are the
 * ones received the first time (their SHA-256 is kept with the bundle).
 */
#include "nd_inbound.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nd_audit.h"
#include "nd_buf.h"
#include "nd_lifecycle.h"
#include "nd_objects.h"
#include "nd_receipt.h"
#include "nd_state.h"
#include "sc_envelope.h"
#include "sc_util.h"
#include "sp_budget.h"
#include "sp_check.h"

int nd_inbound_init(nd_inbound *in, nd_ctx *ctx, sqlite3 *db, sc_error *e)
{
    memset(in, 0, sizeof *in);
    in->ctx = ctx;
    in->db = db;
    return nd_replay_store_db(db, &in->replay, e);
}

void nd_inbound_destroy(nd_inbound *in)
{
    sc_replay_store_destroy(in->replay);
    in->replay = NULL;
}

int nd_refusal_status(int code)
{
    switch (code) {
    case SC_EREFUSE_SIZE: return 413;
    case SC_EREFUSE_ENVELOPE:
    case SC_EREFUSE_HEADER:
    case SC_EREFUSE_STATEMENT:
    case SC_EREFUSE_BUDGET:
    case SC_EREFUSE_PARSE:
    case SC_EREFUSE_UNKNOWN_FIELDS: return 400;
    case SC_EREFUSE_UNKNOWN_SENDER:
    case SC_EREFUSE_RECIPIENT: return 403;
    case SC_EREFUSE_REPLAY_ID:
    case SC_EREFUSE_REPLAY_SEQ: return 409;
    default:
        /* our own failures (disk, memory) are worth a retry */
        return sc_status_is_refusal(code) ? 422 : 503;
    }
}

static void answer(sn_response *resp, int status, const char *fmt, const char *a, const char *b)
{
    if (sn_response_printf(resp, status, NULL, fmt, a, b) != 0)
        resp->status = status;
}

static void refuse(nd_inbound *in, const sn_bundle_in *b, int code, const char *reason,
                   const char *bundle_hex)
{
    nd_ctx *c = in->ctx;
    sc_error e = {0, ""};
    char detail[700], actor[80];
    snprintf(detail, sizeof detail, "%s: %s (from %s, %zu bytes)", sc_status_name(code), reason,
             b->peer_addr ? b->peer_addr : "?", b->body_len);
    snprintf(actor, sizeof actor, "peer:%s", b->sender_node_id);
    nd_metrics_refusal(&c->metrics, sc_status_name(code));
    /* a sender we do not know (or that is not who the TLS layer says) is
     * an error; a known peer's bad bundle a warning */
    const char *kv[] = {"event", "refusal",         "reason", sc_status_name(code),
                        "peer",  b->sender_node_id, "addr",   b->peer_addr,
                        NULL};
    nd_log_kv(c, code == SC_EREFUSE_UNKNOWN_SENDER ? "error" : "warn", kv,
              "refused a bundle from %s: %s", b->sender_node_id, detail);
    nd_audit_entry en = {actor,     "refusal", bundle_hex ? bundle_hex : "", "", b->sender_node_id,
                         "refused", detail};
    if (nd_audit_append(in->db, &en, NULL, &e) || nd_audit_anchor(in->db, c->cfg.dir, &e))
        nd_log(c, "error", "audit: %s", e.msg);
}

/* A bundle id we already hold from this sender.  KNOWN_SAME with the
 * stored receipt (*out, *len) when body is the one received the first time
 * (same SHA-256), KNOWN_OTHER with that first hash in first[] when it is
 * not; UNKNOWN otherwise, also when no first hash is on record (the full
 * receive order then decides, and refuses the id as a replay). */
enum { UNKNOWN, KNOWN_SAME, KNOWN_OTHER };
static int known_delivery(nd_inbound *in, const sn_bundle_in *b, const char *sender,
                          const char *bid, uint8_t **out, size_t *len, char first[65])
{
    sqlite3_stmt *st;
    sc_error e = {0, ""};
    char eh[65];
    int kind = UNKNOWN;
    *out = NULL;
    first[0] = 0;
    nd_hex(eh, b->body_sha256, 32);
    if (nd_db_prepare(in->db, &st, &e,
                      "SELECT COALESCE(envelope_sha256,''),receipt FROM bundles WHERE id=? AND "
                      "direction='in' AND sender=?",
                      "tt", bid, sender)) {
        nd_log(in->ctx, "error", "%s", e.msg);
        return UNKNOWN;
    }
    if (nd_db_step(st, &e) == 1 && strlen(nd_col_text(st, 0)) == 64) {
        int n = sqlite3_column_bytes(st, 1);
        snprintf(first, 65, "%s", nd_col_text(st, 0));
        if (strcmp(first, eh))
            kind = KNOWN_OTHER;
        else if (n > 0 && (*out = malloc((size_t)n)) != NULL) {
            memcpy(*out, sqlite3_column_blob(st, 1), (size_t)n);
            *len = (size_t)n;
            kind = KNOWN_SAME;
        }
    }
    nd_db_finalize(st);
    return kind;
}

static void peek_id(const sn_bundle_in *b, char sender[65], char bid[33])
{
    sp_budget bud;
    Sldd__V1__Envelope *env = NULL;
    Sldd__V1__EnvelopeHeader *h = NULL;
    sender[0] = bid[0] = 0;
    sp_budget_init(&bud, b->body_len + 65536);
    if (sc_envelope_peek(b->body, b->body_len, &bud, &env, &h, NULL) == 0 && h &&
        h->bundle_id.len == 16 && h->sender && strlen(h->sender) < 65) {
        nd_hex(bid, h->bundle_id.data, 16);
        snprintf(sender, 65, "%s", h->sender);
    }
    if (h)
        protobuf_c_message_free_unpacked(&h->base, sp_budget_allocator(&bud));
    if (env)
        protobuf_c_message_free_unpacked(&env->base, sp_budget_allocator(&bud));
}

/* Step 1 of a delivery: the same receipt for exactly the bytes received
 * the first time under this (sender, bundle id).  The header read here is
 * not verified yet, so anything else under a known id is a conflict,
 * refused with 409 and audited; the stored bundle stays as it is.  1 when
 * resp holds the answer; bid gets the header's bundle id ("" if none). */
static int answered_from_store(nd_inbound *in, const sn_bundle_in *b, sn_response *resp,
                               char bid[33])
{
    char sender[65], first[65], eh[65], detail[300];
    uint8_t *receipt = NULL;
    size_t rlen = 0;
    peek_id(b, sender, bid);
    if (!bid[0] || strcmp(sender, b->sender_node_id))
        return 0;
    int kind = known_delivery(in, b, sender, bid, &receipt, &rlen, first);
    if (kind == KNOWN_SAME) {
        nd_log(in->ctx, "info",
               "bundle %.12s from %s delivered again: answering with the same receipt", bid,
               sender);
        if (sn_response_set(resp, 200, SN_PEER_RECEIPT_TYPE, receipt, rlen))
            resp->status = 500;
        free(receipt);
        return 1;
    }
    if (kind != KNOWN_OTHER)
        return 0;
    nd_hex(eh, b->body_sha256, 32);
    snprintf(detail, sizeof detail,
             "bundle id already received with other content (envelope sha256 %.16s..., first "
             "received %.16s...)",
             eh, first);
    refuse(in, b, SC_EREFUSE_REPLAY_ID, detail, bid);
    answer(resp, 409, "refused (%s): %s\n", sc_status_name(SC_EREFUSE_REPLAY_ID), detail);
    return 1;
}

/* The signed receipt of an accepted bundle (its text into *out). */
static int make_receipt(nd_ctx *c, const sc_received *rec, const sn_bundle_in *b, int64_t now,
                        char **out, size_t *len, sc_error *e)
{
    nd_receipt rc_;
    memset(&rc_, 0, sizeof rc_);
    snprintf(rc_.receiver, sizeof rc_.receiver, "%s", c->self_id);
    snprintf(rc_.sender, sizeof rc_.sender, "%s", rec->sender);
    memcpy(rc_.bundle_id, rec->bundle_id, 16);
    rc_.sequence = rec->sequence;
    memcpy(rc_.payload_sha256, rec->sigs.payload_sha256, 32);
    memcpy(rc_.envelope_sha256, b->body_sha256, 32);
    rc_.received_unix = now;
    return nd_receipt_make(&rc_, c->keys, out, len, e);
}

/* The bundle row, the replay entry and the audit entry in one transaction
 * (rolled back on failure). */
static int record_bundle(nd_inbound *in, const sn_bundle_in *b, const sc_receiver *r,
                         sc_received *rec, const char *bid, const char *ph, const char *eh,
                         const char *st_obj, const char *rtext, size_t rlen, sc_error *e)
{
    char actor[80], detail[300];
    const Sldd__V1__Bundle *pb = rec->bundle;
    const Sldd__V1__Metrics *m = pb->metrics;
    char audience[1024] = "";
    for (size_t i = 0, o = 0; i < pb->n_audience && o < sizeof audience - 70; i++)
        o += (size_t)snprintf(audience + o, sizeof audience - o, "%s%s", i ? "," : "",
                              pb->audience[i]);
    snprintf(actor, sizeof actor, "peer:%s", rec->sender);
    snprintf(detail, sizeof detail,
             "sequence %" PRIu64 ", %zu-byte envelope, approved by %zu admin(s); receipt signed",
             rec->sequence, b->body_len, rec->sigs.n_admins);
    nd_lifecycle_why why = {actor, "receive", rec->sender, "ok", detail, NULL};
    int rc;
    if ((rc = nd_db_begin(in->db, e)) ||
        (rc = nd_db_run(
             in->db, e,
             "INSERT INTO bundles(id,direction,sender,sequence,state,payload_sha256,"
             "payload_size,statement_obj,audience,created_unix,expires_unix,"
             "updated_unix,accuracy,sen,spe,hm,auc,privacy_verdict,envelope_sha256,"
             "receipt) VALUES(?,'in',?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
             "tti"
             "tt"
             "itt"
             "iii"
             "ddddd"
             "ttb",
             bid, rec->sender, (int64_t)rec->sequence, nd_bundle_state_name(ND_BUNDLE_STORED), ph,
             (int64_t)rec->payload_len, st_obj, audience, (int64_t)pb->created_unix,
             (int64_t)pb->expires_unix, r->now, sp_metric_get(m, SP_METRIC_ACCURACY),
             sp_metric_get(m, SP_METRIC_SENSITIVITY), sp_metric_get(m, SP_METRIC_SPECIFICITY),
             sp_metric_get(m, SP_METRIC_HARMONIC_MEAN), sp_metric_get(m, SP_METRIC_AUC),
             pb->privacy && pb->privacy->verdict ? pb->privacy->verdict : "", eh,
             (const void *)rtext, rlen)) ||
        (rc = sc_receive_commit(r, rec, e)) ||
        (rc = nd_lifecycle_enter(in->db, bid, ND_BUNDLE_STORED, &why, e)) ||
        (rc = nd_db_commit(in->db, e)))
        nd_db_rollback(in->db);
    return rc;
}

void nd_inbound_on_bundle(void *arg, const sn_bundle_in *b, sn_response *resp)
{
    nd_inbound *in = arg;
    nd_ctx *c = in->ctx;
    sc_error e = {0, ""};
    sc_received *rec = NULL;
    char bid[33], ph[65], eh[65], st_obj[65], pl_obj[65], detail[300];
    size_t rlen = 0;
    int rc;

    nd_metrics_bytes(&c->metrics, 0, b->body_len);
    /* 1. a retransmission (the sender did not see our answer) */
    if (answered_from_store(in, b, resp, bid))
        return;

    /* 2. the receive order (docs/bundle-format.md, "Receive order") */
    sc_receiver r;
    memset(&r, 0, sizeof r);
    r.self_id = c->self_id;
    r.keys = c->keys;
    r.trust = c->trust;
    r.replay = in->replay;
    r.cfg.max_bytes = c->cfg.base.max_bundle_bytes;
    r.cfg.parse_budget = c->cfg.base.parse_budget_bytes;
    r.cfg.min_admins = c->cfg.base.min_admin_approvals;
    r.cfg.clock_skew = c->cfg.base.clock_skew_seconds;
    r.now = nd_now_unix();
    if ((rc = sc_receive(&r, b->body, b->body_len, &rec, &e))) {
        refuse(in, b, rc, e.msg, bid[0] ? bid : NULL);
        answer(resp, nd_refusal_status(rc), "refused (%s): %s\n", sc_status_name(rc), e.msg);
        return;
    }
    nd_hex(bid, rec->bundle_id, 16);
    /* 3. the TLS identity must be the sender: nobody relays another node's bundles */
    if (strcmp(rec->sender, b->sender_node_id)) {
        snprintf(detail, sizeof detail, "bundle from %s delivered by %s", rec->sender,
                 b->sender_node_id);
        refuse(in, b, SC_EREFUSE_UNKNOWN_SENDER, detail, bid);
        answer(resp, 403, "refused (%s): %s\n", "sender-mismatch", detail);
        sc_received_destroy(rec);
        return;
    }
    nd_hex(ph, rec->sigs.payload_sha256, 32);
    nd_hex(eh, b->body_sha256, 32);

    /* 4. objects first: a crash before the commit leaves only files, and the
     * sender (who got no answer) sends again */
    if (nd_object_put(c->cfg.dir, rec->statement, rec->statement_len, st_obj, &e) ||
        nd_object_put(c->cfg.dir, rec->payload, rec->payload_len, pl_obj, &e)) {
        nd_log(c, "error", "storing bundle %.12s from %s: %s", bid, rec->sender, e.msg);
        answer(resp, 503, "cannot store the bundle now%s%s\n", "", "");
        sn_response_add_header(resp, "Retry-After", "30");
        sc_received_destroy(rec);
        return;
    }
    char *rtext = NULL;
    if (make_receipt(c, rec, b, r.now, &rtext, &rlen, &e)) {
        nd_log(c, "error", "receipt: %s", e.msg);
        answer(resp, 503, "cannot sign a receipt now%s%s\n", "", "");
        sc_received_destroy(rec);
        return;
    }
    nd_test_hold(c, "receive-stored");

    /* 5. one transaction: bundle row, replay entry, audit entry */
    if (record_bundle(in, b, &r, rec, bid, ph, eh, st_obj, rtext, rlen, &e)) {
        nd_log(c, "error", "recording bundle %.12s from %s: %s", bid, rec->sender, e.msg);
        answer(resp, 503, "cannot record the bundle now%s%s\n", "", "");
        sn_response_add_header(resp, "Retry-After", "30");
        free(rtext);
        sc_received_destroy(rec);
        return;
    }
    if (nd_audit_anchor(in->db, c->cfg.dir, &e))
        nd_log(c, "error", "audit anchor: %s", e.msg);
    nd_log(c, "info",
           "received bundle %.12s from %s (sequence %" PRIu64 ", payload %zu bytes); "
           "queued for import",
           bid, rec->sender, rec->sequence, rec->payload_len);
    if (sn_response_set(resp, 200, SN_PEER_RECEIPT_TYPE, rtext, rlen))
        resp->status = 500;
    free(rtext);
    sc_received_destroy(rec);
    nd_wake(c, &c->wake_in, &c->pending_in);
}
