/*
 * nd_approval.c - admin decisions and the release gate (see nd_approval.h).
 */
#include "nd_approval.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "nd_audit.h"
#include "nd_delivery.h"
#include "nd_ledger.h"
#include "nd_lifecycle.h"
#include "nd_objects.h"
#include "nd_roster.h"
#include "nd_state.h"
#include "sc_envelope.h"
#include "sc_sign.h"
#include "sc_util.h"
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

int nd_approval_tx_end(nd_ctx *c, sqlite3 *db, int rc, sc_error *e)
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

/* The privacy budget (nd_ledger.h) must hold this release; a refusal is
 * recorded in the audit log when `audit` (outside a transaction, so the
 * entry stays although the decision fails). */
static int within_budget(nd_ctx *c, sqlite3 *db, const char *bid, const out_row *row, int audit,
                         sc_error *e)
{
    nd_settings s;
    nd_ctx_settings(c, &s);
    nd_ledger_budget b = {s.max_epsilon, s.epsilon_delta};
    nd_ledger_view v;
    char detail[600];
    int rc = nd_ledger_view_of(db, bid, &b, &v, e);
    if (rc)
        return rc;
    if (!v.found && s.max_epsilon > 0)
        snprintf(detail, sizeof detail,
                 "no ledger entry: made before the ledger existed, its cost is unknown");
    else if (v.over)
        nd_ledger_describe(&v, detail, sizeof detail);
    else
        return 0;
    if (audit) {
        sc_error ae = {0, ""};
        nd_audit_entry en = {"node", "budget", bid, row->payload_sha256, "", "refused", detail};
        if (nd_audit_append(db, &en, NULL, &ae))
            nd_log(c, "error", "audit: %s", ae.msg);
        nd_log(c, "error", "bundle %.12s cannot be approved: over the privacy budget: %s", bid,
               detail);
    }
    return sc_error_set(e, SC_EPERM,
                        "privacy budget: bundle %.12s cannot be approved: %s. Nothing was "
                        "released.",
                        bid, detail);
}

/* node.conf's privacy policy (as it is now) must allow the bundle's
 * verdict. */
static int policy_allows(nd_ctx *c, const out_row *row, sc_error *e)
{
    nd_settings s;
    nd_ctx_settings(c, &s);
    if ((s.privacy == ND_PRIVACY_BLOCK && !strcmp(row->privacy, "block")) ||
        (s.privacy == ND_PRIVACY_REQUIRE && strcmp(row->privacy, "pass") &&
         strcmp(row->privacy, "warn")))
        return sc_error_set(e, SC_EPERM,
                            "privacy policy '%s' forbids releasing a bundle whose privacy audit "
                            "verdict is '%s'",
                            nd_privacy_policy_name(s.privacy),
                            row->privacy[0] ? row->privacy : "none");
    return 0;
}

/* Approval is the last step before release: node.conf's privacy policy and
 * budget and the receivers' sequence order must allow it. */
static int may_release(nd_ctx *c, sqlite3 *db, const char *bid, const out_row *row, sc_error *e)
{
    int rc;
    if ((rc = policy_allows(c, row, e)) || (rc = within_budget(c, db, bid, row, 1, e)))
        return rc;
    /* receivers accept sequence numbers in increasing order only */
    int64_t later;
    int found;
    rc = nd_db_int(db, &later, &found, e,
                   "SELECT sequence FROM bundles WHERE direction='out' AND sequence>? "
                   "AND state IN ('approved','queued','delivered','failed') LIMIT 1",
                   "i", row->sequence);
    if (!rc && found)
        rc = sc_error_set(e, SC_EINVAL,
                          "a later bundle (sequence %" PRId64 ") was already released; "
                          "receivers would refuse this one (sequence %" PRId64
                          ") as a replay. Run a new distillation job instead.",
                          later, row->sequence);
    return rc;
}

/* Every recipient must know each approving admin (nd_roster.h): a peer
 * checks the approvals against the admins it holds for this node, and
 * would refuse the sealed bundle for good, the sequence spent. */
static int roster_known(nd_ctx *c, sqlite3 *db, const char *bid, const out_row *row,
                        const sc_peer *self, const decision *dec, size_t nd, sc_error *e)
{
    char names[SC_MAX_ADMINS_PER_NODE][65];
    size_t n = 0;
    for (size_t i = 0; i < nd; i++)
        if (dec[i].decision == SLDD__V1__DECISION__DECISION_APPROVE)
            memcpy(names[n++], dec[i].admin, sizeof names[0]);
    return nd_roster_check(c, db, bid, row->payload_sha256, row->audience, self,
                           (const char(*)[65])names, n, e);
}

/* One transaction: each decision not recorded before with its audit
 * entry, the statement object, and the move to approved or rejected. */
typedef struct decided_by {
    const char *who, *reason; /* may be NULL */
} decided_by;

static int record_decisions(nd_ctx *c, sqlite3 *db, const char *bid, const out_row *row,
                            const decision *dec, size_t nd, const nd_decision_result *res,
                            const char *obj, const decided_by *by, sc_error *e)
{
    int rc = nd_db_begin(db, e);
    if (rc)
        return rc;
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
        char actor[300], detail[600];
        snprintf(actor, sizeof actor, "admin:%.64s%s%.200s", dec[i].admin, by->who ? " by " : "",
                 by->who ? by->who : "");
        if (rej)
            snprintf(detail, sizeof detail, "rejected; nothing will be sent%s%.400s",
                     by->reason ? ": " : "", by->reason ? by->reason : "");
        else
            snprintf(detail, sizeof detail, "approval %zu of %zu needed, signed at %" PRId64,
                     res->n_admins, res->need, dec[i].time);
        nd_audit_entry en = {actor, rej ? "rejection" : "approval",
                             bid,   row->payload_sha256,
                             "",    rej ? "rejected" : (res->approved ? "approved" : "partial"),
                             detail};
        rc = nd_db_run(db, e,
                       "INSERT OR REPLACE INTO approvals(bundle_id,admin,decision,payload_sha256,"
                       "time_unix) VALUES(?,?,?,?,?)",
                       "tttti", bid, dec[i].admin, rej ? "reject" : "approve", row->payload_sha256,
                       now);
        if (!rc)
            rc = nd_audit_append(db, &en, NULL, e);
    }
    if (!rc && obj[0])
        rc = nd_db_run(db, e, "UPDATE bundles SET approved_obj=?, updated_unix=? WHERE id=?", "tit",
                       obj, now, bid);
    /* the budget again, under the write lock: another release may have
     * been spent since may_release looked */
    if (!rc && res->approved && !(rc = within_budget(c, db, bid, row, 0, e)))
        rc = nd_ledger_spend(db, bid, e);
    if (!rc && res->rejected)
        rc = nd_ledger_void(db, bid, e);
    if (!rc && (res->rejected || res->approved)) {
        char actor[500];
        snprintf(actor, sizeof actor, "admin:%s%s%.200s", res->admins, by->who ? " by " : "",
                 by->who ? by->who : "");
        nd_lifecycle_why why = {actor, NULL, NULL, NULL, NULL, NULL};
        rc = nd_lifecycle_move(db, bid, ND_BUNDLE_PENDING,
                               res->rejected ? ND_BUNDLE_REJECTED : ND_BUNDLE_APPROVED, &why, e);
    }
    return nd_approval_tx_end(c, db, rc, e);
}

int nd_approval_decide(nd_ctx *c, sqlite3 *db, const char *bid, const uint8_t *stb, size_t len,
                       nd_decision_result *res, sc_error *e)
{
    return nd_approval_decide_by(c, db, bid, stb, len, NULL, NULL, res, e);
}

int nd_approval_decide_by(nd_ctx *c, sqlite3 *db, const char *bid, const uint8_t *stb, size_t len,
                          const char *who, const char *reason, nd_decision_result *res, sc_error *e)
{
    const decided_by by = {who, reason};
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
        return sc_error_set(e, SC_EINVAL,
                            "bundle %.12s was received from a peer; only this "
                            "node's own bundles are approved here",
                            bid);
    if (nd_bundle_state_parse(row.state) != ND_BUNDLE_PENDING)
        return sc_error_set(e, SC_EINVAL, "bundle %.12s is %s, not pending approval", bid,
                            row.state);
    sp_budget_init(&bud, len + 65536);
    if ((rc = sc_statement_parse(stb, len, &bud, &st, e)))
        return rc;
    sc_sha256(hash, st->payload.data, st->payload.len);
    nd_hex(hex, hash, 32);
    if (strcmp(hex, row.payload_sha256)) {
        rc = sc_error_set(e, SC_EINVAL,
                          "the decision is for payload %.16s..., bundle %.12s is "
                          "payload %.16s...",
                          hex, bid, row.payload_sha256);
        goto out;
    }
    if ((rc = c->trust->peer_get(c->trust, c->self_id, &self, e)))
        goto out;
    size_t nd = valid_decisions(st, &self, hash, dec, SC_MAX_ADMINS_PER_NODE);
    for (size_t i = 0; i < nd; i++) {
        if (dec[i].decision == SLDD__V1__DECISION__DECISION_REJECT)
            res->rejected = 1;
        else
            res->n_admins++;
        size_t o = strlen(res->admins);
        snprintf(res->admins + o, sizeof res->admins - o, "%s%s", o ? "," : "", dec[i].admin);
    }
    if (!nd) {
        rc = sc_error_set(e, SC_EPERM, "no valid decision by an admin of node %s in the statement",
                          c->self_id);
        goto out;
    }
    if (!res->rejected && res->n_admins >= res->need) {
        sc_verify_result vr;
        if ((rc = may_release(c, db, bid, &row, e)) ||
            (rc = sc_statement_verify(st, &self, res->need, &vr, e)) ||
            (rc = roster_known(c, db, bid, &row, &self, dec, nd, e)))
            goto out;
        res->approved = 1;
    }
    if ((!res->rejected && (rc = nd_object_put(c->cfg.dir, stb, len, obj, e))) ||
        (rc = record_decisions(c, db, bid, &row, dec, nd, res, obj, &by, e)))
        goto out;
    nd_log(c, "info", "bundle %.12s %s by %s", bid,
           res->rejected   ? "REJECTED"
           : res->approved ? "APPROVED"
                           : "partly approved",
           res->admins);
    if (res->approved)
        nd_wake(c, &c->wake_out, &c->pending_out);
out:
    protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(&bud));
    return rc;
}

/* ---------------------------------------------------------------- the gate */

int nd_approval_may_resend(nd_ctx *c, sqlite3 *db, const char *bid, sc_error *e)
{
    out_row row;
    int rc = load_row(db, bid, &row, e);
    if (rc)
        return rc;
    if (strcmp(row.direction, "out") || !row.approved_obj[0])
        return sc_error_set(e, SC_EPERM, "bundle %.12s was never approved: nothing to re-send",
                            bid);
    return (rc = policy_allows(c, &row, e)) ? rc : within_budget(c, db, bid, &row, 0, e);
}

int nd_approval_release(nd_ctx *c, sqlite3 *db, const char *bid, sc_error *e)
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
    if (strcmp(row.direction, "out") || nd_bundle_state_parse(row.state) != ND_BUNDLE_APPROVED ||
        !row.approved_obj[0])
        return sc_error_set(e, SC_EPERM, "bundle %.12s is not approved (%s): nothing is sealed",
                            bid, row.state);
    if ((rc = nd_object_get(c->cfg.dir, row.approved_obj, c->cfg.base.max_bundle_bytes, &stb, &len,
                            e)))
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
        rc =
            nd_db_run(db, e,
                      "INSERT OR IGNORE INTO deliveries(bundle_id,peer,sequence,state,"
                      "envelope_obj,envelope_size,last_error) VALUES(?,?,?,?,?,?,?)",
                      "ttittit", bid, recips[i], row.sequence,
                      nd_delivery_state_name(errs[i][0] ? ND_DELIVERY_REFUSED : ND_DELIVERY_QUEUED),
                      objs[i], (int64_t)sizes[i], errs[i]);
        if (!rc && errs[i][0]) {
            char detail[300];
            snprintf(detail, sizeof detail, "not sealed for %s: %.250s", recips[i], errs[i]);
            nd_audit_entry en = {"node",    "send",    bid,   row.payload_sha256,
                                 recips[i], "refused", detail};
            rc = nd_audit_append(db, &en, NULL, e);
        }
    }
    if (!rc) {
        char detail[80];
        snprintf(detail, sizeof detail, "sealed for %zu recipient(s) and queued", n);
        nd_lifecycle_why why = {NULL, NULL, NULL, NULL, detail, NULL};
        rc = nd_lifecycle_move(db, bid, ND_BUNDLE_APPROVED, ND_BUNDLE_QUEUED, &why, e);
    }
    if (!rc) /* every recipient may have failed already */
        rc = nd_delivery_settle(db, bid, e);
    rc = nd_approval_tx_end(c, db, rc, e);
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
